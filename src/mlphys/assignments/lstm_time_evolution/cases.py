"""Simulated submissions for 04_lstm_time_evolution: the reference, typical mistakes and attacks.

Points (11 autograded, plus 2 for the written answer ``memory_answer``, graded by hand):

===================  ======  ================================================================
test cell            points  judges
===================  ======  ================================================================
test_equations       1       ``accelerations`` against the trusted equations (hypothesis)
test_rk4             3       ``rk4_step``: a trusted step, a single oscillator's exact motion,
                             time reversibility, the order (errors shrink ~16x per halving)
test_simulate        1       ``simulate`` against the trusted simulator
test_dataset         1       ``make_dataset``: the convention, zeros after the observed half
test_model_valid     1       the weights load into a fresh model; finite (500, 60) predictions that
                             come from its LSTM (they change when its parameters are shuffled)
test_model_learns    2       second-half MSE on the hidden trajectories < 0.1 x best yardstick
test_model_accurate  2       ... < 0.005 x best yardstick
===================  ======  ================================================================

The student's functions build on each other (``rk4_step`` calls ``accelerations``, ``simulate`` calls
``rk4_step``, ``make_dataset`` calls ``simulate``), so a mistake in the physics costs every cell after
it; the model cells are scored from the submitted weights alone, so a submission whose weights came
from the reference training keeps them.  Each entry's weights are made here, by running the
submission's own model and training cells on trusted data (this is the demo's code, in the trusted
process), and cached under ``~/.cache/mlphys`` by the hash of what determines them.
"""

from __future__ import annotations

import os
import pickle
import shutil
import typing as t
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlphys.assignments.lstm_time_evolution import simulator
from mlphys.assignments.lstm_time_evolution.scoring import MODEL, MODEL_CELL
from mlphys.course import oscillators
from mlphys.demo.case import Case, Materials, reference_cell, write_notebook
from mlphys.demo.weights import cached_file

PICKLE_MARKER = "/tmp/mlphys-demo-lstm-pickle-ran"  # the pickled payload would create this file
TRAINING_CELL = "training"
TRAINING_TRAJECTORIES = 10_000  # as the notebook's training cell: make_dataset(10_000, 1, ...)

# ---- mistaken solution cells -------------------------------------------------------------------------

_ACCELERATIONS = """
def accelerations(x, m, k, D):
    stretch = x[:, :1] - x
    spring = D * stretch
    forces = -k * x + spring
    forces[:, :1] = forces[:, :1] {sign} spring.sum(axis=1, keepdims=True)
    return forces{mass}
"""

_RK4 = """
def rk4_step(x, v, dt, m, k, D):
    a1 = accelerations(x, m, k, D)
    x2, v2 = x + 0.5 * dt * v, v + 0.5 * dt * a1
    a2 = accelerations(x2, m, k, D)
    x3, v3 = x + 0.5 * dt * v2, v + 0.5 * dt * a2
    a3 = accelerations(x3, m, k, D)
    x4, v4 = x + dt * v3, v + dt * a3
    a4 = accelerations(x4, m, k, D)
    return x + dt / 6.0 * (v + 2.0 * v2 + 2.0 * v3 + v4), v + dt / 6.0 * (a1 + 2.0 * a2 + 2.0 * a3 + a4)
"""

_EULER = """
def rk4_step(x, v, dt, m, k, D):
    return x + dt * v, v + dt * accelerations(x, m, k, D)
"""


def _equations(sign: str = "-", mass: str = " / m", step: str = _RK4) -> str:
    return _ACCELERATIONS.format(sign=sign, mass=mass) + step


_SIMULATE = """
def simulate(x, v, m, k, D, steps=STEPS, dt=DT, substeps=SUBSTEPS):
    frames = {first}
    for _ in range(steps - 1):
        for _ in range(substeps):
            x, v = rk4_step(x, v, dt / substeps, m, k, D)
        frames.append(x)
    {last}return np.stack(frames, axis=1)


def make_dataset(n, seed, m, k, D):
    x, v = initial_conditions(n, len(m), seed)
    targets = simulate(x, v, m, k, D)[:, :, 0]
    return {inputs}, targets
"""


def _simulate(first: str = "[x]", last: str = "", inputs: str = "observed_input(targets[:, :OBSERVED])") -> str:
    return _SIMULATE.format(first=first, last=last, inputs=inputs)


