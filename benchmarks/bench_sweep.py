"""Sweep rows of the benchmark table: overhead, scaling and memory of the engine,
and what numba costs a fresh worker.

Each sweep runs on a local Dask cluster started here. Start-up is timed on
its own line and excluded from the sweep's wall time: starting the worker
processes, and each worker's first call of the method's kernel (numba loading
the compiled code from its cache, or compiling it when the cache is cold). The
baseline of the overhead row is the kernel time the tasks themselves measured.

The machine is shared: the load average before and after each sweep is
printed with the rows, so a figure taken while other work ran can be told.
"""

from __future__ import annotations

import logging
import os
import resource
import tempfile
import time
import warnings
from pathlib import Path

from distributed import Client, LocalCluster

import phasegan

OVERHEAD_SPEC = """
name: bench-overhead
method: ode
model: {{d: 2, lambda: [2.0, 1.0], lambda_gen: [2.0, 1.0], noise: 1.0,
         tau: 0.5, tau_gen: 0.1}}
init: {{q0: 0.2, P0: 0.1}}
time: {{t_max: 3000, samples: 100}}
grid:
  noise: {{start: 0.3, stop: 2.0, num: {noise}}}
  tau_gen: {{start: 0.02, stop: 1.0, num: {tau_gen}, log: true}}
store: {store}
"""

MEMORY_SPEC = """
name: bench-memory
method: ode
model: {{d: 1, lambda: 1.0, lambda_gen: 1.0, noise: 1.0, tau: 0.5, tau_gen: 0.5}}
init: {{q0: 0.2, P0: 0.1}}
time: {{t_max: 300, samples: 600}}
grid:
  noise: {{start: 0.05, stop: 2.0, num: {noise}}}
  tau_gen: {{start: 0.01, stop: 2.0, num: {tau_gen}, log: true}}
store: {store}
"""


def _peak_rss_mb() -> float:
    """Peak resident memory of the calling process, in MB (Linux: ru_maxrss KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _first_calls(methods=("ode",)) -> dict:
    """Seconds of each method's first call in this process (one tiny point)."""
    import numpy as np

    from phasegan.model.methods import RunOptions, get_method
    from phasegan.model.parameters import Parameters

    seconds = {}
    for method in methods:
        start = time.perf_counter()
        solve = get_method(method)
        params = Parameters.single(noise=1.0, n=0 if method == "ode" else 50)
        solve(params, np.linspace(0.0, 1.0, 3), RunOptions())
        seconds[method] = time.perf_counter() - start
    return seconds


def _kernel_loads() -> tuple:
    """Signatures of the ODE's block kernel in this process, and cache loads."""
    from phasegan.model import ode

    kernel = ode._integrate_block
    stats = kernel.stats
    return (
        len(kernel.signatures),
        sum(stats.cache_hits.values()),
        sum(stats.cache_misses.values()),
    )


def _cluster(workers: int) -> LocalCluster:
    # Without a dashboard the scheduler still serves its health routes, on
    # port 8787 if free: another cluster on the machine only moves them.
    warnings.filterwarnings("ignore", message="Port 8787 is already in use")
    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        # Workers still beating when the scheduler closes log tracebacks;
        # failed blocks are reported from the sweep's result instead.
        silence_logs=logging.CRITICAL,
    )


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg()[:1])


def _sweep(text: str, workers: int, folder: Path, tag: str) -> dict:
    """Run one sweep on a fresh local cluster; return timings and peak memory."""
    spec = phasegan.parse_spec(text.replace("{store}", str(folder / f"{tag}.zarr")))
    load_before = _load()

    start = time.perf_counter()
    with _cluster(workers) as cluster, Client(cluster) as client:
        processes = time.perf_counter() - start
        first = client.run(_first_calls)  # each worker loads the kernel once
        startup = time.perf_counter() - start
        cpu = client.run(time.process_time)
        result = phasegan.run_sweep(spec, scheduler=cluster.scheduler_address)
        cpu = {w: t - cpu[w] for w, t in client.run(time.process_time).items()}
        peaks = client.run(_peak_rss_mb)
        loads = client.run(_kernel_loads)
    return {
        "processes": processes,
        "startup": startup,
        "first_call": max(calls["ode"] for calls in first.values()),
        "wall": result.wall,
        "kernel": result.kernel_seconds,
        "task": result.task_seconds,
        "write": result.write_seconds,
        "blocks": result.blocks_run,
        "points": spec.size,
        "peak_mb": max(peaks.values()),
        "loads": list(loads.values()),
        "load": f"{load_before} -> {_load()}",
        # CPU time the workers got over the sweep's wall time: below 1 per
        # worker when other processes took a share of the cores.
        "cpu_share": sum(cpu.values()) / result.wall / workers,
        "failures": result.failures,
    }


def _largest_block(folder: Path) -> dict:
    """Peak memory of a fresh worker computing the largest block a grid can get.

    A million short runs: blocks are then held to `spec.MAX_BLOCK_BYTES` of
    trajectories, the most any grid gets, and one of them is computed.
    """
    from phasegan import engine
    from phasegan.task import compute_block

    text = MEMORY_SPEC.format(store="{store}", noise=1000, tau_gen=1000)
    text = text.replace("t_max: 300", "t_max: 30")
    spec = phasegan.parse_spec(text.replace("{store}", str(folder / "big.zarr")))
    plan = engine.plan(spec)
    engine.apply(spec, plan)
    chunks = plan.grid.chunks
    with _cluster(1) as cluster, Client(cluster) as client:
        client.run(_first_calls)
        stats = client.submit(
            compute_block, spec, str(Path(spec.store).resolve()), chunks, 0
        ).result()
        (peak,) = client.run(_peak_rss_mb).values()
    points = stats.get("points", 0)
    return {"points": points, "mib": points * spec.run_bytes / 2**20, "peak": peak}


