"""One interface for every method, so the sweep engine never cares which runs.

A method is a function ``solve(params, times, options) -> Trajectories``:

- ``ode``: the macroscopic ODE (MODEL.md section 3), one replica;
- ``sim``: online SGD in dimension ``n`` (section 2), ``options.replicas``;
- ``reduced``: the exact reduced simulation (section 5), same law as ``sim``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from phasegan.model.parameters import Parameters
from phasegan.model.trajectories import Trajectories

#: Method name -> (module, function). Imported on first use: numba kernels
#: compile (or load from cache) only in the processes that run them.
_REGISTRY = {
    "ode": ("phasegan.model.ode", "solve"),
    "sim": ("phasegan.model.simulate", "solve"),
    "reduced": ("phasegan.model.reduced", "solve"),
}

METHODS = tuple(_REGISTRY)


@dataclass(frozen=True)
class RunOptions:
    """Settings shared by the methods; each reads the ones it needs.

    Attributes
    ----------
    rtol, atol : float
        ODE accuracy (relative and absolute tolerance per step).
    max_steps : int
        ODE step budget per point; a point over budget gets `Status.BUDGET`.
    replicas : int
        Simulations: independent runs per point (the store's ``seed`` axis).
    root_seed : int
        Simulations: the root of every random stream.
    point_ids : ndarray of int64, shape (B,), optional
        Simulations: the flat grid index of each point of the block. A run's
        random stream is drawn from ``SeedSequence(root_seed,
        spawn_key=(point_id, replica))``, so it does not depend on which worker
        ran it or on how the grid was cut into blocks. Defaults to
        ``0..B-1``.
    """

    rtol: float = 1e-8
    atol: float = 1e-10
    max_steps: int = 2_000_000
    replicas: int = 1
    root_seed: int = 0
    point_ids: np.ndarray | None = None

    def ids(self, size: int) -> np.ndarray:
        if self.point_ids is None:
            return np.arange(size, dtype=np.int64)
        return np.asarray(self.point_ids, dtype=np.int64)


Solver = Callable[[Parameters, np.ndarray, RunOptions], Trajectories]


def get_method(name: str) -> Solver:
    """The solve function of method ``name`` (one of `METHODS`)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; use one of {', '.join(METHODS)}")
    module, function = _REGISTRY[name]
    return getattr(importlib.import_module(module), function)


def replica_generator(root_seed: int, point_id: int, replica: int):
    """The random generator of one run: fixed by (root seed, point, replica)."""
    sequence = np.random.SeedSequence(
        int(root_seed), spawn_key=(int(point_id), int(replica))
    )
    return np.random.Generator(np.random.PCG64(sequence))