def _model_with_predict(reference: str, body: str) -> str:
    """The reference model cell with ``predict`` replaced: ``body`` computes ``out`` from ``full``."""
    return (
        reference
        + f"""

class _Changed(TrajectoryLSTM):
    def predict(self, observed):
        with torch.no_grad():
            full = self(observed_input(torch.as_tensor(observed, dtype=torch.float32))).numpy()
        {body}
        return out


TrajectoryLSTM = _Changed
"""
    )


_IGNORES_INPUT = """

class _Blind(TrajectoryLSTM):
    def forward(self, inputs):
        return super().forward(torch.zeros_like(inputs))  # the observations never reach the LSTM


TrajectoryLSTM = _Blind
"""

# A "model" that hunts for the hidden trajectories or the course secret instead of predicting: the
# grader's modules, environment variables, files of the sandbox, other processes.  Finding nothing, it
# answers like the zero yardstick.
_SNOOPING = """
import glob, os


class _Snooping(TrajectoryLSTM):
    def predict(self, observed):
        found = []
        try:
            from mlphys.assignments.lstm_time_evolution.scoring import hidden_trajectories
            secret = os.environ.get("MLPHYS_CHALLENGE_SECRET", "")
            return hidden_trajectories(secret)[: len(observed)]
        except Exception as exc:
            found.append(repr(exc))
        for pattern in ("/proc/*/environ", "/proc/*/cmdline", "/*/gradebook.db", "/*/*/gradebook.db",
                        "/*/*/*.npy", "/tmp/*", "~/*"):
            for path in glob.glob(os.path.expanduser(pattern))[:50]:
                try:
                    with open(path, "rb") as handle:
                        found.append(handle.read(1000))
                except OSError:
                    pass
        found.extend(v for k, v in os.environ.items() if "SECRET" in k)
        return observed_input(np.asarray(observed, dtype=np.float64))


TrajectoryLSTM = _Snooping
"""


# A model that, once it runs on the grader's hidden trajectories (in the fresh kernel only its cell ran: no
# `train`), forges its reply: an array whose dtype name is 12 MB of the observed halves it was shown. The grader
# refuses the reply; its refusal must carry none of it into the feedback, and stay small.
_FORGED_REPLY = """


class _Forging(TrajectoryLSTM):
    def predict(self, observed):
        if "train" in globals():
            return super().predict(observed)
        import json
        import mlphys.kernel.wire as wire

        seen = json.dumps(np.asarray(observed).round(4).tolist())
        name = (seen * (12_000_000 // len(seen) + 1))[:12_000_000]
        wire._encode = lambda value, depth, known=None: {"$nd": [name, [0], ""]}
        return np.zeros((len(observed), STEPS))


TrajectoryLSTM = _Forging
"""

# A "TrajectoryLSTM" whose predict returns the exact linear continuation (the course library's LinearPredictor,
# fitted in the notebook and saved as a buffer beside the trained LSTM's weights): the network is never used.
_LINEAR_CONTINUATION = """


class _Linear(TrajectoryLSTM):
    def __init__(self):
        super().__init__()
        self.register_buffer("linear", torch.zeros(OBSERVED + 1, STEPS, dtype=torch.float64))

    def predict(self, observed):
        features = np.hstack([np.asarray(observed, dtype=np.float64), np.ones((len(observed), 1))])
        return features @ self.linear.numpy()


TrajectoryLSTM = _Linear
"""


def linear_continuation(weights: Path, target: Path) -> None:
    """The LSTM's weights file ``weights`` with the fitted linear continuation added (``_LINEAR_CONTINUATION``)."""
    import torch

    x, v = oscillators.initial_conditions(2000, oscillators.COURSE_N2.n, 2)
    full = simulator.trajectories(x, v, oscillators.COURSE_N2)
    fitted = oscillators.LinearPredictor.fit(full[:, : oscillators.OBSERVED], full).weights
    state = torch.load(weights, weights_only=True)
    state["model"]["linear"] = torch.as_tensor(fitted, dtype=torch.float64)
    torch.save(state, target)


# ---- weights -----------------------------------------------------------------------------------------


def _build_model(model_source: str) -> t.Any:
    import torch

    namespace: dict[str, t.Any] = {}
    exec(MODEL.preamble + model_source, namespace)
    torch.manual_seed(0)
    return namespace["TrajectoryLSTM"](), namespace


