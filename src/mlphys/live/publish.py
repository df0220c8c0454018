"""What students see of a live challenge, published into the course exchange.

``<exchange>/<course>/live/<assignment>/``

- ``board/`` (readable by everyone with access to the exchange): the boards as ``mlphys leaderboard`` writes
  them (``index.html``, ``leaderboard.csv``, ``leaderboard.json``), from the entries that count so far, ranked by
  the public figure; after the end, the final boards ranked by the private figure, with the retraining check.
- ``students/<student>.json``: one student's history: every entry they handed in, when the exchange received it,
  whether it was scored, is waiting (the day's limit) or was refused and why, its public figure per track, and
  which entries count.  The folder can be passed through but not listed; where the student has a Unix user the
  file is theirs alone (as exam variants are, :mod:`mlphys.exam.delivery`).  Nobody's private figure appears
  before the end.

Students read both in JupyterLab with the course library (:mod:`mlphys.course.live`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import typing as t
from pathlib import Path

import numpy as np

from mlphys.exam.delivery import restrict_to
from mlphys.exam.window import format_time
from mlphys.grading.challenge import Challenge
from mlphys.leaderboard.entry import RETRAIN_STATES, BoardSpec, Entry
from mlphys.leaderboard.export import write_boards
from mlphys.leaderboard.pseudonyms import course_salt, shown_names
from mlphys.live.rules import Rules
from mlphys.live.store import QUEUED, REFUSED, SCORED, SCORING, LiveEntry, decode_result


def live_dir(exchange_root: Path, course_id: str, assignment: str) -> Path:
    return Path(exchange_root) / course_id / "live" / assignment


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One scored entry on one track, as the counting rules see it."""

    row: LiveEntry
    result: dict[str, t.Any]
    entry: dict[str, t.Any]  # the track's Scored record

    @property
    def public(self) -> float:
        return float(self.entry["public_cost"])

    @property
    def private(self) -> float:
        return float(self.entry["private_cost"])


def candidates(rows: t.Iterable[LiveEntry], challenge: Challenge) -> dict[tuple[str, str], list[Candidate]]:
    """Every scored entry with a figure, by (student, track), oldest first."""
    found: dict[tuple[str, str], list[Candidate]] = {}
    for row in rows:
        result = decode_result(row)
        for entry in result.get("entries", []):
            if not isinstance(entry, dict) or entry.get("stage") != "scored":
                continue
            if entry.get("track") not in challenge.tracks:
                continue
            if not all(type(entry.get(k)) in (int, float) for k in ("public_cost", "private_cost")):
                continue
            found.setdefault((row.student, entry["track"]), []).append(Candidate(row, result, entry))
    return found


def _better(challenge: Challenge, figure: t.Callable[[Candidate], float]) -> t.Callable[[Candidate], tuple]:
    sign = -1 if challenge.higher_is_better else 1

    def key(c: Candidate) -> tuple:
        value = figure(c)
        return (not math.isfinite(value), sign * value if math.isfinite(value) else 0.0, c.row.received_at)

    return key


def counting(rules: Rules, challenge: Challenge, entries: list[Candidate]) -> list[Candidate]:
    """The entries of one student on one track that count under the rules (oldest first)."""
    if rules.counting == "latest":
        return entries[-1:]
    best_public = sorted(entries, key=_better(challenge, lambda c: c.public))[:1]
    if rules.counting == "best":
        return best_public
    marked = [c for c in entries if c.result.get("count_this") is True]
    return marked[-rules.selected :] if marked else best_public


def shown_entry(rules: Rules, challenge: Challenge, entries: list[Candidate], final: bool) -> Candidate | None:
    """The entry that stands for a student on a board: of those that count, the best by the split that ranks."""
    chosen = counting(rules, challenge, entries)
    if not chosen:
        return None
    return sorted(chosen, key=_better(challenge, (lambda c: c.private) if final else (lambda c: c.public)))[0]


def retrain_state(entry: dict[str, t.Any]) -> tuple[str, float | None]:
    """The retraining verdict stored with an entry, if it is for these weights."""
    check = entry.get("retrain")
    if isinstance(check, dict) and check.get("weights_sha256") == entry.get("weights_sha256"):
        if check.get("status") in RETRAIN_STATES:
            cost = check.get("cost")
            return check["status"], float(cost) if type(cost) in (int, float) else None
    return "unchecked", None


