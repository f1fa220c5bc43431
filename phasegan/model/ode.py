"""The macroscopic ODE of MODEL.md section 3 for a block of points.

`solve` integrates every point of a block in one compiled call: an adaptive
Dormand-Prince 5(4) pair with its continuous extension, so the trajectory is
sampled at the requested times exactly instead of at the solver's steps. The
kernels below the bookkeeping know nothing of `Parameters` or `Trajectories`;
they take flat arrays, so the benchmarks and tests can call them directly.

Numba compiles the kernels on first use and caches the machine code next to
this file (``__pycache__``, or ``NUMBA_CACHE_DIR``), so a fresh worker
process loads them instead of compiling again: on the 2-core development
machine the first call of a process took 8-12 s with an empty cache and
0.5-0.9 s with a warm one (most of it numba's own start-up), later calls
nothing extra. The right-hand side is the same one as in
`phasegan.model.equations`, rewritten with scalar loops.

Method: Dormand and Prince, J. Comput. Appl. Math. 6 (1980) 19-26; the
dense output and the step-size controller follow Hairer, Norsett and Wanner,
*Solving Ordinary Differential Equations I*, section II.4-II.6.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from phasegan.model.equations import initial_state, unpack
from phasegan.model.methods import RunOptions
from phasegan.model.parameters import Parameters
from phasegan.model.trajectories import Status, Trajectories

#: Kernel outcome codes. UNDERFLOW (the step size fell below what the time
#: resolution allows) and STIFF (see `_STIFF_STEPS`) are reported as
#: `Status.BUDGET`: they are solver limits.
_OK, _NONFINITE, _BUDGET, _UNDERFLOW, _STIFF = 0, 1, 2, 3, 4

#: Stiffness: an explicit step whose estimated ``h |lambda|`` exceeds
#: `_STIFF_H_LAMBDA` sits on the method's stability boundary and cannot grow.
#: After `_STIFF_STEPS` such accepted steps (fewer than 6 calm ones between
#: them), a point whose remaining time at this step size needs more steps
#: than its budget has left stops at once instead of using the budget up:
#: huge learning rates or noise levels make the decay ``tau^2 N / 2`` of
#: section 3 so fast that ``t_max`` would take billions of steps. The test is
#: the one of Hairer's DOPRI5 (Hairer and Wanner, *Solving ODEs II*, IV.2).
_STIFF_H_LAMBDA = 3.25
_STIFF_STEPS = 15

#: Every overlap of the model lies in [-1, 1]; a state a thousand times
#: larger can only come from parameters outside the model's range and is
#: running off to infinity (a finite-time blow-up): reported as non-finite.
_DIVERGED = 1e3


def solve(
    params: Parameters, times: np.ndarray, options: RunOptions = RunOptions()
) -> Trajectories:
    """Integrate every point of ``params`` and sample at ``times``.

    Parameters
    ----------
    params : Parameters
        ``B`` points with ``d`` features; each starts from
        `equations.initial_state` at ``times[0]``.
    times : ndarray, shape (T,)
        Increasing sample times.
    options : RunOptions
        ``rtol``, ``atol`` (per step, mixed relative/absolute RMS norm) and
        ``max_steps`` (accepted plus rejected steps per point).

    Returns
    -------
    Trajectories
        ``R = 1``. A point that became non-finite or ran out of steps gets
        its `Status`, a one-line ``message`` and NaN after the last time it
        reached; the other points of the block are unaffected.
    """
    times = _checked_times(times)
    y, status, reached, steps = integrate(params, times, options)

    d = params.d
    out = Trajectories.empty(params.size, 1, times, d)
    q, P, r, S = unpack(y, d)
    out.q[:, 0], out.P[:, 0], out.r[:, 0], out.S[:, 0] = q, P, r, S
    for b in np.flatnonzero(status != _OK):
        out.fail(b, 0, *_failure(status[b], reached[b], steps[b], options))
    return out


def integrate(params: Parameters, times: np.ndarray, options: RunOptions):
    """The kernel's raw answer for a block, without the bookkeeping.

    Returns
    -------
    y : ndarray, shape (B, T, 2d + 2d^2)
        Packed states (`equations.pack`) at ``times``; NaN after a failure.
    status : ndarray of int8, shape (B,)
        0 ok, 1 non-finite or diverged (some ``|y| > 1e3``), 2 step budget
        used up, 3 step-size underflow.
    reached : ndarray, shape (B,)
        Time the point got to (``times[-1]`` when it finished).
    steps : ndarray of int64, shape (B,)
        Steps attempted, accepted and rejected.
    """
    times = _checked_times(times)
    y0 = _flat(initial_state(params))
    B, m = y0.shape
    y = np.full((B, len(times), m), np.nan)
    status = np.zeros(B, dtype=np.int8)
    reached = np.zeros(B)
    steps = np.zeros(B, dtype=np.int64)
    _integrate_block(
        y0,
        times,
        params.d,
        _flat(params.lam),
        _flat(params.lam_gen),
        _flat(params.noise_true),
        _flat(params.noise_gen),
        _flat(params.tau),
        _flat(params.tau_gen),
        float(options.rtol),
        float(options.atol),
        int(options.max_steps),
        y,
        status,
        reached,
        steps,
    )
    return y, status, reached, steps


def compiled_rhs(y: np.ndarray, params: Parameters, index: int = 0) -> np.ndarray:
    """The kernel's right-hand side at one state; equals `equations.rhs`.

    Parameters
    ----------
    y : ndarray, shape (2d + 2d^2,)
    """
    y = _flat(y)
    out = np.empty_like(y)
    _rhs(
        y,
        params.d,
        _flat(params.lam[index]),
        _flat(params.lam_gen[index]),
        float(params.noise_true[index]),
        float(params.noise_gen[index]),
        float(params.tau[index]),
        float(params.tau_gen[index]),
        out,
    )
    return out


def _flat(array) -> np.ndarray:
    # One memory layout and dtype for every call, so numba compiles (and
    # caches) one specialization of each kernel, not one per layout.
    return np.ascontiguousarray(array, dtype=np.float64)


def _checked_times(times) -> np.ndarray:
    times = _flat(times)
    if times.ndim != 1 or times.size < 1:
        raise ValueError(
            f"times must be a non-empty 1-d array, got shape {times.shape}"
        )
    if not np.isfinite(times).all() or np.any(np.diff(times) <= 0):
        raise ValueError("times must be finite and strictly increasing")
    return times


def _failure(code: int, reached: float, steps: int, options: RunOptions):
    if code == _NONFINITE:
        return (
            Status.NONFINITE,
            f"state diverged or became non-finite near t = {reached:.6g}",
        )
    if code == _BUDGET:
        return (
            Status.BUDGET,
            f"step budget max_steps = {options.max_steps} used up at "
            f"t = {reached:.6g}; raise max_steps or loosen rtol/atol",
        )
    if code == _STIFF:
        return (
            Status.BUDGET,
            f"stiff at t = {reached:.6g}: stability holds the step so small that "
            f"t_max needs more than max_steps = {options.max_steps} steps "
            "(learning rate or noise far outside the model's usual range)",
        )
    return (
        Status.BUDGET,
        f"step size underflow at t = {reached:.6g} after {steps} steps",
    )


# --------------------------------------------------------------------------
# Kernels. Flat arrays in, flat arrays out; no Python objects.
# --------------------------------------------------------------------------

# Dormand-Prince 5(4): stages, 5th-order weights (= the last stage row, so the
# last stage is the next step's first: FSAL) and the difference between the
# 5th- and 4th-order weights, which estimates the local error. The nodes c_i
# are not needed: the ODE is autonomous.
_A21 = 1 / 5
_A31, _A32 = 3 / 40, 9 / 40
_A41, _A42, _A43 = 44 / 45, -56 / 15, 32 / 9
_A51, _A52, _A53, _A54 = 19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729
_A61, _A62, _A63, _A64, _A65 = (
    9017 / 3168,
    -355 / 33,
    46732 / 5247,
    49 / 176,
    -5103 / 18656,
)
_B1, _B3, _B4, _B5, _B6 = 35 / 384, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84
_E1, _E3, _E4, _E5, _E6, _E7 = (
    71 / 57600,
    -71 / 16695,
    71 / 1920,
    -17253 / 339200,
    22 / 525,
    -1 / 40,
)
# Continuous extension of order 4 (Shampine's, as in Hairer et al. II.6).
_D1, _D3, _D4, _D5, _D6, _D7 = (
    -12715105075 / 11282082432,
    87487479700 / 32700410799,
    -10690763975 / 1880347072,
    701980252875 / 199316789632,
    -1453857185 / 822651844,
    69997945 / 29380423,
)

# Step-size control: a PI controller on the error norm, exponents as in
# Hairer et al. (beta = 0.04 damps the step-size ripple on oscillations).
_SAFETY, _GROW_MAX, _SHRINK_MIN = 0.9, 10.0, 0.2
_BETA = 0.04
_ALPHA = 0.2 - 0.75 * _BETA


@njit(cache=True, error_model="numpy")
def _rhs(y, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, out):
    """MODEL.md section 3 on a packed state ``y``; writes into ``out``."""
    iP = d
    ir = d + d * d
    iS = 2 * d + d * d

    qLq = 0.0
    rGr = 0.0
    for i in range(d):
        qLq += y[i] * lam[i] * y[i]
        rGr += y[ir + i] * lam_gen[i] * y[ir + i]
    c = qLq - rGr
    N = eta_T * (qLq + eta_T) + eta_G * (rGr + eta_G)
    damping = c + tau * N / 2

    for i in range(d):
        drive = 0.0
        for k in range(d):
            drive += y[iP + i * d + k] * lam_gen[k] * y[ir + k]
        out[i] = tau * (lam[i] * y[i] - drive) - tau * damping * y[i]

    for j in range(d):
        g = tau_gen * lam_gen[j] * y[ir + j]
        r = y[ir + j]
        pull = 0.0
        for i in range(d):
            P_ij = y[iP + i * d + j]
            out[iP + i * d + j] = g * (y[i] - r * P_ij)
            pull += P_ij * lam[i] * y[i]
        push = 0.0
        for k in range(d):
            push += y[iS + j * d + k] * lam_gen[k] * y[ir + k]
        out[ir + j] = tau * (pull - push) - tau * damping * r + g * (1 - r * r)

    # Written so that diag(S) = 1 gives exactly 0 and S stays bitwise
    # symmetric: the two terms swap places between (j, k) and (k, j).
    for j in range(d):
        g_j = tau_gen * lam_gen[j] * y[ir + j]
        for k in range(d):
            g_k = tau_gen * lam_gen[k] * y[ir + k]
            toward_j = g_k * (y[ir + j] - y[ir + k] * y[iS + j * d + k])
            toward_k = g_j * (y[ir + k] - y[ir + j] * y[iS + k * d + j])
            out[iS + j * d + k] = toward_j + toward_k


@njit(cache=True, error_model="numpy")
def _error_norm(y, y_new, err, rtol, atol):
    total = 0.0
    for i in range(y.size):
        scale = atol + rtol * max(abs(y[i]), abs(y_new[i]))
        total += (err[i] / scale) ** 2
    return np.sqrt(total / y.size)


@njit(cache=True, error_model="numpy")
def _first_step(y, f, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, rtol, atol, span):
    """A first step size from the size of y, y' and y'' (Hairer et al. II.4)."""
    m = y.size
    size_y = 0.0
    size_f = 0.0
    for i in range(m):
        scale = atol + rtol * abs(y[i])
        size_y += (y[i] / scale) ** 2
        size_f += (f[i] / scale) ** 2
    size_y = np.sqrt(size_y / m)
    size_f = np.sqrt(size_f / m)
    if size_y < 1e-5 or size_f < 1e-5:
        h = 1e-6
    else:
        h = 0.01 * size_y / size_f
    h = min(h, span)

    trial = y + h * f
    f_trial = np.empty(m)
    _rhs(trial, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, f_trial)
    size_f2 = 0.0
    for i in range(m):
        scale = atol + rtol * abs(y[i])
        size_f2 += ((f_trial[i] - f[i]) / scale) ** 2
    size_f2 = np.sqrt(size_f2 / m) / h

    largest = max(size_f, size_f2)
    if largest <= 1e-15:
        h_curv = max(1e-6, h * 1e-3)
    else:
        h_curv = (0.01 / largest) ** 0.2
    return min(100 * h, h_curv, span)


