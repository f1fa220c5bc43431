"""Faults: killed workers, many writers, unwritten cells, points that cannot be
integrated, failed blocks, leftovers of interrupted writes, determinism.

Issue 6: nothing computed is lost, nothing incomplete looks complete, and
every error says what to fix. The clusters here run on 127.0.0.1 only.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr
from distributed import LocalCluster
from sweep_helpers import tiny_spec

from phasegan import store, task
from phasegan.grid import Grid

#: The three methods, with a sim section where they need one; small grids.
METHOD_SETS = {
    "ode": (),
    "reduced": ("method=reduced", "sim={n: 60, seeds: 3, seed: 11}"),
    "sim": ("method=sim", "sim={n: 40, seeds: 2, seed: 5}", "time.t_max=20"),
}


def method_spec(path, method, *overrides):
    return tiny_spec(path, *METHOD_SETS[method], *overrides)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes on 127.0.0.1 (with nannies, which
    restart a worker that dies)."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as local:
        yield local


# --- unwritten is not zero ----------------------------------------------------


def _zero(dtype):
    return "" if dtype.kind in "OUT" or str(dtype).startswith("Str") else 0


@pytest.mark.parametrize("method", list(METHOD_SETS))
def test_unwritten_cells_differ_from_computed_zeros_in_every_variable(tmp_path, method):
    path = tmp_path / "s.zarr"
    spec = method_spec(path, method)
    grid = Grid.for_spec(spec)
    assert grid.size >= 3
    store.create(spec, path, grid.chunks)

    # Block 0: every variable a computed zero ("" for text); block 1: a real
    # computed block; the last block: never written.
    group = zarr.open_group(str(path), mode="r")
    names = [v.name for v in store.variables(spec)]
    zeros = {}
    for name in names:
        array = group[name]
        shape = grid.region_shape(0) + array.shape[len(grid.chunks) :]
        zeros[name] = np.full(shape, _zero(array.dtype), dtype=array.dtype)
    store.write_region(path, grid.slices(0), zeros)
    assert "error" not in task.compute_block(spec, str(path), grid.chunks, 1)

    metadata = json.loads((path / "zarr.json").read_text())
    assert metadata["zarr_format"] == 3
    ds = xr.open_zarr(path).load()
    assert sorted(ds.data_vars) == sorted(names), "a variable the test misses"
    for name, var in ds.data_vars.items():
        zero = _zero(var.dtype)
        written = var.isel(_block(grid, 0)).values
        computed = var.isel(_block(grid, 1)).values
        unwritten = var.isel(_block(grid, grid.size - 1)).values
        assert (written == zero).all(), name
        # Not zero, and not anything a computed run holds: NaN for floats,
        # -1 for integers, the fill text for strings.
        assert not (unwritten == zero).any(), name
        if var.dtype.kind == "f":
            assert np.isnan(unwritten).all(), name
        elif var.dtype.kind in "iu":
            assert (unwritten == -1).all() and (computed >= 0).all(), name
        else:
            assert (unwritten == store.MESSAGE_FILL).all(), name
            assert not (computed == store.MESSAGE_FILL).any(), name
        fill = metadata["consolidated_metadata"]["metadata"][name]["fill_value"]
        assert fill != zero, f"{name}: fill value {fill!r} is the zero"


def _block(grid, block) -> dict:
    """``isel`` indexers of a block's region."""
    return dict(zip([axis.name for axis in grid.spec.axes], grid.slices(block)))
