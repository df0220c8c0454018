"""Hidden tests run in the grader against proxies; what reaches the student is only the verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlphys.grading import hidden
from mlphys.kernel import bridge, wire


class FakeKernel:
    """An in-process stand-in for the student's kernel that speaks the bridge protocol."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.ns = namespace
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: dict[str, Any]) -> Any:
        self.requests.append(request)
        # Go through JSON exactly as the real transport does.
        return json.loads(json.dumps(bridge._handle_in(self.ns, json.loads(json.dumps(request)))))


def session(ns: dict[str, Any]) -> tuple[hidden.HiddenTestSession, FakeKernel]:
    fake = FakeKernel(ns)
    return hidden.HiddenTestSession(fake), fake


def test_split_keeps_visible_lines_and_drops_markers() -> None:
    src = "a = 1\n### BEGIN HIDDEN TESTS\nassert secret\n### END HIDDEN TESTS\nb = 2"
    assert hidden.split_test_source(src) == ("a = 1\nb = 2", "assert secret")


def test_student_function_is_called_with_plain_data() -> None:
    s, fake = session({"square": lambda x: x**2})
    verdict = s.run("expect_close(square(np.arange(3.0)), [0, 1, 4], what='square')", "t")
    assert verdict.passed
    assert fake.requests[0]["op"] == "describe"


def test_always_equal_object_cannot_pass_an_equality_assert() -> None:
    class AlwaysEqual:
        def __eq__(self, other: object) -> bool:
            return True

    s, _ = session({"answer": lambda: AlwaysEqual()})
    verdict = s.run("assert answer() == 42, 'answer() should return 42'", "t")
    assert not verdict.passed
    assert verdict.message == "answer() should return 42"


def test_missing_function_is_named_in_the_message() -> None:
    s, _ = session({})
    verdict = s.run("assert apply_net(1) == 1, 'x'", "t")
    assert not verdict.passed
    assert "does not define `apply_net`" in verdict.message


def test_student_exception_is_reported_without_hidden_source() -> None:
    s, _ = session({"f": lambda x: 1 / 0})
    verdict = s.run("SECRET_REFERENCE = 12345\nassert f(SECRET_REFERENCE) == 0", "t")
    assert not verdict.passed
    assert "ZeroDivisionError" in verdict.message
    assert "SECRET_REFERENCE" not in verdict.message and "12345" not in verdict.message


def test_bare_assert_reveals_nothing() -> None:
    s, _ = session({"f": lambda: 3})
    verdict = s.run("assert f() == 999", "t")
    assert not verdict.passed
    assert "999" not in verdict.message


def test_helpers_defined_in_hidden_blocks_persist_and_win_over_student_names() -> None:
    s, _ = session({"_ref": lambda: "student's", "g": lambda: 7})
    assert s.run("def _ref():\n    return 7", "first").passed
    assert s.run("assert g() == _ref(), 'g'", "second").passed


def test_student_variables_arrive_as_validated_copies() -> None:
    s, _ = session({"W": [np.eye(2), np.ones(2)]})
    assert s.run("assert type(W[0]) is np.ndarray and W[0].shape == (2, 2), 'W'", "t").passed


def test_student_functions_can_be_passed_to_student_functions() -> None:
    s, _ = session({"apply": lambda f, x: f(x), "double": lambda x: 2 * x})
    assert s.run("assert apply(double, 4) == 8, 'apply'", "t").passed


def test_forged_reply_values_are_still_judged() -> None:
    s, _ = session({"f": lambda: wire.Unsupported("x")})
    assert not s.run("assert f() == 1, 'f'", "t").passed


def test_a_message_about_a_student_value_is_bounded() -> None:
    """However much of a student's value a hidden test quotes (or an exception carries), the verdict is short."""
    huge = "x" * 12_000_000
    s, _ = session({"f": lambda: huge, "g": lambda: int(huge)})
    for source in ("v = f()\nassert v == 'y', f'f() returned {v}'", "g()"):
        verdict = s.run(source, "t")
        assert not verdict.passed and len(verdict.message) <= hidden.MAX_VERDICT_CHARS + 100


