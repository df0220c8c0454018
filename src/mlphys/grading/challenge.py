"""Scoring the Grand Autoencoder Challenge in the trusted grader.

For each track a student enters, :func:`score_challenge`

1. loads the submitted weights here, with ``torch.load(weights_only=True)`` (no pickled code runs) and a
   size limit, and keeps only plain float tensors;
2. runs the student's ``Encoder`` in one fresh sandboxed kernel, built from their architecture cell
   alone, on hidden images drawn from the course secret (which never enters a sandbox);
3. validates the codes here (at most k finite numbers per image) and rounds each to half precision, so
   that no image can travel through the bottleneck inside float mantissas;
4. runs the ``Decoder`` in a second, separate fresh kernel that receives only those codes: it never
   sees an image, and nothing the encoder's kernel wrote or set reaches it;
5. computes the mean squared pixel error here, separately on the public and the private split.

:func:`retrain_entry` is the budget check: it trains the architecture afresh with the student's own
``train`` on exactly the track's budget of images, scores the result the same way and says whether it
reproduces the submitted cost.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import typing as t
from pathlib import Path

import numpy as np

from mlphys.course import autoencoder
from mlphys.course.circles import IMAGE_SIZE, circle_images
from mlphys.grading.hidden import StudentError, StudentFunction
from mlphys.grading.isolated import CellFailed, Isolation, KernelProblem, run_fresh
from mlphys.grading.submission import MISSING, Submission
from mlphys.kernel import wire

RECORD_KEY = "autoencoder_challenge"
PUBLIC_IMAGES = 500
PRIVATE_IMAGES = 500
SHOWN_IMAGES = 6  # decodings of the first public images, kept for the leaderboard page
MAX_WEIGHTS_BYTES = 20 * 2**20
MAX_PARAMETERS = 5_000_000
ARCHITECTURE_CELL = "architecture"
TRAINING_CELL = "training"
# What the architecture cell may rely on, as the notebook says.
PREAMBLE = "import numpy as np\nimport torch\nfrom torch import nn\n"
_HELPERS = (
    "from mlphys.course.autoencoder import run_encoder as __mlphys_run_encoder, "
    "run_decoder as __mlphys_run_decoder, retrain as __mlphys_retrain"
)


class EntryProblem(Exception):
    """Why an entry cannot be scored, in words the student can act on."""


@functools.lru_cache(maxsize=4)
def hidden_images(secret: str) -> dict[str, np.ndarray]:
    """The public and private test images of a course, drawn from its secret (uint8, 0 or 1)."""
    digest = hashlib.sha256(f"autoencoder-challenge:{secret}".encode()).digest()
    public, private = np.random.SeedSequence(int.from_bytes(digest[:16], "little")).spawn(2)
    return {
        "public": circle_images(PUBLIC_IMAGES, np.random.default_rng(public)).astype(np.uint8),
        "private": circle_images(PRIVATE_IMAGES, np.random.default_rng(private)).astype(np.uint8),
    }


@dataclasses.dataclass
class Scored:
    """One entry's result; ``stage`` says how far it got: weights, encoder, decoder or scored."""

    track: str
    stage: str = "weights"
    problem: str | None = None
    code_size: int | None = None
    public_cost: float | None = None
    private_cost: float | None = None
    reconstructions: np.ndarray | None = None
    weights_sha256: str | None = None

    def to_record(self) -> dict[str, t.Any]:
        """Plain JSON data for the gradebook's record table."""
        data = dataclasses.asdict(self)
        if self.reconstructions is not None:
            data["reconstructions"] = np.round(self.reconstructions.astype(float), 3).tolist()
        return data


@dataclasses.dataclass
class ChallengeResult:
    entries: dict[str, Scored]
    primary: Scored
    show_name: bool = False


# ---- loading weights -------------------------------------------------------------------------------


