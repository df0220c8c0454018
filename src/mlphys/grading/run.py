"""One notebook's grading run: the sandboxed kernel, the deadlines, the hidden tests and their verdicts.

:class:`GradingRun` is the unit of grading (and what a parallel grader schedules): it owns the kernel
client of one sandbox and runs, in order,

- :meth:`GradingRun.execute` — one cell's visible source in the student's kernel;
- :meth:`GradingRun.call` — one grader request into the kernel (the transport of hidden tests);
- :meth:`GradingRun.judge` — one test cell's hidden part, in this process, into a :class:`~hidden.Verdict`;
- :meth:`GradingRun.grade` — the whole notebook: every cell, then the verdict of each test cell.

Everything runs in the caller's thread.  The kernel's channels are asynchronous; each step waits for
them with ``jupyter_core``'s ``run_sync``, which also works where an event loop is already running (the
formgrader runs nbgrader inside Jupyter's).  A kernel that dies, hangs, floods its output or runs past
the notebook's time limit loses the points of the test cells not yet judged, and nothing else.
"""

from __future__ import annotations

import time
import typing as t

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell

from mlphys.grading import hidden, isolated, kernel, sandbox
from mlphys.grading.handoff import NotebookView, is_test_cell
from mlphys.grading.submission import MISSING, Submission

MAX_EXECUTION_COUNT = 10**9


class Stopped(Exception):
    """Grading of this notebook cannot go on; the message tells the student why."""


def _error_output(ename: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])


def _verdict_output(verdict: hidden.Verdict, points: float) -> NotebookNode:
    if verdict.passed:
        unit = "point" if points == 1 else "points"
        return NotebookNode(output_type="stream", name="stdout", text=f"Hidden tests passed ({points:g} {unit}).\n")
    return _error_output("HiddenTestFailed", verdict.message)


def _execution_count(value: t.Any) -> int | None:
    """The kernel's execution count if it is a plain, sane integer; anything else is dropped."""
    return value if type(value) is int and 0 <= value <= MAX_EXECUTION_COUNT else None


