"""Rebuild a challenge's boards from the gradebook, running the retraining check where asked.

Everything comes from the course's own records: the course settings from ``nbgrader_config.py``,
students, names, submission times and due dates from nbgrader's gradebook, and the scored entries
from the ``mlphys_record`` table that autograding filled (see :mod:`mlphys.grading.records`).  The
result of a retraining check is stored back into the entry's record, tied to the weights it checked,
so a later rebuild shows it without training again; a new submission starts unchecked.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
import typing as t
from pathlib import Path

import numpy as np
from nbgrader.api import Gradebook, MissingEntry
from traitlets import Dict, Float, Integer
from traitlets.config import Configurable

from mlphys import assignments
from mlphys.grading import records
from mlphys.grading.challenge import Challenge, RetrainBand, Scoring
from mlphys.grading.execute import SandboxedExecute, sandbox_problem
from mlphys.grading.isolated import Isolation
from mlphys.grading.parallel import gradebook_url, read_config
from mlphys.grading.progress import Progress
from mlphys.leaderboard.entry import RETRAIN_STATES, BoardSpec, Entry
from mlphys.leaderboard.export import write_boards
from mlphys.leaderboard.pseudonyms import course_salt
from mlphys.leaderboard.ranking import rank


class Leaderboard(Configurable):
    """Settings of ``mlphys leaderboard`` (``c.Leaderboard.*`` in nbgrader_config.py)."""

    retrain_top = Integer(2, help="Best unchecked entries of each board that the retraining check retrains.").tag(
        config=True
    )
    retrain_timeout = Integer(900, help="Seconds one retraining may take in its sandbox.").tag(config=True)
    retrain_bands = Dict(
        value_trait=Dict(per_key_traits={"rel_tol": Float(), "abs_tol": Float()}),
        help="Per assignment id, the band {'rel_tol': ..., 'abs_tol': ...} a retrained figure must stay within; "
        "where an assignment is not named, its challenge's own band (Challenge.retrain_band) holds.",
    ).tag(config=True)

    def retrain_band(self, assignment: str, challenge: Challenge) -> RetrainBand | None:
        """The band that judges ``assignment``'s retraining check: the course's where it sets one."""
        if challenge.retrain_band is None:
            return None
        given = self.retrain_bands.get(assignment)
        return dataclasses.replace(challenge.retrain_band, **given) if given else challenge.retrain_band


@dataclasses.dataclass
class Course:
    """The settings of a course directory that the boards need."""

    root: Path
    db_url: str
    secret: str
    executor: SandboxedExecute
    settings: Leaderboard

    @classmethod
    def load(cls, root: Path) -> Course:
        """The course's configuration, read as nbgrader reads it: ``nbgrader_config.py`` in Jupyter's config
        directories (the user's, the environment's, the system's) and in the course directory, the latter
        winning.  A gradebook that does not exist is an error, never a new empty one."""
        config = read_config(root)
        db_url = gradebook_url(config, root)
        if db_url.startswith("sqlite:///") and not Path(db_url[len("sqlite:///") :]).is_file():
            raise SystemExit(
                f"There is no gradebook at {db_url[len('sqlite:///') :]} (c.CourseDirectory.db_url = {db_url!r}): "
                "run `mlphys leaderboard` in the course directory, after `nbgrader autograde`."
            )
        executor = SandboxedExecute(config=config)
        return cls(root, db_url, executor.challenge_secret, executor, Leaderboard(config=config))


def _opted_in_name(gb: Gradebook, student: str) -> str:
    try:
        record = gb.find_student(student)
    except MissingEntry:
        return student
    full = " ".join(p for p in (record.first_name, record.last_name) if p)
    return full or student


def _is_past_due(gb: Gradebook, assignment: str) -> bool:
    try:
        due = gb.find_assignment(assignment).duedate
    except MissingEntry:
        return False
    return due is not None and due < datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


@dataclasses.dataclass
class Found:
    """One scored entry as stored by autograding, with where it is stored."""

    student: str
    notebook: str
    record: dict[str, t.Any]  # the whole record of the student's notebook (show_name, cells, entries)
    entry: dict[str, t.Any]  # this track's entry within it
    recorded_at: datetime.datetime  # when the grader stored it (the tie-break; never the student's clock)


def _finite(value: t.Any) -> bool:
    return type(value) in (int, float)


def entry_problem(challenge: Challenge, entry: t.Any) -> str | None:
    """Why a stored entry cannot go on a board (validated strictly: a record may be old or damaged), or None."""
    if not isinstance(entry, dict):
        return "not a dict"
    if entry.get("stage") != "scored":
        return None  # not on any board; its problem is in the student's feedback
    if type(entry.get("track")) is not str or entry["track"] not in challenge.tracks:
        return f"unknown track {str(entry.get('track'))[:40]!r}"
    if not (_finite(entry.get("public_cost")) and _finite(entry.get("private_cost"))):
        return "costs are not numbers"
    if not isinstance(entry.get("detail", ""), str):
        return "detail is not text"
    return None


def found_entries(
    gb: Gradebook, assignment: str, challenge: Challenge, log: t.Callable[[str], None] = print
) -> list[Found]:
    """Every scored entry of the assignment; a bad record is skipped and reported, never stops the boards."""
    found = []
    stored = records.load_records(gb, assignment, challenge.key)
    for (student, notebook), (record, recorded_at) in sorted(stored.items()):
        entries = record.get("entries") if isinstance(record, dict) else None
        if not isinstance(entries, list):
            log(f"skipping {student}'s record: it holds no list of entries")
            continue
        for entry in entries:
            problem = entry_problem(challenge, entry)
            if problem is not None:
                log(f"skipping an entry of {student}: {problem}")
            elif entry.get("stage") == "scored":
                found.append(Found(student, notebook, record, entry, recorded_at))
    return found


def _retrain_state(entry: dict[str, t.Any]) -> tuple[str, float | None]:
    check = entry.get("retrain")
    if isinstance(check, dict) and check.get("weights_sha256") == entry.get("weights_sha256"):
        status = check.get("status")
        cost = check.get("cost")
        if status in RETRAIN_STATES:
            return status, cost if _finite(cost) else None
    return "unchecked", None


def run_retraining(
    course: Course,
    assignment: str,
    top: int | None = None,
    log: t.Callable[[str], None] | None = None,
    tracks: t.Collection[str] | None = None,
    students: t.Collection[str] = (),
) -> None:
    """Retrain the ``top`` best unchecked entries of each board (of ``tracks``, default all), and every entry
    of ``students`` (again, even if checked before: an instructor re-runs a check this way); store the
    verdicts with the entries.  A check that cannot finish is stored as "timed out", never as "flagged".
    ``log`` (default: print) gets a line per check; a terminal also shows a progress bar."""
    challenge = _challenge(assignment)
    settings = course.settings
    top = settings.retrain_top if top is None else top
    if top <= 0 and not students:
        return
    if not challenge.has_retraining_check:
        (log or print)(f"{assignment}: this challenge has no retraining check; nothing to retrain")
        return
    problem = sandbox_problem()
    if problem and not course.executor.allow_unsandboxed:
        raise SystemExit(f"No sandbox for student code ({problem}); not retraining.")
    isolation = dataclasses.replace(
        course.executor.isolation(use_bwrap=problem is None), timeout=settings.retrain_timeout
    )
    with Gradebook(course.db_url) as gb:
        by_track: dict[str, list[Found]] = {}
        sign = -1 if challenge.higher_is_better else 1  # best first
        found = found_entries(gb, assignment, challenge, log or print)
        for item in sorted(found, key=lambda f: sign * f.entry["public_cost"]):
            by_track.setdefault(item.entry["track"], []).append(item)
        chosen: list[tuple[str, Found]] = []
        for track, items in sorted(by_track.items()):
            if tracks is not None and track not in tracks:
                continue
            best = [f for f in items if _retrain_state(f.entry)[0] == "unchecked"][: max(top, 0)]
            chosen += [(track, f) for f in best + [f for f in items if f.student in students and f not in best]]
        with Progress(len(chosen), "retrainings") as progress:
            for track, item in chosen:
                retrain_entry(course, gb, assignment, challenge, isolation, track, item, log or progress.write)
                progress.done(failed=item.entry["retrain"]["status"] != "reproduced")


def retrain_entry(
    course: Course,
    gb: Gradebook,
    assignment: str,
    challenge: Challenge,
    isolation: Isolation,
    track: str,
    item: Found,
    log: t.Callable[[str], None],
) -> None:
    """Retrain one entry in a sandbox and store the verdict with it."""
    settings = course.settings
    submitted = f"{challenge.score_name} {item.entry['public_cost']:.4g}"
    log(f"retraining {item.student}'s {track} entry (submitted {submitted}) ...")
    scoring = Scoring(
        challenge,
        course.secret,
        isolation,
        item.record.get("cells", {}),
        deadline=time.monotonic() + settings.retrain_timeout,
        retrain_band=settings.retrain_band(assignment, challenge),
    )
    result = challenge.retrain(track, item.entry["public_cost"], scoring)
    log(f"  {result.status}: {result.message}")
    item.entry["retrain"] = {
        "status": result.status,
        "cost": result.retrained_cost,
        "message": result.message,
        "weights_sha256": item.entry.get("weights_sha256"),
    }
    records.update_record(gb, assignment, item.notebook, item.student, challenge.key, item.record)


def _challenge(assignment: str) -> Challenge:
    plugin = assignments.get(assignment)
    if plugin.challenge is None:
        raise SystemExit(f"{assignment} has no leaderboard (its plug-in defines no challenge)")
    return plugin.challenge


def rebuild_boards(
    course: Course, assignment: str, out_dir: Path, *, final: bool | None = None, log: t.Callable[[str], None] = print
) -> tuple[dict[str, Path], bool, list[Entry]]:
    """Write the boards of ``assignment``; ``final=None`` means final once the due date has passed."""
    challenge = _challenge(assignment)
    with Gradebook(course.db_url) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise SystemExit(f"The gradebook at {course.db_url} has no assignment {assignment!r}.") from None
        if final is None:
            final = _is_past_due(gb, assignment)
        entries = []
        for item in found_entries(gb, assignment, challenge, log):
            status, retrained = _retrain_state(item.entry)
            shown = item.entry.get("picture")
            try:
                picture = np.asarray(shown, dtype=float) if shown else None
            except (TypeError, ValueError):
                picture = None
            entries.append(
                Entry(
                    student=item.student,
                    name=_opted_in_name(gb, item.student) if item.record.get("show_name") is True else None,
                    track=item.entry["track"],
                    detail=str(item.entry.get("detail", "")),
                    public_cost=float(item.entry["public_cost"]),
                    private_cost=float(item.entry["private_cost"]),
                    submitted_at=item.recorded_at,
                    retrain=status,
                    retrained_cost=retrained,
                    picture=picture,
                )
            )
    originals = challenge.page_originals(course.secret)
    if originals is not None:
        entries = [e for e in entries if e.picture is None or e.picture.shape == originals.shape] + [
            dataclasses.replace(e, picture=None)
            for e in entries
            if e.picture is not None and e.picture.shape != originals.shape
        ]
    paths = write_boards(
        entries,
        out_dir,
        spec=BoardSpec.of(challenge),
        originals=originals,
        final=final,
        salt=course_salt(course.secret),
    )
    return paths, final, entries


def summary(
    entries: list[Entry], tracks: t.Sequence[str], final: bool, secret: str, spec: BoardSpec | None = None
) -> str:
    """The boards as text, for the terminal."""
    higher, score = (spec.higher_is_better, spec.score_name) if spec is not None else (False, "cost")
    lines = []
    for track, rows in rank(entries, tracks, final=final, salt=course_salt(secret), higher_is_better=higher).items():
        if not rows:
            continue
        lines.append(f"\n{track} ({'final, private split' if final else 'public split'})")
        for row in rows:
            cost = row.private_cost if final else row.public_cost
            place = f"{row.rank:>3}" if row.rank is not None else "  -"
            lines.append(f"  {place}  {row.name:28} {row.detail:>6}  {score} {cost:.4f}  {row.retrain}")
    return "\n".join(lines)


def default_out_dir(root: Path, assignment: str) -> Path:
    return root / "leaderboards" / assignment


__all__ = ["BoardSpec", "Course", "Leaderboard", "default_out_dir", "rebuild_boards", "run_retraining", "summary"]
