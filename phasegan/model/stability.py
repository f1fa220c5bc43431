"""Stability of the ODE's fixed points and the analytic phase boundaries
(MODEL.md section 6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phasegan.model.equations import state_size, unpack
from phasegan.model.parameters import Parameters
from phasegan.model.trajectories import Trajectories


def trace_on_line(params: Parameters) -> np.ndarray:
    """``trace J`` on the line ``q = r = 0`` for ``d = 1``, shape (B,).

    ``trace J = tau (lambda - lambda~) + tau_gen lambda~ - 2a``; where it is
    positive no point of the line is stable and training oscillates. Its zero
    level is the analytic oscillation boundary.
    """
    lam, lam_gen = _single_feature(params)
    return (
        params.tau * (lam - lam_gen)
        + params.tau_gen * lam_gen
        - 2 * params.decay_rate()
    )


def failure_margin(params: Parameters) -> np.ndarray:
    """``tau lambda - a`` for ``d = 1``, shape (B,).

    Negative where the noise is too strong for the discriminator to lock onto
    the feature (failure). Its zero level is the analytic failure boundary.
    """
    lam, _ = _single_feature(params)
    return params.tau * lam - params.decay_rate()


def _single_feature(params: Parameters):
    if params.d != 1:
        raise ValueError(
            f"the analytic boundaries of MODEL.md section 6 are for d = 1, "
            f"not d = {params.d}; use the numerical Jacobian instead"
        )
    return params.lam[:, 0], params.lam_gen[:, 0]


# --------------------------------------------------------------------------
# The Jacobian of the ODE at any state, and the stability of an end state.
# --------------------------------------------------------------------------


def jacobian(y: np.ndarray, params: Parameters, index: int = 0) -> np.ndarray:
    """Analytic Jacobian of `equations.rhs` at the packed state ``y``.

    Exact up to rounding (the right-hand side is a cubic polynomial); the
    tests check it against central differences.

    Parameters
    ----------
    y : ndarray, shape (m,), m = 2d + 2d^2
        A packed state (`equations.pack`).
    params : Parameters
    index : int
        Which point of the block supplies the parameters.

    Returns
    -------
    ndarray, shape (m, m)
        ``J[a, b] = d rhs_a / d y_b`` in packed coordinates, where ``S_jk``
        and ``S_kj`` count as two coordinates.
    """
    y = np.asarray(y, dtype=np.float64)
    return jacobians(y[None], params, np.array([index]))[0]


def jacobians(y: np.ndarray, params: Parameters, index) -> np.ndarray:
    """`jacobian` of ``K`` states at once, each with its own point's parameters.

    Parameters
    ----------
    y : ndarray, shape (K, m)
        Packed states.
    params : Parameters
    index : ndarray of int, shape (K,)
        The point of the block that supplies the parameters of each state.

    Returns
    -------
    ndarray, shape (K, m, m)
    """
    d = params.d
    y = np.asarray(y, dtype=np.float64)
    index = np.asarray(index, dtype=np.intp)
    q, P, r, S = unpack(y, d)
    L, G = params.lam[index], params.lam_gen[index]
    eta_T, eta_G = params.noise_true[index], params.noise_gen[index]
    tau, tau_gen = params.tau[index], params.tau_gen[index]
    iq, iP, ir, iS = _offsets(d)
    K, m = y.shape
    k = np.arange(d)
    tau_1, tau_2 = tau[:, None], tau[:, None, None]

    # Section 3's c, N, g and the damping c + tau N / 2 with its gradient.
    Lq, Gr = L * q, G * r
    qLq, rGr = (q * Lq).sum(axis=-1), (r * Gr).sum(axis=-1)
    c = qLq - rGr
    N = eta_T * (qLq + eta_T) + eta_G * (rGr + eta_G)
    g = tau_gen[:, None] * Gr
    damping = c + tau * N / 2
    damping_dq = (2 + tau * eta_T)[:, None] * Lq
    damping_dr = (tau * eta_G - 2)[:, None] * Gr

    J = np.zeros((K, m, m))
    rows_q = slice(iq, iq + d)
    rows_r = slice(ir, ir + d)

    # dq_i = tau (L_i q_i - sum_k P_ik G_k r_k) - tau damping q_i
    J[:, rows_q, rows_q] = tau_2 * _diagonal(L - damping[:, None]) - tau_2 * _outer(
        q, damping_dq
    )
    J[:, rows_q, rows_r] = -tau_2 * P * G[:, None, :] - tau_2 * _outer(q, damping_dr)
    for i in range(d):
        J[:, iq + i, iP + i * d + k] = -tau_1 * Gr

    # dP_ij = g_j (q_i - r_j P_ij)
    for i in range(d):
        for j in range(d):
            row = iP + i * d + j
            J[:, row, iq + i] = g[:, j]
            J[:, row, row] = -g[:, j] * r[:, j]
            J[:, row, ir + j] = tau_gen * G[:, j] * (q[:, i] - 2 * r[:, j] * P[:, i, j])

    # dr_j = tau (sum_i P_ij L_i q_i - sum_k S_jk G_k r_k) - tau damping r_j
    #        + g_j (1 - r_j^2)
    J[:, rows_r, rows_q] = tau_2 * P.transpose(0, 2, 1) * L[:, None, :] - tau_2 * (
        _outer(r, damping_dq)
    )
    J[:, rows_r, rows_r] = (
        -tau_2 * S * G[:, None, :]
        - tau_2 * _outer(r, damping_dr)
        + _diagonal((-tau * damping)[:, None] + tau_gen[:, None] * G * (1 - 3 * r**2))
    )
    for j in range(d):
        J[:, ir + j, iP + k * d + j] = tau_1 * Lq
        J[:, ir + j, iS + j * d + k] = -tau_1 * Gr

    # dS_jk = g_k (r_j - r_k S_jk) + g_j (r_k - r_j S_kj); S_jk and S_kj are
    # separate coordinates, so the two terms differentiate apart.
    for j in range(d):
        for i in range(d):  # i plays k of the formula
            row = iS + j * d + i
            J[:, row, ir + i] += (
                tau_gen * G[:, i] * (r[:, j] - r[:, i] * S[:, j, i])
                - g[:, i] * S[:, j, i]
            )
            J[:, row, ir + j] += g[:, i]
            J[:, row, ir + j] += (
                tau_gen * G[:, j] * (r[:, i] - r[:, j] * S[:, i, j])
                - g[:, j] * S[:, i, j]
            )
            J[:, row, ir + i] += g[:, j]
            J[:, row, iS + j * d + i] += -g[:, i] * r[:, i]
            J[:, row, iS + i * d + j] += -g[:, j] * r[:, j]
    return J


def _outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Outer product of each row pair: (K, d), (K, d) -> (K, d, d)."""
    return a[:, :, None] * b[:, None, :]


