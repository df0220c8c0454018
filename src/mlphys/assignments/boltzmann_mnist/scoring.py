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

AIS with few inverse temperatures underestimates log Z for sharply peaked models, so the scores of
well-trained (PCD) models are optimistic (see the README's figures); the entry records the estimate's
standard error and its effective number of runs, (sum w)^2 / sum w^2, which is close to 1 for trained
MNIST RBMs at the grading budget.  What keeps a hostile model from exploiting this is the bound on the
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

if t.TYPE_CHECKING:
    from mlphys.grading.submission import Submission

RECORD_KEY = "boltzmann_challenge"
PUBLIC_DIGITS = 500
PRIVATE_DIGITS = 500
MAX_WEIGHTS_BYTES = 4 * 2**20  # 500 hidden units in float32 take 1.6 MB
MAX_ABS_PARAMETER = 25.0  # trained MNIST RBMs stay well below 10
AIS_RUNS = 100
AIS_BETAS = 1_000


_SCORED: dict[tuple[str, str, str], Entry] = {}  # (weights' sha256, track, secret) -> its entry


class EntryProblem(Exception):
    """Why an entry cannot be scored, in words the student can act on."""


@dataclasses.dataclass
class Entry:
    """One track's result. ``stage`` is "weights" until the file passed every check, then "scored"."""

    track: str
    stage: str = "weights"
    problem: str | None = None
    hidden_units: int | None = None
    public_ll: float | None = None
    private_ll: float | None = None
    log_z: float | None = None
    log_z_lower: float | None = None
    log_z_upper: float | None = None
    log_z_stderr: float | None = None
    ais_effective_runs: float | None = None
    weights_sha256: str | None = None

    def to_record(self) -> dict[str, t.Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ChallengeResult:
    entries: dict[str, Entry]
    primary: Entry
    show_name: bool = False


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


def load_rbm_weights(path: Path, track: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, a, b) as float64 arrays from a weights file, after every check; EntryProblem otherwise."""
    import torch

    size = path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise EntryProblem(f"Your weights file {path.name} has {size / 2**20:.1f} MB; at most "
                           f"{MAX_WEIGHTS_BYTES / 2**20:.0f} MB are allowed.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled code, a corrupt file, anything but plain tensors
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EntryProblem(f"Your weights file {path.name} cannot be loaded as plain tensors (torch.load with "
                           f"weights_only=True refused it: {first_line}). Save it with save_rbm.") from None
    if not isinstance(state, dict) or set(state) != {"rbm"} or not isinstance(state["rbm"], dict) \
            or set(state["rbm"]) != {"W", "a", "b"}:
        raise EntryProblem(f"{path.name} must hold {{'rbm': {{'W': ..., 'a': ..., 'b': ...}}}} (use save_rbm).")
    arrays = []
    for name in ("W", "a", "b"):
        value = state["rbm"][name]
        if not isinstance(value, torch.Tensor) or not value.dtype.is_floating_point:
            raise EntryProblem(f"{path.name}: {name} must be a tensor of floating-point numbers.")
        arrays.append(value.detach().to(torch.float64).numpy().copy())
    W, a, b = arrays
    limit = max_hidden(track)
    if W.ndim != 2 or a.shape != (N_VISIBLE,) or b.ndim != 1 or W.shape != (N_VISIBLE, b.shape[0]):
        raise EntryProblem(f"{path.name}: W, a and b must have shapes (784, n), (784,) and (n,); they have "
                           f"{tuple(W.shape)}, {tuple(a.shape)} and {tuple(b.shape)}.")
    if not 1 <= b.shape[0] <= limit:
        raise EntryProblem(f"{path.name} has {b.shape[0]} hidden units; {track} allows 1 to {limit}.")
    if not all(np.isfinite(x).all() for x in (W, a, b)):
        raise EntryProblem(f"{path.name} contains NaN or infinite parameters.")
    largest = max(float(np.abs(x).max()) for x in (W, a, b))
    if largest > MAX_ABS_PARAMETER:
        raise EntryProblem(f"{path.name} has a parameter of size {largest:.3g}; at most {MAX_ABS_PARAMETER:g} is "
                           "allowed (larger ones make the log-likelihood estimate numerically unreliable).")
    return W, a, b


def score_weights(track: str, W: np.ndarray, a: np.ndarray, b: np.ndarray, secret: str, entry: Entry) -> Entry:
    """The held-out log-likelihoods of a checked RBM (fills ``entry``)."""
    digits = hidden_digits(secret)
    seed = _seed(secret, f"ais:{entry.weights_sha256 or ''}")
    log_z = ais_log_partition(W, a, b, base=base_biases(digits["base"]), runs=AIS_RUNS, betas=AIS_BETAS, seed=seed)
    entry.hidden_units = int(b.shape[0])
    entry.log_z, entry.log_z_lower, entry.log_z_upper = log_z.value, log_z.lower, log_z.upper
    entry.log_z_stderr = log_z.stderr
    entry.ais_effective_runs = log_z.effective_runs
    entry.public_ll = float(np.mean(-free_energy(digits["public"], W, a, b)) - log_z.value)
    entry.private_ll = float(np.mean(-free_energy(digits["private"], W, a, b)) - log_z.value)
    entry.stage = "scored"
    return entry


def score_track(submission: Submission, track: str) -> Entry:
    entry = Entry(track)
    name = weights_filename(track)
    path = submission.file(name)
    if path is None:
        entry.problem = (f"There is no weights file {name} in your submission. Run the training cell, which saves it, "
                         "and submit it together with the notebook.")
        return entry
    entry.weights_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    key = (entry.weights_sha256, track, submission.secret)
    if key in _SCORED:
        return dataclasses.replace(_SCORED[key])
    try:
        W, a, b = load_rbm_weights(path, track)
    except EntryProblem as exc:
        entry.problem = str(exc)
    else:
        score_weights(track, W, a, b, submission.secret, entry)
    _SCORED[key] = dataclasses.replace(entry)
    return entry


def _tracks(value: t.Any) -> list[str]:
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) and v in TRACKS for v in value):
        raise EntryProblem(f"TRACKS must be a list of tracks such as ['H500'], from {', '.join(TRACKS)}.")
    return list(dict.fromkeys(value))


def score_rbm_challenge(submission: Submission) -> ChallengeResult:
    """Score every track the student entered, once per grading run; record them for the leaderboard."""
    cached = submission.records.get("_boltzmann_result")
    if isinstance(cached, ChallengeResult):
        return cached
    show_name = submission.value("SHOW_MY_NAME", False) is True
    try:
        tracks = _tracks(submission.value("TRACKS", None))
    except EntryProblem as exc:
        return ChallengeResult({}, Entry("H500", problem=str(exc)), show_name)
    entries = {track: score_track(submission, track) for track in tracks}
    result = ChallengeResult(entries, entries[tracks[0]], show_name)
    submission.records["_boltzmann_result"] = result
    submission.record(RECORD_KEY, {"show_name": show_name, "entries": [e.to_record() for e in entries.values()]})
    return result


def expect_valid_entry(entry: Entry) -> None:
    """The weights file passed every check and its log-likelihood could be estimated."""
    if entry.stage != "scored":
        raise AssertionError(entry.problem or "Your entry could not be scored.")


def expect_band(entry: Entry, band: str) -> None:
    """The public held-out log-likelihood is above the track's ``band`` ("pass" or "good")."""
    expect_valid_entry(entry)
    assert entry.public_ll is not None
    needed = PASS_BANDS[entry.track][band]
    if not entry.public_ll > needed:
        raise AssertionError(
            f"Your RBM's held-out log-likelihood, estimated by the grader, is {entry.public_ll:.1f} nats per digit; "
            f"this test needs above {needed:g} for {entry.track}."
        )
