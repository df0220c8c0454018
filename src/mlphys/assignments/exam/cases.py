"""Simulated exam submissions: the reference, honest students with their own variants, mistakes, a copier, attacks.

Points (19 autograded, plus 4 for the two written answers, graded by hand):

=====================  ======  ============================================================================
test cell              points  judges (in the grader, against the student's own variant)
=====================  ======  ============================================================================
test_q1                1       the number of parameters of a network (whole number, exact)
test_q2                2       the output of a small ReLU network (relative tolerance 1e-6)
test_q3                2       a sigmoid neuron's dC/dw at a point (1e-4)
test_q4                1       code reading: which line of a backward pass is wrong
test_q5                2       three true/false statements on autoencoders (all right)
test_q6                2       one RK4 step of a harmonic oscillator, [x, v]
test_rk4_function      3       ``rk4_step(f, t, y, dt)`` by hidden tests (time-dependent f, y unchanged)
test_q8                1       the parameters of an LSTM layer
test_q9                2       one REINFORCE step of a softmax preference
test_q10               2       the free energy of a small RBM
test_q11               1       multiple choice on contrastive divergence (options shuffled per student)
=====================  ======  ============================================================================

Expected points of the cases whose answers are not their own variant's (a copier, an edited variant) are
computed from the question set and the course secret: an answer that happens to be right for the student's own
numbers too (the same wrong line, the same letter) earns its points, as it would in the grader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from mlphys.assignments.exam.kit import exam_variant
from mlphys.assignments.exam.sheet import QUESTIONS
from mlphys.demo import attacks
from mlphys.demo.case import Case, Materials, course_secret, reference_cell, write_notebook

NEIGHBOUR = "ref_solution"  # whose answers the copier hands in
QUICK = (
    "ref_solution",
    "blank_release",
    "honest_exam_typed_answers",
    "mistake_exam_rk4_time",
    "copier_exam",
    "attack_exam_edited_variant",
)


def answer_cell(question_id: str, answer: object) -> str:
    """An answer cell holding a typed-in answer."""
    name = next(q.name for q in QUESTIONS if q.id == question_id)
    return f"{name} = {answer!r}\n"


def typed_answers(variant: dict) -> dict[str, str]:
    """Every numeric answer typed in as a literal, right for ``variant``."""
    return {f"answer_{q.id}": answer_cell(q.id, q.key(variant[q.id])) for q in QUESTIONS}


def points_for(answers_variant: dict, own_variant: dict, points: dict[str, float]) -> float:
    """The points of the reference's notebook with every variant answer typed in right for ``answers_variant``,
    judged against ``own_variant``: the code question's points, and those of answers that happen to be right
    for both variants."""
    total = sum(points.values())
    for q in QUESTIONS:
        if not q.matches(own_variant[q.id], q.key(answers_variant[q.id])):
            total -= points[f"test_{q.id}"]
    return total


_OWN_STYLE_RK4 = '''def rk4_step(f, t, y, dt):
    """Classical Runge-Kutta, written with a loop over the stages."""
    y0 = np.array(y, dtype=float)
    weights, slopes = (1, 2, 2, 1), []
    for i, c in enumerate((0.0, 0.5, 0.5, 1.0)):
        shift = c * dt * slopes[-1] if slopes else 0.0
        slopes.append(np.asarray(f(t + c * dt, y0 + shift), dtype=float))
    return y0 + dt * sum(w * k for w, k in zip(weights, slopes)) / 6
'''

# An honest student's own code and words (the similarity report must not flag them).
_TYPED_RK4 = """def rk4_step(f, t, y, dt):
    state = np.array(y, dtype=float)
    a = f(t, state)
    b = f(t + 0.5 * dt, state + 0.5 * dt * a)
    c = f(t + 0.5 * dt, state + 0.5 * dt * b)
    d = f(t + dt, state + dt * c)
    return state + (a + 2.0 * b + 2.0 * c + d) * (dt / 6.0)
"""
_OWN_DERIVATION = """Chain rule: C depends on z1 only through a1, and a1 feeds y through W2.
So dC/da1 = delta2 W2^T, a sum over the outputs that the matrix product with the transpose does.
The sigmoid acts on each unit on its own and its derivative is sigma(z)(1 - sigma(z)) = a1 (1 - a1),
hence the elementwise product."""
_OWN_BASELINE = """The expectation of the score function vanishes because the probabilities of all actions
sum to one, so b times it averages to zero and the mean update stays as it was. What changes is the
noise: with R - b only the better than average episodes push their actions up, and the spread of the
estimate is much smaller."""
_OTHER_DERIVATION = """z1 -> a1 -> y -> C. Backwards: dC/dy = y - target, through y = a1 W2 + b2
this gives delta2 @ W2.T for a1, and a1 = 1 / (1 + exp(-z1)) has the derivative a1 - a1**2, applied
unit by unit."""
_OTHER_BASELINE = "Subtracting b leaves the mean of the update unchanged and lowers its variance."

_RK4_FIXED_TIME = """def rk4_step(f, t, y, dt):
    y = np.asarray(y, dtype=float)
    k1 = f(t, y)
    k2 = f(t, y + dt / 2 * k1)
    k3 = f(t, y + dt / 2 * k2)
    k4 = f(t, y + dt * k3)
    return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
"""

_RK4_IN_PLACE = """def rk4_step(f, t, y, dt):
    k1 = f(t, y)
    k2 = f(t + dt / 2, y + dt / 2 * k1)
    k3 = f(t + dt / 2, y + dt / 2 * k2)
    k4 = f(t + dt, y + dt * k3)
    y += dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y
