"""The questions of 07_exam whose numbers differ per student, one or two per topic of the course.

Each question's text is in the notebook; what differs per student is drawn here.  Numbers are rounded to one
decimal, as a person would write them on an exam sheet, so the answer is the same however it is computed.
"""

from __future__ import annotations

import itertools

import numpy as np

from mlphys.assignments.exam.questions import Choice, Number, Numbers, Question, TrueFalse


def _decimals(rng: np.random.Generator, shape: int | tuple[int, ...], low: float = -2.0, high: float = 2.0) -> list:
    """Numbers with one decimal in [low, high], none of them 0 (a zero weight makes a question trivial)."""
    values = np.round(rng.uniform(low, high, shape), 1)
    values[values == 0] = 0.5
    return values.tolist()


# ---- 01: the forward pass ----------------------------------------------------------------------------


def _layers(rng: np.random.Generator) -> dict:
    return {
        "layers": [int(rng.integers(2, 7)), int(rng.integers(5, 41)), int(rng.integers(5, 41)), int(rng.integers(1, 5))]
    }


def _parameters(n: dict) -> int:
    sizes = n["layers"]
    return sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def _small_network(rng: np.random.Generator) -> dict:
    return {
        "W1": _decimals(rng, (2, 2)),
        "b1": _decimals(rng, 2),
        "w2": _decimals(rng, 2),
        "b2": _decimals(rng, 1)[0],
        "x": _decimals(rng, 2),
    }


def _network_output(n: dict) -> float:
    hidden = np.maximum(np.array(n["W1"]) @ np.array(n["x"]) + np.array(n["b1"]), 0.0)
    return float(np.array(n["w2"]) @ hidden + n["b2"])


# ---- 02: backpropagation -------------------------------------------------------------------------------


def _neuron(rng: np.random.Generator) -> dict:
    return {
        "w": _decimals(rng, 1)[0],
        "b": _decimals(rng, 1)[0],
        "x": _decimals(rng, 1)[0],
        "y": int(rng.integers(0, 2)),
    }


def _neuron_gradient(n: dict) -> float:
    f = 1.0 / (1.0 + np.exp(-(n["w"] * n["x"] + n["b"])))
    return float((f - n["y"]) * f * (1 - f) * n["x"])


BACKWARD_LINES = (
    "z1 = x @ W1 + b1",
    "a1 = sigmoid(z1)",
    "y = a1 @ W2 + b2",
    "delta2 = y - target",
    "grad_W2 = a1.T @ delta2",
    "delta1 = (delta2 @ W2.T) * a1 * (1 - a1)",
    "grad_W1 = x.T @ delta1",
)
# line number (1-based) -> a wrong version of that line, one of which each student's code holds
BACKWARD_BUGS = {
    2: "a1 = sigmoid(z1) * (1 - sigmoid(z1))",
    4: "delta2 = target - y",
    5: "grad_W2 = x.T @ delta2",
    6: "delta1 = (delta2 @ W1.T) * a1 * (1 - a1)",
    7: "grad_W1 = a1.T @ delta1",
}


def _buggy_backward(rng: np.random.Generator) -> dict:
    line = int(rng.choice(sorted(BACKWARD_BUGS)))
    code = list(BACKWARD_LINES)
    code[line - 1] = BACKWARD_BUGS[line]
    return {"code": code}


def _bug_line(n: dict) -> int:
    return next(i + 1 for i, text in enumerate(n["code"]) if text != BACKWARD_LINES[i])


# ---- 03: autoencoders ----------------------------------------------------------------------------------

AUTOENCODER_STATEMENTS = (
    (
        "An autoencoder whose code has as many numbers as its input can reconstruct every input exactly, by "
        "learning the identity map.",
        True,
    ),
    (
        "A linear autoencoder with a code of k numbers, trained on the mean squared error, spans the same subspace "
        "as the first k principal components of the data.",
        True,
    ),
    ("The reconstruction error on the training images is a fair estimate of the error on new images.", False),
    ("Training an autoencoder needs a label for every image.", False),
    ("A denoising autoencoder (noisy inputs, clean targets) is discouraged from learning the identity map.", True),
    ("Halving the number of code units can never increase the reconstruction error on the training images.", False),
)

# ---- 04: physical time evolution -----------------------------------------------------------------------


def _oscillator(rng: np.random.Generator) -> dict:
    return {
        "x0": _decimals(rng, 1)[0],
        "v0": _decimals(rng, 1)[0],
        "omega": float(np.round(rng.uniform(0.5, 3.0), 1)),
        "dt": float(rng.choice([0.05, 0.1, 0.2])),
    }


