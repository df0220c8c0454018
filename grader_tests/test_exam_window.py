"""An exam's time window that holds (``mlphys.exam``): the schedule file, its command, the exchange's receipt time
and the late rule, in a tiny nbgrader course with its own exchange, run through nbgrader's own classes.

"Late" happens without waiting: the schedule is written afterwards so that the deadline falls between two
submissions (submit, take the time, sleep a little, submit again); the receipt time comes from inode change
times, which cannot be forged, so the submissions themselves are real.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import os
import shutil
import stat
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.auth import Authenticator
from nbgrader.coursedir import CourseDirectory
from nbgrader.exchange.default import ExchangeSubmit
from nbgrader.preprocessors import AssignLatePenalties
from traitlets.config import Config

from mlphys.cli import main as mlphys
from mlphys.demo.timed import forge_claim, nbgrader_time
from mlphys.exam.exchange import CLAIMED_FILE, ReceiptCollect, received_at
from mlphys.exam.late import NOTICE_MARK, ExplainLatePenalty
from mlphys.exam.schedule import write_schedule
from mlphys.exam.window import ScheduleError, parse_schedule
from mlphys.grading.nbgrader_api import CourseApps
from mlphys.grading.parallel import read_config

# nbgrader's own add_submission makes SQLAlchemy warn about its relationship handling (harmless, not ours).
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

REPO = Path(__file__).resolve().parent.parent
COURSE = "course"
ASSIGNMENT = "exam_x"
NOTEBOOK = "exam"
POINTS = 2.0
STEP_S = 0.1  # between a submission and a deadline: far more than the kernel's clock tick, which dates inodes

EXAMPLE = """\
["07_exam"]
start = 2026-12-06T09:00:00+01:00
minutes = 120
grace_minutes = 2
["07_exam".extensions]
alice = { extra_minutes = 30 }          # accommodations
bob = { start = 2026-12-08T09:00:00+01:00 }   # another window (the repeat date), same length
"""

# A course as small as nbgrader allows: autograde saves the grades and applies the late rule without running a
# kernel (the test cell passes as written); collect and the late rule are configured as nbgrader_config.py does.
CONFIG = """\
c = get_config()
c.CourseDirectory.course_id = {course!r}
c.CourseDirectory.root = {root!r}
c.Exchange.root = {exchange!r}
c.Exchange.cache = {cache!r}
c.Exchange.path_includes_course = True
c.ExchangeCollect.check_owner = False  # one Unix user plays every student
c.ExchangeFactory.collect = "mlphys.exam.exchange.ReceiptCollect"
c.AssignLatePenalties.plugin_class = "mlphys.exam.late.WindowLatePenalty"
c.Autograde.autograde_preprocessors = [
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "mlphys.exam.late.ExplainLatePenalty",
    "nbgrader.preprocessors.CheckCellMetadata",
]
"""


@pytest.fixture(scope="module")
def blank_gradebook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty gradebook, made once: nbgrader runs `alembic` (seconds) for every new one; tests copy this."""
    path = tmp_path_factory.mktemp("blank") / "gradebook.db"
    with pytest.MonkeyPatch.context() as env:  # nbgrader runs the `alembic` of its environment by name
        env.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
        Gradebook(f"sqlite:///{path}", COURSE).close()
    return path


def gradebook_in(folder: Path, blank: Path) -> str:
    """A fresh gradebook in ``folder`` (a copy of the blank one); its URL."""
    shutil.copy(blank, folder / "gradebook.db")
    return f"sqlite:///{folder / 'gradebook.db'}"


# ---- the schedule file ------------------------------------------------------------------------------------------


def test_the_example_gives_each_student_their_window() -> None:
    exam = parse_schedule(EXAMPLE)["07_exam"]
    tz = dt.timezone(dt.timedelta(hours=1))
    common = exam.common
    assert (common.start, common.end, common.grace_end) == (
        dt.datetime(2026, 12, 6, 9, 0, tzinfo=tz),
        dt.datetime(2026, 12, 6, 11, 0, tzinfo=tz),
        dt.datetime(2026, 12, 6, 11, 2, tzinfo=tz),
    )
    alice, bob, carol = exam.window("alice"), exam.window("bob"), exam.window("carol")
    assert (alice.start, alice.end, alice.grace_end) == (
        common.start,
        common.end + dt.timedelta(minutes=30),
        common.end + dt.timedelta(minutes=32),
    )
    assert alice.extension == dt.timedelta(minutes=30)
    assert (bob.start, bob.end) == (
        dt.datetime(2026, 12, 8, 9, 0, tzinfo=tz),
        dt.datetime(2026, 12, 8, 11, 0, tzinfo=tz),
    )
    assert bob.extension == dt.timedelta(days=2)
    assert (carol.start, carol.end, carol.extension) == (common.start, common.end, dt.timedelta(0))


