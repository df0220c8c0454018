"""Annealing estimators of an RBM's likelihood: AIS forward (Salakhutdinov and Murray, "On the
quantitative analysis of deep belief networks", ICML 2008) and RAISE in reverse (Burda, Grosse and
Salakhutdinov, "Accurate and conservative estimates of MRF log-likelihood using reverse annealing",
AISTATS 2015).

Both anneal between a base model of independent units p_0(v, h) ∝ exp(a_0 . v + b_0 . h) (Z_0 known) and
the RBM (W, a, b) along p_k(v, h) ∝ p_0^(1 - beta_k) p^beta_k, through the distributions of the visible units,
with the hidden units summed out,

    f_k(v) = exp((1 - beta_k) a_0 . v + beta_k a . v) * prod_j (1 + exp((1 - beta_k) b_0j + beta_k (b_j + (v W)_j))),

with 0 = beta_0 < beta_1 < ... < beta_K = 1.  T_k, one block Gibbs step v -> h -> v' of f_k, leaves f_k
invariant and is reversible with respect to it (p_k(v) T_k(v'|v) = sum_h p_k(v, h) p_k(v'|h) is symmetric).

* **AIS** moves M runs forward from samples of p_0 and accumulates w = prod_k f_k(v_{k-1}) / f_{k-1}(v_{k-1}).
  The mean of w is an unbiased estimate of Z / Z_0, so log of the mean underestimates log Z on average
  (Jensen), and it does so *badly* where the runs miss a mode that carries the mass: an AIS
  log-likelihood errs on the optimistic side, "with little indication that anything is wrong".
* **RAISE** starts at a test vector v = v_K and moves *down*, v_{k-1} ~ T_k(. | v_k), to v_0; the weight

      p^(v) = p_0(v_0) * prod_{k=1..K} f_k(v_k) / f_k(v_{k-1})

  (each f_k at the two states its own transition joins: this is where the reverse weights are easy to
  get wrong; Upadhya and Sastry 2015 state them as here) is an unbiased estimate of the probability of v
  under the annealing model (v_0 ~ p_0, then T_1, ..., T_K forward), so its log is, on average, *below*
  that log-probability.  A chain started at a digit falls into the deep modes near it and pays for them:
  where AIS is optimistic, RAISE is conservative.  Neither can see a mode that no chain ever reaches
  (estimating Z is #P-hard; the grader states what it cannot catch).

Whatever the hidden states the chains visit, sum_{distinct h} exp(-F_h(h)) is a *certain* lower bound on Z
(every term of Z is positive): :class:`Reverse` keeps it, and the grader never reports a log-likelihood
above the one it implies.

The heavy arithmetic is torch (float32 products, float64 sums of log-weights), on a GPU when asked;
uniform numbers come from numpy's seeded generator on the CPU, so the same weights, digits and seed give
the same estimate on the same machine.  Error bars of AIS as in the paper: log(mean w +- 3 standard errors
of the mean); since the lower one is -inf whenever three standard errors exceed the mean, also the
standard error of log Z by the delta method.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import typing as t

import numpy as np

from mlphys.assignments.boltzmann_mnist.exact import free_energy, logsumexp, sigmoid, softplus

if t.TYPE_CHECKING:
    import torch


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
    visited_log_z: float = -math.inf  # log of the sum over the distinct hidden states seen near beta = 1: <= log Z


@dataclasses.dataclass(frozen=True)
class Reverse:
    """RAISE estimates of log p(v) for some test vectors (log-mean of the chains' weights per vector), and the
    certain lower bound on log Z from the hidden states the chains visited near the model (beta >= 0.99)."""

    log_p: np.ndarray  # one per test vector
    visited_log_z: float
    chains: int
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


def hidden_base_biases(W: np.ndarray, b: np.ndarray, data: np.ndarray, smoothing: float = 1e-3) -> np.ndarray:
    """Hidden biases of the base model: the log-odds of each hidden unit's mean activation p(h_j = 1 | v) over
    the data, kept within [smoothing, 1 - smoothing].

    Starting from independent hidden units at their data rates, instead of uniform ones, the annealing no
    longer has to take away n_h log 2 nats of hidden entropy in its first few steps: for a trained MNIST RBM
    with 500 hidden units this brings AIS and RAISE at 1,000 inverse temperatures from 100 nats apart to
    within two of each other (docs/assignments/06-boltzmann-mnist.md, figures of 06).
    """
    data = np.asarray(data, dtype=np.float64)
    rate = np.clip(sigmoid(np.asarray(b, dtype=np.float64) + data @ np.asarray(W, dtype=np.float64)).mean(axis=0),
                   smoothing, 1.0 - smoothing)
    return np.log(rate) - np.log1p(-rate)


def _betas(betas: np.ndarray | int) -> np.ndarray:
    beta = schedule(betas) if isinstance(betas, int) else np.asarray(betas, dtype=np.float64)
    if len(beta) < 2 or beta[0] != 0.0 or beta[-1] != 1.0 or np.any(np.diff(beta) <= 0):
        raise ValueError("betas must rise from 0 to 1")
    return beta


@contextlib.contextmanager
def one_thread() -> t.Iterator[None]:
    """torch on one CPU thread for the duration: the estimate does not depend on how many cores there are,
    and parallel grading workers (one per core) do not compete for them."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _Annealing:
    """The tempered models f_k of one RBM, their Gibbs steps, and a seeded source of uniform numbers."""

    VISITED_FROM = 0.99  # hidden states sampled at beta >= this count towards the visited-states bound

    def __init__(
        self,
        W: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
        base: np.ndarray | None,
        seed: int,
        device: str,
        base_hidden: np.ndarray | None = None,
    ):
        import torch

        self.torch, self.device = torch, device
        W, a, b = (np.asarray(x, dtype=np.float64) for x in (W, a, b))
        self.n_v, self.n_h = W.shape
        a0 = np.zeros(self.n_v) if base is None else np.asarray(base, dtype=np.float64)
        b0 = np.zeros(self.n_h) if base_hidden is None else np.asarray(base_hidden, dtype=np.float64)
        self.log_z0 = float(softplus(a0).sum() + softplus(b0).sum())
        self.log_norm0 = float(softplus(a0).sum())  # log p_0(v) = a_0 . v - this
        as32 = lambda x: torch.as_tensor(x, dtype=torch.float32, device=device)  # noqa: E731
        self.W, self.WT = as32(W), as32(np.ascontiguousarray(W.T))
        self.a, self.b, self.a0, self.b0 = as32(a), as32(b), as32(a0), as32(b0)
        self.b064 = torch.as_tensor(b0, dtype=torch.float64, device=device)
        self.a64 = torch.as_tensor(a, dtype=torch.float64, device=device)
        self.a064 = torch.as_tensor(a0, dtype=torch.float64, device=device)
        self.a_rise = as32(a - a0)  # d/dbeta of the visible term
        self.rng = np.random.default_rng(seed)
        self._cuda = torch.Generator(device=device).manual_seed(seed) if device != "cpu" else None
        self._buffers: dict[tuple[int, int], np.ndarray] = {}
        self.visited: dict[bytes, float] = {}

    def uniform(self, rows: int, cols: int) -> torch.Tensor:
        if self._cuda is not None:
            return self.torch.rand(rows, cols, generator=self._cuda, device=self.device)
        buffer = self._buffers.setdefault((rows, cols), np.empty((rows, cols), dtype=np.float32))
        return self.torch.from_numpy(self.rng.random(out=buffer, dtype=np.float32))

    def field(self, v: torch.Tensor) -> torch.Tensor:
        """b + v W, the hidden units' input (float32)."""
        return self.torch.addmm(self.b, v, self.W)

    def hidden_input(self, field: torch.Tensor, beta: float) -> torch.Tensor:
        return (1.0 - beta) * self.b0 + beta * field

    def log_f(self, v: torch.Tensor, field: torch.Tensor, beta: float) -> torch.Tensor:
        """log f_beta(v) per row, in float64 throughout (for the ends of a chain)."""
        v64 = v.double()
        linear = (1.0 - beta) * (v64 @ self.a064) + beta * (v64 @ self.a64)
        hidden = (1.0 - beta) * self.b064 + beta * field.double()
        return linear + self.torch.nn.functional.softplus(hidden).sum(dim=1)

    def log_ratio(self, v: torch.Tensor, field: torch.Tensor, beta: float, lower: float) -> torch.Tensor:
        """log f_beta(v) - log f_lower(v) per row (float64).

        The two softplus terms of a hidden unit are taken in float32 and subtracted before the float64 sum, so
        the error is that of the (small) difference, about 1e-6 nats per unit, not that of the two sums.
        """
        softplus = self.torch.nn.functional.softplus
        units = softplus(self.hidden_input(field, beta)) - softplus(self.hidden_input(field, lower))
        return (beta - lower) * (v @ self.a_rise).double() + units.sum(dim=1, dtype=self.torch.float64)

    def log_p0(self, v: torch.Tensor) -> torch.Tensor:
        return v.double() @ self.a064 - self.log_norm0

    def gibbs(self, v: torch.Tensor, field: torch.Tensor, beta: float) -> torch.Tensor:
        """One block Gibbs step of f_beta from v (whose field is given): v -> h -> v'."""
        torch = self.torch
        rows = v.shape[0]
        h = (self.uniform(rows, self.n_h) < torch.sigmoid(self.hidden_input(field, beta))).float()
        down = h @ self.WT  # (W h)_i, shared by the step and the visited-states bound
        if beta >= self.VISITED_FROM:
            self._visit(h, down)
        x = (1.0 - beta) * self.a0 + beta * (self.a + down)
        return (self.uniform(rows, self.n_v) < torch.sigmoid(x)).float()

    def _visit(self, h: torch.Tensor, down: torch.Tensor) -> None:
        """Remember -F_h(h) = b . h + sum_i softplus(a_i + (W h)_i) of each hidden state, once per state."""
        torch = self.torch
        value = (h.double() @ self.b.double()) + torch.nn.functional.softplus((self.a + down).double()).sum(dim=1)
        keys = np.packbits(h.to(dtype=torch.bool, device="cpu").numpy(), axis=1)
        for key, log_weight in zip(keys, value.cpu().numpy().tolist(), strict=True):
            self.visited.setdefault(key.tobytes(), log_weight)

    def visited_log_z(self) -> float:
        return float(logsumexp(np.fromiter(self.visited.values(), dtype=np.float64))) if self.visited else -math.inf


def _device(device: str | None) -> str:
    if device is not None:
        return device
    from mlphys.course.rbm import pick_device

    return pick_device()


def ais_log_partition(
    W: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    base: np.ndarray | None = None,
    base_hidden: np.ndarray | None = None,
    runs: int = 100,
    betas: np.ndarray | int = 10_000,
    seed: int = 0,
    device: str | None = "cpu",
) -> LogZ:
    """Estimate log Z of the RBM (W, a, b) with AIS: ``runs`` parallel runs over the schedule ``betas``.

    ``base`` and ``base_hidden`` are the base model's visible and hidden biases (default: zeros, i.e. uniform
    units); the data's rates (:func:`base_biases`, :func:`hidden_base_biases`) make the estimate much more
    precise for a trained model.  ``device=None`` takes the GPU where there is one.
    """
    beta = _betas(betas)
    with one_thread():
        model = _Annealing(W, a, b, base, seed, _device(device), base_hidden)
        torch = model.torch
        v = (model.uniform(runs, model.n_v) < torch.sigmoid(model.a0)).float()
        log_w = torch.zeros(runs, dtype=torch.float64, device=model.device)
        for k in range(1, len(beta)):
            field = model.field(v)  # serves the weight and the step
            log_w += model.log_ratio(v, field, beta[k], beta[k - 1])
            if k < len(beta) - 1:
                v = model.gibbs(v, field, beta[k])
        log_w_np = log_w.cpu().numpy()
    summary = _summarise(log_w_np, model.log_z0, len(beta))
    return dataclasses.replace(summary, visited_log_z=model.visited_log_z())


def raise_log_likelihood(
    W: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    digits: np.ndarray,
    *,
    base: np.ndarray | None = None,
    base_hidden: np.ndarray | None = None,
    chains: int = 1,
    betas: np.ndarray | int = 1_000,
    seed: int = 0,
    device: str | None = "cpu",
) -> Reverse:
    """RAISE: a stochastic lower bound on log p(v) for each row of ``digits`` (0/1), ``chains`` reverse chains
    each, over the schedule ``betas`` (from the model down to the base model, as in :func:`ais_log_partition`)."""
    beta = _betas(betas)
    digits = np.asarray(digits, dtype=np.float32)
    n = len(digits)
    with one_thread():
        model = _Annealing(W, a, b, base, seed, _device(device), base_hidden)
        torch = model.torch
        v = torch.as_tensor(np.repeat(digits, chains, axis=0), device=model.device)
        field = model.field(v)
        log_w = model.log_f(v, field, 1.0)  # f_K(v_K), the model's own unnormalised probability of the digit
        for k in range(len(beta) - 1, 0, -1):
            v = model.gibbs(v, field, beta[k])  # v_{k-1} ~ T_k(. | v_k)
            field = model.field(v)
            # f_k(v_{k-1}) leaves the weight; f_{k-1}(v_{k-1}) joins it at the next level (p_0 at the end).
            if k > 1:
                log_w -= model.log_ratio(v, field, beta[k], beta[k - 1])
            else:
                log_w += model.log_p0(v) - model.log_f(v, field, beta[k])
        log_w_np = log_w.cpu().numpy().reshape(n, chains)
    log_p = logsumexp(log_w_np, axis=1) - math.log(chains)
    return Reverse(np.atleast_1d(log_p), model.visited_log_z(), chains, len(beta))


def descended_log_z(
    W: np.ndarray, a: np.ndarray, b: np.ndarray, starts: np.ndarray, *, sweeps: int = 50, device: str | None = "cpu"
) -> float:
    """A certain lower bound on log Z from the local maxima of p(v, h): deterministic block updates
    h = [b + v W > 0], v = [a + W h > 0] from each row of ``starts`` (0/1 visible vectors), which raise
    p(v, h) at every step until nothing changes (or ``sweeps`` are done); log of the sum of exp(-F_h(h))
    over the distinct hidden states met on the way.

    Sampling finds the modes the chains fall into; a sharply peaked model puts its mass on a few such maxima
    (weights of +-20 within the parameter bound), which a search from many starts finds where 1,000 Gibbs
    steps may not.
    """
    with one_thread():
        model = _Annealing(W, a, b, None, 0, _device(device))
        torch = model.torch
        v = torch.as_tensor(np.asarray(starts, dtype=np.float32), device=model.device)
        for _ in range(sweeps):
            h = (model.field(v) > 0).float()
            down = h @ model.WT
            model._visit(h, down)
            moved = ((model.a + down > 0).float() != v).any(dim=1)
            if not bool(moved.any()):
                break
            v = (model.a + down > 0).float()[moved]  # rows at a fixed point are done
    return model.visited_log_z()


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


__all__ = [
    "HeldOut",
    "LogZ",
    "Reverse",
    "ais_log_partition",
    "base_biases",
    "descended_log_z",
    "heldout_log_likelihood",
    "hidden_base_biases",
    "logsumexp",
    "raise_log_likelihood",
    "schedule",
]
