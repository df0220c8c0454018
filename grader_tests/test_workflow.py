"""The instructor's everyday workflow with the real ``nbgrader`` commands.

- Regrading in place: ``nbgrader autograde --force`` on a submission graded before replaces its
  grade, its autograded notebook (hence its feedback) and its challenge records together.
- The release -> fetch -> submit -> collect -> autograde -> feedback cycle through the course's
  exchange, the student's side run as another user would (own home, own working directory).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy.exc
from nbgrader.api import Gradebook

from mlphys.grading import records


@pytest.fixture
def gradebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gradebook]:
    # nbgrader runs `alembic` of its environment by name when it creates a gradebook.
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        yield gb


def test_replacing_records_of_a_graded_notebook_keeps_only_the_new_ones(gradebook: Gradebook) -> None:
    records.replace_records(gradebook, "a", "nb", "alice", {"entry": {"cost": 0.5}, "extra": 1})
    records.replace_records(gradebook, "a", "nb", "bob", {"entry": {"cost": 0.7}})
    records.replace_records(gradebook, "a", "nb", "alice", {"entry": {"cost": 0.25}})  # the regrade
    assert records.load_records(gradebook, "a", "entry") == {
        ("alice", "nb"): {"cost": 0.25},
        ("bob", "nb"): {"cost": 0.7},
    }
    assert records.load_records(gradebook, "a", "extra") == {}


def test_a_failed_replacement_leaves_the_old_records(gradebook: Gradebook) -> None:
    records.replace_records(gradebook, "a", "nb", "alice", {"entry": {"cost": 0.5}})
    with pytest.raises((TypeError, ValueError, sqlalchemy.exc.SQLAlchemyError)):
        records.replace_records(gradebook, "a", "nb", "alice", {"entry": {"cost": 0.25}, "bad": object()})
    assert records.load_records(gradebook, "a", "entry") == {("alice", "nb"): {"cost": 0.5}}