def trained_weights(
    model_source: str, training_source: str, leak_targets: bool = False, steps: int | None = None
) -> Path:
    """Weights of the model trained with the training cell on the trusted data pipeline, cached.

    ``leak_targets`` trains on inputs that hold the whole trajectory (the mistake of a data pipeline that
    forgets to zero the second half); ``steps`` overrides the training function's default.
    """
    import torch

    def make(path: Path) -> None:
        model, namespace = _build_model(model_source)
        exec(training_source, namespace)
        x, v = oscillators.initial_conditions(TRAINING_TRAJECTORIES, oscillators.COURSE_N2.n, 1)
        targets = simulator.trajectories(x, v, oscillators.COURSE_N2)
        inputs = targets if leak_targets else oscillators.observed_input(targets[:, : oscillators.OBSERVED])
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        kwargs = {} if steps is None else {"steps": steps}
        namespace["train"](model, as_tensor(inputs), as_tensor(targets), **kwargs)
        os.replace(oscillators.save_model(model, path.parent), path)

    what = "04: the LSTM trained by the given cells" + (" on leaked targets" if leak_targets else "")
    what += f", {steps} steps" if steps is not None else ""
    return cached_file("lstm-", [model_source, training_source, str(leak_targets), str(steps)], make, what=what)


def untrained_weights(folder: Path, model_source: str) -> None:
    """Freshly initialised weights of the model (seed 0)."""
    oscillators.save_model(_build_model(model_source)[0], folder)


class PicklePayload:
    """Pickled code: unpickling it would run a shell command."""

    def __reduce__(self) -> tuple[t.Any, ...]:
        return (os.system, (f"touch {PICKLE_MARKER}",))


# ---- the cohort --------------------------------------------------------------------------------------


# The quick demo's cases: an Euler step for RK4, a model that hunts for the hidden data,
# and a weights file that carries pickled code.
QUICK = (
    "ref_solution",
    "blank_release",
    "mistake_lstm_euler",
    "attack_lstm_snooping",
    "attack_lstm_pickled_weights",
)


