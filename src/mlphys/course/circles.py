"""Images of filled circles, the data of the Grand Autoencoder Challenge.

Each image has 27 x 27 pixels whose centres are ``linspace(-1, 1, 27)`` in both directions, and holds
one filled circle (value 1 inside, 0 outside) of radius R ~ U(0, 1) and centre ~ U(-1, 1)^2, so
circles may be cut by the border.  Three numbers describe an image completely; that is what makes a
bottleneck of 3 (HARD) possible in principle.

The random parameters always come from numpy's seeded generator, so a seed gives the same images
whether they are rendered with numpy (the grader) or with torch (training, on a GPU if there is one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

IMAGE_SIZE = 27
PIXEL_CENTRES = np.linspace(-1.0, 1.0, IMAGE_SIZE)


def circle_parameters(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) array of (x0, y0, R): centres uniform in [-1, 1]^2, radii uniform in [0, 1]."""
    centres = rng.uniform(-1.0, 1.0, size=(n, 2))
    radii = rng.uniform(0.0, 1.0, size=(n, 1))
    return np.concatenate([centres, radii], axis=1)


def render_circles(params: np.ndarray) -> np.ndarray:
    """(n, 27, 27) float32 images of the circles ``params`` = (x0, y0, R) per row.

    Row index is y, column index is x, so ``plt.imshow(image, origin="lower", extent=(-1, 1, -1, 1))``
    shows the circle where its parameters say.
    """
    params = np.asarray(params, dtype=np.float64)
    x0, y0, radius = (params[:, i, None, None] for i in range(3))
    x = PIXEL_CENTRES[None, None, :]
    y = PIXEL_CENTRES[None, :, None]
    return ((x - x0) ** 2 + (y - y0) ** 2 < radius**2).astype(np.float32)


def circle_images(n: int, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """(n, 27, 27) float32 numpy images from ``seed`` (an int, a numpy Generator, or None for fresh)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return render_circles(circle_parameters(n, rng))


def circle_batch(n: int, rng: np.random.Generator, device: str | torch.device = "cpu") -> torch.Tensor:
    """(n, 27, 27) float32 torch images, rendered on ``device`` from parameters drawn with ``rng``."""
    import torch

    params = torch.as_tensor(circle_parameters(n, rng), dtype=torch.float32, device=device)
    grid = torch.as_tensor(PIXEL_CENTRES, dtype=torch.float32, device=device)
    x0, y0, radius = (params[:, i, None, None] for i in range(3))
    inside = (grid[None, None, :] - x0) ** 2 + (grid[None, :, None] - y0) ** 2 < radius**2
    return inside.to(torch.float32)


class ImageBudget:
    """The training images of one challenge entry: fresh random circles, and no more than the budget.

    ``for batch in budget.batches(64): ...`` yields (batch, 27, 27) torch tensors until ``total``
    images have been handed out (the last batch may be smaller); every image counts once, since each
    is new.  The same seed always gives the same images, which is what lets the grader retrain an
    entry and compare.

    ``inverted=True`` hands out the same circles with the colours swapped (0 inside, 1 outside).  The
    grader's retraining check uses it: an entry that learns from the images it is given does about as
    well on inverted circles; one that replays weights or trains on images it drew itself does not.
    """

    def __init__(
        self, total: int, seed: int = 0, device: str | torch.device = "cpu", *, inverted: bool = False
    ) -> None:
        if total < 0:
            raise ValueError("the budget must be a number of images >= 0")
        self.total = int(total)
        self.device = device
        self.inverted = bool(inverted)
        self.used = 0
        self._rng = np.random.default_rng(seed)

    @property
    def remaining(self) -> int:
        return self.total - self.used

    def take(self, n: int) -> torch.Tensor:
        """The next ``n`` images (fewer if the budget runs out; an empty batch once it has)."""
        n = max(0, min(int(n), self.remaining))
        self.used += n
        images = circle_batch(n, self._rng, self.device)
        return 1.0 - images if self.inverted else images

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """Batches of ``batch_size`` images until the budget is spent."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        while self.remaining > 0:
            yield self.take(batch_size)
