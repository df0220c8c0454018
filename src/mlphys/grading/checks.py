"""The instructor's kit: checks for hidden tests that explain failures in words a student can act on.

Every name in ``__all__`` is given to every hidden test by the engine (the first hidden block of a
notebook also imports them, so that the instructor's notebook runs as it is in Jupyter).  A check
returns the validated value (a float64 array, a list of arrays, ...) or raises ``AssertionError`` with a
message for the student: what was called, what kind of answer was expected and what came back, never a
reference value.  ``mlphys.grading.hidden.describe_failure`` turns every failure into the text the
student reads.

* values: :func:`expect_array`, :func:`expect_number`, :func:`expect_returns`, :func:`expect_arrays`;
* networks: :func:`expect_network` (weights and biases lists of a given architecture);
* closeness: :func:`expect_close` (scale-aware tolerances), :func:`expect_gradients`, and
  :func:`finite_difference_gradients` for a reference gradient of any trusted cost;
* calls: :func:`expect_arguments_unchanged` (the student's function must not change what it is given),
  :class:`CourseFunction` (the course library's own functions, e.g. the lecture's sigmoid, passed into
  student functions);
* :func:`expect_true` for anything else.

NaN and infinity are failures in every comparison: a check that reads ``deviation > tolerance`` lets NaN
through (the comparison is False), so the kit asks ``not (deviation <= tolerance)`` and refuses
non-finite values before it compares.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlphys.kernel.wire import CourseFunction, RemoteRef, Unsupported

__all__ = [
    "CourseFunction",
    "describe_value",
    "expect_arguments_unchanged",
    "expect_array",
    "expect_arrays",
    "expect_close",
    "expect_gradients",
    "expect_network",
    "expect_number",
    "expect_returns",
    "expect_true",
    "finite_difference_gradients",
]

_KIND_NAMES = {"f": "floating-point", "i": "integer", "u": "unsigned integer", "b": "boolean", "c": "complex"}


# ---- words -----------------------------------------------------------------------------------------


def describe_value(value: Any) -> str:
    """What a value is, in words for a student ("an array of shape (3, 2) and dtype float64")."""
    if isinstance(value, Unsupported):
        return f"an object of type {value.type_name}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, (RemoteRef, CourseFunction)):
        return f"the function {value.name.rpartition(':')[2]}"
    if isinstance(value, (list, tuple)):
        kind = type(value).__name__
        if not value:
            return f"an empty {kind}"
        if all(isinstance(v, np.ndarray) for v in value):
            return f"a {kind} of {len(value)} array{'s' * (len(value) != 1)}"
        return f"a {kind} of {len(value)} entr{'ies' if len(value) != 1 else 'y'}"
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _argument(value: Any) -> str:
    """A short description of one argument the grader passed: its kind and shape, never its numbers
    (a hidden test may pass a reference value); short names such as 'relu' are shown."""
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (RemoteRef, CourseFunction)):
        return value.name.rpartition(":")[2]
    if type(value) is str and value.isidentifier() and len(value) <= 20:
        return repr(value)
    if isinstance(value, list) and value and all(isinstance(v, (RemoteRef, CourseFunction)) for v in value):
        return "[" + ", ".join(_argument(v) for v in value) + "]"
    return describe_value(value)


def describe_arguments(args: Sequence[Any], kwargs: dict[str, Any] | None = None) -> str:
    """The arguments of a call, in words: shapes of arrays, sizes of lists, kinds of numbers, short names."""
    parts = [_argument(a) for a in args] + [f"{k}={_argument(v)}" for k, v in (kwargs or {}).items()]
    return "(" + ", ".join(parts) + ")"


# ---- values ----------------------------------------------------------------------------------------


def expect_array(
    value: Any, *, what: str, shape: tuple[int, ...] | None = None, kinds: str = "f", finite: bool = True
) -> np.ndarray:
    """Check that ``value`` is a numpy array of the given shape, dtype kind(s) and finite values.

    ``kinds`` lists acceptable numpy dtype kinds: ``f`` float, ``i`` signed int, ``u`` unsigned,
    ``b`` bool.  Integers and booleans are accepted where floats are asked for only if listed.
    """
    if not isinstance(value, np.ndarray):
        raise AssertionError(f"{what} should be a numpy array, but it is {describe_value(value)}.")
    if shape is not None and value.shape != tuple(shape):
        raise AssertionError(f"{what} should have shape {tuple(shape)}, but it has shape {value.shape}.")
    if value.dtype.kind not in kinds:
        wanted = " or ".join(_KIND_NAMES.get(k, k) for k in kinds)
        raise AssertionError(f"{what} should hold {wanted} numbers, but its dtype is {value.dtype}.")
    if finite and value.dtype.kind in "fc" and not np.all(np.isfinite(value)):
        raise AssertionError(f"{what} contains NaN or infinite values.")
    return value


def expect_number(value: Any, *, what: str, finite: bool = True) -> float:
    """Check that ``value`` is a single real number (Python or numpy scalar, or one-element array)."""
    if isinstance(value, (np.ndarray, np.generic)) and value.size == 1 and value.dtype.kind in "fiu":
        value = np.asarray(value).reshape(()).item()
    if type(value) not in (int, float):
        raise AssertionError(f"{what} should be a single number, but it is {describe_value(value)}.")
    if finite and not np.isfinite(value):
        raise AssertionError(f"{what} is not a finite number.")
    return float(value)


def expect_returns(value: Any, count: int, *, what: str, names: str) -> list[Any]:
    """Check that a call returned ``count`` things (a tuple or list), e.g. ``names="(zs, ys)"``."""
    if not isinstance(value, (list, tuple)) or len(value) != count:
        raise AssertionError(f"{what} should return {count} things, {names}, but it returned {describe_value(value)}.")
    return list(value)


def expect_arrays(
    value: Any,
    *,
    what: str,
    count: int | None = None,
    shapes: Sequence[tuple[int, ...]] | None = None,
    kinds: str = "f",
    finite: bool = True,
    convert_lists: bool = False,
    context: str = "",
) -> list[np.ndarray]:
    """Check a list (or tuple) of numpy arrays: how many, their shapes, dtypes and finite values.

    ``what`` names the list (``"zs"``), ``context`` says where it comes from (``" from forward(...)"``);
    entries are named ``zs[0]`` and so on.  ``shapes`` implies ``count``.  With ``convert_lists``, an
    entry written as nested Python lists of numbers is accepted as the array it spells.  Returns the
    arrays as float64.
    """
    if shapes is not None:
        count = len(shapes)
    if not isinstance(value, (list, tuple)):
        raise AssertionError(f"{what}{context} should be a list of numpy arrays, but it is {describe_value(value)}.")
    if count is not None and len(value) != count:
        raise AssertionError(f"{what}{context} should be a list of {count} arrays, but it has {len(value)} entries.")
    arrays = []
    for k, entry in enumerate(value):
        if convert_lists and isinstance(entry, (list, tuple)):
            try:
                entry = np.asarray(entry, dtype=np.float64)
            except (TypeError, ValueError):
                raise AssertionError(f"{what}[{k}]{context} should be a numpy array of numbers.") from None
        shape = None if shapes is None else shapes[k]
        entry = expect_array(entry, what=f"{what}[{k}]{context}", shape=shape, kinds=kinds, finite=finite)
        arrays.append(entry.astype(np.float64))
    return arrays


def expect_network(
    weights: Any,
    biases: Any,
    *,
    names: tuple[str, str] = ("weights", "biases"),
    layer_sizes: Sequence[int] | None = None,
    n_in: int | None = None,
    n_out: int | None = None,
    finite: bool = True,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Check the weights and biases lists of a network; return them as float64 arrays.

    Layer k has weights of shape (n_in, n_out) and biases of shape (n_out,), and consecutive layers
    fit.  ``layer_sizes`` (e.g. ``[2, 30, 30, 1]``) fixes the whole architecture; ``n_in``/``n_out``
    fix only its ends.  ``names`` are used as they are in messages (e.g. with backticks for the
    student's variables).  Entries written as nested lists are accepted; NaN or infinity are not,
    unless ``finite=False`` (for a test that words that failure itself).
    """
    wname, bname = names
    for value, name in ((weights, wname), (biases, bname)):
        if not isinstance(value, (list, tuple)):
            raise AssertionError(
                f"{name} should be a list of numpy arrays, one per layer, but it is {describe_value(value)}."
            )
    if len(weights) == 0 or len(weights) != len(biases):
        raise AssertionError(
            f"{wname} and {bname} should be non-empty lists of the same length (one entry per layer), "
            f"but they have lengths {len(weights)} and {len(biases)}."
        )
    if layer_sizes is not None:
        n_in, n_out = layer_sizes[0], layer_sizes[-1]
        if len(weights) != len(layer_sizes) - 1:
            raise AssertionError(
                f"{wname} should have {len(layer_sizes) - 1} entries, one per layer of a network with layer "
                f"sizes {list(layer_sizes)}, but it has {len(weights)}."
            )
    ws = expect_arrays(weights, what=wname, kinds="fiub", finite=finite, convert_lists=True)
    bs = expect_arrays(biases, what=bname, kinds="fiub", finite=finite, convert_lists=True)
    n_prev = n_in
    for k, (w, b) in enumerate(zip(ws, bs, strict=True)):
        wanted_in = layer_sizes[k] if layer_sizes is not None else n_prev
        if w.ndim != 2 or (wanted_in is not None and w.shape[0] != wanted_in):
            source = "the network's inputs" if k == 0 else f"the number of outputs of layer {k - 1}"
            expected = f"(n_in, n_out) with n_in = {wanted_in} ({source})" if wanted_in is not None else "(n_in, n_out)"
            raise AssertionError(f"{wname}[{k}] should have shape {expected}, but it has shape {w.shape}.")
        if layer_sizes is not None and w.shape[1] != layer_sizes[k + 1]:
            raise AssertionError(
                f"{wname}[{k}] should have shape {(layer_sizes[k], layer_sizes[k + 1])} for layer sizes "
                f"{list(layer_sizes)}, but it has shape {w.shape}."
            )
        if b.shape != (w.shape[1],):
            raise AssertionError(
                f"{bname}[{k}] should have shape (n_out,) = ({w.shape[1]},) to match {wname}[{k}], "
                f"but it has shape {b.shape}."
            )
        n_prev = w.shape[1]
    if n_out is not None and n_prev != n_out:
        raise AssertionError(
            f"The network should have {n_out} output neuron{'s' * (n_out != 1)}, but its last layer has {n_prev}."
        )
    return ws, bs


