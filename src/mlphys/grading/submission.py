"""What a hidden test may know about the submission it judges, beyond calling the student's functions.

Challenge scoring needs more than calls into the running kernel: the submitted files (weights), the
source of the student's solution cells (to rebuild a network in fresh sandboxes), the course's secret
(to draw hidden test images) and a place to leave results for the leaderboard.  The autograde step
hands hidden tests one :class:`Submission` under the name ``submission``; everything in it is the
grader's own, and the student's values it returns come through ``wire`` validation.
"""

from __future__ import annotations

import os
import stat
import typing as t
from collections.abc import Callable
from pathlib import Path

from mlphys.grading.isolated import Isolation

MISSING = object()


class Submission:
    """The trusted view of one submission while it is being graded."""

    def __init__(
        self,
        *,
        files: Path,
        cells: dict[str, str],
        lookup: Callable[[str], t.Any],
        isolation: Isolation,
        secret: str,
        records: dict[str, t.Any],
        in_process: dict[str, t.Any] | None = None,
    ) -> None:
        self._files = files
        self._cells = cells
        self._lookup = lookup
        self.isolation = isolation
        self.secret = secret
        self.records = records
        # The instructor checking their own notebook: the names of their kernel, used directly.
        self.in_process = in_process

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
        found = self._lookup(name)
        if found is MISSING:
            if default is MISSING:
                raise NameError(name)
            return default
        return found

    def record(self, key: str, value: t.Any) -> None:
        """Keep plain data for steps after grading (the leaderboard)."""
        self.records[key] = value
