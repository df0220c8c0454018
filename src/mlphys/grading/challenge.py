"""Challenges: entries scored in the trusted grader and kept for the leaderboards.

An assignment with a leaderboard gives its folder a :class:`Challenge` (see :mod:`mlphys.assignments`).
The engine does what is the same for every challenge:

1. reads which tracks the student entered (``TRACKS``) and whether their name may be shown
   (``SHOW_MY_NAME``), as validated plain data from the student's kernel;
2. finds each track's weights file in the submission and loads it here with :func:`load_weights`: sizes
   are checked before anything is materialised, ``torch.load(weights_only=True)`` runs no pickled code,
   and only plain number arrays are kept;
3. hands the weights to the challenge's :meth:`Challenge.score`, which may run the student's modules in
   fresh sandboxed kernels (:class:`FreshKernel`) on hidden data drawn from the course secret, and computes
   the cost here, on a public and a private split;
4. records every entry with the student's solution cells, for the leaderboard and its retraining check.

A board ranks by the number a challenge computes (stored as ``public_cost`` and ``private_cost``): a cost,
lower is better, or, where the challenge sets ``higher_is_better``, a score such as a return.  The
leaderboard, the pass bands and the student's feedback all take the direction from the challenge.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import time
import typing as t
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mlphys.grading.hidden import HiddenTestSession, StudentError, StudentFunction
from mlphys.grading.isolated import CellFailed, FreshSession, Isolation, KernelProblem, KernelTimeout, fresh_session
from mlphys.kernel import wire

if t.TYPE_CHECKING:
    from mlphys.grading.submission import Submission
    from mlphys.grading.warm_kernels import WarmKernels

MAX_WEIGHTS_BYTES = 20 * 2**20
MAX_PARAMETERS = 5_000_000
MAX_PROBLEM_CHARS = 300  # student-controlled text quoted in a problem (never after the kernel saw hidden data)
MAX_MESSAGE_CHARS = 2000  # a whole problem, whatever it quotes: what the student reads, and the records keep


class EntryProblem(Exception):
    """Why an entry cannot be scored, in words the student can act on."""


@dataclasses.dataclass
class Scored:
    """One entry's result; ``stage`` says how far it got ("weights", then the challenge's own stages, "scored")."""

    track: str
    stage: str = "weights"
    problem: str | None = None
    public_cost: float | None = None
    private_cost: float | None = None
    detail: str = ""  # a few words the boards show beside the cost (e.g. "code of 9")
    picture: np.ndarray | None = None  # what the page shows of a top entry (e.g. decoded public images)
    weights_sha256: str | None = None

    def to_record(self) -> dict[str, t.Any]:
        """Plain JSON data for the gradebook's record table."""
        data = dataclasses.asdict(self)
        if self.picture is not None:
            data["picture"] = np.round(self.picture.astype(float), 3).tolist()
        return data


@dataclasses.dataclass
class ChallengeResult:
    entries: dict[str, Scored]
    primary: Scored
    show_name: bool = False


@dataclasses.dataclass(frozen=True)
class RetrainBand:
    """How far a retrained figure may fall behind the submitted one and still reproduce it.

    For a cost (lower is better) the limit is ``submitted * (1 + rel_tol) + abs_tol``; for a score (higher is
    better) it is ``submitted * (1 - rel_tol) - abs_tol`` when the score is positive.  NaN never reproduces.
    """

    rel_tol: float
    abs_tol: float

    def limit(self, submitted: float, higher_is_better: bool = False) -> float:
        if higher_is_better:
            return submitted - abs(submitted) * self.rel_tol - self.abs_tol
        return submitted + abs(submitted) * self.rel_tol + self.abs_tol

    def reproduces(self, retrained: float, submitted: float, higher_is_better: bool = False) -> bool:
        limit = self.limit(submitted, higher_is_better)
        return bool(retrained >= limit) if higher_is_better else bool(retrained <= limit)


@dataclasses.dataclass
class RetrainResult:
    """The verdict of a retraining check: "reproduced", "flagged" (the entry breaks the rules), or
    "timed out" (the check could not finish: nothing is known, nothing is held against the entry)."""

    status: str
    retrained_cost: float | None
    message: str


