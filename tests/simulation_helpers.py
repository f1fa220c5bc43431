"""Shared statistics for the simulation tests: families of two-sample tests.

A family of ``m`` two-sample Kolmogorov-Smirnov tests rejects when any
p-value is below ``alpha / m`` (Bonferroni). Under the null hypothesis (the
two samples come from one law) the family rejects with probability at most
``alpha``, whatever the dependence between its tests: that is the stated
false-alarm rate of a test that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class Family:
    """The outcome of a family of two-sample tests.

    Attributes
    ----------
    names : list of str
    p_values : ndarray, shape (m,)
    alpha : float
        Family-wise false-alarm rate.
    """

    names: list
    p_values: np.ndarray
    alpha: float

    @property
    def threshold(self) -> float:
        return self.alpha / len(self.p_values)

    @property
    def rejected(self) -> bool:
        return bool(np.min(self.p_values) < self.threshold)

    def report(self) -> str:
        worst = int(np.argmin(self.p_values))
        return (
            f"smallest p = {self.p_values[worst]:.2e} ({self.names[worst]}) "
            f"against alpha/m = {self.threshold:.2e} over {len(self.names)} tests"
        )


def ks_family(samples: dict, alpha: float) -> Family:
    """Two-sample KS test for each ``name -> (first, second)`` of ``samples``."""
    names = list(samples)
    p_values = np.array([stats.ks_2samp(*samples[name]).pvalue for name in names])
    return Family(names, p_values, alpha)


def order_parameters(traj, point: int, sample: int) -> dict:
    """Every component of ``q, P, r`` of one point at one sample time.

    Returns ``name -> values over the replicas`` (shape (R,) each).
    """
    d = traj.d
    out = {}
    for i in range(d):
        out[f"q[{i}]"] = traj.q[point, :, sample, i]
        out[f"r[{i}]"] = traj.r[point, :, sample, i]
        for j in range(d):
            out[f"P[{i},{j}]"] = traj.P[point, :, sample, i, j]
    return out


def paired(first: dict, second: dict, label: str = "") -> dict:
    """``name -> (first[name], second[name])``, names suffixed by ``label``."""
    return {f"{name}{label}": (first[name], second[name]) for name in first}
