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
import time
import typing as t
from pathlib import Path

import zmq
import zmq.asyncio
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode
from traitlets import DottedObjectName, Type

from mlphys.grading.sandbox import Sandbox
from mlphys.kernel import bridge, launch, wire


class ReadyClient(AsyncKernelClient):
    """An asynchronous kernel client whose readiness check ends the moment the kernel is ready.

    jupyter_client's ``wait_for_ready`` asks for ``kernel_info``, takes the reply, waits for any IOPub
    message (0.2 s at most; none means IOPub is not connected yet, and it asks again), and then always waits
    0.2 s more for IOPub messages that a new kernel does not send: a fifth of a second idle for every
    notebook graded.  This one makes the same handshake and stops at the kernel's "idle" status for the
    answered request, which comes after everything the kernel published before it.  A kernel that greets a new
    IOPub subscriber (``iopub_welcome``, ipykernel 7) may have published that status before the greeting: then
    it asks again at once rather than wait.
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:  # type: ignore[override]
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except queue.Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                if await self._idle_after(reply["parent_header"].get("msg_id"), wait=0.2):
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    async def _idle_after(self, msg_id: str | None, wait: float) -> bool:
        """Whether IOPub brings the kernel's "idle" status for request ``msg_id`` within ``wait`` seconds
        (IOPub is then connected, and read up to it); False at once on a greeting (see the class)."""
        end = time.monotonic() + wait
        while (left := end - time.monotonic()) > 0:
            try:
                msg = await self.iopub_channel.get_msg(timeout=left)
            except queue.Empty:
                return False
            if msg["msg_type"] == "iopub_welcome":
                return False
            if (
                msg["msg_type"] == "status"
                and msg["content"].get("execution_state") == "idle"
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                return True
        return False


class SandboxedKernelManager(AsyncKernelManager):
    """Starts ``ipykernel`` through the sandbox's wrapper instead of the kernelspec's argv."""

    sandbox: Sandbox
    client_class = DottedObjectName("mlphys.grading.kernel.ReadyClient")
    client_factory = Type(ReadyClient, klass=AsyncKernelClient)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        # jupyter_client wrote the connection file (key included) readable by the grader only.
        self.sandbox.give_to_student(Path(self.connection_file))
        # The launcher runs by its path, not with -m: the student's files (the working directory) are then not on
        # sys.path while the kernel starts, so no file of theirs (an ipykernel_launcher.py, an ipykernel/) replaces it.
        argv = [
            sys.executable,
            launch.__file__,
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
        if self._continues_stream(outs, msg):
            outs[-1]["text"] += msg["content"]["text"]
            return None
        return super().output(outs, msg, display_id, cell_index)

    def _continues_stream(self, outs: list[NotebookNode], msg: dict[str, t.Any]) -> bool:
        """Whether ``msg`` is more text of the stream the cell's last output is (stdout after stdout).

        ipykernel sends what a cell prints on a timer, so one ``print`` may arrive as one message or as two (its
        text, then its newline), by timing alone.  Merged as Jupyter shows them, the autograded notebook of a
        submission is the same in every run.
        """
        content = msg.get("content")
        return (
            msg["msg_type"] == "stream"
            and bool(outs)
            and not self.clear_before_next_output
            and not self.output_hook_stack[msg["parent_header"].get("msg_id")]
            and isinstance(content, dict)
            and isinstance(content.get("text"), str)
            and outs[-1].get("output_type") == "stream"
            and outs[-1].get("name") == content.get("name")
            and isinstance(outs[-1].get("text"), str)
        )


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