class Challenge:
    """What an assignment's challenge must say and do; the engine and the leaderboard do the rest.

    In the spirit of Gymnasium's ``Env``: a subclass sets the class attributes and implements
    :meth:`weights_filename` and :meth:`score`; :meth:`page_originals` is optional.  A challenge with a
    retraining check (a rule about how an entry was trained, such as a budget of training images) sets
    ``retrain_band`` and implements :meth:`retrain`; the leaderboard asks only those challenges for the check,
    with the band from the course's settings where they override it (``c.Leaderboard.retrain_bands``).

    **A published figure never flatters an entry.**  What :meth:`score` returns is computed so that a
    crafted entry cannot look better than it is: exact where it can be (a cost measured on the hidden data
    itself; 06's log-likelihood of an RBM small enough to enumerate), and otherwise an estimate whose errors
    fall on the entry's side of the ranking, never in its favour: a bound, or the least favourable of
    several estimates that err in opposite directions (06: annealed importance sampling errs optimistic,
    reverse annealing from the data pessimistic, and the states the chains visited give a certain bound).
    Bounds on the inputs (sizes, parameter magnitudes) keep the computation safe; they are no substitute for
    this, since an estimator can be fooled well inside them.  Where the estimates disagree beyond a stated
    band, the entry is marked on the board (its ``detail`` says so) and estimated again with more effort,
    as entries whose budget is in doubt are retrained (:meth:`retrain`).  What the figure cannot promise
    (a mode of a model that no search reaches) is written down beside the method, and every estimator is
    tested against exact values on inputs built to fool it.
    """

    key: str  # name of its records in the gradebook
    title: str
    tracks: tuple[str, ...]  # the boards, in display order
    track_notes: t.ClassVar[Mapping[str, str]] = {}
    metric: str = "cost"  # what the cost measures, for the boards' captions
    higher_is_better: bool = False  # the direction: a cost (lower is better) or a score such as a return
    score_name: str = "cost"  # the number's short name in feedback and headings ("cost", "return")
    detail_label: str = ""  # column title of ``Scored.detail``
    picture_caption: str = ""  # under the top entries' pictures on the page
    picture_cmap: str = "gray_r"  # as the notebook draws them
    pass_bands: tuple[float, ...] = ()  # public costs below (scores above) which points are given, for the feedback
    weights_parts: tuple[str, ...] = ()  # keys of the dict in a weights file
    max_weights_bytes: int = MAX_WEIGHTS_BYTES
    max_parameters: int = MAX_PARAMETERS
    cells: tuple[str, ...] = ()  # grade ids of the solution cells kept with an entry (to rebuild or retrain it)
    preamble: str = ""  # what the student's cells may rely on when they run on their own
    kernel_source: str = ""  # the in-kernel half: run after the student's cells in every fresh kernel
    retrain_band: RetrainBand | None = None  # set by a challenge that has a retraining check

    @property
    def has_retraining_check(self) -> bool:
        return self.retrain_band is not None

    def weights_filename(self, track: str) -> str:
        raise NotImplementedError

    def check_track(self, track: t.Any) -> str:
        """``track`` if it is one of this challenge's, else EntryProblem."""
        if type(track) is not str or track not in self.tracks:
            raise EntryProblem(f"{str(track)[:60]!r} is not a track; choose one of {', '.join(self.tracks)}.")
        return track

    def score(self, track: str, state: dict[str, dict[str, np.ndarray]], context: Scoring) -> Scored:
        """Score loaded weights on the hidden data; set ``problem`` (never raise) when the entry fails."""
        raise NotImplementedError

    def retrain(self, track: str, submitted_cost: float, context: Scoring) -> RetrainResult:
        """Retrain the entry from its own cells within the track's rules and judge the result with
        ``context.retrain_band``; only called where :attr:`has_retraining_check`."""
        raise NotImplementedError(f"{type(self).__name__} has no retraining check")

    def page_originals(self, secret: str) -> np.ndarray | None:
        """The public data the page shows above the top entries' pictures, or None."""
        return None


class TimeUp(Exception):
    """The time a grading step may take is spent."""