def test_property_based_hidden_test_reports_the_smallest_failing_case() -> None:
    s, _ = session({"absolute": lambda x: abs(x) if x > -5 else 0})
    verdict = s.run(
        "from hypothesis import given, settings, strategies as st\n"
        "@settings(derandomize=True, database=None, max_examples=200)\n"
        "@given(st.integers(-100, 100))\n"
        "def _check(x):\n"
        "    assert absolute(x) == abs(x), 'absolute(x) is wrong for some integer x'\n"
        "_check()",
        "t",
    )
    assert not verdict.passed
    assert "absolute(x) is wrong" in verdict.message
    assert "The smallest failing case found: x=-5" in verdict.message
    assert "_check" not in verdict.message  # the hidden test's own name is not the student's business


def test_a_property_without_settings_is_graded_deterministically_and_remembers_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where hypothesis would keep its example database: the course directory
    source = (
        "from hypothesis import given, strategies as st\n"
        "@given(st.lists(st.integers(-1000, 1000), max_size=20))\n"
        "def _check(xs):\n"
        "    assert total(xs) == sum(xs), 'total is wrong for some list'\n"
        "_check()"
    )
    wrong_total = {"total": lambda xs: sum(x for x in xs if x < 700)}
    messages = {session(wrong_total)[0].run(source, "t").message for _ in range(3)}
    assert len(messages) == 1, messages  # the same submission meets the same examples every time
    assert "The smallest failing case found: xs=[700]" in messages.pop()
    assert list(tmp_path.iterdir()) == []  # no .hypothesis/ left in the course


def test_a_failing_case_found_by_varying_parts_together_reads_without_hypothesis_comments() -> None:
    note = (
        "Failing test case: check_gradients(\n"
        "    # The test always failed when commented parts were varied together.\n"
        "    layer_sizes=[2, 3],  # or any other generated value\n"
        "    seed=0,\n"
        ")"
    )
    error = AssertionError("the gradient of weights[0] is wrong")
    error.add_note(note)
    message = hidden.describe_failure(error)
    assert "check_gradients" not in message and "#" not in message and "varied together" not in message
    assert "The smallest failing case found: layer_sizes=[2, 3], seed=0" in message


def test_a_helper_parameter_does_not_hide_a_student_function() -> None:
    s, _ = session({"step": lambda z: (np.asarray(z) > 0).astype(float)})
    source = "def _apply(step, z):\n    return step(z)\nexpect_close(step(np.array([1.0])), [1.0], what='step')"
    assert s.run(source, "t").passed


def test_helpers_of_a_failed_block_stay_trusted() -> None:
    s, _ = session({"_helper": lambda: "forged", "f": lambda: 1})
    assert not s.run("def _helper():\n    return 1\nassert f() == 2, 'f() should be 2'", "first").passed
    assert s.run("assert _helper() == 1, 'trusted helper'", "second").passed


def test_names_reserved_by_later_blocks_are_never_taken_from_the_student() -> None:
    fake = FakeKernel({"_ref": lambda: 7})
    s = hidden.HiddenTestSession(fake, reserved={"_ref"})
    verdict = s.run("assert _ref() == 7, 'uses the student-defined _ref'", "t")
    assert not verdict.passed
    assert all("_ref" not in r.get("names", []) for r in fake.requests)


def test_a_student_exception_inside_a_property_names_the_failing_case() -> None:
    s, _ = session({"inverse": lambda x: 1 / x})
    verdict = s.run(
        "from hypothesis import given, settings, strategies as st\n"
        "@settings(derandomize=True, database=None, max_examples=200)\n"
        "@given(st.integers(-10, 10))\n"
        "def _check(x):\n"
        "    inverse(float(x))\n"
        "_check()",
        "t",
    )
    assert not verdict.passed
    assert "Calling your `inverse` with (a float) raised ZeroDivisionError" in verdict.message
    assert "The smallest failing case found: x=0" in verdict.message and "_check" not in verdict.message


# ---- seeing a call's effect on its arguments ---------------------------------------------------------


def _pop_all(weights: list, biases: list) -> int:
    n = 0
    while weights:
        weights.pop()
        biases.pop()
        n += 1
    return n