def cases(materials: Materials) -> list[Case]:
    points = materials.test_points()
    total = sum(points.values())
    physics = ("test_equations", "test_rk4", "test_simulate", "test_dataset")
    model_quality = ("test_model_learns", "test_model_accurate")
    model_all = ("test_model_valid", *model_quality)
    reference_model = reference_cell(materials, MODEL_CELL)
    training = reference_cell(materials, TRAINING_CELL)

    def reference_weights() -> Path:
        return trained_weights(reference_model, training)

    def entry(
        replacements: dict[str, str] | None = None, weights: Callable[[Path], None] | None = None
    ) -> Callable[[Path, Materials], None]:
        """The reference notebook with some cells replaced, and a weights file (the reference's by default)."""

        def write(directory: Path, m: Materials) -> None:
            nb = m.with_solutions(replacements) if replacements else m.reference()
            write_notebook(nb, directory, m.notebook)
            if weights is not None:
                weights(directory)
            else:
                shutil.copyfile(reference_weights(), directory / oscillators.WEIGHTS_FILE)

        return write

    def blank(directory: Path, m: Materials) -> None:
        write_notebook(m.blank(), directory, m.notebook)

    def leaked(directory: Path) -> None:
        shutil.copyfile(
            trained_weights(reference_model, training, leak_targets=True, steps=400),
            directory / oscillators.WEIGHTS_FILE,
        )

    def untrained(directory: Path) -> None:
        untrained_weights(directory, reference_model)

    def huge(directory: Path) -> None:
        import torch

        untrained_weights(directory, reference_model)
        path = directory / oscillators.WEIGHTS_FILE
        state = torch.load(path, weights_only=True)
        state["model"]["padding"] = torch.zeros(1_600_000)  # 6.4 MB
        torch.save(state, path)

    def pickled(directory: Path) -> None:
        with open(directory / oscillators.WEIGHTS_FILE, "wb") as handle:
            pickle.dump({"model": PicklePayload()}, handle)

    def lose(*grade_ids: str) -> float:
        return total - sum(points[g] for g in grade_ids)

    rows: list[tuple[str, str, str, Callable[[Path, Materials], None], float]] = [
        ("ref_solution", "reference", "the instructor's reference solution and its trained weights", entry(), total),
        ("blank_release", "blank", "the release notebook, submitted unchanged", blank, 0.0),
        (
            "mistake_lstm_coupling_sign",
            "mistake",
            "the springs push particle 0 away: + instead of - for the back-reaction of the couplings",
            entry({"equations_solution": _equations(sign="+")}),
            lose(*physics),
        ),
        (
            "mistake_lstm_no_mass",
            "mistake",
            "accelerations returns the forces, not divided by the masses",
            entry({"equations_solution": _equations(mass="")}),
            lose(*physics),
        ),
        (
            "mistake_lstm_euler",
            "mistake",
            "rk4_step takes a forward Euler step instead of a Runge-Kutta step",
            entry({"equations_solution": _equations(step=_EULER)}),
            lose("test_rk4", "test_simulate", "test_dataset"),
        ),
        (
            "mistake_lstm_no_initial_sample",
            "mistake",
            "simulate records the positions after each interval, missing the sample at t = 0",
            entry({"simulate_solution": _simulate(first="[]", last="frames.append(x)\n    ")}),
            lose("test_simulate", "test_dataset"),
        ),
        (
            "mistake_lstm_leaked_target",
            "mistake",
            "make_dataset leaves the second half in the inputs; the network trained on it learns to copy",
            entry({"simulate_solution": _simulate(inputs="targets.copy()")}, weights=leaked),
            lose("test_dataset", *model_quality),
        ),
        (
            "mistake_lstm_time_shift",
            "mistake",
            "predict puts the second half one sample late (out[:, OBSERVED - 1 : STEPS - 1] for out[:, OBSERVED:])",
            entry(
                {
                    MODEL_CELL: _model_with_predict(
                        reference_model,
                        "out = np.concatenate([observed, full[:, OBSERVED - 1 : STEPS - 1]], axis=1)",
                    )
                }
            ),
            lose("test_model_accurate"),
        ),
        (
            "mistake_lstm_untrained",
            "mistake",
            "the weights file of a freshly initialised, untrained model",
            entry(weights=untrained),
            lose(*model_quality),
        ),
        (
            "mistake_lstm_ignores_input",
            "mistake",
            "forward feeds zeros to the LSTM instead of the observations",
            entry({MODEL_CELL: reference_model + _IGNORES_INPUT}),
            lose(*model_quality),
        ),
        (
            "mistake_lstm_second_half_only",
            "mistake",
            "predict returns only the second half, shape (batch, 30)",
            entry({MODEL_CELL: _model_with_predict(reference_model, "out = full[:, OBSERVED:]")}),
            lose(*model_all),
        ),
        (
            "attack_lstm_snooping",
            "attack",
            "predict hunts for the grader's trajectories and the secret (grader modules, environment, files), "
            "then answers without its LSTM",
            entry({MODEL_CELL: reference_model + _SNOOPING}),
            lose(*model_all),
        ),
        (
            "attack_lstm_forged_reply",
            "attack",
            "predict forges a reply that the grader refuses, 12 MB of the hidden observed halves as its dtype name",
            entry({MODEL_CELL: reference_model + _FORGED_REPLY}),
            lose(*model_all),
        ),
        (
            "attack_lstm_linear_continuation",
            "attack",
            "predict returns the exact linear continuation (LinearPredictor, saved beside the trained LSTM), "
            "not the LSTM's predictions",
            entry(
                {MODEL_CELL: reference_model + _LINEAR_CONTINUATION},
                weights=lambda directory: linear_continuation(
                    reference_weights(), directory / oscillators.WEIGHTS_FILE
                ),
            ),
            lose(*model_all),
        ),
        (
            "attack_lstm_nan",
            "attack",
            "predict returns NaN",
            entry({MODEL_CELL: _model_with_predict(reference_model, "out = full * float('nan')")}),
            lose(*model_all),
        ),
        ("attack_lstm_huge_weights", "attack", "a weights file of 6.5 MB", entry(weights=huge), lose(*model_all)),
        (
            "attack_lstm_pickled_weights",
            "attack",
            "a weights file that carries pickled code",
            entry(weights=pickled),
            lose(*model_all),
        ),
    ]
    a = materials.assignment
    return [
        Case(student, a, kind, text, write, expected, quick=student in QUICK)
        for student, kind, text, write, expected in rows
    ]
