"""``mlphys autograde``: several students at once, with the results of one ``nbgrader autograde``.

Each test grades a small cohort of ``01_xor_nets`` in a course of its own (the session's ``course`` fixture is
itself graded by ``mlphys autograde``, through ``conftest.grade_cohort``).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import typing as t
from pathlib import Path

import nbformat
import pytest

from conftest import REPO, TEST_LIMITS, run_nbgrader
from mlphys.demo.case import Case, Materials
from mlphys.demo.cohort import cohort, write_cohort
from mlphys.grading import parallel, sandbox
from mlphys.grading.progress import Progress

ASSIGNMENT, NOTEBOOK = "01_xor_nets", "xor_nets"
pytestmark = pytest.mark.skipif(sandbox.bwrap_available() is not None, reason="no bubblewrap here")


def small_course(root: Path, students: list[str]) -> dict[str, Case]:
    """A course with only ``01_xor_nets`` and these students of its demo cohort submitted."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "source" / ASSIGNMENT, root / "source" / ASSIGNMENT)
    (root / "nbgrader_config.py").write_text((REPO / "nbgrader_config.py").read_text() + TEST_LIMITS)
    generated = run_nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    assert generated.returncode == 0, generated.stderr[-3000:]
    cases = {c.student: c for c in cohort(root, ASSIGNMENT) if c.student in students}
    assert set(cases) == set(students)
    write_cohort(root, list(cases.values()))
    return cases


def gradebook_state(root: Path) -> dict[str, object]:
    """Everything autograde writes to the gradebook, by student and cell (no ids, no times)."""
    con = sqlite3.connect(root / "gradebook.db")
    try:
        grades = sorted(
            con.execute(
                "SELECT sa.student_id, g.cell_id, g.auto_score, g.manual_score, g.needs_manual_grade FROM grade g "
                "JOIN submitted_notebook sn ON g.notebook_id = sn.id "
                "JOIN submitted_assignment sa ON sn.assignment_id = sa.id"
            )
        )
        comments = sorted(
            con.execute(
                "SELECT sa.student_id, c.cell_id, c.auto_comment FROM comment c JOIN submitted_notebook sn "
                "ON c.notebook_id = sn.id JOIN submitted_assignment sa ON sn.assignment_id = sa.id"
            )
        )
        records = sorted(con.execute("SELECT assignment, notebook, student, key, data FROM mlphys_record"))
    finally:
        con.close()
    return {"grades": grades, "comments": comments, "records": records}


def outputs_by_student(root: Path, folder: str, pattern: str) -> dict[str, str]:
    """The files autograde or feedback wrote, with the course's own path and sandbox folder names taken out."""
    return {
        str(p.relative_to(root / folder)): re.sub(
            r"mlphys-grade-\w+", "SANDBOX", p.read_text(errors="replace").replace(str(root), "COURSE")
        )
        for p in sorted((root / folder).rglob(pattern))
    }


