"""Assertions for hidden tests that explain failures in words a student can act on.

They say what was called, what kind of answer was expected and what came back, but never the
reference values.  Hidden tests see these names without importing them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlphys.kernel.wire import Unsupported

__all__ = ["expect_array", "expect_close", "expect_number", "expect_true"]


def _kind_of(value: Any) -> str:
    if isinstance(value, Unsupported):
        return f"an object of type {value.type_name}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"a {type(value).__name__}"


def expect_array(
    value: Any, *, what: str, shape: tuple[int, ...] | None = None, kinds: str = "f", finite: bool = True
) -> np.ndarray:
    """Check that ``value`` is a numpy array of the given shape, dtype kind(s) and finite values.

    ``kinds`` lists acceptable numpy dtype kinds: ``f`` float, ``i`` signed int, ``u`` unsigned,
    ``b`` bool.  Integers and booleans are accepted where floats are asked for only if listed.
    """
    if not isinstance(value, np.ndarray):
        raise AssertionError(f"{what} should be a numpy array, but it is {_kind_of(value)}.")
    if shape is not None and value.shape != tuple(shape):
        raise AssertionError(f"{what} should have shape {tuple(shape)}, but it has shape {value.shape}.")
    if value.dtype.kind not in kinds:
        names = {"f": "floating-point", "i": "integer", "u": "unsigned integer", "b": "boolean"}
        wanted = " or ".join(names.get(k, k) for k in kinds)
        raise AssertionError(f"{what} should hold {wanted} numbers, but its dtype is {value.dtype}.")
    if finite and value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
        raise AssertionError(f"{what} contains NaN or infinite values.")
    return value


def expect_close(
    actual: Any, expected: Any, *, what: str, rtol: float = 1e-5, atol: float = 1e-7, kinds: str = "fiub"
) -> None:
    """Check ``actual`` against reference values within a tolerance, reporting only where it is off."""
    expected = np.asarray(expected)
    arr = expect_array(actual, what=what, shape=expected.shape, kinds=kinds)
    bad = ~np.isclose(arr.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol)
    if bad.any():
        deviation = float(np.max(np.abs(arr.astype(np.float64) - expected)[bad]))
        raise AssertionError(
            f"{what} is wrong in {int(bad.sum())} of {bad.size} entries "
            f"(largest deviation {deviation:.3g}; tolerance {atol:g} + {rtol:g} x |expected|)."
        )


def expect_number(value: Any, *, what: str, finite: bool = True) -> float:
    """Check that ``value`` is a single real number (Python or numpy scalar, or one-element array)."""
    if isinstance(value, (np.ndarray, np.generic)) and value.size == 1 and value.dtype.kind in "fiu":
        value = np.asarray(value).reshape(()).item()
    if type(value) not in (int, float):
        raise AssertionError(f"{what} should be a single number, but it is {_kind_of(value)}.")
    if finite and not np.isfinite(value):
        raise AssertionError(f"{what} is not a finite number.")
    return float(value)


def expect_true(condition: Any, message: str) -> None:
    """A plain assertion whose message is shown to the student when it fails."""
    if condition is not True and not (isinstance(condition, np.bool_) and bool(condition)):
        raise AssertionError(message)
