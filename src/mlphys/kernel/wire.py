"""The only format in which data crosses between the grader and a student's kernel.

Values are plain data: None, bool, int, float, complex, str, lists, tuples, dicts with string keys and
numpy arrays of numeric or boolean dtype.  They travel as JSON; arrays as dtype, shape and base64 of
their bytes.  :func:`encode` runs on both sides.  :func:`decode` runs only in the grader and trusts
nothing: it bounds size and depth, accepts only whitelisted dtypes, checks that every array's bytes
match its shape and builds fresh, exact ``numpy.ndarray`` objects.  Nothing is unpickled, imported or
called.  Objects that are not plain data come back as :class:`Unsupported`, so a hidden test can tell a
student precisely what their function returned.

Before anything is materialised, :func:`loads` measures the text: how deeply it nests and how many
containers, values and strings it holds.  JSON is compact (``[],`` is three bytes, a Python list 56), so
a reply is refused unless the objects it would build fit in a small multiple of its own size
(:data:`GROWTH` times its bytes, or :data:`SMALL_REPLY_BYTES` for any small reply).

Two kinds of names travel instead of objects: a :class:`RemoteRef` names an object in the student's
kernel (one of their functions), and a :class:`CourseFunction` names a function of the course library
(``mlphys.course``), which the kernel imports from there and nowhere else.
"""

from __future__ import annotations

import base64
import importlib
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np

