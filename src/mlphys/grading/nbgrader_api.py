"""nbgrader's own apps, run in this process, as the formgrader runs them (``nbgrader.apps.NbGraderAPI``).

Every ``nbgrader`` command pays about 4 CPU seconds to import nbgrader before it does anything; the demo runs
three of them per assignment, which was a third of its time.  In one process that price is paid once.  The
apps, their configuration (the course's ``nbgrader_config.py``, read as nbgrader reads it) and the gradebook
are nbgrader's: this is nbgrader as the system of record, called without a new interpreter per step.
"""

from __future__ import annotations

import contextlib
import os
import sys
import typing as t
from pathlib import Path

from nbgrader.utils import capture_log

from mlphys.grading.parallel import gradebook_url, read_config


class NbgraderFailed(RuntimeError):
    """An nbgrader app did not succeed; the message holds the end of its log and traceback."""


class CourseApps:
    """nbgrader's apps for the course in ``root``."""

    def __init__(self, root: Path) -> None:
        from nbgrader.apps import NbGraderAPI
        from nbgrader.coursedir import CourseDirectory

        # nbgrader runs other tools of its environment by name (alembic, at every gradebook it opens).
        bindir = str(Path(sys.executable).parent)
        if bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        self.root = root
        self.config = read_config(root)
        self.config.CourseDirectory.root = str(root)
        coursedir = CourseDirectory(config=self.config, root=str(root))
        self.api = NbGraderAPI(coursedir=coursedir, config=self.config)
        self.api.log.handlers.clear()  # what an app logs is in its result, shown only when it fails
        self.api.log.propagate = False

    def _checked(self, what: str, result: dict[str, t.Any]) -> dict[str, t.Any]:
        if not result.get("success"):
            raise NbgraderFailed(f"nbgrader {what} failed:\n{result.get('log', '')[-4000:]}{result.get('error', '')}")
        return result

    def generate_assignment(self, assignment: str) -> None:
        """``nbgrader generate_assignment ASSIGNMENT --force``."""
        self._checked(f"generate_assignment {assignment}", self.api.generate_assignment(assignment, force=True))

    def release_assignment(self, assignment: str) -> None:
        """``nbgrader release_assignment ASSIGNMENT --force``: the student version into the exchange."""
        from nbgrader.utils import temp_attrs

        # As NbGraderAPI.release_assignment, with --force: a course releases again (a second demo run, a re-release).
        with temp_attrs(self.api.coursedir, assignment_id=assignment):
            app = self.api.exchange.ReleaseAssignment(
                coursedir=self.api.coursedir, authenticator=self.api.authenticator, parent=self.api
            )
            app.force = True
            self._checked(f"release_assignment {assignment}", capture_log(app))

    def collect(self, assignment: str) -> None:
        """``nbgrader collect ASSIGNMENT --update``, with the course's collect plug-in."""
        self._checked(f"collect {assignment}", self.api.collect(assignment))

    def generate_feedback(self, assignment: str) -> dict[str, t.Any]:
        """``nbgrader generate_feedback ASSIGNMENT --force``; its result (a student's failure is in its log)."""
        return self.api.generate_feedback(assignment, force=True)

    def export(self) -> None:
        """``nbgrader export``: the course's grades into ``grades.csv`` (or wherever the configuration says)."""
        from nbgrader.apps import ExportApp

        app = ExportApp(coursedir=self.api.coursedir, parent=self.api)
        app.log.handlers.clear()  # as the other apps: its log is in its result
        app.log.propagate = False
        with contextlib.chdir(self.root):  # the exporter writes its file relative to the working directory
            self._checked("export", capture_log(app))

    def scores(self, assignment: str) -> dict[str, float]:
        """Each student's total score of ``assignment`` in the gradebook, after a late penalty (what ``nbgrader
        export`` writes as the score)."""
        from nbgrader.api import Gradebook

        with Gradebook(gradebook_url(self.config, self.root)) as gb:
            return {
                s.student.id: float(s.score) - float(s.late_submission_penalty or 0.0)
                for s in gb.find_assignment(assignment).submissions
            }
