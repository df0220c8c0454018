"""The maze of assignment 05 (mlphys.course.maze): generator, batched environment, Gymnasium environment."""

from __future__ import annotations

import warnings
from collections import deque

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from mlphys.course.maze import (
    DOWN,
    LEFT,
    N_ACTIONS,
    RIGHT,
    STAY,
    TABLE_CHESTS,
    TABLE_SIZE,
    TABLE_STEPS,
    UP,
    MazeBatch,
    MazeEnv,
    batch_of,
    load_policy,
    random_chests,
    random_maze,
    rollout,
    sample_actions,
    save_policy,
    table_maze,
    table_policy,
)
from mlphys.course.maze_plots import plot_episode

SETTINGS = settings(derandomize=True, database=None, max_examples=40, deadline=None)


def reachable(walls: np.ndarray, start: tuple[int, int] = (1, 1)) -> np.ndarray:
    """The free cells a robot can reach from ``start`` (breadth-first search)."""
    seen = np.zeros_like(walls)
    seen[start] = True
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            if not walls[r + dr, c + dc] and not seen[r + dr, c + dc]:
                seen[r + dr, c + dc] = True
                queue.append((r + dr, c + dc))
    return seen


@SETTINGS
@given(size=st.sampled_from([5, 7, 11, 15, 21]), seed=st.integers(0, 2**32 - 1))
def test_a_maze_is_walled_in_and_every_free_cell_is_reachable_from_the_start(size: int, seed: int) -> None:
    walls = random_maze(size, np.random.default_rng(seed))
    assert walls.shape == (size, size) and walls.dtype == bool
    assert walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()
    assert not walls[1, 1]
    assert not walls[1::2, 1::2].any(), "cells with two odd coordinates are always free"
    assert np.array_equal(reachable(walls), ~walls), "some free cell cannot be reached from (1, 1)"


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_the_same_generator_state_gives_the_same_maze(seed: int) -> None:
    first = random_maze(15, np.random.default_rng(seed))
    assert np.array_equal(first, random_maze(15, np.random.default_rng(seed)))


def test_mazes_differ_and_have_interior_walls() -> None:
    rng = np.random.default_rng(0)
    mazes = [random_maze(15, rng) for _ in range(20)]
    assert len({m.tobytes() for m in mazes}) == 20
    interior = np.mean([m[1:-1, 1:-1].mean() for m in mazes])
    assert 0.25 < interior < 0.5, f"interior wall fraction {interior:.2f}: not a maze"


def test_walls_grow_as_often_vertically_as_horizontally() -> None:
    """The original generator never chose the last neighbour of its list (down, where there is one), so its
    walls grew vertically only half as often as horizontally (about 0.20 against 0.54 of the links). The
    fixed generator is symmetric under transposition."""
    rng = np.random.default_rng(1)
    mazes = np.stack([random_maze(15, rng) for _ in range(100)])
    # A wall cell between two lattice points (even, even): (odd row, even column) links them vertically.
    vertical = mazes[:, 1:-1:2, 2:-1:2].mean()
    horizontal = mazes[:, 2:-1:2, 1:-1:2].mean()
    assert abs(vertical - horizontal) < 0.05, f"vertical links {vertical:.2f}, horizontal links {horizontal:.2f}"


@pytest.mark.parametrize("size", [5, 11, 15])
def test_random_chests_lie_on_distinct_free_cells_other_than_the_start(size: int) -> None:
    rng = np.random.default_rng(size)
    walls = random_maze(size, rng)
    n_free = int((~walls).sum())
    chests = random_chests(walls, n_free - 1, rng)
    assert chests.sum() == n_free - 1 and not (chests & walls).any() and not chests[1, 1]
    with pytest.raises(ValueError):
        random_chests(walls, n_free, rng)


def corridor() -> tuple[np.ndarray, np.ndarray]:
    """A 5 x 5 maze whose free cells are a corridor around a wall in the middle; one chest at (1, 3)."""
    walls = np.ones((5, 5), dtype=bool)
    walls[1, 1:4] = walls[3, 1:4] = walls[1:4, 1] = walls[1:4, 3] = False
    chests = np.zeros_like(walls)
    chests[1, 3] = True
    return walls, chests


