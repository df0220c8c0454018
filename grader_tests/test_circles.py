"""The challenge's images: what the notebook says they are, the same from numpy and torch, and a budget
that hands out no more than it holds."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlphys.course.circles import PIXEL_CENTRES, ImageBudget, circle_batch, circle_images, circle_parameters

coords = st.floats(-1.0, 1.0, allow_nan=False)


@given(x0=coords, y0=coords, radius=st.floats(0.0, 1.0))
def test_a_pixel_is_one_exactly_when_its_centre_lies_inside_the_circle(x0: float, y0: float, radius: float) -> None:
    from mlphys.course.circles import render_circles

    image = render_circles(np.array([[x0, y0, radius]]))[0]
    for row in (0, 5, 13, 26):
        for col in (0, 7, 13, 26):
            inside = (PIXEL_CENTRES[col] - x0) ** 2 + (PIXEL_CENTRES[row] - y0) ** 2 < radius**2
            assert image[row, col] == float(inside)


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
