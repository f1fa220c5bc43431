"""ODE rows of the benchmark table: the block kernel against scipy's LSODA.

The baseline is what a user would write without `phasegan`: `solve_ivp` with
LSODA, one point at a time, at the same tolerance. Both run in this process,
in the same run, so the ratio is meaningful on a shared machine.
"""

from __future__ import annotations

import time

import numpy as np

from phasegan.classify import classify
from phasegan.model.methods import RunOptions
from phasegan.model.ode import solve
from phasegan.model.parameters import Parameters
from phasegan.model.reference import solve_reference

RTOL, ATOL = 1e-8, 1e-10


def main_job_grid(noise_points: int = 25, tau_gen_points: int = 9) -> Parameters:
    """The main job's d = 1 grid: noise x tau_gen at tau = 0.5."""
    noise = np.linspace(0.2, 2.0, noise_points)
    tau_gen = np.geomspace(0.05, 2.0, tau_gen_points)
    eta, tg = np.meshgrid(noise, tau_gen, indexing="ij")
    size = eta.size
    return Parameters(
        lam=np.ones((size, 1)),
        lam_gen=np.ones((size, 1)),
        noise_true=eta.ravel(),
        noise_gen=eta.ravel(),
        tau=0.5,
        tau_gen=tg.ravel(),
        q0=0.2,
        P0=0.1,
        n=0,
    )


def random_points(d: int, size: int, seed: int = 0) -> Parameters:
    """``size`` points with ``d`` features of unequal strength."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0.3, 1.5, size)
    return Parameters(
        lam=np.linspace(2.0, 1.0, d)[None, :].repeat(size, 0),
        lam_gen=1.0,
        noise_true=noise,
        noise_gen=noise,
        tau=0.5,
        tau_gen=rng.uniform(0.05, 1.0, size),
        q0=0.2,
        P0=0.1,
        n=0,
    )


def _timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def compare(params: Parameters, baseline_points: int, t_max: float = 3000.0):
    """Per-point times of kernel and LSODA, and their agreement.

    LSODA runs on the first ``baseline_points`` points only (it is slow); the
    kernel runs the whole block, and is timed per point.
    """
    times = np.linspace(0.0, t_max, 600)
    options = RunOptions(rtol=RTOL, atol=ATOL)
    solve(params.take(np.arange(1)), times[:3], options)  # compile / load cache

    fast, fast_seconds = _timed(solve, params, times, options)
    subset = params.take(np.arange(baseline_points))
    slow, slow_seconds = _timed(
        solve_reference, subset, times, rtol=RTOL, atol=ATOL
    )

    fast_labels = classify(fast).label[:baseline_points]
    slow_labels = classify(slow).label
    deviation = np.nanmax(np.abs(fast.q[:baseline_points] - slow.q))
    return {
        "kernel_per_point": fast_seconds / params.size,
        "lsoda_per_point": slow_seconds / baseline_points,
        "labels_equal": float(np.mean(fast_labels == slow_labels)),
        "max_q_deviation": float(deviation),
    }


def run(quick: bool = False) -> list[dict]:
    """Measure the ODE rows; return one dict per row."""
    rows = []
    grid = main_job_grid()
    baseline = 30 if quick else grid.size
    result = compare(grid, baseline)
    rows.append(
        {
            "row": "ODE d=1, main job grid, one core",
            "figure": result["kernel_per_point"],
            "baseline": result["lsoda_per_point"],
            "ratio": result["lsoda_per_point"] / result["kernel_per_point"],
            "target": ">= 30x faster",
            "note": f"labels equal on {100 * result['labels_equal']:.1f}% "
            f"of {baseline} points; max |dq| {result['max_q_deviation']:.1e}",
        }
    )

    points = random_points(4, 8 if quick else 24)
    result = compare(points, 3 if quick else 8)
    rows.append(
        {
            "row": "ODE d=4",
            "figure": result["kernel_per_point"],
            "baseline": result["lsoda_per_point"],
            "ratio": result["lsoda_per_point"] / result["kernel_per_point"],
            "target": ">= 30x faster",
            "note": f"max |dq| {result['max_q_deviation']:.1e}",
        }
    )
    return rows
