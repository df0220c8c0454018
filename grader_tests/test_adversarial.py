"""Hostile submissions (``mlphys.demo.attacks``) graded by plain nbgrader with the course's config.

The cohort is graded once per session by the shared ``graded`` fixture in ``conftest.py``.

What every attack must not achieve:

- more points than an honest grader gives (exactly those points where determinable);
- a change to anyone else's grade (the reference keeps full marks, the blank release 0);
- hidden-test source, gradebook content or the grader's environment in any autograded notebook or
  feedback page;
- a change to the gradebook, or a file outside the sandbox (course root, /tmp);
- a process that outlives the grading run;
- an unfinished run: every student has an autograded notebook or an explanation in the log.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import ASSIGNMENT, REPO, GradedCohort
from mlphys.demo import attacks
from mlphys.demo.case import Materials
from mlphys.grading import sandbox

NOTEBOOK = "xor_nets"

# A secret in the grader's environment.  Set at import (collection), i.e. before the session's
# autograde subprocess starts, which inherits it.  No student may ever print it.
GRADER_SECRET = "mlphys-grader-secret-" + uuid.uuid4().hex
os.environ["MLPHYS_GRADER_SECRET"] = GRADER_SECRET

pytestmark = pytest.mark.skipif(sandbox.bwrap_available() is not None, reason="no bubblewrap here")


@pytest.fixture(scope="session")
def cohort(graded: GradedCohort) -> GradedCohort:
    return graded


# --------------------------------------------------------------------------------------------------
# Helpers


def _materials(cohort: GradedCohort) -> Materials:
    return Materials(cohort.root, ASSIGNMENT, NOTEBOOK)


def _full_points(cohort: GradedCohort) -> float:
    return attacks.full_points(_materials(cohort))


def _attack_students(cohort: GradedCohort) -> list[str]:
    return [c.student for c in cohort.cases if c.kind == "attack"]


def _attack_names() -> list[str]:
    """Ids for parametrisation, known at collection (building cases reads only the source notebook)."""
    return [c.student.removeprefix("attack_") for c in attacks.cases(Materials(REPO, ASSIGNMENT, NOTEBOOK))]


ATTACKS = _attack_names()


def _outputs_text(path: Path) -> str:
    nb = json.loads(path.read_text(errors="replace"))
    return json.dumps([c.get("outputs", []) for c in nb["cells"]])


# --------------------------------------------------------------------------------------------------
# Scores


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_gains_no_points(cohort: GradedCohort, name: str) -> None:
    student = f"attack_{name}"
    case = cohort.case(student)
    score = cohort.scores.get(student, 0.0)
    if case.expected_points is None:
        assert score == 0.0, case.description
    else:
        assert score == case.expected_points, f"{case.description}: got {score}, expected {case.expected_points}"


def test_honest_students_keep_their_grades(cohort: GradedCohort) -> None:
    assert cohort.scores["ref_solution"] == _full_points(cohort) > 0
    assert cohort.scores["blank_release"] == 0.0


def test_no_score_exceeds_the_assignment(cohort: GradedCohort) -> None:
    full = _full_points(cohort)
    assert all(score <= full for score in cohort.scores.values()), cohort.scores


def test_every_attack_ran_to_an_end(cohort: GradedCohort) -> None:
    """Every submission has an autograded notebook, or the log says why not."""
    for student in _attack_students(cohort):
        if cohort.autograded_notebook(student).exists():
            continue
        log = cohort.autograde_log
        assert f"for student '{student}'" in log or "No notebooks found" in log, student


def test_reference_and_blank_graded_without_errors(cohort: GradedCohort) -> None:
    for student in ("ref_solution", "blank_release"):
        assert cohort.autograded_notebook(student).exists()
        assert f"for student '{student}'" not in cohort.autograde_log


# --------------------------------------------------------------------------------------------------
# Secrets


def test_no_hidden_test_source_anywhere(cohort: GradedCohort) -> None:
    assert cohort.hidden_test_leaks() == {}


def test_no_gradebook_or_grader_environment_in_outputs(cohort: GradedCohort) -> None:
    """Outputs (not the student's own sources, which may name these things) never show secrets."""
    forbidden = {
        GRADER_SECRET: "the grader's environment (MLPHYS_GRADER_SECRET)",
        "NBGRADER_EXECUTION=": "the grader's environment (NBGRADER_EXECUTION)",
        "SQLite format 3": "the gradebook's bytes",
        "CREATE TABLE assignment": "the gradebook's schema",
        "BEGIN HIDDEN TESTS": "the hidden-test marker of the source notebook",
        "MLPHYS_NET_OPEN ": "a network connection",
    }
    problems = []
    for path in sorted((cohort.root / "autograded").rglob("*.ipynb")):
        text = _outputs_text(path)
        for needle, what in forbidden.items():
            if needle in text:
                problems.append(f"{path.relative_to(cohort.root)} shows {what}")
    for path in sorted((cohort.root / "feedback").rglob("*.html")):
        if GRADER_SECRET in path.read_text(errors="replace"):
            problems.append(f"{path.relative_to(cohort.root)} shows the grader's environment")
    assert not problems, "\n".join(problems)


def test_feedback_has_no_student_script(cohort: GradedCohort) -> None:
    """Student HTML/JS output must not run in the feedback page (or the formgrader)."""
    path = cohort.feedback_html("attack_html_script_output")
    assert path.exists(), "the attack's feedback page was not written"
    text = path.read_text(errors="replace")
    pattern = r"<script>\s*document\.title\s*=\s*\"mlphys-xss-marker\""
    assert not re.search(pattern, text), "student <script> in feedback"


# --------------------------------------------------------------------------------------------------
# Side effects


def test_gradebook_untouched(cohort: GradedCohort, course: dict[str, GradedCohort]) -> None:
    con = sqlite3.connect(cohort.root / "gradebook.db")
    try:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert attacks.GRADEBOOK_CANARY_TABLE not in tables
        students = {row[0] for row in con.execute("SELECT id FROM student")}
        known = {c.student for graded in course.values() for c in graded.cases}
        assert students <= known, students - known
        bad = list(
            con.execute(
                "SELECT g.id, g.auto_score, g.manual_score, c.max_score FROM grade g JOIN grade_cells c "
                "ON g.cell_id = c.id WHERE g.auto_score > c.max_score OR g.manual_score IS NOT NULL"
            )
        )
        assert not bad, bad
    finally:
        con.close()


def test_no_files_outside_the_sandbox(cohort: GradedCohort) -> None:
    name = attacks.pwned_name(cohort.root)
    candidates = [
        cohort.root / name,
        Path("/tmp") / name,
        Path("/var/tmp") / name,
        Path.home() / name,
        cohort.root.parent / name,
        cohort.root / "submitted" / name,
    ]
    found = [str(p) for p in candidates if os.path.lexists(p)]
    found += [str(p) for p in cohort.root.rglob(name + "*") if not {"quarantine", "submitted"} & set(p.parts)]
    assert not found, f"files created outside the sandbox: {found}"


def test_no_process_survives(cohort: GradedCohort) -> None:
    marker = attacks.process_marker(cohort.root)
    result = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True)
    survivors = [line for line in result.stdout.splitlines() if "pgrep" not in line]
    assert not survivors, survivors


