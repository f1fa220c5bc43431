"""The classifier (MODEL.md section 7) against the theory of section 6.

The d = 1 grid is lambda = lambda~ = 1, tau = 0.5, noise x tau_gen, integrated
to t = 3000 with 600 samples, as in the main job. On it:

- ``trace J = tau_gen - 2 a`` on the line ``q = r = 0``, with the decay rate
  ``a = tau^2 noise^2`` (equal noises; MODEL.md section 6);
- a state labelled settled must be stable: its Jacobian (computed) has no
  eigenvalue with real part above `STABILITY_TOL` = 1e-6, a growth that
  changes a perturbation by 0.3 % over the whole run. Zero eigenvalues of the
  neutral directions along the line pass;
- a decaying oscillation on the line decays at the rate ``trace J / 2``, and
  oscillates at ``sqrt(det J - trace J^2 / 4)``: the classifier's growth rate
  and period are checked against both (10 % and 1 %: the fit runs over a
  finite window on a trajectory that is not yet linear, and the periodogram's
  resolution is a fraction of a percent of the period).
"""

from __future__ import annotations

import numpy as np
import pytest

from phasegan.classify import (
    CONVERGED,
    DIAGNOSTICS,
    ERROR,
    FAILED,
    LABELS,
    OSCILLATING,
    PARTIAL,
    STABILITY_TOL,
    classify,
)
from phasegan.model import ode
from phasegan.model.methods import RunOptions, get_method
from phasegan.model.parameters import Parameters
from phasegan.model.stability import (
    end_state_stability,
    end_states,
    failure_margin,
    trace_on_line,
)
from phasegan.model.trajectories import Status, Trajectories

TAU = 0.5
NOISE = np.round(np.linspace(0.1, 2.5, 25), 6)
TAU_GEN = np.array([0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0])


@pytest.fixture(scope="module")
def grid():
    noise, tau_gen = np.meshgrid(NOISE, TAU_GEN, indexing="ij")
    params = Parameters(
        lam=np.ones((noise.size, 1)),
        lam_gen=1.0,
        noise_true=noise.ravel(),
        noise_gen=noise.ravel(),
        tau=TAU,
        tau_gen=tau_gen.ravel(),
        q0=0.2,
        P0=0.1,
        n=0,
    )
    traj = ode.solve(params, np.linspace(0, 3000, 600))
    # Trajectory rules only: the Jacobian check below must stay independent.
    return params, traj, classify(traj)


def on_the_line(trace: float, t_max: float) -> tuple[Parameters, Trajectories]:
    """The d = 1 point of tau_gen = 0.5 where ``trace J`` has a given value."""
    noise = np.sqrt((0.5 - trace) / (2 * TAU**2))
    params = Parameters.single(noise=noise, tau=TAU, tau_gen=0.5)
    np.testing.assert_allclose(trace_on_line(params), trace)
    return params, ode.solve(params, np.linspace(0, t_max, 600))


def with_fluctuations(traj: Trajectories, n: int, replicas: int, seed: int):
    """``traj`` (one run) plus finite-n-like noise on every overlap.

    Each component gets its own Ornstein-Uhlenbeck process of standard
    deviation ``1.5 / sqrt(n)`` and correlation time 20 (a relaxation rate
    of 0.05, slow for this model); ``diag(S)`` stays 1.
    """
    rng = np.random.default_rng(seed)
    times = traj.times
    memory = np.exp(-np.diff(times, prepend=times[0]) / 20.0)
    sigma = 1.5 / np.sqrt(n)
    noisy = Trajectories.empty(1, replicas, times, traj.d)

    def fluctuation(shape):
        out = np.empty((replicas, len(times)) + shape)
        out[:, 0] = rng.normal(0, sigma, (replicas,) + shape)
        for k in range(1, len(times)):
            kick = rng.normal(0, sigma, (replicas,) + shape)
            out[:, k] = memory[k] * out[:, k - 1] + np.sqrt(1 - memory[k] ** 2) * kick
        return out

    d = traj.d
    noisy.q[0] = traj.q[0, 0] + fluctuation((d,))
    noisy.P[0] = traj.P[0, 0] + fluctuation((d, d))
    noisy.r[0] = traj.r[0, 0] + fluctuation((d,))
    noisy.S[0] = traj.S[0, 0]
    return noisy


