"""What the exam's hidden tests call: answers judged against each student's own variant, and the code question.

Every check runs in the grader.  The student's variant is recomputed here from the course secret and the
student id of the submission; the key is computed from it here.  Neither reaches the student's kernel, and a
failure says what is wrong without the key.
"""

from __future__ import annotations

import typing as t

import numpy as np

from mlphys.assignments.exam.sheet import BY_ID, QUESTIONS
from mlphys.assignments.exam.variant import draw_variant
from mlphys.grading.checks import CourseFunction, expect_arguments_unchanged, expect_array, expect_close
from mlphys.grading.submission import MISSING

if t.TYPE_CHECKING:
    from mlphys.grading.submission import Submission

EXAM = "07_exam"
VARIANT_RECORD = "exam_variant"  # the student's numbers as the grader drew them
ANSWERS_RECORD = "exam_answers"  # the record of every answer, for the check against neighbours' variants
MAX_RECORDED_CHARS = 200


def exam_variant(secret: str, student: str) -> dict[str, t.Any]:
    """One student's numbers for every question of the exam."""
    return draw_variant(QUESTIONS, secret, EXAM, student)


def _recordable(answer: t.Any) -> t.Any:
    """The answer as plain JSON data, small (the record only needs it to compare with other variants)."""
    if isinstance(answer, np.ndarray) and answer.size <= 16 and answer.dtype.kind in "fiub":
        return answer.tolist()
    if isinstance(answer, bool | int | float) or answer is None:
        return answer
    if isinstance(answer, str):
        return answer[:MAX_RECORDED_CHARS]
    if isinstance(answer, list | tuple) and len(answer) <= 16:
        return [_recordable(a) for a in answer]
    return None


def expect_exam_answer(submission: Submission, question_id: str) -> None:
    """The student's answer to ``question_id`` is right for their own variant."""
    question = BY_ID[question_id]
    variant = exam_variant(submission.secret, submission.student)
    submission.record(VARIANT_RECORD, variant)  # the variant each student got, kept with the grade
    numbers = variant[question_id]
    answer = submission.value(question.name, MISSING)
    answers = submission.cache.setdefault(ANSWERS_RECORD, {})
    answers[question_id] = _recordable(None if answer is MISSING else answer)
    submission.record(ANSWERS_RECORD, answers)
    if answer is MISSING:
        raise AssertionError(f"{question.name} is not defined: set it in the answer cell of {question_id}.")
    problem = question.judge(numbers, answer)
    if problem is not None:
        raise AssertionError(problem)


# ---- the code question: one RK4 step -------------------------------------------------------------------

EQUATIONS = ("harmonic", "pendulum", "driven")


def _trusted_rk4(f: t.Callable[[float, np.ndarray], np.ndarray], t0: float, y: np.ndarray, dt: float) -> np.ndarray:
    k1 = f(t0, y)
    k2 = f(t0 + dt / 2, y + dt / 2 * k1)
    k3 = f(t0 + dt / 2, y + dt / 2 * k2)
    k4 = f(t0 + dt, y + dt * k3)
    return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def check_rk4_step(rk4_step: t.Callable[..., t.Any]) -> None:
    """``rk4_step(f, t, y, dt)`` is one classical Runge-Kutta step for every equation of motion, time-dependent
    ones included, at several states and step sizes, and leaves ``y`` as it was."""
    rng = np.random.default_rng(2024)
    for name in EQUATIONS:
        f = CourseFunction(f"mlphys.course.exam:{name}")
        for dt in (0.01, 0.3):
            t0 = float(np.round(rng.uniform(0, 5), 2))
            y = np.round(rng.uniform(-2, 2, 2), 3)
            call = f"rk4_step({name}, t={t0}, y={y.tolist()}, dt={dt})"
            result = expect_arguments_unchanged(rk4_step, f, t0, y, dt, what=call, names=("f", "t", "y", "dt"))
            result = expect_array(result, what=f"the result of {call}", shape=(2,))
            hint = " Evaluate f at t + dt/2 for k2 and k3 and at t + dt for k4." if name == "driven" else ""
            expect_close(
                result, _trusted_rk4(f, t0, y, dt), what=f"the result of {call}", rtol=1e-5, atol=1e-7, hint=hint
            )


HIDDEN_NAMES: dict[str, t.Any] = {"expect_exam_answer": expect_exam_answer, "check_rk4_step": check_rk4_step}
