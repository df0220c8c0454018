"""Every registered challenge keeps the ``Challenge`` protocol and goes through every generic caller, as
Gymnasium's ``check_env`` drives an environment: the leaderboard command with retraining asked for and the live
challenge service from an entry to the final board (here), the demo (``test_demo.py``: its full run builds every
board with the retraining check) and grading (``test_grading.py``, parametrized over every assignment)."""

from __future__ import annotations

import datetime as dt
import inspect
import json
from pathlib import Path

import pytest

from conftest import REPO, GradedCohort
from mlphys import assignments
from mlphys.demo.case import Materials
from mlphys.grading.challenge import Challenge, RetrainBand


def check_challenge(challenge: Challenge) -> None:
    """What the engine and the leaderboard rely on, for any challenge."""
    cls = type(challenge)
    assert challenge.key and challenge.title
    assert challenge.tracks and len(set(challenge.tracks)) == len(challenge.tracks)
    for track in challenge.tracks:
        assert challenge.check_track(track) == track
        name = challenge.weights_filename(track)
        assert name and Path(name).name == name, "a weights file lies beside the notebook"
    bands = list(challenge.pass_bands)
    assert bands == sorted(bands, reverse=not challenge.higher_is_better), "pass bands go from pass to good"
    assert list(inspect.signature(cls.score).parameters)[:4] == ["self", "track", "state", "context"]
    # One signature for the retraining check; only challenges that state a band have one.
    assert list(inspect.signature(cls.retrain).parameters) == ["self", "track", "submitted_cost", "context"]
    overrides = cls.retrain is not Challenge.retrain
    assert challenge.has_retraining_check == overrides, "a challenge with a retraining check states its band"
    if challenge.has_retraining_check:
        assert isinstance(challenge.retrain_band, RetrainBand)


@pytest.mark.parametrize("assignment", list(assignments.challenges()))
def test_every_challenge_keeps_the_protocol(assignment: str) -> None:
    challenge = assignments.get(assignment).challenge
    assert challenge is not None
    check_challenge(challenge)


def test_the_protocol_check_catches_a_retraining_check_without_its_band() -> None:
    class Sloppy(Challenge):
        key, title, tracks = "sloppy", "Sloppy", ("ONE",)

        def weights_filename(self, track: str) -> str:
            return "sloppy.pt"

        def retrain(self, track, submitted_cost, context, *, rel_tol=0.5):  # type: ignore[override]
            raise NotImplementedError

    with pytest.raises(AssertionError):
        check_challenge(Sloppy())


def test_a_band_judges_a_cost_from_below_and_a_score_from_above() -> None:
    band = RetrainBand(rel_tol=0.5, abs_tol=0.01)
    assert band.reproduces(0.0249, 0.01) and not band.reproduces(0.0251, 0.01)  # up to 0.01 * 1.5 + 0.01
    assert band.reproduces(1.491, 3.0, higher_is_better=True)  # down to 3 * 0.5 - 0.01
    assert not band.reproduces(1.489, 3.0, higher_is_better=True)
    assert not band.reproduces(float("nan"), 0.01) and not band.reproduces(float("nan"), 3.0, higher_is_better=True)


@pytest.mark.parametrize("assignment", list(assignments.challenges()))
def test_every_challenge_s_boards_build_through_the_cli_with_retraining_asked_for(
    course: dict[str, GradedCohort], assignment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mlphys leaderboard` once crashed on a challenge without a retraining check when retraining was asked
    for; such a challenge is skipped cleanly, and one with a check retrains the student asked for."""
    from mlphys.cli import main

    root = course[assignment].root
    # A case made to be flagged where there is one (its check is quick: it does not learn), else the reference.
    cases = course[assignment].cases
    student = next((c.student for c in cases if c.flagged_by_retraining), "ref_solution")
    args = ["leaderboard", assignment, "--root", str(root), "--retrain-top", "0", "--out", str(tmp_path)]
    assert main([*args, "--retrain-student", student]) == 0
    printed = capsys.readouterr().out
    for name in ("index.html", "leaderboard.csv", "leaderboard.json"):
        assert (tmp_path / name).is_file()
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    assert board, "the boards list the demo's scored entries"
    challenge = assignments.get(assignment).challenge
    assert challenge is not None
    if challenge.has_retraining_check:
        assert f"retraining {student}'s" in printed
    else:
        assert "has no retraining check" in printed


@pytest.mark.parametrize("assignment", list(assignments.challenges()))
def test_every_challenge_runs_live_through_the_cli_to_its_final_board(
    assignment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mlphys challenge serve` scores an entry as it arrives and, after the end, publishes the final board with the
    retraining check where the challenge has one (on a case made to be flagged: its check is quick)."""
    from mlphys.cli import main
    from test_live import hand_in, live_course, write_rules

    now = dt.datetime.now(dt.UTC)
    root = tmp_path / "course"
    course = live_course(root, now - dt.timedelta(hours=1), now + dt.timedelta(hours=1), assignment, retrain_top=1)
    plugin = assignments.get(assignment)
    challenge = plugin.challenge
    assert challenge is not None
    cases = plugin.cases(Materials(REPO, assignment, plugin.notebook))
    flagged = next((c.student for c in cases if c.flagged_by_retraining), None)
    entry = flagged if challenge.has_retraining_check and flagged else "ref_solution"
    hand_in(course.inbound, "student", entry, 0, assignment)
    serve = ["challenge", "serve", assignment, "--root", str(root), "--once", "--warm-kernels", "0", "--settle", "0"]
    assert main(serve) == 0
    board = json.loads((course.live_dir(assignment) / "board" / "leaderboard.json").read_text())
    (row,) = [row for rows in board["boards"].values() for row in rows]
    assert row["rank"] == 1 and not board["final"]
    write_rules(root, now - dt.timedelta(hours=1), dt.datetime.now(dt.UTC), assignment, retrain_top=1)
    assert main(serve) == 0
    board = json.loads((course.live_dir(assignment) / "board" / "leaderboard.json").read_text())
    (row,) = [row for rows in board["boards"].values() for row in rows]
    assert board["final"] and "private_cost" in row
    assert row["retrain"] == ("flagged" if challenge.has_retraining_check else "unchecked")
    assert main(["challenge", "status", assignment, "--root", str(root)]) == 0
    assert "final boards published" in capsys.readouterr().out
