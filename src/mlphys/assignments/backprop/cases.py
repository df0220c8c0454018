"""Simulated submissions for assignment 02_backprop: the reference, the blank release and typical mistakes.

Points per test cell (10 autograded in all, plus 2 for the written answer ``exploration_answer``, which
an instructor grades by hand in the formgrader and which counts 0 until then):

==================  ======  =============================================================
test cell           points  judges
==================  ======  =============================================================
test_activations    1       ``activation`` and ``activation_derivative`` (trusted values)
test_forward        2       ``forward``: every z and y of 8 networks (trusted forward pass)
test_cost           1       ``cost`` = 1/(2B) * sum of squares, a single number
test_backward       3       ``backward`` against a trusted backprop, hypothesis over shapes,
                            batch sizes (from 1), activations, weight scales (deterministic)
test_gradient_step  1       ``gradient_step`` = w - learning_rate * g, exactly, leaving the
                            arrays and lists it is given unchanged
test_train          2       ``train([2, 30, 30, 1], "relu", "linear", 0.2, 2000, 50, seed)``:
                            the trained network, evaluated by the grader on fresh points,
                            has cost < 1.5e-3; the cost history came down, and jumps from
                            step to step as fresh batches make it (one reused batch does not)
==================  ======  =============================================================

The student's functions call each other (``backward`` normally calls ``forward`` and
``activation_derivative``, ``train`` calls ``backward`` and ``gradient_step``), so a mistake costs every
cell whose function relies on the broken one, unless the graded configuration never reaches it: the
training test uses relu hidden neurons and a linear output, so a wrong sigmoid derivative or a missing
output derivative does not cost its points, and hidden-layer gradients that lack the 1/B (the lecture's
mixed convention) only act like a larger learning rate there, with which training still succeeds.
The training test judges the returned weights with the grader's own forward pass and target, never with
the student's functions.
"""

from __future__ import annotations

from mlphys.demo.case import Case, Materials, Mistake, assignment_cases

_ACTIVATIONS_SIGMOID_DERIVATIVE_OF_Z = """
def activation(z, name):
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "linear":
        return 1.0 * z
    raise ValueError(f"unknown activation {name!r}")


def activation_derivative(z, name):
    if name == "sigmoid":
        return z * (1.0 - z)  # f(1 - f) written with z in place of f = sigmoid(z)
    if name == "relu":
        return (z > 0) * 1.0
    if name == "linear":
        return np.ones_like(z)
    raise ValueError(f"unknown activation {name!r}")
"""

_COST_NO_HALF = """
def cost(y_out, y_target):
    return np.sum((y_out - y_target) ** 2) / y_out.shape[0]
"""


def _backward(output_delta: str, loop_body: str) -> str:
    return f"""
def backward(y_in, y_target, weights, biases, hidden_activation, output_activation):
    zs, ys = forward(y_in, weights, biases, hidden_activation, output_activation)
    n_layers = len(weights)
    grad_weights, grad_biases = [None] * n_layers, [None] * n_layers
    delta = {output_delta}
    for k in range(n_layers - 1, -1, -1):
{loop_body}
    return grad_weights, grad_biases
"""


_DELTA = "(ys[-1] - y_target) * activation_derivative(zs[-1], output_activation) / y_in.shape[0]"
_LOOP = """        grad_weights[k] = ys[k].T @ delta
        grad_biases[k] = delta.sum(axis=0)
        if k > 0:
            delta = (delta @ weights[k].T) * activation_derivative(zs[k - 1], hidden_activation)"""

_BACKWARD_NO_OUTPUT_DERIVATIVE = _backward("(ys[-1] - y_target) / y_in.shape[0]", _LOOP)

# The lecture's original code: 1/B only in the output layer's gradients.
_BACKWARD_NO_BATCH_AVERAGE = _backward(
    "(ys[-1] - y_target) * activation_derivative(zs[-1], output_activation)",
    """        scale = 1.0 / y_in.shape[0] if k == n_layers - 1 else 1.0
        grad_weights[k] = scale * (ys[k].T @ delta)
        grad_biases[k] = scale * delta.sum(axis=0)
        if k > 0:
            delta = (delta @ weights[k].T) * activation_derivative(zs[k - 1], hidden_activation)""",
)

_BACKWARD_TRANSPOSED = _backward(_DELTA, _LOOP.replace("delta @ weights[k].T", "delta @ weights[k]"))

_BACKWARD_BIAS_AXIS = _backward(_DELTA, _LOOP.replace("delta.sum(axis=0)", "delta.sum(axis=1)"))

_BACKWARD_LAYER_SHIFT = _backward(
    _DELTA,
    _LOOP.replace("grad_weights[k] =", "grad_weights[(k + 1) % n_layers] =").replace(
        "grad_biases[k] =", "grad_biases[(k + 1) % n_layers] ="
    ),
)

_GRADIENT_STEP_WRONG_SIGN = """
def gradient_step(weights, biases, grad_weights, grad_biases, learning_rate):
    new_weights = [w + learning_rate * g for w, g in zip(weights, grad_weights)]
    new_biases = [b + learning_rate * g for b, g in zip(biases, grad_biases)]
    return new_weights, new_biases
"""