@pytest.mark.parametrize(
    ("change", "line", "expected"),
    [
        (
            ("alice = { extra_minutes = 30 }", "alice = { extra_minute = 30 }"),
            6,
            "\"07_exam\".extensions.alice.extra_minute: unknown key 'extra_minute': did you mean 'extra_minutes'?",
        ),
        (("minutes = 120", "minutes = -5"), 3, '"07_exam".minutes: must be more than 0 minutes, not -5'),
        (("alice = { extra_minutes = 30 }", "alice = { extra_minutes = -30 }"), 6, "must be at least 0 minutes"),
        (("grace_minutes = 2", "grace_minutes = true"), 4, "grace_minutes: must be a number of minutes"),
        (
            ("start = 2026-12-06T09:00:00+01:00", "start = 2026-12-06T09:00:00"),
            2,
            '"07_exam".start: 2026-12-06T09:00:00 has no UTC offset',
        ),
        (
            ("bob = { start = 2026-12-08T09:00:00+01:00 }", "bob = { start = 2026-12-08T09:00:00 }"),
            7,
            '"07_exam".extensions.bob.start: 2026-12-08T09:00:00 has no UTC offset',
        ),
        (("start = 2026-12-06T09:00:00+01:00", "start = 2026-12-06"), 2, "is a date without a time"),
        (("start = 2026-12-06T09:00:00+01:00", 'start = "2026-12-06T09:00:00+01:00"'), 2, "without quotes"),
        (("start = 2026-12-06T09:00:00+01:00", "begin = 2026-12-06T09:00:00+01:00"), 2, "unknown key 'begin'"),
        (("minutes = 120\n", ""), 1, "missing 'minutes'"),
        (("bob = { start = 2026-12-08T09:00:00+01:00 }", "bob = { }"), 7, "says nothing"),
        (("bob = {", '"bob+x" = {'), 7, "not a student id nbgrader accepts"),
        (("minutes = 120", "minutes = 120 min"), 3, "not valid TOML"),
    ],
)
def test_schedule_errors_name_the_line_and_the_key(change: tuple[str, str], line: int, expected: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        parse_schedule(EXAMPLE.replace(*change), "exams.toml")
    message = str(raised.value)
    assert message.startswith(f"exams.toml, line {line}: ") or f"line {line}" in message, message
    assert expected in message


def test_a_setting_outside_any_exam_is_named() -> None:
    with pytest.raises(ScheduleError, match=r"exams.toml, line 1: minutes: not an exam"):
        parse_schedule("minutes = 120\n" + EXAMPLE)


# ---- the receipt time -------------------------------------------------------------------------------------------


def test_the_receipt_time_cannot_be_set_back(tmp_path: Path) -> None:
    folder = tmp_path / "submission"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "answer.ipynb").write_text("{}")
    before = received_at(folder)
    time.sleep(STEP_S)
    for path in (folder, folder / "sub", folder / "sub" / "answer.ipynb"):
        os.utime(path, (0, 0))  # 1970: what a forger would set
    assert received_at(folder) > before


def test_a_change_through_a_link_counts(tmp_path: Path) -> None:
    outside = tmp_path / "home" / "answer.ipynb"
    outside.parent.mkdir()
    outside.write_text("{}")
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "answer.ipynb").symlink_to(outside)  # the collect's copy reads through it
    before = received_at(folder)
    time.sleep(STEP_S)
    outside.write_text('{"changed": "after the deadline"}')
    assert received_at(folder) > before


# ---- a whole exam through the exchange --------------------------------------------------------------------------


