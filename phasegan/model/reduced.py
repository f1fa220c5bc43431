"""The exact reduced simulation of MODEL.md section 5, at a cost per step free of ``n``.

The law of the SGD step of section 2 is invariant under rotations that fix
``U``, ``V`` and ``w``, so only the Gram matrix of these ``m = 2d + 1`` vectors
matters. A run keeps their coordinates ``X`` in an orthonormal ``m``-frame that
contains them, with ``U`` as its first ``d`` vectors; ``X`` is upper
triangular and the Gram matrix is ``X^T X``. One step, exactly in law for any
``n``:

1. the components of ``a`` and ``a~`` along the ``m`` frame vectors are iid
   ``N(0, 1)``;
2. their parts ``a_perp, a~_perp`` outside the frame have a 2 x 2 Gram matrix
   that is Wishart with ``n - m = n - 2d - 1`` degrees of freedom. Its
   Bartlett factor gives them coordinates in two new orthonormal directions
   ``f_1, f_2``: ``a_perp = sqrt(chi2(n - m)) f_1`` and
   ``a~_perp = N(0, 1) f_1 + sqrt(chi2(n - m - 1)) f_2``;
3. the update of section 2 is applied in this orthonormal ``(m + 2)``-frame;
4. modified Gram-Schmidt, ``U`` first, gives the new frame and the new
   triangular coordinates.

A degenerate span (rank below ``m``, e.g. ``V = U``) needs no special case:
where a vector's residual is below `RANK_TOLERANCE` its row of ``X`` is zero
and the frame is padded with a direction outside the span. The components of
``a`` along a padding direction are iid ``N(0, 1)`` like the others, so the
law of the step, and the ``n - 2d - 1`` degrees of freedom, stay exact.

The run keeps coordinates rather than the Gram matrix itself: a Cholesky
factor of a nearly singular Gram matrix loses half the digits, while
Gram-Schmidt on coordinates is backward stable: the Gram matrix it implies is
exact to rounding whatever the conditioning (to `RANK_TOLERANCE` where a
residual is dropped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from phasegan.model.methods import RunOptions
from phasegan.model.parameters import Parameters
from phasegan.model.simulate import run_replicas, sample_steps
from phasegan.model.trajectories import Trajectories

#: A residual norm below this (the vectors have unit norm) counts as zero
#: when the frame is rebuilt.
RANK_TOLERANCE = 1e-12


def solve(
    params: Parameters, times: np.ndarray, options: RunOptions = RunOptions()
) -> Trajectories:
    """Reduced simulation of every point of ``params``, ``options.replicas`` runs.

    Same interface, same random-stream rules and the same law as
    `phasegan.model.simulate.solve` (though not the same numbers: the two use
    their random draws differently).

    Parameters
    ----------
    params : Parameters
        ``B`` points; ``params.n`` must be at least ``2d + 3``.
    times : ndarray, shape (T,)
        Non-decreasing sample times ``>= 0``, each recorded after step
        ``round(t n)``.
    options : RunOptions
        ``replicas``, ``root_seed`` and ``point_ids``.

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
    return _solve(params, times, options)


def _solve(params, times, options, dof_shift: int = 0) -> Trajectories:
    """`solve`, with the Wishart degrees of freedom off by ``dof_shift``.

    A non-zero shift gives a deliberately wrong law; the tests use it to show
    that the statistical comparison with the full simulation can fail.
    """

    def start(params, b, rng):
        run = ReducedRun.start(params, b, rng)
        run.dof_shift = dof_shift
        return run

    return run_replicas(params, times, options, start)


