"""Per-student variants in the grader: the student's numbers written into their notebook before it runs.

An assignment with variants (an exam) has a locked cell, grade id ``variant``, that defines ``VARIANT`` from
the file delivered with the student's copy.  When the notebook is graded, that cell's source is replaced by
the student's variant as the grader recomputes it from the course secret and the student id in the gradebook:
whatever the submission holds there (an edited cell, a neighbour's numbers, a forged file) is never used.
"""

from __future__ import annotations

import json
import typing as t

from nbformat import NotebookNode

VARIANT_CELL = "variant"  # grade id of the locked cell that defines VARIANT
VARIANT_NAME = "VARIANT"


class MissingVariantCell(Exception):
    """The notebook has no variant cell (nbgrader's sanitising puts a locked cell back, so this is a bug)."""


def variant_source(variant: dict[str, t.Any], student: str) -> str:
    """The variant cell's source as the grader writes it for one student."""
    text = json.dumps(variant, sort_keys=True)
    return (
        f"# Your exam's numbers, written by the grader for {json.dumps(student)} (your own variant).\n"
        f"import json as _json\n\n{VARIANT_NAME} = _json.loads({text!r})\n"
    )


def write_variant_cell(nb: NotebookNode, variant: dict[str, t.Any], student: str) -> None:
    """Put the student's variant into the notebook's variant cell."""
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == VARIANT_CELL:
            cell.source = variant_source(variant, student)
            return
    raise MissingVariantCell(f"the notebook has no cell with grade id {VARIANT_CELL!r}")