def exam_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("Set `x`."),
        nbformat.v4.new_code_cell(
            "### BEGIN SOLUTION\nx = 1\n### END SOLUTION",
            metadata={
                "nbgrader": {
                    "grade": False,
                    "solution": True,
                    "locked": False,
                    "grade_id": "answer",
                    "schema_version": 3,
                }
            },
        ),
        nbformat.v4.new_code_cell(
            "assert x == 1",
            metadata={
                "nbgrader": {
                    "grade": True,
                    "solution": False,
                    "locked": True,
                    "grade_id": "check",
                    "points": POINTS,
                    "schema_version": 3,
                }
            },
        ),
    ]
    return nb


class ExamCourse:
    """A course with one assignment, its exchange, and students who submit through it."""

    def __init__(self, root: Path, blank_gradebook: Path) -> None:
        self.root = root
        gradebook_in(root, blank_gradebook)
        self.exchange = root / "exchange"
        self.exchange.mkdir(parents=True)
        os.chmod(self.exchange, 0o777)
        (root / "nbgrader_config.py").write_text(
            CONFIG.format(course=COURSE, root=str(root), exchange=str(self.exchange), cache=str(root / "cache"))
        )
        (root / "source" / ASSIGNMENT).mkdir(parents=True)
        nbformat.write(exam_notebook(), root / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb")
        self.apps = CourseApps(root)
        self.apps.generate_assignment(ASSIGNMENT)
        ok("release_assignment", self.apps.api.release_assignment(ASSIGNMENT))
        self.inbound = self.exchange / COURSE / "inbound"

    def submit(self, student: str, answer: str = "x = 1") -> Path:
        """The student's own nbgrader submit (their answer in the notebook); returns the inbound folder."""
        work = self.root / "students" / student
        mine = work / COURSE / ASSIGNMENT
        if not mine.exists():
            shutil.copytree(self.root / "release" / ASSIGNMENT, mine)
        nb = nbformat.read(mine / f"{NOTEBOOK}.ipynb", 4)
        nb.cells[1].source = answer
        nbformat.write(nb, mine / f"{NOTEBOOK}.ipynb")
        config = self.apps.config
        coursedir = CourseDirectory(
            config=config, root=str(self.root), course_id=COURSE, assignment_id=ASSIGNMENT, student_id=student
        )
        before = set(self.inbound.iterdir()) if self.inbound.exists() else set()
        ExchangeSubmit(
            coursedir=coursedir, authenticator=Authenticator(config=config), config=config, assignment_dir=str(work)
        ).start()
        (folder,) = set(self.inbound.iterdir()) - before
        return folder

    def gradebook(self) -> Gradebook:
        return Gradebook(f"sqlite:///{self.root / 'gradebook.db'}", COURSE)

    def autograded(self, student: str) -> nbformat.NotebookNode:
        return nbformat.read(self.root / "autograded" / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4)


def ok(what: str, result: dict) -> None:
    """An nbgrader API call succeeded (else its log)."""
    assert result.get("success"), f"{what}: {result.get('log', '')[-3000:]}{result.get('error', '')}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ExamRun:
    """What the module's exam did: the course, its deadlines, the schedule command's output."""

    course: ExamCourse
    deadline: dt.datetime  # the common end
    grace_end: dt.datetime
    schedule_output: str
    forged_claim: str
    forged_folder: Path


@pytest.fixture(scope="module")
def exam(tmp_path_factory: pytest.TempPathFactory, blank_gradebook: Path) -> ExamRun:
    """The timeline: ``ontime``, ``mallory`` (honestly) and ``alice`` (a draft) submit; the deadline; ``graced``
    submits; the end of the grace; ``late``, ``alice`` (30 extra minutes: her final answer) and ``mallory`` again,
    who then renames her late submission and rewrites its timestamp.txt and file times to claim it arrived before
    the deadline.  Then the schedule is written, the submissions collected, autograded, and the late student's
    feedback generated."""
    course = ExamCourse(tmp_path_factory.mktemp("exam"), blank_gradebook)
    result = ExamRun()
    result.course = course
    course.submit("ontime")
    course.submit("mallory", answer="x = 1  # on time")
    course.submit("alice", answer="x = 1  # draft")
    time.sleep(STEP_S)
    result.deadline = now()
    time.sleep(STEP_S)
    course.submit("graced")
    time.sleep(STEP_S)
    result.grace_end = now()
    time.sleep(STEP_S)
    course.submit("late")
    course.submit("alice", answer="x = 1  # final")
    late = course.submit("mallory", answer="x = 1  # after the deadline")
    claim = result.deadline - dt.timedelta(seconds=STEP_S / 2)  # later than her honest one, before the deadline
    result.forged_claim = nbgrader_time(claim)
    result.forged_folder = forge_claim(late, claim)

    grace_minutes = (result.grace_end - result.deadline).total_seconds() / 60
    (course.root / "exams.toml").write_text(
        f'["{ASSIGNMENT}"]\n'
        f"start = {(result.deadline - dt.timedelta(minutes=90)).isoformat()}\n"
        "minutes = 90\n"
        f"grace_minutes = {grace_minutes!r}\n"
        f'["{ASSIGNMENT}".extensions]\n'
        "alice = { extra_minutes = 30 }\n"
        f"bob = {{ start = {(result.deadline + dt.timedelta(days=2, minutes=-90)).isoformat()} }}\n"
    )
    schedule(course.root)  # before the collect, as an instructor would
    ok("collect", course.apps.api.collect(ASSIGNMENT))
    for who in ("ontime", "graced", "late", "alice", "mallory"):
        ok(f"autograde {who}", course.apps.api.autograde(ASSIGNMENT, who))
    ok("generate_feedback", course.apps.generate_feedback(ASSIGNMENT))
    result.schedule_output = schedule(course.root)  # again, now that the gradebook knows every student
    return result


def schedule(root: Path) -> str:
    """``mlphys exam schedule``: what it printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert mlphys(["exam", "schedule", ASSIGNMENT, "--root", str(root)]) == 0
    return printed.getvalue()


def graded(exam: ExamRun, student: str) -> tuple[float, float, float | None]:
    """(seconds late as nbgrader counts them, score, late penalty) of a student's submission."""
    with exam.course.gradebook() as gb:
        submission = gb.find_submission(ASSIGNMENT, student)
        notebook = gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student)
        return submission.total_seconds_late, float(submission.score), notebook.late_submission_penalty


