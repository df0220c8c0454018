"""Seconds per notebook: this grading engine against stock nbgrader, on the same cohort, in one run.

    .venv/bin/python benchmarks/bench_autograde.py [--copies 2] [--rounds 2] [ASSIGNMENT ...]

For each assignment, both engines grade the honest part of its demo cohort (the reference solution,
the blank release and the typical mistakes; the attacks would hang or break stock nbgrader) with plain
`nbgrader autograde`: stock nbgrader with its default preprocessors (hidden tests in the student's
kernel), this engine with the committed nbgrader_config.py (sandboxed kernel, hidden tests in the
grader).  Rounds alternate between the engines; the best round of each is reported.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from mlphys import assignments
from mlphys.cli import nbgrader
from mlphys.demo.case import Materials
from mlphys.demo.cohort import cohort

REPO = Path(__file__).resolve().parent.parent
# Stock nbgrader runs hidden tests in the student's kernel, so the kernel gets the check helpers.
STOCK_CONFIG = """c = get_config()
c.CourseDirectory.course_id = "bench"
c.Execute.timeout = 60
c.Execute.extra_arguments = ["--IPKernelApp.exec_lines=from mlphys.grading.checks import *"]
"""


def scores(root: Path) -> dict[str, str]:
    nbgrader(root, "export")
    with open(root / "grades.csv", newline="") as handle:
        return {row["student_id"]: row["score"] for row in csv.DictReader(handle)}


def make_course(root: Path, config: str, assignment: str, copies: int) -> int:
    shutil.copytree(REPO / "source" / assignment, root / "source" / assignment)
    (root / "nbgrader_config.py").write_text(config)
    nbgrader(root, "generate_assignment", assignment, "--force")
    honest = [c for c in cohort(root, assignment) if c.kind != "attack"]
    materials = Materials(root, assignment, assignments.get(assignment).notebook)
    for copy in range(copies):
        for case in honest:
            directory = root / "submitted" / f"{case.student}_{copy}" / assignment
            directory.mkdir(parents=True)
            case.write(directory, materials)
    return copies * len(honest)


@dataclasses.dataclass
class Engine:
    name: str
    root: Path
    assignment: str
    notebooks: int = 0
    best: float = float("inf")

    def grade(self) -> float:
        started = time.perf_counter()
        nbgrader(self.root, "autograde", self.assignment, "--force")
        elapsed = time.perf_counter() - started
        self.best = min(self.best, elapsed)
        return elapsed


def bench(assignment: str, copies: int, rounds: int, tmp: Path) -> None:
    engines = [
        Engine("stock nbgrader", tmp / "stock", assignment),
        Engine("mlphys sandbox", tmp / "mlphys", assignment),
    ]
    configs = (STOCK_CONFIG, (REPO / "nbgrader_config.py").read_text())
    for engine, config in zip(engines, configs, strict=True):
        engine.root.mkdir()
        engine.notebooks = make_course(engine.root, config, assignment, copies)
    for round_ in range(rounds):
        for engine in engines:
            elapsed = engine.grade()
            print(
                f"{assignment} round {round_ + 1}: {engine.name:15} {elapsed:7.2f} s for {engine.notebooks} notebooks"
            )
    stock, ours = engines
    print(f"\n{assignment}")
    print(f"{'engine':15} {'notebooks':>9} {'best s':>8} {'s/notebook':>11}")
    for engine in engines:
        print(f"{engine.name:15} {engine.notebooks:9d} {engine.best:8.2f} {engine.best / engine.notebooks:11.3f}")
    print(f"ratio (mlphys / stock, per notebook): {ours.best / stock.best:.2f}x")
    stock_scores, our_scores = scores(stock.root), scores(ours.root)
    differ = sorted(s for s in our_scores if our_scores[s] != stock_scores.get(s))
    print(f"submissions scored differently by the two engines: {len(differ)} of {len(our_scores)}")
    for student in differ:
        print(f"  {student}: stock {stock_scores.get(student)}, mlphys {our_scores[student]}")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", default=list(assignments.registry()))
    parser.add_argument("--copies", type=int, default=2, help="copies of the honest cohort")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for assignment in args.assignments:
        with tempfile.TemporaryDirectory() as tmp:
            bench(assignment, args.copies, args.rounds, Path(tmp))


if __name__ == "__main__":
    main()
