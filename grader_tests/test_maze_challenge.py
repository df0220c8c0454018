"""The maze challenge (05): a policy scored in the grader's own mazes with the grader's own luck.

Three layers: the grader's checks and episode loop in this process (with Python policies standing in for
a student's network), one fresh sandboxed kernel answering a whole episode (:meth:`FreshKernel.session`),
and the demo cohort, graded by nbgrader with every other in the session's course, with its boards rebuilt.
"""

from __future__ import annotations

import datetime
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, GradedCohort
from mlphys.assignments.maze_policy_gradient import challenge
from mlphys.assignments.maze_policy_gradient.challenge import (
    CHALLENGE,
    PUBLIC_MAZES,
    action_draws,
    hidden_mazes,
    run_episodes,
    validate_probabilities,
)
from mlphys.course import maze
from mlphys.grading.challenge import EntryProblem, Scoring, TimeUp, entry_summary
from mlphys.grading.execute import sandbox_problem
from mlphys.grading.isolated import Isolation
from mlphys.leaderboard import BoardSpec, Entry, rank

SECRET = "a course secret"
ASSIGNMENT = "05_maze_policy_gradient"


# ---- stand-ins for a student's policy (they see only the observations) --------------------------------


def uniform(observations: np.ndarray) -> np.ndarray:
    return np.full((len(observations), maze.N_ACTIONS), 1 / maze.N_ACTIONS)


def down_or_right(observations: np.ndarray) -> np.ndarray:
    """The best-scoring kind of policy that ignores what it sees: the chests lie below and right of the start."""
    return np.tile([0.0, 0.5, 0.0, 0.5, 0.0], (len(observations), 1))


def planner(observations: np.ndarray) -> np.ndarray:
    """Breadth-first search to the nearest chest, all probability on its first step."""
    out = np.zeros((len(observations), maze.N_ACTIONS))
    for b, view in enumerate(observations):
        walls, chests = view[..., 0] > 0, view[..., 1] > 0
        start = tuple(int(i) for i in np.argwhere(view[..., 2] > 0)[0])
        came: dict[tuple[int, int], tuple[tuple[int, int], int] | None] = {start: None}
        queue, goal = deque([start]), None
        while queue:
            y, x = queue.popleft()
            if chests[y, x]:
                goal = (y, x)
                break
            for action, (dy, dx) in enumerate(maze.MOVES[: maze.STAY]):
                cell = (y + int(dy), x + int(dx))
                if not walls[cell] and cell not in came:
                    came[cell] = ((y, x), action)
                    queue.append(cell)
        if goal is None:
            out[b, maze.STAY] = 1
            continue
        while (step := came[goal]) is not None and step[0] != start:
            goal = step[0]
        out[b, step[1] if step is not None else maze.STAY] = 1
    return out


def evaluate(policy, secret: str = SECRET) -> challenge.Episodes:
    walls, chests = hidden_mazes(secret)["public"]
    return run_episodes(walls, chests, policy, action_draws(secret, len(walls)))


# ---- the grader's checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (np.full((3, 5), np.nan), "not finite"),
        (np.array([[1.5, -0.5, 0, 0, 0]] * 3), "negative probabilities"),
        (np.full((3, 5), 0.3), "must sum to 1"),
        (np.full((3, 4), 0.25), "of shape (3, 5)"),
        (np.full((3, 5, 1), 0.2), "it returned something else"),
        ([[0.2] * 5] * 3, "it returned something else"),
        (np.array([["a"] * 5] * 3), "it returned something else"),
    ],
)
def test_only_valid_probabilities_are_accepted(answer: object, problem: str) -> None:
    with pytest.raises(EntryProblem) as caught:
        validate_probabilities(answer, 3)
    assert problem in str(caught.value)