@dataclasses.dataclass
class Scoring:
    """What a challenge may use while it scores or retrains one entry."""

    challenge: Challenge
    secret: str
    isolation: Isolation
    cells: Mapping[str, str]  # the student's solution cells, by grade id
    deadline: float | None = None  # time.monotonic() by which everything must be done
    retrain_band: RetrainBand | None = None  # the band a retraining check judges by (the challenge's, or the course's)
    # Where fresh kernels come from: launched ahead by a live challenge's pool (warm, still one per session), or,
    # by default, started cold for each session as autograde does.
    kernels: WarmKernels | None = None

    def time_left(self) -> float:
        if self.deadline is None:
            return self.isolation.timeout
        remaining = self.deadline - time.monotonic()
        if remaining <= 1:
            raise TimeUp("the time for grading this notebook is spent")
        return remaining

    def fresh_kernel(self, cell_ids: Sequence[str], preamble: str | None = None) -> FreshKernel:
        """Calls into brand-new sandboxed kernels built from the preamble (the challenge's, unless another is
        given: what a training cell may rely on), these student cells and the kernel half."""
        given = self.challenge.preamble if preamble is None else preamble
        cells = [given, *(self.cells.get(c, "") for c in cell_ids), self.challenge.kernel_source]
        return FreshKernel(self, list(cell_ids), cells)


class FreshKernel:
    """Calls into brand-new sandboxed kernels built from the preamble, some student cells and the kernel half.

    :meth:`call` runs each call in a kernel of its own, so nothing one call leaves behind (files, module
    state) reaches another; :meth:`session` keeps one kernel for a series of calls (a policy stepping
    through an episode: built once, then called once per time step).  Failures become :class:`EntryProblem`
    in words a student can act on, or :class:`TimeUp`.
    """

    def __init__(self, scoring: Scoring, cell_ids: list[str], cells: list[str]) -> None:
        self.scoring, self.cell_ids, self.cells = scoring, cell_ids, cells

    def call(self, helper: str, *args: t.Any, what: str, saw_hidden_data: bool = True) -> t.Any:
        """``helper(*args)`` in a fresh kernel; validated plain data back.  ``what`` names the student's part."""
        with self.session(what=what) as session:
            return session.call(helper, *args, saw_hidden_data=saw_hidden_data)

    @contextlib.contextmanager
    def session(self, *, what: str, seconds: float | None = None) -> t.Iterator[KernelSession]:
        """One fresh kernel for several calls, all within the notebook's time left (and ``seconds``, if given).

        The kernel is gone when the ``with`` block ends, however it ends.  It is a warm one from
        ``scoring.kernels`` where that is set (launched ahead, just as fresh), else started now.
        """
        total = self.scoring.time_left() if seconds is None else min(self.scoring.time_left(), seconds)
        isolation = dataclasses.replace(self.scoring.isolation, timeout=min(self.scoring.isolation.timeout, total))
        opened: list[KernelSession] = []
        # Each call's failures are worded by KernelSession.call; what escapes the block (the kernel's start and
        # setup cells, or its end) is worded here, as after hidden data once any call has handed the kernel some.
        deadline, kernels = time.monotonic() + total, self.scoring.kernels
        fresh = (
            fresh_session(isolation, self.cells, deadline)
            if kernels is None
            else kernels.session(self.cells, deadline, isolation)
        )  # nothing starts before the ``with`` enters it
        with self._failures(what, saw_hidden_data=lambda: any(s.saw_hidden_data for s in opened)), fresh as session:
            opened.append(KernelSession(self, session, what))
            yield opened[0]

    @contextlib.contextmanager
    def _failures(self, what: str, saw_hidden_data: bool | t.Callable[[], bool]) -> t.Iterator[None]:
        """Turn what can go wrong in a fresh kernel into :class:`EntryProblem` or :class:`TimeUp`.

        Once the kernel has seen hidden data (``saw_hidden_data``, or what it returns when the failure comes),
        nothing the kernel controls is quoted: not an exception's message or class name, not the reason the
        grader refused a reply.  Its code could have put the hidden data there.
        """
        try:
            yield
        except KernelTimeout:
            raise TimeUp(f"your {what} did not finish in time") from None
        except (StudentError, CellFailed, KernelProblem, wire.WireError) as exc:
            hidden = saw_hidden_data() if callable(saw_hidden_data) else saw_hidden_data
            raise EntryProblem(self._explain(exc, what, hidden)) from None

    def _explain(self, exc: Exception, what: str, saw_hidden_data: bool) -> str:
        """What went wrong, for the student (see :meth:`_failures`)."""
        if isinstance(exc, StudentError):
            if saw_hidden_data:
                # Its message (even the exception's class name) is the student's text and could carry the
                # hidden data out: say only which builtin exception it was.
                return (
                    f"Your {what} raised {_builtin_name(exc.type_name)} while it ran on the hidden test data. Its "
                    f"message is not shown, since it could carry that data: run your {what} on data of your own "
                    "in the notebook to see it."
                )
            return f"Your {what} raised {_bounded(exc.type_name)}: {_bounded(exc.message)}"
        if isinstance(exc, CellFailed):
            # The setup cells run before any hidden data reaches the kernel.
            names = " and ".join(f"`{c}`" for c in self.cell_ids) or "solution"
            given = self._preamble_words()
            return (
                f"Your {names} cell raised {_bounded(exc.ename)}: {_bounded(exc.evalue)} when run on its own. Only "
                f"that cell is used to rebuild your {what}" + (f" (with {given})" if given else "")
                + ": it must define everything your network needs, without relying on other cells."
            )
        if isinstance(exc, KernelProblem):
            detail = f" ({_bounded(exc.detail)})" if exc.detail and not saw_hidden_data else ""
            return f"Running your {what} failed: {exc}{detail}."
        if saw_hidden_data:
            return (
                f"Your {what} handed back data the grader cannot accept while it ran on the hidden test data (not "
                "plain numbers, lists or arrays of numbers as the wire carries them). What was wrong with it is not "
                f"shown, since it could carry that data: run your {what} on data of your own in the notebook."
            )
        return f"Your {what} handed back data the grader cannot accept ({_bounded(str(exc))})."

    def _preamble_words(self) -> str:
        lines = [line for line in self.cells[0].splitlines() if line.strip() and not line.lstrip().startswith("#")]
        return ", ".join(f"`{line}`" for line in lines)


