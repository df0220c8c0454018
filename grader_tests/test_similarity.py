"""`mlphys similarity`: pairs of students whose solutions are alike, in a report only instructors can reach.

Each test builds a tiny nbgrader course in tmp_path: a released template with solution cells (given code in
them), and submissions written with nbformat.
"""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mlphys.cli import main
from mlphys.similarity import ReportRefused, Submission, build_report

ASSIGNMENT = "ps1"
NOTEBOOK = "fitting.ipynb"

INTRO = "# Fitting a line\n\nFit a straight line to noisy data by gradient descent."
GIVEN = """
import numpy as np


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=n)
    y = 2.0 * x + 0.5 + rng.normal(0, 0.1, size=n)
    return x, y
"""
# The solution cells as released: given code around "YOUR CODE HERE".
TEMPLATE = [
    '''
def predict(x, slope, intercept):
    """The line's value at x."""
    # YOUR CODE HERE
    raise NotImplementedError()
''',
    '''
def cost(x, y, slope, intercept):
    """Half the mean squared error of the line on (x, y)."""
    # YOUR CODE HERE
    raise NotImplementedError()
''',
    '''
def fit(x, y, steps, learning_rate):
    """Gradient descent from slope = intercept = 0; returns slope, intercept and the cost of each step."""
    slope, intercept = 0.0, 0.0
    costs = np.zeros(steps)
    for step in range(steps):
        costs[step] = cost(x, y, slope, intercept)
        # YOUR CODE HERE
        raise NotImplementedError()
    return slope, intercept, costs
''',
]
TEMPLATE_ANSWER = "YOUR ANSWER HERE"

ALICE = [
    '''
def predict(x, slope, intercept):
    """The line's value at x."""
    return slope * x + intercept
''',
    '''
def cost(x, y, slope, intercept):
    """Half the mean squared error of the line on (x, y)."""
    residuals = predict(x, slope, intercept) - y
    return 0.5 * np.mean(residuals ** 2)
''',
    '''
def fit(x, y, steps, learning_rate):
    """Gradient descent from slope = intercept = 0; returns slope, intercept and the cost of each step."""
    slope, intercept = 0.0, 0.0
    costs = np.zeros(steps)
    for step in range(steps):
        costs[step] = cost(x, y, slope, intercept)
        # the gradient of the cost with respect to both parameters
        error = predict(x, slope, intercept) - y
        grad_slope = np.mean(error * x)
        grad_intercept = np.mean(error)
        if not np.isfinite(grad_slope):
            print("<script>alert('diverged')</script>")
            break
        slope = slope - learning_rate * grad_slope
        intercept = intercept - learning_rate * grad_intercept
    return slope, intercept, costs
''',
]
# Alice's solution, copied: every name changed, comments reworded, the layout redone.
MALLORY = [
    '''
def predict(x, slope, intercept):
    """The line's value at x."""
    return slope*x+intercept
''',
    '''
def cost(x, y, slope, intercept):
    """Half the mean squared error of the line on (x, y)."""
    diff = predict(x,slope,intercept)-y   # how far off we are
    return 0.5*np.mean(diff**2)
''',
    '''
def fit(x, y, steps, learning_rate):
    """Gradient descent from slope = intercept = 0; returns slope, intercept and the cost of each step."""
    slope, intercept = 0.0, 0.0
    costs = np.zeros(steps)
    for step in range(steps):
        costs[step] = cost(x, y, slope, intercept)

        # derivative of C
        delta = predict(x,
                        slope,
                        intercept) - y
        d_m = np.mean(delta*x)
        d_b = np.mean(delta)

        if not np.isfinite(d_m):
            print("<script>alert('diverged')</script>")  # stop when it blows up
            break
        slope = slope-learning_rate*d_m
        intercept = intercept-learning_rate*d_b

    return slope, intercept, costs
''',
]
# The same task solved another way: residuals written out, a matrix form, sums instead of means.
BOB = [
    '''
def predict(x, slope, intercept):
    """The line's value at x."""
    return np.polyval([slope, intercept], x)
''',
    '''
def cost(x, y, slope, intercept):
    """Half the mean squared error of the line on (x, y)."""
    n = len(x)
    total = 0.0
    for xi, yi in zip(x, y):
        total += (slope * xi + intercept - yi) ** 2
    return total / (2 * n)
''',
    '''
def fit(x, y, steps, learning_rate):
    """Gradient descent from slope = intercept = 0; returns slope, intercept and the cost of each step."""
    slope, intercept = 0.0, 0.0
    costs = np.zeros(steps)
    for step in range(steps):
        costs[step] = cost(x, y, slope, intercept)
        design = np.stack([x, np.ones_like(x)], axis=1)
        params = np.array([slope, intercept])
        gradient = design.T @ (design @ params - y) / len(y)
        slope, intercept = params - learning_rate * gradient
    return slope, intercept, costs
''',
]

