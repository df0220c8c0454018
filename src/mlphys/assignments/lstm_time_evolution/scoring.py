"""Scoring the trained LSTM of 04_lstm_time_evolution where the student's code cannot reach the verdict.

It goes through the engine's challenge protocol (:mod:`mlphys.grading.challenge`) with one track and no
leaderboard: the assignment does not register it as its ``challenge``, its hidden tests call
:func:`score_model` instead.

1. The weights file is loaded in the grader by the protocol's ``load_weights`` (sizes checked first,
   ``torch.load(weights_only=True)``, plain number arrays only).
2. The hidden trajectories are simulated here, by the trusted simulator, from initial conditions drawn
   from the course secret; no sandbox sees the secret or a second half.
3. The student's model runs in a fresh sandboxed kernel built from their model cell alone (plus
   :mod:`kernel`'s helper), which receives the weights and the observed first halves only.
4. Its predictions are validated here (shape, finite numbers), and the second-half error is computed
   here, beside the two yardsticks on the same trajectories.
5. The predictions must come from the LSTM (the task): the weights file must hold an LSTM's parameters, and
   with them shuffled (from the secret) the same kernel must predict materially other second halves.  A
   ``predict`` that returns the exact linear continuation (the course's ``LinearPredictor``) and leaves the
   network unused would otherwise earn the model's points.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
import typing as t
from pathlib import Path

import numpy as np

from mlphys.assignments.lstm_time_evolution import simulator
from mlphys.course import oscillators
from mlphys.grading.challenge import Challenge, EntryProblem, Scored, Scoring, finite_array, score_track
from mlphys.kernel import wire

if t.TYPE_CHECKING:
    from mlphys.grading.submission import Submission

RECORD_KEY = "lstm_time_evolution"
TRACK = "N2"
MODEL_CELL = "model"
MODEL_CLASS = "TrajectoryLSTM"
HIDDEN_TRAJECTORIES = 500
_PREDICT = "__mlphys_lstm_predict"
# An LSTM's tensors in a state dict: nn.LSTM's weight_ih_l0, bias_hh_l1_reverse, ...; nn.LSTMCell's weight_ih, ...
_LSTM_TENSOR = re.compile(
    r"(?P<prefix>(?:.*\.)?)(?P<kind>weight|bias)_(?P<gate>ih|hh)(?P<suffix>(?:_l[0-9]+)?(?:_reverse)?)"
)
# With its LSTM's parameters shuffled, a model's second halves must change by at least this fraction of their
# variance (measured: the reference's by 1.0-1.1, untrained networks' by 0.7 and more, for every seed and secret
# tried; a predict that does not use the network, by 0).
MIN_LSTM_CHANGE = 0.05

__all__ = ["EntryProblem", "expect_mse_below", "expect_valid_predictions", "score_model"]


@functools.lru_cache(maxsize=4)
def hidden_trajectories(secret: str) -> np.ndarray:
    """x_0 at all sample times of the course's hidden test trajectories (N = 2), drawn from its secret."""
    digest = hashlib.sha256(f"lstm-time-evolution:{secret}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "little"))
    x, v = oscillators.initial_conditions(HIDDEN_TRAJECTORIES, oscillators.COURSE_N2.n, rng)
    return simulator.trajectories(x, v, oscillators.COURSE_N2)


@dataclasses.dataclass
class ModelScored(Scored):
    """The protocol's result, with the two yardsticks on the same hidden trajectories.

    ``public_cost`` is the model's second-half mean squared error on all hidden trajectories.
    """

    zero_mse: float | None = None
    frequency_mse: float | None = None

    @property
    def best_yardstick(self) -> float | None:
        if self.zero_mse is None or self.frequency_mse is None:
            return None
        return min(self.zero_mse, self.frequency_mse)


def validate_predictions(value: t.Any, n: int) -> np.ndarray:
    """(n, STEPS) float64 predictions; EntryProblem if not acceptable."""
    want = (n, oscillators.STEPS)
    return finite_array(
        value,
        want,
        wrong_shape=(
            f"predict must return a numpy array of shape {want} (x_0 at all {oscillators.STEPS} sample times); "
            "it returned"
        ),
        not_finite="predict returned values that are not finite (NaN or infinity).",
    )


def lstm_tensors(state: dict[str, np.ndarray]) -> list[str]:
    """The names of the tensors of every LSTM in a state dict (nn.LSTM or nn.LSTMCell, any layer or direction).

    An LSTM is recognised by its input and recurrent weights: ``weight_ih`` (4 H, I) and ``weight_hh`` (4 H, H) of the
    same prefix and suffix (a GRU has 3 H rows, a plain RNN H).
    """
    found: list[str] = []
    for name, weights in state.items():
        match = _LSTM_TENSOR.fullmatch(name)
        if not match or match["kind"] != "weight" or match["gate"] != "hh" or weights.ndim != 2:
            continue
        rows, hidden = weights.shape
        prefix, suffix = match["prefix"], match["suffix"]
        inputs, projection = state.get(f"{prefix}weight_ih{suffix}"), f"{prefix}weight_hr{suffix}"
        four_gates = rows > 0 and (rows == 4 * hidden or (rows % 4 == 0 and projection in state))  # proj_size
        if four_gates and inputs is not None and inputs.ndim == 2 and inputs.shape[0] == rows:
            names = [f"{prefix}{kind}_{gate}{suffix}" for kind in ("weight", "bias") for gate in ("ih", "hh")]
            found += [n for n in [*names, projection] if n in state]
    return found


def shuffled_lstm(state: dict[str, np.ndarray], names: list[str], secret: str) -> dict[str, np.ndarray]:
    """``state`` with the entries of each named tensor permuted (from the secret; the same shapes and values)."""
    digest = hashlib.sha256(f"lstm-time-evolution-shuffle:{secret}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "little"))
    return {
        name: rng.permutation(value.ravel()).reshape(value.shape) if name in names else value
        for name, value in state.items()
    }


def lstm_change(predicted: np.ndarray, shuffled: np.ndarray) -> float:
    """How much the second halves changed: the mean square of the change over the variance of the predictions.

    Over their variance, not their mean square: an untrained network predicts nearly the same constant for
    every trajectory (its output layer's bias), and its LSTM moves that by much less than the constant.
    """
    second = slice(oscillators.OBSERVED, None)
    spread = max(float(np.var(predicted[:, second])), 1e-12)
    return float(np.mean((shuffled[:, second] - predicted[:, second]) ** 2)) / spread


class TrajectoryModel(Challenge):
    """The protocol's view of this assignment's model: one track, the ``model`` cell, one weights part."""

    key = RECORD_KEY
    title = "An LSTM that predicts the time evolution of coupled oscillators"
    tracks = (TRACK,)
    metric = "second-half MSE"
    weights_parts = ("model",)
    max_weights_bytes = 5 * 2**20
    max_parameters = 1_000_000
    cells = (MODEL_CELL,)
    # What the model cell may rely on, as the notebook says.
    preamble = (
        "import numpy as np\nimport torch\nfrom torch import nn\n"
        "from mlphys.course.oscillators import OBSERVED, STEPS, observed_input\n"
    )
    kernel_source = Path(__file__).with_name("kernel.py").read_text()

    def weights_filename(self, track: str) -> str:
        return oscillators.WEIGHTS_FILE

    def score(self, track: str, state: dict[str, dict[str, np.ndarray]], context: Scoring) -> Scored:
        true = hidden_trajectories(context.secret)
        observed = true[:, : oscillators.OBSERVED]
        entry = ModelScored(
            track,
            stage="model",
            zero_mse=oscillators.second_half_mse(oscillators.predict_zero(observed), true),
            frequency_mse=oscillators.second_half_mse(oscillators.predict_constant_frequency(observed), true),
        )
        lstm = lstm_tensors(state["model"])
        if not lstm:
            entry.problem = (
                "Your weights file holds no LSTM: the task is a network whose predictions come from an LSTM "
                "(nn.LSTM or nn.LSTMCell, whose weight_ih and weight_hh have 4 x hidden_size rows). Save the "
                "state dict of your TrajectoryLSTM, with its LSTM in it, as the notebook does."
            )
            return entry
        try:
            with context.fresh_kernel([MODEL_CELL]).session(what="model") as session:
                model = wire.RemoteRef(MODEL_CLASS)
                predicted = validate_predictions(session.call(_PREDICT, model, state["model"], observed), len(observed))
                entry.public_cost = oscillators.second_half_mse(predicted, true)
                entry.stage = "lstm"
                shuffled = shuffled_lstm(state["model"], lstm, context.secret)
                changed = validate_predictions(session.call(_PREDICT, model, shuffled, observed), len(observed))
        except EntryProblem as exc:
            entry.problem = str(exc)
            return entry
        if not lstm_change(predicted, changed) >= MIN_LSTM_CHANGE:
            entry.problem = (
                "Your model's predictions do not come from its LSTM: with other values for the LSTM's parameters in "
                "your weights file, predict gave (nearly) the same second halves. The task is an LSTM that predicts: "
                "predict must run the network whose weights you saved."
            )
            return entry
        entry.stage = "scored"
        return entry


MODEL = TrajectoryModel()


def score_model(submission: Submission) -> ModelScored:
    """Score the submitted weights on the hidden trajectories, once per grading run.  Never raises."""
    cached = submission.cache.get(RECORD_KEY)
    if isinstance(cached, ModelScored):
        return cached
    scored = score_track(MODEL, submission, TRACK, submission.scoring(MODEL))
    if not isinstance(scored, ModelScored):  # it failed before scoring (weights): the yardsticks still hold
        true = hidden_trajectories(submission.secret)
        observed = true[:, : oscillators.OBSERVED]
        scored = ModelScored(**dataclasses.asdict(scored))
        scored.zero_mse = oscillators.second_half_mse(oscillators.predict_zero(observed), true)
        scored.frequency_mse = oscillators.second_half_mse(oscillators.predict_constant_frequency(observed), true)
    submission.cache[RECORD_KEY] = scored
    submission.record(RECORD_KEY, {"entries": [scored.to_record()]})
    return scored


# ---- what the hidden tests assert ------------------------------------------------------------------


def expect_valid_predictions(scored: ModelScored) -> None:
    """The weights load into a fresh model, and predict gives finite predictions of the right shape."""
    if scored.stage != "scored" or scored.public_cost is None:
        raise AssertionError(scored.problem or "Your model could not be scored.")


def expect_mse_below(scored: ModelScored, fraction: float) -> None:
    """The second-half error on the hidden trajectories is below ``fraction`` x the better yardstick."""
    expect_valid_predictions(scored)
    assert scored.public_cost is not None and scored.best_yardstick is not None
    ratio = scored.public_cost / scored.best_yardstick
    if not ratio < fraction:
        raise AssertionError(
            f"On the grader's hidden trajectories, the mean squared error of your predictions in the second half "
            f"is {scored.public_cost:.3g}, {ratio:.3g} times that of the better yardstick; this test needs below "
            f"{fraction:g} times."
        )
