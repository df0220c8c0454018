"""The real pipeline (plain nbgrader with the committed config) on the demo cohort."""

from __future__ import annotations

import json

import pytest

from conftest import ASSIGNMENT, REPO, GradedCohort, grade_cohort, make_course
from mlphys.demo.case import Materials
from mlphys.demo.cases_01_xor import cases as xor_cases

REPO_MATERIALS = Materials(REPO, ASSIGNMENT, "xor_nets")
MISTAKES = [c.student for c in xor_cases(REPO_MATERIALS) if c.kind == "mistake"]


def max_points() -> float:
    return sum(
        float(c.metadata["nbgrader"]["points"])
        for c in REPO_MATERIALS.source().cells
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    )


def test_reference_solution_gets_full_marks(graded: GradedCohort) -> None:
    assert graded.scores["ref_solution"] == max_points() > 0


def test_blank_release_gets_zero_and_grades_without_error(graded: GradedCohort) -> None:
    assert graded.scores["blank_release"] == 0.0
    assert graded.autograded_notebook("blank_release").exists()
    assert "for student 'blank_release'" not in graded.autograde_log


@pytest.mark.parametrize("student", MISTAKES)
def test_each_typical_mistake_loses_exactly_its_points(graded: GradedCohort, student: str) -> None:
    case = graded.case(student)
    assert graded.scores[student] == case.expected_points, case.description


def test_failures_are_explained_to_the_student(graded: GradedCohort) -> None:
    nb = json.loads(graded.autograded_notebook("blank_release").read_text())
    messages = [o["evalue"] for c in nb["cells"] for o in c.get("outputs", []) if o.get("ename") == "HiddenTestFailed"]
    assert messages and all(len(m) > 20 for m in messages)


def test_feedback_is_written_and_shows_no_hidden_test_source(graded: GradedCohort) -> None:
    assert graded.feedback_html("ref_solution").exists()
    assert graded.feedback_html("blank_release").exists()
    assert graded.hidden_test_leaks() == {}


def test_grading_the_same_cohort_twice_gives_identical_grades(graded: GradedCohort, tmp_path_factory) -> None:
    again = grade_cohort(make_course(tmp_path_factory.mktemp("again")))
    assert again.scores == graded.scores
    for case in graded.cases:
        first, second = graded.autograded_notebook(case.student), again.autograded_notebook(case.student)
        if first.exists() and second.exists():
            assert verdicts(first) == verdicts(second), case.student


def verdicts(path) -> list[tuple[str, str]]:
    nb = json.loads(path.read_text())
    return [
        (o.get("ename", o.get("name", "")), o.get("evalue", o.get("text", "")))
        for c in nb["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
        for o in c.get("outputs", [])
        if o.get("ename") in ("HiddenTestFailed", "NotGraded", "GradingStopped")
        or "Hidden tests passed" in str(o.get("text", ""))
    ]