def test_no_sandbox_left_behind(cohort: GradedCohort) -> None:
    leftovers = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("mlphys-grade-*") if p.is_dir()]
    # Other sessions may be grading concurrently; only fail for stages that are not in use.
    stale = [p for p in leftovers if not any((p / "run").glob("kernel*"))]
    assert not stale, stale


def test_disk_use_is_bounded(cohort: GradedCohort) -> None:
    path = cohort.autograded_notebook("attack_disk_fill")
    assert path.exists()
    found = re.findall(re.escape(attacks.DISK_PREFIX) + r"(\d+)", _outputs_text(path))
    assert found, "the attack's progress marker is missing from its outputs: it did not run as intended"
    allocated = int(found[-1])
    assert allocated <= 1024, f"a student wrote {allocated} MB to the grading host's disk"


def test_flooding_output_is_bounded(cohort: GradedCohort) -> None:
    for student in ("attack_print_50mb", "attack_print_forever"):
        path = cohort.autograded_notebook(student)
        assert path.exists(), student
        assert path.stat().st_size < 20_000_000, (student, path.stat().st_size)


def test_quarantine_keeps_links_out(cohort: GradedCohort) -> None:
    for student in ("attack_symlinks_beside_notebook", "attack_notebook_symlink"):
        autograded = cohort.root / "autograded" / student / ASSIGNMENT
        assert autograded.is_dir(), f"{student} was not autograded at all"
        links = [p for p in autograded.rglob("*") if p.is_symlink()]
        assert not links, links
    # Links beside the notebook are moved out and kept; a notebook that is a link is refused in place.
    student = "attack_symlinks_beside_notebook"
    kept = [p for p in (cohort.root / "quarantine").rglob("*") if p.is_symlink() and student in p.parts]
    assert kept, f"the links of {student} were not kept in quarantine/"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("memory_12gb", "memory limit"),
        ("infinite_loop", "time limit"),
        ("bad_json", "not a valid Jupyter notebook"),
        ("notebook_symlink", "symbolic link"),
    ],
)
def test_stopped_students_are_told_why(cohort: GradedCohort, name: str, words: str) -> None:
    text = cohort.autograded_notebook(f"attack_{name}").read_text()
    assert words in text
