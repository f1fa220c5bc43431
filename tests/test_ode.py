"""The compiled ODE kernel (MODEL.md section 3) against its identities and scipy.

Tolerances, and why:

- right-hand side: the kernel and `equations.rhs` evaluate the same
  polynomial in a different order, so they differ by rounding only; terms are
  O(1) on states in [-1, 1], and 1e-13 is a few hundred units in the last
  place.
- trajectories: an error-per-step controlled method has a global error of
  about ``rtol`` times how much the flow amplifies perturbations over the
  horizon. Over ``t <= 200`` the points used here amplify by far less than
  `AMPLIFICATION`, so the bound is ``AMPLIFICATION * rtol``. (At longer times
  some d >= 2 points are chaotic and any two solvers part ways; those are not
  compared pointwise.)
- identities that hold exactly in floating point (diag S, symmetry of S, the
  line q = r = 0, block vs single point, sub-sampled times) are tested
  bitwise.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from phasegan.model import ode
from phasegan.model.equations import initial_state, rhs, state_size
from phasegan.model.methods import RunOptions
from phasegan.model.parameters import Parameters
from phasegan.model.reference import solve_reference
from phasegan.model.trajectories import Status

#: Bound on how much the flow amplifies a local error over the horizons used.
AMPLIFICATION = 1e3


def random_block(d: int, size: int, seed: int) -> Parameters:
    """``size`` valid points with features of unequal strength."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0.2, 1.6, size)
    return Parameters(
        lam=rng.uniform(0.5, 2.0, (size, d)),
        lam_gen=rng.uniform(0.5, 2.0, (size, d)),
        noise_true=noise,
        noise_gen=noise * rng.uniform(0.5, 1.5, size),
        tau=rng.uniform(0.2, 0.8, size),
        tau_gen=rng.uniform(0.05, 1.0, size),
        q0=rng.uniform(-0.3, 0.3, size),
        P0=rng.uniform(-0.5, 0.5, size),
        n=0,
    ).validated()


def all_states(traj) -> np.ndarray:
    """Every sampled order parameter of every run, flattened."""
    return np.concatenate(
        [a.reshape(a.shape[0], a.shape[1], a.shape[2], -1) for a in
         (traj.q, traj.P, traj.r, traj.S)],
        axis=-1,
    )


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_compiled_rhs_equals_reference(d):
    params = random_block(d, 5, seed=d)
    rng = np.random.default_rng(100 + d)
    for index in range(params.size):
        for _ in range(40):
            y = rng.uniform(-1, 1, state_size(d))
            expected = rhs(0.0, y, params, index)
            np.testing.assert_allclose(
                ode.compiled_rhs(y, params, index), expected, rtol=0, atol=1e-13
            )


@pytest.mark.parametrize("d", [2, 3])
def test_diag_S_stays_exactly_one_and_S_symmetric(d):
    params = random_block(d, 4, seed=10 + d)
    traj = ode.solve(params, np.linspace(0, 500, 251))
    assert (traj.status == Status.OK).all()
    diagonal = np.diagonal(traj.S, axis1=-2, axis2=-1)
    assert (diagonal == 1.0).all()
    assert (traj.S == np.swapaxes(traj.S, -1, -2)).all()


@pytest.mark.parametrize("d", [1, 2, 3])
def test_overlaps_form_a_gram_matrix(d):
    # |q|, |P|, |r| <= 1 follow from the Gram matrix of (U, V, w) being
    # positive semi-definite, which is what is checked, to the global error.
    rtol = 1e-8
    params = random_block(d, 6, seed=20 + d)
    traj = ode.solve(params, np.linspace(0, 1000, 501), RunOptions(rtol=rtol))
    tolerance = AMPLIFICATION * rtol
    assert np.abs(all_states(traj)).max() <= 1 + tolerance

    B, _, T, _ = traj.q.shape
    gram = np.zeros((B, T, 2 * d + 1, 2 * d + 1))
    gram[..., :d, :d] = np.eye(d)
    gram[..., :d, d : 2 * d] = traj.P[:, 0]
    gram[..., d : 2 * d, d : 2 * d] = traj.S[:, 0]
    gram[..., :d, 2 * d] = traj.q[:, 0]
    gram[..., d : 2 * d, 2 * d] = traj.r[:, 0]
    gram[..., 2 * d, 2 * d] = 1.0
    upper = np.triu(gram)
    gram = upper + np.swapaxes(np.triu(gram, 1), -1, -2)
    assert np.linalg.eigvalsh(gram).min() >= -tolerance


