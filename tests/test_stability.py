"""The Jacobian of the ODE and the stability of states (MODEL.md section 6).

Tolerances, and why:

- The right-hand side is a cubic polynomial, so along any direction a central
  difference is ``f' + c h^2`` exactly, and Richardson's combination of two
  step sizes removes ``c h^2`` completely: what is left is rounding, about
  ``eps |f| / h`` = 1e-12 for ``h = 1e-3``; the tests allow 1e-9.
- Entries of the Jacobian on the line ``q = r = 0`` against the formulas of
  MODEL.md section 6: a few roundings, 1e-14.
- Eigenvalues of non-symmetric matrices of size <= 18 with entries of order
  one: rounding times a modest condition number, 1e-8.
- The batched Jacobians against the one-state function: the same arithmetic
  on the same numbers, so equal to a few roundings (1e-14).
"""

from __future__ import annotations

import numpy as np
import pytest

from phasegan.model import ode, stability
from phasegan.model.equations import pack, rhs, state_size
from phasegan.model.parameters import Parameters
from phasegan.model.stability import (
    constrained_jacobian,
    end_state_growth,
    end_state_stability,
    end_states,
    failure_margin,
    jacobian,
    jacobians,
    trace_on_line,
)


def random_point(d: int, seed: int) -> Parameters:
    rng = np.random.default_rng(seed)
    return Parameters.single(
        d=d,
        lam=rng.uniform(0.5, 2.0, d),
        lam_gen=rng.uniform(0.5, 2.0, d),
        noise_true=rng.uniform(0.2, 1.5),
        noise_gen=rng.uniform(0.2, 1.5),
        tau=rng.uniform(0.2, 0.8),
        tau_gen=rng.uniform(0.05, 1.5),
    )


def state_on_constraint_set(d: int, rng) -> np.ndarray:
    """A packed state with S symmetric and diag(S) = 1, other entries random."""
    columns = rng.normal(size=(d + 2, d))
    columns /= np.linalg.norm(columns, axis=0)
    S = columns.T @ columns
    np.fill_diagonal(S, 1.0)
    return pack(
        rng.uniform(-0.8, 0.8, d),
        rng.uniform(-0.8, 0.8, (d, d)),
        rng.uniform(-0.8, 0.8, d),
        S,
    )


def richardson_jacobian(y, params, h=1e-3):
    m = y.size
    columns = []
    for k in range(m):
        step = np.zeros(m)
        step[k] = 1.0

        def central(width):
            return (
                rhs(0, y + width * step, params) - rhs(0, y - width * step, params)
            ) / (2 * width)

        columns.append((4 * central(h / 2) - central(h)) / 3)
    return np.array(columns).T


def assert_same_eigenvalues(found, expected, atol):
    """Match two multisets of complex numbers one to one, greedily."""
    found = list(found)
    assert len(found) == len(expected)
    for value in expected:
        distances = np.abs(np.array(found) - value)
        best = int(np.argmin(distances))
        assert distances[best] <= atol, (value, found)
        found.pop(best)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_jacobian_matches_finite_differences(d):
    rng = np.random.default_rng(d)
    for seed in range(3):
        params = random_point(d, seed=10 * d + seed)
        y = rng.uniform(-1, 1, state_size(d))
        np.testing.assert_allclose(
            jacobian(y, params), richardson_jacobian(y, params), rtol=0, atol=1e-9
        )


def test_jacobian_on_the_line_is_the_one_of_section_6():
    params = Parameters.single(
        lam=1.3, lam_gen=0.8, noise_true=0.9, noise_gen=0.6, tau=0.4, tau_gen=0.7
    )
    lam, lam_gen, tau, tau_gen = 1.3, 0.8, 0.4, 0.7
    a = tau**2 * (0.9**2 + 0.6**2) / 2
    for P in (-0.6, 0.0, 0.35, 0.9):
        J = constrained_jacobian(pack([0.0], [[P]], [0.0], [[1.0]]), params)
        # Coordinates (q, P, r): the (q, r) block is J(P), P is neutral.
        block = J[np.ix_([0, 2], [0, 2])]
        expected = [
            [tau * lam - a, -tau * lam_gen * P],
            [tau * lam * P, tau_gen * lam_gen - tau * lam_gen - a],
        ]
        np.testing.assert_allclose(block, expected, rtol=0, atol=1e-14)
        assert (J[:, 1] == 0).all() and (J[1] == 0).all()

        # The lead's analytic boundaries read off the same matrix.
        np.testing.assert_allclose(np.trace(block), trace_on_line(params), atol=1e-14)
        det = failure_margin(params) * (tau_gen * lam_gen - tau * lam_gen - a) + (
            tau**2 * lam * lam_gen * P**2
        )
        np.testing.assert_allclose(np.linalg.det(block), det, atol=1e-14)