# Right values, but the arrays it is given are changed in place (and returned): training works the same.
_GRADIENT_STEP_IN_PLACE = """
def gradient_step(weights, biases, grad_weights, grad_biases, learning_rate):
    for w, g in zip(weights, grad_weights):
        w -= learning_rate * g
    for b, g in zip(biases, grad_biases):
        b -= learning_rate * g
    return weights, biases
"""

# One batch, drawn before the loop, for every step: the trained network still reaches the required cost
# on fresh points (about 1.2e-3 for the graded seed), so only the cost history gives it away.
_TRAIN_ONE_BATCH = """
def init_network(layer_sizes, rng):
    weights, biases = [], []
    for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]):
        weights.append(rng.normal(0.0, 1.0 / np.sqrt(n_in), size=(n_in, n_out)))
        biases.append(np.zeros(n_out))
    return weights, biases


def train(layer_sizes, hidden_activation, output_activation, learning_rate, steps, batch_size, seed):
    rng = np.random.default_rng(seed)
    weights, biases = init_network(layer_sizes, rng)
    costs = np.zeros(steps)
    y_in = rng.uniform(-0.5, 0.5, size=(batch_size, 2))
    y_target = target_function(y_in)
    for step in range(steps):
        costs[step] = cost(forward(y_in, weights, biases, hidden_activation, output_activation)[1][-1], y_target)
        grad_weights, grad_biases = backward(y_in, y_target, weights, biases, hidden_activation, output_activation)
        weights, biases = gradient_step(weights, biases, grad_weights, grad_biases, learning_rate)
    return weights, biases, costs
"""

# student id, description, replaced solution cells, test cells the mistake breaks
_MISTAKES: list[tuple[str, str, dict[str, str], tuple[str, ...]]] = [
    (
        "mistake_bp_no_output_derivative",
        "backward leaves out f'(z) of the output layer (invisible with a linear output, as in training)",
        {"backward_solution": _BACKWARD_NO_OUTPUT_DERIVATIVE},
        ("test_backward",),
    ),
    (
        "mistake_bp_no_batch_average",
        "backward divides by the batch size only in the output layer (the lecture's mixed convention): "
        "wrong gradients, but training still reaches the required cost, as the lecture's code did",
        {"backward_solution": _BACKWARD_NO_BATCH_AVERAGE},
        ("test_backward",),
    ),
    (
        "mistake_bp_transposed_weights",
        "backward multiplies delta by W instead of W^T going down a layer",
        {"backward_solution": _BACKWARD_TRANSPOSED},
        ("test_backward", "test_train"),
    ),
    (
        "mistake_bp_sigmoid_derivative_of_z",
        "the sigmoid's derivative written as z(1 - z) instead of f(1 - f) with f = sigmoid(z); "
        "training uses relu and a linear output, so it is unaffected",
        {"activations_solution": _ACTIVATIONS_SIGMOID_DERIVATIVE_OF_Z},
        ("test_activations", "test_backward"),
    ),
    (
        "mistake_bp_bias_wrong_axis",
        "bias gradients summed over the outputs (axis 1) instead of over the batch (axis 0)",
        {"backward_solution": _BACKWARD_BIAS_AXIS},
        ("test_backward", "test_train"),
    ),
    (
        "mistake_bp_wrong_sign",
        "gradient_step moves along the gradient (w + eta * g) instead of against it",
        {"gradient_step_solution": _GRADIENT_STEP_WRONG_SIGN},
        ("test_gradient_step", "test_train"),
    ),
    (
        "mistake_bp_step_in_place",
        "gradient_step updates the arrays it is given in place (right values; training unaffected)",
        {"gradient_step_solution": _GRADIENT_STEP_IN_PLACE},
        ("test_gradient_step",),
    ),
    (
        "mistake_bp_train_one_batch",
        "train draws one batch before the loop and reuses it for every step",
        {"train_solution": _TRAIN_ONE_BATCH},
        ("test_train",),
    ),
    (
        "mistake_bp_layer_shift",
        "backward stores the gradients of layer k as those of layer k + 1 (the last wrapping to the first)",
        {"backward_solution": _BACKWARD_LAYER_SHIFT},
        ("test_backward", "test_train"),
    ),
    (
        "mistake_bp_cost_no_half",
        "cost without the factor 1/2 (the lecture's returned cost); the gradients are still right",
        {"cost_solution": _COST_NO_HALF},
        ("test_cost",),
    ),
]


# The quick demo's mistakes: a wrong gradient the property tests catch, and a training loop that stops early.
QUICK = ("mistake_bp_wrong_sign", "mistake_bp_train_one_batch")


def cases(materials: Materials) -> list[Case]:
    """The reference, the blank release and the typical mistakes, each with its exact expected points."""
    mistakes = [Mistake(s, d, dict(r), tuple(b)) for s, d, r, b in _MISTAKES]
    return assignment_cases(materials, mistakes, quick=QUICK)
