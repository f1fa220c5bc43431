"""Model parameters for a block of grid points (MODEL.md sections 1-3).

A `Parameters` holds ``B`` parameter points that share the number of features
``d``. Every method of `phasegan.model` takes one, so a worker integrates a
whole block of the sweep grid in one call; a single point is a block of one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from phasegan.errors import ParameterError

#: Fields stored per point, with the shape of one point's value ("" = scalar).
POINT_FIELDS = {
    "lam": "d",
    "lam_gen": "d",
    "noise_true": "",
    "noise_gen": "",
    "tau": "",
    "tau_gen": "",
    "q0": "",
    "P0": "",
    "n": "",
}


@dataclass(frozen=True)
class Parameters:
    """``B`` parameter points of the GAN model, all with ``d`` features.

    Attributes
    ----------
    lam : ndarray, shape (B, d)
        Feature strengths of the real data, the diagonal of ``Lambda``.
    lam_gen : ndarray, shape (B, d)
        Feature strengths of the generator, the diagonal of ``Lambda~``.
    noise_true, noise_gen : ndarray, shape (B,)
        Background noise levels ``eta_T`` and ``eta_G``.
    tau, tau_gen : ndarray, shape (B,)
        Learning rates of the discriminator and of the generator.
    q0, P0 : ndarray, shape (B,)
        Initial overlaps: ``q = q0 (1..1)``, ``P = P0 I`` (MODEL.md section 3).
    n : ndarray of int64, shape (B,)
        Ambient dimension; used by the simulations only (0 for the ODE).
    """

    lam: np.ndarray
    lam_gen: np.ndarray
    noise_true: np.ndarray
    noise_gen: np.ndarray
    tau: np.ndarray
    tau_gen: np.ndarray
    q0: np.ndarray
    P0: np.ndarray
    n: np.ndarray

    def __post_init__(self):
        lam = np.atleast_2d(np.asarray(self.lam, dtype=np.float64))
        size = lam.shape[0]
        object.__setattr__(self, "lam", lam)
        lam_gen = np.asarray(self.lam_gen, dtype=np.float64)
        object.__setattr__(
            self, "lam_gen", np.broadcast_to(lam_gen, lam.shape).copy()
        )
        for name in ("noise_true", "noise_gen", "tau", "tau_gen", "q0", "P0"):
            value = np.broadcast_to(
                np.asarray(getattr(self, name), dtype=np.float64), (size,)
            ).copy()
            object.__setattr__(self, name, value)
        n = np.broadcast_to(np.asarray(self.n, dtype=np.int64), (size,)).copy()
        object.__setattr__(self, "n", n)

    @classmethod
    def single(
        cls,
        *,
        d: int = 1,
        lam=1.0,
        lam_gen=1.0,
        noise=None,
        noise_true=None,
        noise_gen=None,
        tau: float = 0.5,
        tau_gen: float = 0.5,
        q0: float = 0.2,
        P0: float = 0.1,
        n: int = 0,
    ) -> Parameters:
        """One parameter point (a block of size 1); ``noise`` sets both noises."""
        if noise is not None:
            noise_true = noise if noise_true is None else noise_true
            noise_gen = noise if noise_gen is None else noise_gen
        if noise_true is None or noise_gen is None:
            raise ParameterError(
                "noise", "give noise, or both noise_true and noise_gen"
            )
        lam_row = _feature_row("lam", lam, d)
        lam_gen_row = _feature_row("lam_gen", lam_gen, d)
        return cls(
            lam=lam_row[None, :],
            lam_gen=lam_gen_row[None, :],
            noise_true=noise_true,
            noise_gen=noise_gen,
            tau=tau,
            tau_gen=tau_gen,
            q0=q0,
            P0=P0,
            n=n,
        ).validated()

    @classmethod
    def stack(cls, points: list[Parameters]) -> Parameters:
        """Concatenate blocks with the same ``d`` into one block."""
        return cls(
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in points])
                for f in fields(cls)
            }
        )

    @property
    def size(self) -> int:
        """Number of points ``B`` in the block."""
        return self.lam.shape[0]

    @property
    def d(self) -> int:
        """Number of features."""
        return self.lam.shape[1]

    def point(self, index: int) -> Parameters:
        """The block of size 1 holding point ``index``."""
        return self.take(np.array([index]))

    def take(self, indices) -> Parameters:
        """The sub-block of the given point indices."""
        return replace(
            self, **{f.name: getattr(self, f.name)[indices] for f in fields(self)}
        )

    def validated(self, *, simulation: bool = False) -> Parameters:
        """Check every rule of MODEL.md; return self or raise `ParameterError`.

        With ``simulation=True`` the ambient dimension must also leave room for
        the ``2d + 3`` directions the reduced simulation works in.
        """
        for name in ("noise_true", "noise_gen", "tau", "tau_gen"):
            _require(name, getattr(self, name), lambda v: v >= 0, "must be >= 0")
        for name in ("lam", "lam_gen"):
            _require(name, getattr(self, name), lambda v: v >= 0, "must be >= 0")
        _require(
            "P0", self.P0, lambda v: np.abs(v) < 1, "must satisfy |P0| < 1"
        )
        _require(
            "q0",
            self.q0,
            lambda v: self.d * v**2 < 1,
            f"must satisfy d q0^2 < 1 (d = {self.d})",
        )
        if simulation:
            _require(
                "n",
                self.n,
                lambda v: v >= 2 * self.d + 3,
                f"must be >= 2d + 3 = {2 * self.d + 3} for a simulation",
            )
        return self

    def decay_rate(self) -> np.ndarray:
        """``a = tau^2 (eta_T^2 + eta_G^2) / 2`` of MODEL.md section 6, shape (B,)."""
        return self.tau**2 * (self.noise_true**2 + self.noise_gen**2) / 2


def _feature_row(name: str, value, d: int) -> np.ndarray:
    if not isinstance(d, (int, np.integer)) or d < 1:
        raise ParameterError("d", "must be an integer >= 1", d)
    row = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if row.ndim != 1 or row.size not in (1, d):
        raise ParameterError(
            name, f"must be a scalar or a list of d = {d} values", value
        )
    return np.broadcast_to(row, (d,)).copy()


def _require(name, values, rule, text):
    values = np.asarray(values)
    ok = rule(values) & np.isfinite(values)
    if not np.all(ok):
        bad = values[~ok].ravel()[0]
        raise ParameterError(name, text, bad.item())
