"""The grader's end of the direct call channel into a sandboxed kernel (see :mod:`mlphys.kernel.bridge`).

Hidden tests call the student's functions hundreds of times; as Jupyter execute requests each call
costs milliseconds.  Here the grader listens on a Unix socket in the sandbox's run directory (the one
directory both sides see; the sandbox has no network), asks the kernel once, through an ordinary bridge
request, to connect to it, and from then on sends each request as one frame and reads one frame back.

The kernel is the student's, and so is everything it sends.  The grader

- listens and never connects: it never opens a path inside a directory the student can write to
  (which could be a link to some socket of the host);
- takes the first connection that presents the token it sent through the authenticated Jupyter
  channel, and closes the listening socket then, so nothing else can connect later;
- checks every reply frame's sequence number (a reply to anything but the request just sent, a forged
  or a stale one, breaks the channel) and byte count (never more than ``wire.MAX_BYTES``) before it
  reads the reply, and reads it under the call's deadline; the text then goes through ``wire.loads``,
  which measures it before parsing, exactly as the replies of Jupyter calls do;
- discards, after each call, what the kernel published on its Jupyter output channel meanwhile (the
  student's prints during the call), as the Jupyter call path did, so output cannot pile up unread.

A channel that breaks (closed, forged, out of order, oversized) stops grading of that notebook, like a
dead kernel; a timeout is a timeout.  Either hurts only the student whose kernel did it.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import socket
import time
import typing as t
from pathlib import Path

import zmq
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

from mlphys.grading import kernel
from mlphys.kernel import bridge, wire

SOCKET_NAME = "mlphys-channel.sock"
# How long the kernel may take to connect and introduce itself once it has been asked to.
CONNECT_SECONDS = 5.0
# Connections that may present a wrong token before the channel gives up (anything in the sandbox can connect).
MAX_INTRODUCTIONS = 8
# Output messages discarded after one call before the channel gives up on draining (they are bounded each).
MAX_DRAINED_MESSAGES = 10_000


class ChannelBroken(ConnectionError):
    """The kernel's end of the channel closed, or sent something that is not the reply to the request."""


class ChannelClosed(ChannelBroken):
    """The kernel's end of the channel closed (the kernel may have died)."""