def test_settled_points_end_at_stable_states(grid):
    params, traj, result = grid
    states = end_states(traj)[:, 0]
    settled = np.isin(result.label[:, 0], (CONVERGED, FAILED, PARTIAL))
    assert settled.sum() > params.size // 2
    for b in np.flatnonzero(settled):
        stability = end_state_stability(states[b], params, b, tol=STABILITY_TOL)
        assert stability.stable, (
            f"noise {params.noise_true[b]}, tau_gen {params.tau_gen[b]}: "
            f"{LABELS[result.label[b, 0]]} but growth {stability.growth}"
        )


def test_strong_noise_always_fails(grid):
    params, _, result = grid
    strong = params.decay_rate() >= 1.2 * TAU * params.lam[:, 0]
    assert strong.sum() >= 9 * 5
    assert (result.label[strong, 0] == FAILED).all()
    assert (failure_margin(params)[strong] < 0).all()


def test_weak_noise_on_tau_gen_half_oscillates(grid):
    params, _, result = grid
    band = (params.tau_gen == 0.5) & np.isin(
        np.round(params.noise_true, 6), [0.6, 0.7, 0.8, 0.9]
    )
    assert band.sum() == 4
    assert (trace_on_line(params)[band] > 0).all()
    assert (result.label[band, 0] == OSCILLATING).all()
    # A period is reported, longer than two sample intervals (not aliased).
    period = result.diagnostics["period"][band, 0]
    assert np.isfinite(period).all() and (period > 2 * 3000 / 599).all()


def test_slowly_decaying_oscillation_is_not_oscillating():
    # On the stable side, trace J = -0.01: the oscillation around the line
    # decays at 0.005 per unit time, so over the analysed last half of
    # t_max = 600 it shrinks by e^-1.5 and is still far above the floor.
    params, traj = on_the_line(-0.01, t_max=600)
    result = classify(traj)
    amplitude = result.diagnostics["amplitude"][0, 0]
    floor = result.diagnostics["amplitude_floor"][0, 0]
    assert amplitude > 30 * floor
    assert result.label[0, 0] == CONVERGED
    assert result.diagnostics["growth_rate"][0, 0] == pytest.approx(-0.005, rel=0.1)

    # Its period is the linear one of MODEL.md section 6 at the end state.
    a = params.decay_rate()[0]
    P = traj.P[0, 0, -1, 0, 0]
    det = (TAU - a) * (0.5 - TAU - a) + TAU**2 * P**2
    period = 2 * np.pi / np.sqrt(det - 0.01**2 / 4)
    assert result.diagnostics["period"][0, 0] == pytest.approx(period, rel=0.01)


def test_same_distance_on_the_unstable_side_is_oscillating():
    # The mirror point, trace J = +0.01, over the same time: a small limit
    # cycle that the same rules must call persistent.
    _, traj = on_the_line(+0.01, t_max=600)
    result = classify(traj)
    assert result.label[0, 0] == OSCILLATING
    assert result.diagnostics["amplitude_trend"][0, 0] > 0.95


def test_finite_n_fluctuations_are_not_an_oscillation():
    n = 2000
    _, settled = on_the_line(-0.2, t_max=3000)
    noisy = with_fluctuations(settled, n=n, replicas=16, seed=1)
    result = classify(noisy, n=np.array([n]))
    assert (result.label == CONVERGED).all()

    # The floor is what decides: judged as an ODE, the same wobble is
    # persistent, so it would be called an oscillation.
    as_ode = classify(noisy)
    assert (as_ode.label == OSCILLATING).mean() > 0.5

    # And a real oscillation under the same noise is still seen.
    _, cycling = on_the_line(+0.3, t_max=3000)
    result = classify(with_fluctuations(cycling, n=n, replicas=16, seed=2), n=n)
    assert (result.label == OSCILLATING).all()


def test_finite_n_simulation_is_judged_like_the_ode():
    # The exact reduced simulation (MODEL.md section 5) at n = 1000: at a
    # settled point its fluctuations stay under the floor, at an oscillating
    # point its cycle stays above it.
    solve = get_method("reduced")
    params = Parameters.stack(
        [
            Parameters.single(noise=1.2, tau=TAU, tau_gen=0.5, n=1000),
            Parameters.single(noise=0.75, tau=TAU, tau_gen=0.5, n=1000),
        ]
    )
    times = np.linspace(0, 1000, 200)
    traj = solve(params, times, RunOptions(replicas=4, root_seed=7))
    assert (traj.status == Status.OK).all()
    result = classify(traj, n=params.n)
    assert (result.label[0] == CONVERGED).all()
    assert (result.label[1] == OSCILLATING).all()