MAX_BYTES = 128 * 2**20
MAX_DEPTH = 32
# The JSON nesting that MAX_DEPTH values need: $tuple and $dict wrap their contents twice, plus an envelope.
MAX_JSON_DEPTH = 2 * MAX_DEPTH + 8
MAX_CONTAINERS = 1_000_000
MAX_ITEMS = 4_000_000
# What decoding a reply may build, per byte of its text (beyond SMALL_REPLY_BYTES for any reply).
GROWTH = 8
SMALL_REPLY_BYTES = 8 * 2**20
# Upper estimates of what one JSON part costs once parsed and decoded (CPython, 64-bit): a list or dict
# with its copy, a value's slots in both, a string object (and its pieces while strings are blanked).
CONTAINER_COST = 200
ITEM_COST = 48
STRING_COST = 128
COURSE_PACKAGE = "mlphys.course"
ALLOWED_DTYPES = frozenset(
    {
        *("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
        *("float16", "float32", "float64", "complex64", "complex128"),
    }
)


class WireError(ValueError):
    """The data handed back by a kernel is not valid plain data.

    Its message says what is wrong in the grader's own words and never quotes the data (a name, a number, a
    position in the text): a refusal may reach the student after the kernel has seen hidden data, and
    anything it quoted would carry that data out.
    """


class Unsupported:
    """Stands for a value of a type that cannot cross the boundary (a class instance, a function...)."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<object of type {self.type_name}>"


class RemoteRef:
    """Names an object that lives in the student's kernel, such as one of their functions."""

    def __init__(self, name: str) -> None:
        self.name = name


_COURSE_NAME = re.compile(r"mlphys\.course(?:\.[a-z_][a-z0-9_]*)*:[A-Za-z][A-Za-z0-9_]*")


class CourseFunction:
    """A function of the course library, named ``"mlphys.course.<module>:<name>"``.

    Calling it calls the course's function (trusted code, in whatever process holds it).  Passed to a
    student's function, it travels as its name and the kernel imports it from ``mlphys.course``, so a
    hidden test can hand the lecture's own sigmoid to a student's ``apply_net``.
    """

    def __init__(self, name: str) -> None:
        if not _COURSE_NAME.fullmatch(name):
            raise ValueError(f"{name!r} does not name a function of the course library (mlphys.course.<module>:<name>)")
        self.name = name
        self.__name__ = self.__qualname__ = name.rpartition(":")[2]

    def __repr__(self) -> str:
        return f"<course function {self.name}>"

    def __eq__(self, other: object) -> bool:
        return type(other) is CourseFunction and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return import_course_function(self.name)(*args, **kwargs)


def import_course_function(name: str) -> Callable[..., Any]:
    """The course library's function ``name``; refuses every name outside ``mlphys.course``."""
    if type(name) is not str or not _COURSE_NAME.fullmatch(name):
        raise WireError(f"{str(name)[:100]!r} is not a function of the course library")
    module_name, _, attribute = name.partition(":")
    module = importlib.import_module(module_name)
    if not (module.__name__ == COURSE_PACKAGE or module.__name__.startswith(COURSE_PACKAGE + ".")):
        raise WireError(f"{name!r} is not a function of the course library")
    func = getattr(module, attribute, None)
    if not callable(func) or isinstance(func, type):
        raise WireError(f"the course library has no function {name!r}")
    return func


def _type_name(value: Any) -> str:
    cls = type(value)
    module = getattr(cls, "__module__", "")
    return cls.__qualname__ if module in ("builtins", "__main__", None) else f"{module}.{cls.__qualname__}"


def _as_array(value: Any) -> np.ndarray | None:
    if isinstance(value, np.ndarray):
        return np.asarray(value)
    if isinstance(value, np.generic):
        return np.asarray(value)
    if type(value).__module__ == "torch" and type(value).__name__ in ("Tensor", "Parameter"):
        return value.detach().cpu().numpy()
    return None


def _encode(value: Any, depth: int, known: dict[int, Any] | None = None) -> Any:
    """Plain data as JSON-ready objects; ``known`` maps id() of objects that travel by name to their marker."""
    if depth > MAX_DEPTH:
        raise WireError("value is nested too deeply")
    if known and id(value) in known:
        return known[id(value)]
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is int:
        return value if abs(value) < 2**63 else {"$bigint": str(value)}
    if type(value) is float:
        return value
    if type(value) is complex:
        return {"$complex": [value.real, value.imag]}
    if type(value) is list:
        return [_encode(v, depth + 1, known) for v in value]
    if type(value) is tuple:
        return {"$tuple": [_encode(v, depth + 1, known) for v in value]}
    if type(value) is dict:
        if not all(type(k) is str for k in value):
            return {"$unsupported": "dict with non-string keys"}
        return {"$dict": {k: _encode(v, depth + 1, known) for k, v in value.items()}}
    if isinstance(value, RemoteRef):
        return {"$ref": value.name}
    if type(value) is CourseFunction:
        return {"$course": value.name}
    array = _as_array(value)
    if array is not None:
        if array.dtype.name not in ALLOWED_DTYPES:
            return {"$unsupported": f"array of dtype {array.dtype}"}
        data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        return {"$nd": [array.dtype.name, list(array.shape), base64.b64encode(data).decode("ascii")]}
    return {"$unsupported": _type_name(value)}


def encode(value: Any) -> str:
    """Serialise plain data to a JSON string; anything else becomes an ``Unsupported`` marker."""
    return json.dumps(_encode(value, 0))


def _decode_array(spec: Any) -> np.ndarray:
    if not (isinstance(spec, list) and len(spec) == 3):
        raise WireError("malformed array")
    dtype_name, shape, data = spec
    if type(dtype_name) is not str or dtype_name not in ALLOWED_DTYPES:
        raise WireError("an array's dtype is not one of the allowed number types")
    if type(shape) is not list or len(shape) > 32 or not all(type(n) is int and n >= 0 for n in shape):
        raise WireError("malformed array shape")
    if type(data) is not str:
        raise WireError("malformed array data")
    raw = base64.b64decode(data.encode("ascii"), validate=True)
    dtype = np.dtype(dtype_name).newbyteorder("<")
    expected = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise WireError("array data does not match its shape")
    return np.frombuffer(raw, dtype=dtype).astype(np.dtype(dtype_name), copy=True).reshape(shape)


Resolver = Callable[[str], Any]


def _decode(obj: Any, depth: int, resolve_ref: Resolver | None = None, resolve_course: Resolver | None = None) -> Any:
    if depth > MAX_DEPTH:
        raise WireError("value is nested too deeply")
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if type(obj) is list:
        return [_decode(v, depth + 1, resolve_ref, resolve_course) for v in obj]
    if type(obj) is dict and len(obj) == 1:
        ((tag, body),) = obj.items()
        if tag == "$nd":
            return _decode_array(body)
        if tag == "$tuple" and type(body) is list:
            return tuple(_decode(v, depth + 1, resolve_ref, resolve_course) for v in body)
        if tag == "$dict" and type(body) is dict:
            return {str(k): _decode(v, depth + 1, resolve_ref, resolve_course) for k, v in body.items()}
        if tag == "$complex" and type(body) is list and len(body) == 2:
            return complex(float(body[0]), float(body[1]))
        if tag == "$bigint" and type(body) is str and len(body) < 4000:
            return int(body)
        if tag == "$unsupported" and type(body) is str:
            return Unsupported(body[:200])
        if tag == "$ref" and type(body) is str and resolve_ref is not None:
            return resolve_ref(body)
        if tag == "$course" and type(body) is str and resolve_course is not None:
            return resolve_course(body)
    raise WireError("unrecognised value")


def decode_obj(obj: Any, resolve_ref: Resolver | None = None, resolve_course: Resolver | None = None) -> Any:
    """Validate an already-parsed JSON value from the other side (see :func:`decode`)."""
    try:
        return _decode(obj, 0, resolve_ref, resolve_course)
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"malformed value ({type(exc).__name__})") from None


