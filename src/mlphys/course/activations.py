"""The lecture's activation functions, elementwise on numpy arrays of any shape.

These are the definitions of assignment 1 (students write their own there).  Hidden tests pass them
into students' functions (``CourseFunction("mlphys.course.activations:sigmoid")``), so that a test of a
network judges the network and not the student's activations.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), written as (1 + tanh(z / 2)) / 2, which never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


def step(z: np.ndarray) -> np.ndarray:
    """1.0 where z > 0, else 0.0 (so step(0) = 0)."""
    return (np.asarray(z) > 0).astype(float)


def relu(z: np.ndarray) -> np.ndarray:
    """max(z, 0)."""
    return np.maximum(np.asarray(z, dtype=float), 0.0)


def linear(z: np.ndarray) -> np.ndarray:
    """The identity, as floats."""
    return np.asarray(z, dtype=float)
