"""Answers that fit a neighbour's variant better than the student's own: the exam's part of the similarity report.

When an exam is graded, every answer is kept with the grades (the record ``exam_answers``, see :mod:`.kit`).
Copying a neighbour's *numbers* shows in a way copying code cannot: an answer wrong for the student's own
variant and right for another student's.  One such answer can be chance (the same wrong line, the same letter);
:data:`MIN_FITTING` of them, on questions whose answers differ between the two variants, is not.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterable
from pathlib import Path

from mlphys.assignments.exam.kit import ANSWERS_RECORD, EXAM, exam_variant
from mlphys.assignments.exam.sheet import BY_ID

MIN_FITTING = 3  # answers wrong for the student's own variant and right for the neighbour's


def fitting_answers(answers: dict[str, t.Any], own: dict[str, t.Any], other: dict[str, t.Any]) -> list[str]:
    """The questions whose answer is wrong for ``own`` and right for ``other`` (whose key differs from own's)."""
    fitting = []
    for question_id, answer in answers.items():
        question = BY_ID.get(question_id)
        if question is None or answer is None or question_id not in own or question_id not in other:
            continue
        if question.key(own[question_id]) == question.key(other[question_id]):
            continue  # both variants share the answer: it says nothing about whose numbers were used
        if not question.matches(own[question_id], answer) and question.matches(other[question_id], answer):
            fitting.append(question_id)
    return fitting


def neighbour_flags(secret: str, answers_by_student: dict[str, dict[str, t.Any]]) -> list[tuple[str, str]]:
    """``(student, why)`` for every student whose answers fit another student's variant."""
    variants = {student: exam_variant(secret, student) for student in answers_by_student}
    flags = []
    for student, answers in sorted(answers_by_student.items()):
        for other in sorted(variants):
            if other == student:
                continue
            fitting = fitting_answers(answers, variants[student], variants[other])
            if len(fitting) >= MIN_FITTING:
                flags.append(
                    (
                        student,
                        f"{len(fitting)} answers ({', '.join(fitting)}) are wrong for {student}'s own numbers "
                        f"and right for {other}'s",
                    )
                )
    return flags


def recorded_answers(db_url: str, assignment: str, students: Iterable[str] | None = None) -> dict[str, dict]:
    """The answers kept with the grades, by student."""
    from nbgrader.api import Gradebook

    from mlphys.grading import records

    with Gradebook(db_url) as gb:
        stored = records.load_records(gb, assignment, ANSWERS_RECORD)
    wanted = None if students is None else set(students)
    return {
        student: data
        for (student, _notebook), (data, _when) in stored.items()
        if isinstance(data, dict) and (wanted is None or student in wanted)
    }


def similarity_flags(course_root: Path, students: list[str]) -> list[tuple[str, str]]:
    """The exam's lines of ``mlphys similarity``: students whose recorded answers fit another's variant."""
    from mlphys.grading.parallel import gradebook_url, read_config

    config = read_config(course_root)
    secret = str(config.SandboxedExecute.get("challenge_secret", ""))
    if not secret:
        return [("(all)", "no course secret is set: answers cannot be checked against the students' variants")]
    answers = recorded_answers(gradebook_url(config, course_root), EXAM, students)
    return neighbour_flags(secret, answers)
