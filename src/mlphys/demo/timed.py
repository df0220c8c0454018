"""The demo's timed exam: late cases handed in through the course exchange after the common end, as students do.

The receipt time of a submission cannot be forged (it is the exchange's inode change time, see
:mod:`mlphys.exam.exchange`), so the demo makes the deadline fall between two real submissions: first every
case is written as usual, then the timed cases are submitted one by one with nbgrader's own submit, a moment
*after* the deadline written into ``exams.toml``; a forging case then rewrites its claim of when it submitted.
``mlphys exam schedule`` puts the schedule into the gradebook and nbgrader's collect (with the course's
receipt-time plug-in) collects them; autograde then judges them like everyone else.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
import typing as t
from pathlib import Path

from mlphys.demo.case import Case
from mlphys.demo.cohort import materials

if t.TYPE_CHECKING:
    from mlphys.grading.nbgrader_api import CourseApps

PAUSE_S = 1.1  # between the deadline and the first late submission: receipt times are exact to the nanosecond


def nbgrader_time(moment: dt.datetime) -> str:
    """A time as nbgrader's submit writes it."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def hand_in_late(course_root: Path, assignment: str, cases: list[Case], apps: CourseApps) -> str:
    """Submit the timed cases through the exchange after a deadline set now, schedule and collect them; returns
    what ``mlphys exam schedule`` printed."""
    import contextlib
    import io

    from nbgrader.auth import Authenticator
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.exchange.default import ExchangeSubmit

    from mlphys.exam import schedule

    timed = [c for c in cases if c.timed]
    config = apps.config
    course_id = str(config.CourseDirectory.course_id)
    apps.release_assignment(assignment)
    deadline = dt.datetime.now(dt.UTC)
    time.sleep(PAUSE_S)
    inbound = Path(str(config.Exchange.root)) / course_id / "inbound"
    for case in timed:
        work = course_root / "students" / case.student
        folder = work / course_id / assignment
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        case.write(folder, materials(course_root, assignment))
        before = set(inbound.iterdir()) if inbound.exists() else set()
        coursedir = CourseDirectory(
            config=config, root=str(course_root), course_id=course_id, assignment_id=assignment, student_id=case.student
        )
        ExchangeSubmit(
            coursedir=coursedir, authenticator=Authenticator(config=config), config=config, assignment_dir=str(work)
        ).start()
        (submitted,) = set(inbound.iterdir()) - before
        if case.forges_time:
            forge_claim(submitted, deadline - dt.timedelta(minutes=5))
    extensions = "".join(f"{c.student} = {{ extra_minutes = {c.extra_minutes:g} }}\n" for c in timed if c.extra_minutes)
    (course_root / "exams.toml").write_text(
        f'# The demo\'s exam: it ended at the moment the late cases began to hand in.\n["{assignment}"]\n'
        f"start = {(deadline - dt.timedelta(minutes=120)).isoformat()}\nminutes = 120\ngrace_minutes = 0\n"
        f'["{assignment}".extensions]\n{extensions}'
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        schedule.main(course_root, assignment)
    apps.collect(assignment)
    return printed.getvalue()


def forge_claim(folder: Path, claim: dt.datetime) -> Path:
    """What a student can do to their own inbound submission: claim, in every place they can write (its
    timestamp.txt, its folder's name, its files' times), that it arrived at ``claim``.  Returns the renamed folder."""
    text = nbgrader_time(claim)
    (folder / "timestamp.txt").write_text(text)
    student, assignment, _, random = folder.name.split("+")
    renamed = folder.rename(folder.with_name(f"{student}+{assignment}+{text}+{random}"))
    for path in [renamed, *renamed.rglob("*")]:
        os.utime(path, (claim.timestamp(), claim.timestamp()), follow_symlinks=False)
    return renamed
