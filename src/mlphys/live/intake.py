"""Noticing entries: new submission folders in the exchange's inbound, admitted under the challenge's rules.

``nbgrader submit`` copies a student's folder into
``<exchange>/<course>/inbound/<student>+<assignment>+<time>[+<random>]``.
Intake finds the folders of live challenges that the store has not seen, dates each by the exchange's receipt time
(:func:`mlphys.exam.exchange.received_at`: the student's process cannot set it) and admits it: queued now, queued
for a later day (the day's limit is reached), or refused (after the end; over the limit where the rules refuse).
A folder still being copied (received less than ``settle`` seconds ago) is left for the next round.

On a JupyterHub where every student is a Unix user, a folder named after a student but owned by another user is
refused: the name in the folder is whatever the submitting process wrote.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pwd
import typing as t
from collections import Counter
from pathlib import Path

from mlphys.exam.exchange import received_at
from mlphys.exam.window import format_time
from mlphys.live.rules import Rules
from mlphys.live.store import QUEUED, REFUSED, EntryStore, Seen, utc_naive


@dataclasses.dataclass(frozen=True)
class Admission:
    """What happens to a new entry, and what the student is told."""

    state: str  # QUEUED or REFUSED
    day: dt.date
    not_before: dt.datetime | None = None  # aware; a queued entry waits until then
    reason: str = ""


def parse_folder(name: str) -> tuple[str, str] | None:
    """``(student, assignment)`` of an inbound folder name, or None for a name nbgrader's submit does not make."""
    parts = name.split("+")
    if len(parts) not in (3, 4) or not all(parts[:3]) or name.startswith("."):
        return None
    return parts[0], parts[1]


def owner_problem(path: Path, student: str) -> str | None:
    """Why a folder named after ``student`` is not theirs, or None: where ``student`` is a Unix user, the folder
    must belong to them (or to root, who hands in for students in a course run by one user)."""
    try:
        user = pwd.getpwnam(student)
    except KeyError:
        return None
    owner = os.lstat(path).st_uid
    if owner in (user.pw_uid, 0):
        return None
    return "it was handed in by another user than the student it names, and is not scored"


def find_new(
    store: EntryStore, inbound: Path, assignments: t.Collection[str], settle: float
) -> list[tuple[Seen, Path]]:
    """The inbound folders of ``assignments`` that the store has not seen, oldest received first."""
    if not inbound.is_dir():
        return []
    known = {assignment: store.known_folders(assignment) for assignment in assignments}
    cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=settle)
    found = []
    for path in inbound.iterdir():
        parsed = parse_folder(path.name)
        if parsed is None or parsed[1] not in known or path.name in known[parsed[1]]:
            continue
        if path.is_symlink() or not path.is_dir():
            continue
        try:
            received = received_at(path)
        except OSError:  # unreadable (still being made, or removed): the next round sees it again
            continue
        if received > cutoff:
            continue
        found.append((Seen(parsed[1], parsed[0], path.name, received), path))
    return sorted(found, key=lambda item: (item[0].received_at, item[0].folder))


def admit(rules: Rules, seen: Seen, per_day: Counter[str]) -> Admission:
    """Where a new entry goes under ``rules``, given how many of the student's entries count against each day."""
    received = seen.received_at.replace(tzinfo=dt.UTC)
    tz = rules.timezone
    if received >= rules.end:
        return Admission(
            REFUSED,
            rules.day_of(received),
            reason=f"received at {format_time(received, tz)}, after the challenge ended at {format_time(rules.end)}: "
            "not scored.",
        )
    first = max(received, rules.start)
    day = rules.day_of(first)
    waiting = rules.start if received < rules.start else None
    limit = rules.entries_per_day
    if limit is None or per_day[day.isoformat()] < limit:
        reason = f"the challenge opens at {format_time(rules.start)}: scored then." if waiting else ""
        return Admission(QUEUED, day, waiting, reason)
    count = per_day[day.isoformat()]
    used = f"you have {count} {'entry' if count == 1 else 'entries'} on {day.isoformat()}, the day's limit of {limit}"
    if rules.over_limit == "refuse":
        return Admission(REFUSED, day, reason=f"{used}: this one is not scored. Submit again from tomorrow.")
    later = day + dt.timedelta(days=1)
    while per_day[later.isoformat()] >= limit:
        later += dt.timedelta(days=1)
    opens = rules.day_start(later)
    if opens >= rules.end:
        return Admission(REFUSED, day, reason=f"{used}, and the challenge ends before another day: not scored.")
    return Admission(
        QUEUED, later, opens, f"{used}: it counts for {later.isoformat()} and is scored from {format_time(opens)}."
    )


def take_in(store: EntryStore, inbound: Path, rules: t.Mapping[str, Rules], settle: float = 2.0) -> list[Seen]:
    """Record every new entry of the live challenges in ``rules``; returns those recorded by this call."""
    recorded = []
    for seen, path in find_new(store, inbound, list(rules), settle):
        problem = owner_problem(path, seen.student)
        counts = store.day_counts(seen.assignment, seen.student)
        admission = admit(rules[seen.assignment], seen, counts)
        if problem is not None:
            admission = dataclasses.replace(admission, state=REFUSED, not_before=None, reason=problem)
        not_before = None if admission.not_before is None else utc_naive(admission.not_before)
        if store.add(
            seen, day=admission.day.isoformat(), state=admission.state, not_before=not_before, reason=admission.reason
        ):
            recorded.append(seen)
    return recorded