class KernelSession:
    """Calls into one fresh kernel (see :meth:`FreshKernel.session`)."""

    def __init__(self, kernel: FreshKernel, session: FreshSession, what: str) -> None:
        self._kernel, self._session, self.what = kernel, session, what
        self.saw_hidden_data = False  # once true, for every later call too: the kernel remembers what it saw

    def call(self, helper: str, *args: t.Any, saw_hidden_data: bool = True) -> t.Any:
        """``helper(*args)`` in this session's kernel; validated plain data back.

        ``saw_hidden_data=False`` only for a call that hands the kernel nothing hidden, made before any that does.
        """
        self.saw_hidden_data = self.saw_hidden_data or saw_hidden_data
        with self._kernel._failures(self.what, self.saw_hidden_data):
            return StudentFunction(helper, self._session.call)(*args)

    def value(self, name: str, default: t.Any = None) -> t.Any:
        """A validated copy of the notebook's variable ``name`` (plain data); ``default`` where it has none."""
        with self._kernel._failures(self.what, self.saw_hidden_data):
            return HiddenTestSession(self._session.call).value(name, default)


def _builtin_name(type_name: str) -> str:
    """The name of a builtin exception class, or a neutral phrase for anything else."""
    import builtins

    found = getattr(builtins, type_name, None) if type_name.isidentifier() else None
    return f"a {type_name}" if isinstance(found, type) and issubclass(found, BaseException) else "an exception"


_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # colours and cursor moves (ANSI CSI sequences)


def _bounded(text: str, limit: int = MAX_PROBLEM_CHARS) -> str:
    """Untrusted or library text, without terminal codes, reduced to printable characters and cut short."""
    text = text[: 4 * limit]  # a flood is cut before it is cleaned
    clean = "".join(ch if ch.isprintable() else " " for ch in _TERMINAL_CODES.sub("", text))
    return clean if len(clean) <= limit else clean[:limit] + " [...]"


