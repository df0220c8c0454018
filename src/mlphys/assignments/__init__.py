"""Assignments as plug-ins: each one is a folder (a subpackage of this package) behind one small protocol.

A folder ``mlphys/assignments/<name>/`` holds everything that is specific to one assignment and belongs
to the grader: its demo cases, the names its hidden tests may use (e.g. challenge scoring), its
challenge (tracks, splits, scoring, retraining, page figures) and the source of what it runs inside a
student's sandboxed kernel.  Its ``__init__.py`` defines ``ASSIGNMENT``, an :class:`Assignment`.  The
engine, the CLI, the demo and the leaderboard find assignments through :func:`registry` and know none by
name.  The notebook lives in ``source/<id>/`` and its student version in ``release/<id>/``; what students
import lives in the course library, ``mlphys.course``.

This package is grader code: a sandbox never mounts it (see :mod:`mlphys.grading.sandbox`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
import typing as t
from collections.abc import Callable, Mapping
from pathlib import Path

if t.TYPE_CHECKING:
    from mlphys.demo.case import Case, Materials
    from mlphys.grading.challenge import Challenge


@dataclasses.dataclass(frozen=True)
class Assignment:
    """One assignment of the course.

    ``id`` is nbgrader's assignment id (the folder under ``source/``), ``notebook`` the stem of its
    notebook file.  ``cases(materials)`` builds its demo cohort.  ``hidden_names`` are extra names its
    hidden tests see, beside the instructor's kit (:mod:`mlphys.grading.checks`) and ``submission``.
    ``challenge`` is set for an assignment with leaderboards.  ``variant(secret, student)`` is set for an
    assignment whose numbers differ per student (an exam): the grader writes the student's variant into the
    notebook's locked ``variant`` cell before the notebook runs (:mod:`mlphys.grading.variants`), whatever the
    submitted notebook holds there.
    """

    id: str
    notebook: str
    title: str
    cases: Callable[[Materials], list[Case]]
    hidden_names: Mapping[str, t.Any] = dataclasses.field(default_factory=dict)
    challenge: Challenge | None = None
    uses_secret: bool = False  # its hidden tests draw hidden data from the course secret (every challenge does)
    variant: Callable[[str, str], dict[str, t.Any]] | None = None  # (secret, student) -> that student's numbers
    # (course root, the students compared) -> (student, why) lines for the similarity report (an exam: answers
    # that fit a neighbour's variant)
    similarity_flags: Callable[[Path, list[str]], list[tuple[str, str]]] | None = None
    similarity_cells: tuple[str, ...] | None = None  # grade ids the similarity report compares (None: all)

    @property
    def needs_secret(self) -> bool:
        """Whether grading it without a course secret must stop (hidden data from a public default)."""
        return self.uses_secret or self.challenge is not None or self.variant is not None


@functools.cache
def registry() -> dict[str, Assignment]:
    """Every assignment of the course, by id, in the order of their ids."""
    found: dict[str, Assignment] = {}
    for module in pkgutil.iter_modules(__path__):
        if not module.ispkg:
            continue
        assignment = getattr(importlib.import_module(f"{__name__}.{module.name}"), "ASSIGNMENT", None)
        if not isinstance(assignment, Assignment):
            raise TypeError(f"{__name__}.{module.name} defines no ASSIGNMENT (an Assignment)")
        if assignment.id in found:
            raise ValueError(f"two assignments with the id {assignment.id!r}")
        found[assignment.id] = assignment
    return dict(sorted(found.items()))


def get(assignment_id: str) -> Assignment:
    """The assignment with this id; KeyError naming the known ones if there is none."""
    assignments = registry()
    if assignment_id not in assignments:
        raise KeyError(f"no assignment {assignment_id!r}; the course has {', '.join(assignments)}")
    return assignments[assignment_id]


def challenges() -> dict[str, Assignment]:
    """The assignments that have leaderboards."""
    return {key: a for key, a in registry().items() if a.challenge is not None}
