"""A PostgreSQL gradebook, for real: a challenge cohort graded into it, its leaderboard rebuilt from it.

A throwaway PostgreSQL server (``postgres.py``; Debian's server, which ``scripts/setup.sh`` installs) runs on
loopback for this module.  Fresh courses whose ``nbgrader_config.py`` sets ``c.CourseDirectory.db_url`` to a
database on it grade the challenge's demo cohort three ways: plain ``nbgrader autograde`` (one student after
the other, as the formgrader does), ``mlphys autograde --workers 2`` (several writers at once) and ``mlphys
autograde --scheduler`` on a ``dask.distributed`` LocalCluster of two worker processes.  Grades, verdicts and
challenge records must be those of the session's SQLite course, and ``mlphys leaderboard`` must build the
boards from PostgreSQL alone.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from conftest import REPO, TEST_LIMITS, GradedCohort, run_nbgrader
from mlphys.assignments.autoencoder_challenge.challenge import CHALLENGE
from mlphys.demo.cohort import cohort, write_cohort
from mlphys.grading import parallel, records
from mlphys.leaderboard.pseudonyms import course_salt, shown_names
from postgres import PostgresServer, postgres_server

ASSIGNMENT = "03_autoencoder_challenge"  # a challenge: scores, records and boards all live in the gradebook
HONEST = ("reference", "blank", "mistake", "honest")  # the attacks' exact points are test_challenge's business
# The parallel and Dask runs grade part of it (CI time): scored entries on MEDIUM and HARD tracks, a refused
# entry, no entry; four students on two workers, so writers overlap.
PARALLEL_STUDENTS = {"ref_solution", "hard_entrant", "wrong_shape", "blank_release"}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def make_postgres_course(root: Path, db_url: str, assignment: str) -> Path:
    """A fresh course like conftest's ``make_course``, whose gradebook is ``db_url`` from the first command on."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "source" / assignment, root / "source" / assignment)
    config = (REPO / "nbgrader_config.py").read_text() + TEST_LIMITS + f"\nc.CourseDirectory.db_url = {db_url!r}\n"
    # One BLAS/torch thread per kernel, as `mlphys autograde` sets when it grades several students at once (the
    # session's course, through conftest): a challenge's costs are computed by torch in the kernel and differ
    # in their last bits between thread counts, which would hide what this module compares.
    config += "c.SandboxedExecute.kernel_threads = 1\n"
    (root / "nbgrader_config.py").write_text(config)
    generated = run_nbgrader(root, "generate_assignment", assignment, "--force")
    assert generated.returncode == 0, generated.stderr[-3000:]
    return root


def grade_into_postgres(
    server: PostgresServer, root: Path, command: list[str], students: set[str] | None = None
) -> GradedCohort:
    """Grade the honest part of the challenge's cohort (or these students of it) into a new database with
    ``command`` (run in the course directory), then export the grades with nbgrader, as the course cycle does."""
    make_postgres_course(root, server.create_database(f"course_{secrets.token_hex(4)}"), ASSIGNMENT)
    cases = [c for c in cohort(root, ASSIGNMENT) if c.kind in HONEST and (students is None or c.student in students)]
    write_cohort(root, cases)
    bindir = str(Path(sys.executable).parent)  # nbgrader runs alembic by name
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    graded = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    assert graded.returncode == 0, graded.stdout[-3000:] + graded.stderr[-3000:]
    exported = run_nbgrader(root, "export")
    assert exported.returncode == 0, exported.stderr[-3000:]
    with open(root / "grades.csv", newline="") as handle:
        scores = {r["student_id"]: float(r["score"]) for r in csv.DictReader(handle) if r["assignment"] == ASSIGNMENT}
    return GradedCohort(root, ASSIGNMENT, cases, scores, graded.stdout + graded.stderr)


def command(program: str, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / program), *args]