def board_entries(
    rows: list[LiveEntry], rules: Rules, challenge: Challenge, final: bool, names: t.Mapping[str, str]
) -> list[Entry]:
    """One leaderboard :class:`Entry` per student and track: the entry that stands for them."""
    entries = []
    for (student, track), found in sorted(candidates(rows, challenge).items()):
        shown = shown_entry(rules, challenge, found, final)
        if shown is None:
            continue
        status, retrained = retrain_state(shown.entry)
        picture = shown.entry.get("picture")
        entries.append(
            Entry(
                student=student,
                name=names.get(student) if shown.result.get("show_name") is True else None,
                track=track,
                detail=str(shown.entry.get("detail", "")),
                public_cost=shown.public,
                private_cost=shown.private,
                submitted_at=shown.row.received_at,
                retrain=status,
                retrained_cost=retrained,
                picture=np.asarray(picture, dtype=float) if picture else None,
            )
        )
    return entries


def publish_board(
    folder: Path,
    rows: list[LiveEntry],
    rules: Rules,
    challenge: Challenge,
    secret: str,
    *,
    final: bool,
    names: t.Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write the boards into ``folder/board`` (readable by everyone with access to the exchange)."""
    entries = board_entries(rows, rules, challenge, final, names or {})
    originals = challenge.page_originals(secret)
    if originals is not None:
        entries = [
            e if e.picture is None or e.picture.shape == originals.shape else dataclasses.replace(e, picture=None)
            for e in entries
        ]
    out = folder / "board"
    out.mkdir(parents=True, exist_ok=True)
    for path in (folder.parent, folder, out):  # live/, live/<assignment>/, the board: readable by everyone
        os.chmod(path, 0o755)
    return write_boards(
        entries, out, spec=BoardSpec.of(challenge), originals=originals, final=final, salt=course_salt(secret)
    )


def history(
    student: str, rows: list[LiveEntry], rules: Rules, challenge: Challenge, pseudonym: str, final: bool
) -> dict[str, t.Any]:
    """What one student may know of their entries (plain JSON data)."""
    mine = [r for r in rows if r.student == student]
    counted = {
        (id(c.row), c.entry["track"])
        for (who, _), found in candidates(mine, challenge).items()
        if who == student
        for c in counting(rules, challenge, found)
    }
    counted_rows = {row_id for row_id, _ in counted}
    tz = rules.timezone
    shown = []
    for row in mine:
        result = decode_result(row)
        received = row.received_at.replace(tzinfo=dt.UTC)
        item: dict[str, t.Any] = {"received": format_time(received, tz), "folder": row.folder}
        if row.state == REFUSED:
            item["status"] = "refused"
            item["reason"] = row.reason
        elif row.state in (QUEUED, SCORING):
            item["status"] = "waiting" if row.not_before else "being scored" if row.state == SCORING else "queued"
            if row.reason:
                item["reason"] = row.reason
        else:
            item["status"] = "scored"
            if result.get("problem"):
                item["problem"] = result["problem"]
            item["tracks"] = {}
            for entry in result.get("entries", []):
                if not isinstance(entry, dict):
                    continue
                track_view: dict[str, t.Any] = {"public": entry.get("public_cost"), "detail": entry.get("detail", "")}
                if entry.get("problem"):
                    track_view["problem"] = entry["problem"]
                if final:
                    track_view["private"] = entry.get("private_cost")
                track_view["counts"] = (id(row), entry.get("track")) in counted
                item["tracks"][str(entry.get("track"))] = track_view
            item["counts"] = id(row) in counted_rows
        shown.append(item)
    return {
        "assignment": rules.assignment,
        "student": student,
        "pseudonym": pseudonym,
        "score_name": challenge.score_name,
        "higher_is_better": challenge.higher_is_better,
        "start": format_time(rules.start),
        "end": format_time(rules.end),
        "entries_per_day": rules.entries_per_day,
        "counting": rules.counting,
        "final": final,
        "entries": shown,
    }


def publish_histories(
    folder: Path,
    students: t.Iterable[str],
    rows: list[LiveEntry],
    rules: Rules,
    challenge: Challenge,
    secret: str,
    final: bool,
) -> None:
    """Write each student's history file (theirs alone where they have a Unix user)."""
    out = folder / "students"
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o711)  # others may open a file whose name they know, not list the folder
    pseudonyms = shown_names({row.student: None for row in rows}, course_salt(secret))
    for student in students:
        if not student or "/" in student or student.startswith("."):
            continue
        data = history(student, rows, rules, challenge, pseudonyms.get(student, ""), final)
        path = out / f"{student}.json"
        temporary = out / f".{student}.json.tmp"
        temporary.write_text(json.dumps(data, indent=1))
        restrict_to(temporary, student)
        temporary.replace(path)


__all__ = ["SCORED", "board_entries", "counting", "history", "live_dir", "publish_board", "publish_histories"]
