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
import typing as t
from pathlib import Path

import numpy as np
from nbgrader.api import Gradebook, MissingEntry
from traitlets import Float, Integer
from traitlets.config import Config, Configurable
from traitlets.config.loader import PyFileConfigLoader

from mlphys.grading import challenge, records
from mlphys.grading.execute import SandboxedExecute, sandbox_problem
from mlphys.leaderboard.entry import Entry
from mlphys.leaderboard.export import write_boards
from mlphys.leaderboard.ranking import rank


class Leaderboard(Configurable):
    """Settings of ``mlphys leaderboard`` (``c.Leaderboard.*`` in nbgrader_config.py)."""

    retrain_top = Integer(2, help="Best unchecked entries of each board that the retraining check retrains.").tag(
        config=True
    )
    retrain_timeout = Integer(900, help="Seconds one retraining may take in its sandbox.").tag(config=True)
    rel_tol = Float(0.3, help="An entry reproduces if retrained cost <= submitted * (1 + rel_tol) + abs_tol.").tag(
        config=True
    )
    abs_tol = Float(0.0005, help="See rel_tol.").tag(config=True)


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
        config = Config()
        if (root / "nbgrader_config.py").exists():
            config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
        db_url = config.CourseDirectory.get("db_url", "sqlite:///gradebook.db")
        if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):
            db_url = "sqlite:///" + str(root / db_url[len("sqlite:///") :])
        executor = SandboxedExecute(config=config)
        return cls(root, db_url, executor.challenge_secret, executor, Leaderboard(config=config))


def _opted_in_name(gb: Gradebook, student: str) -> str:
    try:
        record = gb.find_student(student)
    except MissingEntry:
        return student
    full = " ".join(p for p in (record.first_name, record.last_name) if p)
    return full or student


def _submitted_at(gb: Gradebook, assignment: str, student: str) -> datetime.datetime | None:
    try:
        return gb.find_submission(assignment, student).timestamp
    except MissingEntry:
        return None


def _is_past_due(gb: Gradebook, assignment: str) -> bool:
    try:
        due = gb.find_assignment(assignment).duedate
    except MissingEntry:
        return False
    return due is not None and due < datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _entries(gb: Gradebook, assignment: str) -> list[tuple[str, str, dict[str, t.Any], dict[str, t.Any]]]:
    """(student, notebook, record, entry) for every scored entry."""
    found = []
    for (student, notebook), record in sorted(records.load_records(gb, assignment, challenge.RECORD_KEY).items()):
        for entry in record.get("entries", []):
            if entry.get("stage") == "scored":
                found.append((student, notebook, record, entry))
    return found


def _retrain_state(entry: dict[str, t.Any]) -> tuple[str, float | None]:
    check = entry.get("retrain")
    if isinstance(check, dict) and check.get("weights_sha256") == entry.get("weights_sha256"):
        return check["status"], check.get("cost")
    return "unchecked", None


def run_retraining(
    course: Course,
    assignment: str,
    top: int | None = None,
    log: t.Callable[[str], None] = print,
    tracks: t.Collection[str] | None = None,
    students: t.Collection[str] = (),
) -> None:
    """Retrain the ``top`` best entries of each board (of ``tracks``, default all), and every entry of
    ``students``, unless already checked; store the verdicts with the entries."""
    settings = course.settings
    top = settings.retrain_top if top is None else top
    if top <= 0 and not students:
        return
    problem = sandbox_problem()
    if problem and not course.executor.allow_unsandboxed:
        raise SystemExit(f"No sandbox for student code ({problem}); not retraining.")
    isolation = dataclasses.replace(
        course.executor.isolation(use_bwrap=problem is None), timeout=settings.retrain_timeout
    )
    with Gradebook(course.db_url) as gb:
        found = _entries(gb, assignment)
        by_track: dict[str, list[tuple[str, str, dict[str, t.Any], dict[str, t.Any]]]] = {}
        for item in sorted(found, key=lambda item: item[3]["public_cost"]):
            by_track.setdefault(item[3]["track"], []).append(item)
        for track, items in sorted(by_track.items()):
            if tracks is not None and track not in tracks:
                continue
            chosen = items[: max(top, 0)] + [item for item in items[max(top, 0) :] if item[0] in students]
            for student, notebook, record, entry in chosen:
                if _retrain_state(entry)[0] != "unchecked":
                    continue
                log(f"retraining {student}'s {track} entry (submitted cost {entry['public_cost']:.4f}) ...")
                result = challenge.retrain_entry(
                    record["cells"],
                    track,
                    entry["public_cost"],
                    isolation=isolation,
                    secret=course.secret,
                    rel_tol=settings.rel_tol,
                    abs_tol=settings.abs_tol,
                )
                log(f"  {result.status}: {result.message}")
                entry["retrain"] = {
                    "status": result.status,
                    "cost": result.retrained_cost,
                    "message": result.message,
                    "weights_sha256": entry.get("weights_sha256"),
                }
                records.update_record(gb, assignment, notebook, student, challenge.RECORD_KEY, record)


def rebuild_boards(
    course: Course, assignment: str, out_dir: Path, *, final: bool | None = None
) -> tuple[dict[str, Path], bool, list[Entry]]:
    """Write the boards of ``assignment``; ``final=None`` means final once the due date has passed."""
    with Gradebook(course.db_url) as gb:
        if final is None:
            final = _is_past_due(gb, assignment)
        entries = []
        for student, _notebook, record, entry in _entries(gb, assignment):
            status, retrained = _retrain_state(entry)
            shown = entry.get("reconstructions")
            entries.append(
                Entry(
                    student=student,
                    name=_opted_in_name(gb, student) if record.get("show_name") is True else None,
                    track=entry["track"],
                    code_size=int(entry["code_size"]),
                    public_cost=float(entry["public_cost"]),
                    private_cost=float(entry["private_cost"]),
                    submitted_at=_submitted_at(gb, assignment, student),
                    retrain=status,
                    retrained_cost=retrained,
                    reconstructions=np.asarray(shown, dtype=float) if shown else None,
                )
            )
    originals = challenge.hidden_images(course.secret)["public"][: challenge.SHOWN_IMAGES].astype(float)
    paths = write_boards(
        entries,
        out_dir,
        originals=originals,
        final=final,
        salt=_salt(course.secret),
        title=f"Grand Autoencoder Challenge — {assignment}",
    )
    return paths, final, entries


def _salt(secret: str) -> str:
    return "pseudonyms:" + (secret or "unset")


def summary(entries: list[Entry], final: bool, secret: str) -> str:
    """The boards as text, for the terminal."""
    lines = []
    for track, rows in rank(entries, final=final, salt=_salt(secret)).items():
        if not rows:
            continue
        lines.append(f"\n{track} ({'final, private split' if final else 'public split'})")
        for row in rows:
            cost = row.private_cost if final else row.public_cost
            place = f"{row.rank:>3}" if row.rank is not None else "  -"
            lines.append(f"  {place}  {row.name:28} code {row.code_size}  cost {cost:.4f}  {row.retrain}")
    return "\n".join(lines)


def default_out_dir(root: Path, assignment: str) -> Path:
    return root / "leaderboards" / assignment


__all__ = ["Course", "Leaderboard", "default_out_dir", "rebuild_boards", "run_retraining", "summary"]