def finite_array(value: t.Any, shape: tuple[int, ...], *, wrong_shape: str, not_finite: str) -> np.ndarray:
    """A student's numbers as a fresh float64 array of exactly ``shape``, all finite; EntryProblem otherwise.

    ``wrong_shape`` begins the message for anything else ("Your Decoder must return ...; it returned"), which
    goes on to say what kind of thing came back (:func:`returned_kind`); ``not_finite`` is the message for NaN or
    infinity.
    """
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu" or value.shape != shape:
        raise EntryProblem(f"{wrong_shape} {returned_kind(value, shape)}.")
    array = value.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise EntryProblem(not_finite)
    return array


def returned_kind(value: t.Any, shape: tuple[int, ...] | None = None) -> str:
    """What kind of thing a kernel handed back, in the grader's words only.

    What the student's code returns after it has seen hidden data is the student's to choose: its type name, its
    shape or its numbers could each carry that data out, so a message names only one of a few kinds.
    """
    if not isinstance(value, np.ndarray):
        return "something that is not an array (or tensor) of numbers"
    if value.dtype.kind not in "fiu":
        return "an array that does not hold real numbers"
    if shape is not None and value.ndim != len(shape):
        return f"an array with {'more' if value.ndim > len(shape) else 'fewer'} axes"
    return "an array of another shape"


# ---- loading weights -------------------------------------------------------------------------------


def load_weights(
    path: Path, parts: Sequence[str], max_bytes: int = MAX_WEIGHTS_BYTES, max_parameters: int = MAX_PARAMETERS
) -> dict[str, dict[str, np.ndarray]]:
    """``{part: {name: array}}`` of plain number arrays from a weights file, or EntryProblem.

    Every size is checked before it is materialised: the file, the sizes its archive states (torch's
    format is an uncompressed zip; a compressed member could inflate), and the element count of every
    tensor (tensors that share storage, or have stride 0, would be copied into much more memory).
    """
    size = path.stat().st_size
    if size > max_bytes:
        raise EntryProblem(
            f"Your weights file {path.name} has {size / 2**20:.1f} MB; at most {max_bytes / 2**20:.0f} MB are allowed."
        )
    _check_archive(path, max_bytes)
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except Exception as exc:  # pickled code, a corrupt file, anything not plain tensors
        reason = _bounded(" ".join(str(exc).split())) if str(exc).strip() else type(exc).__name__
        raise EntryProblem(
            f"Your weights file {path.name} cannot be loaded as plain tensors: the grader loads it with "
            f"torch.load(weights_only=True), which refused it ({reason}). Save your weights as the notebook "
            "does, with plain tensors only."
        ) from None
    return plain_state(state, path.name, parts, max_parameters)


def _check_archive(path: Path, max_bytes: int) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        raise EntryProblem(
            f"Your weights file {path.name} is not a file saved with torch.save (a zip archive)."
        ) from None
    if any(m.compress_type != zipfile.ZIP_STORED for m in members) or sum(m.file_size for m in members) > max_bytes:
        raise EntryProblem(
            f"Your weights file {path.name} holds compressed or oversized data; save it with torch.save as the "
            "notebook does."
        )


