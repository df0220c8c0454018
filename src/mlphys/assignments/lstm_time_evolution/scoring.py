"""Scoring the trained LSTM of 04_lstm_time_evolution where the student's code cannot reach the verdict.

1. The weights file is loaded here with ``torch.load(weights_only=True)`` (no pickled code runs), after a
   size check, and kept as plain float arrays.
2. The hidden trajectories are simulated here, by the trusted simulator, from initial conditions drawn
   from the course secret; no sandbox sees the secret or a second half.
3. The student's model runs in a fresh sandboxed kernel built from their model cell alone (plus
   :mod:`kernel`'s helper), which receives the weights and the observed first halves only.
4. Its predictions are validated here (shape, finite numbers) and the second-half error is computed
   here, beside the two yardsticks on the same trajectories.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import typing as t
from pathlib import Path

import numpy as np

from mlphys.assignments.lstm_time_evolution import simulator
from mlphys.course import oscillators
from mlphys.grading.hidden import StudentError, StudentFunction
from mlphys.grading.isolated import CellFailed, KernelProblem, run_fresh
from mlphys.grading.submission import Submission
from mlphys.kernel import wire

RECORD_KEY = "lstm_time_evolution"
MODEL_CELL = "model"
MODEL_CLASS = "TrajectoryLSTM"
HIDDEN_TRAJECTORIES = 500
MAX_WEIGHTS_BYTES = 5 * 2**20
MAX_PARAMETERS = 1_000_000
# What the model cell may rely on, as the notebook says.
PREAMBLE = (
    "import numpy as np\nimport torch\nfrom torch import nn\n"
    "from mlphys.course.oscillators import OBSERVED, STEPS, observed_input\n"
)
KERNEL_SOURCE = Path(__file__).with_name("kernel.py").read_text()
_PREDICT = "__mlphys_lstm_predict"


class EntryProblem(Exception):
    """Why the model cannot be scored, in words the student can act on."""


@functools.lru_cache(maxsize=4)
def hidden_trajectories(secret: str) -> np.ndarray:
    """x_0 at all sample times of the course's hidden test trajectories (N = 2), drawn from its secret."""
    digest = hashlib.sha256(f"lstm-time-evolution:{secret}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "little"))
    x, v = oscillators.initial_conditions(HIDDEN_TRAJECTORIES, oscillators.COURSE_N2.n, rng)
    return simulator.trajectories(x, v, oscillators.COURSE_N2)


@dataclasses.dataclass
class ModelScore:
    """The model's result; ``stage`` says how far it got: weights, model or scored."""

    stage: str = "weights"
    problem: str | None = None
    mse: float | None = None  # second-half mean squared error on the hidden trajectories
    zero_mse: float | None = None  # the yardsticks on the same trajectories
    frequency_mse: float | None = None
    weights_sha256: str | None = None

    @property
    def best_yardstick(self) -> float | None:
        if self.zero_mse is None or self.frequency_mse is None:
            return None
        return min(self.zero_mse, self.frequency_mse)


def load_model_weights(path: Path, max_bytes: int = MAX_WEIGHTS_BYTES) -> dict[str, np.ndarray]:
    """The ``"model"`` state dict of a weights file as float arrays, or EntryProblem."""
    import torch

    size = path.stat().st_size
    if size > max_bytes:
        raise EntryProblem(
            f"Your weights file {path.name} has {size / 2**20:.1f} MB; at most {max_bytes / 2**20:.0f} MB are allowed."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled code, a corrupt file, anything not plain tensors
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EntryProblem(
            f"Your weights file {path.name} cannot be loaded as plain tensors (torch.load with weights_only=True "
            f"refused it: {first_line}). Save it with save_model."
        ) from None
    tensors = state.get("model") if isinstance(state, dict) and set(state) == {"model"} else None
    if not isinstance(tensors, dict):
        raise EntryProblem(f"{path.name} must hold a dict {{'model': state dict}} (save it with save_model).")
    plain: dict[str, np.ndarray] = {}
    for key, value in tensors.items():
        if type(key) is not str or not isinstance(value, torch.Tensor | np.ndarray):
            raise EntryProblem(f"{path.name}: the model's state dict must map parameter names to tensors.")
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        if array.dtype.kind not in "fiub":
            raise EntryProblem(f"{path.name}: parameter {key!r} has dtype {array.dtype}; only numbers are allowed.")
        plain[key] = np.array(array, copy=True)
    count = sum(a.size for a in plain.values())
    if count > MAX_PARAMETERS:
        raise EntryProblem(f"{path.name} holds {count:,} numbers; at most {MAX_PARAMETERS:,} are allowed.")
    return plain


def _predict_fresh(submission: Submission, state: dict[str, np.ndarray], observed: np.ndarray) -> t.Any:
    """The student's predictions from a brand-new sandboxed kernel built from their model cell alone."""
    cells = [PREAMBLE, submission.cell_source(MODEL_CELL) or "", KERNEL_SOURCE]

    def transport(request: dict[str, t.Any]) -> t.Any:
        return run_fresh(submission.isolation, cells, request)

    return StudentFunction(_PREDICT, transport)(wire.RemoteRef(MODEL_CLASS), state, observed)


def _predict_in_process(namespace: dict[str, t.Any], state: dict[str, np.ndarray], observed: np.ndarray) -> t.Any:
    """The instructor's own notebook: the same steps, with the class of their kernel."""
    if MODEL_CLASS not in namespace:
        raise EntryProblem(f"The notebook does not define {MODEL_CLASS}.")
    helpers: dict[str, t.Any] = {}
    exec(compile(KERNEL_SOURCE, "kernel.py", "exec"), helpers)
    return helpers[_PREDICT](namespace[MODEL_CLASS], state, observed)


def _predictions(submission: Submission, state: dict[str, np.ndarray], observed: np.ndarray) -> np.ndarray:
    try:
        if submission.in_process is not None:
            raw = _predict_in_process(submission.in_process, state, observed)
        else:
            raw = _predict_fresh(submission, state, observed)
    except StudentError as exc:
        raise EntryProblem(
            f"Building {MODEL_CLASS}(), loading your weights into it or calling its predict raised "
            f"{exc.type_name}: {exc.message}"
        ) from None
    except CellFailed as exc:
        raise EntryProblem(
            f"Your model cell raised {exc.ename}: {exc.evalue} when run on its own (with numpy as np, torch, "
            "`from torch import nn` and OBSERVED, STEPS, observed_input imported): it must contain everything "
            "your network needs."
        ) from None
    except KernelProblem as exc:
        raise EntryProblem(f"Running your model failed: {exc}.") from None
    except wire.WireError as exc:
        raise EntryProblem(f"Your model handed back data the grader cannot accept ({exc}).") from None
    return validate_predictions(raw, len(observed))


def validate_predictions(value: t.Any, n: int) -> np.ndarray:
    """(n, STEPS) float64 predictions; EntryProblem if not acceptable."""
    want = (n, oscillators.STEPS)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu" or value.shape != want:
        shape = getattr(value, "shape", None)
        raise EntryProblem(
            f"predict must return a numpy array of shape {want} (x_0 at all {oscillators.STEPS} sample times); it "
            f"returned {type(value).__name__}{' of shape ' + str(shape) if shape is not None else ''}."
        )
    predicted = value.astype(np.float64)
    if not np.all(np.isfinite(predicted)):
        raise EntryProblem("predict returned values that are not finite (NaN or infinity).")
    return predicted


def score_model(submission: Submission) -> ModelScore:
    """Score the submitted weights on the hidden trajectories, once per grading run.  Never raises."""
    cached = submission.records.get("_lstm_score")
    if isinstance(cached, ModelScore):
        return cached
    score = ModelScore()
    true = hidden_trajectories(submission.secret)
    observed = true[:, : oscillators.OBSERVED]
    score.zero_mse = oscillators.second_half_mse(oscillators.predict_zero(observed), true)
    score.frequency_mse = oscillators.second_half_mse(oscillators.predict_constant_frequency(observed), true)
    try:
        path = submission.file(oscillators.WEIGHTS_FILE)
        if path is None:
            raise EntryProblem(
                f"There is no weights file {oscillators.WEIGHTS_FILE} in your submission. Run the training cell, "
                "which saves it, and submit it together with the notebook."
            )
        score.weights_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        state = load_model_weights(path)
        score.stage = "model"
        predicted = _predictions(submission, state, observed)
    except EntryProblem as exc:
        score.problem = str(exc)
    else:
        score.mse = oscillators.second_half_mse(predicted, true)
        score.stage = "scored"
    submission.records["_lstm_score"] = score
    submission.record(RECORD_KEY, dataclasses.asdict(score))
    return score


# ---- what the hidden tests assert ------------------------------------------------------------------


def expect_valid_predictions(score: ModelScore) -> None:
    """The weights load into a fresh model, and predict gives finite predictions of the right shape."""
    if score.stage != "scored":
        raise AssertionError(score.problem or "Your model could not be scored.")


def expect_mse_below(score: ModelScore, fraction: float) -> None:
    """The second-half error on the hidden trajectories is below ``fraction`` x the better yardstick."""
    expect_valid_predictions(score)
    assert score.mse is not None and score.best_yardstick is not None
    ratio = score.mse / score.best_yardstick
    if not ratio < fraction:
        raise AssertionError(
            f"On the grader's hidden trajectories, the mean squared error of your predictions in the second half "
            f"is {score.mse:.3g}, {ratio:.3g} times that of the better yardstick; this test needs below "
            f"{fraction:g} times."
        )
