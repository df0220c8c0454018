"""Trusted RBM arithmetic of 06_boltzmann_mnist: exact enumeration, and AIS checked against it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import GradedCohort
from mlphys.assignments.boltzmann_mnist import ais, exact, scoring
from mlphys.assignments.boltzmann_mnist import cases as cases_module


def random_rbm(n_v: int, n_h: int, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, scale, (n_v, n_h)), rng.normal(0, 1, n_v), rng.normal(0, 1, n_h)


def brute_force_log_z(W: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Sum of exp(-E(v, h)) over every pair of states, with the energy written out term by term."""
    total = 0.0
    for v in exact.all_states(W.shape[0]):
        for h in exact.all_states(W.shape[1]):
            e = -sum(a[i] * v[i] for i in range(len(v))) - sum(b[j] * h[j] for j in range(len(h)))
            e -= sum(v[i] * W[i, j] * h[j] for i in range(len(v)) for j in range(len(h)))
            total += math.exp(-e)
    return math.log(total)


@pytest.mark.parametrize(("n_v", "n_h"), [(3, 5), (5, 3), (4, 4), (1, 6)])
def test_log_partition_sums_over_either_layer_to_the_brute_force_value(n_v: int, n_h: int) -> None:
    W, a, b = random_rbm(n_v, n_h, 1.0, seed=n_v * 10 + n_h)
    assert exact.log_partition(W, a, b) == pytest.approx(brute_force_log_z(W, a, b), abs=1e-10)


def test_enumeration_in_chunks_agrees_with_one_chunk() -> None:
    W, a, b = random_rbm(30, 9, 0.3, seed=5)
    assert exact.log_partition(W, a, b, low_bits=3) == pytest.approx(exact.log_partition(W, a, b, low_bits=9), abs=1e-9)


def test_enumeration_of_an_mnist_sized_hidden_layer_agrees_with_the_free_energy_sum() -> None:
    """The grouped products of the fast enumeration against a plain sum of exp(-F_h(h)) over every h,
    including weights at the challenge's bound (factors up to exp(650) that a group must not overflow)."""
    for scale in (0.3, 25.0):
        W, a, b = random_rbm(784, 8, scale, seed=6)
        W, a, b = np.clip(W, -25, 25), np.clip(a, -25, 25), np.clip(b, -25, 25)
        plain = float(exact.logsumexp(-exact.hidden_free_energy(exact.all_states(8), W, a, b)))
        assert exact.log_partition(W, a, b, low_bits=3) == pytest.approx(plain, rel=1e-12, abs=1e-9)


def test_distributions_are_normalised_and_consistent() -> None:
    W, a, b = random_rbm(4, 3, 1.5, seed=2)
    joint = exact.joint_distribution(W, a, b)
    p_v = exact.visible_distribution(W, a, b)
    assert joint.sum() == pytest.approx(1.0) and np.allclose(joint.sum(axis=1), p_v)
    assert np.allclose(np.exp(exact.log_likelihood(exact.all_states(4), W, a, b)), p_v)
    T = exact.gibbs_transition(W, a, b)
    assert np.allclose(T.sum(axis=1), 1.0)
    assert np.allclose(p_v @ T, p_v)  # the Gibbs chain leaves the model's distribution invariant
    assert np.array_equal(exact.state_index(exact.all_states(4)), np.arange(16))


def test_the_exact_gradient_is_the_derivative_of_the_log_likelihood() -> None:
    W, a, b = random_rbm(4, 3, 1.0, seed=8)
    data = exact.all_states(4)[[1, 5, 5, 12, 15]]
    dW, da, db = exact.log_likelihood_gradient(data, W, a, b)
    eps = 1e-6

    def mean_ll(W: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean(exact.log_likelihood(data, W, a, b)))

    for grad, param in ((dW, W), (da, a), (db, b)):
        for index in np.ndindex(param.shape):
            old = param[index]
            param[index] = old + eps
            up = mean_ll(W, a, b)
            param[index] = old - eps
            down = mean_ll(W, a, b)
            param[index] = old
            assert grad[index] == pytest.approx((up - down) / (2 * eps), abs=1e-6)


@pytest.mark.parametrize(
    ("n_v", "n_h", "scale", "seed"), [(8, 6, 1.0, 1), (20, 10, 0.5, 2), (784, 12, 0.1, 3), (784, 15, 0.05, 4)]
)
def test_ais_finds_the_exact_log_partition_within_its_error_bars(n_v: int, n_h: int, scale: float, seed: int) -> None:
    W, a, b = random_rbm(n_v, n_h, scale, seed)
    truth = exact.log_partition(W, a, b)
    estimate = ais.ais_log_partition(W, a, b, runs=100, betas=3000, seed=seed)
    assert estimate.lower <= truth <= estimate.upper, (truth, estimate)
    assert abs(estimate.value - truth) < 0.2
    assert estimate.upper - estimate.lower < 1.0  # the bars are informative, not arbitrarily wide