def plain_state(
    state: t.Any, name: str, parts: Sequence[str], max_parameters: int = MAX_PARAMETERS
) -> dict[str, dict[str, np.ndarray]]:
    """Check a loaded state (``{part: {param: tensor or array}}``) and copy it into fresh numpy arrays.

    A challenge with one part also takes that part's state dict saved on its own (``torch.save(model.state_dict())``,
    the usual way to save one network).
    """
    import torch

    if len(parts) == 1 and isinstance(state, dict) and state and parts[0] not in state:
        if all(isinstance(v, torch.Tensor | np.ndarray) for v in state.values()):
            state = {parts[0]: state}
    wanted = " and ".join(repr(p) for p in parts)
    if not isinstance(state, dict) or set(state) != set(parts):
        raise EntryProblem(f"{name} must hold a dict with exactly the keys {wanted}.")
    count = 0
    for part in parts:
        tensors = state[part]
        if not isinstance(tensors, dict):
            raise EntryProblem(f"{name}: {part!r} must be a state dict of tensors.")
        for key, value in tensors.items():
            if type(key) is not str or not isinstance(value, torch.Tensor | np.ndarray):
                raise EntryProblem(f"{name}: {part!r} must map parameter names to tensors.")
            count += int(value.numel() if isinstance(value, torch.Tensor) else value.size)
            if count > max_parameters:
                raise EntryProblem(f"{name} holds more than {max_parameters:,} numbers, the most allowed.")
    plain: dict[str, dict[str, np.ndarray]] = {}
    for part in parts:
        plain[part] = {}
        for key, value in state[part].items():
            array = _numbers(value) if isinstance(value, torch.Tensor) else value
            if array is None or array.dtype.kind not in "fiub":
                kind = value.dtype if array is None else array.dtype
                raise EntryProblem(
                    f"{name}: parameter {_bounded(repr(key), 100)} has dtype {kind}; only plain real numbers are "
                    "allowed (save float32 tensors, as the notebook does)."
                )
            plain[part][key] = np.array(array, copy=True)
    return plain


def _numbers(tensor: t.Any) -> np.ndarray | None:
    """A tensor's numbers as a numpy array, or None where numpy has no such numbers (a sparse or quantised tensor).

    Floating-point types that numpy lacks (bfloat16, the float8 types) become float32, which holds each of their
    values exactly: the same numbers, so such weights score as they are.
    """
    import torch

    tensor = tensor.detach()
    if tensor.is_floating_point() and tensor.dtype not in (torch.float16, torch.float32, torch.float64):
        tensor = tensor.to(torch.float32)
    try:
        return tensor.cpu().numpy()
    except (TypeError, RuntimeError):
        return None


# ---- scoring a submission ---------------------------------------------------------------------------


def _entered_tracks(challenge: Challenge, value: t.Any) -> list[str]:
    if value is None and len(challenge.tracks) == 1:
        return list(challenge.tracks)  # a challenge of one track needs no TRACKS in the notebook
    if not isinstance(value, list | tuple) or not value or len(value) > len(challenge.tracks):
        raise EntryProblem(
            f"TRACKS must be a list of tracks such as [{challenge.tracks[0]!r}], one or more of "
            f"{', '.join(challenge.tracks)}."
        )
    tracks: list[str] = []
    for track in value:
        checked = challenge.check_track(track)
        if checked not in tracks:
            tracks.append(checked)
    return tracks


def score_track(challenge: Challenge, submission: Submission, track: str, context: Scoring) -> Scored:
    """Score the entry of one track from its weights file."""
    entry = Scored(track)
    name = challenge.weights_filename(track)
    path = submission.file(name)
    if path is None:
        entry.problem = (
            f"There is no weights file {name} in your submission. Run the training cell, which saves it, and "
            "submit it together with the notebook (the grader does not train your network)."
        )
        return entry
    entry.weights_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        state = load_weights(path, challenge.weights_parts, challenge.max_weights_bytes, challenge.max_parameters)
        scored = challenge.score(track, state, context)
    except EntryProblem as exc:
        entry.problem = _bounded(str(exc), MAX_MESSAGE_CHARS)
        return entry
    except TimeUp as exc:
        entry.problem = (
            f"Scoring your entry ran out of time ({exc}). Make your network's forward pass faster (it runs on a "
            "few hundred hidden examples), and keep slow work out of the cells it is rebuilt from."
        )
        return entry
    except MemoryError:  # the grader's bound on one submission: the grading run says so and stops this notebook
        raise
    except Exception as exc:  # the grader's own failure on an entry: that entry is not scored, grading goes on
        logging.getLogger(__name__).exception("scoring a %s entry failed", challenge.key)
        entry.problem = (
            f"The grader failed while it scored your entry ({type(exc).__name__}), an error of the grader's and not "
            "a verdict on your work: tell your instructor."
        )
        return entry
    scored.weights_sha256 = entry.weights_sha256
    if scored.problem is not None:  # every message about a student's entry is bounded, whatever it quotes
        scored.problem = _bounded(scored.problem, MAX_MESSAGE_CHARS)
    return scored