ANSWER_ALICE = (
    "The cost falls quickly during the first hundred steps and then levels off, because the gradient shrinks as "
    "the line approaches the least squares fit; a larger learning rate than about one makes it diverge."
)
ANSWER_BOB = "With lr = 0.1 the fit converges in a few hundred steps. Too big a step (lr > 1) oscillates and blows up."


def notebook(solutions: list[str], answer: str = TEMPLATE_ANSWER) -> nbformat.NotebookNode:
    """A notebook of the assignment with these solution cells (the released template's other cells around them)."""

    def solution(source: str, grade_id: str, markdown: bool = False) -> nbformat.NotebookNode:
        cell = (new_markdown_cell if markdown else new_code_cell)(textwrap.dedent(source).strip())
        cell.metadata["nbgrader"] = {
            "grade_id": grade_id,
            "solution": True,
            "grade": markdown,
            "locked": False,
            "schema_version": 3,
            "task": False,
            **({"points": 1} if markdown else {}),
        }
        return cell

    def locked(source: str, grade_id: str) -> nbformat.NotebookNode:
        cell = new_code_cell(source.strip())
        cell.metadata["nbgrader"] = {
            "grade_id": grade_id,
            "solution": False,
            "grade": True,
            "locked": True,
            "points": 1,
            "schema_version": 3,
            "task": False,
        }
        return cell

    cells = [new_markdown_cell(INTRO), new_code_cell(GIVEN.strip())]
    for number, source in enumerate(solutions, 1):
        cells.append(solution(source, f"part{number}"))
        cells.append(locked(f"assert callable(globals()['part{number}'])", f"test{number}"))
    cells.append(new_markdown_cell("How does the cost change with the learning rate?"))
    cells.append(solution(answer, "discussion", markdown=True))
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})