def notice(nb: nbformat.NotebookNode) -> str | None:
    first = nb.cells[0]
    return first.source if first.cell_type == "markdown" and first.metadata.get(NOTICE_MARK) else None


def test_a_submission_within_the_window_is_on_time(exam: ExamRun) -> None:
    assert graded(exam, "ontime") == (0, POINTS, None)
    assert notice(exam.course.autograded("ontime")) is None


def test_a_late_submission_scores_zero_and_says_why(exam: ExamRun) -> None:
    seconds_late, score, penalty = graded(exam, "late")
    assert seconds_late > (exam.grace_end - exam.deadline).total_seconds()
    assert score == penalty == POINTS  # nbgrader's score minus its late penalty: 0
    text = notice(exam.course.autograded("late"))
    assert text is not None
    assert "received this submission at" in text and "after your deadline" in text
    assert "of grace" in text and "late submissions score 0" in text
    assert "your extension included" not in text  # it has none
    page = (exam.course.root / "feedback" / "late" / ASSIGNMENT / f"{NOTEBOOK}.html").read_text()
    assert "late submissions score 0" in page and "Late submission penalty" in page


def test_a_late_submission_forged_to_look_early_is_still_late(exam: ExamRun) -> None:
    # The forgery claims a time before the deadline, in the folder name and in timestamp.txt, and is the latest
    # claim among mallory's submissions: nbgrader's own collect would have taken it as on time.
    assert exam.forged_folder.name.split("+")[2] == exam.forged_claim
    assert (exam.forged_folder / "timestamp.txt").read_text() == exam.forged_claim
    submitted = exam.course.root / "submitted" / "mallory" / ASSIGNMENT
    assert "after the deadline" in nbformat.read(submitted / f"{NOTEBOOK}.ipynb", 4).cells[1].source
    assert (submitted / CLAIMED_FILE).read_text().strip() == exam.forged_claim  # kept for the record
    seconds_late, score, penalty = graded(exam, "mallory")
    assert seconds_late > (exam.grace_end - exam.deadline).total_seconds()
    assert penalty == score == POINTS
    assert notice(exam.course.autograded("mallory")) is not None


