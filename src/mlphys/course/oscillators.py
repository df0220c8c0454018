"""Coupled oscillators for assignment 04: the system, its data format, yardsticks and plots.

A particle x_0 is coupled to hidden particles x_1..x_{N-1} (only x_0 is observed):

    m_0 x_0'' = -k_0 x_0 + sum_j D_j (x_j - x_0),    m_j x_j'' = -k_j x_j + D_j (x_0 - x_j).

Initial positions and velocities are standard normal.  A trajectory is x_0 sampled at the ``STEPS``
times 0, DT, ..., (STEPS - 1) DT; a network sees the first ``OBSERVED`` samples (the interval [0, T])
and must predict all of them (the interval [0, 2T]).

What the notebook's students write themselves (the equations of motion, the RK4 step, the data
pipeline, the network) is not here.  Here are the course's parameters, the random initial conditions,
the input format, two yardsticks any network must beat, the best linear predictor, and plots.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

STEPS = 60  # samples per trajectory, t = 0, DT, ..., 29.5
OBSERVED = 30  # the samples of the first half, [0, T], that a predictor sees
DT = 0.5  # time between two samples; T = OBSERVED * DT = 15
SUBSTEPS = 10  # RK4 steps per sampling interval when simulating
WEIGHTS_FILE = "lstm-oscillators.pt"


@dataclasses.dataclass(frozen=True)
class Oscillators:
    """Masses m, springs to the origin k and couplings to particle 0 D (D[0] is unused), one per particle.

    ``quartic`` is the coefficient q of an optional nonlinear coupling: each coupling force D_j d_j
    becomes D_j d_j + q d_j^3, with d_j = x_0 - x_j.
    """

    m: tuple[float, ...]
    k: tuple[float, ...]
    D: tuple[float, ...]
    quartic: float = 0.0

    def __post_init__(self) -> None:
        if not (len(self.m) == len(self.k) == len(self.D) >= 1):
            raise ValueError("m, k and D need one entry per particle")
        if min(self.m) <= 0:
            raise ValueError("masses must be positive")

    @property
    def n(self) -> int:
        """The number of particles N."""
        return len(self.m)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(m, k, D) as float64 arrays of shape (N,)."""
        return tuple(np.array(p, dtype=np.float64) for p in (self.m, self.k, self.D))  # type: ignore[return-value]


# The original course's homework (N = 2) and the tutorial's variant with two hidden particles (N = 3).
COURSE_N2 = Oscillators(m=(2.0, 1.0), k=(0.1, 0.0), D=(0.0, 0.2))
COURSE_N3 = Oscillators(m=(2.0, 1.0, 1.0), k=(0.1, 0.0, 0.3), D=(0.0, 0.1, 1.0))


def sample_times(steps: int = STEPS, dt: float = DT) -> np.ndarray:
    """The times t = 0, dt, ..., (steps - 1) dt of a trajectory's samples."""
    return dt * np.arange(steps)


def initial_conditions(n: int, particles: int, rng: np.random.Generator | int) -> tuple[np.ndarray, np.ndarray]:
    """Standard normal positions and velocities, each of shape (n, particles), positions drawn first."""
    rng = np.random.default_rng(rng)
    x = rng.standard_normal((n, particles))
    v = rng.standard_normal((n, particles))
    return x, v


def observed_input(observed: Any, steps: int = STEPS) -> Any:
    """The network's input: the observed samples (batch, OBSERVED), followed by zeros up to ``steps``.

    Works for numpy arrays and torch tensors; the result has the input's type, dtype and device.
    """
    if isinstance(observed, np.ndarray):
        padded = np.zeros((observed.shape[0], steps), dtype=observed.dtype)
    else:
        import torch

        padded = torch.zeros((observed.shape[0], steps), dtype=observed.dtype, device=observed.device)
    padded[:, : observed.shape[1]] = observed
    return padded


def second_half_mse(predicted: np.ndarray, true: np.ndarray, observed: int = OBSERVED) -> float:
    """Mean squared error of the prediction over the second half, [T, 2T], of every trajectory."""
    predicted, true = np.asarray(predicted, dtype=np.float64), np.asarray(true, dtype=np.float64)
    return float(np.mean((predicted[:, observed:] - true[:, observed:]) ** 2))