# ---- closeness -------------------------------------------------------------------------------------


def expect_close(
    actual: Any,
    expected: Any,
    *,
    what: str,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    scale: Any = None,
    kinds: str = "f",
    inputs: np.ndarray | None = None,
    hint: str = "",
) -> np.ndarray:
    """Check ``actual`` against reference values; report only how many entries are off, and by how much.

    An entry passes when ``|actual - expected| <= atol + rtol * max(|expected|, scale)``: ``scale``
    (a number, or an array that broadcasts to the shape) is the size of what the entry is computed
    from, for quantities that can be near zero by cancellation (a gradient step, a difference).
    NaN or infinity in ``actual`` never pass.  ``inputs`` (one row per entry along the first axis)
    lets the message name an input where the value is wrong; ``hint`` is added to the message.  Where
    ``expected`` is a single number, ``actual`` must be one (see :func:`expect_number`).  Returns
    ``actual`` as float64.
    """
    expected = np.asarray(expected, dtype=np.float64)
    if expected.ndim == 0 and not isinstance(actual, np.ndarray):
        actual = np.asarray(expect_number(actual, what=what))
    arr = expect_array(actual, what=what, shape=expected.shape, kinds=kinds).astype(np.float64)
    size = np.abs(expected) if scale is None else np.maximum(np.abs(expected), np.abs(np.asarray(scale, np.float64)))
    with np.errstate(over="ignore", invalid="ignore"):
        deviation = np.abs(arr - expected)
    bad = ~(deviation <= atol + rtol * size)  # NaN anywhere is a failure
    if not bad.any():
        return arr
    largest = float(np.max(np.where(np.isfinite(deviation), deviation, np.inf)[bad]))
    message = f"{what} is wrong in {int(bad.sum())} of {bad.size} entries (largest deviation {largest:.3g})"
    if inputs is not None and bad.ndim >= 1:
        rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))
        point = ", ".join(f"{x:.3g}" for x in np.ravel(np.asarray(inputs)[rows[0]]))
        message += f", e.g. for the input ({point})"
    raise AssertionError(message + "." + (" " + hint if hint else ""))