@pytest.mark.parametrize("answer", [np.full((3, 5), 0.3001), np.zeros((12345, 5)), np.full((3, 5, 777), 0.2)])
def test_what_a_policy_returns_never_comes_back_in_the_message(answer: np.ndarray) -> None:
    """The policy saw hidden mazes: a sum or a shape it chose could carry them out through the feedback."""
    with pytest.raises(EntryProblem) as caught:
        validate_probabilities(answer, 3)
    assert not any(number in str(caught.value) for number in ("1.5", "12345", "777"))


def test_valid_probabilities_are_normalised_exactly() -> None:
    p = validate_probabilities(np.array([[0.2, 0.2, 0.2, 0.2, 0.2 + 5e-4]], dtype=np.float32), 1)
    assert p.dtype == np.float64 and p.sum() == pytest.approx(1.0, abs=1e-15)


def test_hidden_mazes_and_the_grader_s_luck_follow_the_secret() -> None:
    one, again, other = hidden_mazes("secret one"), hidden_mazes("secret one"), hidden_mazes("secret two")
    walls, chests = one["public"]
    assert walls.shape == chests.shape == (PUBLIC_MAZES, challenge.SIZE, challenge.SIZE)
    assert np.all(chests.sum(axis=(1, 2)) == challenge.CHESTS) and not np.any(walls & chests)
    assert np.array_equal(walls, again["public"][0]) and np.array_equal(chests, again["public"][1])
    assert not np.array_equal(walls, one["private"][0])
    assert not np.array_equal(walls, other["public"][0])
    assert np.array_equal(action_draws("secret one", 7), action_draws("secret one", 7))
    assert not np.array_equal(action_draws("secret one", 7), action_draws("secret two", 7))
    order = challenge.evaluation_order("secret one")
    assert sorted(order) == list(range(PUBLIC_MAZES + challenge.PRIVATE_MAZES))
    assert not np.array_equal(order[:PUBLIC_MAZES], np.arange(PUBLIC_MAZES))  # public ones spread over the batch


def test_the_grader_samples_each_action_by_the_probabilities() -> None:
    draws = np.random.default_rng(0).random(200_000)
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.0])
    counts = np.bincount(challenge.sample(np.tile(p, (len(draws), 1)), draws), minlength=5) / len(draws)
    assert np.allclose(counts, p, atol=0.005) and counts[4] == 0


def test_returns_count_the_chests_and_rank_what_a_policy_knows() -> None:
    """A policy that ignores what it sees stays below the pass band; one that plans clears every band."""
    blind, random, planned = evaluate(down_or_right), evaluate(uniform), evaluate(planner)
    low, high = CHALLENGE.pass_bands
    assert random.returns.mean() < blind.returns.mean() < low
    assert planned.returns.mean() > high
    assert np.all(planned.bumps == 0) and np.all(planned.returns <= challenge.CHESTS)
    # The paths are the robots' cells, one step apart (or still).
    steps = np.abs(np.diff(planned.paths, axis=1)).sum(axis=2)
    assert set(np.unique(steps)) <= {0, 1} and np.all(planned.paths[:, 0] == maze.START)


class StreamGuesser:
    """The attack on the grader's luck (as the demo's ``attack_maze_lucky``): a policy that assumes it knows the
    uniform numbers the grader draws (here numpy's generator with seed 0, as a careless grader might use) and
    gives the planner's action a narrow band of probability around each guessed draw.  It keeps state across
    calls."""

    def __init__(self, guess: np.ndarray, width: float = 0.01) -> None:
        self.guess, self.step, self.width = guess, 0, width

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        wanted = planner(observations).argmax(axis=1)
        u = self.guess[self.step]
        self.step += 1
        out = np.zeros((len(observations), maze.N_ACTIONS))
        for b, a in enumerate(wanted):
            low, high = max(u[b] - self.width, 0.0), min(u[b] + self.width, 1.0)
            edges = np.concatenate([np.linspace(0.0, low, a + 1), np.linspace(high, 1.0, maze.N_ACTIONS - a)])
            out[b] = np.diff(edges)
        return out


