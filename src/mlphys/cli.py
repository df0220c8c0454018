"""``mlphys``: the course's command line.

``mlphys demo`` is the main job on the embedded defaults (SQLite gradebook, local sandbox): it
generates the student version of each assignment, writes a demo cohort of submissions, grades it with
nbgrader's autograde through the committed ``nbgrader_config.py`` (several students at once, as
``mlphys autograde``), writes feedback, exports
the grades and prints a table of students and scores next to what each should get.  For a challenge
it then rebuilds the leaderboards from the gradebook, with the retraining check, as
``mlphys leaderboard`` does.

``mlphys autograde ASSIGNMENT [--student S] [--force] [--workers N] [--scheduler ADDRESS]`` is
``nbgrader autograde`` with several students graded at once (``mlphys.grading.parallel``): nbgrader's own app,
one process per student, on a local pool (default one worker per core) or a Dask cluster; any other argument goes
to nbgrader as given.

``mlphys leaderboard ASSIGNMENT`` rebuilds a challenge's boards (CSV, JSON, static HTML) from the
gradebook: public while the challenge runs, final (private split) once the due date has passed.

``mlphys exam schedule ASSIGNMENT`` writes an exam's time window from ``exams.toml`` into nbgrader's gradebook
(due date, each student's extension) and prints every student's window (``mlphys.exam``).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
import typing as t
from pathlib import Path

from mlphys.demo import DEMO_SECRET
from mlphys.grading import parallel

# The engine, demo and leaderboard are imported by the commands that use them: `mlphys autograde` then starts
# grading while its fork server imports the engine (about 2 s) instead of after the CLI has done so too.
if t.TYPE_CHECKING:
    from mlphys.demo.case import Case


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


def demo_environment(root: Path) -> None:
    """The demo's own course: a fixed secret where none is set, so that its cohort always meets the same hidden
    data; MNIST from ``../shared/data/mnist`` beside the clone where it is there and no other is given (offline
    development machines and CI keep it there; elsewhere it is downloaded once)."""
    if not os.environ.get("MLPHYS_CHALLENGE_SECRET"):
        os.environ["MLPHYS_CHALLENGE_SECRET"] = DEMO_SECRET
    shared_mnist = root.resolve().parent / "shared" / "data" / "mnist"
    if not os.environ.get("MLPHYS_MNIST") and shared_mnist.is_dir():
        os.environ["MLPHYS_MNIST"] = str(shared_mnist)


def read_scores(course_root: Path) -> dict[tuple[str, str], float]:
    with open(course_root / "grades.csv", newline="") as handle:
        return {(row["assignment"], row["student_id"]): float(row["score"]) for row in csv.DictReader(handle)}


KINDS = ("reference", "blank", "mistake", "honest", "attack")  # honest: challenge entries that keep the rules


def demo(
    course_root: Path,
    assignment_ids: list[str],
    kinds: tuple[str, ...] = KINDS,
    workers: int | None = None,
    full: bool = False,
) -> int:
    """Grade the demo cohort of each assignment (its quick cases, or every case with ``full``), build every
    challenge's boards, and print the scores beside the expected ones; 0 only if everything came out as
    expected.  The last line says so, or names what did not."""
    from mlphys import assignments
    from mlphys.demo.cohort import cohort, hand_in_cohort
    from mlphys.grading.nbgrader_api import CourseApps

    started = time.perf_counter()
    apps = CourseApps(course_root)  # nbgrader's apps in this process: its import is paid once, not per step
    wrong: list[str] = []  # "assignment/student" of each case that did not come out as expected
    failed: list[str] = []  # what could not be done at all
    graded, boards = 0, 0
    for assignment in assignment_ids:
        step = time.perf_counter()
        apps.generate_assignment(assignment)
        cases = [case for case in cohort(course_root, assignment) if case.kind in kinds and (full or case.quick)]
        print(hand_in_cohort(course_root, assignment, cases, apps), end="")  # an exam's late cases: the exchange
        # Several students at once (mlphys autograde); a per-student problem is in the log, and the table
        # below shows who it was.
        with open(course_root / f"autograde-{assignment}.log", "w") as log:
            results = parallel.autograde(course_root, assignment, nbgrader_args=["--force"], workers=workers, out=log)
        seconds = {result.student: result.seconds for result in results}
        apps.generate_feedback(assignment)  # a student whose feedback fails is named in the table below
        scores = apps.scores(assignment)
        print(f"\n{assignment}: {len(cases)} submissions graded in {time.perf_counter() - step:.1f} s\n")
        print(f"{'student':34} {'kind':10} {'score':>6} {'expected':>9}  check  {'seconds':>7}")
        for case in cases:
            score = scores.get(case.student, 0.0)
            if case.expected_points is None:
                ok = score == 0.0
                expected = "-"
            else:
                ok = score == case.expected_points
                expected = f"{case.expected_points:g}"
            graded += 1
            if not ok:
                wrong.append(f"{assignment}/{case.student}")
            took = f"{seconds[case.student]:7.1f}" if case.student in seconds else f"{'-':>7}"
            print(f"{case.student:34} {case.kind:10} {score:6g} {expected:>9}  {'ok' if ok else 'WRONG':5}  {took}")
        if assignments.get(assignment).challenge is not None:
            try:
                problem = demo_boards(course_root, assignment, cases, retrain_top=1)
            except (Exception, SystemExit) as exc:  # one challenge's boards never hide the others'
                problem = f"{type(exc).__name__}: {exc}"
                print(f"{assignment}: the boards could not be built: {problem}")
            if problem is None:
                boards += 1
            else:
                failed.append(f"the boards of {assignment} ({problem})")
    live = next((a for a in assignment_ids if assignments.get(a).challenge is not None), None)
    if live is not None:  # the first challenge also runs live: entries scored as they arrive, then its end
        from mlphys.demo.live import live_round

        try:
            problem = live_round(course_root, live, apps)
        except (Exception, SystemExit) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            failed.append(f"the live round of {live} ({problem})")
    apps.export()
    print(where_to_look(course_root, assignment_ids))
    seconds = time.perf_counter() - started
    if not wrong and not failed:
        print(f"\nall {graded} cases as expected, {boards} boards built in {seconds:.0f} s")
        return 0
    problems = ([f"{len(wrong)} of {graded} cases not as expected: {', '.join(wrong)}"] if wrong else []) + failed
    print(f"\nNOT AS EXPECTED after {seconds:.0f} s: {'; '.join(problems)}")
    return 1


def where_to_look(course_root: Path, assignment_ids: list[str]) -> str:
    """The pages to open after the demo: the reference's feedback and each challenge's boards."""
    from mlphys import assignments

    lines = ["\nWhere to look:"]
    for assignment in assignment_ids:
        plugin = assignments.get(assignment)
        feedback = course_root / "feedback" / "ref_solution" / assignment / f"{plugin.notebook}.html"
        lines.append(f"  {assignment:26} feedback  {feedback}")
        board = course_root / "leaderboards" / assignment / "index.html"
        if plugin.challenge is not None:
            lines.append(f"  {'':26} board     {board}")
    lines.append(f"  grades of everyone: {course_root / 'grades.csv'}; what each student got: autograded/, feedback/")
    return "\n".join(lines)


def leaderboard(
    course_root: Path,
    assignment: str,
    retrain_top: int | None,
    final: bool | None,
    out: Path | None,
    retrain_students: list[str] | None = None,
) -> dict:
    """Retrain where asked, rebuild the boards, print them; returns the written paths and entries."""
    from mlphys import assignments
    from mlphys.leaderboard import gather

    course = gather.Course.load(course_root)
    gather.run_retraining(course, assignment, retrain_top, students=retrain_students or ())
    out_dir = out or gather.default_out_dir(course_root, assignment)
    paths, is_final, entries = gather.rebuild_boards(course, assignment, out_dir, final=final)
    challenge = assignments.get(assignment).challenge
    assert challenge is not None  # rebuild_boards refuses an assignment without one
    print(gather.summary(entries, challenge.tracks, is_final, course.secret, gather.BoardSpec.of(challenge)))
    print(f"\nboards written: {', '.join(str(p) for p in paths.values())}")
    return {"paths": paths, "entries": entries}


def demo_boards(course_root: Path, assignment: str, cases: list[Case], retrain_top: int | None = None) -> str | None:
    """Rebuild the demo's boards; check the retraining check flags exactly the cases that break the rules.
    Returns what went wrong, or None.

    It retrains the ``retrain_top`` best entries of each board (default: the course's setting) and, as an
    instructor asks for a suspicious entry (``--retrain-student``), every case made to be flagged.  The demo
    retrains the best entry of each board: a check can take minutes (05 trains a policy network afresh), and
    that honest entries reproduce is tested on its own (the slow tier, ``pytest -m slow``).  A check that
    timed out (a slow machine) proves nothing either way: it is reported, not counted as wrong.
    """
    print(f"\n{assignment}: leaderboards, with the retraining check")
    expected = {c.student for c in cases if c.flagged_by_retraining}
    built = leaderboard(course_root, assignment, retrain_top, None, None, sorted(expected))
    flagged = {e.student for e in built["entries"] if e.retrain == "flagged"}
    timed_out = {e.student for e in built["entries"] if e.retrain == "timed out"}
    if timed_out:
        print(f"retraining check timed out for {sorted(timed_out)} (raise c.Leaderboard.retrain_timeout)")
    if flagged <= expected and expected - flagged <= timed_out:
        print(f"retraining check flagged {sorted(flagged)}: as expected")
        return None
    print(f"retraining check flagged {sorted(flagged)}; expected {sorted(expected)}: WRONG")
    return f"the retraining check flagged {sorted(flagged)}, expected {sorted(expected)}"


def similarity_hook(course_root: Path, assignment: str) -> t.Callable[[list], list[tuple[str, str]]] | None:
    """The assignment's own lines for the similarity report (an exam's answers that fit a neighbour's variant)."""
    from mlphys import assignments

    flags = assignments.get(assignment).similarity_flags if assignment in assignments.registry() else None
    if flags is None:
        return None
    return lambda submissions: flags(course_root.resolve(), [s.student for s in submissions])


def check(course_root: Path, assignment_ids: list[str]) -> int:
    """Grade each assignment's reference solution (the source notebook without its hidden tests) through the
    same engine and configuration as students' submissions, in a scratch copy of the course; print the
    verdict of every test cell.  Returns 1 unless the reference gets every autograded point."""
    import json
    import tempfile

    from mlphys import assignments
    from mlphys.demo.cohort import cohort, write_cohort

    failures = 0
    with tempfile.TemporaryDirectory(prefix="mlphys-check-") as scratch:
        root = Path(scratch)
        shutil.copytree(course_root / "source", root / "source")
        shutil.copy(course_root / "nbgrader_config.py", root / "nbgrader_config.py")
        for assignment in assignment_ids:
            nbgrader(root, "generate_assignment", assignment, "--force")
            reference = next(c for c in cohort(root, assignment) if c.kind == "reference")
            write_cohort(root, [reference])
            nbgrader(root, "autograde", assignment, "--force", "--student", reference.student, check=False)
            nbgrader(root, "export")
            score = read_scores(root).get((assignment, reference.student), 0.0)
            plugin = assignments.get(assignment)
            print(f"\n{assignment}: reference solution {score:g} of {reference.expected_points:g} autograded points")
            graded = root / "autograded" / reference.student / assignment / f"{plugin.notebook}.ipynb"
            cells = json.loads(graded.read_text())["cells"] if graded.exists() else []
            for cell in cells:
                grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                verdicts = [o for o in cell.get("outputs", []) if o.get("ename") in ("HiddenTestFailed", "NotGraded")]
                passed = [o for o in cell.get("outputs", []) if "Hidden tests passed" in "".join(o.get("text", ""))]
                if verdicts or passed:
                    status = "passed" if passed and not verdicts else "FAILED: " + verdicts[0].get("evalue", "")
                    print(f"  {grade_id:28} {status}")
            failures += score != reference.expected_points
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlphys", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="grade the demo cohort of each assignment and print the scores")
    p_demo.add_argument("assignments", nargs="*", help="default: every assignment")
    p_demo.add_argument(
        "--full",
        action="store_true",
        help="grade every case of each cohort (default: the quick cases: reference, blank, a few typical mistakes "
        "and attacks)",
    )
    p_demo.add_argument("--root", type=Path, default=Path.cwd())
    p_demo.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"which cases of each cohort to grade, comma-separated (default: all of {', '.join(KINDS)})",
    )
    p_demo.add_argument("--workers", type=int, default=None, help="students graded at once (default: one per core)")
    p_grade = sub.add_parser(
        "autograde",
        help="nbgrader autograde, several students at once (other arguments go to nbgrader as given)",
    )
    p_grade.add_argument("assignment")
    p_grade.add_argument(
        "--student", action="append", default=[], metavar="STUDENT", help="only these students (nbgrader's globs)"
    )
    p_grade.add_argument("--force", action="store_true", help="regrade submissions graded before (nbgrader's --force)")
    p_grade.add_argument("--workers", type=int, default=None, help="students graded at once (default: one per core)")
    p_grade.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="grade on this dask.distributed scheduler (tcp://host:8786)",
    )
    p_grade.add_argument(
        "--memory-mb",
        type=int,
        default=parallel.DEFAULT_MEMORY_LIMIT_MB,
        help="address space of the grader's own process per student, in MB (0: unbounded)",
    )
    p_grade.add_argument(
        "--timeout", type=float, default=parallel.DEFAULT_TIMEOUT_S, help="seconds one student's grading may take"
    )
    p_grade.add_argument("--root", type=Path, default=Path.cwd())
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
    p_check = sub.add_parser(
        "check", help="grade the instructor's reference solution through the engine and print each test's verdict"
    )
    p_check.add_argument("assignments", nargs="*", help="default: every assignment")
    p_check.add_argument("--root", type=Path, default=Path.cwd())
    p_sim = sub.add_parser("similarity", help="report pairs of students whose solutions are alike (instructors only)")
    p_sim.add_argument("assignment")
    p_sim.add_argument("--root", type=Path, default=Path.cwd())
    p_sim.add_argument(
        "--reference", action="append", default=[], type=Path, metavar="DIR", help="earlier years' submitted/ folder"
    )
    p_sim.add_argument("--out", type=Path, default=None, help="default: similarity/ASSIGNMENT")
    p_sim.add_argument(
        "--threshold", type=float, default=None, help="share of a student's code found in another's that flags a pair"
    )
    # Timed exams (docs/instructors/exams.md): one subcommand per step.
    p_exam = sub.add_parser("exam", help="exams: their schedule, and their release with every student's own numbers")
    exam = p_exam.add_subparsers(dest="exam_command", required=True)
    p_schedule = exam.add_parser(
        "schedule", help="write an exam's time window from exams.toml into the gradebook and print every student's"
    )
    p_schedule.add_argument("assignment")
    p_schedule.add_argument("--root", type=Path, default=Path.cwd())
    p_release = exam.add_parser(
        "release", help="release an exam through the exchange with every student's own variant (and deadline)"
    )
    p_release.add_argument("assignment")
    p_release.add_argument("--root", type=Path, default=Path.cwd())
    # Live challenges (README "Running a challenge"): the service, and what it holds.
    p_challenge = sub.add_parser("challenge", help="live challenges: score entries as they arrive, publish the boards")
    challenge = p_challenge.add_subparsers(dest="challenge_command", required=True)
    p_serve = challenge.add_parser(
        "serve", help="score new entries from the exchange as they arrive and publish the boards (runs until stopped)"
    )
    p_serve.add_argument("assignments", nargs="*", help="default: every challenge of challenges.toml")
    p_serve.add_argument("--root", type=Path, default=Path.cwd())
    p_serve.add_argument("--poll", type=float, default=5.0, help="seconds between looks at the exchange when idle")
    p_serve.add_argument("--once", action="store_true", help="do what there is to do now, then stop")
    p_serve.add_argument("--workers", type=int, default=1, help="entries scored at once (one process each)")
    p_serve.add_argument(
        "--warm-kernels", type=int, default=3, help="sandboxed kernels each scorer keeps started ahead (0: none)"
    )
    p_serve.add_argument(
        "--settle", type=float, default=2.0, help="seconds a new submission must rest before it is taken in (a copy)"
    )
    p_serve.add_argument(
        "--scheduler", default=None, help="score on this Dask cluster (tcp://host:8786) instead of here (--workers)"
    )
    p_status = challenge.add_parser("status", help="every entry of a live challenge, for the instructor")
    p_status.add_argument("assignment")
    p_status.add_argument("--root", type=Path, default=Path.cwd())
    args, passed_on = parser.parse_known_args(argv)
    if passed_on and args.command != "autograde":
        parser.error(f"unrecognized arguments: {' '.join(passed_on)}")
    if args.command in ("demo", "check"):
        demo_environment(args.root)
    if args.command in ("demo", "check") and not args.assignments:
        from mlphys import assignments

        args.assignments = list(assignments.registry())
    if args.command == "demo":
        return demo(args.root.resolve(), args.assignments, tuple(args.kinds.split(",")), args.workers, args.full)
    if args.command == "check":
        return check(args.root.resolve(), args.assignments)
    if args.command == "autograde":
        nbgrader_args = ["--force"] * args.force + passed_on
        results = parallel.autograde(
            args.root,
            args.assignment,
            args.student,
            nbgrader_args,
            workers=args.workers,
            scheduler=args.scheduler,
            memory_limit_mb=args.memory_mb,
            timeout=args.timeout,
        )
        return 1 if any(r.failed for r in results) else 0
    if args.command == "leaderboard":
        leaderboard(args.root.resolve(), args.assignment, args.retrain_top, args.final, args.out, args.retrain_student)
        return 0
    if args.command == "similarity":
        from mlphys import similarity

        threshold = similarity.DEFAULT_THRESHOLD if args.threshold is None else args.threshold
        from mlphys import assignments

        known = assignments.registry().get(args.assignment)
        return similarity.main(
            args.root,
            args.assignment,
            args.reference,
            args.out,
            threshold,
            similarity_hook(args.root, args.assignment),
            known.similarity_cells if known is not None else None,
        )
    if args.command == "challenge":
        from mlphys.live import cli as live_cli

        if args.challenge_command == "serve":
            return live_cli.serve(
                args.root,
                args.assignments,
                args.poll,
                args.once,
                args.workers,
                args.warm_kernels,
                args.settle,
                args.scheduler,
            )
        return live_cli.status(args.root, args.assignment)
    if args.command == "exam" and args.exam_command == "schedule":
        from mlphys.exam import schedule

        return schedule.main(args.root.resolve(), args.assignment)
    if args.command == "exam" and args.exam_command == "release":
        from mlphys.exam import release

        return release.main(args.root.resolve(), args.assignment)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