@njit(cache=True, error_model="numpy")
def _integrate_point(
    y0, times, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, rtol, atol, max_steps, out
):
    """Integrate one point from ``times[0]``; fill ``out`` (T, m) in order.

    Returns (outcome code, time reached, steps attempted).
    """
    m = y0.size
    T = times.size
    t_end = times[-1]
    y = y0.copy()
    y_new = np.empty(m)
    stage = np.empty(m)
    err = np.empty(m)
    k1 = np.empty(m)
    k2 = np.empty(m)
    k3 = np.empty(m)
    k4 = np.empty(m)
    k5 = np.empty(m)
    k6 = np.empty(m)
    k7 = np.empty(m)

    t = times[0]
    out[0, :] = y
    sample = 1
    if T == 1:
        return _OK, t, 0
    _rhs(y, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, k1)
    for i in range(m):
        if not (np.isfinite(y[i]) and np.isfinite(k1[i])):
            return _NONFINITE, t, 0  # e.g. tau so large that tau^2 overflows
    h = _first_step(
        y, k1, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, rtol, atol, t_end - t
    )
    previous_error = 1e-4
    rejected = False
    steps = 0
    stiff = 0
    calm = 0

    while sample < T:
        # Step budget and the smallest step the time resolution allows.
        if steps >= max_steps:
            return _BUDGET, t, steps
        if h < 1e-14 * max(1.0, abs(t)):
            return _UNDERFLOW, t, steps
        steps += 1
        last = t + 1.01 * h >= t_end
        if last:
            h = t_end - t

        # The six new stages of one Dormand-Prince step.
        for i in range(m):
            stage[i] = y[i] + h * _A21 * k1[i]
        _rhs(stage, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, k2)
        for i in range(m):
            stage[i] = y[i] + h * (_A31 * k1[i] + _A32 * k2[i])
        _rhs(stage, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, k3)
        for i in range(m):
            stage[i] = y[i] + h * (_A41 * k1[i] + _A42 * k2[i] + _A43 * k3[i])
        _rhs(stage, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, k4)
        for i in range(m):
            stage[i] = y[i] + h * (
                _A51 * k1[i] + _A52 * k2[i] + _A53 * k3[i] + _A54 * k4[i]
            )
        _rhs(stage, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, k5)
        for i in range(m):
            stage[i] = y[i] + h * (
                _A61 * k1[i] + _A62 * k2[i] + _A63 * k3[i] + _A64 * k4[i]
                + _A65 * k5[i]
            )
        _rhs(stage, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, k6)
        for i in range(m):
            y_new[i] = y[i] + h * (
                _B1 * k1[i] + _B3 * k3[i] + _B4 * k4[i] + _B5 * k5[i] + _B6 * k6[i]
            )
        _rhs(y_new, d, lam, lam_gen, eta_T, eta_G, tau, tau_gen, k7)

        # Local error estimate; a non-finite one rejects the step hard.
        for i in range(m):
            err[i] = h * (
                _E1 * k1[i] + _E3 * k3[i] + _E4 * k4[i] + _E5 * k5[i]
                + _E6 * k6[i] + _E7 * k7[i]
            )
        error = _error_norm(y, y_new, err, rtol, atol)
        if not np.isfinite(error):
            h *= _SHRINK_MIN
            rejected = True
            if h < 1e-14 * max(1.0, abs(t)):
                return _NONFINITE, t, steps
            continue

        # Reject: shrink by the asymptotic rule, no memory term.
        if error > 1.0:
            h *= max(_SHRINK_MIN, _SAFETY * error ** -0.2)
            rejected = True
            continue

        # Accept: emit every sample time inside (t, t + h].
        t_new = t_end if last else t + h
        for i in range(m):
            if abs(y_new[i]) > _DIVERGED:
                return _NONFINITE, t, steps
        while sample < T and times[sample] <= t_new:
            if times[sample] == t_new:
                out[sample, :] = y_new
            else:
                theta = (times[sample] - t) / h
                _dense(y, y_new, k1, k3, k4, k5, k6, k7, h, theta, out[sample])
            sample += 1

        if error == 0.0:
            factor = _GROW_MAX
        else:
            factor = _SAFETY * error ** -_ALPHA * previous_error**_BETA
            factor = min(_GROW_MAX, max(_SHRINK_MIN, factor))
        if rejected:
            factor = min(factor, 1.0)
        previous_error = max(error, 1e-4)
        rejected = False

        # Stiffness: h |lambda| estimated from stage 6 and the new state.
        change = 0.0
        slope = 0.0
        for i in range(m):
            change += (y_new[i] - stage[i]) ** 2
            slope += (k7[i] - k6[i]) ** 2
        if change > 0.0 and h * np.sqrt(slope / change) > _STIFF_H_LAMBDA:
            stiff += 1
            calm = 0
        else:
            calm += 1
            if calm >= 6:
                stiff = 0

        t = t_new
        h *= factor
        if stiff >= _STIFF_STEPS and (t_end - t) > h * (max_steps - steps):
            return _STIFF, t, steps
        for i in range(m):
            y[i] = y_new[i]
            k1[i] = k7[i]
    return _OK, t, steps