def score_challenge(submission: Submission, challenge: Challenge) -> ChallengeResult:
    """Score every track the student entered; keep the results for the leaderboard.  Never raises."""
    # Every hidden block of the notebook may ask; the entries are scored once per grading run.
    cached = submission.cache.get(challenge.key)
    if isinstance(cached, ChallengeResult):
        return cached
    show_name = submission.value("SHOW_MY_NAME", False) is True
    try:
        tracks = _entered_tracks(challenge, submission.value("TRACKS", None))
    except EntryProblem as exc:
        result = ChallengeResult({}, Scored(challenge.tracks[0], problem=str(exc)), show_name)
        submission.cache[challenge.key] = result
        return result
    context = submission.scoring(challenge)
    entries = {track: score_track(challenge, submission, track, context) for track in tracks}
    result = ChallengeResult(entries, entries[tracks[0]], show_name)
    submission.cache[challenge.key] = result
    submission.note(entry_summary(challenge, result, submission))
    submission.record(
        challenge.key,
        {
            "show_name": show_name,
            "entries": [e.to_record() for e in entries.values()],
            "cells": {cell: submission.cell_source(cell) or "" for cell in challenge.cells},
        },
    )
    return result


def entry_summary(challenge: Challenge, result: ChallengeResult, submission: Submission) -> str:
    """What the student learns of their entry: the public cost per track, the pass bands, the name on the
    boards.  The private cost stays hidden until the final board."""
    from mlphys.leaderboard.pseudonyms import course_salt, pseudonym

    score = challenge.score_name
    lines = [f"Your {challenge.title} entry, scored on the hidden public test data:"]
    for track, entry in result.entries.items():
        if entry.stage == "scored" and entry.public_cost is not None:
            lines.append(f"  {track}: public {score} {entry.public_cost:.4g}")
        else:
            lines.append(f"  {track}: not scored (see the message above)")
    if challenge.pass_bands:
        side = "above" if challenge.higher_is_better else "below"
        bands = ", ".join(f"{side} {band:g}" for band in challenge.pass_bands)
        lines.append(f"Points are given for a public {score} {bands} (each band its own test cell).")
    shown = pseudonym(submission.student, course_salt(submission.secret))
    name = "your name" if result.show_name else f"the pseudonym {shown!r}"
    lines.append(
        f"On the leaderboards you appear under {name}; the boards are published by your instructor and rank "
        f"by the public {score} until the deadline, by a private split of the hidden data after it."
    )
    return "\n".join(lines)


# ---- what hidden tests assert -----------------------------------------------------------------------


def expect_scored(entry: Scored) -> None:
    """The entry got a cost on the hidden data."""
    if entry.stage != "scored" or entry.public_cost is None or not np.isfinite(entry.public_cost):
        raise AssertionError(entry.problem or "Your entry could not be scored.")


def expect_cost_below(entry: Scored, band: float) -> None:
    """The cost on the public hidden data is below ``band`` (NaN never is)."""
    expect_scored(entry)
    assert entry.public_cost is not None
    if not entry.public_cost < band:
        raise AssertionError(
            f"Your cost on the public hidden data is {entry.public_cost:.4g}; this test needs below {band:g}."
        )


def expect_score_above(entry: Scored, band: float, score: str = "score") -> None:
    """The public result of a higher-is-better challenge (a return) is above ``band`` (NaN never is)."""
    expect_scored(entry)
    assert entry.public_cost is not None
    if not entry.public_cost > band:
        raise AssertionError(
            f"Your {score} on the public hidden data is {entry.public_cost:.4g}; this test needs above {band:g}."
        )


def hidden_names(challenge: Challenge) -> dict[str, t.Any]:
    """What the hidden tests of a challenge assignment see besides the kit."""

    def score(submission: Submission) -> ChallengeResult:
        return score_challenge(submission, challenge)

    def above(entry: Scored, band: float) -> None:
        expect_score_above(entry, band, challenge.score_name)

    return {
        "score_challenge": score,
        "expect_scored": expect_scored,
        "expect_cost_below": expect_cost_below,
        "expect_score_above": above,
    }