@pytest.mark.parametrize("d", [1, 2])
def test_line_q_r_zero_is_stationary(d):
    # q0 = 0 puts the start on the line q = r = 0 (r = q0 P0); every term of
    # the right-hand side then carries a factor q or r, so nothing moves.
    params = Parameters(
        lam=np.linspace(2.0, 1.0, d)[None].repeat(3, 0),
        lam_gen=1.0,
        noise_true=0.7,
        noise_gen=0.7,
        tau=0.5,
        tau_gen=0.5,
        q0=0.0,
        P0=[-0.4, 0.1, 0.9],
        n=0,
    )
    traj = ode.solve(params, np.linspace(0, 300, 31))
    start = initial_state(params)
    assert (all_states(traj) == start[:, None, None, :]).all()


def test_block_equals_each_point_alone():
    # The points of a block never touch each other: bitwise equality, in any
    # order.
    params = random_block(2, 6, seed=3)
    times = np.linspace(0, 400, 201)
    block = ode.solve(params, times)
    reverse = ode.solve(params.take(np.arange(6)[::-1]), times)
    for b in range(params.size):
        alone = ode.solve(params.point(b), times)
        np.testing.assert_array_equal(all_states(alone)[0], all_states(block)[b])
        np.testing.assert_array_equal(
            all_states(reverse)[params.size - 1 - b], all_states(block)[b]
        )


def test_sample_times_do_not_change_the_steps():
    # Steps depend only on the start and the last time, so asking for fewer
    # samples returns bitwise the same values at the times asked.
    params = random_block(2, 3, seed=4)
    times = np.linspace(0, 250, 501)
    chosen = np.r_[0:500:7, 500]
    every = ode.solve(params, times)
    some = ode.solve(params, times[chosen])
    np.testing.assert_array_equal(all_states(some), all_states(every)[:, :, chosen])


@pytest.mark.parametrize("d", [1, 2])
def test_error_is_proportional_to_rtol(d):
    params = random_block(d, 4, seed=30 + d)
    times = np.linspace(0, 100, 201)
    exact = all_states(
        solve_reference(params, times, rtol=1e-13, atol=1e-15, method="DOP853")
    )
    errors = {}
    for rtol in (1e-7, 1e-9, 1e-11):
        options = RunOptions(rtol=rtol, atol=rtol / 100)
        approximate = all_states(ode.solve(params, times, options))
        errors[rtol] = np.abs(approximate - exact).max()
        assert errors[rtol] <= AMPLIFICATION * rtol
    # A wrong error estimate or interpolant would leave an error floor.
    assert errors[1e-11] <= errors[1e-7] / 1e3


@pytest.mark.parametrize("d", [1, 2])
def test_agrees_with_lsoda(d):
    rtol = 1e-10
    params = random_block(d, 5, seed=40 + d)
    times = np.linspace(0, 200, 401)
    fast = ode.solve(params, times, RunOptions(rtol=rtol, atol=rtol / 100))
    slow = solve_reference(params, times, rtol=rtol, atol=rtol / 100)
    difference = np.abs(all_states(fast) - all_states(slow)).max()
    assert difference <= AMPLIFICATION * rtol


def test_step_budget_is_a_status_and_spares_the_other_points():
    # Point 0 sits on the line q = r = 0: its error estimate is zero and the
    # step grows tenfold per step. Point 1 oscillates and needs thousands.
    params = Parameters.stack(
        [
            Parameters.single(noise=0.7, tau_gen=0.5, q0=0.0),
            Parameters.single(noise=0.7, tau_gen=0.5),
        ]
    )
    times = np.linspace(0, 1000, 101)
    traj = ode.solve(params, times, RunOptions(max_steps=100))
    assert traj.status[:, 0].tolist() == [Status.OK, Status.BUDGET]
    assert "max_steps = 100" in traj.message[1, 0]
    assert np.isnan(traj.q[1, 0, -1]).all()
    np.testing.assert_array_equal(
        all_states(traj)[0], all_states(ode.solve(params.point(0), times))[0]
    )


def test_blow_up_is_a_status_not_an_exception():
    # Outside the model's range (q0 = 5, built without validation) the state
    # runs off to infinity in finite time.
    params = Parameters(
        lam=[[1.0], [1.0]],
        lam_gen=[[10.0], [1.0]],
        noise_true=0.0,
        noise_gen=0.0,
        tau=1.0,
        tau_gen=[0.0, 0.5],
        q0=[5.0, 0.2],
        P0=[0.9, 0.1],
        n=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        traj = ode.solve(params, np.linspace(0, 10, 11))
    assert traj.status[:, 0].tolist() == [Status.NONFINITE, Status.OK]
    assert "diverged" in traj.message[0, 0]
    assert np.isnan(traj.r[0, 0, 1:]).all()
    assert np.isfinite(all_states(traj)[1]).all()


@pytest.mark.parametrize(
    "times", [np.array([0.0, 2.0, 1.0]), np.array([[0.0, 1.0]]), np.array([])]
)
def test_bad_times_are_refused(times):
    with pytest.raises(ValueError, match="times"):
        ode.solve(Parameters.single(noise=1.0), times)