def test_a_policy_cannot_choose_its_luck() -> None:
    walls, chests = hidden_mazes(SECRET)["public"]
    careless = np.random.default_rng(0).random((challenge.STEPS, len(walls)))
    # Against a stream it can guess, the attack steers every robot like the planner ...
    steered = run_episodes(walls, chests, StreamGuesser(careless), careless)
    assert steered.returns.mean() == pytest.approx(evaluate(planner).returns.mean(), abs=0.3)
    # ... against the grader's stream, drawn from the secret, it gets what its probabilities deserve: a narrow
    # band for the planner's action, at a random place, is about a random walk.
    honest = run_episodes(walls, chests, StreamGuesser(careless), action_draws(SECRET, len(walls)))
    assert honest.returns.mean() < CHALLENGE.pass_bands[0]


def test_the_page_shows_paths_on_the_public_mazes() -> None:
    episodes = evaluate(planner)
    walls, chests = hidden_mazes(SECRET)["public"]
    shown = slice(0, challenge.SHOWN_MAZES)
    pictures = challenge.maze_pictures(walls[shown], chests[shown], episodes.paths[shown])
    originals = CHALLENGE.page_originals(SECRET)
    assert pictures.shape == originals.shape == (challenge.SHOWN_MAZES, 45, 45)
    assert np.all((pictures == challenge.WALL) == (originals == challenge.WALL))  # the same mazes
    assert np.any(pictures == challenge.PATH) and np.any(pictures == challenge.COLLECTED)
    assert not np.any(originals == challenge.PATH)


# ---- direction: a return, higher is better ----------------------------------------------------------


def test_a_single_state_dict_is_taken_as_the_one_part_of_the_weights(tmp_path: Path) -> None:
    import torch

    from mlphys.grading.challenge import load_weights

    path = tmp_path / "maze-policy.pt"
    torch.save({"head.weight": torch.ones(5, 3), "head.bias": torch.zeros(5)}, path)
    state = load_weights(path, CHALLENGE.weights_parts)
    assert list(state) == ["policy"] and state["policy"]["head.weight"].shape == (5, 3)
    torch.save({"policy": {"w": torch.ones(2)}, "other": {}}, path)
    with pytest.raises(EntryProblem, match="exactly the keys 'policy'"):
        load_weights(path, CHALLENGE.weights_parts)


def test_boards_rank_a_return_highest_first() -> None:
    when = datetime.datetime(2026, 1, 1)
    entries = [
        Entry("stu_a", None, "HARD", "", 2.0, 1.0, when),
        Entry("stu_b", None, "HARD", "", 3.5, 3.0, when),
        Entry("stu_c", None, "HARD", "", float("nan"), 0.0, when),
        Entry("stu_d", None, "HARD", "", 0.5, 3.9, when),
    ]
    spec = BoardSpec.of(CHALLENGE)
    public = rank(entries, spec.tracks, final=False, higher_is_better=spec.higher_is_better)["HARD"]
    final = rank(entries, spec.tracks, final=True, higher_is_better=spec.higher_is_better)["HARD"]
    assert [(r.student, r.rank) for r in public] == [("stu_b", 1), ("stu_a", 2), ("stu_d", 3), ("stu_c", None)]
    assert [r.student for r in final][:3] == ["stu_d", "stu_b", "stu_a"]


def test_the_student_reads_the_return_and_the_bands_above() -> None:
    from mlphys.grading.challenge import ChallengeResult, Scored

    class Student:
        student, secret = "stu_a", SECRET

    scored = Scored("HARD", stage="scored", public_cost=2.25, private_cost=1.0)
    text = entry_summary(CHALLENGE, ChallengeResult({"HARD": scored}, scored), Student())  # type: ignore[arg-type]
    assert "HARD: public return 2.25" in text and "above 2, above 3" in text and "1.0" not in text


# ---- one fresh kernel for a whole evaluation ---------------------------------------------------------

POLICY = """
class Policy(nn.Module):
    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(5))

    def forward(self, x):
        calls.append(len(x))
        return torch.softmax(self.logits, 0).expand(len(x), 5)


calls = []


def make_policy():
    return Policy()


def count_calls():
    return len(calls)
"""