class Channel:
    """A direct, framed connection to one kernel's bridge; see the module docstring."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sequence = 0

    # ---- opening ---------------------------------------------------------------------------------

    @classmethod
    def listen(cls, rundir: Path, give_to_student: t.Callable[[Path], None]) -> tuple[socket.socket, Path]:
        """A listening socket in ``rundir`` that the kernel (possibly another user) may connect to."""
        path = rundir / SOCKET_NAME
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            listener.bind(str(path))  # fails where the path is too long for a Unix socket (107 bytes)
            os.chmod(path, 0o600)
            give_to_student(path)
            listener.listen(MAX_INTRODUCTIONS)
        except OSError as exc:
            listener.close()
            raise ChannelBroken(f"the grader cannot listen at {path}: {exc}") from None
        return listener, path

    @classmethod
    def accept(cls, listener: socket.socket, token: str, deadline: float) -> Channel:
        """The first connection that introduces itself with ``token`` before ``deadline``; closes ``listener``."""
        try:
            for _ in range(MAX_INTRODUCTIONS):
                try:
                    listener.settimeout(_remaining(deadline))
                    sock, _ = listener.accept()
                except TimeoutError:
                    break
                channel = cls(sock)
                try:
                    sequence, hello = channel._read_frame(deadline, max_bytes=256)
                except (ChannelBroken, TimeoutError, OSError):
                    sequence, hello = -1, b""
                if sequence == 0 and hmac.compare_digest(hello, token.encode("ascii")):
                    return channel
                channel.close()
        finally:
            listener.close()
        raise ChannelBroken("the kernel did not connect to the grader's channel")

    @classmethod
    def open(
        cls,
        rundir: Path,
        give_to_student: t.Callable[[Path], None],
        ask_kernel: t.Callable[[dict[str, t.Any], float], t.Any],
        deadline: float,
    ) -> Channel:
        """Listen, ask the kernel (through ``ask_kernel(request, timeout)``, a Jupyter call) to connect, accept."""
        listener, path = cls.listen(rundir, give_to_student)
        token = secrets.token_hex(16)
        try:
            ask_kernel({"op": "channel", "path": str(path), "token": token}, _remaining(deadline))
            return cls.accept(listener, token, deadline)
        finally:
            listener.close()
            with contextlib.suppress(OSError):
                path.unlink()

    # ---- calls -----------------------------------------------------------------------------------

    def call(self, request: dict[str, t.Any], timeout: float) -> t.Any:
        """Send one bridge request; its reply as unvalidated JSON (None if it is not JSON within the limits).

        Raises :class:`kernel.CallTimeout` when no complete reply arrives within ``timeout`` seconds and
        :class:`ChannelBroken` (or :class:`ChannelClosed`) when the channel cannot be trusted to go on.
        """
        deadline = time.monotonic() + timeout
        self.sequence += 1
        payload = json.dumps(request).encode("utf-8")
        try:
            self.sock.settimeout(_remaining(deadline))
            self.sock.sendall(bridge.FRAME.pack(self.sequence, len(payload)) + payload)
            sequence, body = self._read_frame(deadline, max_bytes=wire.MAX_BYTES)
        except TimeoutError:
            raise kernel.CallTimeout(request.get("name")) from None
        except (BrokenPipeError, ConnectionResetError):
            raise ChannelClosed("the kernel closed the grader's channel") from None
        if sequence != self.sequence:
            raise ChannelBroken("the kernel answered something other than the grader's request")
        try:
            return wire.loads(body)  # bounded before anything is built (see wire.measure)
        except ValueError:
            return None

    def _read_frame(self, deadline: float, max_bytes: int) -> tuple[int, bytes]:
        sequence, size = bridge.FRAME.unpack(self._read(bridge.FRAME.size, deadline))
        if size > max_bytes:
            raise ChannelBroken(f"the kernel announced a reply of {size} bytes (at most {max_bytes})")
        return sequence, self._read(size, deadline)

    def _read(self, count: int, deadline: float) -> bytes:
        """Exactly ``count`` bytes, as they arrive (nothing is allocated ahead of the data)."""
        parts: list[bytes] = []
        while count > 0:
            self.sock.settimeout(_remaining(deadline))
            data = self.sock.recv(min(count, 4 * 2**20))
            if not data:
                raise ChannelClosed("the kernel closed the grader's channel")
            parts.append(data)
            count -= len(data)
        return b"".join(parts)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class KernelCalls:
    """Grader calls into one sandboxed kernel: over the direct channel, opened at the first call, or as
    Jupyter execute requests where ``direct`` is off or the kernel never connects to the channel.

    ``calls(request, timeout)`` returns the bridge's unvalidated reply; it raises what a call can end
    in (:class:`kernel.CallTimeout`, :class:`ChannelBroken`, a dead kernel's errors), after which the
    caller makes no further calls.  Any grading unit with a running kernel client can use it.
    """

    def __init__(
        self, client: NotebookClient, rundir: Path, give_to_student: t.Callable[[Path], None], direct: bool
    ) -> None:
        self.client, self.rundir, self.give_to_student = client, rundir, give_to_student
        self.direct = direct
        self.channel: Channel | None = None

    def jupyter(self, request: dict[str, t.Any], timeout: float) -> t.Any:
        return run_sync(kernel.call_kernel)(self.client, request, timeout)

    def __call__(self, request: dict[str, t.Any], timeout: float) -> t.Any:
        if self.direct and self.channel is None:
            # Opening gets a budget of its own (at most CONNECT_SECONDS, once per kernel), so that a kernel
            # that never connects still has the whole ``timeout`` for the call itself, as over Jupyter.
            opening = time.monotonic() + min(timeout, CONNECT_SECONDS)
            try:
                self.channel = Channel.open(self.rundir, self.give_to_student, self.jupyter, opening)
            except ChannelBroken:  # e.g. the student's code replaced the bridge: graded as before the channel
                self.direct = False
        if self.channel is None:
            return self.jupyter(request, timeout)
        deadline = time.monotonic() + timeout
        reply = self.channel.call(request, timeout)
        assert self.client.kc is not None
        discard_output(self.client.kc.iopub_channel.socket, deadline)
        return reply

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()


def discard_output(iopub: zmq.Socket, deadline: float, limit: int = MAX_DRAINED_MESSAGES) -> None:
    """Drop what waits on a kernel client's output socket: the student's output between cells is nobody's.

    Without this, a function that prints on every call would pile messages up in the grader until the
    next cell.  Each message is bounded by the context's ``MAXMSGSIZE``; at most ``limit`` are dropped,
    and none after ``deadline`` (``time.monotonic()``), so a kernel that never stops printing costs only
    its own time.
    """
    for _ in range(limit):
        if not iopub.getsockopt(zmq.EVENTS) & zmq.POLLIN or time.monotonic() > deadline:
            return
        try:
            frames = iopub.recv_multipart(flags=zmq.NOBLOCK)
            if hasattr(frames, "result"):  # a zmq.asyncio socket answers with a finished future
                frames.result()
        except zmq.Again:
            return


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("deadline passed")
    return remaining