def test_moves_walls_and_chests() -> None:
    walls, chests = corridor()
    mazes = MazeBatch(walls[None].repeat(5, 0), chests[None].repeat(5, 0), wall_penalty=0.5)
    rewards = mazes.step(np.array([UP, DOWN, LEFT, RIGHT, STAY]))
    assert mazes.positions.tolist() == [[1, 1], [2, 1], [1, 1], [1, 2], [1, 1]]
    assert rewards.tolist() == [-0.5, 0.0, -0.5, 0.0, 0.0]
    assert mazes.step(np.array([STAY, DOWN, STAY, RIGHT, STAY])).tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]
    # Collected, the chest is gone: stepping away and back brings nothing.
    assert not mazes.chests[3].any() and mazes.chests[0].sum() == 1
    mazes.step(np.array([STAY] * 3 + [LEFT, STAY]))
    assert mazes.step(np.array([STAY] * 3 + [RIGHT, STAY]))[3] == 0.0


def test_chests_stay_when_not_deleted() -> None:
    walls, chests = corridor()
    mazes = MazeBatch(walls[None], chests[None], delete_chests=False)
    rewards = [mazes.step(np.array([a]))[0] for a in (RIGHT, RIGHT, STAY, STAY)]
    assert rewards == [0.0, 1.0, 1.0, 1.0]


def test_observations_show_walls_chests_and_robot() -> None:
    walls, chests = corridor()
    mazes = MazeBatch(walls[None], chests[None])
    mazes.step(np.array([DOWN]))
    obs = mazes.observations()
    assert obs.shape == (1, 5, 5, 3) and obs.dtype == np.float32
    assert np.array_equal(obs[0, ..., 0], walls) and np.array_equal(obs[0, ..., 1], chests)
    assert obs[0, ..., 2].sum() == 1 and obs[0, 2, 1, 2] == 1


def test_the_caller_s_chests_are_not_changed() -> None:
    walls, chests = corridor()
    mazes = MazeBatch(walls[None], chests[None])
    mazes.step(np.array([RIGHT]))
    mazes.step(np.array([RIGHT]))
    assert chests[1, 3] and not mazes.chests.any()


def test_bad_actions_are_refused() -> None:
    walls, chests = corridor()
    mazes = MazeBatch(walls[None].repeat(2, 0), chests[None].repeat(2, 0))
    for bad in (np.array([0, 5]), np.array([-1, 0]), np.array([0.0, 1.0]), np.array([0])):
        with pytest.raises(ValueError):
            mazes.step(bad)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), delete=st.booleans(), penalty=st.sampled_from([0.0, 0.1]))
def test_a_batch_steps_exactly_like_single_environments(seed: int, delete: bool, penalty: float) -> None:
    rng = np.random.default_rng(seed)
    mazes = MazeBatch.random(4, 7, 3, rng, delete_chests=delete, wall_penalty=penalty)
    envs = [
        MazeEnv(walls=w, chests=c, max_steps=12, delete_chests=delete, wall_penalty=penalty)
        for w, c in zip(mazes.walls, mazes.chests, strict=True)
    ]
    singles = [env.reset(seed=0)[0] for env in envs]
    for t in range(12):
        np.testing.assert_array_equal(mazes.observations(), np.stack(singles))
        actions = rng.integers(0, N_ACTIONS, 4)
        rewards = mazes.step(actions)
        for b, env in enumerate(envs):
            singles[b], reward, terminated, truncated, _ = env.step(actions[b])
            assert reward == rewards[b] and not terminated and truncated == (t == 11)


def test_random_batches_are_deterministic_and_have_the_chests_asked_for() -> None:
    first = MazeBatch.random(6, 15, 10, np.random.default_rng(3))
    second = MazeBatch.random(6, 15, 10, np.random.default_rng(3))
    assert np.array_equal(first.walls, second.walls) and np.array_equal(first.chests, second.chests)
    assert (first.chests.sum(axis=(1, 2)) == 10).all() and not (first.chests & first.walls).any()
    assert not first.chests[:, 1, 1].any()