def _scoring(cells: dict[str, str], seconds: float = 120) -> Scoring:
    isolation = Isolation(use_bwrap=sandbox_problem() is None, timeout=20)
    return Scoring(CHALLENGE, SECRET, isolation, cells, deadline=time.monotonic() + seconds)


def test_one_kernel_answers_a_whole_episode_and_keeps_its_state() -> None:
    kernel = _scoring({challenge.POLICY_CELL: POLICY}).fresh_kernel([challenge.POLICY_CELL])
    logits = {"logits": np.log(np.array([1, 2, 3, 4, 10], dtype=np.float32))}
    from mlphys.kernel import wire

    with kernel.session(what="policy") as session:
        assert session.call("__mlphys_maze_load", wire.RemoteRef("make_policy"), logits, saw_hidden_data=False)
        for batch in (3, 4, 5):
            p = session.call("__mlphys_maze_probabilities", np.zeros((batch, 15, 15, 3), dtype=np.uint8))
            assert p.shape == (batch, 5) and np.allclose(p[0], [0.05, 0.1, 0.15, 0.2, 0.5])
        # The network was built once: module state from the first call is still there.
        assert session.call("count_calls", saw_hidden_data=False) == 3


def test_a_policy_that_stalls_runs_out_of_time_and_a_failing_one_shows_no_message() -> None:
    started = time.monotonic()
    stalling = POLICY.replace("calls.append(len(x))", "import time; time.sleep(600)")
    with pytest.raises(TimeUp):
        CHALLENGE.score("HARD", {"policy": {"logits": np.zeros(5)}}, _scoring({challenge.POLICY_CELL: stalling}))
    assert time.monotonic() - started < 60  # the per-call limit, not the whole evaluation's

    leaking = POLICY.replace("calls.append(len(x))", "raise ValueError(f'leak {float(x.sum())}')")
    scored = CHALLENGE.score("HARD", {"policy": {"logits": np.zeros(5)}}, _scoring({challenge.POLICY_CELL: leaking}))
    assert scored.stage == "episodes" and scored.public_cost is None
    assert "raised a ValueError while it ran on the hidden test data" in str(scored.problem)
    assert "leak" not in str(scored.problem)


def test_a_forged_reply_that_the_grader_refuses_carries_no_maze_out() -> None:
    """The policy has seen the hidden mazes; it forges a reply whose dtype name is their walls: refused, unquoted."""
    forging = POLICY.replace(
        "calls.append(len(x))",
        "import mlphys.kernel.wire as w; leak = str(x[..., 0].int().tolist()); "
        "w._encode = lambda value, depth, known=None: {'$nd': [leak, [0], '']}",
    )
    scored = CHALLENGE.score("HARD", {"policy": {"logits": np.zeros(5)}}, _scoring({challenge.POLICY_CELL: forging}))
    assert scored.stage == "episodes" and scored.public_cost is None
    problem = str(scored.problem)
    assert "cannot accept" in problem and "[[" not in problem and "1, 1, 1" not in problem and len(problem) < 1000


def test_an_honest_policy_is_scored_on_both_splits_in_one_kernel() -> None:
    state = {"policy": {"logits": np.log(np.array([0.01, 0.49, 0.01, 0.49, 0.0001]))}}
    scored = CHALLENGE.score("HARD", state, _scoring({challenge.POLICY_CELL: POLICY}))
    assert scored.stage == "scored", scored.problem
    assert 0.5 < scored.public_cost < CHALLENGE.pass_bands[0] and scored.private_cost is not None
    assert scored.picture is not None and scored.picture.shape == (challenge.SHOWN_MAZES, 45, 45)


# ---- the retraining check: the policy must be learned ---------------------------------------------------


