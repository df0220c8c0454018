"""Students see their own deadline in JupyterLab's Assignments list (issue 24): the server extension
``mlphys.course.deadlines_server`` and the labextension ``mlphys-deadlines`` (source in labextension/).

The deadline comes from the student's own variant file in the exchange (written by ``mlphys exam release``); a
student's server serves that student's deadlines alone, whatever the request asks.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbgrader.utils import get_username

from conftest import CHROMEDRIVER, CHROMIUM, free_port, headless_chromium
from mlphys.course.deadlines_server import own_deadlines
from mlphys.exam.delivery import release_variants

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
COURSE = "ml4physics"
EXAM = "07_exam"
MINE = "2026-12-06 11:30:00 (UTC+01:00)"  # my deadline, with my extension
THEIRS = "2026-12-06 11:00:00 (UTC+01:00)"
ME = get_username()  # whom the student's server serves: its own Unix user, as nbgrader's fetch and submit
OTHER = f"{ME}-neighbour"


def make_exchange(root: Path) -> Path:
    """An exchange with the exam released to me and a neighbour (each their own deadline), an assignment released
    without variants, and one whose variants were written for the neighbour alone."""
    exchange = root / "exchange"
    for assignment in (EXAM, "01_no_deadline"):
        folder = exchange / COURSE / "outbound" / assignment
        folder.mkdir(parents=True)
        (folder / f"{assignment}.ipynb").write_text(
            json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
        )
    deadline = {ME: MINE, OTHER: THEIRS}
    release_variants(exchange, COURSE, EXAM, [ME, OTHER], lambda s: {"n": len(s)}, deadline.__getitem__)
    release_variants(exchange, COURSE, "05_theirs_only", [OTHER], lambda s: {"n": 1}, deadline.__getitem__)
    return exchange


# --- what the server extension reads -------------------------------------------------------------------------


def test_each_student_gets_their_own_deadline_only(tmp_path: Path) -> None:
    exchange = make_exchange(tmp_path)
    assert own_deadlines(exchange, COURSE, ME) == {EXAM: MINE}  # every released assignment by default
    assert own_deadlines(exchange, COURSE, OTHER) == {EXAM: THEIRS}
    # Asking for an assignment whose only variant file is another student's gives nothing.
    assert own_deadlines(exchange, COURSE, ME, ["05_theirs_only"]) == {}
    assert own_deadlines(exchange, COURSE, OTHER, ["05_theirs_only"]) == {"05_theirs_only": THEIRS}


def test_a_file_in_my_name_holding_someone_elses_variant_is_not_my_deadline(tmp_path: Path) -> None:
    exchange = make_exchange(tmp_path)
    mine = exchange / COURSE / "variants" / EXAM / f"{ME}.json"
    data = json.loads(mine.read_text())
    mine.write_text(json.dumps({**data, "student": OTHER}))
    assert own_deadlines(exchange, COURSE, ME) == {}


def test_missing_broken_and_unsafe_names_give_no_deadline(tmp_path: Path) -> None:
    exchange = make_exchange(tmp_path)
    assert own_deadlines(tmp_path / "nowhere", COURSE, ME) == {}
    assert own_deadlines(exchange, "another_course", ME) == {}
    (exchange / COURSE / "variants" / EXAM / f"{ME}.json").write_text("{half written")
    assert own_deadlines(exchange, COURSE, ME) == {}
    # Ids that would leave the exchange's own folders are refused, not followed.
    assert own_deadlines(exchange, COURSE, ME, ["../variants/07_exam", "..", ".hidden"]) == {}
    assert own_deadlines(exchange, "..", ME) == {}
    assert own_deadlines(exchange, COURSE, "../07_exam/" + OTHER, [EXAM]) == {}


# --- installed and served by a real Jupyter server ------------------------------------------------------------


def test_the_labextension_is_installed_and_enabled() -> None:
    listing = subprocess.run(
        [str(VENV_BIN / "jupyter"), "labextension", "list"], capture_output=True, text=True, timeout=60
    )
    lines = [line for line in (listing.stdout + listing.stderr).splitlines() if "mlphys-deadlines" in line]
    assert lines, listing.stdout + listing.stderr
    assert "enabled" in lines[0] and "OK" in lines[0], lines[0]


def test_a_regular_install_lays_down_the_extension_and_enables_the_server_half(tmp_path: Path) -> None:
    """What the Docker images and ``pip install .`` get: the wheel built from what the images copy (pyproject,
    README, src) carries the built labextension and the server extension's config as data files."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, context / name)
    shutil.copytree(REPO / "src", context / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".", "-w", "wheel"],
        cwd=context,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = (context / "wheel").glob("mlphys-*.whl")
    data = {name.split(".data/data/", 1)[1] for name in zipfile.ZipFile(wheel).namelist() if ".data/data/" in name}
    built = REPO / "src" / "mlphys" / "course" / "labextension"
    expected = {"share/jupyter/labextensions/mlphys-deadlines/package.json"} | {
        f"share/jupyter/labextensions/mlphys-deadlines/static/{p.name}" for p in (built / "static").iterdir()
    }
    assert expected <= data, sorted(data)
    assert "etc/jupyter/jupyter_server_config.d/mlphys-deadlines.json" in data
    config = json.loads((REPO / "src" / "mlphys" / "course" / "jupyter-config" / "mlphys-deadlines.json").read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"mlphys.course.deadlines_server": True}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A student's Jupyter server (JupyterLab, nbgrader's assignment list, and this package's extensions as
    installed), its nbgrader config pointing at a test exchange."""
    root = tmp_path_factory.mktemp("deadlines")
    exchange = make_exchange(root)
    home = root / "home"
    home.mkdir()
    (home / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = {COURSE!r}\nc.Exchange.root = {str(exchange)!r}\n"
    )
    token, port = "deadlines-test-token", free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(root / "config"),  # no user config: only what the install laid down
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
    }
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(VENV_BIN / "jupyter"),
            "lab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={home}",
            "--LabApp.expose_app_in_browser=True",
        ],
        cwd=home,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(port, "/api/status", token)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("Jupyter server did not start:\n" + (root / "server.log").read_text()[-3000:])
            time.sleep(0.2)
        yield {"port": str(port), "token": token, "url": f"http://127.0.0.1:{port}", "log": str(root / "server.log")}
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def get(port: int | str, path: str, token: str | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=20)
    try:
        connection.request("GET", path, headers={"Authorization": f"token {token}"} if token else {})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def test_the_server_serves_the_logged_in_students_own_deadlines(server: dict[str, str]) -> None:
    port, token = server["port"], server["token"]
    status, body = get(port, f"/mlphys/deadlines?course_id={COURSE}", token)
    assert status == 200, body
    assert json.loads(body) == {EXAM: MINE}
    # Naming another student or their assignment gets nothing of theirs: the student is the server's user.
    status, body = get(
        port, f"/mlphys/deadlines?course_id={COURSE}&assignment_id=05_theirs_only&student={OTHER}", token
    )
    assert (status, json.loads(body)) == (200, {})
    status, body = get(port, "/mlphys/deadlines?course_id=..&assignment_id=..", token)
    assert (status, json.loads(body)) == (200, {})


def test_the_deadlines_need_the_students_login(server: dict[str, str]) -> None:
    status, body = get(server["port"], f"/mlphys/deadlines?course_id={COURSE}")
    assert status in (302, 403), (status, body)
    assert MINE not in body


def test_the_served_labextension_adds_the_due_label(server: dict[str, str]) -> None:
    port, token = server["port"], server["token"]
    status, page = get(port, "/lab", token)
    assert status == 200, page
    # The page's config lists the federated extensions JupyterLab loads: ours among them, with its entry point.
    found = re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S)
    assert found, page[:2000]
    config = json.loads(found.group(1))
    extension = next(e for e in config["federated_extensions"] if e["name"] == "mlphys-deadlines")
    assert extension["load"].startswith("static/remoteEntry.")
    assert "mlphys-deadlines" not in config.get("disabledExtensions", [])
    static = REPO / "src" / "mlphys" / "course" / "labextension" / "static"
    code = ""
    for chunk in sorted(static.glob("*.js")):
        status, served = get(port, f"/lab/extensions/mlphys-deadlines/static/{chunk.name}", token)
        assert status == 200, chunk.name
        code += served
    # The built code asks the server for the deadlines and writes them, as text, into nbgrader's rows.
    for needle in (
        "mlphys-due",
        "nbgrader-assignment-list",
        "item_course",
        "mlphys",
        "deadlines",
        "due ",
        "MutationObserver",
        "textContent",
    ):
        assert needle in code, needle


# --- optional: the Assignments panel in a headless browser ----------------------------------------------------


def test_the_assignments_panel_shows_my_deadline(server: dict[str, str]) -> None:
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
    from selenium.webdriver.support.ui import WebDriverWait

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/setup.sh installs them as root)")
    with headless_chromium("1280,1000") as driver:
        driver.get(f"{server['url']}/lab?token={server['token']}")
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script(
                "return !!(window.jupyterapp && window.jupyterapp.commands"
                " && window.jupyterapp.commands.hasCommand('nbgrader:open-assignment-list'))"
            )
        )
        driver.execute_script("window.jupyterapp.commands.execute('nbgrader:open-assignment-list')")
        rows = """
            return Array.from(document.querySelectorAll('#nbgrader-assignment-list .list_item'))
              .filter(row => row.querySelector(':scope > div > .item_course'))
              .map(row => row.querySelector(':scope > div > .item_name').textContent.trim());
        """
        WebDriverWait(driver, 60).until(
            lambda d: any("due" in row for row in d.execute_script(rows)),
            message="no due label in the Assignments panel",
        )
        time.sleep(0.5)  # let any other row's lookup finish too
        shown = driver.execute_script(rows)
    assert f"{EXAM}due {MINE}" in shown, shown
    assert "01_no_deadline" in shown, shown  # an assignment without a deadline keeps its row, with no label
    assert THEIRS not in " ".join(shown)
