"""The instructor's kit: checks that fail on NaN, word failures for students, and judge one cell each."""

from __future__ import annotations

import json
from typing import Any

import nbformat
import numpy as np
import pytest

from conftest import REPO
from mlphys import assignments
from mlphys.demo.case import Materials
from mlphys.grading import checks, hidden
from mlphys.kernel import bridge, wire

NAN = float("nan")


def fails(check: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(AssertionError) as info:
        check(*args, **kwargs)
    return str(info.value)


# ---- NaN and infinity are failures in every comparison ------------------------------------------------


@pytest.mark.parametrize("bad", [NAN, np.inf, -np.inf])
def test_closeness_fails_on_nan_and_infinity_even_with_a_loose_tolerance(bad: float) -> None:
    actual = np.array([0.0, bad, 1.0])
    message = fails(checks.expect_close, actual, [0.0, 0.5, 1.0], what="the output", rtol=0.0, atol=10.0)
    assert message == "the output contains NaN or infinite values."


def test_closeness_fails_where_the_deviation_itself_overflows() -> None:
    big = np.array([1.7e308])
    message = fails(checks.expect_close, big, -big, what="x", rtol=0.0, atol=1.0)
    assert message.startswith("x is wrong in 1 of 1 entries (largest deviation inf)")


def test_a_number_that_is_nan_is_not_close_to_anything() -> None:
    assert "not a finite number" in fails(checks.expect_close, NAN, 0.5, what="the cost", atol=1.0)
    assert "not a finite number" in fails(checks.expect_number, np.float32("inf"), what="the cost")


def test_networks_and_lists_of_arrays_refuse_nan() -> None:
    message = fails(checks.expect_network, [np.full((2, 1), NAN)], [np.zeros(1)], names=("`W`", "`B`"), n_in=2)
    assert message == "`W`[0] contains NaN or infinite values."
    assert "contains NaN" in fails(checks.expect_arrays, [np.zeros(2), np.array([np.inf])], what="grads")


def test_gradients_with_nan_fail_whatever_their_scale() -> None:
    message = fails(checks.expect_gradients, [np.array([NAN, 1.0])], [np.array([1e9, 1.0])], what=["g[0]"])
    assert "g[0] contains NaN" in message


# ---- the checks -----------------------------------------------------------------------------------------


def test_scale_aware_closeness_judges_a_cancellation_by_what_it_came_from() -> None:
    w, g, lr = np.array([1.0e6]), np.array([1.0e6]), 1.0 - 1e-12
    exact = w - lr * g  # about 1e-6: rounding of w and lr * g dwarfs it
    rounded = exact + 1e-9
    assert "wrong in 1 of 1" in fails(checks.expect_close, rounded, exact, what="w", rtol=1e-5, atol=0.0)
    checks.expect_close(rounded, exact, what="w", rtol=1e-5, atol=0.0, scale=np.abs(w) + lr * np.abs(g))


def test_gradients_are_judged_relative_to_their_own_layer_and_to_all() -> None:
    expected = [np.array([1.0, 1e-3]), np.array([1e-4, 2e-4])]
    checks.expect_gradients([e * (1 + 1e-3) for e in expected], expected, what=["a", "b"])
    message = fails(checks.expect_gradients, [expected[0], expected[1] * 2], expected, what=["a", "b"])
    assert message.startswith("b is wrong in 2 of 2 entries")
    # Far below the largest gradient of all, rounding may swamp a layer's gradients entirely.
    checks.expect_gradients([expected[0], np.zeros(2)], [expected[0], np.array([1e-9, 2e-9])], what=["a", "b"])


def test_finite_differences_agree_with_an_analytic_gradient() -> None:
    rng = np.random.default_rng(0)
    w, y = rng.normal(size=(3, 2)), rng.normal(size=(5, 3))

    def cost() -> float:
        return float(0.5 * np.sum(np.tanh(y @ w) ** 2))

    analytic = y.T @ (np.tanh(y @ w) * (1 - np.tanh(y @ w) ** 2))
    (numeric,) = checks.finite_difference_gradients(cost, [w])
    checks.expect_gradients([numeric], [analytic], what=["dC/dw"], rtol=1e-6)


def test_a_network_of_the_wrong_architecture_is_named_precisely() -> None:
    ws, bs = [np.zeros((2, 3)), np.zeros((3, 1))], [np.zeros(3), np.zeros(1)]
    assert checks.expect_network(ws, bs, layer_sizes=[2, 3, 1])[0][1].dtype == np.float64
    message = fails(checks.expect_network, ws, [np.zeros(3), np.zeros((1, 1))], names=("`W`", "`B`"), n_in=2)
    assert message == "`B`[1] should have shape (n_out,) = (1,) to match `W`[1], but it has shape (1, 1)."
    message = fails(checks.expect_network, ws, bs, names=("`W`", "`B`"), layer_sizes=[2, 4, 1])
    assert "`W`[0] should have shape (2, 4) for layer sizes [2, 4, 1]" in message
    message = fails(checks.expect_network, ws, bs, names=("`W`", "`B`"), n_in=2, n_out=2)
    assert message == "The network should have 2 output neurons, but its last layer has 1."


def test_values_are_described_by_kind_and_never_by_their_numbers() -> None:
    message = fails(checks.expect_returns, np.full(3, 1234.5), 2, what="forward(y)", names="(zs, ys)")
    assert (
        message
        == "forward(y) should return 2 things, (zs, ys), but it returned an array of shape (3,) and dtype float64."
    )
    assert "1234" not in message
    assert checks.describe_value(wire.Unsupported("Net")) == "an object of type Net"


def test_a_failure_can_name_the_input_where_the_value_is_wrong() -> None:
    inputs = np.array([[0.5, 0.5], [-0.25, 0.75]])
    message = fails(
        checks.expect_close, np.array([0.0, 0.0]), [0.0, 1.0], what="out", atol=0.1, inputs=inputs, hint="Hm."
    )
    assert message == "out is wrong in 1 of 2 entries (largest deviation 1), e.g. for the input (-0.25, 0.75). Hm."


def test_unchanged_arguments_are_checked_in_the_instructors_own_kernel_too() -> None:
    def pops(ws: list) -> int:
        return len(ws.pop())

    def reads(ws: list) -> int:
        return len(ws[0])

    assert checks.expect_arguments_unchanged(reads, [np.zeros(3)], what="reads(ws)", names=["ws"]) == 3
    message = fails(checks.expect_arguments_unchanged, pops, [np.zeros(3)], what="pops(ws)", names=["ws"])
    assert "pops(ws) changed an argument it was given: `ws` now has 0 entries instead of 1" in message


def test_every_kit_name_reaches_hidden_tests() -> None:
    s = hidden.HiddenTestSession(lambda request: {"ok": True, "names": {}})
    assert s.run("assert all(callable(f) for f in [" + ", ".join(checks.__all__) + "]), 'kit'", "t").passed


# ---- each hidden test of 01 and 02 judges its own cell --------------------------------------------------


class FakeKernel:
    """The student's notebook run in this process, answering the bridge protocol through JSON."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.ns = namespace

    def __call__(self, request: dict[str, Any]) -> Any:
        return wire.loads(json.dumps(bridge._handle_in(self.ns, json.loads(json.dumps(request)))))


def judge(assignment: str, replacements: dict[str, str]) -> set[str]:
    """The test cells whose hidden tests fail for the reference notebook with some solution cells replaced.

    The student's cells run in this process (plots are skipped); the hidden tests run as in the grader,
    through the bridge protocol and the wire format.
    """
    spec = assignments.get(assignment)
    materials = Materials(REPO, assignment, spec.notebook)
    source = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in materials.source().cells}
    tests = {g: hidden.split_test_source(src)[1] for g, src in source.items() if g and "BEGIN HIDDEN" in src}
    reserved = set().union(*(hidden.bound_names(h) for h in tests.values()))
    ns: dict[str, Any] = {}
    session = hidden.HiddenTestSession(FakeKernel(ns), reserved)
    failed = set()
    import matplotlib

    matplotlib.use("Agg")  # in this process only: an environment variable would reach later tests' kernels
    for cell in materials.with_solutions(replacements).cells:
        if cell.cell_type != "code" or "plot_" in cell.source:
            continue
        try:
            with np.errstate(all="ignore"):
                exec(compile(cell.source, "<cell>", "exec"), ns)
        except Exception:  # a failing self-check, as in a notebook: the hidden part still decides
            pass
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in tests and not session.run(tests[grade_id], grade_id).passed:
            failed.add(grade_id)
    return failed


def _mistakes(assignment: str) -> list[Any]:
    from mlphys.assignments.backprop import cases as backprop_cases
    from mlphys.assignments.xor_nets import cases as xor_cases

    module = {"01_xor_nets": xor_cases, "02_backprop": backprop_cases}[assignment]
    return [(assignment, student, replacements, set(breaks)) for student, _, replacements, breaks in module._MISTAKES]


NEW_MISTAKES = {
    "mistake_sigmoid_cutoff",
    "mistake_net_consumes_activations",
    "mistake_xor_sigmoid_nan",
    "mistake_bp_step_in_place",
    "mistake_bp_train_one_batch",
}


@pytest.mark.parametrize(
    "assignment, student, replacements, breaks",
    [m for a in ("01_xor_nets", "02_backprop") for m in _mistakes(a) if m[1] in NEW_MISTAKES]
    + [("01_xor_nets", "reference", {}, set()), ("02_backprop", "reference", {}, set())],
    ids=lambda v: v if isinstance(v, str) else "-",
)
def test_each_hidden_test_judges_its_own_cell(assignment: str, student: str, replacements: dict, breaks: set) -> None:
    assert judge(assignment, replacements) == breaks


def test_the_source_notebooks_copy_no_helper_between_hidden_tests() -> None:
    for path in (REPO / "source").glob("0[12]_*/*.ipynb"):
        blocks = [
            hidden.split_test_source(c.source)[1] for c in nbformat.read(path, 4).cells if "BEGIN HIDDEN" in c.source
        ]
        defined = [name for block in blocks for name in hidden.bound_names(block) if not name.startswith("_")] + [
            line.split("(")[0] for block in blocks for line in block.splitlines() if line.startswith("def ")
        ]
        assert len(defined) == len(set(defined)), path
