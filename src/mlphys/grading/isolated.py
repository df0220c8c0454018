"""Fresh sandboxed kernels: set one up, run a few cells and one grader call in it, throw it away.

The autograde step keeps one kernel for a whole notebook.  Challenge scoring needs more isolation than
that: the encoder and the decoder of an entry each run in a kernel of their own, so that nothing one
of them leaves behind (files, module state, threads) can reach the other.  A kernel may also answer a
series of calls (:func:`fresh_session`: a policy stepping through an episode, built once).  Both uses
share :func:`staged_sandbox`, which stages the files, creates the cgroup and cleans everything up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
import typing as t
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError
from nbformat.v4 import new_code_cell, new_notebook

from mlphys.grading import kernel, sandbox


@dataclasses.dataclass(frozen=True)
class Isolation:
    """How student code is run: its limits, and whether bubblewrap is used."""

    limits: sandbox.Limits = dataclasses.field(default_factory=sandbox.Limits)
    use_bwrap: bool = True
    timeout: float = 60  # seconds per cell or grader call
    startup_timeout: float = 60
    max_output_bytes: int = 1_000_000  # per cell; the rest is dropped
    max_output_bytes_total: int = 8_000_000  # after which the kernel is stopped
    kernel_log: Path | None = None  # where the kernels' own output (banners, warnings, crashes) goes
    gpu: bool = False  # hand the host's GPUs to the sandbox


@contextlib.contextmanager
def kernel_output(isolation: Isolation) -> Iterator[dict[str, t.Any]]:
    """Launch arguments that send a kernel's own stdout and stderr to the isolation's log file.

    Without one they would land in the instructor's terminal: ipykernel's banner and warnings, once per
    notebook.  The student's prints travel as messages and are not affected.
    """
    if isolation.kernel_log is None:
        with open(os.devnull, "wb") as nowhere:
            yield {"stdout": nowhere, "stderr": nowhere}
        return
    isolation.kernel_log.parent.mkdir(parents=True, exist_ok=True)
    with open(isolation.kernel_log, "ab") as log:
        yield {"stdout": log, "stderr": log}


@contextlib.contextmanager
def staged_sandbox(
    isolation: Isolation, stage_files: Callable[[Path], None] | None = None
) -> Iterator[sandbox.Sandbox]:
    """A sandbox with its own staging directory and cgroup, both gone afterwards.

    ``stage_files(dest)`` may copy files into the directory the sandbox's work directory starts from.
    """
    stage = Path(tempfile.mkdtemp(prefix="mlphys-grade-"))
    box = sandbox.Sandbox(
        stage / "submission", stage / "run", isolation.limits, use_bwrap=isolation.use_bwrap, gpu=isolation.gpu
    )
    try:
        box.submission.mkdir()
        box.rundir.mkdir()
        box.give_to_student(box.rundir)  # the kernel creates its sockets there
        os.chmod(stage, 0o755)
        if stage_files is not None:
            stage_files(box.submission)
        box.cgroup = sandbox.CGroup.create(isolation.limits)
        yield box
    finally:
        if box.cgroup is not None:
            box.cgroup.destroy()
        shutil.rmtree(stage, ignore_errors=True)


class CellFailed(Exception):
    """A setup cell raised in the fresh kernel."""

    def __init__(self, index: int, ename: str, evalue: str) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.index, self.ename, self.evalue = index, ename, evalue


class KernelProblem(Exception):
    """The fresh kernel did not start, died, hung, flooded or ran out of memory; the message says which.

    The message is the grader's own words; ``detail`` (an exception's text, say) may hold words that came from
    the kernel and is shown only where the kernel has seen no hidden data.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class KernelTimeout(KernelProblem):
    """The fresh kernel did not finish its cells and the call within the time it had."""


def run_fresh(
    isolation: Isolation, cells: list[str], request: dict[str, t.Any], deadline: float | None = None
) -> t.Any:
    """Run ``cells`` in a brand-new sandboxed kernel, then answer one bridge ``request``; return the raw reply.

    Everything, the kernel's start included, must be done by ``deadline`` (``time.monotonic()``; default:
    the per-cell timeout for each cell and the call).  The reply is unvalidated data from an untrusted
    process; callers decode it with ``wire``.
    """
    if deadline is None:
        deadline = time.monotonic() + isolation.startup_timeout + isolation.timeout * (len(cells) + 1)
    with fresh_session(isolation, cells, deadline) as session:
        return session.call(request)


