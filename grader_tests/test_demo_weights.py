"""The demo's shipped weights: every trained entry of the demo cohort is shipped, checksummed and described,
none is stale, and training them afresh from the notebooks' own cells gives a demo that comes out as well."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import REPO, make_course, run_demo
from mlphys import assignments
from mlphys.demo import weights
from mlphys.demo.cohort import cohort, write_cohort


def test_every_shipped_file_is_listed_with_its_checksum_and_what_it_is() -> None:
    listed = weights.manifest()
    assert listed, "the demo's trained weights are shipped (python -m mlphys.demo.weights)"
    on_disk = {p.name for p in weights.SHIPPED.iterdir() if p.name != weights.MANIFEST.name}
    assert on_disk == set(listed)
    for name, entry in listed.items():
        assert weights.sha256_of(weights.SHIPPED / name) == entry["sha256"], name
        assert entry["what"] and entry["torch"] and entry["made"], name
    total = sum((weights.SHIPPED / name).stat().st_size for name in listed)
    assert total < 8 * 2**20, f"the shipped weights hold {total / 2**20:.1f} MB; a few MB at most"


def test_a_shipped_file_whose_checksum_does_not_match_is_never_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = next(iter(weights.manifest()))
    copy = tmp_path / "reference_weights"
    shutil.copytree(weights.SHIPPED, copy)
    (copy / name).write_bytes(b"not the weights")
    monkeypatch.setattr(weights, "SHIPPED", copy)
    monkeypatch.setattr(weights, "MANIFEST", copy / weights.MANIFEST.name)
    assert weights.shipped_file(name) is None
    assert weights.shipped_file(next(n for n in weights.manifest() if n != name)) is not None


def test_the_whole_demo_cohort_needs_no_training_and_every_shipped_file_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A changed notebook cell changes the name of the weights it trains: then this fails until
    ``python -m mlphys.demo.weights`` has made the shipped set anew."""
    monkeypatch.setenv("MLPHYS_DEMO_WEIGHTS", "shipped")  # training would raise NoShippedWeights
    monkeypatch.setenv("MLPHYS_CACHE", str(tmp_path / "empty-cache"))
    weights.USED.clear()
    root = tmp_path / "course"
    shutil.copytree(REPO / "source", root / "source")
    shutil.copytree(REPO / "release", root / "release")
    for assignment in assignments.registry():
        write_cohort(root, cohort(root, assignment))
    assert set(weights.USED) == set(weights.manifest()), "shipped weights that no demo case uses are stale"
    assert all(path.parent == weights.SHIPPED for path, _, _ in weights.USED.values())


@pytest.mark.slow
def test_weights_trained_afresh_from_the_notebooks_give_the_same_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slow tier (``pytest -m slow``): every challenge entry of the quick demo trained from the notebooks'
    own cells, ignoring the shipped files, and the demo still comes out as expected: each case's exact points,
    which put every trained entry in its pass band (the reference in the best band), and the retraining check's
    verdicts.  So the shipped weights are no better than what the notebooks train."""
    root = make_course(tmp_path / "course")
    trained = []  # the assignments whose quick cases use trained weights
    for assignment in assignments.registry():
        weights.USED.clear()
        write_cohort(root, [case for case in cohort(root, assignment) if case.quick])
        if weights.USED:
            trained.append(assignment)
    assert trained
    monkeypatch.setenv("MLPHYS_DEMO_WEIGHTS", "train")
    monkeypatch.setenv("MLPHYS_CACHE", str(tmp_path / "cache"))
    weights.USED.clear()
    run = run_demo(root, *trained)
    assert run.exit_status == 0, run.output[-6000:]
    assert any(seconds is not None for _, _, seconds in weights.USED.values()), "nothing was trained"

