"""The challenge's images: what the notebook says they are, the same from numpy and torch, and a budget
that hands out no more than it holds."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlphys.course.circles import PIXEL_CENTRES, ImageBudget, circle_batch, circle_images, circle_parameters


@settings(max_examples=60, deadline=None)
@given(x0=st.floats(-0.6, 0.6), y0=st.floats(-0.6, 0.6), radius=st.floats(0.25, 0.4))
def test_an_image_shows_a_filled_circle_of_the_given_centre_and_area(x0: float, y0: float, radius: float) -> None:
    """What the notebook promises, measured on the picture: area pi R^2, centroid at the centre, filled."""
    from mlphys.course.circles import render_circles

    image = render_circles(np.array([[x0, y0, radius]]))[0]
    assert set(np.unique(image)) <= {0.0, 1.0}
    pixel = PIXEL_CENTRES[1] - PIXEL_CENTRES[0]
    area = image.sum() * pixel**2
    assert abs(area - np.pi * radius**2) < 2 * np.pi * radius * pixel  # within one pixel along the rim
    rows, cols = np.nonzero(image)
    assert abs(PIXEL_CENTRES[cols].mean() - x0) < pixel / 2 and abs(PIXEL_CENTRES[rows].mean() - y0) < pixel / 2
    # Filled: the pixel nearest the centre is on; one farther than R plus a pixel diagonal is off.
    nearest = np.abs(PIXEL_CENTRES - y0).argmin(), np.abs(PIXEL_CENTRES - x0).argmin()
    assert image[nearest] == 1.0
    far = np.abs(PIXEL_CENTRES - (x0 + radius + 1.5 * pixel)).argmin()
    assert image[nearest[0], far] == 0.0


def test_parameters_follow_the_stated_distributions() -> None:
    params = circle_parameters(20_000, np.random.default_rng(0))
    assert params[:, :2].min() >= -1 and params[:, :2].max() <= 1
    assert params[:, 2].min() >= 0 and params[:, 2].max() <= 1
    assert abs(params[:, 0].mean()) < 0.02 and abs(params[:, 2].mean() - 0.5) < 0.01


def test_a_seed_gives_the_same_images_in_numpy_and_torch() -> None:
    from_numpy = circle_images(64, seed=3)
    from_torch = circle_batch(64, np.random.default_rng(3)).numpy()
    assert from_numpy.shape == (64, 27, 27) and from_numpy.dtype == np.float32
    assert np.array_equal(from_numpy, from_torch)
    assert not np.array_equal(from_numpy, circle_images(64, seed=4))


@settings(max_examples=30, deadline=None)
@given(total=st.integers(0, 500), batch_size=st.integers(1, 97))
def test_the_budget_hands_out_exactly_its_images(total: int, batch_size: int) -> None:
    budget = ImageBudget(total, seed=1)
    sizes = [len(batch) for batch in budget.batches(batch_size)]
    assert sum(sizes) == total == budget.used
    assert all(size == batch_size for size in sizes[:-1])
    assert len(budget.take(10)) == 0  # spent is spent


def test_the_budget_replays_with_its_seed() -> None:
    first = torch.cat(list(ImageBudget(100, seed=5).batches(32)))
    again = torch.cat(list(ImageBudget(100, seed=5).batches(32)))
    assert torch.equal(first, again)
