"""Results that outlive a grading run (challenge entries), kept in the gradebook's own database.

nbgrader's tables hold scores and comments; a leaderboard needs more (costs on two splits, code sizes,
decoded images, the cells to retrain from).  They go into one extra table, ``mlphys_record``, in the
same database nbgrader uses, so SQLite by default and PostgreSQL when ``db_url`` says so, backed up and
moved together with the gradebook.  nbgrader never reads the table and its migrations leave it alone.
"""

from __future__ import annotations

import datetime
import json
import typing as t

from nbformat import NotebookNode
from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor
from sqlalchemy import Column, DateTime, Integer, String, Text, UniqueConstraint, delete, select
from sqlalchemy.orm import Session, declarative_base

from mlphys.grading.handoff import RECORDS_KEY

Base = declarative_base()


class Record(Base):  # type: ignore[misc, valid-type]
    __tablename__ = "mlphys_record"
    __table_args__ = (UniqueConstraint("assignment", "notebook", "student", "key"),)

    id = Column(Integer, primary_key=True)
    assignment = Column(String(128), nullable=False, index=True)
    notebook = Column(String(128), nullable=False)
    student = Column(String(128), nullable=False)
    key = Column(String(128), nullable=False)
    data = Column(Text, nullable=False)
    updated = Column(DateTime, nullable=False)


def _session(gb: Gradebook) -> Session:
    bind = gb.db.get_bind()
    Base.metadata.create_all(bind)
    return Session(bind)


def prepare(gb: Gradebook) -> None:
    """Create the records table if it is missing (before several graders write at once, which would race)."""
    Base.metadata.create_all(gb.db.get_bind())


def replace_records(gb: Gradebook, assignment: str, notebook: str, student: str, records: dict[str, t.Any]) -> None:
    """Make ``records`` the only ones of this student's notebook (a regrade replaces the old ones).

    One transaction: afterwards the notebook has exactly the new records, or, if anything fails, still
    exactly the old ones.
    """
    rows = [(key, json.dumps(value)) for key, value in records.items()]  # refuse unencodable data up front
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    with _session(gb) as db, db.begin():
        db.execute(
            delete(Record).where(
                Record.assignment == assignment, Record.notebook == notebook, Record.student == student
            )
        )
        # The delete is sent before the inserts: the unit of work would otherwise insert the new rows
        # first and trip the unique constraint on (assignment, notebook, student, key).
        db.add_all(
            Record(assignment=assignment, notebook=notebook, student=student, key=key, data=data, updated=now)
            for key, data in rows
        )


def load_records(gb: Gradebook, assignment: str, key: str) -> dict[tuple[str, str], tuple[t.Any, datetime.datetime]]:
    """{(student, notebook): (data, when the grader stored it)} of one kind of record for an assignment.

    A row whose data is not valid JSON (a damaged database) is left out.
    """
    found = {}
    with _session(gb) as db:
        for row in db.scalars(select(Record).where(Record.assignment == assignment, Record.key == key)):
            try:
                found[(row.student, row.notebook)] = (json.loads(row.data), row.updated)
            except ValueError:
                continue
    return found


def notebook_records(gb: Gradebook, assignment: str, notebook: str, student: str) -> dict[str, t.Any]:
    """{key: data} of every record of one student's notebook."""
    with _session(gb) as db:
        rows = db.scalars(
            select(Record).where(
                Record.assignment == assignment, Record.notebook == notebook, Record.student == student
            )
        )
        return {r.key: json.loads(r.data) for r in rows}


def update_record(gb: Gradebook, assignment: str, notebook: str, student: str, key: str, data: t.Any) -> None:
    """Overwrite one record's data (e.g. to add the result of a retraining check)."""
    with _session(gb) as db:
        row = db.scalars(
            select(Record).where(
                Record.assignment == assignment,
                Record.notebook == notebook,
                Record.student == student,
                Record.key == key,
            )
        ).one()
        row.data = json.dumps(data)
        db.commit()


class SaveRecords(NbGraderPreprocessor):
    """Store what the hidden tests kept (``submission.record``) for this student's notebook."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, t.Any]) -> tuple[NotebookNode, dict[str, t.Any]]:
        records = resources.get(RECORDS_KEY, {})
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            replace_records(gb, info["assignment"], info["notebook"], info["student"], records)
        return nb, resources
