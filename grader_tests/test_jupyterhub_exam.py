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
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

requests = pytest.importorskip("requests")
pytest.importorskip("jupyterhub")

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
COURSE = "ml4physics"  # the repository's nbgrader_config.py
SECRET = "the hub exam's course secret"
EXTRA_MINUTES = 30
LEAD_S = 10.0  # from the release to the common end: less than the hub and the servers need to start
TIMEOUT_S = 120.0  # for the hub and a server to start

STUDENTS_CONFIG = """\
# What a student's server reads (through JUPYTER_CONFIG_PATH; on a real hub /etc/jupyter/nbgrader_config.py).
c = get_config()
c.CourseDirectory.course_id = {course!r}
c.Exchange.root = {exchange!r}
c.Exchange.path_includes_course = True
c.ExchangeFactory.fetch_assignment = "mlphys.exam.delivery.FetchWithVariant"
c.Authenticator.plugin_class = "nbgrader.auth.JupyterHubAuthPlugin"
"""

HUB_CONFIG = """\
c = get_config()
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.pid_file = {proxy_pid_file!r}
c.JupyterHub.db_url = "sqlite:///{folder}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {cookie_secret_file!r}
c.JupyterHub.cleanup_servers = True
# Each student logs in with their own Unix password.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.open_sessions = False
c.Authenticator.allowed_users = set({students!r})
# nbgrader's JupyterHubAuthPlugin: who takes the course is the hub group nbgrader-<course_id>.
c.JupyterHub.load_groups = {{"nbgrader-{course}": {{"users": {students!r}}}}}
# A server runs as its student's Unix user (the local process spawner, the hub running as root).
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = {cmd!r}
c.Spawner.environment = {environment!r}
# The plug-in reads the student's own hub groups with the server's token.
c.Spawner.server_token_scopes = ["access:servers!server", "users:activity!user", "read:users!user"]
c.Spawner.start_timeout = {timeout}
c.Spawner.http_timeout = {timeout}
"""


def proxy_command() -> str | None:
    """configurable-http-proxy: on PATH, or where scripts/setup.sh installs it (the virtual environment)."""
    found = shutil.which("configurable-http-proxy")
    beside = Path(sys.prefix) / "node_modules" / ".bin" / "configurable-http-proxy"
    return found or (str(beside) if beside.is_file() else None)


def why_not() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "creates Unix users and runs JupyterHub's spawner as root"
    for tool in ("useradd", "userdel", "chpasswd"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    try:
        import pamela  # noqa: F401  (JupyterHub's PAM authenticator: needs libpam)
    except Exception as exc:
        return f"PAM is not usable: {exc}"
    if proxy_command() is None:
        return "configurable-http-proxy is missing (scripts/setup.sh installs it with npm)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def others_can_run(path: Path) -> bool:
    """Whether a user other than the owner can run ``path``: every folder above it can be entered."""
    path = path.resolve()
    folders_ok = all(os.stat(p).st_mode & stat.S_IXOTH for p in path.parents)
    return folders_ok and bool(os.stat(path).st_mode & stat.S_IXOTH)


def server_command() -> list[str]:
    """The students' server: this environment's jupyterhub-singleuser.  Where the environment's base Python lies
    in a folder other users cannot enter (a pyenv under /root), the system's Python of the same version runs this
    environment's packages instead (the same packages, importable by the students)."""
    own = Path(sys.executable).parent / "jupyterhub-singleuser"
    if others_can_run(Path(sys.executable)):
        return [str(own)]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = Path("/usr/bin") / version
    if not (system.is_file() and others_can_run(system)):
        pytest.skip(f"the students cannot run {sys.executable}, and there is no {system}")
    site_packages = Path(sys.prefix) / "lib" / version / "site-packages"
    boot = (
        f"import site, sys; site.addsitedir({str(site_packages)!r}); "
        "from jupyterhub.singleuser import main; sys.exit(main())"
    )
    return [str(system), "-S", "-c", boot]


# ---- Unix users --------------------------------------------------------------------------------------------------


class Student:
    def __init__(self, name: str, home: Path) -> None:
        self.name = name
        self.home = home
        self.password = secrets.token_urlsafe(12)
        self.session: requests.Session | None = None
        self.token = ""

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.name).pw_uid


@contextlib.contextmanager
def unix_users(homes: Path, names: list[str]) -> Iterator[list[Student]]:
    """Unix users with homes under ``homes`` and passwords; removed at the end with whatever they still run."""
    made: list[Student] = []
    try:
        for name in names:
            student = Student(name, homes / name)
            subprocess.run(
                ["useradd", "--create-home", "--home-dir", str(student.home), "--shell", "/bin/sh", name],
                check=True,
                capture_output=True,
            )
            made.append(student)
            os.chmod(student.home, 0o700)  # a student's files are their own
            subprocess.run(["chpasswd"], input=f"{name}:{student.password}\n", text=True, check=True)
        yield made
    finally:
        for student in made:
            end_processes_of(student.uid)
            subprocess.run(["userdel", student.name], capture_output=True)


