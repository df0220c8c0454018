"""The coupled oscillators: the course library (data format, yardsticks, linear limit, weights, plots)
and the grader's trusted simulator, which judges the students' RK4 and scores their models."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlphys.assignments.lstm_time_evolution import simulator
from mlphys.course import oscillators
from mlphys.course.oscillators import COURSE_N2, COURSE_N3, OBSERVED, STEPS, Oscillators

PROPERTY = settings(derandomize=True, database=None, max_examples=25, deadline=None)


@st.composite
def systems(draw: st.DrawFn, max_n: int = 4, quartic: bool = False) -> Oscillators:
    n = draw(st.integers(1, max_n))
    m = tuple(draw(st.floats(0.5, 2.0)) for _ in range(n))
    k = tuple(draw(st.floats(0.05, 1.0)) for _ in range(n))
    D = (0.0, *(draw(st.floats(0.05, 1.0)) for _ in range(n - 1)))
    return Oscillators(m, k, D, quartic=draw(st.floats(0.0, 0.5)) if quartic else 0.0)


def exact_positions(system: Oscillators, x: np.ndarray, v: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Normal modes: M x'' = -K x solved through the eigenvectors of M^(-1/2) K M^(-1/2)."""
    m, k, D = system.arrays()
    K = np.diag(k + D)
    K[0, 0] = k[0] + D[1:].sum()
    K[0, 1:] = K[1:, 0] = -D[1:]
    root = np.diag(1 / np.sqrt(m))
    w2, modes = np.linalg.eigh(root @ K @ root)
    w = np.sqrt(w2)
    q0, p0 = (x * np.sqrt(m)) @ modes, (v * np.sqrt(m)) @ modes  # mode coordinates and velocities
    q = q0[:, None, :] * np.cos(w * times[:, None]) + p0[:, None, :] / w * np.sin(w * times[:, None])
    return (q @ modes.T) / np.sqrt(m)


# ---- the trusted simulator --------------------------------------------------------------------------


@PROPERTY
@given(system=systems(), seed=st.integers(0, 1000))
def test_simulator_follows_the_exact_normal_mode_solution(system: Oscillators, seed: int) -> None:
    x, v = oscillators.initial_conditions(3, system.n, seed)
    positions = simulator.simulate(x, v, system, steps=21, dt=0.5, substeps=20)
    exact = exact_positions(system, x, v, oscillators.sample_times(21, 0.5))
    assert positions.shape == (3, 21, system.n)
    assert np.allclose(positions, exact, atol=1e-4)  # RK4 steps of 0.025: errors of order 1e-5


@PROPERTY
@given(system=systems(quartic=True), seed=st.integers(0, 1000))
def test_simulator_conserves_energy_also_with_the_quartic_coupling(system: Oscillators, seed: int) -> None:
    x, v = oscillators.initial_conditions(4, system.n, seed)
    e0 = simulator.energy(x, v, system)
    for _ in range(300):  # t = 6
        x, v = simulator.rk4_step(x, v, 0.02, system)
    assert np.allclose(simulator.energy(x, v, system), e0, rtol=1e-5)  # RK4 drifts by about 1e-7 here


@PROPERTY
@given(system=systems(quartic=True), seed=st.integers(0, 1000))
def test_forces_are_minus_the_gradient_of_the_potential(system: Oscillators, seed: int) -> None:
    x, _ = oscillators.initial_conditions(2, system.n, seed)
    zero = np.zeros_like(x)
    m = np.array(system.m)
    numeric = np.zeros_like(x)
    for j in range(system.n):
        shift = np.zeros_like(x)
        shift[:, j] = 1e-5
        up, down = simulator.energy(x + shift, zero, system), simulator.energy(x - shift, zero, system)
        numeric[:, j] = -(up - down) / 2e-5
    assert np.allclose(simulator.accelerations(x, system) * m, numeric, atol=1e-6)


@PROPERTY
@given(system=systems(), seed=st.integers(0, 1000))
def test_couplings_obey_newtons_third_law(system: Oscillators, seed: int) -> None:
    x, _ = oscillators.initial_conditions(3, system.n, seed)
    total_force = (simulator.accelerations(x, system) * np.array(system.m)).sum(axis=1)
    assert np.allclose(total_force, -(np.array(system.k) * x).sum(axis=1))  # springs between particles cancel


def test_simulator_gives_the_same_trajectories_for_numpy_and_torch() -> None:
    x, v = oscillators.initial_conditions(5, 3, 0)
    numpy_result = simulator.trajectories(x, v, COURSE_N3)
    torch_result = simulator.trajectories(torch.tensor(x), torch.tensor(v), COURSE_N3)
    assert isinstance(torch_result, torch.Tensor) and torch_result.dtype == torch.float64
    assert numpy_result.shape == (5, STEPS)
    assert np.allclose(torch_result.numpy(), numpy_result, rtol=1e-10, atol=1e-12)
    as_float32 = simulator.trajectories(
        torch.tensor(x, dtype=torch.float32), torch.tensor(v, dtype=torch.float32), COURSE_N3
    )
    assert as_float32.dtype == torch.float32 and np.allclose(as_float32.numpy(), numpy_result, atol=1e-3)


def test_the_quartic_coupling_changes_the_motion() -> None:
    x, v = oscillators.initial_conditions(4, 2, 3)
    stiff = Oscillators(COURSE_N2.m, COURSE_N2.k, COURSE_N2.D, quartic=0.5)
    assert np.max(np.abs(simulator.trajectories(x, v, stiff) - simulator.trajectories(x, v, COURSE_N2))) > 0.5


# ---- the course library ---------------------------------------------------------------------------------


