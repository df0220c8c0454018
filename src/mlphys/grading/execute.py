"""The autograde execution step: student code in a sandboxed kernel, verdicts in the grader.

:class:`SandboxedExecute` replaces nbgrader's ``Execute`` preprocessor.  For every notebook it

1. copies the submission's regular files into a fresh sandbox work directory;
2. starts an ``ipykernel`` inside the sandbox and runs the notebook's cells in order, but only the
   visible part of each test cell; the hidden part never reaches the kernel;
3. after each test cell, runs that cell's hidden part (taken from the gradebook, not from the
   submission) in this process, where calls to the student's functions go to the kernel as plain data;
4. records one verdict per test cell in ``resources`` for :class:`SaveVerdictGrades`, appends the
   verdict to the cell's outputs and removes the hidden part from the cell, so that neither the
   autograded notebook nor its feedback shows hidden-test source.

A kernel that dies, hangs, floods its output or runs past the notebook's time limit loses the points of
the test cells not yet judged, and nothing else.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import time
import typing as t
from pathlib import Path

from nbclient.exceptions import CellTimeoutError
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Integer, Unicode

from mlphys.grading import aio, hidden, isolated, kernel, sandbox
from mlphys.grading.submission import MISSING, Submission

VERDICTS_KEY = "mlphys_verdicts"
RECORDS_KEY = "mlphys_records"  # plain data that hidden tests keep for later steps (the leaderboard)
_sandbox_problem: dict[str, str | None] = {}


def sandbox_problem() -> str | None:
    """Why no sandbox can be made here (checked once per process), or None."""
    if "bwrap" not in _sandbox_problem:
        _sandbox_problem["bwrap"] = sandbox.bwrap_available()
    return _sandbox_problem["bwrap"]


def _stage_files(source_dir: Path, dest: Path, max_bytes: int, max_files: int) -> list[str]:
    """Copy the regular files of a submission into the sandbox; report what was left out."""
    skipped: list[str] = []
    total = count = 0
    for dirpath, dirnames, filenames in os.walk(source_dir):
        rel_dir = Path(dirpath).relative_to(source_dir)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            src = Path(dirpath, name)
            rel = rel_dir / name
            st = os.lstat(src)
            if not stat.S_ISREG(st.st_mode):
                skipped.append(f"{rel} (not a regular file)")
                continue
            if name.endswith(".ipynb"):
                continue
            if total + st.st_size > max_bytes or count >= max_files:
                skipped.append(f"{rel} (the submission's files are too large or too many)")
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as fin, open(target, "wb") as fout:
                shutil.copyfileobj(fin, fout)
            total += st.st_size
            count += 1
    return skipped


def _solution_sources(nb: NotebookNode) -> dict[str, str]:
    """The student's source of each solution cell, by nbgrader id."""
    sources: dict[str, str] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and isinstance(meta.get("grade_id"), str):
            sources.setdefault(meta["grade_id"], cell.source)
    return sources


def is_test_cell(cell: NotebookNode) -> bool:
    """An autograded test cell: a graded code cell that is not a solution."""
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


def _error_output(ename: str, message: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=message, traceback=[f"{ename}: {message}"])


def _verdict_output(verdict: hidden.Verdict, points: float) -> NotebookNode:
    if verdict.passed:
        unit = "point" if points == 1 else "points"
        return NotebookNode(output_type="stream", name="stdout", text=f"Hidden tests passed ({points:g} {unit}).\n")
    return _error_output("HiddenTestFailed", verdict.message)


