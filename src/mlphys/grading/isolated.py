"""Fresh sandboxed kernels: set one up, run a few cells and one grader call in it, throw it away.

The autograde step keeps one kernel for a whole notebook.  Challenge scoring needs more isolation than
that: the encoder and the decoder of an entry each run in a kernel of their own, so that nothing one
of them leaves behind (files, module state, threads) can reach the other.  Both uses share
:func:`staged_sandbox`, which stages the files, creates the cgroup and cleans everything up.
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
from collections.abc import Callable, Iterator
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
    """The fresh kernel did not start, died, hung, flooded or ran out of memory; the message says which."""


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
    with staged_sandbox(isolation) as box:
        try:
            return run_sync(_run_within)(isolation, box, cells, request, deadline)
        except (CellFailed, KernelProblem):
            raise
        except (kernel.CallTimeout, TimeoutError, CellTimeoutError):
            raise KernelTimeout(f"it did not finish within the {isolation.timeout:g} s it had") from None
        except Exception as exc:  # a dead kernel, a flood, a timeout while starting or in a cell
            if box.cgroup is not None and box.cgroup.oom_killed():
                raise KernelProblem(
                    f"it used more than {isolation.limits.memory_bytes // 2**20} MB of memory"
                ) from None
            if isinstance(exc, kernel.OutputFlood):
                raise KernelProblem(str(exc)) from None
            raise KernelProblem(f"its kernel stopped ({type(exc).__name__}: {str(exc)[:200]})") from None


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


async def _run_within(
    isolation: Isolation, box: sandbox.Sandbox, cells: list[str], request: dict[str, t.Any], deadline: float
) -> t.Any:
    # run_sync, not asyncio.run: the same code runs where an event loop is already running (the formgrader).
    return await asyncio.wait_for(_run(isolation, box, cells, request, deadline), max(1.0, deadline - time.monotonic()))


async def _run(
    isolation: Isolation, box: sandbox.Sandbox, cells: list[str], request: dict[str, t.Any], deadline: float
) -> t.Any:
    client = sandboxed_client(box, isolation)
    try:
        with kernel_output(isolation) as streams:
            async with client.async_setup_kernel(**streams):
                for index, source in enumerate(cells):
                    cell = new_code_cell(source)
                    client.timeout = int(max(1, min(isolation.timeout, deadline - time.monotonic())))
                    await client.async_execute_cell(cell, 0, store_history=False)
                    for output in cell.outputs:
                        if output.get("output_type") == "error":
                            ename, evalue = str(output.get("ename", "Error")), str(output.get("evalue", ""))
                            raise CellFailed(index, ename, evalue)
                remaining = max(1.0, min(isolation.timeout, deadline - time.monotonic()))
                return await kernel.call_kernel(client, request, remaining)
    finally:
        close_client(client)