def error_by_time(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Mean squared error at each sample time, averaged over the batch: shape (steps,)."""
    return np.mean((np.asarray(predicted, dtype=np.float64) - np.asarray(true, dtype=np.float64)) ** 2, axis=0)


# ---- yardsticks ------------------------------------------------------------------------------------


def predict_zero(observed: np.ndarray, steps: int = STEPS) -> np.ndarray:
    """The laziest prediction: the observed first half, then x_0 = 0."""
    return observed_input(np.asarray(observed, dtype=np.float64), steps)


def predict_constant_frequency(
    observed: np.ndarray, steps: int = STEPS, dt: float = DT, omegas: np.ndarray | None = None
) -> np.ndarray:
    """Fit x_0(t) = a cos(wt) + b sin(wt) to each observed half, best w of a grid, and continue it.

    A single oscillation is what one would guess without knowing about the hidden particles; the
    coupled system beats (two frequencies), so this extrapolation drifts off in the second half.
    """
    observed = np.asarray(observed, dtype=np.float64)
    omegas = np.linspace(0.02, 2.0, 200) if omegas is None else np.asarray(omegas, dtype=np.float64)
    t_obs, t_all = sample_times(observed.shape[1], dt), sample_times(steps, dt)
    best = np.full(len(observed), np.inf)
    prediction = np.zeros((len(observed), steps))
    for w in omegas:
        basis = np.stack([np.cos(w * t_obs), np.sin(w * t_obs)], axis=1)  # (observed, 2)
        coefficients, *_ = np.linalg.lstsq(basis, observed.T, rcond=None)  # (2, batch)
        residual = np.sum((basis @ coefficients - observed.T) ** 2, axis=0)
        better = residual < best
        best = np.where(better, residual, best)
        continued = (np.stack([np.cos(w * t_all), np.sin(w * t_all)], axis=1) @ coefficients).T
        prediction[better] = continued[better]
    prediction[:, : observed.shape[1]] = observed
    return prediction


class LinearPredictor:
    """The best prediction that is linear in the observed half, fitted by least squares.

    The course's system is linear: x_0 at any time is a linear function of the 2N initial values, and
    so (when the first half determines them) of the observed samples.  A linear predictor fitted on
    enough trajectories is therefore essentially exact, the physical limit for this task; for the
    nonlinear (quartic) variant it is not.
    """

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights  # (OBSERVED + 1, STEPS), the last row a bias

    @classmethod
    def fit(cls, observed: np.ndarray, full: np.ndarray, ridge: float = 1e-10) -> LinearPredictor:
        features = np.hstack([np.asarray(observed, np.float64), np.ones((len(observed), 1))])
        gram = features.T @ features
        gram += ridge * np.trace(gram) / len(gram) * np.eye(len(gram))
        return cls(np.linalg.solve(gram, features.T @ np.asarray(full, np.float64)))

    def predict(self, observed: np.ndarray) -> np.ndarray:
        features = np.hstack([np.asarray(observed, np.float64), np.ones((len(observed), 1))])
        return features @ self.weights


# ---- the trained network's weights -------------------------------------------------------------------


def pick_device() -> str:
    """The device to train on: "cuda" when a GPU is available, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def save_model(model: Any, folder: str | Path = ".") -> Path:
    """Save the model's weights (plain tensors only) where the grader looks for them."""
    import torch

    path = Path(folder) / WEIGHTS_FILE
    torch.save({"model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, path)
    return path


def load_model(model: Any, folder: str | Path = ".") -> bool:
    """Load saved weights into ``model``; False if there are none yet."""
    import torch

    path = Path(folder) / WEIGHTS_FILE
    if not path.exists():
        return False
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    return True


# ---- plots ---------------------------------------------------------------------------------------------


def plot_trajectories(
    true: np.ndarray, predictions: dict[str, np.ndarray], count: int = 4, dt: float = DT, observed: int = OBSERVED
):
    """True x_0 (black) against each named prediction, for the first ``count`` trajectories; the Figure."""
    import matplotlib.pyplot as plt

    times = sample_times(np.shape(true)[1], dt)
    fig, axes = plt.subplots(1, count, figsize=(3.6 * count, 2.8), sharey=True, squeeze=False)
    for j, ax in enumerate(axes[0]):
        ax.axvspan(times[observed] - dt / 2, times[-1], color="0.93", lw=0)
        ax.plot(times, np.asarray(true)[j], color="black", lw=2.2, label="true")
        for i, (name, predicted) in enumerate(predictions.items()):
            ax.plot(times, np.asarray(predicted)[j], color=f"C{i}", lw=1.3, ls="--", label=name)
        ax.set_xlabel("$t$")
        ax.set_title(f"trajectory {j}", fontsize=9)
    axes[0][0].set_ylabel("$x_0(t)$")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def plot_error_by_time(true: np.ndarray, predictions: dict[str, np.ndarray], dt: float = DT, ax=None):
    """The mean squared error against time of each named prediction, on a log scale; the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.subplots(figsize=(6, 3.6))[1]
    times = sample_times(np.shape(true)[1], dt)
    for i, (name, predicted) in enumerate(predictions.items()):
        ax.semilogy(times, np.maximum(error_by_time(predicted, true), 1e-12), color=f"C{i}", label=name)
    ax.axvline(times[OBSERVED] - dt / 2, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("$t$")
    ax.set_ylabel("mean squared error of $x_0$")
    ax.legend(fontsize=8)
    return ax


__all__ = [
    "COURSE_N2",
    "COURSE_N3",
    "DT",
    "OBSERVED",
    "STEPS",
    "SUBSTEPS",
    "WEIGHTS_FILE",
    "LinearPredictor",
    "Oscillators",
    "error_by_time",
    "initial_conditions",
    "load_model",
    "observed_input",
    "pick_device",
    "plot_error_by_time",
    "plot_trajectories",
    "predict_constant_frequency",
    "predict_zero",
    "sample_times",
    "save_model",
    "second_half_mse",
]
