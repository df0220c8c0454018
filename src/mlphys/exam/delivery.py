"""Each student's own variant, delivered through the course exchange with their copy of the exam.

The instructor's side (:func:`release_variants`, run by ``mlphys exam release``) writes one file per student
into ``<exchange>/<course>/variants/<assignment>/<student>.json``: the student's numbers and deadline, never an
answer.  The folders can be passed through but not listed; where the student has a Unix user of that name
(a JupyterHub with one user per person) the file belongs to them alone (mode 600).  The student's side is an
nbgrader exchange plug-in, :class:`FetchWithVariant` (``c.ExchangeFactory.fetch_assignment``): after the usual
fetch it copies the student's own file beside the notebook as ``variant.json``, which the notebook's first cell
reads (:func:`mlphys.course.exam.my_variant`).

Why through the exchange: it is where nbgrader already delivers assignments, locally and on a JupyterHub, and
Unix permissions are what keep one student's files from another there.  On a hub where every person runs as the
same Unix user nothing local is private (students could read each other's notebooks too): such a hub is unfit
for exams, and the release says so.  The grader never uses these files: it recomputes each variant from the
course secret and the student id when it grades.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import typing as t
from collections.abc import Callable, Iterable
from pathlib import Path

from nbgrader.exchange.default.fetch_assignment import ExchangeFetchAssignment
from nbgrader.utils import get_username

VARIANT_FILE = "variant.json"
log = logging.getLogger(__name__)


def variant_file(assignment: str, student: str, variant: dict[str, t.Any], deadline: str | None) -> dict[str, t.Any]:
    """What a student's ``variant.json`` holds: their numbers and deadline, never an answer."""
    return {"exam": assignment, "student": student, "variant": variant, "deadline": deadline}


def variants_dir(exchange_root: Path, course_id: str, assignment: str) -> Path:
    return Path(exchange_root) / course_id / "variants" / assignment


def release_variants(
    exchange_root: Path,
    course_id: str,
    assignment: str,
    students: Iterable[str],
    variant_of: Callable[[str], dict[str, t.Any]],
    deadline_of: Callable[[str], str | None] = lambda student: None,
) -> dict[str, str]:
    """Write each student's variant file; returns ``{student: who can read it}`` in words."""
    folder = variants_dir(exchange_root, course_id, assignment)
    folder.mkdir(parents=True, exist_ok=True)
    for path in (folder.parent, folder):
        os.chmod(path, 0o711)  # others may open a file whose name they know, not list the folder
    readers: dict[str, str] = {}
    for student in students:
        if not student or "/" in student or student.startswith("."):
            raise ValueError(f"not a usable student id: {student!r}")
        data = variant_file(assignment, student, variant_of(student), deadline_of(student))
        path = folder / f"{student}.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(data, indent=1))
        readers[student] = restrict_to(temporary, student)
        temporary.replace(path)
    return readers


def restrict_to(path: Path, student: str) -> str:
    """Make ``path`` readable by ``student`` alone where they have a Unix user; say who can read it."""
    try:
        user = pwd.getpwnam(student)
    except KeyError:
        os.chmod(path, 0o644)
        return "anyone with access to the exchange (no Unix user of that name)"
    if os.geteuid() == 0:
        os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(path, 0o600)
        return f"the Unix user {student} only"
    os.chmod(path, 0o644)
    return "anyone with access to the exchange (run the release as root to give the file to the student)"


class FetchWithVariant(ExchangeFetchAssignment):
    """nbgrader's fetch, then the fetching student's own variant file (if the assignment has variants)."""

    def copy_files(self) -> None:
        super().copy_files()
        mine = variants_dir(Path(self.root), self.coursedir.course_id, self.coursedir.assignment_id) / (
            f"{get_username()}.json"
        )
        if not mine.is_file():
            return  # an assignment without variants, or a student the release did not know
        try:
            shutil.copyfile(mine, Path(self.dest_path) / VARIANT_FILE)
        except OSError as exc:
            self.log.warning("Could not fetch your exam variant (%s): ask your instructor", exc)
            return
        self.log.info("Fetched your own exam numbers as %s", Path(self.dest_path) / VARIANT_FILE)
