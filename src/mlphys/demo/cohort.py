"""Assemble the demo cohort of an assignment and write it into ``submitted/``."""

from __future__ import annotations

import shutil
import typing as t
from pathlib import Path

from mlphys import assignments
from mlphys.demo.case import Case, Materials

if t.TYPE_CHECKING:
    from mlphys.grading.nbgrader_api import CourseApps


def materials(course_root: Path, assignment: str) -> Materials:
    """The instructor's notebook and its release of ``assignment`` in a course directory."""
    return Materials(course_root, assignment, assignments.get(assignment).notebook)


def cohort(course_root: Path, assignment: str) -> list[Case]:
    """Every simulated submission for ``assignment``; student ids are unique."""
    cases = assignments.get(assignment).cases(materials(course_root, assignment))
    students = [c.student for c in cases]
    duplicates = {s for s in students if students.count(s) > 1}
    if duplicates:
        raise ValueError(f"duplicate student ids in the demo cohort: {sorted(duplicates)}")
    return cases


def write_cohort(course_root: Path, cases: list[Case]) -> None:
    """Write each case into ``submitted/<student>/<assignment>/``, replacing an earlier demo run."""
    for case in cases:
        directory = course_root / "submitted" / case.student / case.assignment
        if directory.is_symlink() or directory.is_file():
            directory.unlink()
        elif directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        case.write(directory, materials(course_root, case.assignment))


def hand_in_cohort(course_root: Path, assignment: str, cases: list[Case], apps: CourseApps) -> str:
    """Every case handed in as the demo does: written into ``submitted/``, and the timed cases of an exam through
    the course exchange after its deadline, then collected (:mod:`mlphys.demo.timed`).  Returns what the exam's
    schedule printed ("" without timed cases).  ``apps``: the course's nbgrader apps (``CourseApps``)."""
    write_cohort(course_root, [case for case in cases if not case.timed])
    if not any(case.timed for case in cases):
        return ""
    from mlphys.demo.timed import hand_in_late

    return hand_in_late(course_root, assignment, cases, apps)
