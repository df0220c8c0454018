"""Fresh sandboxed kernels: set one up, run a few cells and one grader call in it, throw it away.

The autograde step keeps one kernel for a whole notebook.  Challenge scoring needs more isolation than
that: the encoder and the decoder of an entry each run in a kernel of their own, so that nothing one
of them leaves behind (files, module state, threads) can reach the other.  A kernel may also answer a
series of calls (:func:`fresh_session`: a policy stepping through an episode, built once).  Both uses
share :func:`staged_sandbox`, which stages the files, creates the cgroup and cleans everything up.

A kernel is a :class:`LaunchedKernel` (its sandbox and its kernel process) and one :func:`kernel_session` in
it.  :func:`fresh_session` launches the kernel when the session starts; a pool of warm kernels
(:mod:`mlphys.grading.warm_kernels`) launches it ahead, so that the kernel boots before an entry arrives.
Either way a kernel serves exactly one session and is destroyed with its sandbox after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
import typing as t
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError
from nbformat.v4 import new_code_cell, new_notebook

from mlphys.grading import channel, kernel, sandbox
from mlphys.kernel.launch import PRELOAD_VARIABLE


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
    isolation: Isolation,
    stage_files: Callable[[Path], None] | None = None,
    environment: dict[str, str] | None = None,
) -> Iterator[sandbox.Sandbox]:
    """A sandbox with its own staging directory and cgroup, both gone afterwards.

    ``stage_files(dest)`` may copy files into the directory the sandbox's work directory starts from;
    ``environment`` adds variables to the sandbox's own (see :attr:`sandbox.Sandbox.environment`).
    """
    stage = Path(tempfile.mkdtemp(prefix="mlphys-grade-"))
    box = sandbox.Sandbox(
        stage / "submission",
        stage / "run",
        isolation.limits,
        use_bwrap=isolation.use_bwrap,
        gpu=isolation.gpu,
        environment=dict(environment or {}),
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


class LatestReplyClient(kernel.ReadyClient):
    """:class:`~mlphys.grading.kernel.ReadyClient`, with a readiness check that always waits for the answers to
    the request it has just made.

    The check asks for ``kernel_info`` once a second until the kernel answers.  A kernel that boots for more
    than a second (a warm one importing torch; any kernel on a busy machine) then finds several requests queued
    and answers them all at once.  Taking the replies in order, the check looked for the IOPub "idle" of an
    older request while the one just asked had moved on: where the first idles went out before IOPub was
    connected, each round read (and dropped) the idle the next round looked for, and the check went on until
    the session's deadline.  Replies to earlier requests are dropped here, so each round looks for the idle of
    the request it made, which comes after everything the kernel published before it.
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:  # type: ignore[override]
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            msg_id = self.kernel_info()
            reply = await self._reply_to(msg_id, wait=1)
            if reply is not None and await self._idle_after(msg_id, wait=0.2):
                self._handle_kernel_info_reply(reply)
                return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    async def _reply_to(self, msg_id: str, wait: float) -> dict[str, t.Any] | None:
        """The kernel's ``kernel_info_reply`` to request ``msg_id`` within ``wait`` seconds (earlier ones dropped)."""
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            try:
                msg = await self.shell_channel.get_msg(timeout=left)
            except queue.Empty:
                return None
            if msg["msg_type"] == "kernel_info_reply" and msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None


