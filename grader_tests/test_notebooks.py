"""The notebooks run top to bottom as a student who solved them has them: reference solution and self-checks.

Their hidden tests run only in the grader (`mlphys check` grades the reference solution through the engine;
the demo cohorts do the same for every assignment).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nbclient import NotebookClient

from conftest import REPO
from mlphys.demo.case import Materials

SOURCES = sorted((REPO / "source").rglob("*.ipynb"))


@pytest.mark.parametrize("path", SOURCES, ids=[p.parent.name for p in SOURCES])
def test_reference_notebook_runs_without_errors(path: Path, tmp_path: Path) -> None:
    nb = Materials(REPO, path.parent.name, path.stem).reference()
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the notebook should show its plots"
