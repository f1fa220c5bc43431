"""The exact reduced simulation (MODEL.md section 5) against the full one.

At ``n = 30`` finite-size effects are strong, so agreement in law there says
more than agreement at large ``n``, where both are close to the ODE.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from simulation_helpers import ks_family, order_parameters, paired

from phasegan.model import reduced, simulate
from phasegan.model.methods import RunOptions, replica_generator
from phasegan.model.parameters import Parameters

#: Family-wise false-alarm rate of each comparison (KS tests on every
#: component of q, P, r at two times, Bonferroni). Over 10 seeds of both
#: samples, a correct reduced simulation never came within a factor 30 of
#: this, and the wrong variant below was always rejected with p below 1e-4.
ALPHA = 1e-3
REPLICAS = 2000
N_SMALL = 30
TIMES = np.array([2.0, 5.0])

POINTS = {
    "d1": dict(d=1, lam=1.5, noise=1.0, tau=0.5, tau_gen=0.5, q0=0.2, P0=0.1),
    "d2": dict(d=2, lam=[1.5, 1.0], noise=1.0, tau=0.5, tau_gen=0.5, q0=0.2, P0=0.1),
}


def _params(name: str, n: int = N_SMALL) -> Parameters:
    return Parameters.single(**POINTS[name], n=n)


def _samples(full, other) -> dict:
    """KS pairs: every component of q, P, r at each of `TIMES`."""
    pairs = {}
    for k, t in enumerate(TIMES):
        pairs.update(
            paired(
                order_parameters(full, 0, k),
                order_parameters(other, 0, k),
                f" at t={t:g}",
            )
        )
    return pairs


@pytest.fixture(scope="module", params=list(POINTS))
def full_sample(request):
    name = request.param
    traj = simulate.solve(
        _params(name), TIMES, RunOptions(replicas=REPLICAS, root_seed=1)
    )
    return name, traj


def test_same_law_as_full_simulation_at_n30(full_sample):
    name, full = full_sample
    fast = reduced.solve(
        _params(name), TIMES, RunOptions(replicas=REPLICAS, root_seed=2)
    )
    family = ks_family(_samples(full, fast), ALPHA)
    assert not family.rejected, family.report()


def test_comparison_rejects_wrong_wishart_degrees_of_freedom(full_sample):
    """Forgetting to remove the span (n instead of n - 2d - 1 degrees of
    freedom) puts too much noise in w; the comparison must see it."""
    name, full = full_sample
    d = full.d
    wrong = reduced._solve(
        _params(name),
        TIMES,
        RunOptions(replicas=REPLICAS, root_seed=2),
        dof_shift=2 * d + 1,
    )
    family = ks_family(_samples(full, wrong), ALPHA)
    assert family.rejected, family.report()


def test_same_law_at_the_smallest_n():
    """At n = 2d + 3 the Wishart part has 2 and 1 degrees of freedom."""
    params = Parameters.single(**POINTS["d1"], n=5)
    full = simulate.solve(params, TIMES, RunOptions(replicas=REPLICAS, root_seed=3))
    fast = reduced.solve(params, TIMES, RunOptions(replicas=REPLICAS, root_seed=4))
    family = ks_family(_samples(full, fast), ALPHA)
    assert not family.rejected, family.report()


# ---------------------------------------------------------------------------
# Degenerate spans


def _degenerate_coordinates(d: int) -> np.ndarray:
    """``V = U`` and ``w`` in span(U) plus one more direction: rank d + 1.

    Columns ``U (d), V (d), w`` in the frame ``e_1..e_{d+1}``.
    """
    X = np.zeros((d + 1, 2 * d + 1))
    X[:d, :d] = np.eye(d)
    X[:d, d : 2 * d] = np.eye(d)
    X[:d, 2 * d] = 0.3
    X[d, 2 * d] = math.sqrt(1 - d * 0.09)
    return X


def _full_run_from(X: np.ndarray, params: Parameters, rng) -> simulate.Run:
    """A full-simulation run whose vectors have coordinates ``X`` in a
    Haar-random orthonormal frame."""
    n = int(params.n[0])
    d = params.d
    gauss = rng.standard_normal((n, X.shape[0]))
    frame, tri = np.linalg.qr(gauss)
    frame *= np.where(np.diag(tri) < 0, -1.0, 1.0)
    vectors = frame @ X
    start = simulate.Run.start(params, 0, rng)
    start.Ut = np.ascontiguousarray(vectors[:, :d].T)
    start.Vt = np.ascontiguousarray(vectors[:, d : 2 * d].T)
    start.w = np.ascontiguousarray(vectors[:, 2 * d])
    return start


def _collect(runs, times, d):
    """Run each of ``runs`` and stack q, P, r like `Trajectories` (B = 1)."""
    T = len(times)
    shape = (1, len(runs), T)
    out = {
        "q": np.empty(shape + (d,)),
        "P": np.empty(shape + (d, d)),
        "r": np.empty(shape + (d,)),
        "S": np.empty(shape + (d, d)),
    }
    for j, run in enumerate(runs):
        recorded = run.record(
            times, out["q"][0, j], out["P"][0, j], out["r"][0, j], out["S"][0, j]
        )
        assert recorded == T
    return _Traj(**out)


class _Traj:
    def __init__(self, q, P, r, S):
        self.q, self.P, self.r, self.S = q, P, r, S
        self.d = q.shape[-1]


def test_degenerate_start_keeps_the_law():
    """From ``V = U`` the span has rank d + 1 < 2d + 1: padding the frame
    must keep the reduced simulation's law equal to the full one's."""
    d, replicas = 2, 1500
    params = Parameters.single(d=d, noise=1.0, tau=0.5, tau_gen=1.0, n=N_SMALL)
    X = _degenerate_coordinates(d)
    times = np.array([0.0, 0.5, 2.0])

    first = reduced.ReducedRun.from_coordinates(
        X, params, 0, replica_generator(0, 0, 0)
    )
    np.testing.assert_allclose(first.gram(), X.T @ X, atol=1e-15)
    assert np.sum(np.abs(np.diag(first.X)) > 0) == d + 1

    fast = _collect(
        [
            reduced.ReducedRun.from_coordinates(
                X, params, 0, replica_generator(3, 0, j)
            )
            for j in range(replicas)
        ],
        times,
        d,
    )
    full = _collect(
        [
            _full_run_from(X, params, replica_generator(4, 0, j))
            for j in range(replicas)
        ],
        times,
        d,
    )
    pairs = {}
    for k in (1, 2):
        pairs.update(
            paired(order_parameters(full, 0, k), order_parameters(fast, 0, k), f" t{k}")
        )
    family = ks_family(pairs, ALPHA)
    assert not family.rejected, family.report()


@pytest.mark.parametrize("n", [10**2, 10**4, 10**6])
def test_gram_stays_a_valid_gram_matrix(n):
    """Unit diagonal, positive semi-definite, U orthonormal, for any n."""
    params = Parameters.single(
        d=3, lam=[2.0, 1.0, 0.5], noise=0.8, tau=0.7, tau_gen=1.0, n=n
    )
    run = reduced.ReducedRun.start(params, 0, replica_generator(0, 0, 0))
    times = np.array([0.0, 2e5 / n])
    q, r = np.empty((2, 3)), np.empty((2, 3))
    P, S = np.empty((2, 3, 3)), np.empty((2, 3, 3))
    assert run.record(times, q, P, r, S) == 2

    gram = run.gram()
    np.testing.assert_allclose(np.diag(gram), 1.0, atol=1e-12)
    np.testing.assert_allclose(gram[:3, :3], np.eye(3), atol=1e-15)
    assert np.linalg.eigvalsh(gram).min() > -1e-12
    np.testing.assert_allclose(gram[:3, 6], q[-1], atol=1e-15)
    np.testing.assert_allclose(gram[3:6, 6], r[-1], atol=1e-12)