class LaunchedKernel:
    """One sandbox (staging directory, cgroup) and the kernel process in it, for exactly one session.

    The process starts in :meth:`launch` (a warm kernel, launched ahead and booting on its own while it waits)
    or, where nobody launched it, when its session starts (:func:`fresh_session`).  :meth:`destroy` kills the
    kernel with its sandbox and cgroup, whatever state it is in: a kernel is never handed to a second session.
    ``preload`` names modules the kernel imports before it starts (see :mod:`mlphys.kernel.launch`).
    """

    def __init__(
        self,
        isolation: Isolation,
        preload: Sequence[str] = (),
        stage_files: Callable[[Path], None] | None = None,
    ) -> None:
        for name in preload:
            if not all(part.isidentifier() for part in name.split(".")):
                raise ValueError(f"{name!r} is not a module name")
        environment = {PRELOAD_VARIABLE: ",".join(preload)} if preload else {}
        self.isolation = isolation
        self._stack = contextlib.ExitStack()
        self.box = self._stack.enter_context(staged_sandbox(isolation, stage_files, environment))
        self.km = kernel.make_kernel_manager(self.box)
        self.km.client_factory = LatestReplyClient

    async def start(self) -> None:
        """Start the kernel process, with its own output going to the isolation's log; it boots by itself.

        The output file is only handed to the process: it keeps its own copy of the descriptor.
        """
        with kernel_output(self.isolation) as streams:
            await self.km.start_kernel(**streams)

    def launch(self) -> None:
        """Start the kernel process now (milliseconds: the kernel then boots while the caller does other work).

        On this thread's event loop (``run_sync``), as every step of a session is.
        """
        run_sync(self.start)()

    def listening(self) -> bool:
        """Whether the kernel has bound all its sockets (a kernel over ``ipc`` makes a socket file for each).

        A client that connects to a kernel still importing its preloaded modules, before any socket is bound,
        sometimes never gets its first answer; one that connects after the kernel listens always does.
        """
        km = self.km
        if km.transport != "ipc":
            return True
        ports = (km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port)
        return all(port and os.path.exists(f"{km.ip}-{port}") for port in ports)

    def wait_until_listening(self, deadline: float) -> None:
        """Wait (at most until ``deadline``) until the kernel listens, or has died: the session then says which."""
        while time.monotonic() < deadline and self.alive() and not self.listening():
            time.sleep(0.02)

    def alive(self) -> bool:
        """Whether the kernel process was started and has not exited."""
        process = getattr(self.km.provisioner, "process", None)
        return process is not None and process.poll() is None

    def destroy(self) -> None:
        """Kill the kernel and remove its sandbox and cgroup.

        The cgroup's kill reaches everything the kernel started; without a cgroup the process itself is
        killed (bubblewrap's ``--die-with-parent`` and its PID namespace take the rest with it).
        """
        try:
            process = getattr(self.km.provisioner, "process", None)
            if process is not None and process.poll() is None:
                process.kill()
                with contextlib.suppress(Exception):
                    process.wait(timeout=5)
        finally:
            self.km.context.destroy(linger=0)
            self._stack.close()


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

    def __init__(
        self,
        isolation: Isolation,
        box: sandbox.Sandbox,
        deadline: float,
        km: kernel.SandboxedKernelManager | None = None,
    ) -> None:
        self.isolation, self.box, self.deadline = isolation, box, deadline
        self.client = sandboxed_client(box, isolation, km)
        # Calls travel over the direct channel (as in autograde): a request of a few hundred kilobytes (a batch of
        # observations) sent as an execute request costs the kernel ~0.1 s of parsing the code that carries it.
        self.calls = channel.KernelCalls(self.client, box.rundir, box.give_to_student, direct=True)
        self._stack = contextlib.AsyncExitStack()
        self._broken = False

    def _remaining(self) -> float:
        """Seconds the next cell or call may take (whole seconds for nbclient, at least 1; :meth:`_run` bounds
        every step by the deadline itself)."""
        return max(1.0, min(self.isolation.timeout, self.deadline - time.monotonic()))

    def _check_usable(self) -> None:
        if self._broken:
            raise KernelProblem("an earlier call into this kernel failed")
        if self.deadline - time.monotonic() <= 0:
            self._broken = True
            raise KernelTimeout("it did not finish within the time it had")

    def _run(self, step: Callable[[], Awaitable[t.Any]]) -> t.Any:
        """Run one step of the session on this thread's event loop, with the failures of a fresh kernel.

        Past the deadline no step starts, and no step runs beyond it: a kernel that answers each call quickly
        cannot stretch the time it was given by one call after another.
        """
        self._check_usable()

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
        """Start the kernel unless it was launched ahead, wait until it is ready, and run ``cells``."""

        async def setup() -> None:
            streams = self._stack.enter_context(kernel_output(self.isolation))  # used where the kernel starts here
            handlers = _caller_signal_handlers()
            self._stack.callback(_restore_signal_handlers, handlers)  # once nbclient has let go of the kernel
            await self._stack.enter_async_context(self.client.async_setup_kernel(**streams))
            _restore_signal_handlers(handlers)
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
        self._check_usable()
        try:
            return self.calls(request, min(self.isolation.timeout, self.deadline - time.monotonic()))
        except BaseException as exc:
            self._broken = True
            raise _kernel_failure(exc, self.box, self.isolation) from None

    def close(self) -> None:
        async def stop() -> None:
            await self._stack.aclose()

        self.calls.close()
        try:
            run_sync(stop)()
        except Exception:  # the sandbox is destroyed next, whatever state the kernel is in
            pass
        finally:
            close_client(self.client)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _caller_signal_handlers() -> dict[int, t.Any]:
    """The handlers of SIGINT and SIGTERM the caller has set (none outside the main thread, where nbclient sets
    none either)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.getsignal(s) for s in _STOP_SIGNALS if signal.getsignal(s) is not None}


def _restore_signal_handlers(handlers: dict[int, t.Any]) -> None:
    """Give SIGINT and SIGTERM back to the caller's ``handlers``.

    nbclient's ``async_setup_kernel`` takes both signals on the event loop to shut its kernel down, and leaves
    them at their defaults when it is done.  A caller that stops cleanly on SIGTERM (the live service finishes
    the entry it is scoring) would then die on the next one; and the sandbox is destroyed by this module
    anyway, whatever stops the session.
    """
    if not handlers:
        return
    loop = asyncio.get_event_loop()
    for signum, handler in handlers.items():
        loop.remove_signal_handler(signum)
        signal.signal(signum, handler)


@contextlib.contextmanager
def fresh_session(isolation: Isolation, cells: list[str], deadline: float) -> Iterator[FreshSession]:
    """A brand-new sandboxed kernel that has run ``cells``, for several calls; gone (sandbox, cgroup) afterwards.

    Raises :class:`CellFailed` if a cell raised, :class:`KernelTimeout` or :class:`KernelProblem` if the kernel
    did not start, died, hung, flooded or ran out of memory, here or in a later call.
    """
    launched = LaunchedKernel(isolation)
    try:
        with kernel_session(launched, isolation, cells, deadline) as session:
            yield session
    finally:
        launched.destroy()


@contextlib.contextmanager
def kernel_session(
    launched: LaunchedKernel, isolation: Isolation, cells: list[str], deadline: float
) -> Iterator[FreshSession]:
    """The one session of ``launched`` (started here unless it was launched ahead): ``cells`` run, then calls.

    ``isolation`` bounds the session's time and output; the sandbox's own limits are those it was launched
    with.  The caller destroys ``launched`` afterwards.  Raises as :func:`fresh_session`.
    """
    session = FreshSession(isolation, launched.box, deadline, launched.km)
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


def sandboxed_client(
    box: sandbox.Sandbox, isolation: Isolation, km: kernel.SandboxedKernelManager | None = None
) -> kernel.BoundedClient:
    """A notebook client for a kernel in ``box``, with the isolation's time and output bounds.

    ``km`` manages a kernel launched ahead (a warm one); by default a new manager, whose kernel starts in
    ``client.async_setup_kernel()``.  Either way the caller destroys ``client.km.context``.
    nbclient writes each executed cell back into its notebook: the client gets a scratch one, so that
    only the cells handed to ``async_execute_cell`` ever reach the kernel.
    """
    client = kernel.BoundedClient(
        new_notebook(cells=[new_code_cell("")]),
        km=km if km is not None else kernel.make_kernel_manager(box),
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