def test_the_retraining_world_relabels_the_actions_beyond_any_symmetry_of_the_grid() -> None:
    relabelling = challenge.action_relabelling(SECRET)
    assert sorted(relabelling) == list(range(maze.N_ACTIONS)) and relabelling[maze.STAY] != maze.STAY
    assert list(relabelling) == list(challenge.action_relabelling(SECRET))
    assert any(list(challenge.action_relabelling(f"course {i}")) != list(relabelling) for i in range(5))


def _reference_entry(cells: dict[str, str], weights: Path) -> tuple[float, Scoring]:
    from mlphys.grading.challenge import load_weights

    isolation = Isolation(use_bwrap=sandbox_problem() is None, timeout=900)
    scored = CHALLENGE.score(
        "HARD", load_weights(weights, ("policy",)), Scoring(CHALLENGE, SECRET, isolation, cells, time.monotonic() + 300)
    )
    assert scored.public_cost is not None, scored.problem
    return scored.public_cost, Scoring(CHALLENGE, SECRET, isolation, cells, time.monotonic() + 1800)


def test_hand_set_weights_top_the_board_and_the_retraining_check_flags_them(tmp_path: Path) -> None:
    """A value-iteration network with hand-set weights once got every point and rank 1 (issue 23)."""
    from mlphys.assignments.maze_policy_gradient import cases

    cells = {challenge.POLICY_CELL: cases._HAND_SET_POLICY, challenge.TRAINING_CELL: cases._HAND_SET_TRAINING}
    cases.hand_set_weights(tmp_path / "maze-policy.pt")
    submitted, scoring = _reference_entry(cells, tmp_path / "maze-policy.pt")
    assert submitted > 5.0, "the hand-set planner finds more chests than any trained entry of the demo"
    result = CHALLENGE.retrain("HARD", submitted, scoring)
    assert result.status == "flagged" and result.retrained_cost is not None and result.retrained_cost < 1.0
    assert "relabelled" in result.message


def test_training_beyond_the_budget_is_flagged() -> None:
    from mlphys.assignments.maze_policy_gradient import cases

    greedy = cases._HAND_SET_TRAINING.replace(
        "    set_planner_weights(policy)\n",
        "    set_planner_weights(policy)\n"
        "    mazes = MazeBatch.random(64, HARD_SIZE, HARD_CHESTS, np.random.default_rng(0))\n"
        "    for _ in range(batches * HARD_STEPS + 1):\n"
        "        mazes.step(np.zeros(64, dtype=int))\n",
    )
    cells = {challenge.POLICY_CELL: cases._HAND_SET_POLICY, challenge.TRAINING_CELL: greedy}
    isolation = Isolation(use_bwrap=sandbox_problem() is None, timeout=300)
    result = CHALLENGE.retrain("HARD", 3.0, Scoring(CHALLENGE, SECRET, isolation, cells, time.monotonic() + 300))
    assert result.status == "flagged" and "budget" in result.message


@pytest.mark.slow
def test_the_reference_retrained_in_the_relabelled_world_reproduces_its_return() -> None:
    """The band is wide enough for honest training: the reference, trained afresh by its own cells (a second
    initialisation where the first does not take off), comes within it."""
    from mlphys.assignments.maze_policy_gradient import cases
    from mlphys.demo.case import Materials, reference_cell

    materials = Materials(REPO, ASSIGNMENT, "maze_policy_gradient")
    cells = {c: reference_cell(materials, c) for c in (challenge.POLICY_CELL, challenge.TRAINING_CELL)}
    submitted, scoring = _reference_entry(cells, cases.reference_weights(materials))
    result = CHALLENGE.retrain("HARD", submitted, scoring)
    assert result.status == "reproduced", result.message


# ---- the demo cohort, graded by nbgrader -------------------------------------------------------------


def test_the_notebook_s_pass_bands_are_the_challenge_s() -> None:
    """The hidden tests ask for returns above the bands the student's feedback names."""
    import re

    import nbformat

    source = nbformat.read(REPO / "source" / ASSIGNMENT / "maze_policy_gradient.ipynb", 4)
    text = "\n".join(cell.source for cell in source.cells if cell.cell_type == "code")
    bands = [float(b) for b in re.findall(r"expect_score_above\(challenge\.primary, ([0-9.]+)\)", text)]
    assert tuple(bands) == CHALLENGE.pass_bands


