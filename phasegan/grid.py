"""Axes -> points -> blocks: how a sweep is cut into tasks.

The grid is the product of the spec's axes. A point's flat index is its
C-order index over the axes (the first axis varies slowest); simulations draw
their random streams from it, so results never depend on how the grid was cut.

A block is a hyper-rectangle of points whose shape is the store's chunk shape
along the grid dimensions, so every block is exactly one Zarr chunk of every
variable (see `phasegan.store`): `Grid.slices` starts each block at a multiple
of the chunk shape, and `phasegan.store.write_region` refuses any region that
is not one whole chunk, so no two tasks ever write the same chunk. Block
shapes come from an estimate of what a point costs, aiming at
`TARGET_BLOCK_SECONDS` of work per task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from phasegan.model.parameters import Parameters
from phasegan.spec import AXIS_FIELDS, MAX_BLOCK_BYTES, MAX_BLOCKS, Spec

#: Work per task: long enough that scheduling and writing are a small share,
#: short enough that a killed run loses little.
TARGET_BLOCK_SECONDS = 5.0
#: At least this many tasks when the grid has the points, so a cluster's
#: workers all get work and the progress bar moves.
MIN_BLOCKS = 16

#: Rough single-core costs, measured on a 2-core test machine; they only shape
#: blocks and the estimate `phasegan validate` prints. The ODE's cost per
#: unit of model time, times d^2: measured 0.4-0.75 us for d = 1 (it depends
#: on the region of the grid), 1-1.7 us for d = 2, 3 us for d = 4, 20 us for
#: d = 8. An estimate too high makes blocks short, and the fixed cost of a
#: task (its store writes, ~20-40 ms) a larger share.
_ODE_SECONDS_PER_TIME = 5e-7  # one point, per unit of model time, d = 1
_SIM_SECONDS_PER_FLOP = 5e-9  # one SGD step costs ~ 4 n d flops
_REDUCED_SECONDS_PER_STEP = 3e-7  # one exact step in the (2d+3) frame, d = 1


def point_cost(spec: Spec) -> float:
    """Estimated CPU seconds to compute one grid point (all its seeds)."""
    if spec.method == "ode":
        return spec.t_max * _ODE_SECONDS_PER_TIME * spec.d**2
    n = _mean_n(spec)
    steps = spec.t_max * n
    if spec.method == "sim":
        per_run = steps * 4 * n * spec.d * _SIM_SECONDS_PER_FLOP
    else:
        per_run = steps * _REDUCED_SECONDS_PER_STEP * ((2 * spec.d + 3) / 5) ** 3
    return per_run * spec.replicas


def _mean_n(spec: Spec) -> float:
    if "n" in spec.fixed:
        return float(spec.fixed["n"])
    return float(np.mean(spec.axis("n").values))


def block_shape(spec: Spec) -> tuple:
    """Chunk shape along the grid axes, from the cost and memory of a point.

    A pure function of the spec: the same spec always gives the same blocks,
    whichever machine or number of workers runs it.
    """
    points = spec.size
    wanted = TARGET_BLOCK_SECONDS / max(point_cost(spec), 1e-9)
    point_bytes = spec.run_bytes * spec.replicas
    most = max(1, MAX_BLOCK_BYTES // point_bytes)
    fewest = math.ceil(points / MAX_BLOCKS)
    per_block = int(min(max(wanted, 1), points / MIN_BLOCKS, most))
    per_block = max(per_block, fewest, 1)

    # Fill the last axes first, so a block is contiguous in the flat index;
    # split each axis into near-equal parts rather than leaving a ragged end.
    shape = [1] * len(spec.shape)
    room = per_block
    for i in reversed(range(len(spec.shape))):
        length = spec.shape[i]
        size = min(length, max(room, 1))
        parts = math.ceil(length / size)
        shape[i] = math.ceil(length / parts)
        room //= shape[i]
    return tuple(shape)


@dataclass(frozen=True)
class Grid:
    """The points of a spec, cut into blocks of shape ``chunks``.

    Parameters
    ----------
    spec : Spec
    chunks : tuple of int
        Block shape along the grid axes; `block_shape` for a new store, the
        store's own chunks when resuming.
    """

    spec: Spec
    chunks: tuple

    @classmethod
    def for_spec(cls, spec: Spec) -> Grid:
        return cls(spec, block_shape(spec))

    @property
    def counts(self) -> tuple:
        """Number of blocks along each axis."""
        return tuple(
            math.ceil(length / size)
            for length, size in zip(self.spec.shape, self.chunks)
        )

    @property
    def size(self) -> int:
        """Number of blocks; block ids run over ``range(size)``."""
        return math.prod(self.counts)

    def slices(self, block: int) -> tuple:
        """The region of block ``block`` (C-order id over the block grid)."""
        position = np.unravel_index(block, self.counts)
        return tuple(
            slice(p * size, min((p + 1) * size, length))
            for p, size, length in zip(position, self.chunks, self.spec.shape)
        )

    def region_shape(self, block: int) -> tuple:
        return tuple(s.stop - s.start for s in self.slices(block))

    def point_ids(self, block: int) -> np.ndarray:
        """Flat grid indices of the block's points, in C order, shape (B,)."""
        ranges = [np.arange(s.start, s.stop) for s in self.slices(block)]
        mesh = np.meshgrid(*ranges, indexing="ij")
        return np.ravel_multi_index([m.ravel() for m in mesh], self.spec.shape).astype(
            np.int64
        )

    def parameters(self, block: int) -> Parameters:
        """`Parameters` of the block's points, in the order of `point_ids`."""
        return parameters_at(self.spec, self.point_ids(block))

    def blocks_to_run(self, label: np.ndarray) -> list:
        """Ids of the blocks with a point still at ``label == -1``.

        ``label`` has the grid's shape, plus a trailing seed axis for
        simulations.
        """
        missing = label < 0
        if missing.ndim > len(self.spec.shape):
            missing = missing.any(axis=tuple(range(len(self.spec.shape), missing.ndim)))
        return [b for b in range(self.size) if missing[self.slices(b)].any()]


def parameters_at(spec: Spec, point_ids) -> Parameters:
    """`Parameters` of the points with the given flat grid indices, shape (B,)."""
    point_ids = np.asarray(point_ids, dtype=np.int64)
    index = np.unravel_index(point_ids, spec.shape)
    columns = dict(spec.fixed)
    for axis, positions in zip(spec.axes, index):
        values = np.asarray(axis.values)[positions]
        for field in AXIS_FIELDS[axis.name]:
            columns[field] = values
    return parameters_from(spec, columns, len(point_ids))


def parameters_from(spec: Spec, columns: dict, size: int) -> Parameters:
    """`Parameters` from ``field -> value or array (size,)``; lam per feature."""
    columns = dict(columns)
    for field in ("lam", "lam_gen"):
        value = np.asarray(columns[field], dtype=np.float64)
        if value.ndim == 1 and value.shape[0] == size and field not in spec.fixed:
            value = value[:, None]  # an axis value holds for every feature
        columns[field] = np.broadcast_to(value, (size, spec.d))
    for field, value in columns.items():
        if field not in ("lam", "lam_gen"):
            columns[field] = np.broadcast_to(value, (size,))
    return Parameters(**columns)
