"""nbgrader preprocessors that make sanitising and scoring safe against edited submissions."""

from __future__ import annotations

import typing as t

from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell
from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor, SaveAutoGrades

from mlphys.grading.execute import SandboxedExecute
from mlphys.grading.handoff import VERDICTS_KEY, is_test_cell

__all__ = ["NormalizeGradeCells", "SandboxedExecute", "SanitizeOutputs", "SaveVerdictGrades"]

# Output types that cannot carry script into the feedback page or the formgrader.
SAFE_MIME_TYPES = ("text/plain", "image/png", "image/jpeg")


class NormalizeGradeCells(NbGraderPreprocessor):
    """Make every cell's nbgrader metadata either the gradebook's own or nothing.

    Runs first when sanitising.  A submission may have edited, retyped, duplicated or invented grade
    cells; nbgrader's own steps then stop with a validation error for that student.  Here a cell whose
    ``grade_id`` the gradebook knows gets the gradebook's metadata back (the first such cell only), and
    every other cell loses its nbgrader metadata.  Cells of the gradebook that the submission lacks
    are put back, after the cell that precedes them in the instructor's notebook.  nbgrader's
    ``OverwriteCells`` then restores the sources of locked cells.
    """

    def preprocess(self, nb: NotebookNode, resources: dict[str, t.Any]) -> tuple[NotebookNode, dict[str, t.Any]]:
        info = resources["nbgrader"]
        canonical: dict[str, dict[str, t.Any]] = {}
        with Gradebook(info["db_url"]) as gb:
            notebook = gb.find_notebook(info["notebook"], info["assignment"])
            grade = {c.name: c for c in notebook.grade_cells}
            solution = {c.name for c in notebook.solution_cells}
            task = {c.name: c for c in notebook.task_cells}
            for source in notebook.source_cells:
                meta: dict[str, t.Any] = {
                    "grade_id": source.name,
                    "locked": bool(source.locked),
                    "schema_version": 3,
                    "solution": source.name in solution,
                    "grade": source.name in grade,
                    "task": source.name in task,
                }
                if source.name in grade:
                    meta["points"] = float(grade[source.name].max_score)
                elif source.name in task:
                    meta["points"] = float(task[source.name].max_score)
                canonical[source.name] = {"meta": meta, "cell_type": source.cell_type, "source": source.source}
        seen: set[str] = set()
        for cell in nb.cells:
            raw = cell.get("metadata", {}).get("nbgrader")
            grade_id = raw.get("grade_id") if isinstance(raw, dict) else None
            if isinstance(grade_id, str) and grade_id in canonical and grade_id not in seen:
                seen.add(grade_id)
                entry = canonical[grade_id]
                cell.metadata["nbgrader"] = NotebookNode(dict(entry["meta"]))
                if entry["meta"]["grade"] and not entry["meta"]["solution"] and cell.cell_type == "code":
                    # A test cell is the instructor's: OverwriteCells puts the gradebook's source back anyway,
                    # and doing it here keeps it from warning, for every student, that its checksum changed
                    # (the student's copy never holds the hidden tests).
                    cell.source = entry["source"]
            elif raw is not None:
                if isinstance(grade_id, str):
                    self.log.warning("Dropping nbgrader metadata of an unknown or duplicate cell %r", grade_id)
                del cell.metadata["nbgrader"]
        self._restore_missing(nb, canonical, seen)
        return nb, resources

    def _restore_missing(self, nb: NotebookNode, canonical: dict[str, dict[str, t.Any]], present: set[str]) -> None:
        order = list(canonical)
        for position, grade_id in enumerate(order):
            if grade_id in present:
                continue
            entry = canonical[grade_id]
            self.log.warning("Cell %r is missing from the submission; putting it back", grade_id)
            if entry["cell_type"] == "code":
                cell = new_code_cell(entry["source"])
            else:
                cell = new_markdown_cell(entry["source"])
            cell.metadata["nbgrader"] = NotebookNode(dict(entry["meta"]))
            earlier = [g for g in order[:position] if g in present]
            index = 0
            if earlier:
                index = 1 + next(
                    i
                    for i, c in enumerate(nb.cells)
                    if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == earlier[-1]
                )
            nb.cells.insert(index, cell)
            present.add(grade_id)


class SanitizeOutputs(NbGraderPreprocessor):
    """Keep only inert output types (text, PNG, JPEG) from the student's kernel.

    HTML, JavaScript, SVG and the like would run in the browser of whoever opens the feedback or the
    formgrader.  Where an output had nothing else, a plain-text note says what was removed.
    """

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, t.Any], index: int
    ) -> tuple[NotebookNode, dict[str, t.Any]]:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if not isinstance(data, dict):
                continue
            removed = sorted(k for k in data if k not in SAFE_MIME_TYPES)
            for key in removed:
                del data[key]
            if removed and not data:
                data["text/plain"] = f"[output of type {', '.join(removed)} not shown in grading]"
            if removed and "metadata" in output:
                output["metadata"] = {k: v for k, v in output["metadata"].items() if k in SAFE_MIME_TYPES}
        return cell, resources


class SaveVerdictGrades(SaveAutoGrades):
    """Score test cells by the grader's verdicts, never by what the kernel printed.

    Stock nbgrader gives a test cell its points when its outputs hold no error, which the student's
    kernel controls.  Here a test cell scores only if ``SandboxedExecute`` recorded a passing verdict
    for it in this very run; anything else (no verdict, a failure) scores zero.
    """

    def preprocess(self, nb: NotebookNode, resources: dict[str, t.Any]) -> tuple[NotebookNode, dict[str, t.Any]]:
        self._verdicts = resources.get(VERDICTS_KEY, {})
        return super().preprocess(nb, resources)

    def _add_score(self, cell: NotebookNode, resources: dict[str, t.Any]) -> None:
        if not is_test_cell(cell):
            super()._add_score(cell, resources)
            return
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        grade = self.gradebook.find_grade(grade_id, self.notebook_id, self.assignment_id, self.student_id)
        verdict = self._verdicts.get(grade_id)
        grade.auto_score = float(grade.max_score) if verdict is not None and verdict.passed else 0.0
        grade.needs_manual_grade = grade.manual_score is not None
        self.gradebook.db.commit()