@dataclass
class ReducedRun:
    """One reduced run: coordinates of ``(U, V, w)`` and the random stream.

    Attributes
    ----------
    X : ndarray, shape (2d + 3, 2d + 1)
        Coordinates of the columns ``U (d), V (d), w`` in an orthonormal
        frame; upper triangular (rows ``2d + 1`` and ``2d + 2`` are zero,
        room for the two directions a step adds), ``X[:d, :d]`` the identity.
    n : int
        Ambient dimension.
    rng : numpy.random.Generator
    rates : ndarray, shape (4,)
        ``tau, tau_gen, sqrt(eta_T), sqrt(eta_G)``.
    root_lam, root_lam_gen : ndarray, shape (d,)
        ``sqrt(lambda)`` and ``sqrt(lambda~)``.
    dof_shift : int
        Added to the Wishart degrees of freedom; 0 except in tests.
    """

    X: np.ndarray
    n: int
    rng: np.random.Generator
    rates: np.ndarray
    root_lam: np.ndarray
    root_lam_gen: np.ndarray
    dof_shift: int = 0

    @classmethod
    def start(cls, params: Parameters, index: int, rng) -> ReducedRun:
        """The default initial state of MODEL.md section 3 for point ``index``.

        In the frame ``(u_1..u_d, z_1..z_d, z_0)``, exactly the overlaps
        ``q = q0 (1..1)``, ``P = P0 I``, ``r = q0 P0 (1..1)``, ``S = I``.
        """
        d = params.d
        q0, P0 = params.q0[index], params.P0[index]
        X = np.zeros((2 * d + 1, 2 * d + 1))
        X[:d, :d] = np.eye(d)
        X[:d, d : 2 * d] = P0 * np.eye(d)
        X[d : 2 * d, d : 2 * d] = math.sqrt(1 - P0**2) * np.eye(d)
        X[:d, 2 * d] = q0
        X[2 * d, 2 * d] = math.sqrt(1 - d * q0**2)
        return cls.from_coordinates(X, params, index, rng)

    @classmethod
    def from_coordinates(cls, X, params: Parameters, index: int, rng):
        """A run starting from unit vectors ``(U, V, w)`` with coordinates ``X``.

        Parameters
        ----------
        X : ndarray, shape (f, 2d + 1)
            Coordinates in an orthonormal frame of dimension ``f <= 2d + 3``
            whose first ``d`` vectors are ``U``.
        """
        d = params.d
        frame = np.zeros((2 * d + 3, 2 * d + 1))
        frame[: X.shape[0]] = X
        _triangularize(frame, np.empty((d + 1, d + 3)), np.empty((d + 1, d + 3)))
        rates = np.array(
            [
                params.tau[index],
                params.tau_gen[index],
                math.sqrt(params.noise_true[index]),
                math.sqrt(params.noise_gen[index]),
            ]
        )
        return cls(
            X=frame,
            n=int(params.n[index]),
            rng=rng,
            rates=rates,
            root_lam=np.sqrt(params.lam[index]),
            root_lam_gen=np.sqrt(params.lam_gen[index]),
        )

    def gram(self) -> np.ndarray:
        """Gram matrix of ``(U, V, w)``, shape (2d + 1, 2d + 1)."""
        return self.X.T @ self.X

    def record(self, times, q, P, r, S) -> int:
        """Take the steps up to the last sample time, recording in place.

        Call once: step 0 is the current state. Shapes as in
        `phasegan.model.simulate.Run.record`; returns the number of samples
        recorded before the state became non-finite.
        """
        return _reduced(
            self.X,
            self.n,
            self.dof_shift,
            self.rates,
            self.root_lam,
            self.root_lam_gen,
            sample_steps(times, self.n),
            self.rng,
            q,
            P,
            r,
            S,
        )


# ---------------------------------------------------------------------------
# Compiled kernel


