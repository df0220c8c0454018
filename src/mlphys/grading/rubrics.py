"""The instructor's model answer and rubric beside each hand-graded answer, for graders only.

A hand-graded answer cell of the instructor's notebook holds the model answer and the rubric; nbgrader replaces
it with "YOUR ANSWER HERE" in the student's version.  :class:`ShowRubrics` (an autograde step) puts that text
into the autograded notebook right after the student's answer, where the formgrader shows it to the person
grading; :class:`HideRubrics` (a feedback step) takes it out again, so the student's feedback never holds it
(a repeat exam may reuse the question).
"""

from __future__ import annotations

import os
import typing as t
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_markdown_cell
from nbgrader.preprocessors import NbGraderPreprocessor

RUBRIC_KEY = "mlphys_rubric"  # metadata of an inserted rubric cell
HEADING = "**Model answer and rubric, from the instructor's notebook (graders only, not in the feedback):**"


def is_rubric(cell: NotebookNode) -> bool:
    """A cell :class:`ShowRubrics` put in (by its metadata, or its heading where the metadata was cleaned)."""
    return RUBRIC_KEY in cell.get("metadata", {}) or (
        cell.get("cell_type") == "markdown" and str(cell.get("source", "")).startswith(HEADING)
    )


def _hand_graded(cell: NotebookNode) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if meta.get("grade") and meta.get("solution") else None


class ShowRubrics(NbGraderPreprocessor):
    """After each hand-graded answer, the instructor's text of that cell (see the module's docstring)."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, t.Any]) -> tuple[NotebookNode, dict[str, t.Any]]:
        info = resources["nbgrader"]
        coursedir = self.config.CourseDirectory
        root = Path(coursedir.get("root", "") or os.getcwd())
        source = root / coursedir.get("source_directory", "source") / info["assignment"] / f"{info['notebook']}.ipynb"
        try:
            instructor = nbformat.read(source, 4)
        except (OSError, ValueError) as exc:
            self.log.warning("No rubrics shown: cannot read %s (%s)", source, exc)
            return nb, resources
        rubrics = {gid: cell.source for cell in instructor.cells if (gid := _hand_graded(cell))}
        cells = []
        for cell in nb.cells:
            cells.append(cell)
            grade_id = _hand_graded(cell)
            if grade_id in rubrics and rubrics[grade_id].strip():
                rubric = new_markdown_cell(f"{HEADING}\n\n{rubrics[grade_id]}")
                rubric.metadata[RUBRIC_KEY] = grade_id
                cells.append(rubric)
        nb.cells = cells
        return nb, resources


class HideRubrics(NbGraderPreprocessor):
    """Remove the rubric cells :class:`ShowRubrics` put in, before the feedback is made."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, t.Any]) -> tuple[NotebookNode, dict[str, t.Any]]:
        # By the heading: the pages' cleaning (CleanStudentContent, which runs first) drops cell metadata.
        nb.cells = [cell for cell in nb.cells if not is_rubric(cell)]
        return nb, resources
