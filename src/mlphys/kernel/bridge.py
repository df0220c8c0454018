"""Kernel-side half of the grader's calls into a student's notebook.

The grader executes ``serve('<request json>')`` in the student's kernel.  It looks names up in the
notebook's namespace, calls the student's functions with decoded plain-data arguments, and publishes
the encoded result as a display output of a private MIME type.  Everything here runs in the untrusted
kernel: the grader treats what comes back as unverified data and validates it with ``wire.decode``.
"""

from __future__ import annotations

import json
import traceback
from typing import Any

from mlphys.kernel import wire

MIME_TYPE = "text/x-mlphys-result"


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
        args = wire.decode(request["args"], resolve)
        kwargs = wire.decode(request["kwargs"], resolve)
        try:
            value = func(*args, **kwargs)
        except Exception as exc:  # the student's exception is reported to the student
            return {"ok": False, "error": _error(exc)}
        return {"ok": True, "value": wire._encode(value, 0)}
    raise ValueError(f"unknown request {request['op']!r}")


def serve(request_json: str) -> None:
    """Answer one grader request; the reply is published as display data, never printed."""
    from IPython.display import publish_display_data

    try:
        reply = _handle(json.loads(request_json))
    except Exception as exc:
        reply = {"ok": False, "error": _error(exc), "internal": True}
    publish_display_data({MIME_TYPE: json.dumps(reply)})
