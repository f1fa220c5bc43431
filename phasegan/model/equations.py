"""The macroscopic ODE of MODEL.md section 3, written once in plain numpy.

This is the readable reference: the fast kernel in `phasegan.model.ode`, the
Jacobian in `phasegan.model.stability` and the tests are all checked against
it. A state is packed into one flat vector of length ``2d + 2d^2``:

    y = [q (d), P (d x d, row-major), r (d), S (d x d, row-major)]
"""

from __future__ import annotations

import numpy as np

from phasegan.model.parameters import Parameters


def state_size(d: int) -> int:
    """Length of a packed state for ``d`` features."""
    return 2 * d + 2 * d * d


def pack(q, P, r, S) -> np.ndarray:
    """Pack ``q (d), P (d, d), r (d), S (d, d)`` into one flat state."""
    return np.concatenate([np.ravel(q), np.ravel(P), np.ravel(r), np.ravel(S)])


def unpack(y: np.ndarray, d: int):
    """Inverse of `pack`; works on ``y`` of shape (..., 2d + 2d^2)."""
    y = np.asarray(y)
    lead = y.shape[:-1]
    q = y[..., :d]
    P = y[..., d : d + d * d].reshape(*lead, d, d)
    r = y[..., d + d * d : 2 * d + d * d]
    S = y[..., 2 * d + d * d :].reshape(*lead, d, d)
    return q, P, r, S


def initial_state(params: Parameters) -> np.ndarray:
    """Default start of MODEL.md section 3, shape (B, 2d + 2d^2).

    ``q = q0 (1..1)``, ``P = P0 I``, ``r = q0 P0 (1..1)``, ``S = I``.
    """
    d, B = params.d, params.size
    eye = np.eye(d)
    q = params.q0[:, None] * np.ones((B, d))
    P = params.P0[:, None, None] * eye
    r = (params.q0 * params.P0)[:, None] * np.ones((B, d))
    S = np.broadcast_to(eye, (B, d, d))
    return np.concatenate(
        [q, P.reshape(B, -1), r, S.reshape(B, -1)], axis=1
    )


def rhs(t: float, y: np.ndarray, params: Parameters, index: int = 0) -> np.ndarray:
    """Time derivative of one packed state at point ``index`` of the block.

    Parameters
    ----------
    t : float
        Time; unused, the ODE is autonomous (kept for `solve_ivp`).
    y : ndarray, shape (2d + 2d^2,)
    params : Parameters
    index : int
        Which point of the block supplies the parameters.
    """
    d = params.d
    q, P, r, S = unpack(y, d)
    L = params.lam[index]
    G = params.lam_gen[index]
    eta_T = params.noise_true[index]
    eta_G = params.noise_gen[index]
    tau = params.tau[index]
    tau_gen = params.tau_gen[index]

    # Section 3: the discriminator's contrast c, the noise power N, the drive g.
    c = q @ (L * q) - r @ (G * r)
    N = eta_T * (q @ (L * q) + eta_T) + eta_G * (r @ (G * r) + eta_G)
    g = tau_gen * G * r
    damping = c + tau * N / 2

    dq = tau * (L * q - P @ (G * r)) - tau * damping * q
    dP = g[None, :] * (q[:, None] - r[None, :] * P)
    dr = (
        tau * (P.T @ (L * q) - S @ (G * r))
        - tau * damping * r
        + g * (1 - r**2)
    )
    dS = g[None, :] * (r[:, None] - r[None, :] * S)
    dS = dS + dS.T
    return pack(dq, dP, dr, dS)
