"""Simulated submissions for assignment 01_xor_nets: the reference, the blank release and typical mistakes.

Points per test cell (10 in all):

=================  ======  ==============================================================
test cell          points  judges
=================  ======  ==============================================================
test_sigmoid       1       ``sigmoid`` (values, shapes, z = +-1000 finite and in [0, 1])
test_step          1       ``step`` (float output, step(0) == 0)
test_relu_linear   1       ``relu`` and ``linear``
test_apply_layer   1       ``apply_layer``, given the course's activations
test_apply_net     2       ``apply_net``, given the course's activations; leaves its arguments unchanged
test_xor_step      2       ``XOR_STEP_*`` with a trusted forward pass and the course's step
test_xor_sigmoid   2       ``XOR_SIGMOID_*`` with a trusted forward pass and the course's sigmoid
=================  ======  ==============================================================

Each test judges its own cell: the references are the course library's activations
(``mlphys.course.activations``), and the ``apply_layer``/``apply_net`` tests pass those same functions
into the student's code (as ``CourseFunction`` names that the kernel imports), so a wrong activation of
the student's costs only its own cell.  ``apply_net`` normally calls ``apply_layer``, so a broken
``apply_layer`` also costs the ``apply_net`` points.

``step`` with ``>=`` instead of ``>``: the docstring and the markdown fix step(0) = 0, the visible
self-check shows it, and the hidden test checks z = 0 exactly, so that mistake costs the step cell.
"""

from __future__ import annotations

from mlphys.demo import attacks
from mlphys.demo.case import Case, Materials, Mistake, assignment_cases

_SIGMOID_SIGN = """
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(z))
"""

_SIGMOID_NAN = """
def sigmoid(z):
    e = np.exp(z)
    return e / (1.0 + e)
"""

# Wrong only below z = -10, where it returns 0 instead of at most 4.5e-5: it used to agree with the old
# probe of the student's activations and then cost the apply_net cell too.
_SIGMOID_CUTOFF = """
def sigmoid(z):
    z = np.asarray(z, dtype=float)
    return np.where(z < -10.0, 0.0, 1.0 / (1.0 + np.exp(-np.maximum(z, -10.0))))
"""

_STEP_GE = """
def step(z):
    return np.where(z >= 0, 1.0, 0.0)
"""

_STEP_BOOL = """
def step(z):
    return z > 0
"""

_LAYER_TRANSPOSED = """
def apply_layer(y, w, b, activation):
    return activation(w @ y + b)
"""

_LAYER_NO_BIAS = """
def apply_layer(y, w, b, activation):
    return activation(y @ w)
"""

_NET_LAST_ONLY = """
def apply_net(y, weights, biases, activations):
    for w, b in zip(weights[:-1], biases[:-1]):
        y = apply_layer(y, w, b, linear)
    return apply_layer(y, weights[-1], biases[-1], activations[-1])
"""

_NET_SKIP_LAST = """
def apply_net(y, weights, biases, activations):
    for k in range(len(weights) - 1):
        y = apply_layer(y, weights[k], biases[k], activations[k])
    return y
"""

# Right values, but it empties the list of activations it is given (each call passes a fresh list in
# the notebook, so nothing else notices).
_NET_CONSUMES_ACTIVATIONS = """
def apply_net(y, weights, biases, activations):
    for w, b in zip(weights, biases):
        y = apply_layer(y, w, b, activations.pop(0))
    return y
"""

_XOR_STEP_ONE_HIDDEN = """
XOR_STEP_WEIGHTS = [np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0], [1.0]])]
XOR_STEP_BIASES = [np.array([0.0, 0.0]), np.array([-0.5])]
"""

_XOR_STEP_ONE_QUADRANT = """
XOR_STEP_WEIGHTS = [
    np.array([[1.0, 0.0], [0.0, 1.0]]),
    np.array([[1.0, -1.0], [-1.0, 1.0]]),
    np.array([[1.0], [0.0]]),
]
XOR_STEP_BIASES = [np.array([0.0, 0.0]), np.array([-0.5, -0.5]), np.array([-0.5])]
"""

_XOR_STEP_BIAS_2D = """
XOR_STEP_WEIGHTS = [
    np.array([[1.0, 0.0], [0.0, 1.0]]),
    np.array([[1.0, -1.0], [-1.0, 1.0]]),
    np.array([[1.0], [1.0]]),
]
XOR_STEP_BIASES = [np.array([[0.0, 0.0]]), np.array([[-0.5, -0.5]]), np.array([[-0.5]])]
"""


def _xor_sigmoid(gain: float) -> str:
    return f"""
a, c, g = 2.0, 1.0, {gain!r}
XOR_SIGMOID_WEIGHTS = [
    a * np.array([[1.0, -1.0, 1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]),
    g * np.array([[1.0], [1.0], [-1.0], [-1.0]]),
]
XOR_SIGMOID_BIASES = [np.full(4, c), np.zeros(1)]
"""


# The construction with an output gain of 1.7e308 and the hidden neurons in the order s+, d+, s-, d-:
# the output neuron's sum of +-1.7e308 terms overflows to inf - inf = NaN at most points (numpy sums in
# pairs), and a check of the form `deviation > 0.1` is False for NaN, so it used to pass.
_XOR_SIGMOID_NAN = """
a, c, g = 2.0, 1.0, 1.7e308
XOR_SIGMOID_WEIGHTS = [
    a * np.array([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]),
    g * np.array([[1.0], [-1.0], [1.0], [-1.0]]),
]
XOR_SIGMOID_BIASES = [np.full(4, c), np.zeros(1)]
"""

