"""The board's pictures, drawn with matplotlib's Agg renderer and returned as PNG bytes.

Figures use matplotlib's default style, fixed sizes and no PNG "Software" stamp, and any scatter is laid out by
rank rather than at random, so the same boards always give the same bytes (the pages are rebuilt and compared).
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.style
import numpy
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlphys.leaderboard.ranking import FLAGGED, RANKED, Row

DPI = 100
COST_FLOOR = 1e-6  # a perfect (zero) cost is drawn here, since the axis is logarithmic
MAX_LABEL = 28  # characters of a name written into a figure


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a name's glyph missing from the font is not an error
        figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def cost_distribution(
    boards: Mapping[str, Sequence[Row]], *, split: str, score: str = "cost", log: bool = True
) -> bytes:
    """A strip plot of every finite cost per board: ranked entries as dots, flagged ones as crosses.

    Only the rows' ranking cost is drawn (``Row.cost``), which is the public cost unless the board is final.
    Costs spread over decades go on a log axis; a score that may be zero or negative (a return) on a linear one.
    """
    tracks = list(boards)
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(8.0, 0.75 * len(tracks) + 1.2))
        axes = figure.add_subplot()
        drawn = False
        for position, track in enumerate(tracks):
            y = len(tracks) - 1 - position  # first board at the top
            for status, marker, colour in ((RANKED, "o", "tab:blue"), (FLAGGED, "x", "tab:red")):
                costs = [r.cost for r in boards[track] if r.status == status and math.isfinite(r.cost)]
                if not costs:
                    continue
                # Spread points vertically by the golden-ratio sequence: even, overlap-free and deterministic.
                spread = [((i * 0.6180339887) % 1.0 - 0.5) * 0.5 for i in range(len(costs))]
                axes.scatter(
                    numpy.maximum(costs, COST_FLOOR) if log else costs,
                    [y + s for s in spread],
                    marker=marker,
                    s=22,
                    color=colour,
                    alpha=0.8,
                    label=status,
                )
                drawn = True
        if drawn:
            if log:
                axes.set_xscale("log")
            axes.set_xlabel(f"{split} {score}" + (" (log scale)" if log else ""))
        else:
            axes.text(0.5, 0.5, "no entries yet", ha="center", va="center", transform=axes.transAxes)
            axes.set_xticks([])
        axes.set_yticks(range(len(tracks)), list(reversed(tracks)))
        axes.set_ylim(-0.6, len(tracks) - 0.4)
        axes.grid(axis="x", which="major", alpha=0.3)
        handles, labels = axes.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        if unique:
            axes.legend(unique.values(), unique.keys(), loc="upper right", fontsize="small")
        figure.tight_layout()
        return _png(figure)


def mosaic(rows: Sequence[numpy.ndarray], pad: int = 2) -> numpy.ndarray:
    """Tile equally shaped (n, h, w) stacks into one image, one stack per row, NaN between the tiles."""
    count, height, width = rows[0].shape
    tiled = numpy.full((len(rows) * (height + pad) + pad, count * (width + pad) + pad), numpy.nan)
    for r, images in enumerate(rows):
        for c in range(count):
            y, x = pad + r * (height + pad), pad + c * (width + pad)
            tiled[y : y + height, x : x + width] = numpy.clip(images[c], 0.0, 1.0)
    return tiled


def pictures(originals: numpy.ndarray, top: Sequence[Row], cmap: str = "gray_r") -> bytes:
    """A grid: the original test examples in the first row, then each top entry's picture, labelled by name.

    The grid is one image (a single ``imshow``), which keeps drawing fast however many images are shown.
    Pixels a decoder left as NaN show in the separator colour rather than failing the board.
    """
    labels = ["original"] + [_label(f"#{row.rank} {row.name}") for row in top]
    stacks = [numpy.asarray(originals, dtype=float)] + [numpy.asarray(row.picture, dtype=float) for row in top]
    tiled = mosaic(stacks)
    cell = tiled.shape[0] / len(stacks)
    label_inches, scale = 2.2, 0.022  # inches per pixel of the mosaic
    width, height = label_inches + scale * tiled.shape[1], 0.15 + scale * tiled.shape[0]
    with matplotlib.style.context("default"):
        figure = Figure(figsize=(width, height))
        axes = figure.add_axes(
            (label_inches / width, 0.05 / height, scale * tiled.shape[1] / width, scale * tiled.shape[0] / height)
        )
        # The notebook's colours (circles black on white), with separators in a light blue-grey.
        colours = matplotlib.colormaps[cmap].with_extremes(bad="#c9cedb")
        axes.imshow(tiled, cmap=colours, vmin=0.0, vmax=1.0, interpolation="nearest")
        axes.set_axis_off()
        for r, label in enumerate(labels):
            # parse_math=False: a "$" in a student's chosen name must not be read as mathtext.
            axes.text(-4, (r + 0.5) * cell, label, ha="right", va="center", fontsize=9, parse_math=False, clip_on=False)
        return _png(figure)