def _rk4_oscillator(n: dict) -> list[float]:
    omega2, dt = n["omega"] ** 2, n["dt"]

    def f(y: np.ndarray) -> np.ndarray:
        return np.array([y[1], -omega2 * y[0]])

    y = np.array([n["x0"], n["v0"]])
    k1 = f(y)
    k2 = f(y + dt / 2 * k1)
    k3 = f(y + dt / 2 * k2)
    k4 = f(y + dt * k3)
    return (y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)).tolist()


def _lstm_sizes(rng: np.random.Generator) -> dict:
    return {"inputs": int(rng.integers(1, 9)), "hidden": int(rng.integers(8, 65))}


def _lstm_parameters(n: dict) -> int:
    return 4 * (n["hidden"] * (n["inputs"] + n["hidden"]) + n["hidden"])


# ---- 05: policy gradient -------------------------------------------------------------------------------


def _reinforce(rng: np.random.Generator) -> dict:
    return {
        "z": _decimals(rng, 5),
        "action": int(rng.integers(0, 5)),
        "R": int(rng.integers(0, 6)),
        "b": float(np.round(rng.uniform(0.5, 4.5), 1)),
        "eta": float(rng.choice([0.1, 0.5, 1.0])),
    }


def _reinforce_update(n: dict) -> float:
    z = np.array(n["z"])
    p = np.exp(z - z.max())
    p /= p.sum()
    a = n["action"]
    return float(z[a] + n["eta"] * (n["R"] - n["b"]) * (1 - p[a]))


# ---- 06: Boltzmann machines ----------------------------------------------------------------------------


def _rbm(rng: np.random.Generator) -> dict:
    return {
        "W": _decimals(rng, (3, 2)),
        "a": _decimals(rng, 3),
        "b": _decimals(rng, 2),
        "v": rng.integers(0, 2, 3).tolist(),
    }


def _free_energy(n: dict) -> float:
    v, W = np.array(n["v"], dtype=float), np.array(n["W"])
    return float(-np.array(n["a"]) @ v - np.sum(np.logaddexp(0.0, np.array(n["b"]) + v @ W)))


QUESTIONS: tuple[Question, ...] = (
    Number(
        "q1",
        "01 forward pass",
        "q1_parameters",
        1,
        drawer=_layers,
        keyer=_parameters,
        integer=True,
        what="the number of weights and biases of the network",
    ),
    Number(
        "q2",
        "01 forward pass",
        "q2_output",
        2,
        drawer=_small_network,
        keyer=_network_output,
        what="the network's output for your input",
    ),
    Number(
        "q3",
        "02 backpropagation",
        "q3_gradient",
        2,
        drawer=_neuron,
        keyer=_neuron_gradient,
        rtol=1e-4,
        atol=1e-6,
        what="the derivative dC/dw at your point",
    ),
    Number(
        "q4",
        "02 backpropagation",
        "q4_line",
        1,
        drawer=_buggy_backward,
        keyer=_bug_line,
        integer=True,
        what="the number of the wrong line",
    ),
    TrueFalse("q5", "03 autoencoders", "q5_true_false", 2, pool=AUTOENCODER_STATEMENTS, count=3),
    Numbers(
        "q6",
        "04 time evolution",
        "q6_rk4",
        2,
        drawer=_oscillator,
        keyer=_rk4_oscillator,
        labels=("the new position", "the new velocity"),
        what="one RK4 step",
    ),
    Number(
        "q8",
        "04 time evolution",
        "q8_lstm_parameters",
        1,
        drawer=_lstm_sizes,
        keyer=_lstm_parameters,
        integer=True,
        what="the number of parameters of the LSTM layer",
    ),
    Number(
        "q9",
        "05 policy gradient",
        "q9_new_preference",
        2,
        drawer=_reinforce,
        keyer=_reinforce_update,
        what="the new preference of the action taken",
    ),
    Number(
        "q10",
        "06 Boltzmann machines",
        "q10_free_energy",
        2,
        drawer=_rbm,
        keyer=_free_energy,
        what="the free energy F(v) of your visible vector",
    ),
    Choice(
        "q11",
        "06 Boltzmann machines",
        "q11_choice",
        1,
        right="one Gibbs step (visible -> hidden -> visible -> hidden) started at the training vectors",
        wrong=(
            "the training vectors themselves, with the hidden units sampled once",
            "Gibbs chains run to equilibrium from random visible vectors",
            "the biases alone, since the weights average out",
        ),
    ),
)
BY_ID = {q.id: q for q in QUESTIONS}
