"""The README's main job, ``mlphys demo``: what it grades, what it says at the end, and that CI runs it as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import REPO, DemoRun, make_course, run_demo
from mlphys import assignments
from mlphys.demo import cohort as demo_cohort
from mlphys.demo.case import Case


def readme_commands() -> list[str]:
    """The commands of the README's first ``bash`` block, without their comments."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "the README starts with a bash block of commands"
    commands = []
    for line in block.group(1).splitlines():
        command = line.split(" #", 1)[0].strip()
        if command and not command.startswith("#"):
            commands.append(command)
    return commands


def test_the_readme_starts_with_the_two_commands_and_ci_runs_them_as_written() -> None:
    setup_and_demo, tests = readme_commands()
    assert setup_and_demo == "bash scripts/setup.sh && .venv/bin/mlphys demo"
    assert shlex.split(tests)[:3] == [".venv/bin/python", "-m", "pytest"]
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    for command in (setup_and_demo, tests):
        assert any(line == command or line.endswith(f" {command}") for line in ci_lines), (
            f"`{command}` is the README's, and .ci/run does not run it as written"
        )


def test_the_full_demo_grades_every_case_as_expected_and_builds_every_board(full_demo: DemoRun) -> None:
    cases = sum(len(demo_cohort.cohort(full_demo.root, a)) for a in assignments.registry())
    boards = len(assignments.challenges())
    assert full_demo.exit_status == 0, full_demo.output[-6000:]
    assert re.fullmatch(rf"all {cases} cases as expected, {boards} boards built in \d+ s", full_demo.last_line)
    for assignment, plugin in assignments.registry().items():
        assert str(full_demo.root / "feedback" / "ref_solution" / assignment / f"{plugin.notebook}.html") in (
            full_demo.output
        )
    for assignment in assignments.challenges():
        assert (full_demo.root / "leaderboards" / assignment / "index.html").is_file()


@pytest.mark.parametrize("assignment", list(assignments.registry()))
def test_the_quick_demo_shows_every_kind_of_case_of_each_assignment(assignment: str) -> None:
    cases = demo_cohort.cohort(REPO, assignment)
    quick = [c for c in cases if c.quick]
    kinds = {c.kind for c in quick}
    assert {"reference", "blank", "mistake"} <= kinds
    if any(c.kind == "attack" for c in cases):
        assert "attack" in kinds
    if any(c.flagged_by_retraining for c in cases):  # the retraining check has something to catch
        assert any(c.flagged_by_retraining for c in quick)
    assert len(quick) <= 12, "the quick demo must stay quick"


def test_the_quick_demo_tries_attacks_of_several_kinds() -> None:
    attacks = [c for a in assignments.registry() for c in demo_cohort.cohort(REPO, a) if c.quick and c.kind == "attack"]
    assert len(attacks) >= 6
    assert len({c.assignment for c in attacks}) >= 4


def test_a_case_that_goes_wrong_makes_the_demo_fail_and_its_last_line_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = demo_cohort.cohort

    def expecting_too_much(course_root: Path, assignment: str) -> list[Case]:
        return [
            Case(c.student, c.assignment, c.kind, c.description, c.write, 99.0, quick=True)
            if c.kind == "reference"
            else c
            for c in real(course_root, assignment)
        ]

    monkeypatch.setattr(demo_cohort, "cohort", expecting_too_much)
    run = run_demo(make_course(tmp_path / "course"), "01_xor_nets", "--kinds", "reference,blank")
    assert run.exit_status == 1
    assert run.last_line.startswith("NOT AS EXPECTED")
    assert "1 of 2 cases not as expected: 01_xor_nets/ref_solution" in run.last_line
