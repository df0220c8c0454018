"""Treasure hunting in a maze, for assignment 05: the maze generator and the environments.

A robot starts at (1, 1) of an M x M maze (M odd, walls all around) and moves up, down, left, right
or stays. Moving into a wall leaves it where it is (optionally with a penalty). Each treasure chest it
steps onto gives a reward of +1 and, where chests are deleted (the "really hard case"), disappears.
The robot sees the whole maze as an M x M x 3 image: walls, chests and itself, one channel each.

- ``random_maze`` is the classic randomized generator (random walks of walls from points of the even
  lattice), with the original course's bug fixed: its neighbour choice never picked the last neighbour.
- ``MazeBatch`` steps B mazes together with numpy, for training many episodes at once.
- ``MazeEnv`` is one maze as a Gymnasium environment (it passes ``gymnasium.utils.env_checker.check_env``).
- ``rollout`` runs a policy (a function from a ``MazeBatch`` to action probabilities) for a number of
  steps, sampling the actions from a random generator.

Positions are (row, column); ``UP`` decreases the row. Everything random takes a ``numpy.random.Generator``
and uses nothing else, so the same generator state gives the same mazes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np

UP, DOWN, LEFT, RIGHT, STAY = range(5)
N_ACTIONS = 5
ACTION_NAMES = ("up", "down", "left", "right", "stay")
# (row, column) displacement of each action, indexed by action.
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)], dtype=np.int64)
START = (1, 1)

# The "really hard case" of the original course's challenge (part 2 of the assignment).
HARD_SIZE, HARD_CHESTS, HARD_STEPS = 15, 10, 40
# The one fixed maze of the table-based policy (part 1): 11 x 11, 5 chests, 40 steps per episode.
TABLE_SIZE, TABLE_CHESTS, TABLE_STEPS, TABLE_SEED = 11, 5, 40, 1
WEIGHTS_FILE = "maze-policy.pt"  # the deep policy's saved weights, next to the notebook


def random_maze(size: int, rng: np.random.Generator, complexity: float = 0.75, density: float = 0.75) -> np.ndarray:
    """A random maze, shape (size, size), True = wall; ``size`` must be odd (at least 5).

    Walls grow as ``density``-many random walks on the even lattice, each of ``complexity``-many steps
    (both scaled with the maze size as in the classic generator). A walk only steps onto free lattice
    points, so the walls form trees hanging off the border or standing alone: every free cell is
    reachable from every other, and cells with two odd coordinates, (1, 1) among them, are always free.
    """
    if size < 5 or size % 2 == 0:
        raise ValueError(f"the maze size must be odd and at least 5, got {size}")
    half = size // 2
    n_walks = int(density * half * half)
    walk_length = int(complexity * 5 * (2 * size))
    walls = np.zeros((size, size), dtype=bool)
    walls[0, :] = walls[-1, :] = walls[:, 0] = walls[:, -1] = True
    # All random numbers up front (the same ones for the same generator state); the walk itself is
    # plain Python on a list of lists, which is many times faster than numpy element access.
    starts = rng.integers(0, half + 1, size=(n_walks, 2)) * 2
    choices = rng.random((n_walks, walk_length))
    grid = walls.tolist()
    for (y, x), walk_choices in zip(starts.tolist(), choices.tolist(), strict=True):
        grid[y][x] = True
        for u in walk_choices:
            neighbours = []
            if x > 1:
                neighbours.append((y, x - 2))
            if x < size - 2:
                neighbours.append((y, x + 2))
            if y > 1:
                neighbours.append((y - 2, x))
            if y < size - 2:
                neighbours.append((y + 2, x))
            # The original drew randint(0, len - 1) with an exclusive upper end: the last neighbour never came up.
            ny, nx = neighbours[int(u * len(neighbours))]
            if not grid[ny][nx]:
                grid[ny][nx] = True
                grid[(y + ny) // 2][(x + nx) // 2] = True
                y, x = ny, nx
    return np.array(grid, dtype=bool)


def random_chests(
    walls: np.ndarray, n_chests: int, rng: np.random.Generator, start: tuple[int, int] = START
) -> np.ndarray:
    """``n_chests`` chests on distinct free cells other than ``start``: a bool array shaped like ``walls``."""
    free = ~walls
    free[start] = False
    cells = np.flatnonzero(free)
    if n_chests > len(cells):
        raise ValueError(f"{n_chests} chests do not fit on {len(cells)} free cells")
    chests = np.zeros(walls.size, dtype=bool)
    chests[rng.choice(cells, size=n_chests, replace=False)] = True
    return chests.reshape(walls.shape)


def table_maze() -> tuple[np.ndarray, np.ndarray]:
    """The fixed maze of part 1: (walls, chests), each (11, 11) bool, drawn from ``TABLE_SEED``.

    A path from the start collects all five chests in 24 steps without visiting a cell twice, so a policy
    that depends on the position alone can collect them all.
    """
    rng = np.random.default_rng(TABLE_SEED)
    walls = random_maze(TABLE_SIZE, rng)
    return walls, random_chests(walls, TABLE_CHESTS, rng)


def batch_of(walls: np.ndarray, chests: np.ndarray, batch: int, **kw: Any) -> MazeBatch:
    """``batch`` copies of one maze (walls, chests of shape (M, M)) stepping together."""
    return MazeBatch(np.repeat(walls[None], batch, 0), np.repeat(chests[None], batch, 0), **kw)


class MazeBatch:
    """B mazes of the same size M stepping together; the robots start at ``start``.

    ``walls`` and ``chests`` are bool arrays of shape (B, M, M). The chests are copied (collecting
    them changes the copy), the walls are kept as they are.
    """

    def __init__(
        self,
        walls: np.ndarray,
        chests: np.ndarray,
        *,
        start: tuple[int, int] = START,
        wall_penalty: float = 0.0,
        delete_chests: bool = True,
    ) -> None:
        walls = np.asarray(walls, dtype=bool)
        chests = np.array(chests, dtype=bool)
        if walls.ndim != 3 or walls.shape[1] != walls.shape[2] or chests.shape != walls.shape:
            raise ValueError(f"walls and chests must both have shape (B, M, M), got {walls.shape} and {chests.shape}")
        if walls[:, start[0], start[1]].any():
            raise ValueError(f"the start {start} is a wall in some maze")
        self.walls = walls
        self.chests = chests
        self.wall_penalty = float(wall_penalty)
        self.delete_chests = bool(delete_chests)
        self.positions = np.tile(np.array(start, dtype=np.int64), (len(walls), 1))
        self._rows = np.arange(len(walls))

    @classmethod
    def random(cls, batch: int, size: int, n_chests: int, rng: np.random.Generator, **kw: Any) -> MazeBatch:
        """``batch`` random mazes with ``n_chests`` chests each, drawn maze after maze from ``rng``."""
        start = kw.get("start", START)
        walls = np.empty((batch, size, size), dtype=bool)
        chests = np.empty_like(walls)
        for b in range(batch):
            walls[b] = random_maze(size, rng)
            chests[b] = random_chests(walls[b], n_chests, rng, start)
        return cls(walls, chests, **kw)

    @property
    def batch(self) -> int:
        return len(self.walls)

    @property
    def size(self) -> int:
        return self.walls.shape[1]

    def observations(self) -> np.ndarray:
        """The robots' views, (B, M, M, 3) float32: channel 0 walls, 1 chests, 2 the robot (one 1)."""
        obs = np.zeros((*self.walls.shape, 3), dtype=np.float32)
        obs[..., 0] = self.walls
        obs[..., 1] = self.chests
        obs[self._rows, self.positions[:, 0], self.positions[:, 1], 2] = 1.0
        return obs

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Move every robot by its action (B ints in 0..4); the rewards, shape (B,) float64."""
        actions = np.asarray(actions)
        if actions.shape != (self.batch,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be {self.batch} integers, got an array of shape {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= N_ACTIONS):
            raise ValueError(f"actions must lie in 0..{N_ACTIONS - 1}")
        target = self.positions + MOVES[actions]
        blocked = self.walls[self._rows, target[:, 0], target[:, 1]]
        self.positions = np.where(blocked[:, None], self.positions, target)
        rows, cols = self.positions[:, 0], self.positions[:, 1]
        rewards = self.chests[self._rows, rows, cols].astype(np.float64)
        if self.delete_chests:
            self.chests[self._rows, rows, cols] = False
        return rewards - self.wall_penalty * blocked


@dataclasses.dataclass(frozen=True)
class Trajectories:
    """What ``rollout`` saw: positions before each step (B, T, 2), actions (B, T), rewards (B, T)."""

    positions: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        """The sum of each episode's rewards, shape (B,)."""
        return self.rewards.sum(axis=1)


