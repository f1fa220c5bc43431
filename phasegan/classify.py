"""Trajectory -> regime label and diagnostics (MODEL.md section 7).

The rules, in the order `classify` applies them to each run:

1. ``error`` if the run's status is not OK or its state is not finite.
2. The last half of the trajectory is cut into `WINDOWS` equal windows. In
   each, every component of the state (``q``, ``P``, ``r`` and the
   off-diagonal of ``S``) is fitted by a straight line in time; the window's
   *amplitude* is ``sqrt(2)`` times the RMS of what the line leaves, largest
   over the components (the amplitude of a sinusoid, in units of an overlap).
   The straight line takes out slow drifts, so an approach to a fixed point is
   not mistaken for an oscillation.
3. The *trend* is the amplitude ratio from one window to the next, fitted by
   least squares on the logarithm over all windows. A run is ``oscillating``
   when its last amplitude is above the floor, the last half shows at least
   `MIN_CYCLES` cycles about its straight line (a slow bending drift is not
   a cycle), and it is not decaying:
   decaying means the fitted ratio is below ``1 - DECAY`` *and* the ratio of
   the last two windows is below ``1 - DECAY / 2`` (so an oscillation that
   settles onto a limit cycle from above, whose decay stalls, still counts as
   persistent).
4. Otherwise the run settled (or is settling): feature ``i`` is recovered when
   ``max_j |P_ij| >= recovery``, and the label is ``converged`` (all),
   ``partial`` (some) or ``failed`` (none).
5. Only when ``params`` is given, for the ODE: a run that looks settled but
   whose end state is unstable (an eigenvalue of the Jacobian,
   `stability.constrained_jacobian`, with real part above `STABILITY_TOL`
   plus the remaining amplitude and drift) is only passing near a saddle,
   typically a stretch of the line ``q = r = 0`` where ``trace J > 0``; it
   will leave again, so it is ``oscillating`` (MODEL.md section 6).

The floor is `ODE_FLOOR` for the ODE. For a simulation of size ``n`` the
state fluctuates by about ``1 / sqrt(n)`` per component, so the floor is
``NOISE_FLOOR / sqrt(n)``, well above the fluctuations, and a run whose
wobble stays below it is judged by its overlaps.

Limits: samples must be evenly spaced; an oscillation with a period shorter
than two sample intervals is aliased (its period is reported wrong, and it
may look like noise); one with fewer than `MIN_CYCLES` periods in the last
half of the run counts as a drift, not an oscillation, and is labelled by
where it is at the end (a run still drifting at ``t_max`` may settle
elsewhere later: integrate longer to tell); a decay slower than ``DECAY``
per window (for the default 600 samples over ``t_max``: slower than about
``0.4 / t_max``) cannot be told from a persistent oscillation and counts as
one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phasegan.model.parameters import Parameters
from phasegan.model.stability import end_state_growth, end_states
from phasegan.model.trajectories import Status, Trajectories

#: Label codes, in the order of the store's ``flag_values``.
LABELS = ("converged", "oscillating", "failed", "partial", "error")
CONVERGED, OSCILLATING, FAILED, PARTIAL, ERROR = range(5)
NOT_COMPUTED = -1

#: Number of windows over the last half of a trajectory.
WINDOWS = 4
#: Fitted decay per window needed to call an oscillation decaying.
DECAY = 0.05
#: Whole cycles an oscillation must show in the last half of the run: its
#: strongest component, less a straight line, changes sign at least twice per
#: cycle. A slow approach that bends leaves a curved residual about each
#: window's line, but crosses the half's line at most twice: a drift.
MIN_CYCLES = 2
#: ODE amplitude floor: far above the integration error (about 1e-6 at the
#: default tolerances), far below the oscillations of the model (1e-2 to 1).
ODE_FLOOR = 1e-4
#: Growth rate (1/time) an end state may show and still count as stable:
#: over t = 3000 it changes a perturbation by 0.3 %, i.e. invisibly.
STABILITY_TOL = 1e-6
#: Simulation floor in units of 1/sqrt(n). In the reduced simulation at
#: n = 2000 (d = 1, tau = 0.5, 8 runs at each of four settled points) the
#: amplitude of the fluctuations measured this way was 2.5 to 4.7 / sqrt(n),
#: the upper end where relaxation is slow (next to the failure line); the
#: floor sits well above that. Cost: a real limit cycle smaller than
#: 8 / sqrt(n) (0.18 at n = 2000; cycles next to trace J = 0) is not seen.
NOISE_FLOOR = 8.0
#: Bytes of state (B x R x T x components, float64) classified at once.
CHUNK_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Diagnostic:
    """Description of one diagnostic variable the classifier returns."""

    name: str
    long_name: str
    units: str = "1"
    per_feature: bool = False  # True: shape (B, R, d); False: (B, R)


#: Every diagnostic `classify` returns, in a fixed order.
DIAGNOSTICS = (
    Diagnostic(
        "amplitude",
        "oscillation amplitude in the last window (sqrt 2 x RMS about a "
        "straight-line fit, largest over the state's components)",
    ),
    Diagnostic(
        "amplitude_trend",
        "amplitude ratio from one window to the next, fitted over the last "
        "windows (< 1 decays)",
    ),
    Diagnostic(
        "growth_rate",
        "fitted growth rate of the amplitude (negative: decaying)",
        "1/time",
    ),
    Diagnostic(
        "amplitude_floor",
        "amplitude below which a wobble is not an oscillation",
    ),
    Diagnostic(
        "period",
        "period of the oscillation where the amplitude is above the floor "
        "(NaN otherwise)",
        "time",
    ),
    Diagnostic(
        "drift",
        "change of the mean state between the last two windows, largest over "
        "components",
    ),
    Diagnostic(
        "end_growth",
        "largest real part of the Jacobian's eigenvalues at the end state "
        "(ODE with parameters only, NaN otherwise)",
        "1/time",
    ),
    Diagnostic("q_final", "final overlap q = U^T w", per_feature=True),
    Diagnostic(
        "P_final", "final best overlap max_j |P_ij| of feature i", per_feature=True
    ),
    Diagnostic("recovered", "number of features recovered"),
)


@dataclass
class Classification:
    """Labels and diagnostics of ``B`` points x ``R`` replicas.

    Attributes
    ----------
    label : ndarray of int8, shape (B, R)
        Codes into `LABELS`.
    diagnostics : dict of str -> ndarray
        One array per entry of `DIAGNOSTICS`, shape (B, R) or (B, R, d).
    """

    label: np.ndarray
    diagnostics: dict = field(default_factory=dict)


def classify(
    traj: Trajectories,
    *,
    recovery: float = 0.5,
    n=None,
    params: Parameters | None = None,
) -> Classification:
    """Label every run of ``traj`` by the rules in this module's docstring.

    Parameters
    ----------
    traj : Trajectories
        ``B`` points x ``R`` runs at ``T`` evenly spaced times. With
        ``T >= 32`` the windows cover the last half; with fewer they reach
        further back, and below 8 samples there is no trend and only the
        amplitude is judged.
    recovery : float
        Feature ``i`` is recovered when ``max_j |P_ij| >= recovery``.
    n : int or ndarray of int, shape (B,), optional
        Ambient dimension of simulated runs; sets the fluctuation floor
        ``NOISE_FLOOR / sqrt(n)``. ``None`` for the ODE.
    params : Parameters, optional
        The ``B`` points of an ODE run (``n`` is None). With them, a settled
        run whose end state is unstable is ``oscillating`` (rule 5); without,
        rule 5 is skipped and ``end_growth`` is NaN.

    Returns
    -------
    Classification
    """
    # The rules' temporaries are several times the trajectories they read:
    # a large block is classified a slice of points at a time, so the
    # memory it needs does not grow with the block.
    B, R, T, d = traj.q.shape
    if params is not None and (params.size != B or params.d != d):
        raise ValueError(
            f"params has {params.size} points with d = {params.d}; the "
            f"trajectories have {B} with d = {d}"
        )
    components = 2 * d + d * d + d * (d - 1) // 2
    step = max(1, CHUNK_BYTES // (R * T * components * 8))
    if B <= step:
        return _classify(traj, recovery, n, params)
    if n is not None and np.ndim(n) > 0:
        n = np.broadcast_to(n, (B,))
    parts = []
    for start in range(0, B, step):
        part = slice(start, start + step)
        parts.append(
            _classify(
                _points(traj, part),
                recovery,
                n if n is None or np.ndim(n) == 0 else n[part],
                None if params is None else params.take(np.arange(B)[part]),
            )
        )
    return Classification(
        label=np.concatenate([c.label for c in parts]),
        diagnostics={
            name: np.concatenate([c.diagnostics[name] for c in parts])
            for name in parts[0].diagnostics
        },
    )


def _points(traj: Trajectories, part: slice) -> Trajectories:
    """The runs of the points in ``part`` (views, no copy)."""
    return Trajectories(
        times=traj.times,
        q=traj.q[part],
        P=traj.P[part],
        r=traj.r[part],
        S=traj.S[part],
        status=traj.status[part],
        message=traj.message[part],
    )


def _classify(traj: Trajectories, recovery: float, n, params) -> Classification:
    """`classify` on a slice of points small enough to take at once."""
    B, R, T, d = traj.q.shape
    state = _components(traj)
    times = np.asarray(traj.times, dtype=np.float64)
    finite = np.isfinite(state).all(axis=(2, 3))

    with np.errstate(all="ignore"):
        # Amplitude per window over the last half, and its trend.
        windows, length = _window_count(T)
        amplitudes, means = _window_amplitudes(state, times, windows, length)
        amplitude = amplitudes[..., -1]
        ratio, growth = _trend(amplitudes, length * _spacing(times))
        if windows > 1:
            last_ratio = amplitudes[..., -1] / amplitudes[..., -2]
            drift = np.abs(means[..., -1, :] - means[..., -2, :]).max(axis=-1)
        else:
            last_ratio = ratio
            drift = np.full((B, R), np.nan)

        floor = _floor(n, B, R)
        decaying = (ratio < 1 - DECAY) & (last_ratio < 1 - DECAY / 2)
        span = length * windows
        period = _period(state, times, span)
        period = np.where(amplitude > floor, period, np.nan)
        cycling = _sign_changes(state, times, span) >= 2 * MIN_CYCLES
        oscillating = (amplitude > floor) & ~decaying & cycling

        # Recovered features from the final overlaps.
        P_end, q_end = _final_overlaps(traj, length, simulated=n is not None)
        P_final = np.abs(P_end).max(axis=-1)
        recovered = (P_final >= recovery).sum(axis=-1)

    label = np.full((B, R), FAILED, dtype=np.int8)
    label[recovered == d] = CONVERGED
    label[(recovered > 0) & (recovered < d)] = PARTIAL
    label[oscillating] = OSCILLATING
    label[(traj.status != Status.OK) | ~finite] = ERROR

    end_growth = np.full((B, R), np.nan)
    if params is not None and n is None:
        end_growth = _end_growth(traj, params, label != ERROR)
        # A state still a distance delta from rest has eigenvalues off by
        # about delta (the second derivatives are of order one), so the
        # remaining motion widens the margin.
        margin = STABILITY_TOL + amplitude + np.nan_to_num(drift)
        settled = np.isin(label, (CONVERGED, FAILED, PARTIAL))
        label[settled & (end_growth > margin)] = OSCILLATING

    diagnostics = {
        "amplitude": amplitude,
        "amplitude_trend": ratio,
        "growth_rate": growth,
        "amplitude_floor": floor,
        "period": period,
        "drift": drift,
        "end_growth": end_growth,
        "q_final": q_end,
        "P_final": P_final,
        "recovered": np.where(finite, recovered, np.nan),
    }
    for name, value in diagnostics.items():
        value = np.array(value, dtype=np.float64)
        value[label == ERROR] = np.nan
        diagnostics[name] = value
    return Classification(label=label, diagnostics=diagnostics)


def _end_growth(traj: Trajectories, params: Parameters, which) -> np.ndarray:
    """Largest real part of the Jacobian's eigenvalues at each end state."""
    points, replicas = np.nonzero(which)
    growth = np.full(which.shape, np.nan)
    states = end_states(traj)[points, replicas]
    growth[points, replicas] = end_state_growth(states, params, points)
    return growth