def expect_gradients(
    actual: Sequence[Any], expected: Sequence[np.ndarray], *, what: Sequence[str], rtol: float = 2e-3
) -> None:
    """Check gradient arrays (e.g. one per layer) against reference gradients, scale-aware.

    An entry may be off by ``rtol`` of its own size, or 1e-4 of the largest entry of its array, or 1e-6
    of the largest gradient of all (rounding, float32 included): gradients of some layers can be
    orders of magnitude smaller than others.
    """
    overall = max((float(np.max(np.abs(e), initial=0.0)) for e in expected), default=0.0)
    for value, reference, name in zip(actual, expected, what, strict=True):
        atol = 1e-4 * float(np.max(np.abs(reference), initial=0.0)) + 1e-6 * overall + 1e-12
        expect_close(value, reference, what=name, rtol=rtol, atol=atol, kinds="f")


def finite_difference_gradients(cost: Callable[[], float], params: Sequence[np.ndarray], eps: float = 1e-6) -> list:
    """Central finite differences (cost(p + eps) - cost(p - eps)) / 2 eps for every entry of every array.

    ``params`` are float64 arrays that ``cost`` reads; each entry is moved and restored in place.  A
    reference for any trusted cost, without re-deriving its gradient.
    """
    grads = []
    for p in params:
        g = np.zeros_like(p, dtype=np.float64)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = float(cost())
            p[i] = old - eps
            down = float(cost())
            p[i] = old
            g[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


# ---- calls -----------------------------------------------------------------------------------------


def _change(before: Any, after: Any, where: str) -> str | None:
    """How ``after`` differs from ``before`` (None if it does not), in words."""
    if isinstance(before, np.ndarray):
        if not isinstance(after, np.ndarray):
            return f"`{where}` is now {describe_value(after)}"
        if after.shape != before.shape:
            return f"`{where}` now has shape {after.shape} instead of {before.shape}"
        if after.dtype != before.dtype or not np.array_equal(after, before, equal_nan=True):
            return f"`{where}` holds different values"
        return None
    if isinstance(before, (list, tuple)):
        if type(after) is not type(before):
            return f"`{where}` is now {describe_value(after)}"
        if len(after) != len(before):
            return f"`{where}` now has {len(after)} entries instead of {len(before)}"
        for k, (b, a) in enumerate(zip(before, after, strict=True)):
            found = _change(b, a, f"{where}[{k}]")
            if found:
                return found
        return None
    if isinstance(before, dict):
        if type(after) is not dict or after.keys() != before.keys():
            return f"`{where}` now has other entries"
        return next((c for k in before if (c := _change(before[k], after[k], f"{where}[{k!r}]"))), None)
    if isinstance(before, (RemoteRef, CourseFunction)):
        same = isinstance(after, (RemoteRef, CourseFunction)) and after.name == before.name
        return None if same else f"`{where}` was replaced"
    if callable(before):
        return None if after is before else f"`{where}` was replaced"
    if type(after) is not type(before) or not (after == before):
        return f"`{where}` was changed"
    return None


def expect_arguments_unchanged(func: Callable[..., Any], *args: Any, what: str, names: Sequence[str]) -> Any:
    """Call ``func(*args)``, fail if the call changed any of its arguments, and return its result.

    ``names`` names the positional arguments for the message.  In the grader the student's function
    shows its arguments as it left them (``call_seeing_arguments``); run in the instructor's own kernel,
    the arguments are compared with copies taken before the call.
    """
    seeing = getattr(func, "call_seeing_arguments", None)
    if seeing is not None:
        result, after = seeing(*args)
        before = list(args)
    else:
        before = copy.deepcopy(list(args))
        result, after = func(*args), list(args)
    for name, b, a in zip(names, before, after, strict=True):
        change = _change(b, a, name)
        if change:
            raise AssertionError(
                f"{what} changed an argument it was given: {change} after the call. Leave what your function "
                "is given as it was (the caller may use it again): build new lists and arrays instead."
            )
    return result


def expect_true(condition: Any, message: str) -> None:
    """A plain assertion whose message is shown to the student when it fails."""
    if condition is not True and not (isinstance(condition, np.bool_) and bool(condition)):
        raise AssertionError(message)
