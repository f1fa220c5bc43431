"""The limiting law of one coordinate of the weights (MODEL.md section 4).

For a coordinate ``i``, ``X = sqrt(n) (U_i., V_i., w_i)`` converges in law to
the solution of the McKean-Vlasov SDE

    dW   = [tau (U.Lq - V.Gr - c W) - tau^2/2 N W] dt + tau sqrt(N) dB_t
    dV_j = g_j (W - r_j V_j) dt
    dU   = 0

whose coefficients ``q, r, c, N, g`` are the ODE's at time ``t``. `sample`
draws from that law; `simulated` returns the same coordinates read off a full
simulation, so the two can be compared (the tests do, with two-sample tests).

Notes
-----
Given the ODE, the SDE is linear with additive noise and starts from a
Gaussian (``X_0 ~ N(0, Gram(0))``, the Gram matrix of ``(U, V, w)``), so its
law at one time is Gaussian with covariance ``Gram(t)``: ``W`` alone is
``N(0, 1)`` at every ``t``. What the SDE adds over the ODE is the joint law
at several times, for example that of the increment ``W(t_2) - W(t_1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from phasegan.errors import InputError, PhaseganError
from phasegan.model import ode
from phasegan.model.methods import RunOptions, replica_generator
from phasegan.model.parameters import Parameters
from phasegan.model.simulate import Run, checked_times, point_ids
from phasegan.model.trajectories import Status

#: Default Euler-Maruyama step. The coefficients vary on time scales of
#: order 1 and the scheme's weak error is O(dt), so moments are off by about
#: 1e-3: far below what a two-sample test on 10^4 samples resolves (~1e-2).
DEFAULT_DT = 1e-3


@dataclass
class Coordinates:
    """Samples of ``X = sqrt(n) (U_i., V_i., w_i)`` at ``T`` times.

    Attributes
    ----------
    times : ndarray, shape (T,)
        The times actually sampled (rounded to the step grid).
    U : ndarray, shape (M, d)
        ``sqrt(n) U_i.``, constant in time.
    V : ndarray, shape (T, M, d)
        ``sqrt(n) V_i.``.
    W : ndarray, shape (T, M)
        ``sqrt(n) w_i``.
    """

    times: np.ndarray
    U: np.ndarray
    V: np.ndarray
    W: np.ndarray

    @property
    def samples(self) -> int:
        return self.W.shape[1]


def sample(
    params: Parameters,
    times,
    samples: int,
    *,
    seed: int = 0,
    dt: float = DEFAULT_DT,
    options: RunOptions = RunOptions(),
) -> Coordinates:
    """Independent draws from the SDE's law at ``times``, by Euler-Maruyama.

    Parameters
    ----------
    params : Parameters
        One point (a block of size 1); ``n`` is not used.
    times : ndarray, shape (T,)
        Non-decreasing times ``>= 0``, each rounded to the nearest multiple
        of ``dt``.
    samples : int
        Number ``M`` of independent coordinates.
    seed : int
        Root of the random stream (``replica_generator(seed, 0, 0)``).
    dt : float
        Euler-Maruyama step; see `DEFAULT_DT`.
    options : RunOptions
        Tolerances of the ODE that supplies the coefficients.

    Returns
    -------
    Coordinates
        With ``M = samples``.

    Raises
    ------
    PhaseganError
        The ODE failed (non-finite or out of budget) before the last time.
    """
    return _sample(params, times, samples, seed=seed, dt=dt, options=options)


def _sample(params, times, samples, *, seed, dt, options, noise_factor=1.0):
    """`sample`, with the noise of ``W`` multiplied by ``noise_factor``.

    A factor other than 1 gives a deliberately wrong law; the tests use it to
    show that the comparison with the simulation can fail.
    """
    params = _one_point(params.validated())
    times = checked_times(times)
    if not dt > 0:
        raise InputError("dt", "must be > 0", dt)
    grid_index = np.rint(times / dt).astype(np.int64)
    steps = int(grid_index[-1]) if len(times) else 0
    grid = dt * np.arange(steps + 1)
    q, r = _ode_overlaps(params, grid, options)

    d = params.d
    L, G = params.lam[0], params.lam_gen[0]
    eta_T, eta_G = params.noise_true[0], params.noise_gen[0]
    tau, tau_gen = params.tau[0], params.tau_gen[0]

    rng = replica_generator(seed, 0, 0)
    U, V, W = _initial(params, rng, samples)
    out_V = np.empty((len(times), samples, d))
    out_W = np.empty((len(times), samples))

    sample_at = 0
    for k in range(steps + 1):
        while sample_at < len(times) and grid_index[sample_at] == k:
            out_V[sample_at] = V
            out_W[sample_at] = W
            sample_at += 1
        if k == steps:
            break

        # Section 3's coefficients at the left end of the step.
        qLq = q[k] @ (L * q[k])
        rGr = r[k] @ (G * r[k])
        c = qLq - rGr
        N = eta_T * (qLq + eta_T) + eta_G * (rGr + eta_G)
        g = tau_gen * G * r[k]

        drift_W = tau * (U @ (L * q[k]) - V @ (G * r[k]) - c * W) - tau**2 / 2 * N * W
        drift_V = g * (W[:, None] - r[k] * V)
        noise = noise_factor * tau * math.sqrt(N * dt)
        W = W + drift_W * dt + noise * rng.standard_normal(samples)
        V = V + drift_V * dt

    return Coordinates(times=grid[grid_index], U=U, V=out_V, W=out_W)


def simulated(
    params: Parameters, times, options: RunOptions = RunOptions()
) -> Coordinates:
    """The coordinates ``sqrt(n) (U_i., V_i., w_i)`` of full simulations.

    Runs `phasegan.model.simulate` for one point, ``options.replicas`` times
    with the same random streams as `phasegan.model.simulate.solve`, and
    pools the ``n`` coordinates of every run.

    Parameters
    ----------
    params : Parameters
        One point (a block of size 1).
    times : ndarray, shape (T,)
        Sample times; ``t`` is read after step ``round(t n)``.
    options : RunOptions
        ``replicas``, ``root_seed`` and ``point_ids``.

    Returns
    -------
    Coordinates
        With ``M = replicas * n``; rows ``j n`` to ``(j + 1) n - 1`` come
        from replica ``j``. Coordinates of one run are exchangeable but not
        independent (``sum_i w_i^2 = 1`` exactly, for one). Memory:
        ``replicas * T * n * (d + 1)`` floats.

    Raises
    ------
    PhaseganError
        A run became non-finite.
    """
    params = _one_point(params.validated(simulation=True))
    times = checked_times(times)
    point_id = point_ids(options, 1)[0]
    d, n, T = params.d, int(params.n[0]), len(times)
    root_n = math.sqrt(n)

    U, V, W = [], [], []
    for replica in range(options.replicas):
        rng = replica_generator(options.root_seed, point_id, replica)
        run = Run.start(params, 0, rng)
        U.append(root_n * run.Ut.T)
        q, r = np.empty((T, d)), np.empty((T, d))
        P, S = np.empty((T, d, d)), np.empty((T, d, d))
        V_copies, w_copies = np.empty((T, n, d)), np.empty((T, n))
        if run.record(times, q, P, r, S, V_copies, w_copies) < T:
            raise PhaseganError(
                f"simulation replica {replica} became non-finite; "
                f"reduce tau or the noise"
            )
        V.append(root_n * V_copies)
        W.append(root_n * w_copies)

    steps = np.rint(times * n)
    return Coordinates(
        times=steps / n,
        U=np.concatenate(U),
        V=np.concatenate(V, axis=1),
        W=np.concatenate(W, axis=1),
    )


def _initial(params, rng, samples):
    """Draws of ``X_0``: the limit of ``sqrt(n)`` times a Haar frame's rows.

    A row of ``sqrt(n) (U, z_0..z_d)`` tends to ``N(0, I_{2d+1})``; section
    3's start ``w = q0 sum u_i + sqrt(1 - d q0^2) z_0``,
    ``v_j = P0 u_j + sqrt(1 - P0^2) z_j`` then gives ``(U, V, W)``.
    """
    d = params.d
    q0, P0 = params.q0[0], params.P0[0]
    gauss = rng.standard_normal((samples, 2 * d + 1))
    U = gauss[:, :d]
    W = q0 * U.sum(axis=1) + math.sqrt(1 - d * q0**2) * gauss[:, d]
    V = P0 * U + math.sqrt(1 - P0**2) * gauss[:, d + 1 :]
    return U, V, W


def _ode_overlaps(params, grid, options):
    """``q, r`` of the ODE on ``grid``, shapes (K, d); raises if it failed."""
    traj = ode.solve(params, grid, options)
    if traj.status[0, 0] != Status.OK:
        raise PhaseganError(f"the ODE failed: {traj.message[0, 0]}")
    return traj.q[0, 0], traj.r[0, 0]


def _one_point(params: Parameters) -> Parameters:
    if params.size != 1:
        raise InputError(
            "params", "must hold one point", params.size, "use params.point(i)"
        )
    return params