def write(path: Path, nb: nbformat.NotebookNode) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def course(root: Path, students: dict[str, list[str] | nbformat.NotebookNode]) -> Path:
    """A course directory with the released template and these students' submissions."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "nbgrader_config.py").write_text(
        f'c = get_config()\nc.CourseDirectory.course_id = "tiny"\nc.Exchange.root = {str(root / "exchange")!r}\n'
    )
    (root / "exchange").mkdir()
    write(root / "release" / ASSIGNMENT / NOTEBOOK, notebook(TEMPLATE))
    for student, solutions in students.items():
        nb = solutions if isinstance(solutions, nbformat.NotebookNode) else notebook(solutions)
        write(root / "submitted" / student / ASSIGNMENT / NOTEBOOK, nb)
    return root


def pairs(report_dir: Path) -> dict[frozenset[str], dict[str, str]]:
    with open(report_dir / "pairs.csv", newline="") as handle:
        return {frozenset((row["student_a"], row["student_b"])): row for row in csv.DictReader(handle)}


def flagged(report_dir: Path) -> set[frozenset[str]]:
    return {pair for pair, row in pairs(report_dir).items() if row["flagged"] == "yes"}


def test_a_copy_with_renamed_names_new_comments_and_layout_is_flagged(tmp_path: Path) -> None:
    root = course(tmp_path / "course", {"alice": ALICE, "bob": BOB, "mallory": MALLORY})
    report = build_report(root, ASSIGNMENT)
    out = root / "similarity" / ASSIGNMENT
    assert report.out_dir == out.resolve()
    assert flagged(out) == {frozenset({"alice", "mallory"})}
    row = pairs(out)[frozenset({"alice", "mallory"})]
    assert float(row["similarity_a"]) > 0.8 and float(row["similarity_b"]) > 0.8
    assert int(row["tokens_overlapping"]) > 100


def test_two_honest_solutions_of_the_same_task_are_not_flagged(tmp_path: Path) -> None:
    root = course(tmp_path / "course", {"alice": ALICE, "bob": BOB})
    build_report(root, ASSIGNMENT)
    row = pairs(root / "similarity" / ASSIGNMENT)[frozenset({"alice", "bob"})]
    assert row["flagged"] == "no", row
    assert float(row["similarity_a"]) < 0.3 and float(row["similarity_b"]) < 0.3


def test_code_given_in_the_template_does_not_make_students_alike(tmp_path: Path) -> None:
    """Two students who kept the template (given code in the solution cells) have nothing of their own in common;
    a student who wrote one line of a solution is not like everyone who wrote that line."""
    one_line = [ALICE[0], TEMPLATE[1], TEMPLATE[2]]
    root = course(
        tmp_path / "course",
        {"kept1": TEMPLATE, "kept2": TEMPLATE, "alice": ALICE, "one_line": one_line, "one_line_too": one_line},
    )
    build_report(root, ASSIGNMENT)
    rows = pairs(root / "similarity" / ASSIGNMENT)
    assert not flagged(root / "similarity" / ASSIGNMENT)
    assert rows[frozenset({"kept1", "kept2"})]["tokens_overlapping"] == "0"
    assert rows[frozenset({"kept1", "alice"})]["tokens_overlapping"] == "0"


def test_an_earlier_years_submission_is_matched_but_earlier_years_are_not_compared_with_each_other(
    tmp_path: Path,
) -> None:
    root = course(tmp_path / "course", {"bob": BOB, "mallory": MALLORY})
    earlier = tmp_path / "2024"
    for student in ("old_alice", "old_alice_twin"):
        write(earlier / student / ASSIGNMENT / NOTEBOOK, notebook(ALICE))
    report = build_report(root, ASSIGNMENT, references=[earlier])
    rows = pairs(report.out_dir)
    assert flagged(report.out_dir) == {
        frozenset({"mallory", "2024/old_alice"}),
        frozenset({"mallory", "2024/old_alice_twin"}),
    }
    assert rows[frozenset({"mallory", "2024/old_alice"})]["b_is_reference"] == "yes"
    assert frozenset({"2024/old_alice", "2024/old_alice_twin"}) not in rows
    assert len(rows) == 1 + 2 * 2  # bob-mallory, and each of them with each reference


def test_a_broken_submission_is_listed_not_fatal(tmp_path: Path) -> None:
    huge = [ALICE[0], ALICE[1], "x = [" + "1, " * 100_000 + "]"]
    root = course(tmp_path / "course", {"alice": ALICE, "mallory": MALLORY, "bob": BOB, "huge": huge})
    junk = root / "submitted" / "junk" / ASSIGNMENT / NOTEBOOK
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 100)
    (root / "submitted" / "absent" / ASSIGNMENT).mkdir(parents=True)
    (root / "submitted" / "not_json" / ASSIGNMENT).mkdir(parents=True)
    (root / "submitted" / "not_json" / ASSIGNMENT / NOTEBOOK).write_text('{"cells": [')

    report = build_report(root, ASSIGNMENT)

    not_compared = {s.student: s.problems for s in report.not_compared}
    assert set(not_compared) == {"junk", "absent", "not_json", "huge"}
    assert "not a valid Jupyter notebook" in not_compared["junk"][0]
    assert "not submitted" in not_compared["absent"][0]
    assert "more than" in not_compared["huge"][0]
    assert flagged(report.out_dir) == {frozenset({"alice", "mallory"})}  # the others were compared as usual
    with open(report.out_dir / "not_compared.csv", newline="") as handle:
        assert {row["student"] for row in csv.DictReader(handle)} == {"junk", "absent", "not_json", "huge"}
    page = (report.out_dir / "index.html").read_text()
    assert "Not compared" in page and "junk" in page


@pytest.mark.parametrize("where", ["release", "release/ps1", "feedback/alice", "exchange", "link_to_feedback"])
def test_the_report_is_never_written_where_students_can_read_it(tmp_path: Path, where: str) -> None:
    root = course(tmp_path / "course", {"alice": ALICE, "mallory": MALLORY})
    (root / "feedback").mkdir()
    (root / "link_to_feedback").symlink_to(root / "feedback")
    before = sorted(p for p in root.rglob("*"))
    with pytest.raises(ReportRefused, match="students can read"):
        build_report(root, ASSIGNMENT, out_dir=root / where / "similarity")
    assert sorted(p for p in root.rglob("*")) == before


def test_the_default_report_is_beside_the_course_folders_not_in_them(tmp_path: Path) -> None:
    root = course(tmp_path / "course", {"alice": ALICE, "mallory": MALLORY})
    report = build_report(root, ASSIGNMENT)
    written = {p.relative_to(root).parts[0] for p in root.rglob("*") if p.is_file()} - {"nbgrader_config.py"}
    assert written == {"release", "submitted", "similarity"}
    assert {p.name for p in report.out_dir.iterdir()} == {"index.html", "pairs.csv", "not_compared.csv"}
    assert (root / "similarity").stat().st_mode & 0o077 == 0  # the instructor's own folder


def test_the_page_escapes_what_students_wrote(tmp_path: Path) -> None:
    root = course(tmp_path / "course", {"alice": ALICE, "mallory": MALLORY})
    report = build_report(root, ASSIGNMENT)
    page = (report.out_dir / "index.html").read_text()
    assert "alert(" in page  # the flagged pair's code is shown ...
    assert "<script" not in page.lower()  # ... as text
    assert "&lt;script&gt;alert(" in page
    assert '<mark class="a">' in page and '<mark class="b">' in page  # the matching regions highlighted
    assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere


def test_copied_prose_answers_are_flagged_on_their_own(tmp_path: Path) -> None:
    reworded = ANSWER_ALICE.replace(";", ".").replace("The cost", "**The cost**").upper()
    root = course(tmp_path / "course", {})
    write(root / "submitted" / "alice" / ASSIGNMENT / NOTEBOOK, notebook(ALICE, ANSWER_ALICE))
    write(root / "submitted" / "bob" / ASSIGNMENT / NOTEBOOK, notebook(BOB, reworded))
    write(root / "submitted" / "carol" / ASSIGNMENT / NOTEBOOK, notebook(TEMPLATE, ANSWER_BOB))
    report = build_report(root, ASSIGNMENT)
    rows = pairs(report.out_dir)
    assert rows[frozenset({"alice", "bob"})]["flagged_for"] == "prose"
    assert rows[frozenset({"alice", "carol"})]["flagged"] == "no"


def test_extra_flags_hook_gets_the_submissions_and_has_a_section_of_its_own(tmp_path: Path) -> None:
    """The extension point for exams with per-student variants: its lines go to extra_flags.csv and the page."""
    root = course(tmp_path / "course", {"alice": ALICE, "bob": BOB, "mallory": MALLORY})
    seen: list[list[Submission]] = []

    def answers_fit_a_neighbours_variant(students: list[Submission]) -> list[tuple[str, str]]:
        seen.append(students)
        return [(s.student_id, "answers fit variant B <i>(alice's)</i>") for s in students if s.student_id == "bob"]

    report = build_report(root, ASSIGNMENT, extra_flags=answers_fit_a_neighbours_variant)
    assert [s.student_id for s in seen[0]] == ["alice", "bob", "mallory"]
    assert any(c.grade_id == "part3" for c in seen[0][0].cells)
    with open(report.out_dir / "extra_flags.csv", newline="") as handle:
        assert list(csv.DictReader(handle)) == [{"student": "bob", "finding": "answers fit variant B <i>(alice's)</i>"}]
    page = (report.out_dir / "index.html").read_text()
    assert "Further checks" in page and "answers fit variant B &lt;i&gt;" in page

    def broken(students: list[Submission]) -> list[tuple[str, str]]:
        raise RuntimeError("no variants file")

    report = build_report(root, ASSIGNMENT, extra_flags=broken)
    assert report.extra == [("", "the extra check failed: RuntimeError: no variants file")]
    assert flagged(report.out_dir) == {frozenset({"alice", "mallory"})}


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = course(tmp_path / "course", {"alice": ALICE, "bob": BOB, "mallory": MALLORY})
    earlier = tmp_path / "2024"
    write(earlier / "old_bob" / ASSIGNMENT / NOTEBOOK, notebook(BOB))
    out = tmp_path / "reports"
    code = main(
        [
            "similarity",
            ASSIGNMENT,
            "--root",
            str(root),
            "--reference",
            str(earlier),
            "--out",
            str(out),
            "--threshold",
            "0.6",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    assert flagged(out) == {frozenset({"alice", "mallory"}), frozenset({"bob", "2024/old_bob"})}
    assert "2 of 6 pairs flagged (threshold 0.6); 3 of 3 students compared" in printed
    assert str(out.resolve() / "index.html") in printed

    with pytest.raises(SystemExit, match="students can read"):
        main(["similarity", ASSIGNMENT, "--root", str(root), "--out", str(root / "feedback")])
    with pytest.raises(SystemExit, match="threshold"):
        main(["similarity", ASSIGNMENT, "--root", str(root), "--threshold", "50"])
    with pytest.raises(SystemExit, match="no released notebooks"):
        main(["similarity", "ps2", "--root", str(root)])