@njit(cache=True, error_model="numpy")
def _dense(y, y_new, k1, k3, k4, k5, k6, k7, h, theta, out):
    """The step's order-4 interpolant at ``t + theta h``, written into ``out``."""
    rest = 1.0 - theta
    for i in range(y.size):
        change = y_new[i] - y[i]
        slope_gap = h * k1[i] - change
        curvature = change - h * k7[i] - slope_gap
        quartic = h * (
            _D1 * k1[i] + _D3 * k3[i] + _D4 * k4[i] + _D5 * k5[i] + _D6 * k6[i]
            + _D7 * k7[i]
        )
        out[i] = y[i] + theta * (
            change + rest * (slope_gap + theta * (curvature + rest * quartic))
        )


@njit(cache=True, error_model="numpy")
def _integrate_block(
    y0,
    times,
    d,
    lam,
    lam_gen,
    eta_T,
    eta_G,
    tau,
    tau_gen,
    rtol,
    atol,
    max_steps,
    out,
    status,
    reached,
    steps,
):
    """Every point of a block, one after the other; each is independent."""
    for b in range(y0.shape[0]):
        code, t, count = _integrate_point(
            y0[b],
            times,
            d,
            lam[b],
            lam_gen[b],
            eta_T[b],
            eta_G[b],
            tau[b],
            tau_gen[b],
            rtol,
            atol,
            max_steps,
            out[b],
        )
        status[b] = code
        reached[b] = t
        steps[b] = count
