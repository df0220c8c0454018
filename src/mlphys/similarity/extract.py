"""What a student wrote: the solution cells of their notebooks, read without trusting the files.

A solution cell is a cell whose nbgrader metadata says ``"solution": true`` (the cells nbgrader lets a student
fill in and grades); everything else in a notebook is given by the course, or ignored by nbgrader when graded, so
it says nothing about who wrote like whom.  Code cells become one Python document per student, markdown answer
cells one text document per student (:func:`code_document`, :func:`text_document`).

Notebooks are read as the grader reads them (:func:`mlphys.grading.intake.read_submitted_notebook`: a plain,
bounded, valid notebook file, nothing else); what cannot be read is a problem of that student's, never an error
of the report.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t
from pathlib import Path

from mlphys.grading.intake import read_submitted_notebook

# The largest notebook file read (as the grader's own limit: outputs, figures included, make notebooks large).
MAX_NOTEBOOK_BYTES = 50 * 2**20
# The most solution-cell text read per student, all notebooks together.  The course's largest templates hold
# about 4 kB of solution cells and a full solution some 10 to 20 kB; a student above this pasted data or junk, and
# comparing it would slow every pair it takes part in.
MAX_SOLUTION_CHARS = 200_000


@dataclasses.dataclass(frozen=True)
class SolutionCell:
    """One solution cell of one notebook, as the student left it."""

    notebook: str  # the notebook's file name
    grade_id: str  # nbgrader's name of the cell ("" where the metadata has none)
    cell_type: str  # "code" or "markdown"
    source: str


@dataclasses.dataclass
class Submission:
    """One student's solution cells of one assignment.

    ``student`` is the name shown in the report: the student id for this year's students, and
    ``<reference folder>/<student id>`` for a submission from an earlier year (``reference`` is then that folder).
    ``problems`` says, one line each, what could not be read; a submission with no cells read from any notebook,
    or with more text than the cap, is not compared (``compared`` is False).
    """

    student: str
    student_id: str
    folder: Path
    reference: Path | None = None
    cells: list[SolutionCell] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    compared: bool = True


def clean_text(text: str) -> str:
    """Text that can be written, tokenised and shown whatever a student put in it: lone surrogates (valid JSON,
    invalid UTF-8) and NUL characters become replacement characters."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def solution_cells(nb: t.Any, notebook: str) -> list[SolutionCell]:
    """The solution cells (code and markdown) of a notebook read by nbformat, in order."""
    cells = []
    for cell in nb.get("cells", []):
        metadata = cell.get("metadata", {})
        nbgrader = metadata.get("nbgrader", {}) if isinstance(metadata, dict) else {}
        if not isinstance(nbgrader, dict) or nbgrader.get("solution") is not True:
            continue
        if cell.get("cell_type") not in ("code", "markdown"):
            continue
        grade_id = nbgrader.get("grade_id")
        source = cell.get("source", "")
        if isinstance(source, list):  # nbformat joins these; a hand-made node may not have been read by it
            source = "".join(str(line) for line in source)
        cells.append(
            SolutionCell(
                notebook=notebook,
                grade_id=clean_text(grade_id) if isinstance(grade_id, str) else "",
                cell_type=cell["cell_type"],
                source=clean_text(str(source)),
            )
        )
    return cells


def read_submission(
    folder: Path,
    notebooks: list[str],
    student_id: str,
    reference: Path | None = None,
    reference_label: str = "",
    max_chars: int = MAX_SOLUTION_CHARS,
) -> Submission:
    """Read the solution cells of the notebooks named ``notebooks`` (the released ones) from ``folder``, the
    submission of ``student_id`` (of this year, or of the earlier year in the folder ``reference``, shown as
    ``reference_label/student_id``)."""
    student = student_id if reference is None else f"{reference_label or reference.name}/{student_id}"
    submission = Submission(student=student, student_id=student_id, folder=folder, reference=reference)
    read, total = 0, 0
    for name in notebooks:
        path = folder / name
        if not path.exists() and not path.is_symlink():
            submission.problems.append(f"{name}: not submitted.")
            continue
        try:
            nb = read_submitted_notebook(path, MAX_NOTEBOOK_BYTES)
        except ValueError as exc:  # the intake's own explanation: a link, too large, not a notebook, ...
            submission.problems.append(f"{name}: {exc}")
            continue
        cells = solution_cells(nb, name)
        total += sum(len(cell.source) for cell in cells)
        if total > max_chars:
            submission.problems.append(
                f"the solution cells hold more than {max_chars} characters (up to {name}); not read further."
            )
            submission.compared = False
            submission.cells = []
            return submission
        submission.cells += cells
        read += 1
    if read == 0:
        submission.compared = False
    return submission


def template_cells(release_folder: Path, notebooks: list[str]) -> tuple[list[SolutionCell], list[str], list[str]]:
    """The released template's solution cells (as :func:`solution_cells`), and the sources of all its code cells and
    of all its markdown cells: the boilerplate.  The template is the course's own file, so a notebook that cannot
    be read is an error (ValueError)."""
    cells: list[SolutionCell] = []
    code: list[str] = []
    markdown: list[str] = []
    for name in notebooks:
        nb = read_submitted_notebook(release_folder / name, MAX_NOTEBOOK_BYTES)
        cells += solution_cells(nb, name)
        for cell in nb.cells:
            if cell.get("cell_type") == "code":
                code.append(clean_text(cell.get("source", "")))
            elif cell.get("cell_type") == "markdown":
                markdown.append(clean_text(cell.get("source", "")))
    return cells, code, markdown


def _header(cell: SolutionCell) -> str:
    # The header is a comment (the tokeniser drops comments, so it is not compared); a grade id comes from the
    # student's file and must not end the comment.
    label = re.sub(r"[^\w.\-, ]", "_", f"{cell.notebook}, {cell.grade_id}" if cell.grade_id else cell.notebook)
    return f"# ---- {label}\n"


def code_document(cells: list[SolutionCell]) -> str:
    """The code solution cells as one Python file, each under a comment naming its notebook and cell."""
    return "".join(_header(c) + c.source.rstrip() + "\n\n" for c in cells if c.cell_type == "code")


def normalise_text(text: str) -> str:
    """Prose as compared: lower case words, one space between them (punctuation, markup and layout dropped)."""
    return " ".join(re.findall(r"\w+", text.lower()))


def text_document(cells: list[SolutionCell]) -> str:
    """The markdown answer cells as one text, one normalised line per cell."""
    return "".join(normalise_text(c.source) + "\n" for c in cells if c.cell_type == "markdown")


__all__ = [
    "MAX_NOTEBOOK_BYTES",
    "MAX_SOLUTION_CHARS",
    "SolutionCell",
    "Submission",
    "code_document",
    "normalise_text",
    "read_submission",
    "solution_cells",
    "template_cells",
    "text_document",
]
