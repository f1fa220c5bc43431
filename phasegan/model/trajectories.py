"""What every method returns: sampled order parameters and a status per run.

The ODE, the full simulation and the reduced simulation all answer with a
`Trajectories`, so the sweep engine and the classifier never care which method
ran. A numerical failure is a status, never an exception (STYLE.md, habit 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Status(IntEnum):
    """Outcome of one run (one point, one replica)."""

    OK = 0
    NONFINITE = 1  # the state became NaN or infinite
    BUDGET = 2  # the solver ran out of its step budget
    INVALID = 3  # the parameters were rejected before the run started


@dataclass
class Trajectories:
    """Order parameters of ``B`` points x ``R`` replicas at ``T`` times.

    The ODE is deterministic and returns ``R = 1``. Samples after a failure
    (status other than OK) are NaN.

    Attributes
    ----------
    times : ndarray, shape (T,)
    q : ndarray, shape (B, R, T, d)
        ``q = U^T w`` (MODEL.md section 3).
    P : ndarray, shape (B, R, T, d, d)
        ``P = U^T V``; ``P[..., i, j]`` is feature ``i`` against generator
        column ``j``.
    r : ndarray, shape (B, R, T, d)
        ``r = V^T w``.
    S : ndarray, shape (B, R, T, d, d)
        ``S = V^T V``, unit diagonal.
    status : ndarray of int8, shape (B, R)
        A `Status` code per run.
    message : ndarray of str, shape (B, R)
        Why a run failed ('' when it did not).
    """

    times: np.ndarray
    q: np.ndarray
    P: np.ndarray
    r: np.ndarray
    S: np.ndarray
    status: np.ndarray
    message: np.ndarray

    @classmethod
    def empty(cls, points: int, replicas: int, times: np.ndarray, d: int):
        """NaN-filled trajectories with every status OK, to be filled in."""
        T = len(times)
        nan = np.nan
        return cls(
            times=np.asarray(times, dtype=np.float64),
            q=np.full((points, replicas, T, d), nan),
            P=np.full((points, replicas, T, d, d), nan),
            r=np.full((points, replicas, T, d), nan),
            S=np.full((points, replicas, T, d, d), nan),
            status=np.zeros((points, replicas), dtype=np.int8),
            message=np.full((points, replicas), "", dtype=object),
        )

    @property
    def points(self) -> int:
        return self.q.shape[0]

    @property
    def replicas(self) -> int:
        return self.q.shape[1]

    @property
    def d(self) -> int:
        return self.q.shape[-1]

    def fail(self, point: int, replica: int, status: Status, message: str):
        """Mark one run as failed from the first non-finite sample on."""
        self.status[point, replica] = status
        self.message[point, replica] = message
        bad = ~np.isfinite(self.q[point, replica]).all(axis=-1)
        if bad.any():
            first = int(np.argmax(bad))
            for array in (self.q, self.P, self.r, self.S):
                array[point, replica, first:] = np.nan