def test_course_parameter_sets_are_the_original_courses() -> None:
    assert (COURSE_N2.n, COURSE_N2.m, COURSE_N2.k, COURSE_N2.D) == (2, (2.0, 1.0), (0.1, 0.0), (0.0, 0.2))
    assert (COURSE_N3.n, COURSE_N3.m, COURSE_N3.k, COURSE_N3.D) == (
        3,
        (2.0, 1.0, 1.0),
        (0.1, 0.0, 0.3),
        (0.0, 0.1, 1.0),
    )
    assert oscillators.sample_times()[OBSERVED] == pytest.approx(15.0)  # T = 15, two halves of 30 samples


def test_parameters_need_one_entry_per_particle_and_positive_masses() -> None:
    with pytest.raises(ValueError, match="one entry per particle"):
        Oscillators((1.0, 1.0), (0.1,), (0.0, 0.2))
    with pytest.raises(ValueError, match="positive"):
        Oscillators((0.0,), (0.1,), (0.0,))


def test_initial_conditions_are_seeded_standard_normal_positions_then_velocities() -> None:
    x, v = oscillators.initial_conditions(20_000, 3, 42)
    assert x.shape == v.shape == (20_000, 3)
    again = oscillators.initial_conditions(20_000, 3, np.random.default_rng(42))
    assert np.array_equal(x, again[0]) and np.array_equal(v, again[1])
    rng = np.random.default_rng(42)
    assert np.array_equal(x, rng.standard_normal((20_000, 3)))  # the convention students rely on
    assert abs(x.mean()) < 0.02 and abs(v.std() - 1) < 0.02
    assert not np.array_equal(x, oscillators.initial_conditions(20_000, 3, 43)[0])


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_observed_input_keeps_the_first_half_and_zeroes_the_rest(kind: str) -> None:
    observed = np.arange(1.0, 2 * OBSERVED + 1).reshape(2, OBSERVED).astype(np.float32)
    value = observed if kind == "numpy" else torch.tensor(observed)
    padded = oscillators.observed_input(value)
    padded = padded if kind == "numpy" else padded.numpy()
    assert padded.shape == (2, STEPS) and padded.dtype == np.float32
    assert np.array_equal(padded[:, :OBSERVED], observed) and not padded[:, OBSERVED:].any()


def test_second_half_mse_ignores_the_first_half() -> None:
    true = np.zeros((3, STEPS))
    predicted = np.zeros((3, STEPS))
    predicted[:, :OBSERVED] = 100.0
    assert oscillators.second_half_mse(predicted, true) == 0.0
    predicted[0, -1] = 3.0
    assert oscillators.second_half_mse(predicted, true) == pytest.approx(9.0 / (3 * (STEPS - OBSERVED)))
    assert oscillators.error_by_time(predicted, true)[-1] == pytest.approx(3.0)


@PROPERTY
@given(omega=st.floats(0.1, 1.5), a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_constant_frequency_yardstick_continues_a_single_oscillation(omega: float, a: float, b: float) -> None:
    times = oscillators.sample_times()
    wave = (a * np.cos(omega * times) + b * np.sin(omega * times))[None, :]
    predicted = oscillators.predict_constant_frequency(
        wave[:, :OBSERVED], omegas=np.array([0.5 * omega, omega, 2.0 * omega])
    )
    assert np.allclose(predicted, wave, atol=1e-8)


def test_yardsticks_fail_where_the_hidden_particle_matters_and_the_linear_limit_does_not() -> None:
    x, v = oscillators.initial_conditions(600, 2, 5)
    true = simulator.trajectories(x, v, COURSE_N2)
    fit, test = true[:400], true[400:]
    zero = oscillators.second_half_mse(oscillators.predict_zero(test[:, :OBSERVED]), test)
    frequency = oscillators.second_half_mse(oscillators.predict_constant_frequency(test[:, :OBSERVED]), test)
    linear = oscillators.LinearPredictor.fit(fit[:, :OBSERVED], fit)
    assert zero > 1.0 and frequency > 0.3 * zero  # a single frequency helps little, if at all
    assert oscillators.second_half_mse(linear.predict(test[:, :OBSERVED]), test) < 1e-12


def test_the_linear_limit_is_not_exact_for_the_quartic_coupling() -> None:
    stiff = Oscillators(COURSE_N2.m, COURSE_N2.k, COURSE_N2.D, quartic=0.5)
    x, v = oscillators.initial_conditions(1500, 2, 6)
    true = simulator.trajectories(x, v, stiff)
    linear = oscillators.LinearPredictor.fit(true[:1000, :OBSERVED], true[:1000])
    assert oscillators.second_half_mse(linear.predict(true[1000:, :OBSERVED]), true[1000:]) > 1e-2


def test_saved_weights_load_back_as_plain_tensors(tmp_path) -> None:
    model = torch.nn.LSTM(2, 4)
    path = oscillators.save_model(model, tmp_path)
    assert path.name == oscillators.WEIGHTS_FILE
    state = torch.load(path, weights_only=True)
    assert set(state) == {"model"} and set(state["model"]) == set(model.state_dict())
    other = torch.nn.LSTM(2, 4)
    assert oscillators.load_model(other, tmp_path)
    pairs = zip(model.state_dict().values(), other.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not oscillators.load_model(other, tmp_path / "missing")


def test_plots_draw_every_prediction() -> None:
    true = np.zeros((5, STEPS))
    predictions = {"a": true + 1, "b": true + 2}
    figure = oscillators.plot_trajectories(true, predictions, count=3)
    assert len(figure.axes) == 3 and all(len(ax.get_lines()) == 3 for ax in figure.axes)
    ax = oscillators.plot_error_by_time(true, predictions)
    assert [line.get_label() for line in ax.get_lines()][:2] == ["a", "b"]
