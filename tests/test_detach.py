"""Detached sweeps on a running scheduler: submit and walk away, cancel, resume.

The cluster is a `dask scheduler` and a `dask worker` with two processes, all on
127.0.0.1, started here as separate processes the way a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from distributed import Client
from sweep_helpers import assert_stores_identical, tiny_spec

from phasegan import engine, store

#: 16 blocks of 100 points, a few seconds on two workers: long enough to cancel
#: part-way.
LONG = (
    "grid.noise.num=320",
    "grid.tau_gen.values=[0.05, 0.1, 0.2, 0.5, 1.0]",
    "time.t_max=3000",
    "time.samples=50",
)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    address_file = folder / "scheduler.json"
    log = open(folder / "dask.log", "w")
    common = dict(stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    processes = [
        subprocess.Popen(
            ["dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(address_file)],
            **common,
        )
    ]  # fmt: skip
    try:
        address = _wait_for_address(address_file)
        processes.append(
            subprocess.Popen(
                ["dask", "worker", "--scheduler-file", str(address_file),
                 "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1",
                 "--no-dashboard"],
                **common,
            )
        )  # fmt: skip
        with Client(address) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def _wait_for_address(path, timeout=30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(path.read_text())["address"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.1)
    raise AssertionError("dask scheduler did not start")


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory, scheduler):
    path = tmp_path_factory.mktemp("reference") / "long.zarr"
    result = engine.run(
        tiny_spec(path, *LONG), scheduler=scheduler, show_progress=False
    )
    assert result.progress.complete
    return path


def detach(spec, scheduler, tmp_path):
    """``phasegan run SPEC --scheduler ADDRESS --detach`` in its own process."""
    spec_file = tmp_path / f"{spec.name}-{spec.hash[:8]}.yaml"
    spec_file.write_text(spec.text)
    done = subprocess.run(
        [sys.executable, "-m", "phasegan.cli", "run", str(spec_file),
         "--scheduler", scheduler, "--detach"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"store:  {spec.store}" in done.stdout
    return done


def wait_complete(path, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.progress(path).complete:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path} did not complete: {store.progress(path)}")


def test_detached_sweep_runs_to_the_end_without_its_client(
    tmp_path, scheduler, long_reference
):
    spec = tiny_spec(tmp_path / "long.zarr", *LONG)
    detach(spec, scheduler, tmp_path)
    # The client process has exited, and the blocks are still running.
    assert not store.progress(spec.store).complete
    wait_complete(spec.store)
    assert_stores_identical(spec.store, long_reference)


def test_two_detached_sweeps_at_once(tmp_path, scheduler):
    first = tiny_spec(tmp_path / "first.zarr")
    second = tiny_spec(tmp_path / "second.zarr", "model.tau=0.3")
    for spec in (first, second):
        detach(spec, scheduler, tmp_path)

    from phasegan.cli import main

    assert main(["status", str(first.store), "--watch"]) == 0  # returns when done
    for spec in (first, second):
        wait_complete(spec.store)
        reference = spec.with_store(str(tmp_path / f"ref-{spec.hash[:8]}.zarr"))
        engine.run(reference, scheduler="sync", show_progress=False)
        assert_stores_identical(spec.store, reference.store)


def test_cancel_then_resume(tmp_path, scheduler, long_reference):
    spec = tiny_spec(tmp_path / "long.zarr", *LONG)
    detach(spec, scheduler, tmp_path)
    _wait_for_some(spec.store)

    from phasegan.cli import main

    assert main(["cancel", str(spec.store), "--scheduler", scheduler]) == 0
    time.sleep(3.0)  # the blocks running at the cancel may still finish
    stopped = store.progress(spec.store).done
    time.sleep(2.0)
    assert store.progress(spec.store).done == stopped, "blocks kept running"
    assert stopped < spec.runs, "the cancel should land part-way"

    result = engine.run(spec, scheduler=scheduler, show_progress=False)
    assert 0 < result.blocks_run < result.blocks
    assert_stores_identical(spec.store, long_reference)


def _wait_for_some(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.progress(path).done > 0:
            return
        time.sleep(0.05)
    raise AssertionError("no block was written")
