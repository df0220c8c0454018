"""04_lstm_time_evolution: the trained model is scored out of the student's reach.

The grader loads the weights itself (weights_only, size limits), simulates the hidden trajectories from
the course secret with its trusted simulator, runs the student's model cell alone in a fresh sandbox on
the observed halves only, and computes the error against the yardsticks itself.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, GradedCohort
from mlphys.assignments.lstm_time_evolution import cases, scoring
from mlphys.assignments.lstm_time_evolution.scoring import (
    MODEL,
    EntryProblem,
    hidden_trajectories,
    score_model,
    validate_predictions,
)
from mlphys.course import oscillators
from mlphys.demo.cohort import materials
from mlphys.grading.challenge import load_weights
from mlphys.grading.isolated import Isolation
from mlphys.grading.submission import Submission

ASSIGNMENT = "04_lstm_time_evolution"


def load_model_weights(path: Path) -> dict:
    return load_weights(path, MODEL.weights_parts, MODEL.max_weights_bytes, MODEL.max_parameters)


def _save(folder: Path, state: object) -> Path:
    path = folder / oscillators.WEIGHTS_FILE
    torch.save(state, path)
    return path


# ---- the grader's checks, one by one ------------------------------------------------------------------


def test_weights_load_as_plain_arrays(tmp_path: Path) -> None:
    loaded = load_model_weights(_save(tmp_path, {"model": {"w": torch.ones(2, 3), "n": torch.tensor(4)}}))
    assert set(loaded["model"]) == {"w", "n"} and isinstance(loaded["model"]["w"], np.ndarray)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the plain pickle's protocol
def test_weights_that_carry_pickled_code_are_refused_without_running_it(tmp_path: Path) -> None:
    if os.path.exists(cases.PICKLE_MARKER):
        os.remove(cases.PICKLE_MARKER)
    path = tmp_path / oscillators.WEIGHTS_FILE
    path.write_bytes(pickle.dumps({"model": cases.PicklePayload()}))
    with pytest.raises(EntryProblem, match=r"torch\.save"):
        load_model_weights(path)
    assert not os.path.exists(cases.PICKLE_MARKER)


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ({"model": {"w": torch.zeros(1_600_000)}}, "MB; at most 5 MB"),
        ({"model": {f"w{i}": torch.zeros(1000, 100) for i in range(11)}}, "more than 1,000,000 numbers"),
        ({"encoder": {}, "decoder": {}}, "exactly the keys 'model'"),
        ({"model": [torch.zeros(3)]}, "'model' must be a state dict"),
        ({"model": {"w": torch.zeros(3, dtype=torch.complex64)}}, "only plain real numbers"),
    ],
)
def test_weights_too_large_or_of_the_wrong_structure_are_refused(tmp_path: Path, state: object, problem: str) -> None:
    with pytest.raises(EntryProblem, match=problem.replace("(", r"\(").replace("{", r"\{")):
        load_model_weights(_save(tmp_path, state))


def test_predictions_must_cover_every_sample_time_and_be_finite() -> None:
    assert validate_predictions(np.zeros((4, 60), dtype=np.float32), 4).dtype == np.float64
    for bad in (np.zeros((4, 30)), np.zeros((3, 60)), np.zeros((4, 60, 1)), [[0.0] * 60] * 4):
        with pytest.raises(EntryProblem, match=r"shape \(4, 60\)"):
            validate_predictions(bad, 4)
    nan = np.zeros((4, 60))
    nan[2, 50] = np.nan
    with pytest.raises(EntryProblem, match="not finite"):
        validate_predictions(nan, 4)


def test_hidden_trajectories_follow_the_secret() -> None:
    first, again, other = hidden_trajectories("one"), hidden_trajectories("one"), hidden_trajectories("two")
    assert first.shape == (scoring.HIDDEN_TRAJECTORIES, oscillators.STEPS)
    assert np.array_equal(first, again) and not np.allclose(first, other)
    # Trajectories of the course's system: the linear limit fitted on other trajectories continues them.
    x, v = oscillators.initial_conditions(300, 2, 0)
    from mlphys.assignments.lstm_time_evolution import simulator

    fit = simulator.trajectories(x, v, oscillators.COURSE_N2)
    linear = oscillators.LinearPredictor.fit(fit[:, : oscillators.OBSERVED], fit)
    assert oscillators.second_half_mse(linear.predict(first[:, : oscillators.OBSERVED]), first) < 1e-10


# ---- scoring in a fresh sandbox --------------------------------------------------------------------------


def _submission(folder: Path, model_cell: str) -> Submission:
    return Submission(
        files=folder, cells={scoring.MODEL_CELL: model_cell}, isolation=Isolation(timeout=60), secret="test-secret"
    )


@pytest.fixture(scope="module")
def reference_model() -> str:
    return cases.reference_cell(materials(REPO, ASSIGNMENT), scoring.MODEL_CELL)


def test_an_untrained_model_is_scored_in_a_sandbox_and_fails_the_bands(tmp_path: Path, reference_model: str) -> None:
    cases.untrained_weights(tmp_path, reference_model)
    submission = _submission(tmp_path, reference_model)
    score = score_model(submission)
    assert score.stage == "scored", score.problem
    assert score.public_cost is not None and score.best_yardstick is not None
    assert score.public_cost > 0.5 * score.best_yardstick
    with pytest.raises(AssertionError, match="times that of the better yardstick"):
        scoring.expect_mse_below(score, 0.1)
    assert submission.records[scoring.RECORD_KEY]["entries"][0]["stage"] == "scored"
    assert score_model(submission) is score  # scored once per grading run


def test_a_model_that_hunts_for_the_hidden_data_finds_nothing(tmp_path: Path, reference_model: str) -> None:
    cases.untrained_weights(tmp_path, reference_model)
    score = score_model(_submission(tmp_path, reference_model + cases._SNOOPING))
    # It fell back to predicting zero: neither the grader's modules nor the secret nor a file gave it more.
    assert score.public_cost == pytest.approx(score.zero_mse)
    # And zeros do not come from its LSTM.
    assert score.stage == "lstm" and "do not come from its LSTM" in (score.problem or "")


def test_predictions_that_do_not_come_from_the_lstm_score_nothing(tmp_path: Path, reference_model: str) -> None:
    """The exact linear continuation, saved beside an LSTM that predict never runs: valid, exact, and not the task."""
    cases.untrained_weights(tmp_path, reference_model)
    cases.linear_continuation(tmp_path / oscillators.WEIGHTS_FILE, tmp_path / oscillators.WEIGHTS_FILE)
    score = score_model(_submission(tmp_path, reference_model + cases._LINEAR_CONTINUATION))
    assert score.public_cost is not None and score.public_cost < 1e-12  # what it would have scored
    assert score.stage == "lstm" and "do not come from its LSTM" in (score.problem or "")
    with pytest.raises(AssertionError, match="do not come from its LSTM"):
        scoring.expect_mse_below(score, 0.005)


def test_a_network_without_an_lstm_is_not_the_task(tmp_path: Path) -> None:
    model = "class TrajectoryLSTM(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    _save(tmp_path, {"model": {"net.weight": torch.zeros(60, 30), "net.bias": torch.zeros(60)}})
    score = score_model(_submission(tmp_path, model))
    assert score.stage == "model" and "holds no LSTM" in (score.problem or "")


@pytest.mark.parametrize("seed", range(6))
def test_an_untrained_lstm_changes_its_predictions_with_its_parameters(reference_model: str, seed: int) -> None:
    """An honest network, even untrained (nearly the same constant for every trajectory), passes the LSTM check for
    any secret; the same check fails a predict that does not use the network."""
    namespace: dict = {}
    exec(MODEL.preamble + reference_model, namespace)
    torch.manual_seed(seed)
    model = namespace["TrajectoryLSTM"]()
    state = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    observed = hidden_trajectories("test-secret")[:100, : oscillators.OBSERVED]

    def predict(weights: dict) -> np.ndarray:
        model.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
        return np.asarray(model.predict(observed), dtype=np.float64)

    predicted, names = predict(state), scoring.lstm_tensors(state)
    for secret in ("one", "two", "three"):
        shuffled = predict(scoring.shuffled_lstm(state, names, secret))
        assert scoring.lstm_change(predicted, shuffled) >= scoring.MIN_LSTM_CHANGE
    assert scoring.lstm_change(predicted, predicted.copy()) == 0.0


def test_an_lstm_is_recognised_by_its_four_gates_in_any_layout() -> None:
    def tensors(module: torch.nn.Module) -> list[str]:
        return scoring.lstm_tensors({k: v.detach().numpy() for k, v in module.state_dict().items()})

    assert len(tensors(torch.nn.LSTM(2, 8, num_layers=2, bidirectional=True))) == 16
    cell = ["0.weight_ih", "0.weight_hh", "0.bias_ih", "0.bias_hh"]
    assert tensors(torch.nn.Sequential(torch.nn.LSTMCell(3, 5))) == cell
    assert "weight_hr_l0" in tensors(torch.nn.LSTM(2, 8, proj_size=4))
    assert tensors(torch.nn.GRU(2, 8)) == tensors(torch.nn.RNN(2, 8)) == tensors(torch.nn.Linear(30, 60)) == []


# A model that has seen the hidden trajectories forges a reply that the wire refuses, with what it saw (or 12 MB)
# as the array's dtype name: the grader's refusal quotes none of it, and stays short.
_FORGING = """