def _diagonal(v: np.ndarray) -> np.ndarray:
    """Diagonal matrices from rows: (K, d) -> (K, d, d), zero off the diagonal."""
    K, d = v.shape
    out = np.zeros((K, d, d))
    out[:, np.arange(d), np.arange(d)] = v
    return out


def constrained_jacobian(
    y: np.ndarray, params: Parameters, index: int = 0
) -> np.ndarray:
    """The Jacobian on the set the ODE actually moves in.

    ``diag(S) = 1`` is conserved and ``S`` stays symmetric, so in packed
    coordinates the Jacobian carries directions that no trajectory can take:
    a change of ``S_jj`` (its eigenvalue ``-2 g_j r_j`` says nothing about
    training) and the antisymmetric part of ``S`` (exactly conserved, a zero
    eigenvalue). This drops them: the coordinates kept are ``q``, ``P``,
    ``r`` and ``S_jk`` for ``j < k``, with a change of ``S_jk`` applied to
    ``S_kj`` too.

    Returns
    -------
    ndarray, shape (m', m'), m' = 2d + d^2 + d (d - 1) / 2
    """
    basis, rows = _manifold_coordinates(params.d)
    return jacobian(y, params, index)[rows] @ basis


@dataclass(frozen=True)
class EndStateStability:
    """Whether a state is a stable resting point of the ODE.

    Attributes
    ----------
    stable : bool
        No eigenvalue of `constrained_jacobian` has a real part above
        ``tol``.
    growth : float
        The largest real part of those eigenvalues (a rate, 1 / time).
    neutral : int
        How many eigenvalues have ``|real part| <= tol``; on the line
        ``q = r = 0`` the ``d^2`` directions of ``P`` and the ``d (d - 1) / 2``
        of ``S`` are neutral by construction (every point of the line is a
        fixed point), so there are at least that many there.
    eigenvalues : ndarray of complex, shape (m',)
    """

    stable: bool
    growth: float
    neutral: int
    eigenvalues: np.ndarray