def _fresh_worker_first_calls(cache: str) -> dict:
    """First call of every method on one fresh worker, numba caching in ``cache``."""
    previous = os.environ.get("NUMBA_CACHE_DIR")
    os.environ["NUMBA_CACHE_DIR"] = cache  # the worker process inherits it
    try:
        with _cluster(1) as cluster, Client(cluster) as client:
            (seconds,) = client.run(_first_calls, ("ode", "reduced", "sim")).values()
    finally:
        if previous is None:
            del os.environ["NUMBA_CACHE_DIR"]
        else:
            os.environ["NUMBA_CACHE_DIR"] = previous
    return seconds


def _numba_rows(folder: Path) -> list:
    cache = str(folder / "numba-cache")
    cold = _fresh_worker_first_calls(cache)
    warm = _fresh_worker_first_calls(cache)
    rows = []
    for name, seconds in (("empty", cold), ("warm", warm)):
        rows.append(
            {
                "row": f"numba first call on a fresh worker, {name} cache",
                "figure": seconds["ode"],
                "baseline": float("nan"),
                "ratio": float("nan"),
                "target": "reported (once per worker)",
                "note": "seconds; "
                + ", ".join(f"{m} {s:.2f} s" for m, s in seconds.items())
                + " (import, load or compile, and one tiny call)",
            }
        )
    return rows


def run(quick: bool = False) -> list[dict]:
    """Measure the sweep rows; return one dict per row."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="phasegan-bench-") as tmp:
        folder = Path(tmp)
        rows += _numba_rows(folder)

        # About 2 minutes of kernel time at ~3.5-5 ms per d = 2 point (~15 s
        # quick).
        size = {"noise": 30 if quick else 120, "tau_gen": 100 if quick else 300}
        text = OVERHEAD_SPEC.format(store="{store}", **size)
        two = _sweep(text, 2, folder, "two")
        one = _sweep(text, 1, folder, "one")

        signatures = {s for s, _, _ in two["loads"] + one["loads"]}
        rows.append(
            {
                "row": "cluster start-up (2 workers, kernels loaded)",
                "figure": two["startup"],
                "baseline": float("nan"),
                "ratio": float("nan"),
                "target": "reported",
                "note": f"seconds: processes {two['processes']:.1f} s, first "
                f"kernel call {two['first_call']:.2f} s; kernel signatures per "
                f"worker after the sweep: {sorted(signatures)} (1 = compiled or "
                "loaded once, not per task)",
            }
        )
        write = two["write"] / two["kernel"]
        rest = (two["task"] - two["kernel"] - two["write"]) / two["kernel"]
        idle = (2 * two["wall"] - two["task"]) / two["kernel"]
        rows.append(
            {
                "row": f"sweep overhead, {two['points']} ODE points, 2 workers",
                "figure": two["wall"] * 2,
                "baseline": two["kernel"],
                "ratio": two["wall"] * 2 / two["kernel"],
                "target": "(wall x workers) / kernel <= 1.15",
                "note": f"kernel {two['kernel']:.0f} s in {two['blocks']} blocks; "
                f"over it: writes {write:.1%}, classifier and the rest "
                f"{rest:.1%}, outside the tasks {idle:.1%}; load {two['load']}",
            }
        )
        rows.append(
            {
                "row": "scaling, 2 workers against 1",
                "figure": two["wall"],
                "baseline": one["wall"],
                "ratio": one["wall"] / two["wall"],
                "target": ">= 1.8x faster",
                "note": f"1 worker: overhead {one['wall'] / one['kernel']:.2f}, "
                f"kernel {one['kernel']:.0f} s (2 workers: {two['kernel']:.0f} s); "
                f"CPU per worker / wall: {one['cpu_share']:.2f} (1 worker), "
                f"{two['cpu_share']:.2f} (2 workers); load {one['load']}",
            }
        )

        # The same per-point cost at ten times fewer points: the peak must
        # not follow the grid.
        big = {"noise": 100 if quick else 400, "tau_gen": 100 if quick else 250}
        small = {"noise": big["noise"] // 10, "tau_gen": big["tau_gen"]}
        memory = _sweep(MEMORY_SPEC.format(store="{store}", **big), 2, folder, "mem")
        tenth = _sweep(MEMORY_SPEC.format(store="{store}", **small), 2, folder, "m10")
        largest = _largest_block(folder)
        rows.append(
            {
                "row": f"memory, {memory['points']}-point sweep with trajectories",
                "figure": memory["peak_mb"],
                "baseline": 1024.0,
                "ratio": memory["peak_mb"] / 1024.0,
                "target": "peak per worker < 1 GB",
                "note": f"MB peak RSS of the largest worker; {memory['blocks']} "
                f"blocks, wall {memory['wall']:.0f} s; at {tenth['points']} points "
                f"({tenth['blocks']} blocks): {tenth['peak_mb']:.0f} MB; the largest "
                f"block of any grid ({largest['points']} runs, "
                f"{largest['mib']:.0f} MiB of trajectories): {largest['peak']:.0f} MB",
            }
        )
        for sweep in (two, one, memory, tenth):
            for failure in sweep["failures"]:
                print(f"FAILED: {failure}", flush=True)
    return rows
