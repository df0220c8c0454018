"""Kernel-side half of the grader's calls into a student's notebook.

The grader executes ``serve('<request json>')`` in the student's kernel.  It looks names up in the
notebook's namespace, calls the student's functions with decoded plain-data arguments, and publishes
the encoded result as a display output of a private MIME type.  Everything here runs in the untrusted
kernel: the grader treats what comes back as unverified data and validates it with ``wire.decode``.

A call may ask to see its arguments afterwards (``"see_arguments": true``): the reply then carries the
positional arguments as they are after the call, in the same wire format, so the grader can tell whether
the student's function changed the lists or arrays it was given.  Arguments that travelled by name (the
student's functions, the course library's functions) go back under the same name.

The direct call channel.  One Jupyter execute request per call costs milliseconds, and property-based
hidden tests make hundreds of calls.  So the grader's first call asks the kernel (``{"op": "channel"}``,
through ``serve``) to connect to a Unix socket the grader listens on, in the run directory both sides
see; from then on requests and replies travel over that socket as frames (:data:`FRAME`: a sequence
number and a byte count, then that many bytes of JSON).  The kernel answers from its own event loop
(``add_reader``), in the main thread and only while no cell runs, exactly where an execute request
would have run the call.  The grader validates what comes back exactly as it validates ``serve``'s
replies; nothing here is trusted by it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import traceback
from collections.abc import Callable
from typing import Any

from mlphys.kernel import wire

MIME_TYPE = "text/x-mlphys-result"
# One frame on the direct channel: sequence number and payload bytes (big-endian), then the payload.
FRAME = struct.Struct(">QQ")


def _user_namespace() -> dict[str, Any]:
    from IPython import get_ipython

    shell = get_ipython()
    return shell.user_ns if shell is not None else {}


def _describe(ns: dict[str, Any], names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name not in ns:
            out[name] = {"kind": "missing"}
        elif callable(ns[name]):
            out[name] = {"kind": "function"}
        else:
            out[name] = {"kind": "value", "value": wire._encode(ns[name], 0)}
    return out


def _error(exc: BaseException) -> dict[str, Any]:
    # Skip this module's own frame: the student needs to see only their code.
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None)
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": "".join(tb)[-6000:]}


def _handle(request: dict[str, Any]) -> dict[str, Any]:
    if request["op"] == "channel":
        open_channel(request["path"], request["token"])
        return {"ok": True}
    return _handle_in(_user_namespace(), request)


def _handle_in(ns: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    def resolve(name: str) -> Any:
        if name not in ns:
            raise NameError(f"name {name!r} is not defined")
        return ns[name]

    if request["op"] == "describe":
        return {"ok": True, "names": _describe(ns, request["names"])}
    if request["op"] == "call":
        func = resolve(request["name"])
        # What arrived by name goes back by name when the arguments are shown after the call.
        by_name: dict[int, Any] = {}

        def named(marker: str, resolver: Callable[[str], Any]) -> Callable[[str], Any]:
            def resolve_named(name: str) -> Any:
                obj = resolver(name)
                by_name[id(obj)] = {marker: name}
                return obj

            return resolve_named

        ref, course = named("$ref", resolve), named("$course", wire.import_course_function)
        args = wire.decode(request["args"], ref, course)
        kwargs = wire.decode(request["kwargs"], ref, course)
        try:
            value = func(*args, **kwargs)
        except Exception as exc:  # the student's exception is reported to the student
            return {"ok": False, "error": _error(exc)}
        reply = {"ok": True, "value": wire._encode(value, 0)}
        if request.get("see_arguments"):
            reply["args_after"] = wire._encode(args, 0, by_name)
        return reply
    raise ValueError(f"unknown request {request['op']!r}")


def serve(request_json: str) -> None:
    """Answer one grader request; the reply is published as display data, never printed."""
    from IPython.display import publish_display_data

    try:
        reply = _handle(json.loads(request_json))
    except BaseException as exc:  # the student's SystemExit too: the grader decides what it costs
        reply = {"ok": False, "error": _error(exc), "internal": True}
    publish_display_data({MIME_TYPE: json.dumps(reply)})


def _reply_bytes(reply: dict[str, Any]) -> bytes:
    payload = json.dumps(reply).encode("utf-8")
    if len(payload) > wire.MAX_BYTES:
        # The grader would refuse the frame and stop grading; tell the student what happened instead.
        too_large = ValueError(
            f"the value is too large to hand to the grader ({len(payload) // 2**20} MB as data; "
            f"at most {wire.MAX_BYTES // 2**20} MB)"
        )
        payload = json.dumps({"ok": False, "error": _error(too_large)}).encode("utf-8")
    return payload


class _Channel:
    """The kernel's end of the direct channel: reads one request frame, answers it, in the main thread."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock, self.loop = sock, loop

    def _read(self, count: int) -> bytes | None:
        parts: list[bytes] = []
        while count > 0:
            data = self.sock.recv(min(count, 2**20))
            if not data:
                return None
            parts.append(data)
            count -= len(data)
        return b"".join(parts)

    def on_readable(self) -> None:
        try:
            header = self._read(FRAME.size)
            if header is None:
                self.close()
                return
            sequence, size = FRAME.unpack(header)
            body = self._read(size)
            if body is None:
                self.close()
                return
            try:
                reply = _handle(json.loads(body))
            except BaseException as exc:  # the student's SystemExit too: the grader, not the kernel, stops
                reply = {"ok": False, "error": _error(exc), "internal": True}
            payload = _reply_bytes(reply)
            self.sock.sendall(FRAME.pack(sequence, len(payload)) + payload)
        except OSError:
            self.close()

    def close(self) -> None:
        try:
            self.loop.remove_reader(self.sock.fileno())
        except (ValueError, OSError):
            pass
        self.sock.close()


def open_channel(path: str, token: str) -> None:
    """Connect to the grader's channel socket at ``path``, introduce this kernel with ``token``, and answer
    the requests that arrive there from the kernel's event loop."""
    loop = asyncio.get_running_loop()  # the kernel's own (tornado on asyncio), running this execute request
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    hello = token.encode("ascii")
    sock.sendall(FRAME.pack(0, len(hello)) + hello)
    loop.add_reader(sock.fileno(), _Channel(sock, loop).on_readable)
