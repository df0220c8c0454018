"""Late means zero, and the student is told why.

nbgrader's ``AssignLatePenalties`` (an autograde preprocessor) asks its plugin for a penalty whenever the
gradebook says a submission is late: its time (the exchange's receipt time, :mod:`mlphys.exam.exchange`) after
the student's own due date (the assignment's, plus the student's extension).  :class:`WindowLatePenalty` is that
plugin (``c.AssignLatePenalties.plugin_class``):

- within the grace period (an exam's ``grace_minutes`` in ``exams.toml``; for other assignments
  ``c.WindowLatePenalty.grace_minutes``, default 0) nothing;
- later: the whole score (``c.WindowLatePenalty.penalty = "zero"``, the default), or the given fraction of it
  (``c.WindowLatePenalty.penalty = 0.25``: a late submission loses a quarter of its score).

:class:`ExplainLatePenalty`, placed after ``AssignLatePenalties``, puts a short markdown cell at the top of the
autograded notebook of a submission that was given a penalty, saying when the exchange received it, what the
deadline was, and what that cost, so that the feedback says so.  nbgrader's feedback page adds its own line
"Late submission penalty" with the points.  Assignments without a due date are never late, and neither
preprocessor changes anything for them.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.plugins import LateSubmissionPlugin
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Enum, Float, Union
from traitlets.config import Config, Configurable

from mlphys.exam.window import Exam, find_exam, format_minutes, format_time, from_utc_naive

NOTICE_MARK = "mlphys_late_notice"  # cell metadata of the notice (CleanStudentContent keeps only nbgrader's)

PENALTY_HELP = """What a submission later than the student's deadline plus grace loses: "zero" (its whole score,
the default) or a fraction of its score between 0 and 1 (0.25: a quarter of it)."""
GRACE_HELP = """Minutes after the student's deadline (the due date plus their extension) during which a submission
still counts as on time, for assignments that exams.toml does not list (those use its grace_minutes)."""


class WindowLatePenalty(LateSubmissionPlugin):
    """Zero (or a configured fraction lost) past the student's deadline plus grace; nothing within the grace.

    nbgrader's ``penalty_method`` is not used: ``penalty`` says what a late submission loses.
    """

    penalty = Union([Enum(["zero"]), Float(min=0.0, max=1.0)], default_value="zero", help=PENALTY_HELP).tag(config=True)
    grace_minutes = Float(0.0, min=0.0, help=GRACE_HELP).tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float | None:
        assignment = getattr(self.parent, "assignment_id", None)  # set by AssignLatePenalties before it asks
        grace = grace_for(self, assignment)
        if total_seconds_late <= grace.total_seconds():
            if total_seconds_late > 0:
                self.log.info("%s: %.1f s after the deadline, within the grace period", student_id, total_seconds_late)
            return None
        fraction = penalty_fraction(self.config)
        return None if fraction == 0 else score * fraction


class ExplainLatePenalty(NbGraderPreprocessor):
    """A markdown cell at the top of the autograded notebook of a submission given a late penalty, saying why.

    Place it after ``AssignLatePenalties`` in ``c.Autograde.autograde_preprocessors``; it reads what that one
    wrote into the gradebook.
    """

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict[str, t.Any]) -> tuple[t.Any, dict[str, t.Any]]:
        ids = resources["nbgrader"]
        with Gradebook(ids["db_url"]) as gb:
            try:
                submission = gb.find_submission(ids["assignment"], ids["student"])
                notebook = gb.find_submission_notebook(ids["notebook"], ids["assignment"], ids["student"])
            except MissingEntry:
                return nb, resources
            if notebook.late_submission_penalty is None or submission.timestamp is None:
                return nb, resources
            received = from_utc_naive(submission.timestamp)
            deadline = from_utc_naive(submission.duedate)
            extended = submission.extension is not None
        exam = find_exam(course_root(self), ids["assignment"])
        text = late_notice(received, deadline, extended, grace_for(self, ids["assignment"], exam), self.config, exam)
        nb.cells = [cell for cell in nb.cells if not cell.get("metadata", {}).get(NOTICE_MARK)]
        cell = nbformat.v4.new_markdown_cell(text, metadata={NOTICE_MARK: True, "editable": False, "deletable": False})
        nb.cells.insert(0, cell)
        return nb, resources


def late_notice(
    received: dt.datetime,
    deadline: dt.datetime,
    extended: bool,
    grace: dt.timedelta,
    config: Config,
    exam: Exam | None = None,
) -> str:
    """The words a late student reads at the top of their feedback."""
    tz = exam.timezone if exam is not None else dt.UTC
    allowance = ", ".join(
        (["your extension included"] if extended else [])
        + ([f"{format_minutes(grace.total_seconds() / 60)} of grace"] if grace else [])
    )
    fraction = penalty_fraction(config)
    cost = "late submissions score 0" if fraction == 1 else f"late submissions lose {fraction:.0%} of their score"
    return (
        f"**Late submission.** The course exchange received this submission at {format_time(received, tz)}, "
        f"after your deadline, {format_time(deadline, tz)}{f' ({allowance})' if allowance else ''}: {cost}.\n\n"
        "*The time is when your files arrived in the course exchange, not the time your computer showed or wrote "
        "into the submission.*"
    )


def penalty_fraction(config: Config) -> float:
    """The fraction of its score a late submission loses under ``c.WindowLatePenalty.penalty``."""
    penalty = WindowLatePenalty(config=config).penalty
    return 1.0 if penalty == "zero" else float(penalty)


def grace_for(configurable: Configurable, assignment: str | None, exam: Exam | None = None) -> dt.timedelta:
    """The grace period of ``assignment``: its exam's where ``exams.toml`` lists it, else the configured one."""
    if exam is None and assignment is not None:
        exam = find_exam(course_root(configurable), assignment)
    if exam is not None:
        return exam.grace
    return dt.timedelta(minutes=WindowLatePenalty(config=configurable.config).grace_minutes)


def course_root(configurable: Configurable) -> Path:
    """The course directory of the nbgrader app that runs ``configurable`` (its parents lead to the app's
    ``coursedir``), else the configured one."""
    from nbgrader.coursedir import CourseDirectory

    node: t.Any = configurable
    while node is not None:
        coursedir = getattr(node, "coursedir", None)
        if coursedir is not None:
            return Path(coursedir.root)
        node = getattr(node, "parent", None)
    return Path(CourseDirectory(config=configurable.config).root)
