"""A Jupyter kernel that runs inside a :class:`~mlphys.grading.sandbox.Sandbox`.

The kernel talks to the grader over ZeroMQ ``ipc`` sockets (Unix sockets in a runtime directory that
both sides see), because the sandbox has no network, not even the host's loopback.
"""

from __future__ import annotations

import json
import os
import sys
import typing as t

import zmq
import zmq.asyncio
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode

from mlphys.grading import bridge, wire
from mlphys.grading.sandbox import Sandbox


class SandboxedKernelManager(AsyncKernelManager):
    """Starts ``ipykernel`` through the sandbox's wrapper instead of the kernelspec's argv."""

    sandbox: Sandbox

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
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
        self.collecting_reply = False

    def output(
        self, outs: list[NotebookNode], msg: dict[str, t.Any], display_id: str | None, cell_index: int
    ) -> NotebookNode | None:
        if self.collecting_reply:
            # A grader call: keep only the latest bridge reply (each message is bounded by ZeroMQ);
            # whatever the student's function prints is dropped and counts against no limit.
            data = msg.get("content", {}).get("data", {})
            if msg.get("msg_type") == "display_data" and bridge.MIME_TYPE in data:
                outs[:] = [NotebookNode(output_type="display_data", data={bridge.MIME_TYPE: data[bridge.MIME_TYPE]})]
            return None
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


def call_code(request: dict[str, t.Any]) -> str:
    """The one line executed in the student's kernel to answer a grader request."""
    payload = json.dumps(json.dumps(request))
    return f"__import__('mlphys.grading.bridge', fromlist=['serve']).serve({payload})"


def reply_from_outputs(outputs: list[NotebookNode]) -> t.Any:
    """The bridge's reply among a call's outputs (the last one, if the student printed look-alikes)."""
    texts = [
        o["data"][bridge.MIME_TYPE]
        for o in outputs
        if o.get("output_type") == "display_data" and bridge.MIME_TYPE in o.get("data", {})
    ]
    if not texts or not isinstance(texts[-1], str):
        return None
    try:
        return json.loads(texts[-1])
    except ValueError:
        return None
