"""Challenge scoring of 06_boltzmann_mnist: the held-out log-likelihood of an RBM, from its weights file alone.

No code of the submission runs. The weights file is loaded with ``torch.load(weights_only=True)`` after a
size check, must hold exactly ``{"rbm": {"W", "a", "b"}}`` of float tensors of the track's shapes, finite
and of bounded magnitude (:data:`MAX_ABS_PARAMETER`), and the grader computes everything else itself:

* the held-out digits: :data:`PUBLIC_DIGITS` public and :data:`PRIVATE_DIGITS` private ones, chosen from
  the loader's held-out digits and binarised stochastically, both with seeds drawn from the course secret,
  so nobody knows the exact binary vectors in advance;
* the mean log-likelihood per digit of each split, -<F(v)> - log Z, where only log Z is hard.

The published figure is never better than the truth, as far as the grader can tell (the principle of every
board, :class:`~mlphys.grading.challenge.Challenge`):

* **at most** :data:`EXACT_UP_TO` **hidden units** (every H25 entry): log Z exactly, by enumerating the
  2^n hidden states (:func:`.exact.log_partition`); nothing is estimated, nothing can be exploited;
* **more**: two annealing estimates from a base model with the data's pixel *and hidden-unit* rates
  (:mod:`.ais`), at :data:`BETAS` inverse temperatures: AIS (:data:`AIS_RUNS` runs), whose log Z errs low,
  so its log-likelihood errs high; RAISE from each of :data:`RAISE_DIGITS` held-out digits (a secret subset
  of both splits), whose log Z errs high where the annealing sees the model's valleys, plus
  :data:`RAISE_MARGIN` standard errors; and a certain lower bound on log Z, the sum of exp(-F(h)) over the
  distinct hidden states the chains visited near beta = 1 and the local maxima of p(v, h) that a
  deterministic descent reaches from the RAISE digits, random images and draws of the base model.  log Z
  is the largest of the three, so the figure is the lowest; the board shows AIS's and RAISE's beside it.
  For models whose deep valleys the annealing misses, RAISE is optimistic too (it bounds the annealing's
  own model): then the certain bound holds the figure down (grader_tests/test_rbm_truth.py).
* Where AIS and RAISE are more than :data:`MARK_BAND` nats apart, or AIS's log Z is that far below the
  certain bound, the entry is marked and, unless even AIS puts it below the track's pass band, estimated
  again at :data:`LONG_BETAS` inverse temperatures (fresh seeds); the longer estimates decide.  This
  happens when the entry is scored, not when the board is rebuilt: the board is rebuilt from the
  gradebook's records, which keep no weights, and with the hidden units' base rates honest entries agree
  well inside the band, so only peaked models pay for it.

What no estimator can see is a mode of the model that no chain and no descent reaches (log Z of an RBM is
#P-hard to compute, and its largest term NP-hard to find): the figure of an H500 entry rests on the states
found.  For models up to 20 hidden units scaled as an attacker would, it is never above the exact value;
for a spin glass (weights of +-20) it can be tens of nats above it, thousands of nats below every band;
for issue 23's attack on the 500-unit reference it is the certain bound, -249, where a long AIS run says
-252 to -255 (docs/assignments/06-boltzmann-mnist.md): below the pass band either way.

All seeds come from the secret and the weights' hash (the same file always gets the same score); scores
are cached by the weights' hash, track and secret, so one file entered twice (or regraded in the same run)
is scored once.  The boards rank by a cost, lower is better: the negative log-likelihood per digit, in nats.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import typing as t
from pathlib import Path

import numpy as np

from mlphys.assignments.boltzmann_mnist.ais import (
    ais_log_partition,
    base_biases,
    descended_log_z,
    hidden_base_biases,
    raise_log_likelihood,
)
from mlphys.assignments.boltzmann_mnist.exact import free_energy, log_partition, sigmoid
from mlphys.course import mnist
from mlphys.course.rbm import N_VISIBLE, PASS_BANDS, TRACKS, max_hidden, weights_filename
from mlphys.grading.challenge import Challenge, EntryProblem, Scored, Scoring, expect_scored, load_weights

PUBLIC_DIGITS = 500
PRIVATE_DIGITS = 500
MAX_WEIGHTS_BYTES = 4 * 2**20  # 500 hidden units in float32 take 1.6 MB
MAX_ABS_PARAMETER = 25.0  # trained MNIST RBMs stay well below 10
EXACT_UP_TO = 25  # hidden units whose 2^n states are enumerated
AIS_RUNS = 100
RAISE_DIGITS = 100  # one reverse chain from each
BETAS = 1_000
LONG_BETAS = 4_000  # for a marked entry
MARK_BAND = 5.0  # nats between the AIS and the RAISE figure beyond which an entry is marked
RAISE_MARGIN = 2.0  # standard errors (over the digits) added to RAISE's log Z
DESCENT_STARTS = 100  # random images, and as many draws of the base model, from which the modes are sought
HIDDEN_RATE_DIGITS = 2_000  # training digits whose hidden activations give the base model's hidden rates


_SCORED: dict[tuple[str, str, str], Scored] = {}  # (weights' digest, track, secret) -> its entry


@dataclasses.dataclass(frozen=True)
class Annealed:
    """The three views of log Z of an RBM too large to enumerate (:func:`annealed_log_z`)."""

    ais: float  # AIS: errs low
    ais_stderr: float
    ais_effective_runs: float
    raise_: float  # RAISE's mean over its digits: errs high
    raise_stderr: float  # standard error of that mean over the digits
    visited: float  # log of the sum over the visited hidden states: certainly <= log Z
    betas: int

    @property
    def conservative(self) -> float:
        """The largest: AIS, RAISE plus its margin, the visited states' bound."""
        return max(self.ais, self.raise_ + RAISE_MARGIN * self.raise_stderr, self.visited)

    @property
    def disagree(self) -> bool:
        """AIS and RAISE further apart than the band, or AIS below the certain bound by more than it (then AIS
        is wrong for sure, and RAISE, which agrees with it, is no safer)."""
        return abs(self.ais - self.raise_) > MARK_BAND or self.visited - self.ais > MARK_BAND