def _scale_in_place(arrays: list) -> list:
    for a in arrays:
        a *= 2.0
    return arrays


def test_a_call_shows_its_arguments_as_the_student_left_them() -> None:
    fake = FakeKernel({"pop_all": _pop_all})
    pop_all = hidden.StudentFunction("pop_all", fake)
    result, after = pop_all.call_seeing_arguments([np.eye(2), np.ones(2)], [np.zeros(2), np.ones(1)])
    assert result == 2 and after == [[], []]


def test_an_unchanged_argument_comes_back_equal_and_functions_keep_their_names() -> None:
    fake = FakeKernel({"apply": lambda fs, x: [f(x) for f in fs], "double": lambda x: 2 * x})
    apply = hidden.StudentFunction("apply", fake)
    sigmoid = wire.CourseFunction("mlphys.course.activations:sigmoid")
    result, after = apply.call_seeing_arguments([hidden.StudentFunction("double", fake), sigmoid], np.zeros(3))
    assert result[0].tolist() == [0.0] * 3 and result[1].tolist() == [0.5] * 3
    assert [type(f) for f in after[0]] == [wire.RemoteRef, wire.CourseFunction]
    assert after[0][0].name == "double" and after[0][1] == sigmoid
    assert after[1].tolist() == [0.0] * 3


def test_the_kit_fails_a_function_that_changes_the_lists_it_is_given() -> None:
    s, _ = session({"pop_all": _pop_all, "scale": _scale_in_place, "count": lambda ws, bs: len(ws)})
    check = (
        "expect_arguments_unchanged({f}, [np.eye(2)], [np.ones(2)], what='{f}(weights, biases)', "
        "names=['weights', 'biases'])"
    )
    verdict = s.run(check.format(f="pop_all"), "t")
    assert not verdict.passed
    assert "pop_all(weights, biases) changed an argument" in verdict.message
    assert "`weights` now has 0 entries instead of 1" in verdict.message
    assert s.run(check.format(f="count"), "t").passed
    verdict = s.run("expect_arguments_unchanged(scale, [np.eye(2)], what='scale', names=['arrays'])", "t")
    assert not verdict.passed and "`arrays[0]` holds different values" in verdict.message


def test_forged_arguments_after_a_call_are_refused() -> None:
    def forging(request: dict[str, Any]) -> Any:
        if request["op"] == "describe":
            return {"ok": True, "names": {"f": {"kind": "function"}}}
        return {"ok": True, "value": 1, "args_after": {"$course": "os:system"}}

    s = hidden.HiddenTestSession(forging)
    verdict = s.run("expect_arguments_unchanged(f, 1, what='f', names=['x'])", "t")
    assert not verdict.passed and "cannot accept" in verdict.message


# ---- course functions as arguments ---------------------------------------------------------------------


def test_hidden_tests_can_pass_the_course_library_functions_into_student_functions() -> None:
    s, fake = session({"apply": lambda f, x: f(x)})
    verdict = s.run(
        "expect_close(apply(CourseFunction('mlphys.course.activations:relu'), np.array([-1.0, 2.0])), [0.0, 2.0], "
        "what='apply')",
        "t",
    )
    assert verdict.passed
    assert '"$course"' in fake.requests[-1]["args"]


def test_the_kernel_refuses_to_resolve_anything_outside_the_course_library() -> None:
    request = {"op": "call", "name": "f", "args": json.dumps([{"$course": "os:system"}]), "kwargs": "{}"}
    with pytest.raises(wire.WireError):
        bridge._handle_in({"f": lambda g: g}, request)


# ---- one wording of failures ---------------------------------------------------------------------------


def test_a_student_exception_names_the_call_by_its_arguments_not_their_values() -> None:
    s, _ = session({"forward": lambda y, ws, name: 1 / 0})
    verdict = s.run("forward(np.full((6, 3), 4242.0), [np.eye(3)] * 2, 'relu')", "t")
    assert not verdict.passed
    assert verdict.message.startswith(
        "Calling your `forward` with (an array of shape (6, 3), a list of 2 arrays, 'relu') raised ZeroDivisionError"
    )
    assert "4242" not in verdict.message