def test_trend_rules_on_synthetic_envelopes():
    times = np.linspace(0, 3000, 600)
    wave = np.sin(2 * np.pi * times / 37.0)
    envelopes = {
        "persistent": np.full_like(times, 0.3),
        "growing": 0.05 * np.exp(times / 2000),
        "settling onto a cycle": 0.3 * (1 + 2 * np.exp(-times / 250)),
        "decaying slowly": 0.3 * np.exp(-times / 3000),
    }
    traj = Trajectories.empty(len(envelopes), 1, times, 1)
    for b, envelope in enumerate(envelopes.values()):
        traj.q[b, 0, :, 0] = envelope * wave
        traj.P[b, 0, :, 0, 0] = 0.8
        traj.r[b, 0, :, 0] = 0.5 * envelope * wave
        traj.S[b, 0] = 1.0
    result = classify(traj)
    expected = [OSCILLATING, OSCILLATING, OSCILLATING, CONVERGED]
    assert result.label[:, 0].tolist() == expected
    period = result.diagnostics["period"][:, 0]
    # Resolution of the padded periodogram: 37 / (4 x 1500) < 1 %.
    np.testing.assert_allclose(period, 37.0, rtol=0.01)


def test_slow_bending_drift_is_not_an_oscillation():
    # Regression: near the failure line with a slow generator (tau_gen = 0.01)
    # the ODE is still creeping towards the line q = r = 0 at t_max = 3000.
    # The curve left a curved residual about each window's straight line and
    # was called oscillating, though section 6 puts these points on the
    # stable side (trace J < 0, a < tau lambda) and nothing there cycles.
    params = Parameters.stack(
        [
            Parameters.single(noise=noise, tau=0.5, tau_gen=tau_gen)
            for noise, tau_gen in [(1.25, 0.01), (1.3, 0.01), (1.37, 0.0316)]
        ]
    )
    assert (trace_on_line(params) < 0).all() and (failure_margin(params) > 0).all()
    traj = ode.solve(params, np.linspace(0, 3000, 600))
    assert (classify(traj, params=params).label[:, 0] != OSCILLATING).all()

    # The same shape, synthetic: a slow exponential approach with a bend,
    # against three quarters of a cycle in the last half (too few to tell from a
    # drift) and eight (an oscillation, two whole cycles in every window).
    times = np.linspace(0, 3000, 600)
    curves = [
        0.2 + 0.3 * np.exp(-times / 2500),
        0.3 + 0.1 * np.sin(2 * np.pi * times / 2000),
        0.3 + 0.1 * np.sin(2 * np.pi * times / 180),
    ]
    synthetic = Trajectories.empty(len(curves), 1, times, 1)
    for b, curve in enumerate(curves):
        synthetic.q[b, 0, :, 0] = curve - 0.2
        synthetic.P[b, 0, :, 0, 0] = curve
        synthetic.r[b, 0, :, 0] = 0.0
        synthetic.S[b, 0] = 1.0
    labels = classify(synthetic).label[:, 0].tolist()
    assert labels == [FAILED, FAILED, OSCILLATING]


def test_failed_runs_are_errors_with_empty_diagnostics():
    params = Parameters.stack(
        [Parameters.single(noise=0.7), Parameters.single(noise=1.2)]
    )
    traj = ode.solve(params, np.linspace(0, 100, 200))
    traj.fail(0, 0, Status.BUDGET, "test")
    traj.q[1, 0, 50:] = np.nan  # a method that forgot to set its status
    result = classify(traj)
    assert (result.label[:, 0] == ERROR).all()
    for diagnostic in DIAGNOSTICS:
        assert np.isnan(result.diagnostics[diagnostic.name]).all(), diagnostic.name


def test_diagnostics_have_the_declared_shapes(grid):
    params, traj, result = grid
    B, R, d = traj.points, traj.replicas, traj.d
    assert set(result.diagnostics) == {x.name for x in DIAGNOSTICS}
    for diagnostic in DIAGNOSTICS:
        shape = (B, R, d) if diagnostic.per_feature else (B, R)
        assert result.diagnostics[diagnostic.name].shape == shape
    assert result.label.dtype == np.int8
