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


@pytest.mark.parametrize(
    "payload",
    [
        {"$nd": ["SECRET-0.7544,-0.9893", [0], ""]},
        {"$nd": ["float64", [1], "SECRET-é"]},
        {"$complex": ["SECRET-0.7544", 1.0]},
        {"$bigint": "SECRET-0.7544"},
        {"$nd": ["x" * 2_000_000, [0], ""]},
    ],
)
def test_a_refusal_quotes_nothing_of_the_data(payload: object) -> None:
    """A kernel that has seen hidden data may forge a reply to carry it out through the grader's refusal."""
    with pytest.raises(wire.WireError) as refused:
        wire.decode(json.dumps(payload))
    assert "SECRET" not in str(refused.value) and "xxx" not in str(refused.value) and len(str(refused.value)) < 100
    with pytest.raises(wire.WireError) as refused:
        wire.decode('{"$nd": ["SECRET-0.7544" ' + "x" * 1000)  # not JSON
    assert "SECRET" not in str(refused.value) and "column" not in str(refused.value)


def test_deep_nesting_and_huge_payloads_are_refused() -> None:
    with pytest.raises(wire.WireError):
        wire.decode("[" * 100 + "]" * 100)
    with pytest.raises(wire.WireError):
        wire.decode(" " * (wire.MAX_BYTES + 1))


# ---- memory bombs: a reply's decoded size is bounded by its bytes, checked before anything is built -----

BOMB_ITEMS = 600_000


def _bombs() -> dict[str, str]:
    n = BOMB_ITEMS
    return {
        "empty lists": "[" + ",".join(["[]"] * n) + "]",
        "empty dicts": "[" + ",".join(['{"$dict":{}}'] * (n // 4)) + "]",
        "empty tuples": "[" + ",".join(['{"$tuple":[]}'] * (n // 4)) + "]",
        "nested pairs": "[" + ",".join(["[[],[[]]]"] * (n // 3)) + "]",
        "zeros": "[" + ",".join(["0"] * n) + "]",
        "empty strings": "[" + ",".join(['""'] * n) + "]",
        "many keys": '{"$dict":{' + ",".join(f'"{i}":0' for i in range(n // 2)) + "}}",
        "tiny arrays": "[" + ",".join(['{"$nd":["bool",[0],""]}'] * (n // 6)) + "]",
        "deep": "[" * (n // 2) + "]" * (n // 2),
    }


def _peak_bytes(text: str) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        wire.decode(text)
    except wire.WireError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("kind", list(_bombs()))
def test_a_reply_of_many_small_parts_is_refused_before_it_is_built(kind: str) -> None:
    text = _bombs()[kind]
    with pytest.raises(wire.WireError):
        wire.decode(text)
    # Measured in the grader's own allocations: at most a few times the reply's bytes (it was 46 times).
    assert _peak_bytes(text) <= 4 * len(text)


def test_any_reply_decodes_within_a_small_multiple_of_its_bytes() -> None:
    # Just within the floor every reply may use: bounded by that floor, not by the reply's size.
    text = "[" + ",".join(["[]"] * 20_000) + "]"
    assert wire.decode(text) == [[]] * 20_000
    assert _peak_bytes(text) <= wire.SMALL_REPLY_BYTES


def test_measuring_ignores_commas_and_brackets_inside_strings() -> None:
    text = json.dumps(["[{,:" * 200_000, 'a\\"[[[', "\\" * 10])
    assert wire.decode(text) == ["[{,:" * 200_000, 'a\\"[[[', "\\" * 10]


def test_large_honest_replies_still_decode() -> None:
    arrays = [np.random.default_rng(k).normal(size=(500, 100)) for k in range(20)]
    assert same(arrays, wire.decode(wire.encode(arrays)))
    floats = np.random.default_rng(0).normal(size=200_000).tolist()
    assert wire.decode(wire.encode(floats)) == floats
    nested = [[np.eye(3), [1.5, "relu"], {"k": (1, 2)}]] * 1000
    assert same(nested, wire.decode(wire.encode(nested)))


def test_the_grader_parses_kernel_replies_through_the_bounded_parser() -> None:
    import inspect

    from mlphys.grading import kernel

    source = inspect.getsource(kernel.call_kernel)
    assert "wire.loads(reply_text)" in source and "json.loads" not in source


# ---- course functions travel by name and resolve only inside mlphys.course -----------------------------


def test_course_functions_travel_by_name_and_resolve_in_the_kernel() -> None:
    from mlphys.course import activations

    sigmoid = wire.CourseFunction("mlphys.course.activations:sigmoid")
    text = wire.encode([sigmoid, 1.0])
    assert json.loads(text)[0] == {"$course": "mlphys.course.activations:sigmoid"}
    decoded = wire.decode(text, resolve_course=wire.import_course_function)
    assert decoded[0] is activations.sigmoid
    assert sigmoid(np.array([0.0]))[0] == 0.5  # callable where it is made, too


@pytest.mark.parametrize(
    "name",
    [
        "os:system",
        "mlphys.grading.checks:expect_true",
        "mlphys.coursework:x",
        "mlphys.course.activations:_private",
        "mlphys.course.activations:np",
        "mlphys.course:activations",
        "mlphys.course.activations:sigmoid.__globals__",
        "mlphys.course..activations:sigmoid",
    ],
)
def test_names_outside_the_course_library_are_refused(name: str) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(json.dumps({"$course": name}), resolve_course=wire.import_course_function)


def test_the_grader_never_resolves_course_names_from_a_reply() -> None:
    with pytest.raises(wire.WireError):
        wire.decode(json.dumps({"$course": "mlphys.course.activations:sigmoid"}))
