"""The demo's live round: a challenge running live in the demo course, from the first entry to the final board.

A few of a challenge's demo cases are handed in one after another through the course exchange with nbgrader's
own submit, as students do, while the live service (:mod:`mlphys.live.service`) runs its rounds: each entry is
scored as it arrives and the public board updates; a student over the day's limit is refused and told why; then
the challenge's end is moved to now, and the service publishes the final board, ranked by the private split.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
import time
import typing as t
from pathlib import Path

from mlphys import assignments
from mlphys.demo.cohort import materials

if t.TYPE_CHECKING:
    from mlphys.grading.nbgrader_api import CourseApps


@dataclasses.dataclass(frozen=True)
class Arrival:
    """One entry of the live round: who hands in the files of which kind of demo case, and what should become of it."""

    student: str
    kind: str  # the kind of demo case whose files are handed in ("reference", "blank")
    expect: str  # "ranked", "unranked" (scored, with the reason it has no figure) or "refused"


ROUND = (
    Arrival("live_ada", "blank", "unranked"),
    Arrival("live_bo", "reference", "ranked"),
    Arrival("live_cy", "reference", "ranked"),
    Arrival("live_ada", "reference", "refused"),  # a second entry the same day: over the limit of one
)


def live_round(
    course_root: Path, assignment: str, apps: CourseApps, arrivals: t.Sequence[Arrival] = ROUND
) -> str | None:
    """Run the live round on ``assignment`` in the demo course; print what happens; None if everything came out as
    expected, else what did not."""
    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.default import ExchangeSubmit

    from mlphys.live import service, store

    plugin = assignments.get(assignment)
    known = {}
    for case in plugin.cases(materials(course_root, assignment)):
        known.setdefault(case.kind, case)
    config = apps.config
    course_id = str(config.CourseDirectory.course_id)
    apps.release_assignment(assignment)
    now = dt.datetime.now(dt.UTC)
    rules = course_root / "challenges.toml"
    write_rules(rules, assignment, now - dt.timedelta(minutes=5), now + dt.timedelta(days=1))
    print(f"\n{assignment}: a live round (challenges.toml: one entry per student per day, over it refused)")
    problems = []
    course = service.LiveCourse.load(course_root, [assignment])
    board = course.live_dir(assignment) / "board" / "leaderboard.json"
    with service.LiveService(course, settle=0) as live:
        forget_earlier_round(live, course.inbound, assignment, {a.student for a in arrivals})
        for arrival in arrivals:
            work = course_root / "students" / arrival.student
            folder = work / course_id / assignment
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            known[arrival.kind].write(folder, materials(course_root, assignment))
            coursedir = CourseDirectory(
                config=config,
                root=str(course_root),
                course_id=course_id,
                assignment_id=assignment,
                student_id=arrival.student,
            )
            ExchangeSubmit(
                coursedir=coursedir, authenticator=Authenticator(config=config), config=config, assignment_dir=str(work)
            ).start()
            started = time.monotonic()
            live.run(once=True)
            row = live.store.entries(assignment, arrival.student)[-1]
            got = "refused" if row.state == store.REFUSED else _outcome(store.decode_result(row))
            took = time.monotonic() - started
            print(
                f"  {arrival.student} hands in a {arrival.kind} entry: {_words[got]}, {took:.1f} s"
                f"{' (' + row.reason + ')' if row.reason else ''}; board: {_board_line(board)}"
            )
            if got != arrival.expect:
                problems.append(f"{arrival.student}'s {arrival.kind} entry came out {got}, not {arrival.expect}")
        write_rules(rules, assignment, now - dt.timedelta(minutes=5), dt.datetime.now(dt.UTC))
        live.course.rules = service.LiveCourse.load(course_root, [assignment]).rules
        live.run(once=True)
        final = json.loads(board.read_text())
        print(f"  the end: final board (private split): {_board_line(board)}")
        if not final.get("final") or not store.is_final(live.store, assignment):
            problems.append("no final board after the end")
    print(f"  boards and histories: {course.live_dir(assignment)}")
    return "; ".join(problems) or None


def forget_earlier_round(live: t.Any, inbound: Path, assignment: str, students: set[str]) -> None:
    """A demo run replaces the earlier one: its entries, its boards and its students' submissions go."""
    from mlphys.live import store

    store.forget(live.store, assignment)
    shutil.rmtree(live.course.live_dir(assignment), ignore_errors=True)
    for folder in inbound.glob(f"*+{assignment}+*") if inbound.is_dir() else []:
        if folder.name.split("+")[0] in students:
            shutil.rmtree(folder)


def write_rules(path: Path, assignment: str, start: dt.datetime, end: dt.datetime) -> None:
    path.write_text(
        f'# The demo\'s live round\n["{assignment}"]\nstart = {start.isoformat()}\nend = {end.isoformat()}\n'
        'entries_per_day = 1\nover_limit = "refuse"\ncounting = "best"\nretrain_top = 0\n'
    )


def _board_line(board: Path) -> str:
    if not board.is_file():
        return "-"
    data = json.loads(board.read_text())
    final = data.get("final")
    rows = [row for rows in data.get("boards", {}).values() for row in rows if row.get("rank")]
    figure = "private_cost" if final else "public_cost"
    return ", ".join(f"{row['rank']}. {row['name']} {row[figure]:.4g}" for row in rows) or "empty"


_words = {"ranked": "scored", "unranked": "scored without a figure (no weights)", "refused": "refused"}


def _outcome(result: dict[str, t.Any]) -> str:
    return "ranked" if any(e.get("stage") == "scored" for e in result.get("entries", [])) else "unranked"
