"""Pictures of mazes for assignment 05: a maze with the robot's path, a strip of frames, action arrows."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from mlphys.course.maze import MOVES, maze_image


def plot_maze(
    ax: Axes,
    walls: np.ndarray,
    chests: np.ndarray,
    path: np.ndarray | None = None,
    position: tuple[int, int] | None = None,
    title: str | None = None,
) -> None:
    """Draw a maze (walls dark, chests gold), optionally a path of positions (T, 2) and the robot."""
    ax.imshow(maze_image(walls, chests, position), interpolation="nearest")
    if path is not None and len(path):
        path = np.asarray(path)
        # Small offsets along the path, so that a robot walking back and forth shows both ways.
        jitter = 0.12 * np.sin(np.arange(len(path)) * 0.9)[:, None]
        ax.plot(path[:, 1] + jitter[:, 0], path[:, 0] + jitter[:, 0], "-", color="tab:red", lw=1.5, alpha=0.8)
        ax.plot(path[0, 1], path[0, 0], "o", color="tab:green", ms=6)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def plot_episode(
    walls: np.ndarray, chests: np.ndarray, positions: np.ndarray, rewards: np.ndarray, frames: int = 6
) -> plt.Figure:
    """A strip of ``frames`` pictures of one episode: the maze as the robot found it at evenly spaced times,
    with the path walked so far. ``positions`` (T, 2) are before each step, ``rewards`` (T,) after it."""
    positions, rewards = np.asarray(positions), np.asarray(rewards)
    steps = len(positions)
    times = np.linspace(0, steps - 1, frames).round().astype(int)
    fig, axes = plt.subplots(1, frames, figsize=(2.2 * frames, 2.5))
    for ax, t in zip(np.atleast_1d(axes), times, strict=True):
        left = chests.copy()
        left[tuple(positions[: t + 1].T)] = False  # collected chests are gone (as where chests are deleted)
        plot_maze(ax, walls, left, positions[: t + 1], tuple(positions[t]), f"t = {t}, return {rewards[:t].sum():g}")
    fig.tight_layout()
    return fig


def plot_table_policy(ax: Axes, walls: np.ndarray, chests: np.ndarray, probabilities: np.ndarray) -> None:
    """The most likely action of a table policy (M, M, 5) at every free cell, as arrows (a dot: stay)."""
    plot_maze(ax, walls, chests)
    rows, cols = np.nonzero(~walls)
    best = probabilities[rows, cols].argmax(axis=1)
    confidence = probabilities[rows, cols].max(axis=1)
    moves = MOVES[best]
    moving = best != 4
    ax.quiver(
        cols[moving], rows[moving], 0.35 * moves[moving, 1], -0.35 * moves[moving, 0],
        confidence[moving], cmap="Blues", clim=(0.2, 1.0), angles="xy", scale_units="xy", scale=1, pivot="middle",
    )  # fmt: skip
    ax.scatter(cols[~moving], rows[~moving], s=12, c="tab:blue")