def test_a_student_with_an_extension_submits_after_the_common_end_on_time(exam: ExamRun) -> None:
    with exam.course.gradebook() as gb:
        submission = gb.find_submission(ASSIGNMENT, "alice")
        assert submission.timestamp > submission.assignment.duedate + dt.timedelta(seconds=STEP_S)
    assert graded(exam, "alice") == (0, POINTS, None)
    assert notice(exam.course.autograded("alice")) is None


def test_a_submission_within_the_grace_period_is_not_penalised(exam: ExamRun) -> None:
    seconds_late, score, penalty = graded(exam, "graced")
    assert seconds_late > 0  # nbgrader sees it after the due date...
    assert (score, penalty) == (POINTS, None)  # ...and the grace lets it pass
    assert notice(exam.course.autograded("graced")) is None


def test_the_gradebook_holds_the_due_date_and_the_extensions(exam: ExamRun) -> None:
    with exam.course.gradebook() as gb:
        assert gb.find_assignment(ASSIGNMENT).duedate == exam.deadline.replace(tzinfo=None)
        assert gb.find_submission(ASSIGNMENT, "alice").extension == dt.timedelta(minutes=30)
        assert gb.find_submission(ASSIGNMENT, "bob").extension == dt.timedelta(days=2)
        assert gb.find_submission(ASSIGNMENT, "late").extension is None
    # What the formgrader lists: the submission times are the receipts, not the claims.
    submissions = {s["student"]: s for s in exam.course.apps.api.get_submissions(ASSIGNMENT)}
    assert submissions["mallory"]["timestamp"] > exam.grace_end.replace(tzinfo=None).isoformat()


def test_the_schedule_command_prints_every_students_window(exam: ExamRun) -> None:
    lines = exam.schedule_output.splitlines()
    assert lines[0].startswith(f"{ASSIGNMENT}: ") and "(90 minutes)" in lines[0]
    rows = {line.split()[0]: line for line in lines[4:]}
    assert set(rows) >= {"alice", "bob", "ontime", "late", "graced", "mallory"}
    assert rows["alice"].endswith("+30 min") and rows["bob"].endswith("+2 d") and rows["ontime"].endswith("-")


def test_the_receipt_log_records_every_collected_submission(exam: ExamRun) -> None:
    folder = exam.course.root / "receipts"
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0  # the instructor's alone
    with open(folder / f"{ASSIGNMENT}.csv", newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"ontime", "graced", "late", "alice", "mallory"}
    assert rows["mallory"]["inbound_folder"] == exam.forged_folder.name
    assert rows["mallory"]["claimed_timestamp"] == exam.forged_claim
    with exam.course.gradebook() as gb:
        for student, row in rows.items():
            received = dt.datetime.fromisoformat(row["received_at"]).replace(tzinfo=None)
            assert received == gb.find_submission(ASSIGNMENT, student).timestamp


def test_before_the_due_date_takes_the_latest_received_by_each_students_own_deadline(exam: ExamRun) -> None:
    """``nbgrader collect --before-duedate``: mallory's honest submission, not her later (forged) one; alice's
    submission after the common end, which her extension allows."""
    course = exam.course
    coursedir = CourseDirectory(
        config=course.apps.config,
        root=str(course.root),
        course_id=COURSE,
        assignment_id=ASSIGNMENT,
        submitted_directory="submitted_before_duedate",  # beside the fixture's own collect
    )
    collect = ReceiptCollect(coursedir=coursedir, authenticator=Authenticator(), config=course.apps.config)
    collect.before_duedate = True
    collect.start()
    collected = course.root / "submitted_before_duedate"
    mallory = nbformat.read(collected / "mallory" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4)
    assert "on time" in mallory.cells[1].source
    alice = nbformat.read(collected / "alice" / ASSIGNMENT / f"{NOTEBOOK}.ipynb", 4)
    assert "final" in alice.cells[1].source


# ---- the late rule on a gradebook, for any assignment --------------------------------------------------------------