@njit(cache=True, error_model="numpy")
def _reduced(X, n, dof_shift, rates, root_lam, root_lam_gen, steps, rng, q, P, r, S):
    """Section 5 steps from step 0 to ``steps[-1]``; ``X`` is updated in place.

    Returns the number of samples recorded before the state became non-finite.
    """
    frame, m = X.shape
    d = (m - 1) // 2
    w_col = 2 * d
    tau, tau_gen, root_eta_T, root_eta_G = rates[0], rates[1], rates[2], rates[3]
    dof = n - m + dof_shift
    T = steps.shape[0]

    c = np.empty(d)
    c_gen = np.empty(d)
    y = np.empty(frame)
    y_gen = np.empty(frame)
    scale_V = np.empty(d)
    residual = np.empty((d + 1, frame - d))
    direction = np.empty((d + 1, frame - d))

    sample = 0
    step = 0
    while True:
        # Record every sample that falls on this step.
        while sample < T and steps[sample] == step:
            if not _record(X, q[sample], P[sample], r[sample], S[sample]):
                return sample
            sample += 1
        if sample == T:
            return T

        # The latent codes c ~ N(0, Lambda), c~ ~ N(0, Lambda~).
        for j in range(d):
            c[j] = root_lam[j] * rng.standard_normal()
        for j in range(d):
            c_gen[j] = root_lam_gen[j] * rng.standard_normal()

        # a and a~ in the frame (m vectors, then f_1, f_2): iid normals, then
        # the Bartlett factor of a Wishart(n - m) sample.
        for i in range(m):
            y[i] = root_eta_T * rng.standard_normal()
            y_gen[i] = root_eta_G * rng.standard_normal()
        y[m] = root_eta_T * math.sqrt(rng.chisquare(dof))
        y[m + 1] = 0.0
        y_gen[m] = root_eta_G * rng.standard_normal()
        y_gen[m + 1] = root_eta_G * math.sqrt(rng.chisquare(dof - 1))

        # y = U c + sqrt(eta_T) a and y~ = V c~ + sqrt(eta_G) a~ (U is the
        # first d frame vectors), with the scores s = w.y, s~ = w.y~; w has
        # no component along f_1, f_2.
        for j in range(d):
            y[j] += c[j]
        s = 0.0
        s_gen = 0.0
        for i in range(m):
            y_i = y_gen[i]
            for j in range(d):
                y_i += X[i, d + j] * c_gen[j]
            y_gen[i] = y_i
            s += X[i, w_col] * y[i]
            s_gen += X[i, w_col] * y_i

        # V <- V + (tau_gen/n) s~ w c~^T with w before its update, so V stays
        # in the old frame; the norms are applied below.
        rate_V = tau_gen / n * s_gen
        for j in range(d):
            push = rate_V * c_gen[j]
            norm = 0.0
            for i in range(m):
                v = X[i, d + j] + push * X[i, w_col]
                X[i, d + j] = v
                norm += v * v
            if not (0.0 < norm < math.inf):
                # Overflow (absurd rates): stop here, or the column would be
                # scaled by 1 / inf into a zero vector that looks finite.
                return sample
            scale_V[j] = 1.0 / math.sqrt(norm)

        # w <- w + (tau/n) (s y - s~ y~), over the whole (m + 2)-frame.
        push = tau / n * s
        push_gen = tau / n * s_gen
        norm = 0.0
        for i in range(frame):
            v = X[i, w_col] + push * y[i] - push_gen * y_gen[i]
            X[i, w_col] = v
            norm += v * v
        if not (0.0 < norm < math.inf):
            # Overflow (absurd rates): stop here rather than step on NaN.
            return sample
        scale_w = 1.0 / math.sqrt(norm)

        # Back to unit norms, then to a triangular X in a new m-frame.
        for j in range(d):
            for i in range(m):
                X[i, d + j] *= scale_V[j]
        for i in range(frame):
            X[i, w_col] *= scale_w
        _triangularize(X, residual, direction)
        step += 1


@njit(cache=True, error_model="numpy")
def _triangularize(X, residual, direction):
    """Modified Gram-Schmidt of the columns of ``X``, in place, ``U`` first.

    ``U = X[:, :d]`` must be the first ``d`` unit vectors of the frame, so
    the first ``d`` rows are already the coordinates along ``U``; only the
    rows below, one residual per column ``V_1..V_d, w``, are orthogonalized.
    ``residual`` and ``direction`` are work space of shape
    (d + 1, frame - d). A residual shorter than `RANK_TOLERANCE` leaves a
    zero row (a padding direction of the frame).
    """
    frame, m = X.shape
    d = (m - 1) // 2
    rows = frame - d
    for a in range(d + 1):
        for i in range(rows):
            residual[a, i] = X[d + i, d + a]

    for a in range(d + 1):
        col = d + a
        for b in range(a):
            overlap = 0.0
            for i in range(rows):
                overlap += direction[b, i] * residual[a, i]
            for i in range(rows):
                residual[a, i] -= overlap * direction[b, i]
            X[d + b, col] = overlap
        norm = 0.0
        for i in range(rows):
            norm += residual[a, i] ** 2
        norm = math.sqrt(norm)
        if norm > RANK_TOLERANCE:
            for i in range(rows):
                direction[a, i] = residual[a, i] / norm
            X[col, col] = norm
        else:
            for i in range(rows):
                direction[a, i] = 0.0
            X[col, col] = 0.0
        for i in range(col + 1, frame):
            X[i, col] = 0.0


@njit(cache=True, error_model="numpy")
def _record(X, q, P, r, S):
    """Order parameters of section 3 from the coordinates; False if non-finite."""
    m = X.shape[1]
    d = (m - 1) // 2
    w_col = 2 * d
    finite = True
    for a in range(d):
        q[a] = X[a, w_col]
        r_a = 0.0
        for i in range(m):
            r_a += X[i, d + a] * X[i, w_col]
        r[a] = r_a
        finite = finite and math.isfinite(q[a]) and math.isfinite(r_a)
        for b in range(d):
            P[a, b] = X[a, d + b]
            S_ab = 0.0
            for i in range(m):
                S_ab += X[i, d + a] * X[i, d + b]
            S[a, b] = S_ab
            finite = finite and math.isfinite(P[a, b]) and math.isfinite(S_ab)
    return finite