@dataclasses.dataclass(frozen=True)
class LogLikelihood:
    """The held-out log-likelihoods per digit of one RBM, as the board publishes them."""

    public: float  # the figure: exact, or the lowest the estimates allow
    private: float
    log_z: float  # behind both figures
    exact: bool
    ais_public: float | None = None  # the public figure with AIS's log Z alone (optimistic)
    raise_public: float | None = None  # ... with RAISE's (conservative)
    marked: bool = False  # AIS disagreed with RAISE or the bound at BETAS (then LONG_BETAS, if it mattered)
    estimates: tuple[Annealed, ...] = ()


def _seed(secret: str, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(f"boltzmann-challenge:{purpose}:{secret}".encode()).digest()[:8], "little")


@functools.lru_cache(maxsize=4)
def hidden_digits(secret: str) -> dict[str, np.ndarray]:
    """Public and private held-out digits (float64 0/1 rows of 784), RAISE's secret subset of both, and the
    base-rate digits (binarised training digits) for the annealing's base model."""
    data = mnist.load_mnist()
    order = np.random.default_rng(_seed(secret, "choice")).permutation(len(data.heldout_images))
    chosen = data.heldout_images[order[: PUBLIC_DIGITS + PRIVATE_DIGITS]]
    binary = mnist.binarize(chosen, seed=_seed(secret, "binarize")).astype(np.float64)
    base = mnist.binarize(data.train_images, seed=_seed(secret, "base"))
    subset = np.random.default_rng(_seed(secret, "raise")).permutation(len(binary))[:RAISE_DIGITS]
    return {"public": binary[:PUBLIC_DIGITS], "private": binary[PUBLIC_DIGITS:], "raise": binary[subset], "base": base}


