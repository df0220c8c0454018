"""The only format in which data crosses between the grader and a student's kernel.

Values are plain data: None, bool, int, float, complex, str, lists, tuples, dicts with string keys and
numpy arrays of numeric or boolean dtype.  They travel as JSON; arrays as dtype, shape and base64 of
their bytes.  :func:`encode` runs on both sides.  :func:`decode` runs only in the grader and trusts
nothing: it bounds size and depth, accepts only whitelisted dtypes, checks that every array's bytes
match its shape and builds fresh, exact ``numpy.ndarray`` objects.  Nothing is unpickled, imported or
called.  Objects that are not plain data come back as :class:`Unsupported`, so a hidden test can tell a
student precisely what their function returned.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import numpy as np

MAX_BYTES = 128 * 2**20
MAX_DEPTH = 32
ALLOWED_DTYPES = frozenset(
    {
        *("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"),
        *("float16", "float32", "float64", "complex64", "complex128"),
    }
)


class WireError(ValueError):
    """The data handed back by a kernel is not valid plain data."""


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


def _encode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError("value is nested too deeply")
    if value is None or type(value) in (bool, str):
        return value
    if type(value) is int:
        return value if abs(value) < 2**63 else {"$bigint": str(value)}
    if type(value) is float:
        return value
    if type(value) is complex:
        return {"$complex": [value.real, value.imag]}
    if type(value) is list:
        return [_encode(v, depth + 1) for v in value]
    if type(value) is tuple:
        return {"$tuple": [_encode(v, depth + 1) for v in value]}
    if type(value) is dict:
        if not all(type(k) is str for k in value):
            return {"$unsupported": "dict with non-string keys"}
        return {"$dict": {k: _encode(v, depth + 1) for k, v in value.items()}}
    if isinstance(value, RemoteRef):
        return {"$ref": value.name}
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
        raise WireError(f"array dtype {dtype_name!r} is not allowed")
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


def _decode(obj: Any, depth: int, resolve_ref: Callable[[str], Any] | None = None) -> Any:
    if depth > MAX_DEPTH:
        raise WireError("value is nested too deeply")
    if obj is None or type(obj) in (bool, int, float, str):
        return obj
    if type(obj) is list:
        return [_decode(v, depth + 1, resolve_ref) for v in obj]
    if type(obj) is dict and len(obj) == 1:
        ((tag, body),) = obj.items()
        if tag == "$nd":
            return _decode_array(body)
        if tag == "$tuple" and type(body) is list:
            return tuple(_decode(v, depth + 1, resolve_ref) for v in body)
        if tag == "$dict" and type(body) is dict:
            return {str(k): _decode(v, depth + 1, resolve_ref) for k, v in body.items()}
        if tag == "$complex" and type(body) is list and len(body) == 2:
            return complex(float(body[0]), float(body[1]))
        if tag == "$bigint" and type(body) is str and len(body) < 4000:
            return int(body)
        if tag == "$unsupported" and type(body) is str:
            return Unsupported(body[:200])
        if tag == "$ref" and type(body) is str and resolve_ref is not None:
            return resolve_ref(body)
    raise WireError("unrecognised value")


def decode_obj(obj: Any, resolve_ref: Callable[[str], Any] | None = None) -> Any:
    """Validate an already-parsed JSON value from the other side (see :func:`decode`)."""
    try:
        return _decode(obj, 0, resolve_ref)
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(str(exc)) from None


def decode(text: str | bytes, resolve_ref: Callable[[str], Any] | None = None) -> Any:
    """Parse and validate data that came from the other side.

    ``resolve_ref`` is only given on the kernel side, where references name the student's objects.
    """
    if len(text) > MAX_BYTES:
        raise WireError("the value is too large")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"not valid JSON: {exc}") from None
    return decode_obj(obj, resolve_ref)
