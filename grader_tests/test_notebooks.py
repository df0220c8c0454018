"""The notebooks run top to bottom as a student who solved them has them: reference solution and self-checks.

A student who solved a challenge has the trained weights next to the notebook, and the notebook loads them
instead of training again; so does this test, with the reference case's submission (notebook and weights) of
the assignment's demo cohort.  Those weights are trained by the notebook's own training cells, in the demo
(cached, `mlphys.demo.weights`), so the training code runs there.

Their hidden tests run only in the grader (`mlphys check` grades the reference solution through the engine;
the demo cohorts do the same for every assignment).
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO
from mlphys import assignments
from mlphys.demo import DEMO_SECRET
from mlphys.demo.case import Materials
from mlphys.exam.delivery import VARIANT_FILE, variant_file

SOURCES = sorted((REPO / "source").rglob("*.ipynb"))


@pytest.mark.parametrize("path", SOURCES, ids=[p.parent.name for p in SOURCES])
def test_reference_notebook_runs_without_errors(path: Path, tmp_path: Path) -> None:
    materials = Materials(REPO, path.parent.name, path.stem)
    reference = next(c for c in assignments.get(materials.assignment).cases(materials) if c.kind == "reference")
    reference.write(tmp_path, materials)
    plugin = assignments.get(materials.assignment)
    if plugin.variant is not None:  # an exam: the student's numbers come with the fetched copy
        variant = plugin.variant(DEMO_SECRET, "instructor")
        data = variant_file(materials.assignment, "instructor", variant, "2026-12-06 12:00:00 (UTC+01:00)")
        (tmp_path / VARIANT_FILE).write_text(json.dumps(data))
    nb = nbformat.read(tmp_path / path.name, 4)
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    # Exercises show their plots; an exam asks for answers (its numbers are printed by its first cell).
    assert images or plugin.variant is not None, "the notebook should show its plots"