def check_rbm(state: dict[str, dict[str, np.ndarray]], track: str, name: str) -> tuple[np.ndarray, ...]:
    """(W, a, b) as float64 arrays from a loaded weights file, after every check; EntryProblem otherwise."""
    rbm = state["rbm"]
    if set(rbm) != {"W", "a", "b"}:
        raise EntryProblem(f"{name} must hold {{'rbm': {{'W': ..., 'a': ..., 'b': ...}}}} (use save_rbm).")
    for key in ("W", "a", "b"):
        if rbm[key].dtype.kind != "f":
            raise EntryProblem(f"{name}: {key} must be a tensor of floating-point numbers.")
    W, a, b = (np.asarray(rbm[key], dtype=np.float64) for key in ("W", "a", "b"))
    limit = max_hidden(track)
    if W.ndim != 2 or a.shape != (N_VISIBLE,) or b.ndim != 1 or W.shape != (N_VISIBLE, b.shape[0]):
        raise EntryProblem(f"{name}: W, a and b must have shapes (784, n), (784,) and (n,); they have "
                           f"{tuple(W.shape)}, {tuple(a.shape)} and {tuple(b.shape)}.")
    if not 1 <= b.shape[0] <= limit:
        raise EntryProblem(f"{name} has {b.shape[0]} hidden units; {track} allows 1 to {limit}.")
    if not all(np.isfinite(x).all() for x in (W, a, b)):
        raise EntryProblem(f"{name} contains NaN or infinite parameters.")
    largest = max(float(np.abs(x).max()) for x in (W, a, b))
    if largest > MAX_ABS_PARAMETER:
        raise EntryProblem(f"{name} has a parameter of size {largest:.3g}; at most {MAX_ABS_PARAMETER:g} is "
                           "allowed (larger ones make the log-likelihood estimate numerically unreliable).")
    return W, a, b


def load_rbm_weights(path: Path, track: str) -> tuple[np.ndarray, ...]:
    """(W, a, b) from a weights file: the engine's safe loading, then :func:`check_rbm`."""
    return check_rbm(load_weights(path, ("rbm",), MAX_WEIGHTS_BYTES), track, path.name)


def annealed_log_z(
    W: np.ndarray, a: np.ndarray, b: np.ndarray, digits: dict[str, np.ndarray], seed: int, betas: int = BETAS
) -> Annealed:
    """AIS, RAISE (from ``digits["raise"]``) and the visited states' bound on log Z, from a base model with the
    rates of ``digits["base"]``."""
    base = {
        "base": base_biases(digits["base"]),
        "base_hidden": hidden_base_biases(W, b, digits["base"][:HIDDEN_RATE_DIGITS]),
        "betas": betas,
    }
    forward = ais_log_partition(W, a, b, runs=AIS_RUNS, seed=seed, **base)
    reverse = raise_log_likelihood(W, a, b, digits["raise"], seed=seed + 1, **base)
    per_digit = -free_energy(digits["raise"], W, a, b) - reverse.log_p  # each digit's estimate of log Z
    # The local maxima of p(v, h) above the held-out digits, random images and draws of the base model.
    rng = np.random.default_rng(seed + 2)
    starts = [digits["raise"], rng.random((DESCENT_STARTS, W.shape[0])) < 0.5]
    starts.append(rng.random((DESCENT_STARTS, W.shape[0])) < sigmoid(base["base"]))
    stderr = float(np.std(per_digit, ddof=1) / math.sqrt(len(per_digit))) if len(per_digit) > 1 else math.inf
    return Annealed(
        ais=forward.value,
        ais_stderr=forward.stderr,
        ais_effective_runs=forward.effective_runs,
        raise_=float(np.mean(per_digit)),
        raise_stderr=stderr,
        visited=max(forward.visited_log_z, reverse.visited_log_z, descended_log_z(W, a, b, np.concatenate(starts))),
        betas=betas,
    )


