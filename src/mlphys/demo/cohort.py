"""Assemble the demo cohort of an assignment and write it into ``submitted/``."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

from mlphys.demo.case import Case, Materials

# assignment id -> (notebook stem, modules whose cases(materials) build its cohort).  The attack
# catalogue targets the engine, not an assignment, so one assignment carries it.
ASSIGNMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "01_xor_nets": ("xor_nets", ("mlphys.demo.cases_01_xor", "mlphys.demo.attacks")),
    "02_backprop": ("backprop", ("mlphys.demo.cases_02_backprop",)),
    "03_autoencoder_challenge": ("autoencoder_challenge", ("mlphys.demo.cases_03_autoencoder",)),
}


def cohort(course_root: Path, assignment: str) -> list[Case]:
    """Every simulated submission for ``assignment``; student ids are unique."""
    notebook, modules = ASSIGNMENTS[assignment]
    materials = Materials(course_root, assignment, notebook)
    cases: list[Case] = []
    for name in modules:
        cases.extend(importlib.import_module(name).cases(materials))
    students = [c.student for c in cases]
    duplicates = {s for s in students if students.count(s) > 1}
    if duplicates:
        raise ValueError(f"duplicate student ids in the demo cohort: {sorted(duplicates)}")
    return cases


def write_cohort(course_root: Path, cases: list[Case]) -> None:
    """Write each case into ``submitted/<student>/<assignment>/``, replacing an earlier demo run."""
    for case in cases:
        materials = Materials(course_root, case.assignment, ASSIGNMENTS[case.assignment][0])
        directory = course_root / "submitted" / case.student / case.assignment
        if directory.is_symlink() or directory.is_file():
            directory.unlink()
        elif directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        case.write(directory, materials)
