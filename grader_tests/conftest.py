"""Shared fixtures: a throwaway course in which the demo cohort is graded once per test session."""

from __future__ import annotations

import csv
import dataclasses
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from mlphys.cli import nbgrader
from mlphys.demo.case import Case
from mlphys.demo.cohort import cohort, write_cohort
from mlphys.grading.hidden import split_test_source

REPO = Path(__file__).resolve().parent.parent
ASSIGNMENT = "01_xor_nets"

# Short limits keep the hostile cases (hangs, floods, memory hogs) quick; the real config's
# limits are the same mechanism with larger numbers.
TEST_LIMITS = """
c.SandboxedExecute.timeout = 10
c.SandboxedExecute.notebook_timeout = 60
c.SandboxedExecute.memory_limit_mb = 1024
c.SandboxedExecute.max_processes = 64
"""


def run_nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return nbgrader(root, *args, check=False)


def make_course(root: Path) -> Path:
    """A fresh course directory holding the repository's source notebooks and configuration."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "source", root / "source")
    config = (REPO / "nbgrader_config.py").read_text() + TEST_LIMITS
    (root / "nbgrader_config.py").write_text(config)
    generated = run_nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    assert generated.returncode == 0, generated.stderr[-3000:]
    return root


@dataclasses.dataclass
class GradedCohort:
    root: Path
    cases: list[Case]
    scores: dict[str, float]
    autograde_log: str

    def case(self, student: str) -> Case:
        return next(c for c in self.cases if c.student == student)

    def autograded_notebook(self, student: str) -> Path:
        return self.root / "autograded" / student / ASSIGNMENT / "xor_nets.ipynb"

    def feedback_html(self, student: str) -> Path:
        return self.root / "feedback" / student / ASSIGNMENT / "xor_nets.html"

    def hidden_test_leaks(self) -> dict[str, list[str]]:
        """Lines of hidden-test source found in any autograded notebook or feedback page.

        A line the student's own submission contains (say ``except Exception:``) is not a leak.
        """
        secrets = hidden_test_lines(self.root / "source" / ASSIGNMENT / "xor_nets.ipynb")
        assert secrets
        leaks: dict[str, list[str]] = {}
        for folder, pattern in (("autograded", "*.ipynb"), ("feedback", "*.html")):
            for path in (self.root / folder).rglob(pattern):
                student = path.relative_to(self.root / folder).parts[0]
                own = "\n".join(
                    p.read_text(errors="replace")
                    for p in (self.root / "submitted" / student).rglob("*")
                    if p.is_file() and not p.is_symlink()
                )
                text = path.read_text(errors="replace")
                found = [line for line in secrets if line in text and line not in own]
                if found:
                    leaks[str(path.relative_to(self.root))] = found
        return leaks


def hidden_test_lines(source_notebook: Path) -> set[str]:
    """Every non-trivial line of hidden-test source in an instructor notebook."""
    lines: set[str] = set()
    for cell in nbformat.read(source_notebook, 4).cells:
        if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
            lines |= {line.strip() for line in split_test_source(cell.source)[1].splitlines() if len(line.strip()) > 12}
    return lines


def grade_cohort(root: Path) -> GradedCohort:
    cases = cohort(root, ASSIGNMENT)
    write_cohort(root, cases)
    graded = run_nbgrader(root, "autograde", ASSIGNMENT, "--force")
    run_nbgrader(root, "generate_feedback", ASSIGNMENT, "--force")
    exported = run_nbgrader(root, "export")
    assert exported.returncode == 0, exported.stderr[-3000:]
    with open(root / "grades.csv", newline="") as handle:
        scores = {row["student_id"]: float(row["score"]) for row in csv.DictReader(handle)}
    return GradedCohort(root, cases, scores, graded.stdout + graded.stderr)


@pytest.fixture(scope="session")
def graded(tmp_path_factory: pytest.TempPathFactory) -> GradedCohort:
    """The whole demo cohort (reference, blank, typical mistakes, attacks), graded once."""
    return grade_cohort(make_course(tmp_path_factory.mktemp("course")))