def figures(
    W: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    digits: dict[str, np.ndarray],
    seed: int,
    reestimate_above: float = -math.inf,
    exact_up_to: int = EXACT_UP_TO,
) -> LogLikelihood:
    """The held-out log-likelihoods per digit of a checked RBM: exact up to :data:`EXACT_UP_TO` hidden units,
    else the most conservative of the annealing estimates, estimated again with a longer schedule where AIS
    and RAISE disagree, if even so AIS puts the public figure above ``reestimate_above`` (the track's pass
    band: below it, nothing the longer estimate finds earns a point).  ``exact_up_to`` is for tests of the
    estimators against the truth."""
    mean = {split: float(np.mean(-free_energy(digits[split], W, a, b))) for split in ("public", "private")}
    if b.shape[0] <= exact_up_to:
        log_z = log_partition(W, a, b)
        return LogLikelihood(mean["public"] - log_z, mean["private"] - log_z, log_z, exact=True)
    estimates = [annealed_log_z(W, a, b, digits, seed)]
    if estimates[0].disagree and mean["public"] - estimates[0].ais > reestimate_above:
        estimates.append(annealed_log_z(W, a, b, digits, seed + 3, betas=LONG_BETAS))
    final = dataclasses.replace(estimates[-1], visited=max(e.visited for e in estimates))
    log_z = final.conservative
    return LogLikelihood(
        mean["public"] - log_z,
        mean["private"] - log_z,
        log_z,
        exact=False,
        ais_public=mean["public"] - final.ais,
        raise_public=mean["public"] - final.raise_,
        marked=estimates[0].disagree,
        estimates=tuple(estimates),
    )


def log_likelihood(
    W: np.ndarray, a: np.ndarray, b: np.ndarray, secret: str, salt: str = "", track: str = "H500"
) -> LogLikelihood:
    """The held-out log-likelihoods per digit of a checked RBM of ``track`` on the secret's digits (seeded from
    the secret and ``salt``)."""
    seed = _seed(secret, f"annealing:{salt}") % 2**62
    return figures(W, a, b, hidden_digits(secret), seed, reestimate_above=PASS_BANDS[track]["pass"])


def describe(found: LogLikelihood, hidden: int) -> str:
    """The board's words beside the figure: how it was computed, and the estimates it comes from."""
    if found.exact:
        return f"{hidden} (exact)"
    assert found.ais_public is not None and found.raise_public is not None
    marked = ("; marked: AIS and RAISE disagree" + ", estimated again" * (len(found.estimates) > 1)) * found.marked
    return f"{hidden} (AIS {found.ais_public:.1f}, RAISE {found.raise_public:.1f}{marked})"


class BoltzmannChallenge(Challenge):
    key = "boltzmann_challenge"
    title = "Boltzmann Machine Challenge"
    tracks = tuple(TRACKS)
    track_notes: t.ClassVar[dict[str, str]] = {
        track: f"At most {units} hidden units." for track, units in TRACKS.items()
    }
    metric = (
        "negative log-likelihood per held-out digit, in nats: exact up to 25 hidden units, else the most "
        "conservative of AIS, RAISE and the visited hidden states' bound"
    )
    detail_label = "hidden units (log-likelihood by AIS, by RAISE)"
    weights_parts = ("rbm",)
    max_weights_bytes = MAX_WEIGHTS_BYTES

    def weights_filename(self, track: str) -> str:
        return weights_filename(track)

    def score(self, track: str, state: dict[str, dict[str, np.ndarray]], context: Scoring) -> Scored:
        W, a, b = check_rbm(state, track, self.weights_filename(track))
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes() for x in (W, a, b))).hexdigest()
        key = (digest, track, context.secret)
        if key not in _SCORED:
            found = log_likelihood(W, a, b, context.secret, salt=digest, track=track)
            _SCORED[key] = Scored(
                track,
                stage="scored",
                public_cost=-found.public,
                private_cost=-found.private,
                detail=describe(found, b.shape[0]),
            )
        return dataclasses.replace(_SCORED[key])


CHALLENGE = BoltzmannChallenge()


def expect_band(entry: Scored, band: str) -> None:
    """The public held-out log-likelihood is above the track's ``band`` ("pass" or "good")."""
    expect_scored(entry)
    assert entry.public_cost is not None
    needed = PASS_BANDS[entry.track][band]
    if not -entry.public_cost > needed:
        raise AssertionError(
            f"Your RBM's held-out log-likelihood, as the grader computes it (exactly, or a conservative estimate), "
            f"is {-entry.public_cost:.1f} nats per digit; this test needs above {needed:g} for {entry.track}."
        )