@pytest.fixture(scope="module")
def cohort(course: dict[str, GradedCohort]) -> GradedCohort:
    """This assignment's cohort, graded once with every other in the session's course.  To grade it alone:
    ``mlphys demo 05_maze_policy_gradient`` (scores beside the expected ones)."""
    return course[ASSIGNMENT]


def _entry(cohort: GradedCohort, student: str) -> dict:
    from nbgrader.api import Gradebook

    from mlphys.grading import records

    with Gradebook(f"sqlite:///{cohort.root / 'gradebook.db'}") as gb:
        found = records.load_records(gb, ASSIGNMENT, CHALLENGE.key)
    (entry,) = found[(student, cohort.notebook)][0]["entries"]
    return entry


def test_every_case_of_the_cohort_gets_exactly_its_points(cohort: GradedCohort) -> None:
    wrong = {
        case.student: (cohort.scores.get(case.student), case.expected_points)
        for case in cohort.cases
        if cohort.scores.get(case.student) != case.expected_points
    }
    assert wrong == {}


def test_the_reference_policy_is_scored_on_both_splits(cohort: GradedCohort) -> None:
    entry = _entry(cohort, "ref_solution")
    assert entry["stage"] == "scored" and entry["track"] == "HARD"
    assert entry["public_cost"] > CHALLENGE.pass_bands[-1] and entry["private_cost"] > CHALLENGE.pass_bands[-1]
    assert entry["public_cost"] != entry["private_cost"]
    assert np.asarray(entry["picture"]).shape == (challenge.SHOWN_MAZES, 45, 45)


@pytest.mark.parametrize(
    ("student", "problem"),
    [
        ("mistake_maze_unnormalised", "must sum to 1"),
        ("attack_maze_negative", "negative probabilities"),
        ("attack_maze_stall", "ran out of time"),
    ],
)
def test_each_invalid_policy_is_caught_and_explained(cohort: GradedCohort, student: str, problem: str) -> None:
    entry = _entry(cohort, student)
    assert entry["stage"] != "scored" and problem in entry["problem"]
    assert problem in cohort.feedback_html(student).read_text()


@pytest.mark.parametrize("student", ["mistake_maze_blind", "attack_maze_lucky"])
def test_valid_policies_that_cannot_see_or_guess_stay_below_the_pass_band(cohort: GradedCohort, student: str) -> None:
    entry = _entry(cohort, student)
    assert entry["stage"] == "scored" and entry["public_cost"] < CHALLENGE.pass_bands[0]


def test_feedback_shows_the_return_and_the_bands(cohort: GradedCohort) -> None:
    text = cohort.feedback_html("ref_solution").read_text()
    assert f"HARD: public return {_entry(cohort, 'ref_solution')['public_cost']:.4g}" in text
    assert "above 2, above 3" in text
    assert f"{_entry(cohort, 'ref_solution')['private_cost']:.4g}" not in text


def test_the_boards_rank_the_highest_return_first_with_paths(cohort: GradedCohort, tmp_path: Path) -> None:
    import json

    from mlphys.cli import leaderboard

    result = leaderboard(cohort.root, ASSIGNMENT, 0, None, tmp_path / "boards")
    document = json.loads((tmp_path / "boards" / "leaderboard.json").read_text())
    ranked = [row for row in document["boards"]["HARD"] if row["rank"] is not None]
    assert document["higher_is_better"] is True and len(ranked) >= 3
    assert [row["public_cost"] for row in ranked] == sorted((row["public_cost"] for row in ranked), reverse=True)
    page = (tmp_path / "boards" / "index.html").read_text()
    assert "higher is better" in page and "public return" in page and 'class="pictures"' in page
    assert "private_cost" not in (tmp_path / "boards" / "leaderboard.csv").read_text()
    assert result["entries"]
