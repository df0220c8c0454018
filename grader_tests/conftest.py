"""Shared fixtures: a throwaway course in which every assignment's demo cohort is graded once."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import typing as t
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from mlphys import assignments
from mlphys.cli import DEMO_SECRET, nbgrader
from mlphys.demo.case import Case, Materials
from mlphys.demo.cohort import cohort, hand_in_cohort
from mlphys.grading import parallel
from mlphys.grading.hidden import split_test_source
from mlphys.grading.nbgrader_api import CourseApps

REPO = Path(__file__).resolve().parent.parent
# Challenges are scored only with a secret; the tests' courses use the demo's (set before any grading).
os.environ.setdefault("MLPHYS_CHALLENGE_SECRET", DEMO_SECRET)
# MNIST for 06_boltzmann_mnist: CI clones the repository with ../shared (the 10,000 test digits) beside it.
os.environ.setdefault("MLPHYS_MNIST", str(REPO.parent / "shared" / "data" / "mnist"))
ASSIGNMENT = "01_xor_nets"  # the assignment the attack catalogue is graded on

# Short limits keep the hostile cases (hangs, floods, memory hogs) quick; the real config's
# limits are the same mechanism with larger numbers.
TEST_LIMITS = """
c.SandboxedExecute.timeout = 20
c.SandboxedExecute.notebook_timeout = 120
c.SandboxedExecute.memory_limit_mb = 1024
c.SandboxedExecute.max_processes = 64
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def formgrader_server(course: Path, home: Path) -> Iterator[tuple[str, str]]:
    """A real ``jupyter server`` with nbgrader's formgrader in ``course``; yields (base URL, token).

    ``home`` keeps the personal Jupyter configuration of whoever runs the tests out of it.
    """
    token, port = secrets.token_hex(16), free_port()
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": str(bindir) + os.pathsep + os.environ.get("PATH", ""),
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    log_path = home / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [
                str(bindir / "jupyter-server"),
                "--no-browser",
                "--allow-root",  # CI and containers run as root; the server listens on localhost only
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={course}",
            ],
            cwd=course,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5)
                    break
                except OSError:
                    assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                    time.sleep(0.5)
            yield base, token
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


CHROMIUM = Path("/usr/bin/chromium")  # Debian's, installed by scripts/setup.sh with chromium-driver
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@contextlib.contextmanager
def headless_chromium(window_size: str | None = None) -> Iterator[t.Any]:
    """A selenium driver of Debian's headless chromium, quit afterwards; the caller decides what its absence means
    (a skip or a failure) before asking for one."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    if window_size is not None:
        options.add_argument(f"--window-size={window_size}")
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def run_nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return nbgrader(root, *args, check=False)


def make_course(root: Path) -> Path:
    """A fresh course directory holding the repository's source notebooks and configuration."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "source", root / "source")
    config = (REPO / "nbgrader_config.py").read_text() + TEST_LIMITS
    (root / "nbgrader_config.py").write_text(config)
    for assignment in assignments.registry():
        generated = run_nbgrader(root, "generate_assignment", assignment, "--force")
        assert generated.returncode == 0, generated.stderr[-3000:]
    return root


def hidden_test_lines(source_notebook: Path) -> set[str]:
    """Every non-trivial line of hidden-test source in an instructor notebook."""
    lines: set[str] = set()
    for cell in nbformat.read(source_notebook, 4).cells:
        if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
            lines |= {line.strip() for line in split_test_source(cell.source)[1].splitlines() if len(line.strip()) > 12}
    return lines


