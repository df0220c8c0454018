"""The grader's trusted simulator of the coupled oscillators: equations of motion, RK4, trajectories.

Grader only (never mounted in a sandbox): the notebook's students write their own equations of motion
and RK4 step, which the hidden tests judge against this one, and the model is scored on trajectories
this simulator computes from hidden initial conditions.  Every function works on batches of numpy
arrays and of torch tensors alike (only arithmetic, indexing and sums over the last axis), for any
number N of particles.

Particle 0 is coupled to particles 1..N-1 (with d_j = x_0 - x_j and a quartic coefficient q, 0 for the
course's linear system):

    m_0 x_0'' = -k_0 x_0 - sum_j (D_j d_j + q d_j^3),    m_j x_j'' = -k_j x_j + D_j d_j + q d_j^3.
"""

from __future__ import annotations

import typing as t

import numpy as np

from mlphys.course.oscillators import DT, STEPS, SUBSTEPS, Oscillators

Array = t.Any  # a numpy array or a torch tensor


def _sum_last(a: Array) -> Array:
    return a.sum(-1, keepdims=True) if isinstance(a, np.ndarray) else a.sum(-1, keepdim=True)


def _as_like(values: t.Sequence[float] | np.ndarray, like: Array) -> Array:
    values = np.asarray(values, dtype=np.float64)
    if isinstance(like, np.ndarray):
        return values.astype(like.dtype)
    import torch

    return torch.as_tensor(values, dtype=like.dtype, device=like.device)


def coupling_forces(x: Array, system: Oscillators) -> Array:
    """f_j = D_j d_j + q d_j^3 with d_j = x_0 - x_j, shape of x; f_0 = 0 since d_0 = 0."""
    d = x[..., :1] - x
    return _as_like(system.D, x) * d + system.quartic * d**3


def accelerations(x: Array, system: Oscillators) -> Array:
    """x'' for positions x of shape (..., N)."""
    f = coupling_forces(x, system)
    first = _as_like(np.eye(system.n)[0], x)
    return (-_as_like(system.k, x) * x + f - first * _sum_last(f)) / _as_like(system.m, x)


def rk4_step(x: Array, v: Array, dt: float, system: Oscillators) -> tuple[Array, Array]:
    """One classical fourth-order Runge-Kutta step of x' = v, v' = a(x)."""
    a1 = accelerations(x, system)
    x2, v2 = x + 0.5 * dt * v, v + 0.5 * dt * a1
    a2 = accelerations(x2, system)
    x3, v3 = x + 0.5 * dt * v2, v + 0.5 * dt * a2
    a3 = accelerations(x3, system)
    x4, v4 = x + dt * v3, v + dt * a3
    a4 = accelerations(x4, system)
    return (
        x + dt / 6.0 * (v + 2.0 * v2 + 2.0 * v3 + v4),
        v + dt / 6.0 * (a1 + 2.0 * a2 + 2.0 * a3 + a4),
    )


def energy(x: Array, v: Array, system: Oscillators) -> Array:
    """Total energy of each state of the batch, shape (...,)."""
    d = x[..., :1] - x
    m, k, D = (_as_like(p, x) for p in (system.m, system.k, system.D))
    density = 0.5 * m * v**2 + 0.5 * k * x**2 + 0.5 * D * d**2 + 0.25 * system.quartic * d**4
    return density.sum(-1)


def simulate(
    x: Array, v: Array, system: Oscillators, dt: float = DT, steps: int = STEPS, substeps: int = SUBSTEPS
) -> Array:
    """Positions of all particles at t = 0, dt, ..., (steps - 1) dt: shape (batch, steps, N).

    Each sampling interval dt is integrated with ``substeps`` RK4 steps.
    """
    frames = [x]
    for _ in range(steps - 1):
        for _ in range(substeps):
            x, v = rk4_step(x, v, dt / substeps, system)
        frames.append(x)
    if isinstance(x, np.ndarray):
        return np.stack(frames, axis=1)
    import torch

    return torch.stack(frames, dim=1)


def trajectories(x: Array, v: Array, system: Oscillators, **kwargs: t.Any) -> Array:
    """x_0 at the sample times, shape (batch, steps): what is observed of each trajectory."""
    return simulate(x, v, system, **kwargs)[..., 0]