def end_processes_of(uid: int) -> None:
    """Stop what a student's server left behind (the hub stops the servers; this is for a failure)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    os.kill(int(entry.name), signal.SIGKILL)


# ---- the hub -----------------------------------------------------------------------------------------------------


class Hub:
    """JupyterHub on loopback, as a child process; its students log in and work through HTTP requests."""

    def __init__(self, folder: Path, students: list[Student], students_config: Path) -> None:
        self.folder = folder
        folder.mkdir(mode=0o700)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        venv = Path(sys.prefix)
        environment = {
            # The students' nbgrader configuration first, then this environment's (its server extensions).
            "JUPYTER_CONFIG_PATH": os.pathsep.join([str(students_config), str(venv / "etc" / "jupyter")]),
            "JUPYTER_PATH": str(venv / "share" / "jupyter"),
        }
        (folder / "jupyterhub_config.py").write_text(
            HUB_CONFIG.format(
                port=port,
                hub_port=free_port(),
                proxy_api_port=free_port(),
                proxy=proxy_command(),
                proxy_pid_file=str(folder / "proxy.pid"),
                folder=folder,
                cookie_secret_file=str(folder / "cookie_secret"),
                students=sorted(s.name for s in students),
                course=COURSE,
                cmd=server_command(),
                environment=environment,
                timeout=int(TIMEOUT_S),
            )
        )
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        self.log = open(folder / "jupyterhub.log", "w")  # closed by stop()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyterhub"), "-f", str(folder / "jupyterhub_config.py")],
            cwd=folder,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_running()
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.url}/hub/api/", timeout=5).ok:
                    return
            time.sleep(0.2)
        raise AssertionError(f"JupyterHub did not start:\n{self.tail()}")

    def check_running(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"JupyterHub exited ({self.process.returncode}):\n{self.tail()}")

    def tail(self) -> str:
        self.log.flush()
        return (self.folder / "jupyterhub.log").read_text()[-6000:]

    def stop(self) -> None:
        """Stop the hub; it stops the servers and the proxy (what is left is ended by its id)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((self.folder / "proxy.pid").read_text()), signal.SIGKILL)
        self.log.close()

    # -- what a student does in a browser, as HTTP requests --

    def log_in(self, student: Student, password: str | None = None) -> requests.Response:
        """The hub's login form; the session keeps the hub's cookie."""
        session = requests.Session()
        session.get(f"{self.url}/hub/login", timeout=30).raise_for_status()
        form = {
            "username": student.name,
            "password": password or student.password,
            "_xsrf": session.cookies.get("_xsrf", path="/hub/"),
        }
        response = session.post(f"{self.url}/hub/login", data=form, allow_redirects=False, timeout=30)
        if response.status_code == 302:
            student.session = session
        return response

    def get_token(self, student: Student) -> None:
        """A token of the student's own, requested with their login (the hub's REST API)."""
        assert student.session is not None
        response = student.session.post(
            f"{self.url}/hub/api/users/{student.name}/tokens",
            json={"note": "the exam test", "expires_in": 3600},
            headers={"X-XSRFToken": student.session.cookies.get("_xsrf", path="/hub/")},
            timeout=30,
        )
        assert response.status_code in (200, 201), response.text
        student.token = response.json()["token"]

    def api(self, student: Student, method: str, path: str, **kwargs: object) -> requests.Response:
        """A request with the student's token: ``/hub/...`` or ``/user/<name>/...`` (their server, via the proxy)."""
        headers = {"Authorization": f"token {student.token}"}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=120, **kwargs)

    def start_server(self, student: Student) -> None:
        response = self.api(student, "POST", f"/hub/api/users/{student.name}/server")
        assert response.status_code in (201, 202), response.text

    def wait_for_server(self, student: Student) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_running()
            model = self.api(student, "GET", f"/hub/api/users/{student.name}").json()
            server = model.get("servers", {}).get("")
            if server and server.get("ready"):
                return
            if not model.get("pending") and not server:
                raise AssertionError(f"{student.name}'s server did not start:\n{self.tail()}")
            time.sleep(0.3)
        raise AssertionError(f"{student.name}'s server did not start in time:\n{self.tail()}")

    def server(self, student: Student, method: str, path: str, **kwargs: object) -> requests.Response:
        """A request to the student's own server."""
        return self.api(student, method, f"/user/{student.name}/{path}", **kwargs)


def assignment_action(hub: Hub, student: Student, action: str) -> list[dict]:
    """nbgrader's assignment-list endpoint ``/assignments/<action>`` (fetch, submit, fetch_feedback), as the
    Assignments tab calls it; the assignments the student then sees."""
    response = hub.server(student, "POST", f"assignments/{action}", data={"course_id": COURSE, "assignment_id": EXAM})
    assert response.ok, response.text
    result = response.json()
    assert result["success"], result.get("value")
    return result["value"]


def contents(hub: Hub, student: Student, path: str) -> requests.Response:
    return hub.server(student, "GET", f"api/contents/{path}", params={"content": "1"})


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
        run.root = root = top / "course"
        root.mkdir(mode=0o700)
        shutil.copytree(REPO / "source" / EXAM, root / "source" / EXAM)
        config = (REPO / "nbgrader_config.py").read_text()
        inside = 'c.Exchange.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exchange")'
        assert inside in config
        (root / "nbgrader_config.py").write_text(config.replace(inside, f"c.Exchange.root = {str(run.exchange)!r}"))
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


def ok(what: str, result: dict) -> None:
    """An nbgrader API call succeeded (else its log)."""
    assert result.get("success"), f"{what}: {result.get('log', '')[-3000:]}{result.get('error', '')}"


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
