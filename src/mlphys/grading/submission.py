"""What a hidden test may know about the submission it judges, beyond calling the student's functions.

Challenge scoring needs more than calls into the running kernel: the submitted files (weights), the
source of the student's solution cells (to rebuild a network in fresh sandboxes), the course's secret
(to draw hidden test data), the time left, and a place to leave results for the leaderboard.  The
grading run hands hidden tests one :class:`Submission` under the name ``submission``; everything in it
is the grader's own, and the student's values it returns come through ``wire`` validation.
"""

from __future__ import annotations

import os
import stat
import typing as t
from collections.abc import Callable
from pathlib import Path

from mlphys.grading.isolated import Isolation

if t.TYPE_CHECKING:
    from mlphys.grading.challenge import Challenge, Scoring
    from mlphys.grading.warm_kernels import WarmKernels

MISSING = object()


def _no_kernel(name: str) -> t.Any:
    return MISSING


class Submission:
    """The trusted view of one submission while it is being graded."""

    def __init__(
        self, *, files: Path, cells: dict[str, str], isolation: Isolation, secret: str, student: str = ""
    ) -> None:
        self._files = files
        self.student = student
        self._cells = cells
        self.isolation = isolation
        self.secret = secret
        self.lookup: Callable[[str], t.Any] = _no_kernel  # set by the grading run
        self.deadline: float | None = None  # time.monotonic() by which the notebook must be graded
        self.records: dict[str, t.Any] = {}  # stored with the grades (SaveRecords)
        self.cache: dict[str, t.Any] = {}  # kept for this run only, e.g. a challenge's result
        self.notes: list[str] = []  # for the student, shown under the verdict of the cell being judged
        # Warm kernels for challenge scoring, set by a live challenge service; None (autograde): cold ones.
        self.kernels: WarmKernels | None = None

    def file(self, name: str) -> Path | None:
        """A regular file of the submission (a staged copy), or None if there is no such file."""
        path = self._files / name
        if os.sep in name or name.startswith("."):
            return None
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        return path if stat.S_ISREG(mode) else None

    def cell_source(self, grade_id: str) -> str | None:
        """The student's source of the cell with this nbgrader id, or None."""
        return self._cells.get(grade_id)

    def value(self, name: str, default: t.Any = MISSING) -> t.Any:
        """A validated copy of the student's variable ``name``; ``default`` if it is not defined."""
        found = self.lookup(name)
        if found is MISSING:
            if default is MISSING:
                raise NameError(name)
            return default
        return found

    def note(self, text: str) -> None:
        """Tell the student something (whether the cell passes or not), under the current cell's verdict."""
        self.notes.append(text)

    def record(self, key: str, value: t.Any) -> None:
        """Keep plain data for steps after grading (the leaderboard)."""
        self.records[key] = value

    def scoring(self, challenge: Challenge) -> Scoring:
        """What ``challenge`` may use to score this submission's entries, within the notebook's time."""
        from mlphys.grading.challenge import Scoring

        if not self.secret:
            raise RuntimeError("no challenge secret is set (c.SandboxedExecute.challenge_secret)")
        return Scoring(challenge, self.secret, self.isolation, dict(self._cells), self.deadline, kernels=self.kernels)