def end_state_stability(
    y: np.ndarray, params: Parameters, index: int = 0, *, tol: float = 1e-6
) -> EndStateStability:
    """Is the packed state ``y`` (shape (m,)) stable, up to ``tol``?

    Zero eigenvalues (the neutral directions along the line of fixed points
    ``q = r = 0``) count as stable. ``y`` should be close to a fixed point:
    at a state still moving by ``delta`` the eigenvalues are off by about
    ``delta`` times the size of the second derivatives of the right-hand side
    (of order ``tau + tau_gen + tau^2 eta^2``), so choose ``tol`` above that.
    """
    eigenvalues = np.linalg.eigvals(constrained_jacobian(y, params, index))
    growth = float(eigenvalues.real.max())
    neutral = int(np.sum(np.abs(eigenvalues.real) <= tol))
    return EndStateStability(growth <= tol, growth, neutral, eigenvalues)


def end_state_growth(y: np.ndarray, params: Parameters, index) -> np.ndarray:
    """`end_state_stability`'s ``growth`` for ``K`` states at once.

    The Jacobians are built and their eigenvalues found a batch at a time,
    so a block of thousands of points costs a few vectorized calls rather
    than a Python loop, and memory stays bounded for large ``d``.

    Parameters
    ----------
    y : ndarray, shape (K, m)
        Packed states.
    params : Parameters
    index : ndarray of int, shape (K,)
        The point of the block that supplies the parameters of each state.

    Returns
    -------
    ndarray, shape (K,)
        The largest real part of the eigenvalues of `constrained_jacobian`.
    """
    y = np.asarray(y, dtype=np.float64)
    index = np.asarray(index, dtype=np.intp)
    basis, rows = _manifold_coordinates(params.d)
    batch = max(1, _BATCH_ENTRIES // state_size(params.d) ** 2)
    growth = np.empty(len(y))
    for start in range(0, len(y), batch):
        part = slice(start, start + batch)
        J = jacobians(y[part], params, index[part])[:, rows] @ basis
        growth[part] = np.linalg.eigvals(J).real.max(axis=-1)
    return growth


#: Jacobian entries built at once by `end_state_growth` (16 MB of float64).
_BATCH_ENTRIES = 2**21


def end_states(traj: Trajectories) -> np.ndarray:
    """The last sample of every run, packed: shape (B, R, 2d + 2d^2)."""
    B, R = traj.points, traj.replicas
    d = traj.d
    return np.concatenate(
        [
            traj.q[:, :, -1],
            traj.P[:, :, -1].reshape(B, R, d * d),
            traj.r[:, :, -1],
            traj.S[:, :, -1].reshape(B, R, d * d),
        ],
        axis=-1,
    )


def _offsets(d: int):
    return 0, d, d + d * d, 2 * d + d * d


def _manifold_coordinates(d: int):
    """Embedding of the kept coordinates into packed ones, and their rows."""
    _, _, _, iS = _offsets(d)
    m = state_size(d)
    rows = list(range(iS))
    columns = []
    for a in range(iS):
        column = np.zeros(m)
        column[a] = 1.0
        columns.append(column)
    for j in range(d):
        for k in range(j + 1, d):
            column = np.zeros(m)
            column[iS + j * d + k] = column[iS + k * d + j] = 1.0
            columns.append(column)
            rows.append(iS + j * d + k)
    return np.array(columns).T, np.array(rows, dtype=int)
