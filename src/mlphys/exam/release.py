"""``mlphys exam release``: the exam released through nbgrader's exchange, with every student's own variant."""

from __future__ import annotations

import typing as t
from collections.abc import Callable
from pathlib import Path

from mlphys.exam.delivery import release_variants


def deadlines(root: Path, assignment: str) -> Callable[[str], str | None]:
    """Each student's own deadline as the student reads it (from ``exams.toml``; None without a schedule)."""
    from mlphys.exam.window import find_exam, format_time

    exam = find_exam(root, assignment)
    if exam is None:
        return lambda student: None
    return lambda student: format_time(exam.window(student).end, exam.timezone)


def release_exam(root: Path, assignment: str, deadline_of: Callable[[str], str | None] | None = None) -> dict[str, str]:
    """Write each student's variant (and deadline, from ``exams.toml``) into the exchange, then ``nbgrader
    release_assignment``.  The students are the gradebook's (``nbgrader db student add``, ``mlphys exam
    schedule``, or the formgrader).  Returns who can read each student's file."""
    from nbgrader.api import Gradebook

    from mlphys import assignments
    from mlphys.grading.nbgrader_api import CourseApps
    from mlphys.grading.parallel import gradebook_url

    plugin = assignments.get(assignment)
    variant = plugin.variant
    if variant is None:
        raise SystemExit(f"{assignment} has no per-student variants: release it with nbgrader release_assignment")
    apps = CourseApps(root)
    secret = str(apps.config.SandboxedExecute.get("challenge_secret", ""))
    if not secret:
        raise SystemExit("No course secret is set (MLPHYS_CHALLENGE_SECRET): variants cannot be drawn.")
    with Gradebook(gradebook_url(apps.config, root)) as gb:
        students = sorted(s.id for s in gb.students)
    if not students:
        raise SystemExit(
            "The gradebook has no students: add them first (nbgrader db student add ID, or the formgrader)."
        )
    course_id = str(apps.config.CourseDirectory.get("course_id", ""))
    exchange = Path(str(apps.config.Exchange.get("root", "/srv/nbgrader/exchange")))
    readers = release_variants(
        exchange,
        course_id,
        assignment,
        students,
        lambda student: t.cast(t.Any, variant)(secret, student),
        deadline_of or deadlines(root, assignment),
    )
    apps.release_assignment(assignment)
    return readers


def main(root: Path, assignment: str) -> int:
    """``mlphys exam release ASSIGNMENT``: release it and say who can read each student's numbers."""
    readers = release_exam(root, assignment)
    print(f"{assignment} released to {len(readers)} students, each with their own numbers:")
    for student, who in sorted(readers.items()):
        print(f"  {student:24} readable by {who}")
    if any("anyone" in who for who in readers.values()):
        print(
            "Some students' numbers are readable by others: give each student a Unix user of their own (a "
            "JupyterHub with one Unix user per person) and run the release as root, or accept that neighbours "
            "could read each other's variants (they still score only with their own)."
        )
    return 0
