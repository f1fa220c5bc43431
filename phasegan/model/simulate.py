"""The full microscopic simulation: online SGD in dimension ``n`` (MODEL.md section 2).

Each run holds the true features ``U`` (n x d), the generator ``V`` (n x d) and
the discriminator ``w`` (n), and takes ``t n`` steps of one real and one fake
sample each. It records the order parameters ``q, P, r, S`` of section 3 at the
requested times; a step costs ``2n + 2d`` normal numbers and ``O(n d)``
arithmetic.

The compiled kernel `_sgd` does the steps; the functions around it only build
initial states, hand out random streams and fill a `Trajectories`.

Every run starts at ``t = 0`` from the default state of section 3, whatever
the first sample time. The same seeds give identical arrays on one machine;
the kernel lets LLVM reorder its sums (`FASTMATH`), so a CPU with other
vector units may differ in the last bits, and those differences grow like
any perturbation of the dynamics.

Coordinates of ``U``. The law of the order parameters does not depend on how
``U`` sits in the ambient space (the update is invariant under rotations), but
the coordinates ``sqrt(n) (U_i., V_i., w_i)`` studied in section 4 do. Each run
draws ``(U, z_0, ..., z_d)`` uniformly (Haar) among orthonormal ``2d + 1``-frames,
so ``sqrt(n) U_i.`` is asymptotically ``N(0, I_d)`` and independent across
coordinates: the initial law the SDE of `phasegan.model.sde` starts from. Taking
``U`` along the first ``d`` axes would give the same ``q, P, r, S`` but
coordinates with no limiting law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from phasegan.errors import InputError
from phasegan.model.methods import RunOptions, replica_generator
from phasegan.model.parameters import Parameters
from phasegan.model.trajectories import Status, Trajectories


def solve(
    params: Parameters, times: np.ndarray, options: RunOptions = RunOptions()
) -> Trajectories:
    """Simulate every point of ``params``, ``options.replicas`` runs each.

    Parameters
    ----------
    params : Parameters
        ``B`` points; ``params.n`` is the ambient dimension of each, at least
        ``2d + 3`` (the rule shared with `phasegan.model.reduced`).
    times : ndarray, shape (T,)
        Non-decreasing sample times ``>= 0``. A time ``t`` is recorded after
        step ``round(t n)``, so times closer than ``1/n`` may share a step.
    options : RunOptions
        ``replicas``, ``root_seed`` and ``point_ids`` set the random streams:
        run ``(b, j)`` draws from ``replica_generator(root_seed,
        point_ids[b], j)`` and nothing else, so a point's result does not
        depend on the other points of its block.

    Returns
    -------
    Trajectories
        ``q, r`` of shape (B, R, T, d), ``P, S`` of shape (B, R, T, d, d).

    Raises
    ------
    ParameterError
        A parameter breaks a rule of MODEL.md, or ``n < 2d + 3``.
    InputError
        ``times`` is not a non-decreasing list of finite times ``>= 0``.
    """
    return run_replicas(params, times, options, Run.start)


def run_replicas(params, times, options: RunOptions, start) -> Trajectories:
    """Every replica of every point of a simulation method, one run at a time.

    ``start(params, b, rng)`` builds the run of point ``b`` from its random
    stream; the run's ``record(times, q, P, r, S)`` fills the given rows and
    returns how many samples it recorded before the state became non-finite.
    Shared by the full and the reduced simulation, so both draw their streams
    and report failures the same way.
    """
    params = params.validated(simulation=True)
    times = checked_times(times)
    ids = point_ids(options, params.size)
    out = Trajectories.empty(params.size, options.replicas, times, params.d)

    for b in range(params.size):
        for replica in range(options.replicas):
            rng = replica_generator(options.root_seed, ids[b], replica)
            run = start(params, b, rng)
            recorded = run.record(
                times,
                out.q[b, replica],
                out.P[b, replica],
                out.r[b, replica],
                out.S[b, replica],
            )
            if recorded < len(times):
                out.fail(
                    b, replica, Status.NONFINITE, nonfinite_message(times, recorded)
                )
    return out


@dataclass
class Run:
    """One simulation run: the microscopic state and its random stream.

    Attributes
    ----------
    Ut, Vt : ndarray, shape (d, n)
        The transposes of MODEL.md's ``U`` and ``V``: one column per row, so
        that the kernel walks each column contiguously.
    w : ndarray, shape (n,)
        The discriminator.
    rng : numpy.random.Generator
        The run's only source of randomness.
    rates : ndarray, shape (4,)
        ``tau, tau_gen, sqrt(eta_T), sqrt(eta_G)``, in the order the kernel
        reads them.
    root_lam, root_lam_gen : ndarray, shape (d,)
        ``sqrt(lambda)`` and ``sqrt(lambda~)``: scales of ``c`` and ``c~``.
    """

    Ut: np.ndarray
    Vt: np.ndarray
    w: np.ndarray
    rng: np.random.Generator
    rates: np.ndarray
    root_lam: np.ndarray
    root_lam_gen: np.ndarray

    @classmethod
    def start(cls, params: Parameters, index: int, rng) -> Run:
        """The default initial state of MODEL.md section 3 for point ``index``."""
        d, n = params.d, int(params.n[index])
        q0, P0 = params.q0[index], params.P0[index]

        # A Haar-random orthonormal frame (U, z_0..z_d): QR of a Gaussian
        # matrix, signs fixed so that R has a positive diagonal.
        gauss = rng.standard_normal((n, 2 * d + 1))
        frame, tri = np.linalg.qr(gauss)
        frame *= np.where(np.diag(tri) < 0, -1.0, 1.0)
        U = frame[:, :d]
        z = frame[:, d:]

        w = q0 * U.sum(axis=1) + math.sqrt(1 - d * q0**2) * z[:, 0]
        V = P0 * U + math.sqrt(1 - P0**2) * z[:, 1:]
        rates = np.array(
            [
                params.tau[index],
                params.tau_gen[index],
                math.sqrt(params.noise_true[index]),
                math.sqrt(params.noise_gen[index]),
            ]
        )
        return cls(
            Ut=np.ascontiguousarray(U.T),
            Vt=np.ascontiguousarray(V.T),
            w=np.ascontiguousarray(w),
            rng=rng,
            rates=rates,
            root_lam=np.sqrt(params.lam[index]),
            root_lam_gen=np.sqrt(params.lam_gen[index]),
        )

    @property
    def n(self) -> int:
        return self.w.shape[0]

    def record(self, times, q, P, r, S, V_copies=None, w_copies=None) -> int:
        """Take the steps up to the last sample time, recording in place.

        Call once, on a run fresh from `start`: step 0 is the current state.

        Parameters
        ----------
        times : ndarray, shape (T,)
            Checked sample times (see `checked_times`).
        q, r : ndarray, shape (T, d)
        P, S : ndarray, shape (T, d, d)
            Filled with the order parameters at each sample.
        V_copies : ndarray, shape (T, n, d), optional
        w_copies : ndarray, shape (T, n), optional
            If given, filled with copies of ``V`` and ``w`` at each sample.

        Returns
        -------
        int
            Number of samples recorded; less than ``T`` if the state became
            non-finite (the later samples are left untouched).
        """
        d = self.Ut.shape[0]
        if V_copies is None:
            V_copies = np.empty((0, self.n, d))
        if w_copies is None:
            w_copies = np.empty((0, self.n))
        return _sgd(
            self.Ut,
            self.Vt,
            self.w,
            self.rates,
            self.root_lam,
            self.root_lam_gen,
            sample_steps(times, self.n),
            self.rng,
            q,
            P,
            r,
            S,
            V_copies,
            w_copies,
        )


def checked_times(times) -> np.ndarray:
    """``times`` as float64, or an `InputError` saying what is wrong with it."""
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1:
        raise InputError("times", "must be one-dimensional", times.shape)
    if not np.all(np.isfinite(times)) or np.any(times < 0):
        raise InputError("times", "must be finite and >= 0", times)
    if np.any(np.diff(times) < 0):
        raise InputError("times", "must be non-decreasing", times)
    return times


def sample_steps(times: np.ndarray, n: int) -> np.ndarray:
    """Step after which each time is recorded: the nearest ``k = round(t n)``."""
    return np.rint(times * n).astype(np.int64)


def point_ids(options: RunOptions, size: int) -> np.ndarray:
    """The grid index of each point, checked against the block size."""
    ids = options.ids(size)
    if ids.shape != (size,):
        raise InputError("point_ids", f"must hold one id per point ({size})", ids.shape)
    return ids


def nonfinite_message(times: np.ndarray, recorded: int) -> str:
    """The status message of a run that stopped before sample ``recorded``."""
    return f"state became non-finite by t = {times[recorded]:g}"


# ---------------------------------------------------------------------------
# Compiled kernel

#: Floating-point freedoms the kernels may take: reassociating sums lets LLVM
#: vectorize the passes over the n coordinates. NaN and infinity keep their
#: meaning, so the finiteness checks still work.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _sgd(
    Ut, Vt, w, rates, root_lam, root_lam_gen, steps, rng, q, P, r, S, V_copies, w_copies
):
    """Online SGD of MODEL.md section 2 from step 0 to ``steps[-1]``.

    ``Ut, Vt`` (d, n) and ``w`` (n) are updated in place. Order parameters go
    to ``q, P, r, S`` and, when those have ``T`` rows, copies of ``V`` (n, d)
    and ``w`` to ``V_copies, w_copies``. Returns the number of samples
    recorded before the state became non-finite.

    Normalizing costs a pass over the vectors; instead the stored ``w`` and
    ``Vt[j]`` are the true ones divided by ``scale_w`` and ``scale_V[j]``, and
    the next update multiplies the scales in on its way through.
    """
    d, n = Ut.shape
    tau, tau_gen, root_eta_T, root_eta_G = rates[0], rates[1], rates[2], rates[3]
    T = steps.shape[0]
    copies = V_copies.shape[0] > 0

    c = np.empty(d)
    c_gen = np.empty(d)
    y = np.empty(n)
    y_gen = np.empty(n)
    scale_V = np.ones(d)
    scale_w = 1.0

    sample = 0
    step = 0
    while True:
        # Record every sample that falls on this step.
        while sample < T and steps[sample] == step:
            ok = _record(
                Ut,
                Vt,
                w,
                scale_V,
                scale_w,
                q[sample],
                P[sample],
                r[sample],
                S[sample],
            )
            if not ok:
                _apply_scales(Vt, w, scale_V, scale_w)
                return sample
            if copies:
                for i in range(n):
                    w_copies[sample, i] = scale_w * w[i]
                    for j in range(d):
                        V_copies[sample, i, j] = scale_V[j] * Vt[j, i]
            sample += 1
        if sample == T:
            _apply_scales(Vt, w, scale_V, scale_w)
            return T

        # The latent codes c ~ N(0, Lambda), c~ ~ N(0, Lambda~).
        for j in range(d):
            c[j] = root_lam[j] * rng.standard_normal()
        for j in range(d):
            c_gen[j] = root_lam_gen[j] * rng.standard_normal()

        # Samples y = U c + sqrt(eta_T) a and y~ = V c~ + sqrt(eta_G) a~. The
        # draws cannot be vectorized, so they get a loop of their own.
        for i in range(n):
            y[i] = root_eta_T * rng.standard_normal()
            y_gen[i] = root_eta_G * rng.standard_normal()
        for j in range(d):
            weight = c[j]
            weight_gen = c_gen[j] * scale_V[j]
            for i in range(n):
                y[i] += Ut[j, i] * weight
                y_gen[i] += Vt[j, i] * weight_gen

        # The scores s = w.y and s~ = w.y~.
        s = 0.0
        s_gen = 0.0
        for i in range(n):
            s += w[i] * y[i]
            s_gen += w[i] * y_gen[i]
        s *= scale_w
        s_gen *= scale_w

        # V <- normalize_columns(V + (tau_gen/n) s~ w c~^T), with w before
        # its own update.
        rate_V = tau_gen / n * s_gen * scale_w
        for j in range(d):
            old = scale_V[j]
            push = rate_V * c_gen[j]
            norm = 0.0
            for i in range(n):
                v = old * Vt[j, i] + push * w[i]
                Vt[j, i] = v
                norm += v * v
            if not (0.0 < norm < math.inf):
                # Overflow (absurd rates): stop rather than let 1 / inf turn
                # the column into zeros or NaN.
                _apply_scales(Vt, w, scale_V, scale_w)
                return sample
            scale_V[j] = 1.0 / math.sqrt(norm)

        # w <- normalize(w + (tau/n) (s y - s~ y~)).
        push = tau / n * s
        push_gen = tau / n * s_gen
        norm = 0.0
        for i in range(n):
            v = scale_w * w[i] + push * y[i] - push_gen * y_gen[i]
            w[i] = v
            norm += v * v
        if not (0.0 < norm < math.inf):
            # Overflow (absurd rates): stop here rather than step on NaN.
            _apply_scales(Vt, w, scale_V, scale_w)
            return sample
        scale_w = 1.0 / math.sqrt(norm)
        step += 1


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _apply_scales(Vt, w, scale_V, scale_w):
    """Fold the pending scales into the stored vectors."""
    d, n = Vt.shape
    for i in range(n):
        w[i] *= scale_w
    for j in range(d):
        for i in range(n):
            Vt[j, i] *= scale_V[j]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _record(Ut, Vt, w, scale_V, scale_w, q, P, r, S):
    """Order parameters of section 3 into ``q, P, r, S``; False if non-finite."""
    d, n = Ut.shape
    for a in range(d):
        q_a = 0.0
        r_a = 0.0
        for i in range(n):
            q_a += Ut[a, i] * w[i]
            r_a += Vt[a, i] * w[i]
        q[a] = q_a * scale_w
        r[a] = r_a * scale_V[a] * scale_w
        for b in range(d):
            P_ab = 0.0
            S_ab = 0.0
            for i in range(n):
                P_ab += Ut[a, i] * Vt[b, i]
                S_ab += Vt[a, i] * Vt[b, i]
            P[a, b] = P_ab * scale_V[b]
            S[a, b] = S_ab * scale_V[a] * scale_V[b]

    finite = True
    for a in range(d):
        finite = finite and math.isfinite(q[a]) and math.isfinite(r[a])
        for b in range(d):
            finite = finite and math.isfinite(P[a, b]) and math.isfinite(S[a, b])
    return finite
