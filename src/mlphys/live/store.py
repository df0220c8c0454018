"""The live service's state: every entry it has seen, in the gradebook's own database.

One table, ``mlphys_live_entry``, beside nbgrader's (SQLite by default, PostgreSQL where ``db_url`` says so), as
:mod:`mlphys.grading.records` keeps its records: backed up and moved with the gradebook, never read by nbgrader.
One row per submission folder of the exchange; its ``state`` moves only forward:

``queued`` (possibly not before a later day: the day's limit was reached) -> ``scoring`` -> ``scored``, or
``refused`` at once (after the end, over the limit where the rules refuse).

Every change is one transaction with a condition on the state it leaves, so two services, or a service and a
restart of itself, never score an entry twice or lose one: :meth:`EntryStore.claim` takes an entry only if it is
still queued, :meth:`EntryStore.finish` stores a result only for the claim it belongs to, and
:meth:`EntryStore.release_abandoned` puts back the entries of a service that died while scoring them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import typing as t
from collections import Counter
from collections.abc import Iterable

from sqlalchemy import Column, DateTime, Float, Integer, String, Text, UniqueConstraint, create_engine, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, declarative_base

Base = declarative_base()

QUEUED, SCORING, SCORED, REFUSED = "queued", "scoring", "scored", "refused"


class LiveEntry(Base):  # type: ignore[misc, valid-type]
    __tablename__ = "mlphys_live_entry"
    __table_args__ = (UniqueConstraint("assignment", "folder"),)

    id = Column(Integer, primary_key=True)
    assignment = Column(String(128), nullable=False, index=True)
    student = Column(String(128), nullable=False, index=True)
    folder = Column(String(512), nullable=False)  # the submission's folder name in the exchange's inbound
    received_at = Column(DateTime, nullable=False)  # UTC: the exchange's receipt time, not the student's claim
    day = Column(String(10), nullable=False)  # the challenge day whose limit the entry counts against
    not_before = Column(DateTime, nullable=True)  # UTC: a queued entry waits until then (the next day's limit)
    state = Column(String(16), nullable=False, index=True)
    reason = Column(Text, nullable=False, default="")  # for the student: why refused, or why waiting
    worker = Column(String(128), nullable=True)  # who holds a claim: host:pid
    claimed_at = Column(DateTime, nullable=True)
    scored_at = Column(DateTime, nullable=True)
    seconds = Column(Float, nullable=True)  # what scoring it took
    result = Column(Text, nullable=True)  # JSON: show_name, count_this, entries (Scored records), cells


@dataclasses.dataclass(frozen=True)
class Seen:
    """A submission folder as intake found it."""

    assignment: str
    student: str
    folder: str
    received_at: dt.datetime  # UTC, naive


def utc_naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def now_utc() -> dt.datetime:
    return utc_naive(dt.datetime.now(dt.UTC))


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class EntryStore:
    """The ``mlphys_live_entry`` table of one database."""

    def __init__(self, db_url: str) -> None:
        self.engine: Engine = create_engine(db_url)
        Base.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> EntryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading ----------------------------------------------------------------------------------------

    def known_folders(self, assignment: str) -> set[str]:
        with Session(self.engine) as db:
            return set(db.scalars(select(LiveEntry.folder).where(LiveEntry.assignment == assignment)))

    def entries(self, assignment: str, student: str | None = None) -> list[LiveEntry]:
        """Every entry of the assignment (of one student), oldest received first; detached copies."""
        query = select(LiveEntry).where(LiveEntry.assignment == assignment)
        if student is not None:
            query = query.where(LiveEntry.student == student)
        with Session(self.engine, expire_on_commit=False) as db:
            rows = list(db.scalars(query.order_by(LiveEntry.received_at, LiveEntry.id)))
            db.expunge_all()
            return rows

    def day_counts(self, assignment: str, student: str) -> Counter[str]:
        """How many of the student's entries count against each day's limit (every entry not refused)."""
        query = select(LiveEntry.day).where(
            LiveEntry.assignment == assignment, LiveEntry.student == student, LiveEntry.state != REFUSED
        )
        with Session(self.engine) as db:
            return Counter(db.scalars(query))

    # ---- changing -----------------------------------------------------------------------------------------

    def add(self, seen: Seen, *, day: str, state: str, not_before: dt.datetime | None = None, reason: str = "") -> bool:
        """Record a new submission folder; False if another service recorded it first."""
        row = LiveEntry(
            assignment=seen.assignment,
            student=seen.student,
            folder=seen.folder,
            received_at=seen.received_at,
            day=day,
            state=state,
            not_before=not_before,
            reason=reason,
        )
        if seen.folder in self.known_folders(seen.assignment):
            return False
        from sqlalchemy.exc import IntegrityError

        try:
            with Session(self.engine) as db, db.begin():
                db.add(row)
        except IntegrityError:  # the unique constraint: another service was quicker
            return False
        return True

    def claim(self, assignments: Iterable[str], now: dt.datetime, worker: str) -> LiveEntry | None:
        """Take the next entry to score, fairly: of the entries ready now, one of the student with the fewest
        entries scored or being scored that day, the earliest received among those.  None if none is ready."""
        names = list(assignments)
        with Session(self.engine) as db:
            ready = [
                (row.id, row.assignment, row.student, row.day, row.received_at)
                for row in db.scalars(
                    select(LiveEntry)
                    .where(LiveEntry.assignment.in_(names), LiveEntry.state == QUEUED)
                    .where((LiveEntry.not_before.is_(None)) | (LiveEntry.not_before <= now))
                )
            ]
            busy = Counter(
                db.execute(
                    select(LiveEntry.assignment, LiveEntry.student, LiveEntry.day).where(
                        LiveEntry.assignment.in_(names), LiveEntry.state.in_((SCORING, SCORED))
                    )
                )
            )
        fair = sorted(ready, key=lambda r: (busy[(r[1], r[2], r[3])], r[4], r[0]))
        for entry_id in [r[0] for r in fair]:
            with Session(self.engine) as db, db.begin():
                taken = db.execute(
                    update(LiveEntry)
                    .where(LiveEntry.id == entry_id, LiveEntry.state == QUEUED)
                    .values(state=SCORING, worker=worker, claimed_at=now, reason="")
                ).rowcount
            if taken == 1:
                return self.get(entry_id)
        return None

    def get(self, entry_id: int) -> LiveEntry:
        with Session(self.engine) as db:
            row = db.get(LiveEntry, entry_id)
            if row is None:
                raise KeyError(entry_id)
            db.expunge(row)
            return row

    def finish(self, entry_id: int, worker: str, result: dict[str, t.Any], seconds: float) -> bool:
        """Store the result of a claim; False (nothing stored) if the claim is no longer this worker's."""
        data = json.dumps(result)
        with Session(self.engine) as db, db.begin():
            done = db.execute(
                update(LiveEntry)
                .where(LiveEntry.id == entry_id, LiveEntry.state == SCORING, LiveEntry.worker == worker)
                .values(state=SCORED, result=data, scored_at=now_utc(), seconds=seconds)
            ).rowcount
        return done == 1

    def release_abandoned(self, older_than: dt.datetime, alive: t.Callable[[str], bool]) -> list[str]:
        """Put back every entry being scored by a worker that is gone (``alive(worker)`` False), or claimed before
        ``older_than`` (a worker on another machine that stopped answering).  Returns their folders."""
        with Session(self.engine) as db:
            being_scored = list(
                db.execute(
                    select(LiveEntry.id, LiveEntry.worker, LiveEntry.claimed_at, LiveEntry.folder).where(
                        LiveEntry.state == SCORING
                    )
                )
            )
        released = []
        for entry_id, worker, claimed_at, folder in being_scored:
            if alive(worker or "") and (claimed_at is None or claimed_at >= older_than):
                continue
            with Session(self.engine) as db, db.begin():
                done = db.execute(
                    update(LiveEntry)
                    .where(LiveEntry.id == entry_id, LiveEntry.state == SCORING, LiveEntry.worker == worker)
                    .values(state=QUEUED, worker=None, claimed_at=None)
                ).rowcount
            if done == 1:
                released.append(folder)
        return released


