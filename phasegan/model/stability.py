"""Stability of the ODE's fixed points and the analytic phase boundaries
(MODEL.md section 6).
"""

from __future__ import annotations

import numpy as np

from phasegan.model.parameters import Parameters


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