class GradingRun:
    """Grades one notebook in one sandboxed kernel; see the module docstring."""

    def __init__(
        self,
        box: sandbox.Sandbox,
        isolation: isolated.Isolation,
        view: NotebookView,
        submission: Submission,
        trusted_names: dict[str, t.Any],
        *,
        notebook_timeout: float,
        memory_limit_mb: int,
    ) -> None:
        self.box, self.isolation, self.view = box, isolation, view
        self.deadline = time.monotonic() + notebook_timeout
        self.notebook_timeout, self.memory_limit_mb = notebook_timeout, memory_limit_mb
        self.verdicts: dict[str, hidden.Verdict] = {}
        self.stopped: str | None = None
        self.client = isolated.sandboxed_client(box, isolation)
        self.submission = submission
        submission.deadline = self.deadline
        submission.lookup = self.student_value
        self.session = hidden.HiddenTestSession(
            self.call, view.instructor_names(), {**trusted_names, "submission": submission}
        )

    # ---- time ------------------------------------------------------------------------------------

    def time_left(self) -> float:
        """Seconds the next cell or call may take: the per-cell limit, within the notebook's."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise CellTimeoutError("notebook time limit")
        return min(self.isolation.timeout, remaining)

    # ---- the steps -------------------------------------------------------------------------------

    def execute(self, source: str) -> NotebookNode:
        """Run ``source`` in the student's kernel; the executed cell, with its bounded outputs."""
        cell = new_code_cell(source)
        self.client.timeout = int(max(1, self.time_left()))
        try:
            run_sync(self.client.async_execute_cell)(cell, 0, store_history=True)
        except Exception as exc:  # timeouts, a dead kernel, floods, protocol errors
            self.stopped = self.stop_reason(exc)
        # What the kernel reports is the student's: a count that is not a sane integer would make the
        # autograded notebook invalid (and lose the student's feedback).
        cell.execution_count = _execution_count(cell.get("execution_count"))
        for output in cell.outputs:
            if "execution_count" in output:
                output["execution_count"] = _execution_count(output.get("execution_count"))
        return cell

    def call(self, request: dict[str, t.Any]) -> t.Any:
        """Send one grader request to the kernel's bridge; its unvalidated reply."""
        if self.stopped is not None:  # fail fast: hypothesis and loops would otherwise retry a dead kernel
            raise hidden.KernelGone(self.stopped)
        try:
            return run_sync(kernel.call_kernel)(self.client, request, self.time_left())
        except Exception as exc:  # timeouts, a dead kernel, floods, protocol errors
            self.stopped = self.stop_reason(exc, calling=request.get("name"))
            raise hidden.KernelGone(self.stopped) from None

    def student_value(self, name: str) -> t.Any:
        """A validated copy of the student's variable ``name``, or MISSING."""
        return self.session.value(name, MISSING)

    def judge(self, grade_id: str) -> hidden.Verdict:
        """The verdict of one test cell's hidden part, run here against the student's kernel."""
        hidden_source = self.view.tests[grade_id].hidden
        if not hidden_source.strip():
            return hidden.Verdict(False, "This test cell has no hidden tests (an instructor error); no points.")
        return self.session.run(hidden_source, grade_id)

    def grade(self, nb: NotebookNode) -> None:
        """Run the notebook's cells in order and judge each test cell; record every verdict."""
        try:
            with isolated.kernel_output(self.isolation) as streams, self.client.setup_kernel(**streams):
                for cell in nb.cells:
                    self._grade_cell(cell)
        except Exception as exc:
            # The kernel failed to start, or to stop cleanly: what was judged stands, the rest scores zero.
            reason = self.stop_reason(exc)
            for cell in nb.cells:
                if self._grade_id(cell) not in self.verdicts:
                    self._mark_not_run(cell, reason)
        finally:
            isolated.close_client(self.client)

    def _grade_cell(self, cell: NotebookNode) -> None:
        if self.stopped is not None:
            self._mark_not_run(cell, self.stopped)
            return
        if cell.cell_type != "code":
            return
        grade_id = self._grade_id(cell)
        test = self.view.tests.get(grade_id) if is_test_cell(cell) else None
        ran = self.execute(test.visible if test is not None else cell.source)
        cell.outputs, cell.execution_count = ran.outputs, ran.execution_count
        if test is not None:
            cell.source = test.visible  # the hidden part never reaches the notebook on disk
        if self.stopped is not None:
            cell.outputs.append(_error_output("GradingStopped", self.stopped))
            self._mark_not_run(cell, self.stopped, ran=True)
            return
        if test is not None and grade_id is not None:
            verdict = self.judge(grade_id)
            self.verdicts[grade_id] = verdict
            cell.outputs.append(_verdict_output(verdict, test.points))
            for text in self.submission.notes:
                cell.outputs.append(NotebookNode(output_type="stream", name="stdout", text=text.rstrip("\n") + "\n"))
            self.submission.notes.clear()

    # ---- when things go wrong --------------------------------------------------------------------

    @staticmethod
    def _grade_id(cell: NotebookNode) -> str | None:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        return grade_id if isinstance(grade_id, str) else None

    def stop_reason(self, exc: BaseException, calling: str | None = None) -> str:
        if isinstance(exc, kernel.OutputFlood):
            reason = str(exc)
        elif isinstance(exc, kernel.CallTimeout):
            what = f"`{calling}`" if calling else "code"
            reason = f"Your {what} did not return within {self.isolation.timeout:g} s when the grader called it."
        elif isinstance(exc, CellTimeoutError):
            reason = (
                f"Your notebook ran past the time limit ({self.isolation.timeout:g} s per cell, "
                f"{self.notebook_timeout:g} s in all)."
            )
        elif isinstance(exc, MemoryError):  # the grader's own bound (mlphys autograde --memory-mb), not the kernel's
            reason = "Checking what your code handed back needed more memory than the grader allows one submission."
        elif self.box.cgroup is not None and self.box.cgroup.oom_killed():
            reason = f"Your notebook used more than the memory limit ({self.memory_limit_mb} MB) and was stopped."
        else:
            reason = "Your notebook's kernel died (it may have run out of memory or processes)."
        return reason + " Test cells from here on get no points."

    def _mark_not_run(self, cell: NotebookNode, reason: str, ran: bool = False) -> None:
        grade_id = self._grade_id(cell)
        if cell.cell_type == "code" and not ran:
            cell.outputs = []
        if is_test_cell(cell) and grade_id in self.view.tests:
            cell.source = self.view.tests[grade_id].visible
            self.verdicts[grade_id] = hidden.Verdict(False, reason)
            if not ran:
                cell.outputs = [_error_output("NotGraded", reason)]