@pytest.mark.parametrize("d", [2, 3])
def test_constrained_jacobian_drops_exactly_the_conserved_directions(d):
    # On the set diag(S) = 1, S symmetric, the packed Jacobian's spectrum is
    # the constrained one plus -2 g_j r_j (a change of S_jj, which the flow
    # never makes) plus d (d - 1) / 2 zeros (S_jk - S_kj is conserved).
    rng = np.random.default_rng(7 + d)
    params = random_point(d, seed=d)
    for _ in range(3):
        y = state_on_constraint_set(d, rng)
        r = y[d + d * d : 2 * d + d * d]
        g = params.tau_gen[0] * params.lam_gen[0] * r
        expected = np.concatenate(
            [
                np.linalg.eigvals(constrained_jacobian(y, params)),
                -2 * g * r,
                np.zeros(d * (d - 1) // 2),
            ]
        )
        assert_same_eigenvalues(np.linalg.eigvals(jacobian(y, params)), expected, 1e-8)


def test_stability_on_the_line_follows_the_analytic_eigenvalues():
    tau, tau_gen = 0.5, 0.5
    for noise, P in [(1.8, 0.1), (1.2, 0.6), (0.8, 0.6), (0.3, 0.9)]:
        params = Parameters.single(noise=noise, tau=tau, tau_gen=tau_gen)
        trace = trace_on_line(params)[0]
        det = failure_margin(params)[0] * (tau_gen - tau - params.decay_rate()[0]) + (
            tau**2 * P**2
        )
        roots = np.roots([1.0, -trace, det])
        result = end_state_stability(pack([0.0], [[P]], [0.0], [[1.0]]), params)
        # The neutral direction along the line adds a zero eigenvalue.
        growth = max(roots.real.max(), 0.0)
        assert result.growth == pytest.approx(growth, abs=1e-12)
        assert result.stable == (roots.real.max() <= 0)
        assert result.neutral >= 1  # the direction along the line


def test_every_direction_along_the_line_is_neutral_for_d_2():
    params = Parameters.single(d=2, lam=[2.0, 1.0], noise=2.5)
    P = [[0.3, -0.1], [0.2, 0.5]]
    y = pack(np.zeros(2), P, np.zeros(2), [[1, 0.2], [0.2, 1]])
    result = end_state_stability(y, params)
    assert result.stable
    assert result.neutral == 4 + 1  # the entries of P and S_12


def test_end_states_are_the_last_samples_packed():
    params = Parameters.stack([random_point(2, seed=s) for s in range(3)])
    traj = ode.solve(params, np.linspace(0, 50, 11))
    for b in range(3):
        expected = pack(
            traj.q[b, 0, -1], traj.P[b, 0, -1], traj.r[b, 0, -1], traj.S[b, 0, -1]
        )
        np.testing.assert_array_equal(end_states(traj)[b, 0], expected)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_batched_jacobians_and_growth_equal_the_one_state_functions(d, monkeypatch):
    # Many states, each with the parameters of its own point, in the
    # shuffled order the classifier asks for them; small batches, so the
    # growth is found over several.
    monkeypatch.setattr(stability, "_BATCH_ENTRIES", 1000)
    rng = np.random.default_rng(100 + d)
    params = Parameters.stack([random_point(d, seed=s) for s in range(5)])
    index = rng.permutation(np.repeat(np.arange(5), 3))
    y = np.array([state_on_constraint_set(d, rng) for _ in index])

    many = jacobians(y, params, index)
    growth = end_state_growth(y, params, index)
    for k, b in enumerate(index):
        one = params.point(b)
        np.testing.assert_allclose(many[k], jacobian(y[k], one), rtol=0, atol=1e-14)
        expected = end_state_stability(y[k], one).growth
        assert growth[k] == pytest.approx(expected, abs=1e-14)
