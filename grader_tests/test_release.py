"""release/ is what nbgrader generates from source/, and carries no solution or hidden test."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO, make_course


def normalised(path: Path) -> dict:
    return json.loads(path.read_text())


def test_release_is_in_sync_with_source(tmp_path: Path) -> None:
    course = make_course(tmp_path / "course")
    generated = sorted(p.relative_to(course / "release") for p in (course / "release").rglob("*") if p.is_file())
    committed = sorted(p.relative_to(REPO / "release") for p in (REPO / "release").rglob("*") if p.is_file())
    assert generated == committed, "release/ is stale: run `nbgrader generate_assignment <assignment> --force`"
    for rel in generated:
        if rel.suffix == ".ipynb":
            assert normalised(course / "release" / rel) == normalised(REPO / "release" / rel), rel
        else:
            assert (course / "release" / rel).read_bytes() == (REPO / "release" / rel).read_bytes(), rel


def test_release_has_no_solutions_or_hidden_tests() -> None:
    for path in (REPO / "release").rglob("*.ipynb"):
        text = path.read_text()
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{path} contains {marker}"


def test_source_notebooks_carry_no_outputs() -> None:
    for path in (REPO / "source").rglob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, path
