"""The plain-data format between kernel and grader: faithful for plain data, closed to everything else."""

from __future__ import annotations

import json

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlphys.kernel import wire

scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.uint16, np.bool_, np.complex128]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)
plain = st.recursive(
    scalars | arrays,
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
)


def same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return (
            type(b) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
        )
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=200, derandomize=True, database=None)
@given(plain)
def test_plain_data_round_trips_exactly(value: object) -> None:
    assert same(value, wire.decode(wire.encode(value)))


@settings(max_examples=300, derandomize=True, database=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda x: st.lists(x) | st.dictionaries(st.text(), x),
    )
)
def test_arbitrary_json_decodes_to_plain_data_or_is_refused(obj: object) -> None:
    try:
        value = wire.decode(json.dumps(obj))
    except wire.WireError:
        return

    def plain_only(v: object) -> bool:
        if type(v) in (list, tuple):
            return all(plain_only(x) for x in v)
        if type(v) is dict:
            return all(type(k) is str and plain_only(x) for k, x in v.items())
        return v is None or type(v) in (bool, int, float, complex, str, np.ndarray, wire.Unsupported)

    assert plain_only(value)


class AlwaysEqual:
    def __eq__(self, other: object) -> bool:
        return True


def test_objects_cross_only_as_a_named_marker() -> None:
    decoded = wire.decode(wire.encode([AlwaysEqual(), len]))
    assert [type(v) for v in decoded] == [wire.Unsupported, wire.Unsupported]
    assert decoded[0].type_name.endswith("AlwaysEqual")
    assert decoded[0] != 1


def test_ndarray_subclasses_arrive_as_exact_ndarrays() -> None:
    class Sneaky(np.ndarray):
        def __eq__(self, other: object) -> bool:  # type: ignore[override]
            return True

    value = wire.decode(wire.encode(np.zeros(3).view(Sneaky)))
    assert type(value) is np.ndarray


@pytest.mark.parametrize(
    "payload",
    [
        {"$nd": ["object", [1], ""]},
        {"$nd": ["float64", [2], "AAAAAAAAAAA="]},  # 8 bytes for a shape that needs 16
        {"$nd": ["float64", [-1], ""]},
        {"$ref": "os"},
        {"$tuple": "nope"},
        {"a": 1},
    ],
)
def test_malformed_or_dangerous_payloads_are_refused(payload: object) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(json.dumps(payload))


def test_deep_nesting_and_huge_payloads_are_refused() -> None:
    with pytest.raises(wire.WireError):
        wire.decode("[" * 100 + "]" * 100)
    with pytest.raises(wire.WireError):
        wire.decode(" " * (wire.MAX_BYTES + 1))
