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


def plot_cost_curve(
    costs,
    ax=None,
    *,
    label: str | None = None,
    window: int | None = None,
    title: str | None = None,
    diverged_above: float = 1e6,
):
    """Draw a cost history (one cost per training step) on a logarithmic scale.

    The raw costs are drawn faintly and their running mean over ``window`` steps (by default about a
    fiftieth of the run) on top, in the same colour, so that the trend shows through the noise of
    stochastic gradient descent.  A run whose cost becomes infinite, NaN or larger than
    ``diverged_above`` counts as diverged: its curve ends there, marked by an x, and its label says so.
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.4))
    costs = np.asarray(costs, dtype=float).ravel()
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(costs) & (costs <= diverged_above)
    diverged = not ok.all()
    if diverged:
        costs = costs[: int(np.argmin(ok))]
        label = f"{label} (diverged)" if label else "diverged"
    steps = np.arange(costs.size)
    if window is None:
        window = max(1, costs.size // 50)
    window = max(1, min(int(window), max(costs.size, 1)))
    (line,) = ax.plot(steps, costs, lw=0.5, alpha=0.3)
    if costs.size >= window and costs.size > 0:
        smooth = np.convolve(costs, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, color=line.get_color(), lw=1.5, label=label)
    else:
        line.set_label(label)
    if diverged and costs.size > 0:
        ax.plot(steps[-1], costs[-1], "x", color=line.get_color(), ms=8, mew=2)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("cost $C$")
    if title:
        ax.set_title(title)
    if label:
        ax.legend(fontsize="small")
    return ax
