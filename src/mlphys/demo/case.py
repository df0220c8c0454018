"""What a simulated submission is, and the notebooks it is built from."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from mlphys.grading.hidden import split_test_source


@dataclasses.dataclass(frozen=True)
class Materials:
    """The instructor's notebook and its release, from which submissions are made."""

    course_root: Path
    assignment: str
    notebook: str  # file stem, e.g. "xor_nets"

    def source(self) -> NotebookNode:
        return nbformat.read(self.course_root / "source" / self.assignment / f"{self.notebook}.ipynb", 4)

    def blank(self) -> NotebookNode:
        """The release notebook, as a student receives it."""
        return nbformat.read(self.course_root / "release" / self.assignment / f"{self.notebook}.ipynb", 4)

    def reference(self) -> NotebookNode:
        """A student notebook holding the reference solution (no hidden tests, as a student has it)."""
        nb = self.source()
        for cell in nb.cells:
            if cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source:
                cell.source = split_test_source(cell.source)[0]
        return nb

    def with_solutions(self, replacements: dict[str, str], base: NotebookNode | None = None) -> NotebookNode:
        """The reference notebook with some solution cells (by grade_id) replaced."""
        nb = copy.deepcopy(base) if base is not None else self.reference()
        found = set()
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id in replacements:
                cell.source = replacements[grade_id]
                found.add(grade_id)
        missing = set(replacements) - found
        if missing:
            raise KeyError(f"no cells with grade_id {sorted(missing)}")
        return nb


Writer = Callable[[Path, Materials], None]


@dataclasses.dataclass(frozen=True)
class Case:
    """One simulated student.

    ``write`` fills the (existing, empty) submission directory ``submitted/<student>/<assignment>/``.
    ``expected_points`` is the exact autograded total the case must get, or None where the submission
    cannot be graded at all (then it must get no points and must not disturb anyone else).
    """

    student: str
    assignment: str
    kind: str  # "reference" | "blank" | "mistake" | "attack"
    description: str
    write: Writer
    expected_points: float | None


def write_notebook(nb: NotebookNode, directory: Path, name: str) -> None:
    nbformat.write(nb, directory / f"{name}.ipynb")