def worker_alive(worker: str) -> bool:
    """Whether a worker (host:pid) may still be scoring: one of this host is alive if its process is; one of
    another host is given the benefit of the doubt (its claim expires by age instead)."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return host != socket.gethostname()
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def decode_result(row: LiveEntry) -> dict[str, t.Any]:
    """The stored result of a scored entry ({} for any other)."""
    if row.state != SCORED or not row.result:
        return {}
    try:
        data = json.loads(row.result)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class LiveFinal(Base):  # type: ignore[misc, valid-type]
    """A live challenge whose final boards are published."""

    __tablename__ = "mlphys_live_final"

    assignment = Column(String(128), primary_key=True)
    finalised_at = Column(DateTime, nullable=False)


def is_final(store: EntryStore, assignment: str) -> bool:
    with Session(store.engine) as db:
        return db.get(LiveFinal, assignment) is not None


def mark_final(store: EntryStore, assignment: str) -> None:
    from sqlalchemy.exc import IntegrityError

    try:
        with Session(store.engine) as db, db.begin():
            db.add(LiveFinal(assignment=assignment, finalised_at=now_utc()))
    except IntegrityError:  # another service finished first
        pass


def update_result(store: EntryStore, entry_id: int, result: dict[str, t.Any]) -> None:
    """Replace a scored entry's result (the retraining check's verdicts are added to it)."""
    with Session(store.engine) as db, db.begin():
        db.execute(
            update(LiveEntry)
            .where(LiveEntry.id == entry_id, LiveEntry.state == SCORED)
            .values(result=json.dumps(result))
        )


def signature(store: EntryStore, assignment: str) -> tuple:
    """Changes whenever an entry of the assignment is added, changes state or gets a result: when to republish."""
    from sqlalchemy import func

    with Session(store.engine) as db:
        return tuple(
            db.execute(
                select(LiveEntry.state, func.count(), func.max(LiveEntry.scored_at), func.max(LiveEntry.id))
                .where(LiveEntry.assignment == assignment)
                .group_by(LiveEntry.state)
                .order_by(LiveEntry.state)
            )
        )


def refuse_waiting(store: EntryStore, assignment: str, end: dt.datetime, reason: str) -> int:
    """Refuse the queued entries that wait for a moment at or after ``end`` (UTC, naive): their day never comes."""
    with Session(store.engine) as db, db.begin():
        return db.execute(
            update(LiveEntry)
            .where(LiveEntry.assignment == assignment, LiveEntry.state == QUEUED, LiveEntry.not_before >= end)
            .values(state=REFUSED, reason=reason)
        ).rowcount


def forget(store: EntryStore, assignment: str) -> None:
    """Drop every entry of ``assignment`` and its final mark (the demo starts its live round afresh)."""
    from sqlalchemy import delete

    with Session(store.engine) as db, db.begin():
        db.execute(delete(LiveEntry).where(LiveEntry.assignment == assignment))
        db.execute(delete(LiveFinal).where(LiveFinal.assignment == assignment))