class _Forging(TrajectoryLSTM):
    def predict(self, observed):
        import json
        import mlphys.kernel.wire as wire
        name = {name}
        wire._encode = lambda value, depth, known=None: {{"$nd": [name, [0], ""]}}
        return np.zeros((len(observed), STEPS))


TrajectoryLSTM = _Forging
"""


@pytest.mark.parametrize("name", ["json.dumps(np.asarray(observed).round(4).tolist())", "'x' * 12_000_000"])
def test_a_forged_reply_that_the_grader_refuses_carries_nothing_out(
    tmp_path: Path, reference_model: str, name: str
) -> None:
    cases.untrained_weights(tmp_path, reference_model)
    score = score_model(_submission(tmp_path, reference_model + _FORGING.format(name=name)))
    assert score.stage == "model" and score.public_cost is None
    problem = score.problem or ""
    assert "cannot accept" in problem and len(problem) < 1000
    observed = hidden_trajectories("test-secret")[:, : oscillators.OBSERVED].round(4)
    assert "xxxxxxxx" not in problem and "[[" not in problem
    assert not [x for x in observed[:3, 1:].ravel() if f"{x}" in problem]
    with pytest.raises(AssertionError) as failed:
        scoring.expect_valid_predictions(score)
    assert len(str(failed.value)) < 1000


def test_a_model_cell_that_needs_other_cells_is_explained(tmp_path: Path, reference_model: str) -> None:
    cases.untrained_weights(tmp_path, reference_model)
    score = score_model(_submission(tmp_path, "WIDTH = HIDDEN_SIZE  # defined in another cell\n" + reference_model))
    assert score.stage == "model" and "without relying on other cells" in (score.problem or "")


def test_a_missing_weights_file_is_explained(tmp_path: Path, reference_model: str) -> None:
    score = score_model(_submission(tmp_path, reference_model))
    assert score.stage == "weights" and "no weights file lstm-oscillators.pt" in (score.problem or "")


# ---- the demo cohort, graded with nbgrader -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("student", "problem"),
    [
        ("mistake_lstm_second_half_only", "shape (500, 60)"),
        ("attack_lstm_nan", "not finite"),
        ("attack_lstm_huge_weights", "MB; at most 5 MB"),
        ("attack_lstm_pickled_weights", "torch.save"),
    ],
)
def test_each_fault_of_the_model_is_explained_to_the_student(
    course: dict[str, GradedCohort], student: str, problem: str
) -> None:
    assert problem in course[ASSIGNMENT].feedback_html(student).read_text()


def test_a_forged_reply_carries_no_hidden_data_into_the_feedback_and_floods_nothing(
    course: dict[str, GradedCohort],
) -> None:
    cohort = course[ASSIGNMENT]
    student = "attack_lstm_forged_reply"
    assert cohort.scores[student] == cohort.case(student).expected_points
    observed = hidden_trajectories(os.environ["MLPHYS_CHALLENGE_SECRET"])[:, : oscillators.OBSERVED].round(4)
    seen = json.dumps(observed[:2].tolist())[2:60]  # what the forged name begins with
    for path, honest in [
        (cohort.autograded_notebook(student), cohort.autograded_notebook("ref_solution")),
        (cohort.feedback_html(student), cohort.feedback_html("ref_solution")),
    ]:
        text = path.read_text()
        assert seen not in text and "cannot accept" in text
        assert path.stat().st_size < honest.stat().st_size + 100_000, (path, path.stat().st_size)


def test_pickled_weights_never_ran_while_grading(course: dict[str, GradedCohort]) -> None:
    assert (
        course[ASSIGNMENT].scores["attack_lstm_pickled_weights"]
        == course[ASSIGNMENT].case("attack_lstm_pickled_weights").expected_points
    )
    assert not os.path.exists(cases.PICKLE_MARKER)
