"""07_exam end to end through a real JupyterHub: students with Unix users of their own, each with a server of their
own, fetching, answering and submitting through nbgrader's assignment-list endpoints, and fetching feedback.

The test (as root) starts everything itself on loopback, under one temporary folder, and removes it at the end:
two Unix users (``useradd``; removed again, also on failure); JupyterHub with PAM (each student logs in with
their own Unix password, as on a real hub: the users exist anyway, so a password is one ``chpasswd`` away, and
unlike a dummy or shared-password authenticator another student's password does not let one in; the hub runs as
root, as PAM and the spawner need) and its local process spawner (each server runs as its student's Unix user,
so file permissions are real); nbgrader's JupyterHub auth plug-in (students in the hub group
``nbgrader-<course_id>``); the course exchange outside the course directory (docs/instructors/jupyterhub.md).
The students' nbgrader configuration comes through their servers' environment (``JUPYTER_CONFIG_PATH``), not /etc.

The story: the instructor sets up the course and its schedule (the common end a few seconds after the release;
one student with an extension), runs ``mlphys exam schedule`` and ``mlphys exam release``; both students log
in, fetch the exam and see their own numbers, not the other's; each saves the reference solution and submits
after the common end: one late, one within the extension.  The instructor collects (by the exchange's receipt
time), autogrades in the sandbox, generates and releases the feedback, which each student fetches.

Needs root, ``useradd``, PAM and ``configurable-http-proxy`` (``scripts/setup.sh`` installs it with npm into the
virtual environment); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

requests = pytest.importorskip("requests")
pytest.importorskip("jupyterhub")

from hub import (  # noqa: E402  (the hub's machinery, shared with test_jupyterhub_challenge.py)
    COURSE,
    STUDENTS_CONFIG,
    Hub,
    Student,
    contents,
    course_beside_exchange,
    ok,
    unix_users,
    why_not,
)
from hub import assignment_action as hub_action  # noqa: E402
from mlphys.assignments.exam.kit import exam_variant  # noqa: E402
from mlphys.cli import main as mlphys  # noqa: E402
from mlphys.demo.case import Materials  # noqa: E402
from mlphys.exam.delivery import VARIANT_FILE, variants_dir  # noqa: E402
from mlphys.grading.nbgrader_api import CourseApps  # noqa: E402
from mlphys.grading.parallel import gradebook_url  # noqa: E402

# nbgrader's own add_submission makes SQLAlchemy warn about its relationship handling (harmless, not ours).
# nbgrader's release_feedback passes a misspelt argument to its exchange, which traitlets warns about (not ours).
pytestmark = [
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),
    pytest.mark.filterwarnings("ignore:Passing unrecognized arguments to super:DeprecationWarning"),
]

REPO = Path(__file__).resolve().parent.parent
EXAM = "07_exam"
NOTEBOOK = "exam"
SECRET = "the hub exam's course secret"
EXTRA_MINUTES = 30
LEAD_S = 10.0  # from the release to the common end: less than the hub and the servers need to start


def assignment_action(hub: Hub, student: Student, action: str) -> list[dict]:
    return hub_action(hub, student, action, EXAM)


# ---- the story ---------------------------------------------------------------------------------------------------


class ExamOnHub:
    """What happened, for the tests to look at."""

    students: dict[str, Student]
    late: Student  # submits after the common end
    extended: Student  # has an extension, submits after the common end within it
    root: Path
    exchange: Path
    common_end: dt.datetime
    variants: dict[str, dict]  # what each student read through their server
    other_variant: requests.Response  # the late student asking their server for the other's variant file
    wrong_password: requests.Response  # the extended student logging in with the late one's password
    fetched_owner: dict[str, int]  # uid of each student's fetched notebook
    inbound_owner: dict[str, int]  # uid of each student's submission in the exchange
    submitted_at: dict[str, dt.datetime]
    points: dict[str, tuple[float, float | None]]  # (autograded points, late penalty) in the gradebook
    max_points: float
    feedback: dict[str, list[tuple[str, str]]]  # each student's fetched feedback files: (path, text)
    instructor_feedback: dict[str, str]  # what the instructor generated for each student
    seconds: float  # from the users' creation to the feedback fetched


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def exam_on_hub() -> Iterator[ExamOnHub]:
    reason = why_not()
    if reason:
        pytest.skip(reason)
    began = time.monotonic()
    run = ExamOnHub()
    run.points = {}
    with contextlib.ExitStack() as cleanup, pytest.MonkeyPatch.context() as env:
        env.setenv("MLPHYS_CHALLENGE_SECRET", SECRET)
        top = Path(tempfile.mkdtemp(prefix="mlphys-hub-exam-"))
        cleanup.callback(shutil.rmtree, top, ignore_errors=True)
        os.chmod(top, 0o711)  # the students pass through to their homes and the exchange, and list nothing
        suffix = secrets.token_hex(3)
        (top / "home").mkdir(mode=0o711)
        late, extended = cleanup.enter_context(unix_users(top / "home", [f"bob{suffix}", f"alice{suffix}"]))
        run.late, run.extended = late, extended
        run.students = {s.name: s for s in (late, extended)}

        # The exchange outside the course directory, writable by all (docs/instructors/jupyterhub.md); the
        # course directory the instructor's alone.
        run.exchange = top / "exchange"
        run.exchange.mkdir()
        os.chmod(run.exchange, 0o777)
        students_config = top / "students-config"
        students_config.mkdir()
        (students_config / "nbgrader_config.py").write_text(
            STUDENTS_CONFIG.format(course=COURSE, exchange=str(run.exchange))
        )
        os.chmod(students_config, 0o755)

        hub = Hub(top / "hub", [late, extended], students_config)
        cleanup.callback(hub.stop)  # before the users go (the exit stack runs backwards)
        cleanup.push(lambda failed, *_: print(f"JupyterHub's log, its servers' too:\n{hub.tail()}") if failed else None)

        # The instructor, meanwhile: the course, its students, the schedule, the release.
        run.root = root = course_beside_exchange(top / "course", EXAM, run.exchange)
        # The instructor works in the course directory, as with nbgrader's commands: the configuration's gradebook
        # (sqlite:///gradebook.db) is relative to the working directory for nbgrader's own collect.
        env.chdir(root)
        apps = CourseApps(root)
        apps.generate_assignment(EXAM)
        with Gradebook(gradebook_url(apps.config, root)) as gb:
            for student in run.students:
                gb.add_student(student)
        run.common_end = now() + dt.timedelta(seconds=LEAD_S)
        start = run.common_end - dt.timedelta(minutes=60)
        (root / "exams.toml").write_text(
            f'["{EXAM}"]\nstart = {start.isoformat()}\nminutes = 60\ngrace_minutes = 0\n'
            f'["{EXAM}".extensions]\n{extended.name} = {{ extra_minutes = {EXTRA_MINUTES} }}\n'
        )
        with contextlib.redirect_stdout(io.StringIO()):
            assert mlphys(["exam", "schedule", EXAM, "--root", str(root)]) == 0
            assert mlphys(["exam", "release", EXAM, "--root", str(root)]) == 0

        # The students: log in, get a token, start their servers.
        hub.wait_until_up()
        for student in (late, extended):
            response = hub.log_in(student)
            assert response.status_code == 302, f"{student.name} could not log in: {response.status_code}"
            hub.get_token(student)
            hub.start_server(student)
        run.wrong_password = hub.log_in(Student(extended.name, extended.home), password=late.password)
        for student in (late, extended):
            hub.wait_for_server(student)

        # Each fetches the exam through their own server and reads their numbers.
        run.variants, run.fetched_owner = {}, {}
        folder = f"{COURSE}/{EXAM}"
        for student in (late, extended):
            listed = assignment_action(hub, student, "fetch")
            assert any(a["assignment_id"] == EXAM and a["status"] == "fetched" for a in listed), listed
            response = contents(hub, student, f"{folder}/{VARIANT_FILE}")
            assert response.ok, response.text
            run.variants[student.name] = json.loads(response.json()["content"])
            run.fetched_owner[student.name] = (student.home / COURSE / EXAM / f"{NOTEBOOK}.ipynb").stat().st_uid
        # The late student tries to read the other's variant file (a link in their home, laid by root).
        others = variants_dir(run.exchange, COURSE, EXAM) / f"{extended.name}.json"
        (late.home / "neighbour.json").symlink_to(others)
        run.other_variant = contents(hub, late, "neighbour.json")

        # Each saves the reference solution (it computes every answer from the student's own VARIANT).
        answers = Materials(root, EXAM, NOTEBOOK).reference()
        for student in (late, extended):
            saved = hub.server(
                student,
                "PUT",
                f"api/contents/{folder}/{NOTEBOOK}.ipynb",
                json={"type": "notebook", "format": "json", "content": answers},
            )
            assert saved.ok, saved.text

        # Both submit after the common end (one late, one within the extension).
        waited = max(0.0, (run.common_end - now()).total_seconds() + 1.0)  # ~1 s past it at least
        time.sleep(waited)
        run.submitted_at, run.inbound_owner = {}, {}
        inbound = run.exchange / COURSE / "inbound"
        for student in (late, extended):
            run.submitted_at[student.name] = now()
            assignment_action(hub, student, "submit")
            (mine,) = [p for p in inbound.iterdir() if p.name.startswith(f"{student.name}+{EXAM}+")]
            run.inbound_owner[student.name] = mine.stat().st_uid

        # The instructor: collect, autograde (sandboxed, the course's configuration), feedback.
        ok("collect", apps.api.collect(EXAM))
        for student in run.students:
            ok(f"autograde {student}", apps.api.autograde(EXAM, student))
        ok("generate_feedback", apps.generate_feedback(EXAM))
        ok("release_feedback", apps.api.release_feedback(EXAM))
        run.max_points = sum(Materials(root, EXAM, NOTEBOOK).test_points().values())
        with Gradebook(gradebook_url(apps.config, root)) as gb:
            for student in run.students:
                notebook = gb.find_submission_notebook(NOTEBOOK, EXAM, student)
                run.points[student] = (float(notebook.code_score), notebook.late_submission_penalty)
        run.instructor_feedback = {
            s: (root / "feedback" / s / EXAM / f"{NOTEBOOK}.html").read_text() for s in run.students
        }

        # Each student fetches their feedback through their server.
        run.feedback = {}
        for student in (late, extended):
            assignment_action(hub, student, "fetch_feedback")
            run.feedback[student.name] = feedback_files(hub, student, f"{folder}/feedback")
        run.seconds = time.monotonic() - began
        print(
            f"\nthe exam on JupyterHub: {run.seconds:.0f} s from the users' creation to the feedback fetched "
            f"({waited:.1f} s of it waiting for the common end)"
        )
        yield run


def feedback_files(hub: Hub, student: Student, path: str) -> list[tuple[str, str]]:
    """Every file under ``path`` of the student's home, through their server's contents API."""
    response = contents(hub, student, path)
    assert response.ok, response.text
    found: list[tuple[str, str]] = []
    for item in response.json()["content"]:
        if item["type"] == "directory":
            found += feedback_files(hub, student, item["path"])
        else:
            file = contents(hub, student, item["path"])
            assert file.ok, file.text
            found.append((item["path"], file.json()["content"]))
    return found


# ---- what each side sees -----------------------------------------------------------------------------------------


def test_each_student_logs_in_with_their_own_password_and_their_server_runs_as_them(exam_on_hub: ExamOnHub) -> None:
    assert exam_on_hub.wrong_password.status_code != 302  # another student's password does not let one in
    for name, student in exam_on_hub.students.items():
        assert exam_on_hub.fetched_owner[name] == student.uid  # the server that fetched runs as the student
        assert exam_on_hub.inbound_owner[name] == student.uid  # and so does their submission in the exchange


def test_each_student_sees_their_own_numbers_and_not_the_others(exam_on_hub: ExamOnHub) -> None:
    run = exam_on_hub
    for name in run.students:
        assert run.variants[name]["student"] == name
        assert run.variants[name]["variant"] == exam_variant(SECRET, name)
    assert run.variants[run.late.name]["variant"] != run.variants[run.extended.name]["variant"]
    # the deadline each reads includes their own extension
    assert run.variants[run.late.name]["deadline"] != run.variants[run.extended.name]["deadline"]
    assert run.other_variant.status_code == 403, run.other_variant.text  # their server may not read it
    assert "Permission denied" in run.other_variant.text


def test_the_late_student_scores_zero_and_is_told_why(exam_on_hub: ExamOnHub) -> None:
    run = exam_on_hub
    name = run.late.name
    assert run.submitted_at[name] > run.common_end
    points, penalty = run.points[name]
    assert points == penalty == run.max_points  # all autograded answers right, all lost: 0
    ((path, page),) = run.feedback[name]  # their own feedback, and no one else's
    assert path.endswith(f"{NOTEBOOK}.html")
    assert page == run.instructor_feedback[name]
    assert "late submissions score 0" in page and "Late submission penalty" in page


def test_the_student_with_an_extension_submits_after_the_common_end_with_full_points(exam_on_hub: ExamOnHub) -> None:
    run = exam_on_hub
    name = run.extended.name
    assert run.common_end < run.submitted_at[name] < run.common_end + dt.timedelta(minutes=EXTRA_MINUTES)
    assert run.points[name] == (run.max_points, None)
    ((_, page),) = run.feedback[name]
    assert page == run.instructor_feedback[name] != run.instructor_feedback[run.late.name]
    assert "late submissions score 0" not in page and "Late submission penalty" not in page
