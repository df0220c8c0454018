"""Annealed importance sampling (AIS) for the partition function of an RBM, after Salakhutdinov and
Murray, "On the quantitative analysis of deep belief networks" (ICML 2008).

From the weights alone (W, a, b) this estimates log Z, and with it the log-likelihood of held-out digits,
log p(v) = -F(v) - log Z, where the free energy F(v) is exact.  The estimator anneals from a base model
p_0(v) ∝ exp(a_0 . v) (independent pixels, Z_0 known) to the RBM through the distributions

    p_k(v) ∝ exp((1 - beta_k) a_0 . v + beta_k a . v) * prod_j (1 + exp(beta_k (b_j + (v W)_j))),

with 0 = beta_0 < beta_1 < ... < beta_K = 1, moving M independent runs with one Gibbs step of p_k at each
level and accumulating the importance weights w = prod_k p*_k(v_k) / p*_{k-1}(v_k).  The mean of w is an
unbiased estimate of Z / Z_0; log of the mean underestimates log Z on average (Jensen), so an AIS
log-likelihood errs on the optimistic side when the runs are too few or the schedule too short.
Error bars, as in the paper: log(mean w +- 3 standard errors of the mean); and, since the lower one is
-inf whenever three standard errors exceed the mean, the standard error of log Z by the delta method.

Everything is seeded: the same weights, digits and seed give the same estimate, to the last bit.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from mlphys.assignments.boltzmann_mnist.exact import free_energy, logsumexp, sigmoid, softplus


@dataclasses.dataclass(frozen=True)
class LogZ:
    """An AIS estimate of log Z: the value, log(mean w -+ 3 standard errors) as lower and upper bounds, and
    the standard error of the value itself (the relative standard error of the mean weight, in nats)."""

    value: float
    lower: float  # -inf where three standard errors exceed the mean
    upper: float
    stderr: float
    effective_runs: float  # (sum w)^2 / sum w^2: how many runs carry the estimate (1 when one dominates)
    runs: int
    betas: int


def schedule(n_betas: int = 10_000) -> np.ndarray:
    """Inverse temperatures from 0 to 1, denser near 1 (the paper's 0.5 / 0.9 breakpoints, in proportion)."""
    n1, n2 = n_betas // 29, 8 * n_betas // 29  # the paper: 500, 4,000 and 10,000 of 14,500
    n3 = n_betas - n1 - n2
    return np.concatenate(
        [
            np.linspace(0.0, 0.5, n1, endpoint=False),
            np.linspace(0.5, 0.9, n2, endpoint=False),
            np.linspace(0.9, 1.0, n3),
        ]
    )


def base_biases(data: np.ndarray, smoothing: float = 0.05) -> np.ndarray:
    """Visible biases of the base model: the data's pixel marginals, smoothed away from 0 and 1."""
    mean = (np.asarray(data, dtype=np.float64).sum(axis=0) + smoothing) / (len(data) + 2 * smoothing)
    return np.log(mean) - np.log1p(-mean)


def ais_log_partition(
    W: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    base: np.ndarray | None = None,
    runs: int = 100,
    betas: np.ndarray | int = 10_000,
    seed: int = 0,
) -> LogZ:
    """Estimate log Z of the RBM (W, a, b) with AIS: ``runs`` parallel runs over the schedule ``betas``.

    ``base`` are the base model's visible biases (default: zeros, i.e. uniform pixels); base rates of the
    data (:func:`base_biases`) make the estimate much more precise for a trained model.
    """
    W, a, b = (np.asarray(x, dtype=np.float64) for x in (W, a, b))
    n_v, n_h = W.shape
    a0 = np.zeros(n_v) if base is None else np.asarray(base, dtype=np.float64)
    beta = schedule(betas) if isinstance(betas, int) else np.asarray(betas, dtype=np.float64)
    if beta[0] != 0.0 or beta[-1] != 1.0 or np.any(np.diff(beta) <= 0):
        raise ValueError("betas must rise from 0 to 1")
    rng = np.random.default_rng(seed)
    log_z0 = float(softplus(a0).sum()) + n_h * math.log(2.0)

    v = (rng.random((runs, n_v)) < sigmoid(a0)).astype(np.float64)
    log_w = np.zeros(runs)
    for k in range(1, len(beta)):
        # log p*_k(v) - log p*_{k-1}(v) at the current states; the field b + v W serves both and the step.
        field = v @ W + b
        log_w += (beta[k] - beta[k - 1]) * (v @ (a - a0))
        log_w += softplus(beta[k] * field).sum(axis=1) - softplus(beta[k - 1] * field).sum(axis=1)
        if k < len(beta) - 1:  # one Gibbs step that leaves p_k invariant
            bk = beta[k]
            h = (rng.random((runs, n_h)) < sigmoid(bk * field)).astype(np.float64)
            v = (rng.random((runs, n_v)) < sigmoid((1.0 - bk) * a0 + bk * (a + h @ W.T))).astype(np.float64)
    return _summarise(log_w, log_z0, len(beta))


def _summarise(log_w: np.ndarray, log_z0: float, n_betas: int) -> LogZ:
    top = float(np.max(log_w))
    w = np.exp(log_w - top)  # scaled weights: their mean and spread, safe from overflow
    mean, error = float(np.mean(w)), float(np.std(w, ddof=1) / math.sqrt(len(w)))
    offset = top + log_z0
    lower = math.log(mean - 3 * error) + offset if mean > 3 * error else -math.inf
    effective = float(np.sum(w) ** 2 / np.sum(w**2))
    upper = math.log(mean + 3 * error) + offset
    return LogZ(math.log(mean) + offset, lower, upper, error / mean, effective, len(w), n_betas)


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """Mean log-likelihood per digit (nats) of held-out digits, with its two sources of uncertainty."""

    mean: float  # mean of -F(v) over the digits, minus the AIS log Z
    lower: float  # from the AIS bounds on log Z (the upper bound on log Z gives the lower bound here)
    upper: float
    digits_stderr: float  # standard error of the mean over the digits (sampling of the digits)
    log_z: LogZ


def heldout_log_likelihood(
    W: np.ndarray, a: np.ndarray, b: np.ndarray, digits: np.ndarray, *, base_data: np.ndarray | None = None, **ais
) -> HeldOut:
    """The mean log p(v) of ``digits`` (rows of 0/1), with log Z from :func:`ais_log_partition`."""
    digits = np.asarray(digits, dtype=np.float64)
    log_z = ais_log_partition(W, a, b, base=None if base_data is None else base_biases(base_data), **ais)
    per_digit = -free_energy(digits, np.asarray(W, np.float64), np.asarray(a, np.float64), np.asarray(b, np.float64))
    stderr = float(np.std(per_digit, ddof=1) / math.sqrt(len(per_digit))) if len(per_digit) > 1 else 0.0
    mean = float(np.mean(per_digit))
    return HeldOut(mean - log_z.value, mean - log_z.upper, mean - log_z.lower, stderr, log_z)


__all__ = ["HeldOut", "LogZ", "ais_log_partition", "base_biases", "heldout_log_likelihood", "logsumexp", "schedule"]