class SandboxedExecute(NbGraderPreprocessor):
    """Run a submission in a sandboxed kernel and judge its test cells in the grader."""

    timeout = Integer(60, help="Seconds one cell may run in the student's kernel.").tag(config=True)
    notebook_timeout = Integer(600, help="Seconds the whole notebook may run.").tag(config=True)
    startup_timeout = Integer(60, help="Seconds the sandboxed kernel may take to start.").tag(config=True)
    memory_limit_mb = Integer(4096, help="Memory for the kernel and all it starts (cgroup).").tag(config=True)
    max_processes = Integer(64, help="Processes and threads the kernel may have (cgroup).").tag(config=True)
    max_file_mb = Integer(256, help="Largest file the kernel may write.").tag(config=True)
    disk_mb = Integer(512, help="Size of the kernel's private work directory (memory-backed).").tag(config=True)
    max_output_mb_per_cell = Integer(1, help="Output kept per cell; the rest is dropped.").tag(config=True)
    max_output_mb = Integer(8, help="Output after which the notebook's kernel is stopped.").tag(config=True)
    max_submission_mb = Integer(100, help="Size of the files copied into the sandbox.").tag(config=True)
    allow_unsandboxed = Bool(
        False,
        help=(
            "Run student code without bubblewrap when no sandbox can be made. Dangerous: the student's code "
            "then runs with the grader's rights. Hidden tests still run only in the grader."
        ),
    ).tag(config=True)

    challenge_secret = Unicode(
        "",
        help=(
            "The course's secret from which challenges draw their hidden test images. Keep it out of the "
            "students' reach (an environment variable read in nbgrader_config.py); the same secret gives the "
            "same hidden images, hence the same scores, every time."
        ),
    ).tag(config=True)

    def isolation(self, use_bwrap: bool = True) -> isolated.Isolation:
        """The limits every sandboxed kernel of this grading run gets."""
        limits = sandbox.Limits(
            memory_bytes=self.memory_limit_mb * 2**20,
            address_space_bytes=max(16 * 2**30, 4 * self.memory_limit_mb * 2**20),
            max_processes=self.max_processes,
            max_file_bytes=self.max_file_mb * 2**20,
            disk_bytes=self.disk_mb * 2**20,
        )
        return isolated.Isolation(
            limits=limits,
            use_bwrap=use_bwrap,
            timeout=self.timeout,
            startup_timeout=self.startup_timeout,
            max_output_bytes=self.max_output_mb_per_cell * 1_000_000,
            max_output_bytes_total=self.max_output_mb * 1_000_000,
        )

    def preprocess(self, nb: NotebookNode, resources: dict[str, t.Any]) -> tuple[NotebookNode, dict[str, t.Any]]:
        problem = sandbox_problem()
        if problem and not self.allow_unsandboxed:
            raise sandbox.SandboxUnavailable(
                f"No sandbox for student code: {problem}. Refusing to run student code. To run it anyway, "
                "unsandboxed, set c.SandboxedExecute.allow_unsandboxed = True in nbgrader_config.py."
            )
        if problem:
            self.log.warning("Running student code WITHOUT a sandbox (%s)", problem)
        tests = self._trusted_test_cells(resources)
        verdicts: dict[str, hidden.Verdict] = {}
        resources[VERDICTS_KEY] = verdicts
        records: dict[str, t.Any] = {}
        resources[RECORDS_KEY] = records
        isolation = self.isolation(use_bwrap=problem is None)
        submission_dir = Path(resources.get("metadata", {}).get("path") or ".")

        def stage(dest: Path) -> None:
            for entry in _stage_files(submission_dir, dest, self.max_submission_mb * 2**20, 2000):
                self.log.warning("Not copied into the sandbox: %s", entry)

        with isolated.staged_sandbox(isolation, stage) as box:
            if box.cgroup is None:
                self.log.warning("No cgroup available: memory and process limits are per process only")
            context = dict(
                files=box.submission,
                cells=_solution_sources(nb),
                isolation=isolation,
                secret=self.challenge_secret,
                records=records,
            )
            aio.run_coroutine(self._run_notebook(nb, tests, verdicts, box, context))
        return nb, resources

    def _trusted_test_cells(self, resources: dict[str, t.Any]) -> dict[str, tuple[str, str]]:
        """Visible and hidden source of every test cell, from the gradebook, not the submission."""
        info = resources["nbgrader"]
        tests: dict[str, tuple[str, str]] = {}
        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_notebook(info["notebook"], info["assignment"])
            solution_ids = {c.name for c in notebook.solution_cells}
            for grade_cell in notebook.grade_cells:
                if grade_cell.cell_type != "code" or grade_cell.name in solution_ids:
                    continue
                try:
                    source = gb.find_source_cell(grade_cell.name, info["notebook"], info["assignment"]).source
                except MissingEntry:
                    continue
                tests[grade_cell.name] = hidden.split_test_source(source)
        return tests

    async def _run_notebook(
        self,
        nb: NotebookNode,
        tests: dict[str, tuple[str, str]],
        verdicts: dict[str, hidden.Verdict],
        box: sandbox.Sandbox,
        context: dict[str, t.Any],
    ) -> None:
        client = isolated.sandboxed_client(box, context["isolation"])
        deadline = time.monotonic() + self.notebook_timeout
        loop = asyncio.get_running_loop()
        stopped: str | None = None
        gone: list[str] = []  # set by a grader call that found the kernel dead, hung or flooding

        def time_left() -> float:
            """Seconds the next cell or call may take: the per-cell limit, within the notebook's."""
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CellTimeoutError("notebook time limit")
            return min(self.timeout, remaining)

        async def execute(cell: NotebookNode) -> None:
            client.timeout = int(max(1, time_left()))
            await client.async_execute_cell(cell, 0, store_history=True)

        def transport(request: dict[str, t.Any]) -> t.Any:
            if gone:  # fail fast: hypothesis and loops in hidden tests would otherwise retry a dead kernel
                raise hidden.KernelGone(gone[0])

            async def call() -> t.Any:
                return await kernel.call_kernel(client, request, time_left())

            future = asyncio.run_coroutine_threadsafe(call(), loop)
            try:
                return future.result(self.timeout + 30)
            except Exception as exc:  # timeouts, a dead kernel, floods, protocol errors
                gone.append(self._stop_reason(exc, box, calling=request.get("name")))
                raise hidden.KernelGone(gone[-1]) from None

        reserved: set[str] = set()
        for _, hidden_source in tests.values():
            try:
                reserved |= hidden.bound_names(hidden_source)
            except SyntaxError:
                pass  # reported as that cell's verdict when it runs

        # The submission reads the student's values through the session (bound below, before any block runs).
        submission = Submission(lookup=lambda name: session.value(name, MISSING), **context)
        session = hidden.HiddenTestSession(transport, reserved, {"submission": submission})
        try:
            async with client.async_setup_kernel():
                for cell in nb.cells:
                    if stopped is not None:
                        self._mark_not_run(cell, tests, verdicts, stopped)
                        continue
                    if cell.cell_type != "code":
                        continue
                    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
                    is_test = is_test_cell(cell) and grade_id in tests
                    visible, hidden_source = tests[grade_id] if is_test else (cell.source, "")
                    run_cell = new_code_cell(visible)
                    try:
                        await execute(run_cell)
                    except Exception as exc:  # timeouts, a dead kernel, floods, protocol errors
                        stopped = self._stop_reason(exc, box)
                    cell.outputs = run_cell.outputs
                    cell.execution_count = run_cell.get("execution_count")
                    if is_test:
                        cell.source = visible
                    if stopped is not None:
                        cell.outputs.append(_error_output("GradingStopped", stopped))
                        self._mark_not_run(cell, tests, verdicts, stopped, ran=True)
                        continue
                    if is_test:
                        verdict = await self._judge(session, hidden_source, grade_id)
                        verdicts[grade_id] = verdict
                        cell.outputs.append(_verdict_output(verdict, float(cell.metadata.nbgrader["points"])))
                        if gone:
                            stopped = gone[0]
        except Exception as exc:
            # The kernel failed to start, or to stop cleanly: what was judged stands, the rest scores zero.
            reason = self._stop_reason(exc, box)
            self.log.warning("Kernel problem: %r", exc)
            for cell in nb.cells:
                grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                if grade_id not in verdicts:
                    self._mark_not_run(cell, tests, verdicts, reason)
        finally:
            client.km.context.destroy(linger=0)

    async def _judge(self, session: hidden.HiddenTestSession, hidden_source: str, grade_id: str) -> hidden.Verdict:
        if not hidden_source.strip():
            self.log.error("Test cell %s has no hidden tests; it gives no points", grade_id)
            return hidden.Verdict(False, "This test cell has no hidden tests (an instructor error); no points.")
        return await asyncio.get_running_loop().run_in_executor(None, session.run, hidden_source, grade_id)

    def _stop_reason(self, exc: BaseException, box: sandbox.Sandbox, calling: str | None = None) -> str:
        if isinstance(exc, kernel.OutputFlood):
            reason = str(exc)
        elif isinstance(exc, kernel.CallTimeout):
            what = f"`{calling}`" if calling else "code"
            reason = f"Your {what} did not return within {self.timeout} s when the grader called it."
        elif isinstance(exc, CellTimeoutError):
            reason = (
                f"Your notebook ran past the time limit ({self.timeout} s per cell, {self.notebook_timeout} s in all)."
            )
        elif box.cgroup is not None and box.cgroup.oom_killed():
            reason = f"Your notebook used more than the memory limit ({self.memory_limit_mb} MB) and was stopped."
        else:
            reason = "Your notebook's kernel died (it may have run out of memory or processes)."
        return reason + " Test cells from here on get no points."

    def _mark_not_run(
        self,
        cell: NotebookNode,
        tests: dict[str, tuple[str, str]],
        verdicts: dict[str, hidden.Verdict],
        reason: str,
        ran: bool = False,
    ) -> None:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and not ran:
            cell.outputs = []
        if is_test_cell(cell) and grade_id in tests:
            cell.source = tests[grade_id][0]
            verdicts[grade_id] = hidden.Verdict(False, reason)
            if not ran:
                cell.outputs = [_error_output("NotGraded", reason)]
