"""Exact quantities of small restricted Boltzmann machines, by enumerating the states of one layer.

Trusted reference code for the hidden tests and for checking the AIS estimator: the grader never calls a
student's function to compute what it compares against.  Conventions of the assignment: visible units
v in {0, 1}^n_v, hidden units h in {0, 1}^n_h, weights W of shape (n_v, n_h), visible biases a, hidden
biases b, energy E(v, h) = -a.v - b.h - v W h, p(v, h) = exp(-E) / Z.  Summing over one layer is
analytic (the free energy), so only the *other* layer is enumerated: log Z of an MNIST-sized machine
with 20 hidden units costs 2^20 sums over 784 visible units.
"""

from __future__ import annotations

import typing as t

import numpy as np

if t.TYPE_CHECKING:
    import torch


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


MAX_ENUMERATED = 26  # 2^26 states of the smaller layer: about two minutes on one core


def log_partition(W: np.ndarray, a: np.ndarray, b: np.ndarray, *, device: str = "cpu", low_bits: int = 10) -> float:
    """log Z, exactly: the sum over every state of the smaller layer, the other layer summed analytically.

    With the hidden layer enumerated, Z = sum_h exp(b . h) prod_i (1 + exp(a_i + (W h)_i)).  The states are
    split into high and low bits, h = (h_hi, h_lo), so that (W h)_i = (W h_hi)_i + (W h_lo)_i: for each high
    pattern, one chunk of all low patterns costs a product, a sum and a logarithm per term (torch, float64,
    products of a few factors taken before the logarithm), then a float64 log-sum-exp.  Float64 holds every
    factor: parameters within the challenge's bound of 25 and 25 units keep |a_i + (W h)_i| <= 650 < 709.
    """
    W, a, b = (np.asarray(x, dtype=np.float64) for x in (W, a, b))
    if W.shape[0] <= W.shape[1]:  # the visible layer is the smaller one: exchange the roles
        W, a, b = W.T, b, a
    n = W.shape[1]
    if n > MAX_ENUMERATED:
        raise ValueError(f"enumerating 2^{n} states is too much; use AIS")
    import torch

    from mlphys.assignments.boltzmann_mnist.ais import one_thread

    with one_thread(), torch.no_grad():
        # 2^low_bits x n_v float64 numbers per chunk: 6 MB for MNIST, about what a core's cache holds
        tensors = (torch.as_tensor(x, device=device) for x in (W, a, b))
        return _enumerate(*tensors, low_bits=low_bits)


def _states(n: int, like: torch.Tensor) -> torch.Tensor:
    import torch

    index = torch.arange(2**n, device=like.device)[:, None]
    return ((index >> torch.arange(n - 1, -1, -1, device=like.device)) & 1).to(like.dtype)


def _enumerate(W: torch.Tensor, a: torch.Tensor, b: torch.Tensor, low_bits: int) -> float:
    """log sum_h exp(b . h + sum_i softplus(a_i + (W h)_i)) over every h of length W.shape[1]."""
    import torch

    n = W.shape[1]
    n_lo = min(n, low_bits)
    n_hi = n - n_lo
    low, high = _states(n_lo, W), _states(n_hi, W)
    exp_low = torch.exp(low @ W[:, n_hi:].T)  # exp((W h_lo)_i), one row per low pattern
    bias_low = low @ b[n_hi:]
    exp_high = torch.exp(a + high @ W[:, :n_hi].T)  # exp(a_i + (W h_hi)_i)
    bias_high = high @ b[:n_hi]
    # Factors 1 + exp(x) <= exp(|x|_max) are multiplied in groups before the logarithm, as many as float64
    # holds (exp(700) at most); the pixels are padded with factors of 1 to a multiple of the group.
    largest = float(torch.log1p(exp_high.max(dim=0).values * exp_low.max(dim=0).values).max())
    group = int(max(1, min(8, 700.0 // max(largest, 1.0))))
    pad = (-W.shape[0]) % group
    if pad:
        exp_low = torch.cat([exp_low, torch.zeros(len(exp_low), pad, dtype=W.dtype, device=W.device)], dim=1)
        exp_high = torch.cat([exp_high, torch.zeros(len(exp_high), pad, dtype=W.dtype, device=W.device)], dim=1)
    factors = torch.empty_like(exp_low)
    parts = torch.empty(len(high), dtype=W.dtype, device=W.device)
    for p in range(len(high)):
        torch.mul(exp_low, exp_high[p], out=factors)
        factors.add_(1.0)
        log_weights = factors.view(len(low), -1, group).prod(dim=2).log_().sum(dim=1)
        parts[p] = torch.logsumexp(log_weights + bias_low, dim=0) + bias_high[p]
    return float(torch.logsumexp(parts, dim=0))


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