def load_weights(path: Path, max_bytes: int = MAX_WEIGHTS_BYTES) -> dict[str, dict[str, np.ndarray]]:
    """``{"encoder": {...}, "decoder": {...}}`` of float arrays from a weights file, or EntryProblem."""
    import torch

    size = path.stat().st_size
    if size > max_bytes:
        raise EntryProblem(
            f"Your weights file {path.name} has {size / 2**20:.1f} MB; at most {max_bytes / 2**20:.0f} MB are allowed."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled code, a corrupt file, anything not plain tensors
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EntryProblem(
            f"Your weights file {path.name} cannot be loaded as plain tensors (torch.load with weights_only=True "
            f"refused it: {first_line}). Save it with save_entry."
        ) from None
    return _plain_state(state, path.name)


def _plain_state(state: t.Any, name: str) -> dict[str, dict[str, np.ndarray]]:
    import torch

    if not isinstance(state, dict) or set(state) != {"encoder", "decoder"}:
        raise EntryProblem(f"{name} must hold a dict with exactly the keys 'encoder' and 'decoder' (use save_entry).")
    plain: dict[str, dict[str, np.ndarray]] = {}
    count = 0
    for part in ("encoder", "decoder"):
        tensors = state[part]
        if not isinstance(tensors, dict):
            raise EntryProblem(f"{name}: '{part}' must be a state dict of tensors.")
        plain[part] = {}
        for key, value in tensors.items():
            if type(key) is not str or not (isinstance(value, torch.Tensor) or isinstance(value, np.ndarray)):
                raise EntryProblem(f"{name}: '{part}' must map parameter names to tensors.")
            array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
            if array.dtype.kind not in "fiub":
                raise EntryProblem(f"{name}: parameter {key!r} has dtype {array.dtype}; only numbers are allowed.")
            count += array.size
            plain[part][key] = np.array(array, copy=True)
    if count > MAX_PARAMETERS:
        raise EntryProblem(f"{name} holds {count:,} numbers; at most {MAX_PARAMETERS:,} are allowed.")
    return plain


# ---- running the student's modules --------------------------------------------------------------------


class SandboxRunner:
    """Each call builds the student's modules in a brand-new sandboxed kernel from their cell sources."""

    def __init__(self, isolation: Isolation, cells: list[str]) -> None:
        self.isolation = isolation
        self.cells = [PREAMBLE, *cells, _HELPERS]

    def _call(self, helper: str, *args: t.Any) -> t.Any:
        def transport(request: dict[str, t.Any]) -> t.Any:
            return run_fresh(self.isolation, self.cells, request)

        return StudentFunction(helper, transport)(*args)

    def encode(self, code_size: int, state: dict[str, np.ndarray], images: np.ndarray) -> t.Any:
        return self._call("__mlphys_run_encoder", wire.RemoteRef("Encoder"), code_size, state, images)

    def decode(self, code_size: int, state: dict[str, np.ndarray], codes: np.ndarray) -> t.Any:
        return self._call("__mlphys_run_decoder", wire.RemoteRef("Decoder"), code_size, state, codes)

    def retrain(self, code_size: int, budget: int, seed: int) -> t.Any:
        refs = (wire.RemoteRef("Encoder"), wire.RemoteRef("Decoder"), wire.RemoteRef("train"))
        return self._call("__mlphys_retrain", *refs, code_size, budget, seed)


class InProcessRunner:
    """The instructor running their own notebook: the same steps, with the classes of their kernel."""

    def __init__(self, namespace: dict[str, t.Any]) -> None:
        self.ns = namespace

    def _get(self, name: str) -> t.Any:
        if name not in self.ns:
            raise EntryProblem(f"The notebook does not define {name}.")
        return self.ns[name]

    def encode(self, code_size: int, state: dict[str, np.ndarray], images: np.ndarray) -> t.Any:
        return autoencoder.run_encoder(self._get("Encoder"), code_size, state, images)

    def decode(self, code_size: int, state: dict[str, np.ndarray], codes: np.ndarray) -> t.Any:
        return autoencoder.run_decoder(self._get("Decoder"), code_size, state, codes)

    def retrain(self, code_size: int, budget: int, seed: int) -> t.Any:
        return autoencoder.retrain(
            self._get("Encoder"), self._get("Decoder"), self._get("train"), code_size, budget, seed
        )


Runner = SandboxRunner | InProcessRunner


def _run_student(what: str, call: t.Callable[[], t.Any]) -> t.Any:
    try:
        return call()
    except StudentError as exc:
        raise EntryProblem(f"Your {what} raised {exc.type_name}: {exc.message}") from None
    except CellFailed as exc:
        cell = "architecture" if what in ("Encoder", "Decoder") else "architecture or training"
        raise EntryProblem(
            f"Your {cell} cell raised {exc.ename}: {exc.evalue} when run on its own (with numpy as np, torch and "
            "`from torch import nn` imported): it must contain everything your network needs."
        ) from None
    except KernelProblem as exc:
        raise EntryProblem(f"Running your {what} failed: {exc}.") from None
    except wire.WireError as exc:
        raise EntryProblem(f"Your {what} handed back data the grader cannot accept ({exc}).") from None


# ---- validating what comes back --------------------------------------------------------------------


def validate_codes(value: t.Any, n: int, code_limit: int) -> np.ndarray:
    """(n, k) float32 codes, each number rounded to half precision; EntryProblem if not acceptable."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu" or value.ndim < 1 or len(value) != n:
        shape = getattr(value, "shape", None)
        raise EntryProblem(
            f"Your Encoder must return one code per image, shape ({n}, k); it returned "
            f"{type(value).__name__}{' of shape ' + str(shape) if shape is not None else ''}."
        )
    codes = value.reshape(n, -1).astype(np.float64)
    if codes.shape[1] > code_limit:
        raise EntryProblem(
            f"Your Encoder's code has {codes.shape[1]} numbers per image; this track allows at most {code_limit}."
        )
    if not np.all(np.isfinite(codes)):
        raise EntryProblem("Your Encoder returned codes that are not finite (NaN or infinity).")
    with np.errstate(over="ignore"):
        rounded = codes.astype(np.float16)
    if not np.all(np.isfinite(rounded)):
        raise EntryProblem("Your Encoder returned code numbers beyond +-65504, which half precision cannot hold.")
    return rounded.astype(np.float32)


def validate_images(value: t.Any, n: int) -> np.ndarray:
    """(n, 27, 27) float64 decoded images; EntryProblem if not acceptable."""
    want = (n, IMAGE_SIZE, IMAGE_SIZE)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu" or value.shape != want:
        shape = getattr(value, "shape", None)
        raise EntryProblem(
            f"Your Decoder must return images of shape {want}; it returned "
            f"{type(value).__name__}{' of shape ' + str(shape) if shape is not None else ''}."
        )
    images = value.astype(np.float64)
    if not np.all(np.isfinite(images)):
        raise EntryProblem("Your Decoder returned pixels that are not finite (NaN or infinity).")
    return images


# ---- scoring ---------------------------------------------------------------------------------------


def score_state(
    track: str, state: dict[str, dict[str, np.ndarray]], runner: Runner, secret: str, entry: Scored | None = None
) -> Scored:
    """Score weights already loaded: encoder, validated codes, decoder, cost. Never raises EntryProblem."""
    entry = entry or Scored(track)
    code_limit, _ = autoencoder.parse_track(track)
    split = hidden_images(secret)
    images = np.concatenate([split["public"], split["private"]])
    try:
        entry.stage = "encoder"
        raw_codes = _run_student("Encoder", lambda: runner.encode(code_limit, state["encoder"], images))
        codes = validate_codes(raw_codes, len(images), code_limit)
        entry.code_size = int(codes.shape[1])
        entry.stage = "decoder"
        raw_images = _run_student("Decoder", lambda: runner.decode(code_limit, state["decoder"], codes))
        decoded = validate_images(raw_images, len(images))
    except EntryProblem as exc:
        entry.problem = str(exc)
        return entry
    errors = (decoded - images) ** 2
    entry.public_cost = float(errors[:PUBLIC_IMAGES].mean())
    entry.private_cost = float(errors[PUBLIC_IMAGES:].mean())
    entry.reconstructions = decoded[:SHOWN_IMAGES].astype(np.float32)
    entry.stage = "scored"
    return entry


def score_track(submission: Submission, track: str, runner: Runner) -> Scored:
    """Score the entry of one track from its weights file."""
    entry = Scored(track)
    name = autoencoder.weights_filename(track)
    path = submission.file(name)
    if path is None:
        entry.problem = (
            f"There is no weights file {name} in your submission. Run the training cell, which saves it, and "
            "submit it together with the notebook."
        )
        return entry
    entry.weights_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        state = load_weights(path)
    except EntryProblem as exc:
        entry.problem = str(exc)
        return entry
    return score_state(track, state, runner, submission.secret, entry)


def _tracks(value: t.Any) -> list[str]:
    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) for v in value):
        raise EntryProblem(
            f"TRACKS must be a list of tracks such as ['MEDIUM/NORMAL'], one or more of {autoencoder.TRACKS}."
        )
    tracks: list[str] = []
    for track in value:
        try:
            autoencoder.parse_track(track)
        except ValueError as exc:
            raise EntryProblem(str(exc)) from None
        if track not in tracks:
            tracks.append(track)
    return tracks


def score_challenge(submission: Submission) -> ChallengeResult:
    """Score every track the student entered; keep the results for the leaderboard.  Never raises."""
    # Every hidden block of the notebook may ask; the entries are scored once per grading run.  Keys
    # starting with "_" stay in this run (SaveRecords stores only the others).
    cached = submission.records.get("_autoencoder_result")
    if isinstance(cached, ChallengeResult):
        return cached
    show_name = submission.value("SHOW_MY_NAME", False) is True
    try:
        tracks = _tracks(submission.value("TRACKS", None))
    except EntryProblem as exc:
        failed = Scored("MEDIUM/NORMAL", problem=str(exc))
        return ChallengeResult({}, failed, show_name)
    runner: Runner
    if submission.in_process is not None:
        runner = InProcessRunner(submission.in_process)
    else:
        runner = SandboxRunner(submission.isolation, [submission.cell_source(ARCHITECTURE_CELL) or ""])
    entries = {track: score_track(submission, track, runner) for track in tracks}
    result = ChallengeResult(entries, entries[tracks[0]], show_name)
    submission.records["_autoencoder_result"] = result
    submission.record(
        RECORD_KEY,
        {
            "show_name": show_name,
            "entries": [e.to_record() for e in entries.values()],
            "cells": {cell: submission.cell_source(cell) or "" for cell in (ARCHITECTURE_CELL, TRAINING_CELL)},
        },
    )
    return result


def instructor_submission(namespace: dict[str, t.Any], folder: str | Path = ".") -> Submission:
    """The instructor's own notebook, scored in its own kernel (no sandbox: it is their code)."""

    def lookup(name: str) -> t.Any:
        return namespace.get(name, MISSING)

    return Submission(
        files=Path(folder),
        cells={},
        lookup=lookup,
        isolation=Isolation(),
        secret=os.environ.get("MLPHYS_CHALLENGE_SECRET", "instructor-check"),
        records={},
        in_process=namespace,
    )


# ---- what the hidden tests assert ------------------------------------------------------------------


def expect_valid_codes(entry: Scored) -> None:
    """The weights load, and the encoder gives at most k finite numbers per image."""
    if entry.stage in ("weights", "encoder"):
        raise AssertionError(entry.problem or "Your entry could not be scored.")


def expect_valid_images(entry: Scored) -> None:
    """The decoder turns the codes into finite images of the right shape."""
    if entry.stage != "scored":
        raise AssertionError(entry.problem or "Your entry could not be scored.")


def expect_cost_below(entry: Scored, band: float) -> None:
    """The cost on the public hidden images is below ``band``."""
    expect_valid_images(entry)
    assert entry.public_cost is not None
    if not entry.public_cost < band:
        raise AssertionError(
            f"Your cost on the public hidden images is {entry.public_cost:.4f}; this test needs below {band:g}."
        )


# ---- the budget check ------------------------------------------------------------------------------


@dataclasses.dataclass
class RetrainResult:
    status: str  # "reproduced" | "flagged"
    retrained_cost: float | None
    message: str


def retrain_entry(
    cells: dict[str, str],
    track: str,
    submitted_cost: float,
    *,
    isolation: Isolation,
    secret: str,
    seed: int = 0,
    rel_tol: float = 0.3,
    abs_tol: float = 0.0005,
    runner: Runner | None = None,
) -> RetrainResult:
    """Retrain an entry from fresh initialisation with its own ``train`` under the track's budget.

    It reproduces when the retrained public cost is at most ``submitted * (1 + rel_tol) + abs_tol``.
    Fresh seeds moved the reference entry's cost by a few percent; the same network trained on 3.3
    times the budget comes out about 45 % lower, well outside the band.
    """
    code_limit, budget = autoencoder.parse_track(track)
    runner = runner or SandboxRunner(isolation, [cells.get(ARCHITECTURE_CELL, ""), cells.get(TRAINING_CELL, "")])
    try:
        raw = _run_student("train", lambda: runner.retrain(code_limit, budget, seed))
        if not isinstance(raw, dict) or not isinstance(raw.get("images_used"), int):
            raise EntryProblem("retraining handed back something other than trained weights")
        if raw["images_used"] > budget:
            raise EntryProblem(f"training took {raw['images_used']} images from a budget of {budget}")
        state = _plain_state({"encoder": raw.get("encoder"), "decoder": raw.get("decoder")}, "the retrained weights")
    except EntryProblem as exc:
        return RetrainResult("flagged", None, f"Retraining failed: {exc}")
    scored = score_state(track, state, runner, secret)
    if scored.public_cost is None:
        return RetrainResult("flagged", None, f"The retrained entry could not be scored: {scored.problem}")
    limit = submitted_cost * (1 + rel_tol) + abs_tol
    if scored.public_cost <= limit:
        return RetrainResult("reproduced", scored.public_cost, f"retrained cost {scored.public_cost:.4f}")
    return RetrainResult(
        "flagged",
        scored.public_cost,
        f"retrained within the budget the cost is {scored.public_cost:.4f}, not {submitted_cost:.4f} "
        f"(allowed up to {limit:.4f})",
    )
