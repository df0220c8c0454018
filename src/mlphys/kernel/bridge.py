"""Kernel-side half of the grader's calls into a student's notebook.

The grader executes ``serve('<request json>')`` in the student's kernel.  It looks names up in the
notebook's namespace, calls the student's functions with decoded plain-data arguments, and publishes
the encoded result as a display output of a private MIME type.  Everything here runs in the untrusted
kernel: the grader treats what comes back as unverified data and validates it with ``wire.decode``.

A call may ask to see its arguments afterwards (``"see_arguments": true``): the reply then carries the
positional arguments as they are after the call, in the same wire format, so the grader can tell whether
the student's function changed the lists or arrays it was given.  Arguments that travelled by name (the
student's functions, the course library's functions) go back under the same name.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
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
    except Exception as exc:
        reply = {"ok": False, "error": _error(exc), "internal": True}
    publish_display_data({MIME_TYPE: json.dumps(reply)})
