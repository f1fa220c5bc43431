"""The sweep engine on real Dask schedulers: results, resume, determinism."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from distributed import LocalCluster
from sweep_helpers import assert_stores_identical, store_files, tiny_spec

from phasegan import engine, store, task
from phasegan.classify import ERROR, classify
from phasegan.errors import InputError
from phasegan.grid import Grid, parameters_at
from phasegan.model.methods import RunOptions, get_method


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes on 127.0.0.1, shared by the tests of this module."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cluster):
    """The tiny sweep computed once on the 2-worker cluster."""
    path = tmp_path_factory.mktemp("reference") / "tiny.zarr"
    result = engine.run(tiny_spec(path), scheduler=cluster, show_progress=False)
    assert result.progress.complete and not result.failures
    return path


def test_store_matches_the_model_core_cell_by_cell(reference):
    spec = tiny_spec(reference)
    ds = xr.open_zarr(reference).load()
    solve = get_method("ode")
    for point in range(spec.size):
        params = parameters_at(spec, [point])
        traj = solve(params, spec.times, RunOptions())
        expected = classify(traj, recovery=spec.recovery, params=params)
        index = dict(zip(("noise", "tau_gen"), np.unravel_index(point, spec.shape)))
        cell = ds.isel(index)
        # The block kernel gives every point the same steps as a block of one
        # (tested bitwise in test_ode.py), so the store must match exactly.
        assert np.array_equal(cell["q"].values, traj.q[0, 0], equal_nan=True)
        assert np.array_equal(cell["P"].values, traj.P[0, 0], equal_nan=True)
        assert np.array_equal(cell["r"].values, traj.r[0, 0], equal_nan=True)
        assert cell["label"].item() == expected.label[0, 0]
        assert cell["status"].item() == traj.status[0, 0]
        for name, value in expected.diagnostics.items():
            assert np.array_equal(cell[name].values, value[0, 0], equal_nan=True), name
    labels = set(np.unique(ds["label"].values))
    assert {0, 1, 2} <= labels, "the tiny grid should show all three d = 1 regimes"


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_dask_schedulers_give_the_same_store(tmp_path, reference, scheduler):
    path = tmp_path / "tiny.zarr"
    result = engine.run(
        tiny_spec(path), scheduler=scheduler, workers=2, show_progress=False
    )
    assert result.blocks_run == result.blocks
    assert_stores_identical(path, reference)


def test_one_worker_and_two_workers_give_identical_stores(tmp_path, reference):
    path = tmp_path / "tiny.zarr"
    result = engine.run(tiny_spec(path), workers=1, show_progress=False)
    assert result.progress.complete
    assert_stores_identical(path, reference)


def test_rerun_of_a_complete_store_computes_nothing(reference):
    before = store_files(reference)
    result = engine.run(tiny_spec(reference), scheduler="sync", show_progress=False)
    assert result.blocks_run == 0
    assert store_files(reference) == before


def test_another_spec_is_refused_and_nothing_changes(reference):
    before = store_files(reference)
    with pytest.raises(InputError) as info:
        engine.run(tiny_spec(reference, "model.tau=0.3"), scheduler="sync")
    assert info.value.field == "store"
    assert store_files(reference) == before


def test_overwrite_replaces_the_store(tmp_path, reference):
    path = tmp_path / "tiny.zarr"
    engine.run(tiny_spec(path, "model.tau=0.3"), scheduler="sync", show_progress=False)
    engine.run(tiny_spec(path), scheduler="sync", overwrite=True, show_progress=False)
    assert_stores_identical(path, reference)


def test_a_point_that_raises_is_data(tmp_path, monkeypatch):
    solve = get_method("ode")
    bad_noise = 1.1

    def fragile(params, times, options):
        if np.any(params.noise_true == bad_noise):
            raise FloatingPointError("cannot integrate here")
        return solve(params, times, options)

    monkeypatch.setattr(task, "get_method", lambda name: fragile)
    axis = ("grid.noise.num=3", "grid.noise.start=0.2", "grid.noise.stop=2.0")
    spec = tiny_spec(tmp_path / "s.zarr", *axis)
    assert bad_noise in spec.axis("noise").values
    result = engine.run(spec, scheduler="sync", show_progress=False)
    assert result.progress.complete and not result.failures

    ds = xr.open_zarr(spec.store).load()
    bad = ds.sel(noise=bad_noise)
    assert (bad["label"] == ERROR).all()
    assert (bad["status"] == store.EXCEPTION).all()
    assert all("cannot integrate here" in m for m in bad["message"].values)
    good = ds.drop_sel(noise=bad_noise)
    assert (good["label"] != ERROR).all() and (good["message"] == "").all()


# --- resume after the client is killed ------------------------------------------------

#: Enough blocks of enough work that the kill lands part-way on a busy machine.
SLOW = (
    "grid.noise.num=80",
    "grid.tau_gen.values=[0.05, 0.1, 0.2, 0.5, 1.0]",
    "time.t_max=3000",
    "time.samples=300",
)


def test_resume_after_client_sigkill(tmp_path, cluster):
    path = tmp_path / "killed.zarr"
    spec = tiny_spec(path, *SLOW)
    grid = Grid.for_spec(spec)
    assert grid.size >= 16
    command = [
        sys.executable,
        "-m",
        "phasegan.cli",
        "run",
        "-",
        "--no-plot",
        "--no-progress",
        "--workers",
        "2",
        "--store",
        str(path),
    ]
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(spec.text)
    command[4] = str(spec_file)

    # Its own session, so the kill takes the client with the local cluster it
    # started: nothing of the first run can write after the kill.
    client = subprocess.Popen(
        command,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        written = _wait_for_blocks(path, client, at_least=3)
    finally:
        os.killpg(client.pid, signal.SIGKILL)
        client.wait()
    assert 0 < written < grid.size, "the kill should land part-way"

    todo = grid.blocks_to_run(store.read_label(path))
    done = sorted(set(range(grid.size)) - set(todo))
    stamps = {b: _label_chunk(path, grid, b).stat().st_mtime_ns for b in done}
    result = engine.run(spec, scheduler=cluster, show_progress=False)
    assert result.blocks_run == len(todo) < grid.size
    assert all(
        _label_chunk(path, grid, b).stat().st_mtime_ns == stamps[b] for b in done
    )

    uninterrupted = tmp_path / "whole.zarr"
    engine.run(
        spec.with_store(str(uninterrupted)), scheduler=cluster, show_progress=False
    )
    assert_stores_identical(path, uninterrupted)


def _label_chunk(path, grid, block):
    position = np.unravel_index(block, grid.counts)
    return path.joinpath("label", "c", *map(str, position))


def _wait_for_blocks(path, process, at_least, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        chunks = path / "label" / "c"
        count = sum(
            1
            for _, _, files in os.walk(chunks)
            for f in files
            if not f.endswith(".partial")
        )
        if count >= at_least:
            return count
        time.sleep(0.02)
    raise AssertionError(f"no {at_least} blocks written; exit code {process.poll()}")