def log_lines(text: str, root: Path) -> list[str]:
    return [line.replace(str(root), "COURSE") for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------------------------


def test_parallel_autograde_matches_serial(tmp_path: Path) -> None:
    """The same cohort graded by nbgrader (serial) and by mlphys autograde on 2 workers: same grades, comments,
    records, autograded notebooks, feedback pages, kernel logs and autograde log."""
    students = ["ref_solution", "blank_release", "mistake_sigmoid_sign", "mistake_layer_transposed"]
    students += ["attack_eq_always_true", "attack_fake_reply_string"]  # deterministic ones (a dying kernel races)
    serial_root = tmp_path / "serial"
    small_course(serial_root, students)
    parallel_root = tmp_path / "parallel"
    shutil.copytree(serial_root, parallel_root, symlinks=True)  # the very same submissions and gradebook

    serial = run_nbgrader(serial_root, "autograde", ASSIGNMENT, "--force")
    log = io.StringIO()
    results = parallel.autograde(parallel_root, ASSIGNMENT, nbgrader_args=["--force"], workers=2, out=log)
    assert [r.student for r in results] == sorted(students)
    assert not [r for r in results if r.failed], [(r.student, r.problem) for r in results]
    for root in (serial_root, parallel_root):
        run_nbgrader(root, "generate_feedback", ASSIGNMENT, "--force")

    assert gradebook_state(parallel_root) == gradebook_state(serial_root)
    for folder, pattern in (("autograded", "*.ipynb"), ("feedback", "*.html"), ("logs", "*.log")):
        found = outputs_by_student(parallel_root, folder, pattern)
        expected = outputs_by_student(serial_root, folder, pattern)
        assert found.keys() == expected.keys() and found, folder
        for name, text in found.items():
            assert text == expected[name], name
    assert log_lines(log.getvalue(), parallel_root) == log_lines(serial.stdout + serial.stderr, serial_root)


def test_a_hanging_student_holds_up_no_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A student whose grading runs past its time limit is stopped and cleaned up; the others are graded meanwhile."""
    cases = small_course(tmp_path / "course", ["ref_solution", "blank_release", "attack_infinite_loop"])
    staging = Path(tempfile.mkdtemp(prefix="mlp-", dir="/tmp"))  # sandboxes of this run only (a short path: sockets)
    monkeypatch.setenv("TMPDIR", str(staging))
    started = time.monotonic()
    results = {
        r.student: r
        for r in parallel.autograde(tmp_path / "course", ASSIGNMENT, workers=2, timeout=12, out=io.StringIO())
    }
    hang = results["attack_infinite_loop"]
    assert hang.seconds >= 12
    if hang.problem is not None:  # stopped: nbgrader's own Ctrl-C handling removed the half-graded result
        assert "time limit of 12 s" in hang.problem and "Canceled" in hang.log, hang.log[-3000:]
        half_graded = tmp_path / "course" / "autograded" / "attack_infinite_loop" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        assert not half_graded.exists(), hang.log[-3000:]
    else:  # Ctrl-C came as it finished (its kernel's own limits had stopped the loop): a complete result stands
        assert "Setting destination file permissions" in hang.log, hang.log[-3000:]
    assert list(staging.glob("mlphys-grade-*")) == []
    staging.rmdir()
    for student in ("ref_solution", "blank_release"):
        assert not results[student].failed, results[student].log[-2000:]
        assert results[student].seconds < time.monotonic() - started
    scores = exported_scores(tmp_path / "course")
    assert scores["ref_solution"] == cases["ref_solution"].expected_points > 0
    assert scores["blank_release"] == 0.0


def exported_scores(root: Path) -> dict[str, float]:
    exported = run_nbgrader(root, "export")
    assert exported.returncode == 0, exported.stderr[-2000:]
    import csv

    with open(root / "grades.csv", newline="") as handle:
        return {row["student_id"]: float(row["score"]) for row in csv.DictReader(handle)}


def test_grader_memory_is_bounded_per_student(tmp_path: Path) -> None:
    """A submission whose reply makes the grader allocate a few hundred MB: under a bound, only that student's
    grading fails, with a reason the student can read; everyone else's grade is unchanged."""
    root = tmp_path / "course"
    cases = small_course(root, ["ref_solution"])
    materials = Materials(root, ASSIGNMENT, NOTEBOOK)
    bomb = materials.reference()
    # Valid for the wire (a plain float64 array under its size limit), but 80 MB to receive, decode and check.
    cell = next(c for c in bomb.cells if c.cell_type == "code" and "def sigmoid(" in c.source)
    cell.source += "\n\ndef sigmoid(z):\n    import numpy\n    return numpy.ones(10_000_000)\n"
    folder = root / "submitted" / "grader_memory_bomb" / ASSIGNMENT
    folder.mkdir(parents=True)
    nbformat.write(bomb, folder / f"{NOTEBOOK}.ipynb")

    (unbounded,) = parallel.autograde(root, ASSIGNMENT, students=["ref_solution"], memory_limit_mb=0, out=io.StringIO())
    assert unbounded.peak_memory_mb is not None
    bound = int(unbounded.peak_memory_mb) + 100  # room for an honest submission, not for the bomb's reply
    results = {
        r.student: r
        for r in parallel.autograde(
            root, ASSIGNMENT, nbgrader_args=["--force"], workers=2, memory_limit_mb=bound, out=io.StringIO()
        )
    }
    assert not results["ref_solution"].failed
    assert results["grader_memory_bomb"].peak_memory_mb is not None
    assert results["grader_memory_bomb"].peak_memory_mb <= bound
    told = (root / "autograded" / "grader_memory_bomb" / ASSIGNMENT / f"{NOTEBOOK}.ipynb").read_text()
    assert "needed more memory than the grader allows one submission" in told
    scores = exported_scores(root)
    assert scores["ref_solution"] == cases["ref_solution"].expected_points
    assert scores["grader_memory_bomb"] < scores["ref_solution"]


WRITER = textwrap.dedent(
    """
    import sys
    from nbgrader.api import Gradebook
    from mlphys.grading import records
    url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    sys.stdin.readline()  # the go: another process holds the lock by then
    for k in range(count):
        with Gradebook(url) as gb:
            gb.update_or_create_student(f"{name}-{k}")
            records.replace_records(gb, "a", "nb", f"{name}-{k}", {"k": k})
    """
)
HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.execute("COMMIT")
    """
)


def test_sqlite_gradebook_keeps_every_write_of_concurrent_graders(tmp_path: Path) -> None:
    """Four writers at once, after another process took the lock for longer than SQLite's default wait (5 s):
    every write lands (with the URL of ``nbgrader_config.py`` as it is, the writers fail: "database is locked")."""
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.db_url = 'sqlite:///gradebook.db'\n"
    )
    path = tmp_path / "gradebook.db"
    url = parallel.prepare_gradebook(tmp_path)
    # The course's own gradebook, wherever a worker runs, and a wait for the lock instead of "database is locked".
    assert url == f"sqlite:///{path.resolve()}?timeout={parallel.SQLITE_BUSY_TIMEOUT_S}"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"w{i}", "20"],
            cwd=tmp_path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    assert all(w.stdout is not None and w.stdout.readline().strip() == "ready" for w in writers)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "8"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    for writer in writers:
        t.cast(t.IO[str], writer.stdin).write("go\n")
        t.cast(t.IO[str], writer.stdin).flush()
    errors = [w.communicate(timeout=300)[1] for w in writers]
    assert holder.wait(timeout=60) == 0
    assert [w.returncode for w in writers] == [0] * 4, "\n".join(e[-1500:] for e in errors)
    con = sqlite3.connect(path)
    try:
        students = {row[0] for row in con.execute("SELECT id FROM student")}
        kept = {row[0] for row in con.execute("SELECT student FROM mlphys_record")}
    finally:
        con.close()
    expected = {f"w{i}-{k}" for i in range(4) for k in range(20)}
    assert students == expected and kept == expected


def test_dask_cluster_grades_like_the_local_pool(tmp_path: Path) -> None:
    """The same per-student task on a dask.distributed LocalCluster of two worker processes."""
    import dask
    from distributed import LocalCluster

    cases = small_course(tmp_path / "course", ["ref_solution", "blank_release", "mistake_sigmoid_sign"])
    # Each task starts one process per student, which a daemonic worker process may not.
    with (
        dask.config.set({"distributed.worker.daemon": False}),
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
    ):
        results = parallel.autograde(
            tmp_path / "course", ASSIGNMENT, scheduler=cluster.scheduler_address, out=io.StringIO()
        )
    assert not [r for r in results if r.failed], [(r.student, r.problem, r.log[-1500:]) for r in results]
    scores = exported_scores(tmp_path / "course")
    assert scores == {student: case.expected_points for student, case in cases.items()}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_done_failures_and_time_on_a_terminal() -> None:
    screen = Terminal()
    with Progress(3, "students", stream=screen) as progress:
        progress.done()
        progress.done(failed=True)
    shown = screen.getvalue()
    assert "2/3" in shown and "failed=1" in shown
    assert "<" in shown  # elapsed<remaining


def test_progress_is_quiet_without_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(3, "students", stream=stream) as progress:
        progress.done(failed=True)
    assert stream.getvalue() == ""


def test_find_students_follows_nbgrader(tmp_path: Path) -> None:
    root = tmp_path / "course"
    for student in ("b", "a", "c[1]"):
        (root / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
    (root / "submitted" / "no_submission").mkdir()
    (root / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.student_id_exclude = 'c[1]'\n")
    assert parallel.find_students(root, ASSIGNMENT) == ["a", "b"]
    assert parallel.find_students(root, ASSIGNMENT, ["a*"]) == ["a"]
    assert json.loads(json.dumps(parallel.StudentJob(str(root), ASSIGNMENT, "c[1]").argv()))[3] == "c[[]1]"


def test_a_grader_reading_the_gradebook_holds_up_no_writer(tmp_path: Path) -> None:
    """A grader in the middle of a read (say, while its student's kernel runs) does not make another grader's
    write wait: the gradebook is in write-ahead-log mode (in SQLite's default mode the write below fails after
    its one-second wait with "database is locked")."""
    (tmp_path / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.db_url = 'sqlite:///gradebook.db'\n"
    )
    parallel.prepare_gradebook(tmp_path)
    path = tmp_path / "gradebook.db"
    reader = sqlite3.connect(path, isolation_level=None)
    writer = sqlite3.connect(path, timeout=1)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM student").fetchone() == (0,)
        writer.execute("INSERT INTO student (id) VALUES ('written_while_read')")
        writer.commit()
        assert reader.execute("SELECT count(*) FROM student").fetchone() == (0,)  # its snapshot, unchanged
        reader.execute("COMMIT")
        assert reader.execute("SELECT id FROM student").fetchall() == [("written_while_read",)]
    finally:
        reader.close()
        writer.close()
