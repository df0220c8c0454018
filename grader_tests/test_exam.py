"""07_exam: per-student variants, answers judged in the grader against the student's own variant, delivery.

The whole exam cohort (reference, honest students with their own variants, mistakes, a copier, attacks) is
graded by the session's full demo (``test_demo.py`` checks every case came out as expected); here the parts.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import nbformat
import numpy as np
import pytest

from conftest import GradedCohort
from mlphys.assignments.exam import ASSIGNMENT
from mlphys.assignments.exam.kit import EXAM, exam_variant
from mlphys.assignments.exam.sheet import BY_ID, QUESTIONS
from mlphys.course.exam import describe_variant, my_variant
from mlphys.exam.delivery import VARIANT_FILE, release_variants, variants_dir
from mlphys.grading.variants import VARIANT_CELL, write_variant_cell

REPO = Path(__file__).resolve().parents[1]
SECRET = "a course secret"
STUDENTS = [f"student{i:02d}" for i in range(30)]


def test_a_student_always_gets_the_same_variant_and_neighbours_get_others() -> None:
    variants = [exam_variant(SECRET, s) for s in STUDENTS]
    assert exam_variant(SECRET, STUDENTS[0]) == variants[0]
    for question in QUESTIONS:
        distinct = {json.dumps(v[question.id], sort_keys=True) for v in variants}
        assert len(distinct) >= 5, f"{question.id}: 30 students share {len(distinct)} variants"
    # which option is right, and which line is wrong, differ between students
    assert len({BY_ID["q11"].key(v["q11"]) for v in variants}) >= 3
    assert len({BY_ID["q4"].key(v["q4"]) for v in variants}) >= 3


def test_without_the_secret_nobody_can_compute_a_variant() -> None:
    assert exam_variant("another course's secret", STUDENTS[0]) != exam_variant(SECRET, STUDENTS[0])
    with pytest.raises(RuntimeError, match="secret"):
        exam_variant("", STUDENTS[0])


def test_a_variant_holds_numbers_and_texts_but_no_answer() -> None:
    for student in STUDENTS[:10]:
        variant = exam_variant(SECRET, student)
        text = json.dumps(variant)
        assert "true" not in text and "false" not in text  # no truth values of the statements
        for question in QUESTIONS:
            key = question.key(variant[question.id])
            if isinstance(key, float) and round(key, 2) != key:  # a key of 0.1 may be a number of the question
                assert f"{key:.6g}" not in text and repr(key) not in text


def test_each_answer_is_right_for_its_own_variant_only_and_the_message_never_tells_the_key() -> None:
    own, neighbour = exam_variant(SECRET, "alice"), exam_variant(SECRET, "bob")
    for question in QUESTIONS:
        key = question.key(own[question.id])
        assert question.judge(own[question.id], key) is None
        if isinstance(key, float):
            assert question.judge(own[question.id], np.float32(key)) is None, "float32 answers are accepted"
        wrong = question.key(neighbour[question.id])
        problem = question.judge(own[question.id], wrong)
        if problem is not None:
            assert str(key) not in problem and (not isinstance(key, float) or f"{key:.4g}" not in problem)


@pytest.mark.parametrize(
    ("question_id", "answer", "words"),
    [
        ("q1", "12", "must be a number"),
        ("q1", float("nan"), "not finite"),
        ("q1", 12.5, "is not the number"),
        ("q6", [1.0], "must be 2 numbers"),
        ("q5", [1, 0, 1], "True or False"),
        ("q11", "z", "one of the letters"),
    ],
)
def test_answers_of_the_wrong_kind_are_explained(question_id: str, answer: object, words: str) -> None:
    question = BY_ID[question_id]
    problem = question.judge(exam_variant(SECRET, "alice")[question_id], answer)
    assert problem is not None and words in problem


def test_the_grader_writes_the_student_s_own_variant_into_the_notebook() -> None:
    nb = nbformat.read(REPO / "release" / EXAM / "exam.ipynb", 4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == VARIANT_CELL)
    assert cell.metadata["nbgrader"]["locked"], "the variant cell must be locked (nbgrader restores it)"
    cell.source = "VARIANT = {'q1': {'layers': [1, 1, 1, 1]}}  # a student's own numbers"
    write_variant_cell(nb, exam_variant(SECRET, "alice"), "alice")
    namespace: dict = {}
    exec(cell.source, namespace)
    assert namespace["VARIANT"] == exam_variant(SECRET, "alice")
    assert ASSIGNMENT.variant is exam_variant and ASSIGNMENT.needs_secret


def test_the_release_holds_no_answer_and_no_rubric() -> None:
    release = (REPO / "release" / EXAM / "exam.ipynb").read_text()
    source = nbformat.read(REPO / "source" / EXAM / "exam.ipynb", 4)
    for cell in source.cells:
        if "Model answer and rubric" in cell.source:
            assert "Model answer" not in release
    for statement, _truth in BY_ID["q5"].pool:
        assert statement[:40] not in release
    assert BY_ID["q11"].right not in release


def test_each_student_fetches_their_own_variant_file(tmp_path: Path) -> None:
    exchange = tmp_path / "exchange"
    readers = release_variants(
        exchange, "course", EXAM, ["alice", "bob"], lambda s: exam_variant(SECRET, s), lambda s: "2026-12-06 12:00"
    )
    folder = variants_dir(exchange, "course", EXAM)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o711, "others may not list the students' files"
    assert set(readers) == {"alice", "bob"}
    data = json.loads((folder / "alice.json").read_text())
    assert data["variant"] == exam_variant(SECRET, "alice") and data["deadline"] == "2026-12-06 12:00"
    # the student's side: the notebook's first cell reads the fetched file
    notebook_dir = tmp_path / "alice" / EXAM
    notebook_dir.mkdir(parents=True)
    (notebook_dir / VARIANT_FILE).write_text((folder / "alice.json").read_text())
    assert my_variant(EXAM, notebook_dir / VARIANT_FILE, show=False) == exam_variant(SECRET, "alice")
    printed = describe_variant(data["variant"], "alice", data["deadline"])
    assert "2026-12-06 12:00" in printed and "(a)" in printed and " 1  " in printed
    with pytest.raises(FileNotFoundError, match="fetch"):
        my_variant(EXAM, tmp_path / "nowhere.json")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another Unix user needs root")
def test_a_student_with_a_unix_user_alone_can_read_their_variant(tmp_path: Path) -> None:
    import pwd

    user = pwd.getpwuid(65534).pw_name  # nobody: a Unix user that exists everywhere
    readers = release_variants(tmp_path, "course", EXAM, [user], lambda s: exam_variant(SECRET, s))
    path = variants_dir(tmp_path, "course", EXAM) / f"{user}.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and os.stat(path).st_uid == 65534
    assert "only" in readers[user]


def test_release_and_fetch_through_the_local_exchange_give_each_student_their_own_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an instructor and two students do: `mlphys exam release`, then each student fetches the exam."""
    import shutil

    from nbgrader.api import Gradebook
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory

    from mlphys.exam import delivery
    from mlphys.exam.release import release_exam
    from mlphys.grading.nbgrader_api import CourseApps
    from mlphys.grading.parallel import gradebook_url

    monkeypatch.setenv("MLPHYS_CHALLENGE_SECRET", SECRET)
    course = tmp_path / "course"
    shutil.copytree(REPO / "source" / EXAM, course / "source" / EXAM)
    shutil.copy(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    apps = CourseApps(course)
    apps.generate_assignment(EXAM)
    with Gradebook(gradebook_url(apps.config, course)) as gb:
        for student in ("alice", "bob"):
            gb.add_student(student)
    readers = release_exam(course, EXAM)
    assert set(readers) == {"alice", "bob"}
    assert (course / "exchange" / "ml4physics" / "outbound" / EXAM / "exam.ipynb").is_file()

    for student in ("alice", "bob"):
        home = tmp_path / student
        home.mkdir()
        monkeypatch.setattr(delivery, "get_username", lambda student=student: student)
        coursedir = CourseDirectory(config=apps.config, root=str(home))
        coursedir.assignment_id = EXAM
        fetch = delivery.FetchWithVariant(
            coursedir=coursedir, authenticator=Authenticator(config=apps.config), config=apps.config
        )
        fetch.assignment_dir = str(home)
        fetch.start()
        fetched = home / "ml4physics" / EXAM if (home / "ml4physics").exists() else home / EXAM
        assert (fetched / "exam.ipynb").is_file()
        assert my_variant(EXAM, fetched / VARIANT_FILE, show=False) == exam_variant(SECRET, student)


def test_answers_copied_from_a_neighbour_fit_the_neighbour_s_variant_and_are_flagged() -> None:
    from mlphys.assignments.exam.neighbours import neighbour_flags

    def typed(student: str) -> dict:
        variant = exam_variant(SECRET, student)
        return {q.id: q.key(variant[q.id]) for q in QUESTIONS}

    honest = {s: typed(s) for s in ("alice", "bob", "carol")}
    assert neighbour_flags(SECRET, honest) == [], "students answering their own numbers are never flagged"
    copier = dict(honest, mallory=typed("alice"))
    flags = neighbour_flags(SECRET, copier)
    assert [student for student, _ in flags] == ["mallory"]
    assert "alice" in flags[0][1]


def test_the_formgrader_shows_the_rubric_beside_each_written_answer_and_the_feedback_does_not() -> None:
    from traitlets.config import Config

    from mlphys.grading.rubrics import RUBRIC_KEY, HideRubrics, ShowRubrics

    config = Config()
    config.CourseDirectory.root = str(REPO)
    nb = nbformat.read(REPO / "release" / EXAM / "exam.ipynb", 4)
    resources = {"nbgrader": {"assignment": EXAM, "notebook": "exam"}}
    shown, _ = ShowRubrics(config=config).preprocess(nb, resources)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") or c.metadata.get(RUBRIC_KEY) for c in shown.cells]
    for answer in ("derivation_answer", "baseline_answer"):
        position = ids.index(answer)
        rubric = shown.cells[position + 1]
        assert rubric.metadata.get(RUBRIC_KEY) == answer and "Rubric" in rubric.source
    hidden, _ = HideRubrics(config=config).preprocess(shown, resources)
    assert not any("Model answer and rubric" in c.source for c in hidden.cells)


def test_the_graded_exam_keeps_the_rubric_for_graders_and_the_variant_the_grader_wrote(
    course: dict[str, GradedCohort],
) -> None:
    cohort = course[EXAM]
    graded = cohort.autograded_notebook("honest_exam_typed_answers").read_text()
    assert "Model answer and rubric" in graded
    variant_cell = next(
        c for c in nbformat.reads(graded, 4).cells if c.metadata.get("nbgrader", {}).get("grade_id") == VARIANT_CELL
    )
    assert "written by the grader" in variant_cell.source and "honest_exam_typed_answers" in variant_cell.source
    feedback = cohort.feedback_html("honest_exam_typed_answers").read_text()
    assert "Model answer and rubric" not in feedback and "Rubric:" not in feedback


def test_the_similarity_report_of_the_exam_names_the_copier_and_no_honest_student(
    course: dict[str, GradedCohort], tmp_path: Path
) -> None:
    """`mlphys similarity 07_exam`: the copier's answers fit the neighbour's variant; the honest students, who
    share the reference's idea (and some of its code), are not flagged by the variant check."""
    import csv

    from mlphys.cli import main

    root = course[EXAM].root
    assert main(["similarity", EXAM, "--root", str(root), "--out", str(tmp_path)]) == 0
    with open(tmp_path / "extra_flags.csv", newline="") as handle:
        flagged = {row["student"] for row in csv.DictReader(handle)}
    assert flagged == {"copier_exam"}
    with open(tmp_path / "pairs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    in_flagged_pairs = {r[k] for r in rows if r["flagged"] == "yes" for k in ("student_a", "student_b")}
    assert "copier_exam" in in_flagged_pairs, "the copier kept the reference's code: alike"
    assert not in_flagged_pairs & {"honest_exam_typed_answers", "honest_exam_own_style"}


def test_the_variant_each_student_got_is_kept_with_the_grade(course: dict[str, GradedCohort]) -> None:
    from nbgrader.api import Gradebook

    from mlphys.assignments.exam.kit import VARIANT_RECORD
    from mlphys.grading import records
    from mlphys.grading.parallel import gradebook_url, read_config

    root = course[EXAM].root
    with Gradebook(gradebook_url(read_config(root), root)) as gb:
        kept = records.load_records(gb, EXAM, VARIANT_RECORD)
    secret = os.environ["MLPHYS_CHALLENGE_SECRET"]
    for student in ("ref_solution", "honest_exam_typed_answers", "copier_exam"):
        (variant, _when) = kept[(student, "exam")]
        assert variant == exam_variant(secret, student)
