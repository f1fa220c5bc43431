"""Sweep rows of the benchmark table: overhead, scaling and memory of the engine.

Each sweep runs on a local Dask cluster started here, so the cluster's start-up
is timed on its own line and the sweep's wall time excludes it. The baseline of
the overhead row is the kernel time the tasks themselves measured.
"""

from __future__ import annotations

import resource
import tempfile
import time
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


def _sweep(text: str, workers: int, folder: Path, tag: str):
    """Run one sweep on a fresh local cluster; return timings and peak memory."""
    spec = phasegan.parse_spec(text.replace("{store}", str(folder / f"{tag}.zarr")))

    start = time.perf_counter()
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("phasegan.model.ode"))  # load the kernels
        startup = time.perf_counter() - start
        result = phasegan.run_sweep(spec, scheduler=cluster.scheduler_address)
        peaks = client.run(_peak_rss_mb)
    return {
        "startup": startup,
        "wall": result.wall,
        "kernel": result.kernel_seconds,
        "task": result.task_seconds,
        "points": spec.size,
        "peak_mb": max(peaks.values()),
    }


def run(quick: bool = False) -> list[dict]:
    """Measure the sweep rows; return one dict per row."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="phasegan-bench-") as tmp:
        folder = Path(tmp)

        # About 2 minutes of kernel time at ~7 ms per d = 2 point (~20 s quick).
        size = dict(noise=30, tau_gen=100) if quick else dict(noise=60, tau_gen=300)
        text = OVERHEAD_SPEC.format(store="{store}", **size)
        two = _sweep(text, 2, folder, "two")
        one = _sweep(text, 1, folder, "one")

        rows.append(
            {
                "row": "cluster start-up (2 workers, kernels loaded)",
                "figure": two["startup"],
                "baseline": float("nan"),
                "ratio": float("nan"),
                "target": "reported",
                "note": "seconds",
            }
        )
        rows.append(
            {
                "row": f"sweep overhead, {two['points']} ODE points, 2 workers",
                "figure": two["wall"] * 2,
                "baseline": two["kernel"],
                "ratio": two["wall"] * 2 / two["kernel"],
                "target": "(wall x workers) / kernel <= 1.15",
                "note": f"kernel {two['kernel']:.0f} s, tasks {two['task']:.0f} s",
            }
        )
        rows.append(
            {
                "row": "scaling, 2 workers against 1",
                "figure": two["wall"],
                "baseline": one["wall"],
                "ratio": one["wall"] / two["wall"],
                "target": ">= 1.8x faster",
                "note": f"1 worker overhead {one['wall'] / one['kernel']:.2f}",
            }
        )

        grid = dict(noise=100, tau_gen=100) if quick else dict(noise=400, tau_gen=250)
        memory = _sweep(MEMORY_SPEC.format(store="{store}", **grid), 2, folder, "mem")
        rows.append(
            {
                "row": f"memory, {memory['points']}-point sweep with trajectories",
                "figure": memory["peak_mb"],
                "baseline": 1024.0,
                "ratio": memory["peak_mb"] / 1024.0,
                "target": "peak per worker < 1 GB",
                "note": f"MB peak RSS of the largest worker; wall {memory['wall']:.0f} s",
            }
        )
    return rows
