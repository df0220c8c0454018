"""A real JupyterHub on loopback for the end-to-end tests (``test_jupyterhub_exam.py``,
``test_jupyterhub_challenge.py``): Unix users with passwords, JupyterHub with PAM and its local process spawner (each
server runs as its student's Unix user), nbgrader's JupyterHub auth plug-in, students working through HTTP requests.

Needs root, ``useradd``, PAM and ``configurable-http-proxy`` (``scripts/setup.sh`` installs it with npm into the
virtual environment): :func:`why_not` says what is missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("jupyterhub")

REPO = Path(__file__).resolve().parent.parent
COURSE = "ml4physics"  # the repository's nbgrader_config.py
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


def course_beside_exchange(root: Path, assignment: str, exchange: Path) -> Path:
    """A course folder (mode 700) with ``assignment``'s source and the repository's ``nbgrader_config.py``, its
    exchange at ``exchange``, outside the course, as on a JupyterHub."""
    root.mkdir(mode=0o700)
    shutil.copytree(REPO / "source" / assignment, root / "source" / assignment)
    config = (REPO / "nbgrader_config.py").read_text()
    inside = 'c.Exchange.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exchange")'
    assert inside in config
    (root / "nbgrader_config.py").write_text(config.replace(inside, f"c.Exchange.root = {str(exchange)!r}"))
    return root


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
            json={"note": "the hub test", "expires_in": 3600},
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


def assignment_action(hub: Hub, student: Student, action: str, assignment: str) -> list[dict]:
    """nbgrader's assignment-list endpoint ``/assignments/<action>`` (fetch, submit, fetch_feedback), as the
    Assignments tab calls it; the assignments the student then sees."""
    data = {"course_id": COURSE, "assignment_id": assignment}
    response = hub.server(student, "POST", f"assignments/{action}", data=data)
    assert response.ok, response.text
    result = response.json()
    assert result["success"], result.get("value")
    return result["value"]


def contents(hub: Hub, student: Student, path: str) -> requests.Response:
    return hub.server(student, "GET", f"api/contents/{path}", params={"content": "1"})


def ok(what: str, result: dict) -> None:
    """An nbgrader API call succeeded (else its log)."""
    assert result.get("success"), f"{what}: {result.get('log', '')[-3000:]}{result.get('error', '')}"
