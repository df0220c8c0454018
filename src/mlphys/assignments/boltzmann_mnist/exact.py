"""Exact quantities of small restricted Boltzmann machines, by enumerating the states of one layer.

Trusted reference code for the hidden tests and for checking the AIS estimator: the grader never calls a
student's function to compute what it compares against.  Conventions of the assignment: visible units
v in {0, 1}^n_v, hidden units h in {0, 1}^n_h, weights W of shape (n_v, n_h), visible biases a, hidden
biases b, energy E(v, h) = -a.v - b.h - v W h, p(v, h) = exp(-E) / Z.  Summing over one layer is
analytic (the free energy), so only the *other* layer is enumerated: log Z of an MNIST-sized machine
with 20 hidden units costs 2^20 sums over 784 visible units.
"""

from __future__ import annotations

import numpy as np


def logsumexp(x: np.ndarray | list[float], axis: int | None = None) -> np.ndarray:
    """log(sum(exp(x))) along an axis, without overflow."""
    x = np.asarray(x, dtype=np.float64)
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return out.squeeze() if axis is None else np.squeeze(out, axis=axis)


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), without overflow."""
    return np.logaddexp(0.0, x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def all_states(n: int) -> np.ndarray:
    """Every binary vector of length n, shape (2^n, n), in the order of their index (unit 0 = highest bit)."""
    index = np.arange(2**n)[:, None]
    return ((index >> np.arange(n - 1, -1, -1)) & 1).astype(np.float64)


def state_index(states: np.ndarray) -> np.ndarray:
    """The index of each binary row in :func:`all_states` order."""
    states = np.asarray(states)
    n = states.shape[-1]
    return (np.rint(states).astype(np.int64) << np.arange(n - 1, -1, -1)).sum(axis=-1)


def energy(v: np.ndarray, h: np.ndarray, W: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return -(v @ a) - (h @ b) - np.einsum("si,ij,sj->s", v, W, h)


def free_energy(v: np.ndarray, W: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """F(v) = -a.v - sum_j log(1 + exp(b_j + (v W)_j)), so that p(v) = exp(-F(v)) / Z."""
    return -(v @ a) - softplus(b + v @ W).sum(axis=-1)


def hidden_free_energy(h: np.ndarray, W: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The same with the roles of the layers exchanged: p(h) = exp(-F_h(h)) / Z."""
    return -(h @ b) - softplus(a + h @ W.T).sum(axis=-1)


def log_partition(W: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 2**14) -> float:
    """log Z, exactly, summing over the smaller layer (in chunks, so that 2^20 states fit in memory)."""
    W, a, b = (np.asarray(x, dtype=np.float64) for x in (W, a, b))
    n_v, n_h = W.shape
    n, per_state = (n_v, free_energy) if n_v <= n_h else (n_h, hidden_free_energy)
    if n > 26:
        raise ValueError(f"enumerating 2^{n} states is too much; use AIS")
    parts = []
    for start in range(0, 2**n, chunk):
        index = np.arange(start, min(start + chunk, 2**n))[:, None]
        states = ((index >> np.arange(n - 1, -1, -1)) & 1).astype(np.float64)
        parts.append(logsumexp(-per_state(states, W, a, b)))
    return float(logsumexp(parts))


def log_likelihood(v: np.ndarray, W: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log p(v) of each row of v, exactly."""
    return -free_energy(np.asarray(v, dtype=np.float64), W, a, b) - log_partition(W, a, b)


def visible_distribution(W: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """p(v) for every visible state, in :func:`all_states` order."""
    log_p = -free_energy(all_states(W.shape[0]), W, a, b)
    return np.exp(log_p - logsumexp(log_p))


def joint_distribution(W: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """p(v, h) as an array of shape (2^n_v, 2^n_h), by brute force over both layers (tiny machines only)."""
    vs, hs = all_states(W.shape[0]), all_states(W.shape[1])
    log_w = vs @ a[:, None] + (hs @ b)[None, :] + vs @ W @ hs.T
    return np.exp(log_w - logsumexp(log_w))


def gibbs_transition(W: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """T[v, v'] = sum_h p(h | v) p(v' | h): one Gibbs step v -> h -> v', in :func:`all_states` order."""
    vs, hs = all_states(W.shape[0]), all_states(W.shape[1])
    p_h = sigmoid(b + vs @ W)  # (2^n_v, n_h)
    p_h_states = np.prod(np.where(hs[None, :, :] == 1, p_h[:, None, :], 1 - p_h[:, None, :]), axis=2)
    p_v = sigmoid(a + hs @ W.T)  # (2^n_h, n_v)
    p_v_states = np.prod(np.where(vs[None, :, :] == 1, p_v[:, None, :], 1 - p_v[:, None, :]), axis=2)
    return p_h_states @ p_v_states


def log_likelihood_gradient(
    v_data: np.ndarray, W: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact gradient of the mean log-likelihood of the rows of v_data with respect to W, a and b.

    d/dW = <v h^T>_data - <v h^T>_model, with h replaced by p(h | v) (exact: the sum over h is analytic).
    """
    v_data = np.asarray(v_data, dtype=np.float64)
    p_data = sigmoid(b + v_data @ W)
    vs = all_states(W.shape[0])
    p_v = visible_distribution(W, a, b)
    p_model = sigmoid(b + vs @ W)
    dW = v_data.T @ p_data / len(v_data) - (vs * p_v[:, None]).T @ p_model
    da = v_data.mean(axis=0) - p_v @ vs
    db = p_data.mean(axis=0) - p_v @ p_model
    return dW, da, db
