"""Grid points and blocks: C-order indices, exact cover, block parameters."""

from __future__ import annotations

import numpy as np
import pytest
from sweep_helpers import TINY

from phasegan.grid import MIN_BLOCKS, Grid, block_shape, parameters_at
from phasegan.spec import parse_spec


def three_axes(num=(4, 3, 5)):
    return parse_spec(
        TINY.replace("method: ode", "method: reduced")
        + f"  lambda: {{start: 0.5, stop: 2.0, num: {num[2]}}}\n"
        + "sim: {n: 100, seeds: 2}\n",
        [
            f"grid.noise.num={num[0]}",
            f"grid.tau_gen.values={np.linspace(0.1, 1, num[1]).tolist()}",
        ],
    )


@pytest.mark.parametrize("chunks", [(1, 1, 1), (2, 3, 5), (3, 2, 2), (4, 3, 5)])
def test_blocks_cover_every_point_once_in_c_order(chunks):
    spec = three_axes()
    grid = Grid(spec, chunks)
    seen = np.concatenate([grid.point_ids(b) for b in range(grid.size)])
    assert sorted(seen) == list(range(spec.size))

    # Inside a block the points run in C order over its region.
    for block in range(grid.size):
        region = np.arange(spec.size).reshape(spec.shape)[grid.slices(block)]
        assert np.array_equal(grid.point_ids(block), region.ravel())
        assert region.shape == grid.region_shape(block)


def test_block_parameters_follow_the_axes():
    spec = three_axes()
    grid = Grid(spec, (2, 2, 2))
    for block in range(grid.size):
        params = grid.parameters(block)
        index = np.unravel_index(grid.point_ids(block), spec.shape)
        noise = np.asarray(spec.axis("noise").values)[index[0]]
        tau_gen = np.asarray(spec.axis("tau_gen").values)[index[1]]
        lam = np.asarray(spec.axis("lambda").values)[index[2]]
        assert np.array_equal(params.noise_true, noise)
        assert np.array_equal(params.noise_gen, noise)
        assert np.array_equal(params.tau_gen, tau_gen)
        assert np.array_equal(params.lam[:, 0], lam)
        assert np.all(params.tau == 0.5) and np.all(params.n == 100)


def test_lambda_axis_sets_every_feature():
    spec = parse_spec(TINY + "  lambda: {values: [0.5, 2.0]}\n", ["model.d=2"])
    params = parameters_at(spec, np.arange(spec.size))
    assert params.lam.shape == (spec.size, 2)
    assert np.array_equal(params.lam[:, 0], params.lam[:, 1])


@pytest.mark.parametrize("num", [(1, 1, 1), (4, 3, 5), (40, 7, 9), (200, 50, 3)])
def test_block_shape_is_deterministic_and_fits(num):
    spec = three_axes(num)
    shape = block_shape(spec)
    assert shape == block_shape(three_axes(num))
    assert all(1 <= c <= n for c, n in zip(shape, spec.shape))
    grid = Grid(spec, shape)
    if spec.size >= MIN_BLOCKS:
        assert grid.size >= MIN_BLOCKS


def test_blocks_to_run_finds_points_still_missing():
    spec = three_axes()
    grid = Grid(spec, (2, 2, 5))
    label = np.zeros(spec.shape + (spec.replicas,), dtype=np.int8)
    assert grid.blocks_to_run(label) == []
    label[3, 2, 4, 1] = -1  # one seed of one point
    missing = grid.blocks_to_run(label)
    assert len(missing) == 1
    assert 3 * 15 + 2 * 5 + 4 in grid.point_ids(missing[0])
