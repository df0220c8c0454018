"""A Jupyter kernel that runs inside a :class:`~mlphys.grading.sandbox.Sandbox`.

The kernel talks to the grader over ZeroMQ ``ipc`` sockets (Unix sockets in a runtime directory that
both sides see), because the sandbox has no network, not even the host's loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import sys
import typing as t
from pathlib import Path

import zmq
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode

from mlphys.grading.sandbox import Sandbox
from mlphys.kernel import bridge, wire


class SandboxedKernelManager(AsyncKernelManager):
    """Starts ``ipykernel`` through the sandbox's wrapper instead of the kernelspec's argv."""

    sandbox: Sandbox

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        # jupyter_client wrote the connection file (key included) readable by the grader only.
        self.sandbox.give_to_student(Path(self.connection_file))
        argv = [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            os.path.realpath(self.connection_file),
            "--HistoryManager.hist_file=:memory:",
        ]
        return self.sandbox.wrap(argv)


# ZeroMQ drops any single message larger than this (and the connection with it), so a kernel cannot
# make the grader buffer gigabytes before the output limits even see the message.
MAX_MESSAGE_BYTES = wire.MAX_BYTES + 2**20


def make_kernel_manager(sandbox: Sandbox) -> SandboxedKernelManager:
    """A kernel manager for ``sandbox``; the caller destroys ``km.context`` when done."""
    context = zmq.asyncio.Context()
    context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    km = SandboxedKernelManager(
        kernel_name="python3", transport="ipc", ip=str(sandbox.rundir / "kernel"), context=context
    )
    km.connection_file = str(sandbox.rundir / "kernel.json")
    km.sandbox = sandbox
    return km


class OutputFlood(Exception):
    """The notebook printed more than the grader is willing to keep."""


class BoundedClient(NotebookClient):
    """A notebook client that keeps at most a bounded amount of output from an untrusted kernel."""

    max_output_bytes_per_cell: int = 1_000_000
    max_output_bytes_total: int = 8_000_000

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._cell_bytes: dict[str, int] = {}
        self._total_bytes = 0
        self._truncated: set[str] = set()

    def process_message(self, msg: dict[str, t.Any], cell: NotebookNode, cell_index: int) -> NotebookNode | None:
        content = msg.get("content")
        if isinstance(content, dict) and "execution_count" in content:
            # The kernel is the student's: a count that is not a sane integer would make nbformat refuse the
            # output (and the notebook) and stop grading as if the kernel had died.
            count = content["execution_count"]
            content["execution_count"] = count if type(count) is int and 0 <= count <= 10**9 else None
        return super().process_message(msg, cell, cell_index)

    def output(
        self, outs: list[NotebookNode], msg: dict[str, t.Any], display_id: str | None, cell_index: int
    ) -> NotebookNode | None:
        size = len(json.dumps(msg.get("content", {}), default=str))
        parent = msg["parent_header"].get("msg_id", "")
        self._total_bytes += size
        if self._total_bytes > self.max_output_bytes_total:
            raise OutputFlood(
                f"Your notebook printed more than {self.max_output_bytes_total // 1_000_000} MB of output; "
                "grading stopped here."
            )
        used = self._cell_bytes.get(parent, 0) + size
        self._cell_bytes[parent] = used
        if used > self.max_output_bytes_per_cell:
            if parent not in self._truncated:
                self._truncated.add(parent)
                outs.append(
                    NotebookNode(
                        output_type="stream",
                        name="stdout",
                        text=f"\n[output truncated by the grader after {self.max_output_bytes_per_cell} bytes]\n",
                    )
                )
            return None
        return super().output(outs, msg, display_id, cell_index)


class CallTimeout(TimeoutError):
    """A grader call into the kernel got no complete answer in time."""


class KernelDied(RuntimeError):
    """The kernel process is gone."""


async def call_kernel(client: NotebookClient, request: dict[str, t.Any], timeout: float) -> t.Any:
    """Send one bridge request and return its (unvalidated) reply, straight over the kernel channels.

    Hidden tests make hundreds of these calls, so this skips nbclient's per-cell machinery: it sends
    an execute request, keeps only the bridge's reply among the request's iopub messages (whatever
    the student's code prints is dropped; each message is bounded by ZeroMQ) and returns at the
    kernel's "idle" for it.  A dead kernel is noticed within a second.
    """
    kc, km = client.kc, client.km
    assert kc is not None and km is not None
    msg_id = kc.execute(call_code(request), store_history=False, allow_stdin=False, stop_on_error=False)
    deadline = asyncio.get_running_loop().time() + timeout
    reply_text: t.Any = None
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise CallTimeout(request.get("name"))
        try:
            msg = await kc.iopub_channel.get_msg(timeout=min(1.0, remaining))
        except queue.Empty:
            if not await km.is_alive():
                raise KernelDied("the kernel died") from None
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        content = msg["content"]
        if msg["msg_type"] == "display_data" and bridge.MIME_TYPE in content.get("data", {}):
            reply_text = content["data"][bridge.MIME_TYPE]
        elif msg["msg_type"] == "status" and content.get("execution_state") == "idle":
            break
    if not isinstance(reply_text, str):
        return None
    try:
        return wire.loads(reply_text)  # bounded before anything is built (see wire.measure)
    except ValueError:
        return None


def call_code(request: dict[str, t.Any]) -> str:
    """The one line executed in the student's kernel to answer a grader request."""
    payload = json.dumps(json.dumps(request))
    return f"__import__('mlphys.kernel.bridge', fromlist=['serve']).serve({payload})"