@pytest.fixture(scope="module")
def pg_cohort(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> GradedCohort:
    """Plain ``nbgrader autograde``: the path the formgrader's button takes too."""
    root = tmp_path_factory.mktemp("serial") / "course"
    return grade_into_postgres(postgres, root, command("nbgrader", "autograde", ASSIGNMENT, "--force"))


@pytest.fixture(scope="module")
def sqlite_cohort(course: dict[str, GradedCohort]) -> GradedCohort:
    return course[ASSIGNMENT]


PREFIX = "c.CourseDirectory.db_url ="


def gradebook_url(graded: GradedCohort) -> str:
    text = (graded.root / "nbgrader_config.py").read_text()
    urls = [line.split("=", 1)[1].strip().strip("'\"") for line in text.splitlines() if line.startswith(PREFIX)]
    url = urls[-1]  # the last assignment wins, as when nbgrader runs the file
    return url if not url.startswith("sqlite:///") else f"sqlite:///{graded.root / url[len('sqlite:///') :]}"


def challenge_records(graded: GradedCohort, students: set[str]) -> dict[str, dict]:
    """Each student's challenge record as autograde stored it (pictures aside: the costs say enough).

    Without the results of the leaderboard's retraining check: that is a later step, which the session's
    course has been through (test_challenge's boards) by the time the comparisons run."""
    with Gradebook(gradebook_url(graded)) as gb:
        stored = records.load_records(gb, graded.assignment, CHALLENGE.key)
    return {
        student: {
            **record,
            "entries": [
                {k: v for k, v in entry.items() if k not in ("picture", "retrain")} for entry in record["entries"]
            ],
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


def assert_same_grading(graded: GradedCohort, reference: GradedCohort) -> None:
    """Every student of ``graded`` got the grades, verdicts and challenge records ``reference`` gave them."""
    from test_grading import verdicts

    students = {c.student for c in graded.cases}
    assert students and set(graded.scores) == students
    assert graded.scores == {s: reference.scores[s] for s in students}
    for student in sorted(students):
        assert verdicts(graded.autograded_notebook(student)) == verdicts(reference.autograded_notebook(student)), (
            student
        )
    kept = challenge_records(graded, students)
    assert any(e["stage"] == "scored" for record in kept.values() for e in record["entries"])
    assert kept == challenge_records(reference, students)


def test_grades_verdicts_and_records_equal_those_of_the_sqlite_gradebook(
    pg_cohort: GradedCohort, sqlite_cohort: GradedCohort
) -> None:
    assert_same_grading(pg_cohort, sqlite_cohort)


def test_a_parallel_run_grades_into_postgresql_as_nbgrader_grades_into_sqlite(
    postgres: PostgresServer, sqlite_cohort: GradedCohort, tmp_path: Path
) -> None:
    """Two students at once, each writing grades and records to the same PostgreSQL database."""
    graded = grade_into_postgres(
        postgres,
        tmp_path / "course",
        command("mlphys", "autograde", ASSIGNMENT, "--workers", "2", "--force"),
        students=PARALLEL_STUDENTS,
    )
    assert_same_grading(graded, sqlite_cohort)


def test_a_dask_cluster_grades_into_postgresql_as_nbgrader_grades_into_sqlite(
    postgres: PostgresServer, sqlite_cohort: GradedCohort, tmp_path: Path
) -> None:
    """A LocalCluster of two worker processes: what a Slurm cluster of dask-jobqueue does with the gradebook
    on a database server and the course directory on shared storage."""
    import dask
    from distributed import LocalCluster

    # Each task starts one process per student, which a daemonic worker process may not.
    with (
        dask.config.set({"distributed.worker.daemon": False}),
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
    ):
        graded = grade_into_postgres(
            postgres,
            tmp_path / "course",
            command("mlphys", "autograde", ASSIGNMENT, "--scheduler", cluster.scheduler_address, "--force"),
            students=PARALLEL_STUDENTS,
        )
    assert_same_grading(graded, sqlite_cohort)


def test_jobs_sent_to_a_cluster_carry_no_database_password(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password written into the course's db_url stays out of the jobs that travel to a cluster's workers, which
    read the URL from the course's configuration, as nbgrader does (the test above: they find the gradebook)."""
    root = make_postgres_course(tmp_path / "course", postgres.create_database("jobs"), ASSIGNMENT)
    (root / "submitted" / "someone" / ASSIGNMENT).mkdir(parents=True)
    sent: list[parallel.StudentJob] = []

    def run_jobs(jobs: list[parallel.StudentJob], workers: int, scheduler: str | None = None) -> Iterator:
        sent.extend(jobs)
        return iter([parallel.StudentResult(job.student, "", 0.0, 0, None) for job in jobs])

    monkeypatch.setattr(parallel, "run_jobs", run_jobs)
    parallel.autograde(root, ASSIGNMENT, scheduler="tcp://127.0.0.1:1", out=io.StringIO())
    assert [job.student for job in sent] == ["someone"]
    assert postgres.password not in repr(sent[0]) and sent[0].environment is None


def test_mlphys_leaderboard_builds_the_boards_from_the_postgresql_gradebook(pg_cohort: GradedCohort) -> None:
    built = subprocess.run(
        command("mlphys", "leaderboard", ASSIGNMENT, "--retrain-top", "0"),
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
