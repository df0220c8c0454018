"""A PostgreSQL gradebook, for real: a challenge cohort graded into it, its leaderboard rebuilt from it.

A throwaway PostgreSQL server (``postgres.py``; Debian's server, which ``scripts/setup.sh`` installs) runs on
loopback for this module.  A fresh course whose ``nbgrader_config.py`` sets ``c.CourseDirectory.db_url`` to a
database on it grades the honest part of the challenge's demo cohort with plain ``nbgrader autograde``; the
grades, verdicts and challenge records must be those of the session's SQLite course, and ``mlphys
leaderboard`` must build the boards from PostgreSQL alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from conftest import REPO, TEST_LIMITS, GradedCohort, grade_cohort, run_nbgrader
from mlphys.assignments.autoencoder_challenge.challenge import CHALLENGE
from mlphys.grading import records
from mlphys.leaderboard.pseudonyms import course_salt, shown_names
from postgres import PostgresServer, postgres_server

ASSIGNMENT = "03_autoencoder_challenge"  # a challenge: scores, records and boards all live in the gradebook
HONEST = ("reference", "blank", "mistake", "honest")  # the attacks' exact points are test_challenge's business


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def make_postgres_course(root: Path, db_url: str, assignment: str) -> Path:
    """A fresh course like conftest's ``make_course``, whose gradebook is ``db_url`` from the first command on."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "source" / assignment, root / "source" / assignment)
    config = (REPO / "nbgrader_config.py").read_text() + TEST_LIMITS + f"\nc.CourseDirectory.db_url = {db_url!r}\n"
    (root / "nbgrader_config.py").write_text(config)
    generated = run_nbgrader(root, "generate_assignment", assignment, "--force")
    assert generated.returncode == 0, generated.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def pg_cohort(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> GradedCohort:
    db_url = postgres.create_database("challenge")
    root = make_postgres_course(tmp_path_factory.mktemp("pg") / "course", db_url, ASSIGNMENT)
    return grade_cohort(root, ASSIGNMENT, kinds=HONEST)


@pytest.fixture(scope="module")
def sqlite_cohort(course: dict[str, GradedCohort]) -> GradedCohort:
    return course[ASSIGNMENT]


PREFIX = "c.CourseDirectory.db_url ="


def gradebook_url(cohort: GradedCohort) -> str:
    text = (cohort.root / "nbgrader_config.py").read_text()
    urls = [line.split("=", 1)[1].strip().strip("'\"") for line in text.splitlines() if line.startswith(PREFIX)]
    url = urls[-1]  # the last assignment wins, as when nbgrader runs the file
    return url if not url.startswith("sqlite:///") else f"sqlite:///{cohort.root / url[len('sqlite:///') :]}"


def challenge_records(cohort: GradedCohort, students: set[str]) -> dict[str, dict]:
    """Each student's challenge record as the gradebook holds it (pictures aside: the costs say enough)."""
    with Gradebook(gradebook_url(cohort)) as gb:
        stored = records.load_records(gb, cohort.assignment, CHALLENGE.key)
    return {
        student: {
            **record,
            "entries": [{k: v for k, v in entry.items() if k != "picture"} for entry in record["entries"]],
        }
        for (student, _notebook), (record, _when) in stored.items()
        if student in students
    }


def test_the_gradebook_is_in_postgresql_and_nowhere_else(pg_cohort: GradedCohort) -> None:
    url = gradebook_url(pg_cohort)
    assert url.startswith("postgresql+psycopg://")
    assert not list(pg_cohort.root.glob("*.db")), "a SQLite gradebook was made beside the PostgreSQL one"
    with Gradebook(url) as gb:
        graded = {s.student_id: s.score for s in gb.assignment_submissions(ASSIGNMENT)}
    assert graded == pg_cohort.scores  # what `nbgrader export` read came from PostgreSQL
    assert set(graded) == {c.student for c in pg_cohort.cases}


def test_every_case_gets_its_expected_points_from_a_postgresql_gradebook(pg_cohort: GradedCohort) -> None:
    wrong = {
        c.student: (pg_cohort.scores.get(c.student), c.expected_points)
        for c in pg_cohort.cases
        if pg_cohort.scores.get(c.student) != c.expected_points
    }
    assert wrong == {}


def test_grades_verdicts_and_records_equal_those_of_the_sqlite_gradebook(
    pg_cohort: GradedCohort, sqlite_cohort: GradedCohort
) -> None:
    from test_grading import verdicts

    students = {c.student for c in pg_cohort.cases}
    assert {s: pg_cohort.scores[s] for s in students} == {s: sqlite_cohort.scores[s] for s in students}
    for student in sorted(students):
        assert verdicts(pg_cohort.autograded_notebook(student)) == verdicts(
            sqlite_cohort.autograded_notebook(student)
        ), student
    in_postgres = challenge_records(pg_cohort, students)
    assert any(e["stage"] == "scored" for record in in_postgres.values() for e in record["entries"])
    assert in_postgres == challenge_records(sqlite_cohort, students)


def test_mlphys_leaderboard_builds_the_boards_from_the_postgresql_gradebook(pg_cohort: GradedCohort) -> None:
    built = subprocess.run(
        [str(Path(sys.executable).parent / "mlphys"), "leaderboard", ASSIGNMENT, "--retrain-top", "0"],
        cwd=pg_cohort.root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    board = json.loads((pg_cohort.root / "leaderboards" / ASSIGNMENT / "leaderboard.json").read_text())
    assert board["final"] is False
    shown = sorted((track, row["name"], row["public_cost"]) for track, rows in board["boards"].items() for row in rows)
    # What the boards must show: every scored entry the grader recorded, under the student's opted-in name
    # (the gradebook has no real names here, so the id) or pseudonym.
    stored = challenge_records(pg_cohort, {c.student for c in pg_cohort.cases})
    names = shown_names(
        {s: (s if r.get("show_name") is True else None) for s, r in stored.items()},
        course_salt(os.environ["MLPHYS_CHALLENGE_SECRET"]),
    )
    expected = sorted(
        (entry["track"], names[student], entry["public_cost"])
        for student, record in stored.items()
        for entry in record["entries"]
        if entry["stage"] == "scored"
    )
    assert len({track for track, _, _ in expected}) >= 2  # the honest entrants enter more than one track
    assert shown == expected
    for rows in board["boards"].values():
        ranked = [row["public_cost"] for row in rows if row["rank"] is not None]
        assert ranked == sorted(ranked)
