"""The SDE of one coordinate (MODEL.md section 4) against theory and simulation."""

from __future__ import annotations

import numpy as np
import pytest
from simulation_helpers import ks_family

from phasegan.errors import InputError
from phasegan.model import ode, sde, simulate
from phasegan.model.methods import RunOptions
from phasegan.model.parameters import Parameters

POINT = dict(d=1, noise=1.0, tau=0.5, tau_gen=0.5, q0=0.2, P0=0.1)


def _gram(params: Parameters, times: np.ndarray) -> np.ndarray:
    """Gram matrices of (U, V, w) from the ODE, shape (T, 2d + 1, 2d + 1)."""
    traj = ode.solve(params, times)
    d = params.d
    T = len(times)
    gram = np.empty((T, 2 * d + 1, 2 * d + 1))
    gram[:, :d, :d] = np.eye(d)
    gram[:, :d, d : 2 * d] = traj.P[0, 0]
    gram[:, :d, 2 * d] = traj.q[0, 0]
    gram[:, d : 2 * d, d : 2 * d] = traj.S[0, 0]
    gram[:, d : 2 * d, 2 * d] = traj.r[0, 0]
    gram[:, 2 * d, 2 * d] = 1.0
    upper = np.triu(gram)
    return upper + np.swapaxes(np.triu(gram, 1), 1, 2)


def test_law_at_one_time_is_gaussian_with_the_ode_gram():
    """Given the ODE the SDE is linear, so its law at time t is N(0, Gram(t));
    its covariance must match the ODE's overlaps."""
    params = Parameters.single(
        d=2, lam=[1.5, 1.0], noise=0.8, tau=0.5, tau_gen=1.0, q0=0.4, P0=0.3
    )
    times = np.array([0.0, 1.0, 3.0])
    M = 20_000
    draws = sde.sample(params, times, M, seed=3)
    expected = _gram(params, times)

    for k in range(len(times)):
        X = np.column_stack([draws.U, draws.V[k], draws.W[k]])
        covariance = X.T @ X / M
        # Standard error of each entry of a Gaussian sample covariance; five
        # of them (a false alarm ~3e-5 over the 45 entries) plus the
        # Euler-Maruyama bias, O(dt) = 1e-3.
        diagonal = np.diag(expected[k])
        error = np.sqrt((np.outer(diagonal, diagonal) + expected[k] ** 2) / M)
        assert np.all(np.abs(covariance - expected[k]) <= 5 * error + 2e-3), k


def test_simulated_coordinates_reproduce_the_simulation():
    """`simulated` reads the same runs as `simulate.solve`: its coordinates
    must give back that run's overlaps, and |w| = 1."""
    params = Parameters.single(**POINT, n=500)
    times = np.array([0.0, 0.7, 1.5])
    options = RunOptions(replicas=2, root_seed=9, point_ids=np.array([4]))
    coordinates = sde.simulated(params, times, options)
    traj = simulate.solve(params, times, options)

    n = 500
    for replica in range(2):
        rows = slice(replica * n, (replica + 1) * n)
        U, V, W = coordinates.U[rows], coordinates.V[:, rows], coordinates.W[:, rows]
        np.testing.assert_allclose(np.mean(W**2, axis=1), 1.0, atol=1e-12)
        q = np.einsum("id,ti->td", U, W) / n
        r = np.einsum("tid,ti->td", V, W) / n
        np.testing.assert_allclose(q, traj.q[0, replica], atol=1e-12)
        np.testing.assert_allclose(r, traj.r[0, replica], atol=1e-12)


# ---------------------------------------------------------------------------
# Simulation against the SDE, in law

#: Family-wise false-alarm rate (three KS tests, Bonferroni).
ALPHA = 1e-3
T1, T2 = 0.5, 2.0
N = 1000
RUNS = 16
#: Coordinates kept per run. Within one run the coordinates share that
#: run's O(n^(-1/2)) deviation from the ODE, which shifts their empirical law
#: by as much as the KS test resolves with n samples; keeping n/4 of them
#: from each of 16 runs makes that shift small against the test's resolution.
KEEP = N // 4
SDE_SAMPLES = 10_000


@pytest.fixture(scope="module")
def simulated_w():
    params = Parameters.single(**POINT, n=N)
    coordinates = sde.simulated(
        params, np.array([T1, T2]), RunOptions(replicas=RUNS, root_seed=21)
    )
    kept = (np.arange(RUNS * N) % N) < KEEP
    return coordinates.W[:, kept]


def _family(simulated_W, sde_W) -> object:
    return ks_family(
        {
            f"W at t={T1}": (simulated_W[0], sde_W[0]),
            f"W at t={T2}": (simulated_W[1], sde_W[1]),
            "W(t2) - W(t1)": (simulated_W[1] - simulated_W[0], sde_W[1] - sde_W[0]),
        },
        ALPHA,
    )


def test_coordinates_of_w_follow_the_sde_at_two_times(simulated_w):
    """The marginals at t1 and t2 and, what the ODE alone does not fix, the
    law of the increment between them."""
    params = Parameters.single(**POINT)
    draws = sde.sample(params, np.array([T1, T2]), SDE_SAMPLES, seed=22)
    family = _family(simulated_w, draws.W)
    assert not family.rejected, family.report()


def test_comparison_rejects_a_wrong_noise_level(simulated_w):
    params = Parameters.single(**POINT)
    wrong = sde._sample(
        params,
        np.array([T1, T2]),
        SDE_SAMPLES,
        seed=22,
        dt=sde.DEFAULT_DT,
        options=RunOptions(),
        noise_factor=0.8,
    )
    family = _family(simulated_w, wrong.W)
    assert family.rejected, family.report()


def test_times_round_to_the_step_grid():
    params = Parameters.single(**POINT)
    draws = sde.sample(params, np.array([0.0, 0.10004, 0.25]), 10, dt=0.01)
    np.testing.assert_allclose(draws.times, [0.0, 0.1, 0.25], atol=1e-15)
    np.testing.assert_array_equal(
        draws.V[0], sde.sample(params, [0.0], 10, dt=0.01).V[0]
    )


def test_one_point_at_a_time():
    block = Parameters.stack([Parameters.single(**POINT)] * 2)
    with pytest.raises(InputError, match="params: must hold one point"):
        sde.sample(block, np.array([1.0]), 10)