# A JSON string literal, escapes included (unrolled, so that long strings such as base64 scan quickly).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")


def measure(text: str) -> None:
    """Refuse JSON text whose parsed form would nest too deeply or outgrow its size; builds no objects.

    Strings are blanked first (a comma in a string is not a value); what remains is counted.  Blanking
    builds about two small string objects per string, so the strings are counted (by their quotes) first.
    """
    budget = max(SMALL_REPLY_BYTES, GROWTH * len(text))
    if STRING_COST * (text.count('"') // 2) > budget:
        raise WireError("the value has too many parts for its size")
    skeleton = _JSON_STRING.sub('""', text)
    containers = skeleton.count("[") + skeleton.count("{")
    items = skeleton.count(",") + skeleton.count(":") + 1
    strings = skeleton.count('""')
    if containers > MAX_CONTAINERS or items > MAX_ITEMS:
        raise WireError("the value has too many parts")
    estimate = CONTAINER_COST * containers + ITEM_COST * items + STRING_COST * strings
    if estimate > budget:
        raise WireError("the value has too many parts for its size")
    brackets = np.frombuffer(_NOT_A_BRACKET.sub("", skeleton).encode("ascii"), dtype=np.uint8)
    if brackets.size:
        steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
        if int(np.cumsum(steps).max()) > MAX_JSON_DEPTH:
            raise WireError("value is nested too deeply")


def loads(text: str | bytes) -> Any:
    """Parse JSON from the other side after bounding its size, nesting and parts (see :func:`measure`).

    The result is still unvalidated JSON; :func:`decode_obj` turns it into plain data.
    """
    if len(text) > MAX_BYTES:
        raise WireError("the value is too large")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("the value is not UTF-8 text") from None
    if type(text) is not str:
        raise WireError("the value is not text")
    measure(text)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise WireError("not valid JSON") from None


def decode(text: str | bytes, resolve_ref: Resolver | None = None, resolve_course: Resolver | None = None) -> Any:
    """Parse and validate data that came from the other side.

    ``resolve_ref`` and ``resolve_course`` are only given on the kernel side, where references name the
    student's objects and the course library's functions; in the grader, such names are refused.
    """
    return decode_obj(loads(text), resolve_ref, resolve_course)
