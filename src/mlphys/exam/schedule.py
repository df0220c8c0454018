"""``mlphys exam schedule ASSIGNMENT``: the schedule of ``exams.toml`` written into nbgrader's gradebook.

The gradebook is nbgrader's record of deadlines: the assignment's due date (the common end of the exam) and each
student's extension (:meth:`nbgrader.api.Gradebook.grant_extension`; how much later the student's own end is).
nbgrader's ``total_seconds_late``, its late-penalty preprocessor and the formgrader all read them from there.
Running the command again after editing ``exams.toml`` brings the gradebook in line with it: changed extensions
are replaced, and those of students no longer listed are removed.
"""

from __future__ import annotations

import datetime as dt
import sys
import warnings
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning

from mlphys.exam.window import (
    Exam,
    ScheduleError,
    Window,
    as_utc_naive,
    format_minutes,
    format_time,
    load_schedule,
    schedule_path,
)
from mlphys.grading.parallel import gradebook_url, read_config


def read_exam(root: Path, assignment: str) -> Exam:
    """``assignment``'s schedule; :class:`ScheduleError` where there is none."""
    path = schedule_path(root)
    if not path.is_file():
        raise ScheduleError(f"{path}: no such file: an exam's schedule is written there (docs/instructors/exams.md)")
    exams = load_schedule(root)
    if assignment not in exams:
        listed = ", ".join(exams) or "none"
        raise ScheduleError(f"{path}: no exam {assignment!r} (listed: {listed})")
    return exams[assignment]


def write_schedule(db_url: str, course_id: str, exam: Exam) -> list[Window]:
    """Set the due date and every student's extension in the gradebook; returns every known student's window
    (students of the gradebook and of the schedule), sorted by student id."""
    with Gradebook(db_url, course_id) as gb, warnings.catch_warnings():
        # nbgrader's add_submission makes SQLAlchemy warn about its own relationship handling (harmless).
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_assignment(exam.assignment, duedate=as_utc_naive(exam.common.end))
        for student in exam.extensions:
            try:
                gb.find_student(student)
            except MissingEntry:
                gb.add_student(student)
            try:
                gb.find_submission(exam.assignment, student)
            except MissingEntry:  # nbgrader keeps an extension on the student's submission record
                gb.add_submission(exam.assignment, student)
            minutes = exam.window(student).extension.total_seconds() / 60
            gb.grant_extension(exam.assignment, student, minutes=minutes)
        for submission in gb.find_assignment(exam.assignment).submissions:
            if submission.extension is not None and submission.student_id not in exam.extensions:
                gb.grant_extension(exam.assignment, submission.student_id)  # no time given: removed
        students = sorted({s.id for s in gb.students} | set(exam.extensions))
    return [exam.window(student) for student in students]


def describe(exam: Exam, windows: list[Window]) -> str:
    """The schedule as the command prints it: the common window, then every student's."""
    tz = exam.timezone
    common = exam.common
    lines = [
        f"{exam.assignment}: {format_time(common.start, tz)} to {format_time(common.end, tz)} "
        f"({format_minutes(exam.minutes)}), submissions accepted until {format_time(common.grace_end, tz)} "
        f"({format_minutes(exam.grace_minutes)} of grace)",
        f"nbgrader's due date: {format_time(common.end, tz)} (a student's extension: how much later their own end is)",
        "",
        f"{'student':24} {'start':31} {'end':31} {'accepted until':31} extension",
    ]
    for window in windows:
        extension = format_extension(window.extension) if window.student in exam.extensions else "-"
        lines.append(
            f"{window.student or '':24} {format_time(window.start, tz):31} {format_time(window.end, tz):31} "
            f"{format_time(window.grace_end, tz):31} {extension}"
        )
    if not windows:
        lines.append("(no students in the gradebook yet: everyone gets the common window)")
    return "\n".join(lines)


def format_extension(extension: dt.timedelta) -> str:
    """``+30 min``, ``+2 d``, ``-1 d 2 h 30 min``: an extension as the table shows it."""
    minutes = extension.total_seconds() / 60
    days, rest = divmod(abs(minutes), 24 * 60)
    hours, rest = divmod(rest, 60)
    parts = [f"{days:g} d"] * bool(days) + [f"{hours:g} h"] * bool(hours) + [f"{rest:g} min"] * bool(rest)
    return ("-" if minutes < 0 else "+") + (" ".join(parts) or "0 min")


def main(root: Path, assignment: str) -> int:
    """The command: write the schedule, print it; 1 with the reason where the schedule cannot be read."""
    try:
        exam = read_exam(root, assignment)
    except ScheduleError as exc:
        print(exc, file=sys.stderr)
        return 1
    config = read_config(root)
    course_id = CourseDirectory(config=config).course_id  # as nbgrader's apps open the gradebook
    windows = write_schedule(gradebook_url(config, root), course_id, exam)
    print(describe(exam, windows))
    return 0
