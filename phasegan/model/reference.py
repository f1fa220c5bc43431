"""The ODE integrated the plain way: scipy's LSODA, one point at a time.

This is what a user would write without `phasegan`. It is slow, and kept for
two reasons: it is the oracle the fast kernel is tested against, and the
baseline the benchmarks measure it by.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from phasegan.model.equations import initial_state, rhs, unpack
from phasegan.model.parameters import Parameters
from phasegan.model.trajectories import Status, Trajectories


def solve_reference(
    params: Parameters,
    times: np.ndarray,
    *,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    method: str = "LSODA",
) -> Trajectories:
    """Integrate every point of the block with `scipy.integrate.solve_ivp`.

    Parameters
    ----------
    params : Parameters
        ``B`` points.
    times : ndarray, shape (T,)
        Increasing sample times, starting at 0.
    """
    times = np.asarray(times, dtype=np.float64)
    d = params.d
    out = Trajectories.empty(params.size, 1, times, d)
    y0 = initial_state(params)

    for b in range(params.size):
        with np.errstate(all="ignore"):
            sol = solve_ivp(
                rhs,
                (times[0], times[-1]),
                y0[b],
                method=method,
                t_eval=times,
                rtol=rtol,
                atol=atol,
                args=(params, b),
            )
        y = np.full((len(times), y0.shape[1]), np.nan)
        y[: sol.y.shape[1]] = sol.y.T
        q, P, r, S = unpack(y, d)
        out.q[b, 0], out.P[b, 0], out.r[b, 0], out.S[b, 0] = q, P, r, S
        if not sol.success or not np.isfinite(y).all():
            out.fail(b, 0, Status.NONFINITE, f"solve_ivp: {sol.message}")
    return out
