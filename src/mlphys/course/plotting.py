"""Small plotting helpers for the course notebooks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def plane_grid(extent: float = 1.0, n: int = 201) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of the square [-extent, extent]^2 on an n x n grid.

    Returns ``(y1, y2, points)`` where ``y1`` and ``y2`` are the (n, n) coordinate grids and ``points``
    is the (n * n, 2) batch of the same points, ready to be fed to a network.
    """
    v = np.linspace(-extent, extent, n)
    y1, y2 = np.meshgrid(v, v)
    return y1, y2, np.stack([y1.ravel(), y2.ravel()], axis=1)


def plot_net_output(
    f: Callable[[np.ndarray], np.ndarray],
    ax=None,
    *,
    extent: float = 1.0,
    n: int = 201,
    title: str | None = None,
    cmap: str = "RdBu_r",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    colorbar: bool = True,
):
    """Draw the output of a network with 2 inputs and 1 output over the plane.

    ``f`` maps a batch of points of shape (batch, 2) to outputs of shape (batch, 1) or (batch,),
    e.g. ``lambda y: apply_net(y, weights, biases, activations)``.  The output is shown with
    ``imshow`` over [-extent, extent]^2, with the axes y1 = 0 and y2 = 0 drawn as thin lines.
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.6))
    _, _, points = plane_grid(extent, n)
    out = np.asarray(f(points), dtype=float)
    if out.size != n * n:
        raise ValueError(f"the network should give one output per point, but gave an array of shape {out.shape}")
    image = ax.imshow(
        out.reshape(n, n),
        origin="lower",
        extent=(-extent, extent, -extent, extent),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    ax.axhline(0.0, color="k", lw=0.5)
    ax.axvline(0.0, color="k", lw=0.5)
    ax.set_xlabel("$y_1$")
    ax.set_ylabel("$y_2$")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.85)
    return ax