def late_rule(
    tmp_path: Path, blank: Path, duedate: dt.datetime | None, config: Config | None = None
) -> tuple[float | None, bool]:
    """nbgrader's AssignLatePenalties with the plugin, then ExplainLatePenalty, on a submission received at noon
    with 2 of 2 points: (the penalty, whether the notice was added)."""
    db_url = gradebook_in(tmp_path, blank)
    with Gradebook(db_url) as gb:
        gb.add_assignment("hw", duedate=duedate)
        gb.add_notebook(NOTEBOOK, "hw")
        gb.add_grade_cell("check", NOTEBOOK, "hw", max_score=POINTS, cell_type="code")
        gb.add_student("s")
        gb.add_submission("hw", "s", timestamp=dt.datetime(2026, 12, 6, 12, 0))
        gb.find_grade("check", NOTEBOOK, "hw", "s").auto_score = POINTS
        gb.db.commit()
    config = config or Config()
    config.AssignLatePenalties.plugin_class = "mlphys.exam.late.WindowLatePenalty"
    config.CourseDirectory.root = str(tmp_path)  # no exams.toml there
    resources = {"nbgrader": {"notebook": NOTEBOOK, "assignment": "hw", "student": "s", "db_url": db_url}}
    nb = exam_notebook()
    nb, resources = AssignLatePenalties(config=config).preprocess(nb, resources)
    nb, resources = ExplainLatePenalty(config=config).preprocess(nb, resources)
    with Gradebook(db_url) as gb:
        penalty = gb.find_submission_notebook(NOTEBOOK, "hw", "s").late_submission_penalty
    return penalty, notice(nb) is not None


def test_an_assignment_without_a_due_date_is_untouched(tmp_path: Path, blank_gradebook: Path) -> None:
    assert late_rule(tmp_path, blank_gradebook, None) == (None, False)


def test_any_assignment_with_a_due_date_gets_the_rule(tmp_path: Path, blank_gradebook: Path) -> None:
    assert late_rule(tmp_path, blank_gradebook, dt.datetime(2026, 12, 6, 11, 0)) == (POINTS, True)


def test_a_fraction_of_the_score_and_a_configured_grace(tmp_path: Path, blank_gradebook: Path) -> None:
    config = Config()
    config.WindowLatePenalty.penalty = 0.25
    (tmp_path / "a").mkdir()
    assert late_rule(tmp_path / "a", blank_gradebook, dt.datetime(2026, 12, 6, 11, 0), config) == (0.25 * POINTS, True)
    config.WindowLatePenalty.grace_minutes = 60.0
    (tmp_path / "b").mkdir()
    assert late_rule(tmp_path / "b", blank_gradebook, dt.datetime(2026, 12, 6, 11, 0), config) == (None, False)


def test_rescheduling_replaces_and_removes_extensions(tmp_path: Path, blank_gradebook: Path) -> None:
    db_url = gradebook_in(tmp_path, blank_gradebook)
    with Gradebook(db_url, COURSE) as gb:
        gb.add_student("carol")
    before = parse_schedule(EXAMPLE)["07_exam"]
    windows = write_schedule(db_url, COURSE, before)
    assert [w.student for w in windows] == ["alice", "bob", "carol"]
    after = parse_schedule(EXAMPLE.replace("extra_minutes = 30", "extra_minutes = 45").replace("bob = {", "# bob = {"))
    write_schedule(db_url, COURSE, after["07_exam"])
    with Gradebook(db_url, COURSE) as gb:
        assert gb.find_assignment("07_exam").duedate == dt.datetime(2026, 12, 6, 10, 0)  # 11:00 at UTC+01:00
        assert gb.find_submission("07_exam", "alice").extension == dt.timedelta(minutes=45)
        assert gb.find_submission("07_exam", "bob").extension is None


def test_the_course_configuration_uses_the_window(tmp_path: Path) -> None:
    shutil.copy(REPO / "nbgrader_config.py", tmp_path / "nbgrader_config.py")
    config = read_config(tmp_path)
    assert config.ExchangeFactory.collect == "mlphys.exam.exchange.ReceiptCollect"
    assert config.AssignLatePenalties.plugin_class == "mlphys.exam.late.WindowLatePenalty"
    steps = [getattr(step, "__name__", step) for step in config.Autograde.autograde_preprocessors]
    assert steps.index("ExplainLatePenalty") == steps.index("AssignLatePenalties") + 1
