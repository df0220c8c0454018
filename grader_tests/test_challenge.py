"""The autoencoder challenge: scoring that cannot be gamed, and its leaderboards rebuilt from the gradebook.

The demo cohort (honest entries, typical mistakes, attacks) is graded with plain ``nbgrader autograde``
in the session's course; its boards are rebuilt with ``mlphys leaderboard``, retraining check included.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, GradedCohort
from mlphys.assignments.autoencoder_challenge import challenge
from mlphys.assignments.autoencoder_challenge.cases import PICKLE_MARKER, PicklePayload
from mlphys.assignments.autoencoder_challenge.challenge import CHALLENGE, validate_codes, validate_images
from mlphys.cli import leaderboard
from mlphys.grading import records
from mlphys.grading.challenge import EntryProblem
from mlphys.grading.challenge import load_weights as load_any_weights
from mlphys.leaderboard import gather

ASSIGNMENT = "03_autoencoder_challenge"


def load_weights(path: Path, max_bytes: int = CHALLENGE.max_weights_bytes) -> dict:
    return load_any_weights(path, CHALLENGE.weights_parts, max_bytes, CHALLENGE.max_parameters)


# ---- the grader's checks, one by one ------------------------------------------------------------------


def test_codes_with_more_numbers_than_the_track_allows_are_refused() -> None:
    with pytest.raises(EntryProblem, match=r"more numbers per image than this track allows \(at most 9\)\.$"):
        validate_codes(np.zeros((4, 10)), 4, 9)
    with pytest.raises(EntryProblem, match="more numbers per image"):
        validate_codes(np.zeros((4, 3, 4)), 4, 9)  # any shape counts all its numbers
    validate_codes(np.zeros((4, 3, 3)), 4, 9)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e6])
def test_codes_must_be_finite_in_half_precision(bad: float) -> None:
    codes = np.zeros((4, 3))
    codes[2, 1] = bad
    with pytest.raises(EntryProblem):
        validate_codes(codes, 4, 3)


def test_codes_are_rounded_so_mantissas_carry_no_extra_bits() -> None:
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(100, 9))
    rounded = validate_codes(codes, 100, 9)
    assert np.array_equal(rounded, rounded.astype(np.float16).astype(np.float32))  # at most 16 bits each
    assert np.allclose(rounded, codes, rtol=1e-3, atol=1e-4)  # and a fair code survives
    # Two codes that differ only beyond half precision arrive identical at the decoder.
    assert np.array_equal(validate_codes(codes + 1e-9, 100, 9), rounded)


def test_codes_must_come_one_per_image() -> None:
    with pytest.raises(EntryProblem, match="one code per image"):
        validate_codes(np.zeros((3, 9)), 4, 9)
    with pytest.raises(EntryProblem, match="one code per image"):
        validate_codes([[0.0] * 9] * 4, 4, 9)


def test_decoded_images_must_have_the_image_shape_and_be_finite() -> None:
    assert validate_images(np.zeros((2, 27, 27), dtype=np.float32), 2).dtype == np.float64
    with pytest.raises(EntryProblem, match=r"shape \(2, 27, 27\)"):
        validate_images(np.zeros((2, 729)), 2)
    with pytest.raises(EntryProblem, match="not finite"):
        validate_images(np.full((2, 27, 27), np.nan), 2)


def _save(tmp_path: Path, state: object) -> Path:
    path = tmp_path / "autoencoder-medium-normal.pt"
    torch.save(state, path)
    return path


def test_weights_load_as_plain_arrays(tmp_path: Path) -> None:
    state = {"encoder": {"w": torch.ones(2, 3)}, "decoder": {"b": torch.zeros(4)}}
    loaded = load_weights(_save(tmp_path, state))
    assert set(loaded) == {"encoder", "decoder"}
    assert type(loaded["encoder"]["w"]) is np.ndarray and loaded["encoder"]["w"].shape == (2, 3)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the plain pickle's protocol
def test_weights_that_carry_pickled_code_are_refused_without_running_it(tmp_path: Path) -> None:
    if os.path.exists(PICKLE_MARKER):
        os.remove(PICKLE_MARKER)
    path = tmp_path / "autoencoder-medium-normal.pt"
    path.write_bytes(pickle.dumps({"encoder": PicklePayload(), "decoder": {}}))
    with pytest.raises(EntryProblem, match=r"not a file saved with torch\.save"):
        load_weights(path)  # a plain pickle is refused before anything reads it
    torch.save({"encoder": PicklePayload(), "decoder": {}}, path)  # the same inside torch's zip format
    with pytest.raises(EntryProblem, match="weights_only"):
        load_weights(path)
    assert not os.path.exists(PICKLE_MARKER)


def test_weights_too_large_or_of_the_wrong_structure_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EntryProblem, match="at most 1 MB"):
        load_weights(_save(tmp_path, {"encoder": {"w": torch.zeros(600_000)}, "decoder": {}}), max_bytes=2**20)
    with pytest.raises(EntryProblem, match="exactly the keys"):
        load_weights(_save(tmp_path, {"encoder": {}}))
    with pytest.raises(EntryProblem, match="tensors"):
        load_weights(_save(tmp_path, {"encoder": {"w": [1.0, 2.0]}, "decoder": {}}))


def test_a_refused_weights_file_is_explained_without_terminal_codes(tmp_path: Path) -> None:
    from mlphys.grading.challenge import _bounded

    assert _bounded("\x1b[31mWeightsUnpickler error:\x1b[0m Unsupported global") == (
        "WeightsUnpickler error: Unsupported global"
    )
    path = tmp_path / "autoencoder-medium-normal.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(EntryProblem, match=r"torch\.save") as refused:
        load_weights(path)
    assert "\x1b" not in str(refused.value)


def test_weights_whose_tensors_would_inflate_are_refused_before_anything_is_copied(tmp_path: Path) -> None:
    """A 1.7 kB file of stride-0 tensors once cost the grader 1.1 GB; a compressed archive 1.1 GB more."""
    import tracemalloc
    import zipfile

    expanded = _save(tmp_path, {"encoder": {"w": torch.zeros(1).expand(200_000_000)}, "decoder": {}})
    assert expanded.stat().st_size < 10_000
    tracemalloc.start()
    with pytest.raises(EntryProblem, match="more than 5,000,000 numbers"):
        load_weights(expanded)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20
    compressed = tmp_path / "compressed.pt"
    with zipfile.ZipFile(_save(tmp_path, {"encoder": {"w": torch.zeros(10)}, "decoder": {}})) as src:
        with zipfile.ZipFile(compressed, "w", compression=zipfile.ZIP_DEFLATED) as dst:
            for member in src.infolist():
                dst.writestr(member.filename, src.read(member))
    with pytest.raises(EntryProblem, match="compressed"):
        load_weights(compressed)


def test_weights_in_float_types_numpy_lacks_load_as_the_same_numbers(tmp_path: Path) -> None:
    """bfloat16 (and float8) tensors are numbers: they load exactly, as float32, and an RBM of them is checked."""
    from mlphys.assignments.boltzmann_mnist.scoring import load_rbm_weights

    w = torch.linspace(-3, 3, 12).reshape(3, 4)
    state = {"encoder": {"w": w.to(torch.bfloat16), "f8": w.to(torch.float8_e4m3fn)}, "decoder": {"b": torch.ones(2)}}
    loaded = load_weights(_save(tmp_path, state))
    assert loaded["encoder"]["w"].dtype == np.float32
    assert np.array_equal(loaded["encoder"]["w"], w.to(torch.bfloat16).float().numpy())
    assert np.array_equal(loaded["encoder"]["f8"], w.to(torch.float8_e4m3fn).float().numpy())
    rbm = tmp_path / "rbm-h25.pt"
    torch.save({"rbm": {"W": torch.zeros(784, 5), "a": torch.zeros(784), "b": torch.zeros(5)}}, rbm)
    torch.save({"rbm": {k: v.to(torch.bfloat16) for k, v in torch.load(rbm)["rbm"].items()}}, rbm)
    W, a, b = load_rbm_weights(rbm, "H25")
    assert W.shape == (784, 5) and a.shape == (784,) and b.shape == (5,) and W.dtype == np.float64


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_tensors_that_are_not_plain_numbers_are_refused_with_their_type(tmp_path: Path) -> None:
    for tensor in (torch.zeros(3, dtype=torch.complex32), torch.zeros(3, 3).to_sparse()):
        with pytest.raises(EntryProblem, match="only plain real numbers"):
            load_weights(_save(tmp_path, {"encoder": {"w": tensor}, "decoder": {}}))


def test_an_entry_the_grader_fails_to_score_is_reported_and_grading_goes_on(tmp_path: Path) -> None:
    """score_challenge never raises: a failure of the grader's own code is that entry's problem, said as such."""
    from mlphys.grading.challenge import Challenge, score_track
    from mlphys.grading.isolated import Isolation
    from mlphys.grading.submission import Submission

    class Broken(Challenge):
        key, title, tracks, weights_parts = "broken", "Broken", ("T",), ("net",)

        def weights_filename(self, track: str) -> str:
            return "net.pt"

        def score(self, track: str, state: dict, context: object) -> object:
            raise TypeError("a grader bug with the student's text in it")

    torch.save({"net": {"w": torch.zeros(2)}}, tmp_path / "net.pt")
    submission = Submission(files=tmp_path, cells={}, isolation=Isolation(), secret="s")
    entry = score_track(Broken(), submission, "T", submission.scoring(Broken()))
    assert entry.stage == "weights" and "error of the grader's" in (entry.problem or "")
    assert "TypeError" in (entry.problem or "") and "student's text" not in (entry.problem or "")


def test_a_retraining_check_that_runs_out_of_time_is_not_a_flag() -> None:
    """On a slow machine a check once ran out of time and flagged an honest entry, for good."""
    import time

    from mlphys.assignments.autoencoder_challenge.cases import reference_cell
    from mlphys.demo.case import Materials
    from mlphys.grading.challenge import Scoring
    from mlphys.grading.execute import sandbox_problem
    from mlphys.grading.isolated import Isolation

    materials = Materials(REPO, ASSIGNMENT, "autoencoder_challenge")
    cells = {
        "architecture": reference_cell(materials, "architecture"),
        "training": "def train(encoder, decoder, images):\n    import time\n    time.sleep(600)\n",
    }
    started = time.monotonic()
    scoring = Scoring(CHALLENGE, "a secret", Isolation(use_bwrap=sandbox_problem() is None), cells, started + 20)
    result = CHALLENGE.retrain("MEDIUM/NORMAL", 0.006, scoring)
    assert result.status == "timed out" and result.retrained_cost is None
    assert time.monotonic() - started < 60  # the limit covers the whole check


def test_hidden_images_follow_the_secret() -> None:
    one = challenge.hidden_images("secret one")
    assert one["public"].shape == (challenge.PUBLIC_IMAGES, 27, 27)
    assert set(np.unique(one["public"])) <= {0, 1}
    assert np.array_equal(one["public"], challenge.hidden_images("secret one")["public"])
    assert not np.array_equal(one["public"], one["private"])
    assert not np.array_equal(one["public"], challenge.hidden_images("secret two")["public"])


# ---- the demo cohort, graded by nbgrader -------------------------------------------------------------


@pytest.fixture(scope="module")
def cohort(course: dict[str, GradedCohort]) -> GradedCohort:
    return course[ASSIGNMENT]


def _record(cohort: GradedCohort, student: str) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{cohort.root / 'gradebook.db'}") as gb:
        found = records.load_records(gb, ASSIGNMENT, CHALLENGE.key)
    return found[(student, cohort.notebook)][0]


def test_every_entry_gets_exactly_its_expected_points(cohort: GradedCohort) -> None:
    wrong = {
        case.student: (cohort.scores.get(case.student), case.expected_points)
        for case in cohort.cases
        if cohort.scores.get(case.student) != case.expected_points
    }
    assert wrong == {}


def test_an_honest_entry_is_scored_on_both_splits(cohort: GradedCohort) -> None:
    (entry,) = _record(cohort, "ref_solution")["entries"]
    assert entry["stage"] == "scored" and entry["detail"] == "9"
    assert 0 < entry["public_cost"] < 0.02 and 0 < entry["private_cost"] < 0.02
    assert entry["public_cost"] != entry["private_cost"]
    assert np.asarray(entry["picture"]).shape == (challenge.SHOWN_IMAGES, 27, 27)


@pytest.mark.parametrize(
    ("student", "problem"),
    [
        ("identity_net", "more numbers per image than this track allows"),
        ("code_of_ten", "more numbers per image than this track allows (at most 9)"),
        ("leaky_decoder", "FileNotFoundError"),
        ("nan_outputs", "not finite"),
        ("wrong_shape", "(1000, 27, 27)"),
        ("huge_weights", "MB; at most 20 MB"),
        ("pickled_code", "weights_only"),
    ],
)
def test_each_cheat_or_fault_is_caught_and_explained(cohort: GradedCohort, student: str, problem: str) -> None:
    (entry,) = _record(cohort, student)["entries"]
    assert entry["stage"] != "scored"
    assert problem in entry["problem"]
    assert problem in cohort.feedback_html(student).read_text()  # the student is told why


def test_packed_codes_lose_their_extra_bits(cohort: GradedCohort) -> None:
    (entry,) = _record(cohort, "packed_codes")["entries"]
    assert entry["stage"] == "scored" and entry["public_cost"] > 0.05


def test_feedback_shows_the_public_cost_the_pass_bands_and_the_name_on_the_boards(cohort: GradedCohort) -> None:
    from mlphys.cli import DEMO_SECRET
    from mlphys.leaderboard.pseudonyms import course_salt, pseudonym

    (entry,) = _record(cohort, "ref_solution")["entries"]
    text = cohort.feedback_html("ref_solution").read_text()
    assert f"MEDIUM/NORMAL: public cost {entry['public_cost']:.4g}" in text
    assert "below 0.05, below 0.02" in text
    assert pseudonym("ref_solution", course_salt(DEMO_SECRET)) in text
    assert "you appear under your name" in cohort.feedback_html("long_entrant").read_text()  # opted in


def test_pickled_weights_never_ran(cohort: GradedCohort) -> None:
    assert not os.path.exists(PICKLE_MARKER)


def test_the_private_cost_never_reaches_the_student(cohort: GradedCohort) -> None:
    (entry,) = _record(cohort, "ref_solution")["entries"]
    # Exact digits: a short rounding could match the student's own validation cost, printed by their notebook.
    for private in (repr(entry["private_cost"]), f"{entry['private_cost']:.7f}"):
        for student in ("ref_solution", "linear_net"):
            assert private not in cohort.feedback_html(student).read_text()
            assert private not in cohort.autograded_notebook(student).read_text()


# ---- the boards ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def boards(cohort: GradedCohort) -> dict:
    # The session's full demo retrained the best entry of every board and the two cheats (on MEDIUM/NORMAL
    # they rank first); the reference, third there, is checked here too.
    gather.run_retraining(gather.Course.load(cohort.root), ASSIGNMENT, 0, students=["ref_solution"])
    return leaderboard(cohort.root, ASSIGNMENT, 0, None, None)


def test_the_retraining_check_flags_the_entry_trained_beyond_its_budget(boards: dict) -> None:
    by_student = {(e.student, e.track): e for e in boards["entries"]}
    assert by_student[("over_budget", "MEDIUM/NORMAL")].retrain == "flagged"
    assert by_student[("ref_solution", "MEDIUM/NORMAL")].retrain == "reproduced"
    assert {e.student for e in boards["entries"] if e.retrain == "flagged"} == {"over_budget", "self_drawn"}


def test_boards_rank_honest_entries_and_show_no_private_cost_before_the_deadline(
    cohort: GradedCohort, boards: dict
) -> None:
    data = json.loads(boards["paths"]["json"].read_text())
    assert data["final"] is False
    medium = data["boards"]["MEDIUM/NORMAL"]
    ranked = [row for row in medium if row["rank"] is not None]
    assert [row["rank"] for row in ranked] == list(range(1, len(ranked) + 1))
    assert len(ranked) >= 2 and ranked[-1]["public_cost"] > ranked[0]["public_cost"]
    assert any(row["retrain"] == "flagged" and row["rank"] is None for row in medium)
    texts = [boards["paths"][kind].read_text() for kind in ("csv", "json", "html")]
    for entry in boards["entries"]:
        for text in texts:
            assert repr(entry.private_cost) not in text
            if entry.name is None:  # not opted in: a pseudonym only
                assert entry.student not in text
    assert "long_entrant" in texts[2]  # opted in to their name


def test_rebuilding_the_boards_needs_no_retraining_and_gives_the_same_files(cohort: GradedCohort, boards: dict) -> None:
    before = {k: p.read_bytes() for k, p in boards["paths"].items()}
    again = leaderboard(cohort.root, ASSIGNMENT, 0, None, None)
    assert {k: p.read_bytes() for k, p in again["paths"].items()} == before
    assert {e.retrain for e in again["entries"]} >= {"flagged", "reproduced"}


def test_the_final_board_ranks_by_the_private_split(cohort: GradedCohort, boards: dict, tmp_path: Path) -> None:
    final = leaderboard(cohort.root, ASSIGNMENT, 0, True, tmp_path)
    data = json.loads(final["paths"]["json"].read_text())
    assert data["final"] is True
    costs = [row["private_cost"] for row in data["boards"]["MEDIUM/NORMAL"] if row["rank"] is not None]
    assert costs == sorted(costs) and all(c is not None for c in costs)
