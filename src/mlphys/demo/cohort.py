"""Assemble the demo cohort of an assignment and write it into ``submitted/``."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlphys import assignments
from mlphys.demo.case import Case, Materials


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