@dataclasses.dataclass
class GradedCohort:
    """One assignment's demo cohort after autograde, feedback and export."""

    root: Path
    assignment: str
    cases: list[Case]
    scores: dict[str, float]
    autograde_log: str

    @property
    def notebook(self) -> str:
        return assignments.get(self.assignment).notebook

    @property
    def source_notebook(self) -> Path:
        return self.root / "source" / self.assignment / f"{self.notebook}.ipynb"

    def autograded_points(self) -> float:
        """What a perfect submission scores before any manual grading: the points of the test cells."""
        return sum(Materials(self.root, self.assignment, self.notebook).test_points().values())

    def case(self, student: str) -> Case:
        return next(c for c in self.cases if c.student == student)

    def autograded_notebook(self, student: str) -> Path:
        return self.root / "autograded" / student / self.assignment / f"{self.notebook}.ipynb"

    def feedback_html(self, student: str) -> Path:
        return self.root / "feedback" / student / self.assignment / f"{self.notebook}.html"

    def hidden_test_leaks(self) -> dict[str, list[str]]:
        """Lines of hidden-test source found in any autograded notebook or feedback page.

        A line the student's own submission contains (say ``except Exception:``) is not a leak.
        """
        secrets = hidden_test_lines(self.source_notebook)
        assert secrets
        leaks: dict[str, list[str]] = {}
        for folder, pattern in (("autograded", "*.ipynb"), ("feedback", "*.html")):
            for path in (self.root / folder).glob(f"*/{self.assignment}/**/{pattern}"):
                student = path.relative_to(self.root / folder).parts[0]
                own = "\n".join(
                    p.read_text(errors="replace")
                    for p in (self.root / "submitted" / student / self.assignment).rglob("*")
                    if p.is_file() and not p.is_symlink()
                )
                text = path.read_text(errors="replace")
                found = [line for line in secrets if line in text and line not in own]
                if found:
                    leaks[str(path.relative_to(self.root))] = found
        return leaks


def grade_cohort(root: Path, assignment: str, kinds: tuple[str, ...] | None = None) -> GradedCohort:
    """Write the cohort and grade it with ``mlphys autograde`` (several students at once, one per core; the same
    grades as ``nbgrader autograde``: test_parallel.py), then feedback and export with nbgrader."""
    cases = [c for c in cohort(root, assignment) if kinds is None or c.kind in kinds]
    hand_in_cohort(root, assignment, cases, CourseApps(root))  # as the demo: an exam's late cases via the exchange
    log = io.StringIO()
    parallel.autograde(root, assignment, nbgrader_args=["--force"], out=log)
    run_nbgrader(root, "generate_feedback", assignment, "--force")
    exported = run_nbgrader(root, "export")
    assert exported.returncode == 0, exported.stderr[-3000:]
    return GradedCohort(root, assignment, cases, read_grades(root, assignment), log.getvalue())


def read_grades(root: Path, assignment: str) -> dict[str, float]:
    with open(root / "grades.csv", newline="") as handle:
        rows = csv.DictReader(handle)
        return {row["student_id"]: float(row["score"]) for row in rows if row["assignment"] == assignment}


@dataclasses.dataclass
class DemoRun:
    """``mlphys demo`` run through the CLI in a course: its exit status and what it printed."""

    root: Path
    exit_status: int
    output: str

    @property
    def last_line(self) -> str:
        return self.output.strip().splitlines()[-1]


def run_demo(root: Path, *args: str) -> DemoRun:
    from mlphys.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["demo", *args, "--root", str(root)])
    return DemoRun(root, status, printed.getvalue())


@pytest.fixture(scope="session")
def full_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``mlphys demo --full`` in a fresh course (with the tests' short time limits): every case of every
    assignment's cohort graded (reference, blank, typical mistakes, honest entries, attacks), feedback and
    grades written, every challenge's boards built with the retraining check."""
    return run_demo(make_course(tmp_path_factory.mktemp("course")), "--full")


@pytest.fixture(scope="session")
def course(full_demo: DemoRun) -> dict[str, GradedCohort]:
    """Every assignment's demo cohort as the full demo graded it."""
    root = full_demo.root
    return {
        assignment: GradedCohort(
            root,
            assignment,
            cohort(root, assignment),
            read_grades(root, assignment),
            (root / f"autograde-{assignment}.log").read_text(),
        )
        for assignment in assignments.registry()
    }


@pytest.fixture(scope="session")
def graded(course: dict[str, GradedCohort]) -> GradedCohort:
    """The cohort that holds the attack catalogue."""
    return course[ASSIGNMENT]
