"""``mlphys``: the course's command line.

``mlphys demo`` is the main job on the embedded defaults (SQLite gradebook, local sandbox): it
generates the student version of each assignment, writes a demo cohort of submissions, grades it with
plain ``nbgrader autograde`` through the committed ``nbgrader_config.py``, writes feedback, exports
the grades and prints a table of students and scores next to what each should get.  For a challenge
it then rebuilds the leaderboards from the gradebook, with the retraining check, as
``mlphys leaderboard`` does.

``mlphys leaderboard ASSIGNMENT`` rebuilds a challenge's boards (CSV, JSON, static HTML) from the
gradebook: public while the challenge runs, final (private split) once the due date has passed.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mlphys import assignments
from mlphys.demo.case import Case
from mlphys.demo.cohort import cohort, write_cohort
from mlphys.leaderboard import gather

CHALLENGES = {"03_autoencoder_challenge"}


def nbgrader(course_root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``nbgrader`` command of this environment in the course root."""
    bindir = str(Path(sys.executable).parent)
    # nbgrader calls other tools of its environment (alembic) by name.
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    result = subprocess.run(
        [shutil.which("nbgrader", path=env["PATH"]) or "nbgrader", *args],
        cwd=course_root,
        capture_output=True,
        text=True,
        env=env,
    )
    if check and result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-8000:])
        raise SystemExit(f"nbgrader {' '.join(args)} failed with exit code {result.returncode}")
    return result


def read_scores(course_root: Path) -> dict[tuple[str, str], float]:
    with open(course_root / "grades.csv", newline="") as handle:
        return {(row["assignment"], row["student_id"]): float(row["score"]) for row in csv.DictReader(handle)}


def demo(course_root: Path, assignments: list[str]) -> int:
    failures = 0
    for assignment in assignments:
        started = time.perf_counter()
        nbgrader(course_root, "generate_assignment", assignment, "--force")
        cases = cohort(course_root, assignment)
        write_cohort(course_root, cases)
        # A per-student problem makes nbgrader exit non-zero after grading everyone else; the table
        # below shows who it was.
        graded = nbgrader(course_root, "autograde", assignment, "--force", check=False)
        (course_root / f"autograde-{assignment}.log").write_text(graded.stdout + graded.stderr)
        nbgrader(course_root, "generate_feedback", assignment, "--force", check=False)
        nbgrader(course_root, "export")
        scores = read_scores(course_root)
        elapsed = time.perf_counter() - started
        print(f"\n{assignment}: {len(cases)} submissions graded in {elapsed:.1f} s\n")
        print(f"{'student':34} {'kind':10} {'score':>6} {'expected':>9}  check")
        for case in cases:
            score = scores.get((assignment, case.student), 0.0)
            if case.expected_points is None:
                ok = score == 0.0
                expected = "-"
            else:
                ok = score == case.expected_points
                expected = f"{case.expected_points:g}"
            failures += not ok
            print(f"{case.student:34} {case.kind:10} {score:6g} {expected:>9}  {'ok' if ok else 'WRONG'}")
        if assignment in CHALLENGES:
            failures += demo_boards(course_root, assignment, cases)
    print(f"\n{'all scores as expected' if not failures else f'{failures} unexpected scores'}")
    return 1 if failures else 0


def leaderboard(
    course_root: Path,
    assignment: str,
    retrain_top: int | None,
    final: bool | None,
    out: Path | None,
    retrain_students: list[str] | None = None,
) -> dict:
    """Retrain where asked, rebuild the boards, print them; returns the written paths and entries."""
    course = gather.Course.load(course_root)
    gather.run_retraining(course, assignment, retrain_top, students=retrain_students or ())
    out_dir = out or gather.default_out_dir(course_root, assignment)
    paths, is_final, entries = gather.rebuild_boards(course, assignment, out_dir, final=final)
    print(gather.summary(entries, is_final, course.secret))
    print(f"\nboards written: {', '.join(str(p) for p in paths.values())}")
    return {"paths": paths, "entries": entries}


def demo_boards(course_root: Path, assignment: str, cases: list[Case]) -> int:
    """Rebuild the demo's boards; check the retraining check flags exactly the cases that break the budget."""
    print(f"\n{assignment}: leaderboards, with the retraining check")
    built = leaderboard(course_root, assignment, None, None, None)
    flagged = {e.student for e in built["entries"] if e.retrain == "flagged"}
    expected = {c.student for c in cases if c.flagged_by_retraining}
    if flagged == expected:
        print(f"retraining check flagged {sorted(flagged)}: as expected")
        return 0
    print(f"retraining check flagged {sorted(flagged)}; expected {sorted(expected)}: WRONG")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlphys", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="grade the demo cohort of each assignment and print the scores")
    p_demo.add_argument("assignments", nargs="*", default=list(assignments.registry()))
    p_demo.add_argument("--root", type=Path, default=Path.cwd())
    p_board = sub.add_parser("leaderboard", help="rebuild a challenge's leaderboards from the gradebook")
    p_board.add_argument("assignment")
    p_board.add_argument("--root", type=Path, default=Path.cwd())
    p_board.add_argument("--out", type=Path, default=None, help="default: leaderboards/ASSIGNMENT")
    p_board.add_argument(
        "--retrain-top",
        type=int,
        default=None,
        help="entries per board to retrain (default: c.Leaderboard.retrain_top)",
    )
    p_board.add_argument(
        "--retrain-student", action="append", default=[], metavar="STUDENT", help="also retrain this student's entries"
    )
    which = p_board.add_mutually_exclusive_group()
    which.add_argument("--final", dest="final", action="store_true", default=None, help="rank by the private split")
    which.add_argument("--public", dest="final", action="store_false", help="rank by the public split")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.root.resolve(), args.assignments)
    if args.command == "leaderboard":
        leaderboard(args.root.resolve(), args.assignment, args.retrain_top, args.final, args.out, args.retrain_student)
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
