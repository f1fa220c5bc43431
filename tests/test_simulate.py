"""The full microscopic simulation (MODEL.md section 2) against theory.

Also the rules both simulations share: random streams fixed by (root seed,
point, replica), the ``n >= 2d + 3`` rule, exact initial overlaps and
failures reported as a status.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from phasegan.errors import InputError, ParameterError
from phasegan.model import ode, sde, simulate
from phasegan.model.equations import pack
from phasegan.model.methods import RunOptions, get_method
from phasegan.model.parameters import Parameters
from phasegan.model.stability import constrained_jacobian
from phasegan.model.trajectories import Status

SIMULATIONS = ["sim", "reduced"]

#: Rounding only: the initial vectors come from a QR factorization.
EXACT = 1e-12


def _state(traj) -> np.ndarray:
    """``q, P, r`` side by side, shape (B, R, T, 2d + d^2)."""
    B, R, T, d = traj.q.shape
    return np.concatenate([traj.q, traj.P.reshape(B, R, T, d * d), traj.r], axis=-1)


# ---------------------------------------------------------------------------
# Distance to the ODE shrinks like n^(-1/2)

#: Points and a window (0, 2] over which the ODE's Jacobian has no eigenvalue
#: with a positive real part, so no direction amplifies the noise; the test
#: checks this rather than assuming it.
SLOPE_POINTS = {
    "d1-recovering": dict(d=1, noise=0.8, tau=0.5, tau_gen=0.5, q0=0.7, P0=0.8),
    "d1-slow-generator": dict(d=1, noise=1.0, tau=0.5, tau_gen=0.2, q0=0.6, P0=0.6),
    "d2-unequal-features": dict(
        d=2, lam=[1.5, 1.0], noise=1.2, tau=0.5, tau_gen=0.5, q0=0.6, P0=0.85
    ),
}
WINDOW = np.linspace(0.0, 2.0, 21)[1:]
SIZES = np.array([250, 1000, 4000])
REPLICAS = 16

#: Fluctuations are O(n^(-1/2)), so the fitted slope should be -1/2. Over 30
#: seeds of the reduced simulation (same law) with 16 replicas, the fitted
#: slope had a standard deviation of at most 0.065 at these points, so 0.2
#: is three standard deviations or more: a false alarm about 0.2% of the
#: time per point. A simulation that does not converge to the ODE (slope 0)
#: or converges like the mean does (1/n, slope -1) fails.
SLOPE_TOLERANCE = 0.2


@pytest.mark.parametrize("name", SLOPE_POINTS)
def test_distance_to_ode_shrinks_like_inverse_sqrt_n(name):
    point = SLOPE_POINTS[name]
    params = Parameters.single(**point)
    reference = ode.solve(params, np.r_[0.0, WINDOW])

    growth = max(
        np.linalg.eigvals(
            constrained_jacobian(
                pack(
                    reference.q[0, 0, k],
                    reference.P[0, 0, k],
                    reference.r[0, 0, k],
                    reference.S[0, 0, k],
                ),
                params,
            )
        ).real.max()
        for k in range(len(WINDOW) + 1)
    )
    assert growth <= 0, f"precondition: the window has an unstable direction ({growth})"

    rms = []
    for n in SIZES:
        traj = simulate.solve(
            Parameters.single(**point, n=n),
            WINDOW,
            RunOptions(replicas=REPLICAS, root_seed=11),
        )
        deviation = _state(traj)[0] - _state(reference)[0, 0, 1:]
        rms.append(np.sqrt(np.mean(np.sum(deviation**2, axis=-1))))

    slope = np.polyfit(np.log(SIZES), np.log(rms), 1)[0]
    assert abs(slope + 0.5) <= SLOPE_TOLERANCE, (slope, rms)


# ---------------------------------------------------------------------------
# Exact identities


@pytest.mark.parametrize("method", SIMULATIONS)
@pytest.mark.parametrize("d", [1, 2, 4])
def test_start_has_exactly_the_default_overlaps(method, d):
    q0, P0 = 0.3, -0.4
    params = Parameters.single(d=d, noise=1.0, q0=q0, P0=P0, n=60)
    traj = get_method(method)(params, np.array([0.0]), RunOptions(replicas=2))

    eye = np.eye(d)
    np.testing.assert_allclose(traj.q[0, :, 0], q0, atol=EXACT)
    np.testing.assert_allclose(
        traj.P[0, :, 0], np.broadcast_to(P0 * eye, (2, d, d)), atol=EXACT
    )
    np.testing.assert_allclose(traj.r[0, :, 0], q0 * P0, atol=EXACT)
    np.testing.assert_allclose(
        traj.S[0, :, 0], np.broadcast_to(eye, (2, d, d)), atol=EXACT
    )


@pytest.mark.parametrize("method", SIMULATIONS)
def test_overlaps_stay_in_range_and_columns_unit(method):
    params = Parameters.single(
        d=3, lam=[2.0, 1.0, 0.5], noise=0.7, tau=0.8, tau_gen=1.0, n=50
    )
    traj = get_method(method)(params, np.linspace(0, 20, 41), RunOptions(replicas=3))

    assert np.all(traj.status == Status.OK)
    diagonal = np.diagonal(traj.S, axis1=-2, axis2=-1)
    np.testing.assert_allclose(diagonal, 1.0, atol=EXACT)
    for overlap in (traj.q, traj.P, traj.r, traj.S):
        assert np.all(np.abs(overlap) <= 1 + EXACT)


def test_initial_coordinates_of_U_are_standard_normal():
    """U is a Haar-random frame, so sqrt(n) U_i. is close to iid N(0, 1)."""
    params = Parameters.single(d=2, noise=1.0, n=3000)
    coordinates = sde.simulated(params, np.array([0.0]), RunOptions(root_seed=4))
    # One KS test per column: false alarm 1e-3 in all (Bonferroni).
    for column in coordinates.U.T:
        assert stats.kstest(column, "norm").pvalue > 0.5e-3


# ---------------------------------------------------------------------------
# Random streams


def _block(n: int = 40) -> Parameters:
    return Parameters.stack(
        [
            Parameters.single(d=2, noise=noise, tau_gen=tau_gen, n=n)
            for noise, tau_gen in [(0.5, 0.2), (1.0, 0.5), (1.5, 1.0)]
        ]
    )


@pytest.mark.parametrize("method", SIMULATIONS)
def test_same_seeds_give_identical_arrays(method):
    solve = get_method(method)
    times = np.linspace(0, 3, 7)
    options = RunOptions(replicas=3, root_seed=5, point_ids=np.array([10, 11, 12]))
    first = solve(_block(), times, options)
    again = solve(_block(), times, options)
    other_seed = solve(
        _block(),
        times,
        RunOptions(replicas=3, root_seed=6, point_ids=options.point_ids),
    )

    for name in ("q", "P", "r", "S"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.q[:, :, 1:], other_seed.q[:, :, 1:])


@pytest.mark.parametrize("method", SIMULATIONS)
def test_point_result_does_not_depend_on_its_block(method):
    solve = get_method(method)
    times = np.linspace(0, 3, 7)
    ids = np.array([10, 11, 12])
    whole = solve(_block(), times, RunOptions(replicas=3, root_seed=5, point_ids=ids))
    alone = solve(
        _block().take([1]),
        times,
        RunOptions(replicas=3, root_seed=5, point_ids=ids[[1]]),
    )
    shuffled = solve(
        _block().take([2, 0, 1]),
        times,
        RunOptions(replicas=3, root_seed=5, point_ids=ids[[2, 0, 1]]),
    )
    fewer_replicas = solve(
        _block(), times, RunOptions(replicas=2, root_seed=5, point_ids=ids)
    )

    for name in ("q", "P", "r", "S"):
        array = getattr(whole, name)
        np.testing.assert_array_equal(getattr(alone, name)[0], array[1])
        np.testing.assert_array_equal(getattr(shuffled, name), array[[2, 0, 1]])
        np.testing.assert_array_equal(getattr(fewer_replicas, name), array[:, :2])


# ---------------------------------------------------------------------------
# Bad input and numerical failure


@pytest.mark.parametrize("method", SIMULATIONS)
@pytest.mark.parametrize("d", [1, 3])
def test_n_below_2d_plus_3_is_refused(method, d):
    solve = get_method(method)
    too_small = Parameters.single(d=d, noise=1.0, n=2 * d + 2)
    with pytest.raises(ParameterError) as error:
        solve(too_small, np.array([0.0, 1.0]))
    assert error.value.field == "n"
    assert str(error.value) == (
        f"n: must be >= 2d + 3 = {2 * d + 3} for a simulation (got {2 * d + 2})"
    )

    smallest = Parameters.single(d=d, noise=1.0, n=2 * d + 3)
    assert np.all(solve(smallest, np.array([0.0, 1.0])).status == Status.OK)


@pytest.mark.parametrize("method", SIMULATIONS)
def test_decreasing_times_are_refused(method):
    params = Parameters.single(noise=1.0, n=40)
    with pytest.raises(InputError, match="times: must be non-decreasing"):
        get_method(method)(params, np.array([0.0, 2.0, 1.0]))


@pytest.mark.parametrize("method", SIMULATIONS)
def test_overflow_is_a_status_not_an_exception(method):
    block = Parameters.stack(
        [
            Parameters.single(noise=1.0, n=40),
            Parameters.single(noise=1.0, tau=1e200, n=40),
        ]
    )
    times = np.linspace(0, 1, 5)
    traj = get_method(method)(block, times, RunOptions(replicas=2))

    assert np.all(traj.status[0] == Status.OK)
    assert np.all(traj.status[1] == Status.NONFINITE)
    assert traj.message[1, 0].startswith("state became non-finite by t = ")
    assert np.isfinite(traj.q[0]).all()
    assert np.isnan(traj.q[1, :, 1:]).all()