def sample_actions(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action per row of ``probabilities`` (B, 5), by inverse transform sampling with ``rng``."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    cumulative = np.cumsum(probabilities, axis=1)
    u = rng.random(len(probabilities)) * cumulative[:, -1]
    return np.minimum((cumulative <= u[:, None]).sum(axis=1), N_ACTIONS - 1)


def rollout(
    mazes: MazeBatch,
    policy: Callable[[MazeBatch], np.ndarray],
    steps: int,
    rng: np.random.Generator,
) -> Trajectories:
    """Run ``policy`` (a function from the mazes to action probabilities (B, 5)) for ``steps`` steps.

    The actions are sampled from the probabilities with ``rng``. ``mazes`` is stepped in place.
    """
    positions = np.empty((mazes.batch, steps, 2), dtype=np.int64)
    actions = np.empty((mazes.batch, steps), dtype=np.int64)
    rewards = np.empty((mazes.batch, steps), dtype=np.float64)
    for t in range(steps):
        positions[:, t] = mazes.positions
        actions[:, t] = sample_actions(policy(mazes), rng)
        rewards[:, t] = mazes.step(actions[:, t])
    return Trajectories(positions, actions, rewards)


def table_policy(probabilities: np.ndarray) -> Callable[[MazeBatch], np.ndarray]:
    """The policy that looks up each robot's position in a table of probabilities (M, M, 5)."""

    def policy(mazes: MazeBatch) -> np.ndarray:
        return probabilities[mazes.positions[:, 0], mazes.positions[:, 1]]

    return policy


class MazeEnv(gymnasium.Env):
    """One maze as a Gymnasium environment: observations (M, M, 3) float32 in [0, 1], 5 actions.

    ``reset`` draws a new random maze and new chests from the environment's generator, or uses the
    fixed ``walls`` (and fixed ``chests``) where given. An episode is truncated after ``max_steps``
    steps; it never terminates earlier (a robot may still collect chests until the end).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}  # noqa: RUF012 (Gymnasium's convention)

    def __init__(
        self,
        size: int = HARD_SIZE,
        n_chests: int = HARD_CHESTS,
        max_steps: int = HARD_STEPS,
        *,
        walls: np.ndarray | None = None,
        chests: np.ndarray | None = None,
        wall_penalty: float = 0.0,
        delete_chests: bool = True,
        render_mode: str | None = None,
    ) -> None:
        if walls is not None:
            walls = np.array(walls, dtype=bool)
            size = walls.shape[0]
        if chests is not None:
            chests = np.array(chests, dtype=bool)
            n_chests = int(chests.sum())
        self.size, self.n_chests, self.max_steps = size, n_chests, max_steps
        self.fixed_walls, self.fixed_chests = walls, chests
        self.wall_penalty, self.delete_chests = wall_penalty, delete_chests
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, (size, size, 3), dtype=np.float32)
        self.action_space = gymnasium.spaces.Discrete(N_ACTIONS)
        self._maze: MazeBatch | None = None
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        walls = self.fixed_walls if self.fixed_walls is not None else random_maze(self.size, self.np_random)
        if self.fixed_chests is not None:
            chests = self.fixed_chests
        else:
            chests = random_chests(walls, self.n_chests, self.np_random)
        self._maze = MazeBatch(
            walls[None], chests[None], wall_penalty=self.wall_penalty, delete_chests=self.delete_chests
        )
        self._t = 0
        return self._maze.observations()[0], self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._maze is None:
            raise RuntimeError("call reset() before step()")
        reward = float(self._maze.step(np.array([int(action)]))[0])
        self._t += 1
        return self._maze.observations()[0], reward, False, self._t >= self.max_steps, self._info()

    def _info(self) -> dict[str, Any]:
        assert self._maze is not None
        return {"position": tuple(int(p) for p in self._maze.positions[0]), "chests_left": int(self._maze.chests.sum())}

    def render(self) -> np.ndarray | None:
        """An RGB image (M, M, 3) uint8: walls dark, chests gold, the robot red."""
        if self.render_mode != "rgb_array" or self._maze is None:
            return None
        return maze_image(self._maze.walls[0], self._maze.chests[0], tuple(self._maze.positions[0]))


def maze_image(walls: np.ndarray, chests: np.ndarray, position: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB picture of a maze (M, M, 3) uint8: floor light, walls dark, chests gold, the robot red."""
    image = np.full((*walls.shape, 3), 235, dtype=np.uint8)
    image[walls] = (40, 40, 60)
    image[chests] = (230, 170, 20)
    if position is not None:
        image[position] = (210, 30, 30)
    return image


def save_policy(model: Any, path: str = WEIGHTS_FILE) -> str:
    """Save a torch model's weights (its plain state dict) to ``path``; returns the path."""
    import torch

    torch.save({name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}, path)
    return path


def load_policy(model: Any, path: str = WEIGHTS_FILE) -> bool:
    """Load weights saved by ``save_policy`` into ``model`` if ``path`` exists; whether it did."""
    import os

    import torch

    if not os.path.exists(path):
        return False
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return True
