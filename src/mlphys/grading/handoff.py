"""What the autograde steps hand each other, and the gradebook's view of one notebook, in one place.

nbgrader passes one ``resources`` dict through the preprocessors of a notebook.  The execute step
(:class:`~mlphys.grading.execute.SandboxedExecute`) leaves its verdicts and records there under the keys
below; :class:`~mlphys.grading.preprocessors.SaveVerdictGrades` and
:class:`~mlphys.grading.records.SaveRecords` read them.  Nothing else travels between steps.
"""

from __future__ import annotations

import dataclasses
import typing as t

from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry

from mlphys.grading import hidden

VERDICTS_KEY = "mlphys_verdicts"  # grade_id -> hidden.Verdict, for every test cell judged in this run
RECORDS_KEY = "mlphys_records"  # plain data the hidden tests keep for later (the leaderboard)


def is_test_cell(cell: NotebookNode) -> bool:
    """An autograded test cell: a graded code cell that is not a solution."""
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


@dataclasses.dataclass(frozen=True)
class TestCell:
    visible: str  # runs in the student's kernel
    hidden: str  # runs in the grader; never leaves it
    points: float


@dataclasses.dataclass(frozen=True)
class NotebookView:
    """The instructor's test cells of one notebook, from the gradebook (never from the submission)."""

    assignment: str
    notebook: str
    tests: dict[str, TestCell]

    @classmethod
    def load(cls, resources: dict[str, t.Any]) -> NotebookView:
        info = resources["nbgrader"]
        tests: dict[str, TestCell] = {}
        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_notebook(info["notebook"], info["assignment"])
            solution_ids = {c.name for c in notebook.solution_cells}
            for grade_cell in notebook.grade_cells:
                if grade_cell.cell_type != "code" or grade_cell.name in solution_ids:
                    continue
                try:
                    source = gb.find_source_cell(grade_cell.name, info["notebook"], info["assignment"]).source
                except MissingEntry:
                    continue
                visible, hidden_source = hidden.split_test_source(source)
                tests[grade_cell.name] = TestCell(visible, hidden_source, float(grade_cell.max_score))
        return cls(info["assignment"], info["notebook"], tests)

    def instructor_names(self) -> set[str]:
        """Names some hidden block of this notebook defines: the instructor's, never looked up in the student's."""
        names: set[str] = set()
        for test in self.tests.values():
            try:
                names |= hidden.bound_names(test.hidden)
            except SyntaxError:
                pass  # reported as that cell's verdict when it runs
        return names


def solution_sources(nb: NotebookNode) -> dict[str, str]:
    """The student's source of each solution cell, by nbgrader id."""
    sources: dict[str, str] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and isinstance(meta.get("grade_id"), str):
            sources.setdefault(meta["grade_id"], cell.source)
    return sources
