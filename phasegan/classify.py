"""Trajectory -> regime label and diagnostics (MODEL.md section 7).

Interface used by the sweep engine; the rules themselves are documented on
`classify`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phasegan.model.trajectories import Status, Trajectories

#: Label codes, in the order of the store's ``flag_values``.
LABELS = ("converged", "oscillating", "failed", "partial", "error")
CONVERGED, OSCILLATING, FAILED, PARTIAL, ERROR = range(5)
NOT_COMPUTED = -1


@dataclass(frozen=True)
class Diagnostic:
    """Description of one diagnostic variable the classifier returns."""

    name: str
    long_name: str
    units: str = "1"
    per_feature: bool = False  # True: shape (B, R, d); False: (B, R)


#: Every diagnostic `classify` returns, in a fixed order.
DIAGNOSTICS = (
    Diagnostic("amplitude", "peak-to-peak amplitude of the state, last window"),
    Diagnostic(
        "amplitude_trend",
        "amplitude ratio between successive windows at the end (< 1 decays)",
    ),
    Diagnostic("period", "period of the oscillation (NaN where none)", "time"),
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
    traj: Trajectories, *, recovery: float = 0.5, n=None
) -> Classification:
    """Label every run of ``traj``.

    Parameters
    ----------
    traj : Trajectories
    recovery : float
        Feature ``i`` is recovered when ``max_j |P_ij| >= recovery``.
    n : ndarray of int, shape (B,), optional
        Ambient dimension of simulated runs; sets the fluctuation floor
        ``~ 1/sqrt(n)`` below which a wobble is not an oscillation.
        ``None`` for the ODE.
    """
    B, R, T, d = traj.q.shape
    window = max(T // 8, 2)
    state = np.concatenate(
        [traj.q, traj.P.reshape(B, R, T, d * d), traj.r], axis=-1
    )
    last = state[:, :, -window:]
    amplitude = np.nanmax(np.ptp(last, axis=2), axis=-1)
    before = state[:, :, -2 * window : -window]
    amplitude_before = np.nanmax(np.ptp(before, axis=2), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        trend = amplitude / amplitude_before

    floor = 1e-3 if n is None else 4.0 / np.sqrt(np.asarray(n))[:, None]
    P_final = np.abs(traj.P[:, :, -1]).max(axis=-1)
    recovered = (P_final >= recovery).sum(axis=-1)

    label = np.full((B, R), FAILED, dtype=np.int8)
    label[recovered == d] = CONVERGED
    label[(recovered > 0) & (recovered < d)] = PARTIAL
    label[(amplitude > floor) & (trend > 0.9)] = OSCILLATING
    label[traj.status != Status.OK] = ERROR

    diagnostics = {
        "amplitude": amplitude,
        "amplitude_trend": trend,
        "period": np.full((B, R), np.nan),
        "q_final": traj.q[:, :, -1],
        "P_final": P_final,
        "recovered": recovered.astype(np.float64),
    }
    return Classification(label=label, diagnostics=diagnostics)