def _components(traj: Trajectories) -> np.ndarray:
    """``q``, ``P``, ``r`` and the upper off-diagonal of ``S``: (B, R, T, C)."""
    B, R, T, d = traj.q.shape
    upper = np.triu_indices(d, k=1)
    return np.concatenate(
        [
            traj.q,
            traj.P.reshape(B, R, T, d * d),
            traj.r,
            traj.S[..., upper[0], upper[1]],
        ],
        axis=-1,
    )


def _window_count(T: int):
    """How many windows fit in the last half, and their length in samples."""
    length = max(T // (2 * WINDOWS), 4)
    windows = min(WINDOWS, T // length)
    if windows < 2:
        # Too short for a trend: one window over everything.
        return 1, T
    return windows, length


def _spacing(times: np.ndarray) -> float:
    if times.size < 2:
        return 1.0
    return float(times[-1] - times[0]) / (times.size - 1)


def _window_amplitudes(state, times, windows: int, length: int):
    """Amplitude (B, R, windows) and mean state (B, R, windows, C) per window."""
    T = state.shape[2]
    amplitudes = []
    means = []
    for w in range(windows):
        stop = T - (windows - 1 - w) * length
        x = state[:, :, stop - length : stop]
        t = times[stop - length : stop]
        t = t - t.mean()
        mean = x.mean(axis=2)
        slope = np.einsum("t,brtc->brc", t, x - mean[:, :, None]) / max(
            t @ t, np.finfo(float).tiny
        )
        residual = x - mean[:, :, None] - slope[:, :, None] * t[:, None]
        rms = np.sqrt((residual**2).mean(axis=2))
        amplitudes.append(np.sqrt(2) * rms.max(axis=-1))
        means.append(mean)
    return np.stack(amplitudes, axis=-1), np.stack(means, axis=-2)


def _trend(amplitudes, window_time: float):
    """Least-squares ratio per window of log amplitude, and the growth rate."""
    windows = amplitudes.shape[-1]
    if windows < 2:
        shape = amplitudes.shape[:-1]
        return np.full(shape, np.nan), np.full(shape, np.nan)
    k = np.arange(windows) - (windows - 1) / 2
    log_amplitude = np.log(np.maximum(amplitudes, np.finfo(float).tiny))
    slope = (log_amplitude * k).sum(axis=-1) / (k @ k)
    return np.exp(slope), slope / window_time


def _floor(n, B: int, R: int) -> np.ndarray:
    if n is None:
        return np.full((B, R), ODE_FLOOR)
    n = np.broadcast_to(np.asarray(n, dtype=np.float64), (B,))
    floor = np.maximum(ODE_FLOOR, NOISE_FLOOR / np.sqrt(n))
    return np.broadcast_to(floor[:, None], (B, R)).copy()


def _final_overlaps(traj: Trajectories, length: int, *, simulated: bool):
    """``P`` (B, R, d, d) and ``q`` (B, R, d) at the end.

    The ODE's last sample is its best estimate of where it settles; a
    simulation's last sample carries its ``1/sqrt(n)`` noise, so it is
    averaged over the last window.
    """
    if not simulated:
        return traj.P[:, :, -1], traj.q[:, :, -1]
    return traj.P[:, :, -length:].mean(axis=2), traj.q[:, :, -length:].mean(axis=2)


def _detrended(state, times, span: int) -> np.ndarray:
    """The last ``span`` samples less a straight line per component."""
    x = state[:, :, -span:]
    t = times[-span:]
    t = t - t.mean()
    x = x - x.mean(axis=2, keepdims=True)
    slope = np.einsum("t,brtc->brc", t, x) / max(t @ t, np.finfo(float).tiny)
    return x - slope[:, :, None] * t[:, None]


def _sign_changes(state, times, span: int) -> np.ndarray:
    """Sign changes about its line of the strongest component, (B, R)."""
    x = _detrended(state, times, span)
    strongest = np.argmax((x**2).sum(axis=2), axis=-1)
    x = np.take_along_axis(x, strongest[:, :, None, None], axis=-1)[..., 0]
    return (np.diff(np.signbit(x), axis=-1)).sum(axis=-1)


def _period(state, times, span: int) -> np.ndarray:
    """Period of the strongest component over the last ``span`` samples.

    The peak of a Hann-windowed periodogram, zero-padded four times and
    refined by a parabola through the three highest bins. (B, R); NaN where
    there is no peak away from zero frequency.
    """
    x = _detrended(state, times, span)
    strongest = np.argmax((x**2).sum(axis=2), axis=-1)
    x = np.take_along_axis(x, strongest[:, :, None, None], axis=-1)[..., 0]

    padded = 4 * span
    power = np.abs(np.fft.rfft(x * np.hanning(span), n=padded, axis=-1)) ** 2
    power[..., 0] = 0.0
    peak = np.argmax(power, axis=-1)
    inner = np.clip(peak, 1, power.shape[-1] - 2)
    left = np.take_along_axis(power, (inner - 1)[..., None], -1)[..., 0]
    middle = np.take_along_axis(power, inner[..., None], -1)[..., 0]
    right = np.take_along_axis(power, (inner + 1)[..., None], -1)[..., 0]
    curvature = left - 2 * middle + right
    shift = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    frequency = (inner + np.clip(shift, -0.5, 0.5)) / (padded * _spacing(times))
    return np.where((peak > 0) & (frequency > 0), 1.0 / frequency, np.nan)
