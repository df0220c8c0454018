"""Plots for assignment 06: digits and dreams as image grids, weights as filters, training curves."""

from __future__ import annotations

from typing import Any

import numpy as np


def _grid(images: np.ndarray, columns: int, pad: float) -> np.ndarray:
    images = np.asarray(images, dtype=float).reshape(len(images), 28, 28)
    rows = int(np.ceil(len(images) / columns))
    canvas = np.full((rows * 29 + 1, columns * 29 + 1), pad)
    for n, image in enumerate(images):
        r, c = divmod(n, columns)
        canvas[1 + 29 * r : 29 * (r + 1), 1 + 29 * c : 29 * (c + 1)] = image
    return canvas


def plot_image_grid(images: Any, ax: Any = None, *, columns: int = 10, title: str | None = None) -> Any:
    """Digits (or probabilities) of shape (n, 784) or (n, 28, 28), values in [0, 1], as one grid image."""
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if ax is None:
        columns = min(columns, len(images))
        _, ax = plt.subplots(figsize=(0.75 * columns, 0.75 * int(np.ceil(len(images) / columns)) + 0.4))
    ax.imshow(_grid(images, columns, pad=0.5), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def plot_filters(W: Any, ax: Any = None, *, count: int = 100, columns: int = 10, title: str | None = None) -> Any:
    """The first ``count`` columns of W (784, n_hidden) as 28 x 28 filters, each on its own symmetric scale.

    Red: pixels that switch the hidden unit on, blue: pixels that switch it off.
    """
    import matplotlib.pyplot as plt

    filters = np.asarray(W, dtype=float).T[:count]
    scale = np.maximum(np.abs(filters).max(axis=1, keepdims=True), 1e-12)
    if ax is None:
        columns = min(columns, len(filters))
        _, ax = plt.subplots(figsize=(0.75 * columns, 0.75 * int(np.ceil(len(filters) / columns)) + 0.4))
    ax.imshow(_grid(filters / scale, columns, pad=0.0), cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def plot_training_curve(
    values: Any, ax: Any = None, *, label: str | None = None, ylabel: str = "", title: str | None = None
) -> Any:
    """A training measure per epoch (e.g. reconstruction error, or a log-likelihood estimate)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.6))
    values = np.asarray(values, dtype=float)
    ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if label:
        ax.legend()
    ax.grid(alpha=0.3)
    return ax
