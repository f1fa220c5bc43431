"""Faults: killed workers, many writers, unwritten cells, points that cannot be
integrated, failed blocks, leftovers of interrupted writes, determinism.

Issue 6: nothing computed is lost, nothing incomplete looks complete, and
every error says what to fix. The clusters here run on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import xarray as xr
import zarr
from distributed import LocalCluster
from fault_helpers import (
    POISON_BLOCK,
    dies_on_block,
    marked_compute_block,
    started_marker,
)
from sweep_helpers import assert_stores_identical, store_files, tiny_spec

from phasegan import engine, store, task
from phasegan.classify import ERROR, classify
from phasegan.cli import main
from phasegan.grid import Grid, parameters_at
from phasegan.model import ode
from phasegan.model.methods import RunOptions, get_method
from phasegan.model.trajectories import Status

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
        dashboard_address="127.0.0.1:0",
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


# --- many writers at once -------------------------------------------------------


def test_a_region_that_is_not_one_whole_chunk_is_refused(tmp_path):
    path = tmp_path / "s.zarr"
    spec = tiny_spec(path, "grid.noise.num=7", "grid.tau_gen.values=[0.1, 0.2, 0.3]")
    chunks = (3, 2)  # ragged at the end of both axes
    store.create(spec, path, chunks)
    grid = Grid(spec, chunks)
    label = zarr.open_group(str(path), mode="r")["label"]
    for block in range(grid.size):  # every block of the grid is one chunk
        store._check_one_chunk(label, grid.slices(block), "label")

    for region in [
        (slice(0, 2), slice(0, 2)),  # part of a chunk
        (slice(1, 4), slice(0, 2)),  # across two chunks
        (slice(0, 6), slice(0, 2)),  # two whole chunks
        (slice(6, 7), slice(0, 3)),  # the ragged end of one, the start of two
    ]:
        shape = tuple(s.stop - s.start for s in region)
        with pytest.raises(ValueError, match="not one whole chunk"):
            store.write_region(path, region, {"label": np.zeros(shape, np.int8)})
    assert (store.read_label(path) == store.NOT_COMPUTED).all()


@pytest.mark.parametrize("where", ["cluster", "threads"])
def test_many_writers_read_back_every_point_exactly(tmp_path, cluster, where):
    path = tmp_path / "s.zarr"
    spec = tiny_spec(path, "grid.noise.num=8")  # 24 blocks of one point
    scheduler = cluster.scheduler_address if where == "cluster" else "threads"
    result = engine.run(spec, scheduler=scheduler, workers=4, show_progress=False)
    assert result.blocks == spec.size and not result.failures

    ds = xr.open_zarr(path).load()
    solve = get_method("ode")
    for point in range(spec.size):
        params = parameters_at(spec, [point])
        traj = solve(params, spec.times, RunOptions())
        expected = classify(traj, recovery=spec.recovery, params=params)
        cell = ds.isel(
            dict(zip(("noise", "tau_gen"), np.unravel_index(point, spec.shape)))
        )
        # A point's kernel does not depend on its block (test_ode.py), so the
        # store holds exactly what the model gives for the point alone.
        for name in ("q", "P", "r"):
            assert np.array_equal(cell[name].values, getattr(traj, name)[0, 0]), name
        assert cell["label"].item() == expected.label[0, 0]
        assert cell["status"].item() == traj.status[0, 0]
        assert cell["message"].item() == traj.message[0, 0]
        for name, value in expected.diagnostics.items():
            assert np.array_equal(cell[name].values, value[0, 0], equal_nan=True), name


# --- a worker killed in the middle of a task --------------------------------------

#: Eight blocks of one point, 0.3-0.5 s each on the 2-core development
#: machine: long enough to kill one while it runs.
KILLABLE = (
    "method=reduced",
    "sim={n: 2000, seeds: 2, seed: 3}",
    "grid.noise.num=4",
    "grid.tau_gen.values=[0.1, 1.0]",
    "time.t_max=300",
    "time.samples=50",
)


def test_worker_killed_mid_task(tmp_path, cluster, monkeypatch):
    address = cluster.scheduler_address
    path = tmp_path / "killed.zarr"
    spec = tiny_spec(path, *KILLABLE)
    grid = Grid.for_spec(spec)
    whole = spec.with_store(str(tmp_path / "whole.zarr"))
    engine.run(whole, scheduler=address, show_progress=False)

    # Each task leaves a marker naming its process; a watcher kills the
    # process of a block that started moments ago (it cannot have finished).
    monkeypatch.setattr(engine, "compute_block", marked_compute_block)
    killed, stop = {}, threading.Event()
    watcher = threading.Thread(
        target=_kill_a_running_block, args=(path, grid, killed, stop)
    )
    watcher.start()
    try:
        result = engine.run(spec, scheduler=address, show_progress=False)
    finally:
        stop.set()
        watcher.join()
    cluster.wait_for_workers(2)

    assert killed, "no block was caught running"
    assert not killed["label_after_kill"], "the kill came after the block finished"
    assert not result.failures, result.failures
    assert result.progress.complete
    assert _label_chunk(path, grid, killed["block"]).exists()
    assert_stores_identical(path, whole.store)


def test_a_block_that_keeps_killing_its_workers_is_recorded(
    tmp_path, cluster, monkeypatch
):
    path = tmp_path / "s.zarr"
    spec = tiny_spec(path)
    grid = Grid.for_spec(spec)
    monkeypatch.setattr(engine, "compute_block", dies_on_block)
    # The scheduler gives up on a task at its first dead worker (Dask's
    # default is after 3), to keep the test short.
    monkeypatch.setattr(cluster.scheduler, "allowed_failures", 0)
    result = engine.run(spec, scheduler=cluster.scheduler_address, show_progress=False)
    cluster.wait_for_workers(2)

    # A block queued behind the poison one on the same worker can die with it
    # (or die after its last write, complete): every block left incomplete,
    # and only those, is reported and recorded in the store.
    failed = sorted(
        int(f.split(":")[0].removeprefix("block ")) for f in result.failures
    )
    assert POISON_BLOCK in failed
    assert all("KilledWorker" in f for f in result.failures)
    progress = store.progress(path)
    assert progress.failed == sum(int(np.prod(grid.region_shape(b))) for b in failed)
    assert progress.done == spec.runs - progress.failed
    assert "failed: KilledWorker" in progress.failure
    label = store.read_label(path)
    assert grid.blocks_to_run(label) == failed
    status = zarr.open_group(str(path), mode="r")["status"][...]
    assert not (status[label >= 0] == store.BLOCK_FAILED).any()


def _kill_a_running_block(path, grid, killed, stop):
    folder = started_marker(path, 0, 0).parent
    while not stop.is_set():
        for marker in folder.glob("*-*") if folder.exists() else []:
            block, pid = map(int, marker.name.split("-"))
            fresh = time.time() - marker.stat().st_mtime < 0.1
            if fresh and not _label_chunk(path, grid, block).exists():
                os.kill(pid, signal.SIGKILL)
                killed.update(
                    block=block,
                    pid=pid,
                    label_after_kill=_label_chunk(path, grid, block).exists(),
                )
                return
        time.sleep(0.005)


def _label_chunk(path, grid, block):
    position = np.unravel_index(block, grid.counts)
    seed = ("0",) if grid.spec.simulation else ()
    return path.joinpath("label", "c", *map(str, position), *seed)


# --- points that cannot be integrated ----------------------------------------------

#: tau = 0.5 is ordinary; from tau = 1e3 on the decay rate a = tau^2 (eta_T^2 +
#: eta_G^2) / 2 of MODEL.md section 6 is >= 2.5e5, and an explicit step is
#: stable only for h a <~ 3.3, so t_max = 80 needs more than 6e6 steps: over
#: the budget of 2e6. tau = 1e200 overflows tau^2 at the first evaluation.
HOPELESS_ODE = (
    "grid={noise: {values: [0.5, 30.0]}, tau: {values: [0.5, 1.0e3, 1.0e6, 1.0e200]}}"
)


def test_points_that_cannot_be_integrated_end_fast_as_errors(tmp_path, capsys):
    spec = tiny_spec(tmp_path / "s.zarr", HOPELESS_ODE)
    spec_file = tmp_path / "hopeless.yaml"
    spec_file.write_text(spec.text)
    done = subprocess.run(
        [sys.executable, "-m", "phasegan.cli", "run", str(spec_file),
         "--workers", "2", "--no-plot", "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    # The log: a few stage lines, none per point, no solver chatter.
    lines = done.stderr.strip().splitlines()
    assert len(lines) <= 10, lines
    for word in ("warn", "overflow", "invalid value", "stiff", "finite", "Traceback"):
        assert not any(word.lower() in line.lower() for line in lines), (word, lines)

    ds = xr.open_zarr(spec.store).load()
    taus = np.asarray(spec.axis("tau").values)
    bad, good = ds.isel(tau=taus >= 1e3), ds.isel(tau=taus < 1e3)
    assert bad.sizes["tau"] == 3 and good.sizes["tau"] == 1
    assert (bad["label"] == ERROR).all()
    assert (good["label"] >= 0).all() and (good["label"] != ERROR).all()
    # A status from the solver (not an exception caught around it), and the
    # reason beside it.
    assert np.isin(bad["status"], [Status.NONFINITE, Status.BUDGET]).all()
    assert all(len(m) > 10 for m in bad["message"].values.ravel())
    assert (good["message"] == "").all()
    assert main(["status", spec.store]) == 0
    shown = [x for x in capsys.readouterr().out.splitlines() if x.startswith("errors")]
    assert len(shown) == 1 and shown[0].removeprefix("errors     e.g. ") in set(
        bad["message"].values.ravel()
    )

    # Quickly: each stops long before its step budget.
    options = RunOptions()
    for noise in spec.axis("noise").values:
        for tau in taus[taus >= 1e3]:
            params = parameters_at(spec, [_point(spec, noise=noise, tau=tau)])
            _, status, _, steps = ode.integrate(params, spec.times, options)
            assert status[0] != 0 and steps[0] < options.max_steps / 100, (tau, noise)


def _point(spec, **values) -> int:
    index = [spec.axis(name).values.index(value) for name, value in values.items()]
    return int(np.ravel_multi_index(index, spec.shape))


#: An overflow in the first step: tau_gen = 1e200 pushes the generator by
#: ~1e198 (its squared norm overflows), noise = 1e200 the samples by 1e100.
HOPELESS_SIM = (
    "grid={noise: {values: [0.5, 1.0e200]}, tau_gen: {values: [0.5, 1.0e200]}}"
)


@pytest.mark.parametrize("method", ["sim", "reduced"])
def test_simulations_that_overflow_end_as_errors(tmp_path, method, caplog, recwarn):
    spec = method_spec(tmp_path / "s.zarr", method, HOPELESS_SIM)
    start = time.perf_counter()
    with caplog.at_level("INFO"):
        result = engine.run(spec, scheduler="sync", show_progress=False)
    assert time.perf_counter() - start < 60
    assert result.progress.complete and not result.failures
    assert len(caplog.records) <= 6, [r.getMessage() for r in caplog.records]
    assert not recwarn.list, [str(w.message) for w in recwarn.list]

    ds = xr.open_zarr(spec.store).load()
    ordinary = dict(noise=0, tau_gen=0)
    assert (ds["label"].isel(ordinary) != ERROR).all()
    assert (ds["status"].isel(ordinary) == Status.OK).all()
    for noise, tau_gen in [(0, 1), (1, 0), (1, 1)]:
        cell = ds.isel(noise=noise, tau_gen=tau_gen)
        assert (cell["label"] == ERROR).all(), (noise, tau_gen)
        assert (cell["status"] == Status.NONFINITE).all(), (noise, tau_gen)
        assert all("non-finite" in m for m in cell["message"].values)


# --- a block that fails as a whole ---------------------------------------------------


def test_a_failed_block_of_a_detached_sweep_shows_in_status(tmp_path, cluster, capsys):
    path = tmp_path / "s.zarr"
    spec = tiny_spec(path)
    grid = Grid.for_spec(spec)
    engine.apply(spec, engine.plan(spec))
    # A directory where block 4's chunk of q must go: the write fails on
    # any worker, as on a full disk or a broken mount.
    obstacle = _chunk_path(path, "q", grid, 4)
    obstacle.mkdir(parents=True)

    engine.submit(spec, scheduler=cluster.scheduler_address)
    progress = _wait(
        lambda: store.progress(path), lambda p: p.done + p.failed == p.total
    )
    assert progress.failed == int(np.prod(grid.region_shape(4)))
    assert progress.done == spec.runs - progress.failed
    assert (
        "block 4 failed" in progress.failure and "IsADirectoryError" in progress.failure
    )

    assert main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"FAILED     {progress.failed} runs" in out and "IsADirectoryError" in out
    # --watch ends once nothing more can happen, and says it failed.
    watched = []
    watch = threading.Thread(
        target=lambda: watched.append(main(["status", str(path), "--watch"]))
    )
    watch.start()
    watch.join(timeout=30)
    assert watched == [1], "status --watch did not end"
    assert capsys.readouterr().out.count("FAILED     ") == 2

    # Once the cause is gone, the same spec again computes only that block.
    obstacle.rmdir()
    result = engine.run(spec, scheduler="sync", show_progress=False)
    assert result.blocks_run == 1 and result.progress.complete
    assert result.progress.failed == 0 and result.progress.failure is None
    reference = spec.with_store(str(tmp_path / "reference.zarr"))
    engine.run(reference, scheduler="sync", show_progress=False)
    assert_stores_identical(path, reference.store)


def test_a_complete_block_is_never_marked_failed(tmp_path):
    # Its worker died after the label write, before reporting back: the
    # scheduler calls the task lost, the store has it all.
    path = tmp_path / "s.zarr"
    spec = tiny_spec(path)
    grid = Grid.for_spec(spec)
    engine.run(spec, scheduler="sync", show_progress=False)
    before = store_files(path)
    assert not store.record_block_failure(path, grid.slices(3), "lost")
    assert store_files(path) == before


def _chunk_path(path, name, grid, block):
    """Where the chunk of ``name`` written by ``block`` lies (default encoding)."""
    array = zarr.open_group(str(path), mode="r")[name]
    position = np.unravel_index(block, grid.counts)
    rest = (0,) * (array.ndim - len(position))
    return path.joinpath(name, "c", *map(str, position + rest))


def _wait(read, ready, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if ready(value):
            return value
        time.sleep(0.1)
    raise AssertionError(f"not ready after {timeout} s: {value}")


# --- leftovers of a task cut short -------------------------------------------------


def test_a_block_cut_short_mid_write_is_redone_whole(tmp_path):
    path = tmp_path / "s.zarr"
    spec = tiny_spec(path)
    grid = Grid.for_spec(spec)
    engine.run(spec, scheduler="sync", show_progress=False)
    reference = spec.with_store(str(tmp_path / "reference.zarr"))
    engine.run(reference, scheduler="sync", show_progress=False)

    # What a task killed between its writes leaves: block 5's other variables
    # written (here with wrong values), its label not; and *.partial files of
    # chunk writes cut short, in label and data directories.
    block = 5
    region = grid.slices(block)
    group = zarr.open_group(str(path), mode="r+")
    for var in store.variables(spec)[:-1]:  # all but the label
        array = group[var.name]
        shape = grid.region_shape(block) + array.shape[len(region) :]
        array[region] = np.full(shape, "x" if var.dtype == "str" else 7, var.dtype)
    _label_chunk(path, grid, block).unlink()
    leftovers = [
        _label_chunk(path, grid, 0).with_suffix(".0123abcd.partial"),
        _label_chunk(path, grid, block).with_suffix(".4567cdef.partial"),
        _chunk_path(path, "q", grid, 2).with_suffix(".89abcdef.partial"),
    ]
    for leftover in leftovers:
        leftover.write_bytes(b"\x00half a chunk")

    progress = store.progress(path)
    assert progress.done == spec.runs - 1 and progress.blocks_written == grid.size - 1
    assert engine.plan(spec).todo == [block]
    for consolidated in (True, False):
        assert (xr.open_zarr(path, consolidated=consolidated)["label"] >= 0).sum() == (
            spec.runs - 1
        )

    result = engine.run(spec, scheduler="sync", show_progress=False)
    assert result.blocks_run == 1 and result.progress.complete
    assert result.progress.blocks_written == grid.size
    assert_stores_identical(path, reference.store)  # leftovers are ignored
    assert all(leftover.exists() for leftover in leftovers)


# --- determinism ---------------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHOD_SETS))
def test_same_store_whatever_the_workers_and_the_order(tmp_path, cluster, method):
    spec = method_spec(tmp_path / "cluster.zarr", method)
    engine.run(spec, scheduler=cluster.scheduler_address, show_progress=False)

    # One process, the blocks in a shuffled order.
    alone = spec.with_store(str(tmp_path / "shuffled.zarr"))
    todo = engine.plan(alone)
    engine.apply(alone, todo)
    blocks = list(todo.todo)
    random.Random(6).shuffle(blocks)
    assert blocks != sorted(blocks)
    for block in blocks:
        assert "error" not in task.compute_block(
            alone, str(tmp_path / "shuffled.zarr"), todo.grid.chunks, block
        )
    assert_stores_identical(alone.store, spec.store)
