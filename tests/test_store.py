"""The Zarr store: layout, fill values, provenance, block writes, progress."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr
from sweep_helpers import TINY, tiny_spec

from phasegan import store
from phasegan.classify import DIAGNOSTICS, LABELS
from phasegan.errors import InputError, StoreMismatchError
from phasegan.grid import Grid
from phasegan.spec import parse_spec


def simulation_spec(path):
    return parse_spec(
        TINY.replace("method: ode", "method: reduced") + "sim: {n: 100, seeds: 3}\n",
        [f"store={path}", "model.d=2"],
    )


@pytest.fixture(params=["ode", "reduced"])
def new_store(request, tmp_path):
    path = tmp_path / "s.zarr"
    spec = tiny_spec(path) if request.param == "ode" else simulation_spec(path)
    grid = Grid.for_spec(spec)
    store.create(spec, path, grid.chunks)
    return spec, grid, path


def test_layout_and_attributes(new_store):
    spec, grid, path = new_store
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # plain xarray reads it without a warning
        ds = xr.open_zarr(path)

    lead = ("noise", "tau_gen") + (("seed",) if spec.simulation else ())
    assert ds["label"].dims == lead
    assert ds["q"].dims == lead + ("time", "feature")
    assert ds["P"].dims == lead + ("time", "feature", "gen_feature")
    assert ds["r"].dims == lead + ("time", "gen_feature")
    assert ds["label"].dtype == np.int8
    assert ds["q"].dtype == np.float64
    assert ds["label"].attrs["flag_values"] == [0, 1, 2, 3, 4]
    assert ds["label"].attrs["flag_meanings"] == (
        "converged oscillating failed partial error"
    )
    for name in ("q", "P", "r") + tuple(d.name for d in DIAGNOSTICS):
        assert ds[name].attrs["long_name"]
        assert "units" in ds[name].attrs
    assert np.array_equal(ds["noise"].values, spec.axis("noise").values)
    assert np.array_equal(ds["time"].values, spec.times)

    attrs = ds.attrs
    assert parse_spec(attrs["spec"]).hash == attrs["spec_hash"] == spec.hash
    for key in ("phasegan", "numpy", "scipy", "dask", "xarray", "zarr"):
        assert attrs[f"{key}_version"]
    assert attrs["created"]

    metadata = json.loads((path / "zarr.json").read_text())
    assert metadata["zarr_format"] == 3
    chunks = ds["q"].encoding["chunks"]
    assert chunks[: len(grid.chunks)] == grid.chunks
    assert chunks[len(grid.chunks) :] == ds["q"].shape[len(grid.chunks) :]


def test_created_store_holds_metadata_only(new_store):
    spec, grid, path = new_store
    for name in ["label", "q", "P", "r", "status", "message"]:
        assert not (path / name / "c").exists(), name
    assert store.read_label(path).min() == -1 == store.read_label(path).max()
    assert store.progress(path).done == 0


def test_label_written_last(new_store, monkeypatch):
    spec, grid, path = new_store
    order = []

    class Recorder:
        chunks = shape = ()  # a region of no axes is one whole chunk

        def __init__(self, name):
            self.name = name

        def __setitem__(self, key, value):
            order.append(self.name)

    class Group:
        def __getitem__(self, name):
            return Recorder(name)

    monkeypatch.setattr(store.zarr, "open_group", lambda *a, **k: Group())
    store.write_region(path, (), {"label": 0, "q": 0, "message": 0, "P": 0})
    assert order[-1] == "label" and sorted(order) == ["P", "label", "message", "q"]


def test_progress_counts_labels(new_store):
    spec, grid, path = new_store
    shape = grid.region_shape(0) + ((spec.replicas,) if spec.simulation else ())
    store.write_region(path, grid.slices(0), {"label": np.full(shape, 2, np.int8)})
    progress = store.progress(path)
    assert progress.done == int(np.prod(shape))
    assert progress.total == spec.runs
    assert progress.counts == {
        name: (progress.done if name == "failed" else 0) for name in LABELS
    }
    assert not progress.complete


def test_store_of_another_spec_is_refused(new_store):
    spec, grid, path = new_store
    store.check_matches(path, spec)
    other = parse_spec(spec.text, ["model.tau=0.25"])
    with pytest.raises(StoreMismatchError) as info:
        store.check_matches(path, other)
    assert info.value.field == "store"


def test_foreign_directories_are_never_removed(tmp_path):
    (tmp_path / "precious.txt").write_text("keep")
    with pytest.raises(InputError):
        store.remove(tmp_path)
    assert (tmp_path / "precious.txt").exists()


def test_unwritable_location(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError) as info:
        store.check_writable(blocker / "s.zarr")
    assert info.value.field == "store"


def test_a_store_with_no_new_block_for_long_looks_stalled(new_store):
    spec, grid, path = new_store
    progress = store.progress(path)
    assert not progress.stalled()  # just created
    assert progress.stalled(patience=0.0)
    assert progress.eta is None