def test_maze_env_passes_gymnasiums_checker_without_a_warning() -> None:
    walls, chests = corridor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(MazeEnv(render_mode="rgb_array"), skip_render_check=False)
        check_env(MazeEnv(walls=walls, chests=chests, max_steps=5))
    # The one warning left is about registration (gymnasium.make), which a course environment does not need.
    complaints = [str(w.message) for w in caught if "gymnasium.make" not in str(w.message)]
    assert complaints == []


def test_maze_env_reset_with_a_seed_repeats_the_maze_and_truncates_after_max_steps() -> None:
    env = MazeEnv(size=11, n_chests=4, max_steps=3)
    first, info = env.reset(seed=42)
    assert info["position"] == (1, 1) and info["chests_left"] == 4 and first[..., 1].sum() == 4
    assert np.array_equal(env.reset(seed=42)[0], first)
    assert not np.array_equal(env.reset(seed=43)[0], first)
    assert [env.step(STAY)[3] for _ in range(3)] == [False, False, True]


def test_sample_actions_follows_the_probabilities() -> None:
    rng = np.random.default_rng(0)
    probabilities = np.tile([0.1, 0.0, 0.2, 0.3, 0.4], (20_000, 1))
    counts = np.bincount(sample_actions(probabilities, rng), minlength=5) / 20_000
    np.testing.assert_allclose(counts, probabilities[0], atol=0.01)
    assert counts[1] == 0.0
    certain = np.eye(5)
    assert sample_actions(certain, rng).tolist() == [0, 1, 2, 3, 4]


def test_rollout_records_positions_actions_and_rewards() -> None:
    walls, chests = corridor()
    right = np.zeros((5, 5, 5))
    right[..., RIGHT] = 1.0
    mazes = MazeBatch(walls[None].repeat(2, 0), chests[None].repeat(2, 0))
    trajectories = rollout(mazes, table_policy(right), 3, np.random.default_rng(0))
    assert trajectories.positions[0].tolist() == [[1, 1], [1, 2], [1, 3]]
    assert trajectories.actions.tolist() == [[RIGHT] * 3] * 2
    assert trajectories.returns.tolist() == [1.0, 1.0]


def test_the_table_maze_can_be_cleared_along_a_path_that_never_revisits_a_cell() -> None:
    walls, chests = table_maze()
    assert walls.shape == (TABLE_SIZE, TABLE_SIZE) and chests.sum() == TABLE_CHESTS
    route = [DOWN] * 8 + [RIGHT] * 8 + [UP] * 4 + [LEFT] * 4  # the route the notebook's policy learns
    mazes = batch_of(walls, chests, 1)
    visited = {(1, 1)}
    total = 0.0
    for action in route:
        total += mazes.step(np.array([action]))[0]
        visited.add(tuple(mazes.positions[0]))
    assert total == TABLE_CHESTS and len(visited) == len(route) + 1 <= TABLE_STEPS


def test_saved_policy_weights_load_into_a_fresh_model(tmp_path) -> None:
    model = torch.nn.Linear(3, 5)
    path = str(tmp_path / "policy.pt")
    assert not load_policy(model, path)
    save_policy(model, path)
    fresh = torch.nn.Linear(3, 5)
    assert load_policy(fresh, path)
    assert torch.equal(fresh.weight, model.weight) and torch.equal(fresh.bias, model.bias)


def test_an_episode_strip_shows_the_return_so_far_in_each_frame() -> None:
    matplotlib.use("Agg")
    walls, chests = corridor()
    right = np.zeros((5, 5, 5))
    right[..., RIGHT] = 1.0
    episode = rollout(batch_of(walls, chests, 1), table_policy(right), 4, np.random.default_rng(0))
    figure = plot_episode(walls, chests, episode.positions[0], episode.rewards[0], frames=4)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["t = 0, return 0", "t = 1, return 0", "t = 2, return 1", "t = 3, return 1"]
    plt.close(figure)