"""

# A VARIANT of the student's own making, with answers computed from it: the grader writes the real one back.
_EDITED_VARIANT = "\nVARIANT = {k: dict(v) for k, v in VARIANT.items()}\nVARIANT['q1']['layers'] = [1, 1, 1, 1]\n"


def cases(materials: Materials) -> list[Case]:
    points = materials.test_points()
    total = sum(points.values())
    secret = course_secret()
    a = materials.assignment

    def lose(*grade_ids: str) -> float:
        return total - sum(points[g] for g in grade_ids)

    def writer(
        replacements: Callable[[str], dict[str, str]] | dict[str, str] | None,
    ) -> Callable[[Path, Materials], None]:
        """The reference with some cells replaced; ``replacements(student)`` where they depend on the student."""

        def write(directory: Path, m: Materials) -> None:
            student = directory.parent.name
            cells = replacements(student) if callable(replacements) else replacements
            write_notebook(m.with_solutions(cells) if cells else m.reference(), directory, m.notebook)

        return write

    def blank(directory: Path, m: Materials) -> None:
        write_notebook(m.blank(), directory, m.notebook)

    def own_typed(student: str) -> dict[str, str]:
        own = {"rk4_function": _TYPED_RK4, "derivation_answer": _OWN_DERIVATION, "baseline_answer": _OWN_BASELINE}
        return typed_answers(exam_variant(secret, student)) | own

    def copied(student: str) -> dict[str, str]:
        return typed_answers(exam_variant(secret, NEIGHBOUR))

    def edited_variant(student: str) -> dict[str, str]:
        return {"answer_q1": _EDITED_VARIANT + reference_cell(materials, "answer_q1")}

    copier_points = points_for(exam_variant(secret, NEIGHBOUR), exam_variant(secret, "copier_exam"), points)
    fake = {"q1": {"layers": [1, 1, 1, 1]}}
    edited_points = total - points["test_q1"] * (
        not QUESTIONS[0].matches(exam_variant(secret, "attack_exam_edited_variant")["q1"], QUESTIONS[0].key(fake["q1"]))
    )
    rows: list[tuple[str, str, str, Callable[[Path, Materials], None], float]] = [
        (
            "ref_solution",
            "reference",
            "the instructor's reference: every answer computed from VARIANT",
            writer(None),
            total,
        ),
        ("blank_release", "blank", "the release notebook, submitted unchanged", blank, 0.0),
        (
            "honest_exam_typed_answers",
            "honest",
            "every answer typed in as a number, right for the student's own variant (another variant than the "
            "reference's): every point",
            writer(own_typed),
            total,
        ),
        (
            "honest_exam_own_style",
            "honest",
            "answers computed as the reference does, its own RK4 (a loop over the stages) and its own words: every "
            "point",
            writer(
                {
                    "rk4_function": _OWN_STYLE_RK4,
                    "derivation_answer": _OTHER_DERIVATION,
                    "baseline_answer": _OTHER_BASELINE,
                }
            ),
            total,
        ),
        (
            "mistake_exam_no_biases",
            "mistake",
            "q1 counts the weights and forgets the biases",
            writer(
                {
                    "answer_q1": "layers = VARIANT['q1']['layers']\n"
                    "q1_parameters = sum(a * b for a, b in zip(layers[:-1], layers[1:]))\n"
                }
            ),
            lose("test_q1"),
        ),
        (
            "mistake_exam_sigmoid_derivative",
            "mistake",
            "q3 forgets the sigmoid's derivative f (1 - f)",
            writer(
                {
                    "answer_q3": "n = VARIANT['q3']\nf = 1 / (1 + math.exp(-(n['w'] * n['x'] + n['b'])))\n"
                    "q3_gradient = (f - n['y']) * n['x']\n"
                }
            ),
            lose("test_q3"),
        ),
        (
            "mistake_exam_rk4_time",
            "mistake",
            "rk4_step evaluates every stage at time t (wrong for a driven system)",
            writer({"rk4_function": _RK4_FIXED_TIME}),
            lose("test_rk4_function"),
        ),
        (
            "mistake_exam_rk4_in_place",
            "mistake",
            "rk4_step changes the y it is given (y += ...)",
            writer({"rk4_function": _RK4_IN_PLACE}),
            lose("test_rk4_function"),
        ),
        (
            "copier_exam",
            "mistake",
            f"copied {NEIGHBOUR}'s answers as numbers: wrong for the copier's own variant (flagged by the "
            "similarity report)",
            writer(copied),
            copier_points,
        ),
        (
            "attack_exam_edited_variant",
            "attack",
            "overwrites VARIANT with numbers of its own making and answers q1 for them: the grader's variant counts",
            writer(edited_variant),
            edited_points,
        ),
    ]
    exam_cases = [
        Case(student, a, kind, text, write, expected, quick=student in QUICK)
        for student, kind, text, write, expected in rows
    ]
    # Handed in through the course exchange after the common end (see mlphys.demo.timed).
    exam_cases += [
        Case(
            "late_exam",
            a,
            "mistake",
            "the reference's answers, received after the deadline: 0, with the reason",
            writer(None),
            0.0,
            quick=False,
            late=True,
        ),
        Case(
            "late_exam_forged_time",
            a,
            "attack",
            "received after the deadline; its timestamp.txt, folder name and file times claim it was on time: "
            "still late, 0",
            writer(None),
            0.0,
            quick=True,
            late=True,
            forges_time=True,
        ),
        Case(
            "extension_exam",
            a,
            "honest",
            "30 minutes of extra time in exams.toml; received after the common end, before its own: every point",
            writer(None),
            total,
            quick=True,
            late=True,
            extra_minutes=30,
        ),
    ]
    # The attack catalogue, in the full demo only: the quick demo shows it on 01, through the same engine.
    return exam_cases + [dataclasses.replace(case, quick=False) for case in attacks.cases(materials)]