_XOR_SIGMOID_TWO_HIDDEN = """
XOR_SIGMOID_WEIGHTS = [
    2.0 * np.array([[1.0, -1.0, 1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]),
    500.0 * np.array([[1.0], [1.0], [-1.0], [-1.0]]),
    np.array([[20.0]]),
]
XOR_SIGMOID_BIASES = [np.full(4, 1.0), np.zeros(1), np.array([-10.0])]
"""

# student id, description, replaced solution cells, test cells the mistake breaks
_MISTAKES: list[tuple[str, str, dict[str, str], tuple[str, ...]]] = [
    (
        "mistake_sigmoid_sign",
        "sigmoid written as 1/(1+exp(z)) (wrong sign)",
        {"sigmoid_solution": _SIGMOID_SIGN},
        ("test_sigmoid",),
    ),
    (
        "mistake_sigmoid_nan",
        "sigmoid as exp(z)/(1+exp(z)): NaN at z = +1000",
        {"sigmoid_solution": _SIGMOID_NAN},
        ("test_sigmoid",),
    ),
    (
        "mistake_sigmoid_cutoff",
        "sigmoid cut to 0 below z = -10 (slightly wrong): costs only the sigmoid cell",
        {"sigmoid_solution": _SIGMOID_CUTOFF},
        ("test_sigmoid",),
    ),
    ("mistake_step_ge", "step uses z >= 0, so step(0) = 1", {"step_solution": _STEP_GE}, ("test_step",)),
    (
        "mistake_step_bool",
        "step returns a boolean array instead of floats",
        {"step_solution": _STEP_BOOL},
        ("test_step",),
    ),
    (
        "mistake_layer_transposed",
        "apply_layer computes w @ y (shape error); apply_net inherits it",
        {"apply_layer_solution": _LAYER_TRANSPOSED},
        ("test_apply_layer", "test_apply_net"),
    ),
    (
        "mistake_layer_no_bias",
        "apply_layer forgets the bias; apply_net inherits it",
        {"apply_layer_solution": _LAYER_NO_BIAS},
        ("test_apply_layer", "test_apply_net"),
    ),
    (
        "mistake_net_last_only",
        "apply_net applies the activation only in the last layer",
        {"apply_net_solution": _NET_LAST_ONLY},
        ("test_apply_net",),
    ),
    (
        "mistake_net_skip_last",
        "apply_net skips the last layer",
        {"apply_net_solution": _NET_SKIP_LAST},
        ("test_apply_net",),
    ),
    (
        "mistake_net_consumes_activations",
        "apply_net pops the activations off the list it is given (right values, argument emptied)",
        {"apply_net_solution": _NET_CONSUMES_ACTIVATIONS},
        ("test_apply_net",),
    ),
    (
        "mistake_xor_step_one_hidden",
        "XOR step network with only one hidden layer (not allowed, and not XOR)",
        {"xor_step_solution": _XOR_STEP_ONE_HIDDEN},
        ("test_xor_step",),
    ),
    (
        "mistake_xor_step_quadrant",
        "XOR step network whose output forgets one quadrant",
        {"xor_step_solution": _XOR_STEP_ONE_QUADRANT},
        ("test_xor_step",),
    ),
    (
        "mistake_xor_step_bias_2d",
        "XOR step network with biases of shape (1, n_out) instead of (n_out,)",
        {"xor_step_solution": _XOR_STEP_BIAS_2D},
        ("test_xor_step",),
    ),
    (
        "mistake_xor_sigmoid_shallow",
        "XOR sigmoid network whose output neuron is too shallow near the axes",
        {"xor_sigmoid_solution": _xor_sigmoid(60.0)},
        ("test_xor_sigmoid",),
    ),
    (
        "mistake_xor_sigmoid_sign",
        "XOR sigmoid network with the output sign flipped (computes NOT XOR)",
        {"xor_sigmoid_solution": _xor_sigmoid(-500.0)},
        ("test_xor_sigmoid",),
    ),
    (
        "mistake_xor_sigmoid_nan",
        "XOR sigmoid network with an output gain of 1.7e308: its output is NaN at most points",
        {"xor_sigmoid_solution": _XOR_SIGMOID_NAN},
        ("test_xor_sigmoid",),
    ),
    (
        "mistake_xor_sigmoid_two_hidden",
        "XOR sigmoid network with two hidden layers (exactly one is asked for)",
        {"xor_sigmoid_solution": _XOR_SIGMOID_TWO_HIDDEN},
        ("test_xor_sigmoid",),
    ),
]


# The quick demo's mistakes: a wrong activation, and a network that computes NOT XOR.
QUICK = ("mistake_sigmoid_sign", "mistake_xor_sigmoid_sign")


def cases(materials: Materials) -> list[Case]:
    """The reference, the blank release, the typical mistakes, each with its exact expected points, and the
    attack catalogue (it targets the engine, not this assignment; one assignment carries it)."""
    mistakes = [Mistake(s, d, dict(r), tuple(b)) for s, d, r, b in _MISTAKES]
    mistakes = assignment_cases(materials, mistakes, quick=QUICK)
    return mistakes + attacks.cases(materials)