class FreshSession:
    """One brand-new sandboxed kernel that answers a series of bridge requests, all by one deadline.

    Made by :func:`fresh_session`, which runs the setup cells first and throws the sandbox away at the
    end.  Each call is bounded by the per-call timeout and by what is left until the deadline; a call
    that fails in any way ends the session (the kernel may be stuck in the student's code).
    """

    def __init__(self, isolation: Isolation, box: sandbox.Sandbox, deadline: float) -> None:
        self.isolation, self.box, self.deadline = isolation, box, deadline
        self.client = sandboxed_client(box, isolation)
        self._stack = contextlib.AsyncExitStack()
        self._broken = False

    def _remaining(self) -> float:
        """Seconds the next cell or call may take (whole seconds for nbclient, at least 1; :meth:`_run` bounds
        every step by the deadline itself)."""
        return max(1.0, min(self.isolation.timeout, self.deadline - time.monotonic()))

    def _run(self, step: Callable[[], Awaitable[t.Any]]) -> t.Any:
        """Run one step of the session on this thread's event loop, with the failures of a fresh kernel.

        Past the deadline no step starts, and no step runs beyond it: a kernel that answers each call quickly
        cannot stretch the time it was given by one call after another.
        """
        if self._broken:
            raise KernelProblem("an earlier call into this kernel failed")
        if self.deadline - time.monotonic() <= 0:
            self._broken = True
            raise KernelTimeout("it did not finish within the time it had")

        async def bounded() -> t.Any:
            return await asyncio.wait_for(step(), self.deadline - time.monotonic())

        try:
            # run_sync, not asyncio.run: the same code runs where an event loop is already running (the
            # formgrader), and successive steps share one loop, which the kernel's channels are bound to.
            return run_sync(bounded)()
        except BaseException as exc:
            self._broken = True
            raise _kernel_failure(exc, self.box, self.isolation) from None

    def start(self, cells: list[str]) -> None:
        async def setup() -> None:
            streams = self._stack.enter_context(kernel_output(self.isolation))
            await self._stack.enter_async_context(self.client.async_setup_kernel(**streams))
            for index, source in enumerate(cells):
                cell = new_code_cell(source)
                self.client.timeout = int(self._remaining())
                await self.client.async_execute_cell(cell, 0, store_history=False)
                for output in cell.outputs:
                    if output.get("output_type") == "error":
                        ename, evalue = str(output.get("ename", "Error")), str(output.get("evalue", ""))
                        raise CellFailed(index, ename, evalue)

        self._run(setup)

    def call(self, request: dict[str, t.Any]) -> t.Any:
        """Answer one bridge ``request`` in this kernel; the raw, unvalidated reply."""
        return self._run(lambda: kernel.call_kernel(self.client, request, self._remaining()))

    def close(self) -> None:
        async def stop() -> None:
            await self._stack.aclose()

        try:
            run_sync(stop)()
        except Exception:  # the sandbox is destroyed next, whatever state the kernel is in
            pass
        finally:
            close_client(self.client)


@contextlib.contextmanager
def fresh_session(isolation: Isolation, cells: list[str], deadline: float) -> Iterator[FreshSession]:
    """A brand-new sandboxed kernel that has run ``cells``, for several calls; gone (sandbox, cgroup) afterwards.

    Raises :class:`CellFailed` if a cell raised, :class:`KernelTimeout` or :class:`KernelProblem` if the kernel
    did not start, died, hung, flooded or ran out of memory, here or in a later call.
    """
    with staged_sandbox(isolation) as box:
        session = FreshSession(isolation, box, deadline)
        try:
            session.start(cells)
            yield session
        finally:
            session.close()


def _kernel_failure(exc: BaseException, box: sandbox.Sandbox, isolation: Isolation) -> BaseException:
    """The exception a failed step of a fresh kernel raises: CellFailed, KernelTimeout or KernelProblem."""
    if isinstance(exc, CellFailed | KernelProblem) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, kernel.CallTimeout | TimeoutError | CellTimeoutError):
        return KernelTimeout(f"it did not finish within the {isolation.timeout:g} s it had")
    if box.cgroup is not None and box.cgroup.oom_killed():
        return KernelProblem(f"it used more than {isolation.limits.memory_bytes // 2**20} MB of memory")
    if isinstance(exc, kernel.OutputFlood):
        return KernelProblem(str(exc))
    # a dead kernel, a flood, a failure while starting
    return KernelProblem("its kernel stopped", detail=f"{type(exc).__name__}: {str(exc)[:200]}")


def sandboxed_client(box: sandbox.Sandbox, isolation: Isolation) -> kernel.BoundedClient:
    """A notebook client for a new kernel in ``box``, with the isolation's time and output bounds.

    The kernel starts in ``client.async_setup_kernel()``; the caller destroys ``client.km.context``.
    nbclient writes each executed cell back into its notebook: the client gets a scratch one, so that
    only the cells handed to ``async_execute_cell`` ever reach the kernel.
    """
    client = kernel.BoundedClient(
        new_notebook(cells=[new_code_cell("")]),
        km=kernel.make_kernel_manager(box),
        timeout=int(isolation.timeout),
        startup_timeout=int(isolation.startup_timeout),
        allow_errors=True,
        interrupt_on_timeout=False,
        raise_on_iopub_timeout=True,
        iopub_timeout=10,
        record_timing=False,
    )
    client.max_output_bytes_per_cell = isolation.max_output_bytes
    client.max_output_bytes_total = isolation.max_output_bytes_total
    client.shutdown_kernel = "immediate"
    return client


def close_client(client: kernel.BoundedClient) -> None:
    """Stop a sandboxed kernel's client and its ZeroMQ contexts (the kernel itself dies with its sandbox).

    nbclient leaves both to garbage collection when the caller owns the kernel manager, which then warns
    "Could not destroy zmq context" into the instructor's terminal.
    """
    if client.kc is not None:
        client.kc.stop_channels()
        client.kc.context.destroy(linger=0)
    client.km.context.destroy(linger=0)
