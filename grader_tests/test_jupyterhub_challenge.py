"""03_autoencoder_challenge live, end to end through a real JupyterHub (the machinery of ``hub.py``): two students
with Unix users of their own log in, fetch the challenge and submit entries through their own servers, while the
instructor runs ``mlphys challenge serve`` beside the hub.

The story: the instructor releases the challenge, writes ``challenges.toml`` (one scored entry a day, an entry over
the limit refused) and starts the service; both students fetch, save their entry (notebook and weights file) and
submit; the service scores both and the public board shows them.  One student submits again the same day: refused,
and told so in their history.  Each student reads their own history through their server, and is refused the
other's (file permissions: the server runs as the student).  Then the end: the instructor moves the end a few
seconds ahead and runs the service again once it has passed; the final board, ranked by the private split, appears.

Needs root, ``useradd``, PAM, ``configurable-http-proxy`` and a sandbox for the entries; skipped otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

requests = pytest.importorskip("requests")
pytest.importorskip("jupyterhub")

from hub import (  # noqa: E402
    COURSE,
    STUDENTS_CONFIG,
    Hub,
    Student,
    assignment_action,
    contents,
    course_beside_exchange,
    unix_users,
    why_not,
)
from mlphys import assignments  # noqa: E402
from mlphys.demo.case import Materials  # noqa: E402
from mlphys.grading.execute import sandbox_problem  # noqa: E402
from mlphys.grading.nbgrader_api import CourseApps  # noqa: E402
from mlphys.live.publish import live_dir  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")]

REPO = Path(__file__).resolve().parent.parent
CHALLENGE = "03_autoencoder_challenge"
NOTEBOOK = assignments.get(CHALLENGE).notebook
TRACK = "MEDIUM/NORMAL"
SECRET = "the hub challenge's course secret"
SCORED_S = 180.0  # for the service to score what was handed in
END_AHEAD_S = 3.0  # from moving the end to the end


@dataclasses.dataclass
class ChallengeOnHub:
    """What happened, for the tests to look at."""

    keen: Student  # submits twice the same day: the second is over the limit
    other: Student
    root: Path
    live: Path  # <exchange>/<course>/live/<challenge>
    public_board: dict  # leaderboard.json once both first entries were scored
    public_page: str  # the board's index.html, read through a student's server
    histories: dict[str, dict]  # each student's own history, read through their own server
    others_history: requests.Response  # the keen student asking their server for the other's history
    inbound_owner: dict[str, int]
    final_board: dict
    final_history: dict  # the keen student's history after the end
    service_log: str
    seconds: float


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def write_rules(root: Path, end: dt.datetime) -> None:
    start = now() - dt.timedelta(hours=1)
    (root / "challenges.toml").write_text(
        f'["{CHALLENGE}"]\nstart = {start.isoformat()}\nend = {end.isoformat()}\n'
        'entries_per_day = 1\nover_limit = "refuse"\ncounting = "best"\nretrain_top = 0\n'
    )


def serve(root: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``mlphys challenge serve`` as the instructor runs it beside the hub (output into logs/live/)."""
    command = [str(Path(sys.executable).parent / "mlphys"), "challenge", "serve", CHALLENGE, "--root", str(root)]
    command += ["--poll", "0.5", "--workers", "1", "--warm-kernels", "0", *extra]
    (root / "logs").mkdir(exist_ok=True)
    with open(root / "logs" / "serve-output.log", "ab") as output:
        return subprocess.Popen(
            command,
            cwd=root,
            env={**os.environ, "MLPHYS_CHALLENGE_SECRET": SECRET},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the service and whatever it started (its whole session: ended by its process group)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def save_entry(hub: Hub, student: Student, case: str, materials: Materials, scratch: Path) -> None:
    """The files of the demo case ``case`` saved into the student's fetched folder through their server."""
    (found,) = [c for c in assignments.get(CHALLENGE).cases(materials) if c.student == case]
    folder = scratch / f"{student.name}-{case}"
    folder.mkdir()
    found.write(folder, materials)
    for path in sorted(folder.iterdir()):
        target = f"api/contents/{COURSE}/{CHALLENGE}/{path.name}"
        if path.suffix == ".ipynb":
            body = {"type": "notebook", "format": "json", "content": json.loads(path.read_text())}
        else:
            body = {"type": "file", "format": "base64", "content": base64.b64encode(path.read_bytes()).decode()}
        saved = hub.server(student, "PUT", target, json=body)
        assert saved.ok, saved.text


def read_json_as(hub: Hub, student: Student, link: str) -> requests.Response:
    """A file of the exchange read through the student's own server (a link in their home laid by root)."""
    return contents(hub, student, link)


def wait_until(condition: object, timeout: float, what: str, service: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        if service.poll() is not None:
            break
        time.sleep(0.5)
    log = (root / "logs" / "live" / "service.log").read_text(errors="replace")[-4000:]
    raise AssertionError(f"{what} did not happen in {timeout:.0f} s; the service's log:\n{log}")


def board_of(live: Path) -> dict:
    try:
        return json.loads((live / "board" / "leaderboard.json").read_text())
    except (OSError, ValueError):
        return {}


@pytest.fixture(scope="module")
def challenge_on_hub() -> Iterator[ChallengeOnHub]:
    reason = why_not() or sandbox_problem()
    if reason:
        pytest.skip(reason)
    began = time.monotonic()
    with contextlib.ExitStack() as cleanup, pytest.MonkeyPatch.context() as env:
        env.setenv("MLPHYS_CHALLENGE_SECRET", SECRET)
        top = Path(tempfile.mkdtemp(prefix="mlphys-hub-challenge-"))
        cleanup.callback(shutil.rmtree, top, ignore_errors=True)
        os.chmod(top, 0o711)
        suffix = secrets.token_hex(3)
        (top / "home").mkdir(mode=0o711)
        keen, other = cleanup.enter_context(unix_users(top / "home", [f"kim{suffix}", f"lee{suffix}"]))

        exchange = top / "exchange"
        exchange.mkdir()
        os.chmod(exchange, 0o777)
        students_config = top / "students-config"
        students_config.mkdir()
        (students_config / "nbgrader_config.py").write_text(
            STUDENTS_CONFIG.format(course=COURSE, exchange=str(exchange))
        )
        os.chmod(students_config, 0o755)
        hub = Hub(top / "hub", [keen, other], students_config)
        cleanup.callback(hub.stop)
        cleanup.push(lambda failed, *_: print(f"JupyterHub's log, its servers' too:\n{hub.tail()}") if failed else None)

        # The instructor: the course, the release, the rules, the service.
        root = course_beside_exchange(top / "course", CHALLENGE, exchange)
        env.chdir(root)
        apps = CourseApps(root)
        with contextlib.redirect_stdout(io.StringIO()):
            apps.generate_assignment(CHALLENGE)
            apps.release_assignment(CHALLENGE)
        write_rules(root, now() + dt.timedelta(days=1))
        service = serve(root)
        cleanup.callback(stop, service)
        live = live_dir(exchange, COURSE, CHALLENGE)

        # The students: log in, start their servers, fetch.
        hub.wait_until_up()
        for student in (keen, other):
            assert hub.log_in(student).status_code == 302, f"{student.name} could not log in"
            hub.get_token(student)
            hub.start_server(student)
        for student in (keen, other):
            hub.wait_for_server(student)
            listed = assignment_action(hub, student, "fetch", CHALLENGE)
            assert any(a["assignment_id"] == CHALLENGE and a["status"] == "fetched" for a in listed), listed

        # Each saves an entry and submits it: the reference weights, and undertrained ones.
        materials = Materials(REPO, CHALLENGE, NOTEBOOK)
        scratch = top / "scratch"
        scratch.mkdir()
        inbound = exchange / COURSE / "inbound"
        for student, case in ((keen, "undertrained"), (other, "ref_solution")):
            save_entry(hub, student, case, materials, scratch)
            assignment_action(hub, student, "submit", CHALLENGE)
        owners = {p.name.split("+")[0]: p.stat().st_uid for p in inbound.iterdir()}

        # The public board shows both.
        wait_until(
            lambda: len(board_of(live).get("boards", {}).get(TRACK, [])) == 2,
            SCORED_S,
            "both on the board",
            service,
            root,
        )
        public_board = board_of(live)

        # The keen student submits again the same day (the reference, now): over the limit of one, refused.
        save_entry(hub, keen, "ref_solution", materials, scratch)
        assignment_action(hub, keen, "submit", CHALLENGE)
        keen_history = live / "students" / f"{keen.name}.json"

        def refused() -> bool:
            with contextlib.suppress(OSError, ValueError):
                return [e["status"] for e in json.loads(keen_history.read_text())["entries"]] == ["scored", "refused"]
            return False

        wait_until(refused, 60, "the second entry refused", service, root)

        # Each reads their own history through their server, and tries the other's (links laid by root).
        histories = {}
        for student in (keen, other):
            for whose in (keen, other):
                (student.home / f"{whose.name}.json").symlink_to(live / "students" / f"{whose.name}.json")
            (student.home / "board.html").symlink_to(live / "board" / "index.html")
            response = read_json_as(hub, student, f"{student.name}.json")
            assert response.ok, response.text
            histories[student.name] = json.loads(response.json()["content"])
        others_history = read_json_as(hub, keen, f"{other.name}.json")
        page = contents(hub, other, "board.html")
        assert page.ok, page.text

        # The end: moved a few seconds ahead; the service, run again once it has passed, publishes the final board.
        stop(service)
        write_rules(root, now() + dt.timedelta(seconds=END_AHEAD_S))
        time.sleep(END_AHEAD_S + 0.5)
        final = serve(root, "--once")
        cleanup.callback(stop, final)
        assert final.wait(SCORED_S) == 0
        final_history = read_json_as(hub, keen, f"{keen.name}.json")
        assert final_history.ok, final_history.text

        run = ChallengeOnHub(
            keen=keen,
            other=other,
            root=root,
            live=live,
            public_board=public_board,
            public_page=page.json()["content"],
            histories=histories,
            others_history=others_history,
            inbound_owner=owners,
            final_board=board_of(live),
            final_history=json.loads(final_history.json()["content"]),
            service_log=(root / "logs" / "live" / "service.log").read_text(errors="replace"),
            seconds=time.monotonic() - began,
        )
        print(f"\nthe live challenge on JupyterHub: {run.seconds:.0f} s from the users' creation to the final board")
        yield run


# ---- what each side sees -----------------------------------------------------------------------------------------


def test_entries_submitted_through_the_students_servers_are_scored_onto_the_public_board(
    challenge_on_hub: ChallengeOnHub,
) -> None:
    run = challenge_on_hub
    for student in (run.keen, run.other):
        assert run.inbound_owner[student.name] == student.uid  # handed in by the student's own server
    board = run.public_board
    assert not board["final"] and board["ranked_by"] == "public_cost"
    rows = board["boards"][TRACK]
    assert [row["rank"] for row in rows] == [1, 2]
    assert all("private_cost" not in row for row in rows)  # nobody's private figure during the challenge
    names = {row["name"] for row in rows}
    assert run.keen.name not in names and run.other.name not in names  # pseudonyms, as on every board
    assert rows[0]["name"] == run.histories[run.other.name]["pseudonym"]  # the reference ranks first
    assert "<table" in run.public_page  # the board's page, readable by every student


def test_an_entry_over_the_day_s_limit_is_refused_and_the_student_is_told(challenge_on_hub: ChallengeOnHub) -> None:
    mine = challenge_on_hub.histories[challenge_on_hub.keen.name]
    assert mine["entries_per_day"] == 1
    first, second = mine["entries"]
    assert first["status"] == "scored" and first["tracks"][TRACK]["public"] > 0
    assert second["status"] == "refused" and "limit of 1" in second["reason"]


def test_each_student_reads_their_own_history_and_not_the_other_s(challenge_on_hub: ChallengeOnHub) -> None:
    run = challenge_on_hub
    for student in (run.keen, run.other):
        assert run.histories[student.name]["student"] == student.name
        assert "private" not in json.dumps(run.histories[student.name]["entries"])
        mode = (run.live / "students" / f"{student.name}.json").stat()
        assert mode.st_uid == student.uid and mode.st_mode & 0o077 == 0  # theirs alone
    assert run.others_history.status_code == 403, run.others_history.text  # their server may not read it
    assert "Permission denied" in run.others_history.text


def test_after_the_end_the_final_board_ranks_by_the_private_split(challenge_on_hub: ChallengeOnHub) -> None:
    run = challenge_on_hub
    board = run.final_board
    assert board["final"] and board["ranked_by"] == "private_cost"
    rows = board["boards"][TRACK]
    assert len(rows) == 2 and all(isinstance(row["private_cost"], float) for row in rows)
    assert run.final_history["final"]
    assert "private" in run.final_history["entries"][0]["tracks"][TRACK]
    assert "final boards published" in run.service_log
    assert "Traceback" not in run.service_log