def test_ais_with_data_base_rates_gives_the_heldout_log_likelihood_of_a_trained_like_model() -> None:
    """An MNIST-sized RBM whose biases fit a pixel pattern: base rates from the data make AIS precise."""
    rng = np.random.default_rng(11)
    prototypes = (rng.random((4, 784)) < 0.2).astype(float)
    digits = np.abs(prototypes[rng.integers(0, 4, 600)] - (rng.random((600, 784)) < 0.03))
    W = (2 * prototypes.T - 1) * 0.8 + rng.normal(0, 0.05, (784, 4)) @ np.eye(4)
    W = np.concatenate([W, rng.normal(0, 0.05, (784, 10))], axis=1)
    a = np.full(784, -3.0)
    b = np.concatenate([-0.8 * prototypes.sum(axis=1), np.zeros(10)])
    exact_ll = float(np.mean(exact.log_likelihood(digits[:300], W, a, b)))
    result = ais.heldout_log_likelihood(W, a, b, digits[:300], base_data=digits[300:], runs=100, betas=3000, seed=1)
    assert result.lower <= exact_ll <= result.upper, (exact_ll, result)
    assert abs(result.mean - exact_ll) < 0.2
    assert 0 < result.digits_stderr < 5


def test_ais_is_deterministic_for_a_seed_and_varies_with_it() -> None:
    W, a, b = random_rbm(10, 8, 1.0, seed=0)
    first = ais.ais_log_partition(W, a, b, runs=20, betas=300, seed=7)
    assert ais.ais_log_partition(W, a, b, runs=20, betas=300, seed=7) == first
    assert ais.ais_log_partition(W, a, b, runs=20, betas=300, seed=8).value != first.value


def test_the_schedule_rises_from_zero_to_one_densest_near_one() -> None:
    beta = ais.schedule(1000)
    assert len(beta) == 1000 and beta[0] == 0.0 and beta[-1] == 1.0 and np.all(np.diff(beta) > 0)
    assert np.sum(beta >= 0.9) > np.sum(beta < 0.5)
    with pytest.raises(ValueError):
        ais.ais_log_partition(*random_rbm(3, 2, 1.0, 0), betas=np.array([0.0, 0.7, 0.5, 1.0]))


# ---- the assignment's demo cohort, graded with nbgrader through the engine -------------------------------

ASSIGNMENT_ID = "06_boltzmann_mnist"


@pytest.fixture(scope="module")
def rbm_cohort(course: dict[str, GradedCohort]) -> GradedCohort:
    """This assignment's cohort, graded once with every other in the session's course."""
    return course[ASSIGNMENT_ID]


def test_every_case_of_the_cohort_gets_exactly_its_points(rbm_cohort: GradedCohort) -> None:
    wrong = {
        case.student: (rbm_cohort.scores.get(case.student), case.expected_points)
        for case in rbm_cohort.cases
        if rbm_cohort.scores.get(case.student) != case.expected_points
    }
    assert not wrong, f"(score, expected) of the cases that are off: {wrong}\n{rbm_cohort.autograde_log[-3000:]}"
    assert rbm_cohort.case("ref_solution").expected_points == rbm_cohort.autograded_points() == 13


def test_no_pickled_code_ran_and_no_hidden_test_leaked(rbm_cohort: GradedCohort) -> None:
    assert not Path(cases_module.PICKLE_MARKER).exists()
    assert rbm_cohort.hidden_test_leaks() == {}


def test_refused_entries_are_told_why(rbm_cohort: GradedCohort) -> None:
    reasons = {
        "attack_rbm_nan": "NaN",
        "attack_rbm_extreme": "at most 25",
        "attack_rbm_peaked": "this test needs above -160",
        "attack_rbm_transposed": "shapes (784, n)",
        "attack_rbm_too_wide": "501 hidden units",
        "attack_rbm_huge": "at most 4 MB",
        "attack_rbm_pickle": "weights_only",
        "attack_rbm_no_file": "no weights file",
    }
    for student, reason in reasons.items():
        feedback = rbm_cohort.feedback_html(student).read_text()
        assert reason in feedback, (student, reason)


# ---- challenge scoring from the weights file alone ----------------------------------------------------


def save_state(path: Path, state: object) -> Path:
    import torch

    torch.save(state, path)
    return path


def small_rbm_state(n_hidden: int = 5, scale: float = 0.01) -> dict[str, dict[str, object]]:
    import torch

    generator = torch.Generator().manual_seed(0)
    return {
        "rbm": {
            "W": scale * torch.randn(784, n_hidden, generator=generator),
            "a": torch.full((784,), -2.0),
            "b": torch.zeros(n_hidden),
        }
    }


