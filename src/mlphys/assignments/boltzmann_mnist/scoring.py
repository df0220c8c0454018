"""Challenge scoring of 06_boltzmann_mnist: the held-out log-likelihood of an RBM, from its weights file alone.

No code of the submission runs. The weights file is loaded with ``torch.load(weights_only=True)`` after a
size check, must hold exactly ``{"rbm": {"W", "a", "b"}}`` of float tensors of the track's shapes, finite
and of bounded magnitude (:data:`MAX_ABS_PARAMETER`), and the grader computes everything else itself:

* the held-out digits: :data:`PUBLIC_DIGITS` public and :data:`PRIVATE_DIGITS` private ones, chosen from
  the loader's held-out digits and binarised stochastically, both with seeds drawn from the course secret,
  so nobody knows the exact binary vectors in advance;
* log Z by annealed importance sampling (:mod:`.ais`) from a base model with the training digits' pixel
  rates, seeded from the secret and the weights' hash (the same file always gets the same score);
* the mean log-likelihood per digit of each split, -<F(v)> - log Z, with the AIS error bars.

The boards rank by a cost, lower is better: here the negative log-likelihood per digit, in nats.

AIS with few inverse temperatures underestimates log Z for sharply peaked models, so the scores of
well-trained (PCD) models are optimistic (see the figures in docs/assignments/06-boltzmann-mnist.md); the entry
records the estimate's standard error and its effective number of runs, (sum w)^2 / sum w^2, which is close to 1
for trained MNIST RBMs at the grading budget.  What keeps a hostile model from exploiting this is the bound on the
parameters' size; a leaderboard should re-estimate its best entries with a long AIS run.  Scores are cached by
the weights' hash, track and secret, so one file entered twice (or regraded in the same run) is estimated once.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import typing as t
from pathlib import Path

import numpy as np

from mlphys.assignments.boltzmann_mnist.ais import ais_log_partition, base_biases
from mlphys.assignments.boltzmann_mnist.exact import free_energy
from mlphys.course import mnist
from mlphys.course.rbm import N_VISIBLE, PASS_BANDS, TRACKS, max_hidden, weights_filename
from mlphys.grading.challenge import Challenge, EntryProblem, Scored, Scoring, expect_scored, load_weights

PUBLIC_DIGITS = 500
PRIVATE_DIGITS = 500
MAX_WEIGHTS_BYTES = 4 * 2**20  # 500 hidden units in float32 take 1.6 MB
MAX_ABS_PARAMETER = 25.0  # trained MNIST RBMs stay well below 10
AIS_RUNS = 100
AIS_BETAS = 1_000


_SCORED: dict[tuple[str, str, str], Scored] = {}  # (weights' digest, track, secret) -> its entry


@dataclasses.dataclass(frozen=True)
class LogLikelihood:
    """The held-out log-likelihoods of one RBM, with what AIS says of its estimate of log Z."""

    public: float
    private: float
    log_z: float
    log_z_stderr: float
    ais_effective_runs: float


def _seed(secret: str, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(f"boltzmann-challenge:{purpose}:{secret}".encode()).digest()[:8], "little")


@functools.lru_cache(maxsize=4)
def hidden_digits(secret: str) -> dict[str, np.ndarray]:
    """Public and private held-out digits (float64 0/1 rows of 784), and the base-rate digits for AIS."""
    data = mnist.load_mnist()
    order = np.random.default_rng(_seed(secret, "choice")).permutation(len(data.heldout_images))
    chosen = data.heldout_images[order[: PUBLIC_DIGITS + PRIVATE_DIGITS]]
    binary = mnist.binarize(chosen, seed=_seed(secret, "binarize")).astype(np.float64)
    base = mnist.binarize(data.train_images, seed=_seed(secret, "base"))
    return {"public": binary[:PUBLIC_DIGITS], "private": binary[PUBLIC_DIGITS:], "base": base}


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


def log_likelihood(W: np.ndarray, a: np.ndarray, b: np.ndarray, secret: str, salt: str = "") -> LogLikelihood:
    """The held-out log-likelihoods per digit of a checked RBM, by AIS (seeded from the secret and ``salt``)."""
    digits = hidden_digits(secret)
    log_z = ais_log_partition(
        W, a, b, base=base_biases(digits["base"]), runs=AIS_RUNS, betas=AIS_BETAS, seed=_seed(secret, f"ais:{salt}")
    )
    return LogLikelihood(
        public=float(np.mean(-free_energy(digits["public"], W, a, b)) - log_z.value),
        private=float(np.mean(-free_energy(digits["private"], W, a, b)) - log_z.value),
        log_z=log_z.value,
        log_z_stderr=log_z.stderr,
        ais_effective_runs=log_z.effective_runs,
    )


class BoltzmannChallenge(Challenge):
    key = "boltzmann_challenge"
    title = "Boltzmann Machine Challenge"
    tracks = tuple(TRACKS)
    track_notes: t.ClassVar[dict[str, str]] = {
        track: f"At most {units} hidden units." for track, units in TRACKS.items()
    }
    metric = "negative log-likelihood per held-out digit, in nats, estimated by AIS"
    detail_label = "hidden units (AIS s.e.)"
    weights_parts = ("rbm",)
    max_weights_bytes = MAX_WEIGHTS_BYTES

    def weights_filename(self, track: str) -> str:
        return weights_filename(track)

    def score(self, track: str, state: dict[str, dict[str, np.ndarray]], context: Scoring) -> Scored:
        W, a, b = check_rbm(state, track, self.weights_filename(track))
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes() for x in (W, a, b))).hexdigest()
        key = (digest, track, context.secret)
        if key not in _SCORED:
            found = log_likelihood(W, a, b, context.secret, salt=digest)
            _SCORED[key] = Scored(
                track,
                stage="scored",
                public_cost=-found.public,
                private_cost=-found.private,
                detail=f"{b.shape[0]} (±{found.log_z_stderr:.2f})",
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
            f"Your RBM's held-out log-likelihood, estimated by the grader, is {-entry.public_cost:.1f} nats per "
            f"digit; this test needs above {needed:g} for {entry.track}."
        )