def test_a_valid_weights_file_loads_as_float64_arrays(tmp_path: Path) -> None:
    W, a, b = scoring.load_rbm_weights(save_state(tmp_path / "rbm-h25.pt", small_rbm_state()), "H25")
    assert W.shape == (784, 5) and a.shape == (784,) and b.shape == (5,) and W.dtype == np.float64


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s["rbm"]["W"].__setitem__((0, 0), float("nan")), "NaN"),
        (lambda s: s["rbm"].__setitem__("W", s["rbm"]["W"] * 1e4), "at most 25"),
        (lambda s: s["rbm"].__setitem__("W", s["rbm"]["W"].T.contiguous()), "shapes (784, n)"),
        (lambda s: s["rbm"].__setitem__("a", s["rbm"]["a"][:700]), "shapes (784, n)"),
        (lambda s: s["rbm"].__setitem__("extra", s["rbm"]["a"]), "must hold"),
        (lambda s: s.__setitem__("other", 1), "must hold"),
        (lambda s: s["rbm"].__setitem__("b", s["rbm"]["b"].long()), "floating-point"),
    ],
)
def test_broken_weights_files_are_refused_with_the_reason(tmp_path: Path, change: object, reason: str) -> None:
    state = small_rbm_state()
    change(state)  # type: ignore[operator]
    with pytest.raises(scoring.EntryProblem, match=reason.replace("(", r"\(").replace(")", r"\)")):
        scoring.load_rbm_weights(save_state(tmp_path / "rbm-h25.pt", state), "H25")


def test_more_hidden_units_than_the_track_allows_are_refused(tmp_path: Path) -> None:
    path = save_state(tmp_path / "rbm-h25.pt", small_rbm_state(n_hidden=26))
    with pytest.raises(scoring.EntryProblem, match="26 hidden units"):
        scoring.load_rbm_weights(path, "H25")
    assert scoring.load_rbm_weights(path, "H500")[0].shape == (784, 26)


def test_oversized_files_and_pickled_code_are_never_unpickled(tmp_path: Path) -> None:
    import pickle

    import torch

    huge = tmp_path / "huge.pt"
    huge.write_bytes(b"\0" * (scoring.MAX_WEIGHTS_BYTES + 1))
    with pytest.raises(scoring.EntryProblem, match="at most 4 MB"):
        scoring.load_rbm_weights(huge, "H500")
    marker = tmp_path / "pickle-ran"

    class Payload:
        def __reduce__(self) -> tuple[object, ...]:
            return (marker.touch, ())

    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(pickle.dumps({"rbm": Payload()}))
    with pytest.raises(scoring.EntryProblem, match=r"torch\.save"):
        scoring.load_rbm_weights(pickled, "H500")  # a plain pickle: refused before anything reads it
    torch.save({"rbm": Payload()}, pickled)  # torch's own format, holding the same pickle
    with pytest.raises(scoring.EntryProblem, match="weights_only"):
        scoring.load_rbm_weights(pickled, "H500")
    assert not marker.exists()


def test_hidden_digits_come_from_the_secret_and_splits_are_disjoint() -> None:
    first, again, other = (scoring.hidden_digits(s) for s in ("secret-1", "secret-1", "secret-2"))
    assert first["public"].shape == (scoring.PUBLIC_DIGITS, 784)
    assert first["private"].shape == (scoring.PRIVATE_DIGITS, 784)
    assert np.array_equal(first["public"], again["public"])
    assert not np.array_equal(first["public"], other["public"])
    public = {row.tobytes() for row in first["public"]}
    assert not any(row.tobytes() in public for row in first["private"])


def test_an_rbm_of_independent_pixels_scores_its_exact_log_likelihood() -> None:
    """With W = 0, p(v) is a product of pixel probabilities: the score is its mean log (exact: 3 hidden units)."""
    a = np.random.default_rng(0).normal(-1.0, 1.0, 784)
    W, b = np.zeros((784, 3)), np.zeros(3)
    found = scoring.log_likelihood(W, a, b, "secret-1")
    digits = scoring.hidden_digits("secret-1")["public"]
    exact_ll = float(np.mean(digits @ a - np.logaddexp(0, a).sum()))
    assert found.exact and found.public == pytest.approx(exact_ll, abs=1e-9)


def test_an_entry_of_more_than_25_hidden_units_is_estimated_and_the_board_shows_both_estimates() -> None:
    a = np.random.default_rng(0).normal(-1.0, 1.0, 784)
    W, b = 0.01 * np.random.default_rng(1).normal(size=(784, 30)), np.zeros(30)
    found = scoring.log_likelihood(W, a, b, "secret-1", salt="thirty")
    assert not found.exact and not found.marked
    assert found.public <= min(found.ais_public, found.raise_public)  # type: ignore[type-var]
    assert scoring.describe(found, 30) == f"30 (AIS {found.ais_public:.1f}, RAISE {found.raise_public:.1f})"


def test_a_sharply_peaked_model_within_the_size_limit_scores_far_below_any_band() -> None:
    rng = np.random.default_rng(1)
    W = 20.0 * np.sign(rng.normal(size=(784, 30)))
    found = scoring.log_likelihood(W, np.zeros(784), np.zeros(30), "secret-1", salt="peaked")
    assert found.public < -1000 and found.marked
    assert len(found.estimates) == 1  # even AIS puts it below the pass band: no longer estimate
