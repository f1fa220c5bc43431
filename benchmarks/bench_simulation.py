"""Simulation rows of the benchmark table (issue 4), figure against baseline.

- full simulation, ``n >= 1000``: time per SGD step against the time numpy
  takes to draw the step's ``2n`` normal numbers (``standard_normal(out=)``
  into a preallocated buffer, the cheapest way numpy offers);
- full simulation, ``n = 200``: against `numpy_sgd`, the same algorithm as
  a plain numpy loop, what a user would write;
- reduced simulation: against the full simulation at ``n = 10^4`` with the
  same ``t_max``, and its cost per step from ``n = 10^2`` to ``10^6``.

Figures and baselines run in this process, interleaved, and each is the best
of a few repeats: the machine is shared, and the minimum is the figure least
disturbed by other load. Run ``python benchmarks/bench_simulation.py``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from phasegan.model import reduced, simulate
from phasegan.model.methods import RunOptions
from phasegan.model.parameters import Parameters

#: The main job's kind of point (MODEL.md section 6, d = 1).
POINT = dict(noise=1.0, tau=0.5, tau_gen=0.5, q0=0.2, P0=0.1)


def numpy_sgd(U, V, w, params: Parameters, steps: int, rng):
    """MODEL.md section 2 as a plain numpy loop: the baseline at ``n = 200``.

    Parameters
    ----------
    U, V : ndarray, shape (n, d)
    w : ndarray, shape (n,)
    params : Parameters
        One point.
    steps : int
    rng : numpy.random.Generator
    """
    n, d = U.shape
    tau, tau_gen = params.tau[0], params.tau_gen[0]
    root_lam, root_lam_gen = np.sqrt(params.lam[0]), np.sqrt(params.lam_gen[0])
    root_eta_T = math.sqrt(params.noise_true[0])
    root_eta_G = math.sqrt(params.noise_gen[0])
    for _ in range(steps):
        c = root_lam * rng.standard_normal(d)
        c_gen = root_lam_gen * rng.standard_normal(d)
        y = U @ c + root_eta_T * rng.standard_normal(n)
        y_gen = V @ c_gen + root_eta_G * rng.standard_normal(n)
        s, s_gen = w @ y, w @ y_gen
        V = V + (tau_gen / n) * s_gen * np.outer(w, c_gen)
        V /= np.linalg.norm(V, axis=0)
        w = w + (tau / n) * (s * y - s_gen * y_gen)
        w /= np.linalg.norm(w)
    return U, V, w


def _best(function, repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls, in seconds."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _solve_seconds(module, n: int, steps: int, d: int, repeats: int) -> float:
    """Best time of one run of ``steps`` steps, end to end through ``solve``."""
    params = Parameters.single(d=d, **POINT, n=n)
    times = np.array([0.0, steps / n])
    return _best(lambda: module.solve(params, times, RunOptions()), repeats)


def _warm_up(d: int):
    params = Parameters.single(d=d, **POINT, n=50)
    simulate.solve(params, np.array([0.0, 0.1]))
    reduced.solve(params, np.array([0.0, 0.1]))


def full_against_normals(n: int, steps: int, d: int = 1, repeats: int = 3) -> dict:
    """Time per step of the full simulation against numpy's 2n normals."""
    buffer = np.empty(2 * n)
    rng = np.random.default_rng(0)

    def draws():
        for _ in range(steps):
            rng.standard_normal(out=buffer)

    figure = baseline = math.inf
    for _ in range(repeats):
        figure = min(figure, _solve_seconds(simulate, n, steps, d, 1) / steps)
        baseline = min(baseline, _best(draws, 1) / steps)
    return {
        "row": f"full sim, n={n}, d={d}: s/step vs 2n numpy normals",
        "figure": figure,
        "baseline": baseline,
        "ratio": figure / baseline,
        "target": "<= 1.3 x the 2n numpy normals",
        "note": "baseline: numpy standard_normal(out=) of 2n per step",
    }


def full_against_numpy_loop(
    n: int = 200, steps: int = 20_000, d: int = 1, repeats: int = 3
) -> dict:
    """Time per step of the full simulation against `numpy_sgd`."""
    params = Parameters.single(d=d, **POINT, n=n)
    run = simulate.Run.start(params, 0, np.random.default_rng(0))
    U, V, w = run.Ut.T.copy(), run.Vt.T.copy(), run.w.copy()
    rng = np.random.default_rng(1)

    figure = baseline = math.inf
    for _ in range(repeats):
        figure = min(figure, _solve_seconds(simulate, n, steps, d, 1) / steps)
        baseline = min(
            baseline, _best(lambda: numpy_sgd(U, V, w, params, steps, rng), 1) / steps
        )
    return {
        "row": f"full sim, n={n}, d={d}: s/step vs plain numpy loop",
        "figure": figure,
        "baseline": baseline,
        "ratio": baseline / figure,
        "target": ">= 5x faster than a plain numpy loop",
        "note": "baseline: benchmarks/bench_simulation.py numpy_sgd",
    }


def reduced_against_full(
    n: int = 10_000, t_max: float = 5.0, d: int = 1, repeats: int = 3
) -> dict:
    """Whole runs of the same ``t_max`` at ``n``: reduced against full."""
    steps = round(t_max * n)
    full = _solve_seconds(simulate, n, steps, d, 1)
    fast = _solve_seconds(reduced, n, steps, d, repeats)
    return {
        "row": f"reduced vs full sim, n={n}, d={d}, t_max={t_max:g}: s/run",
        "figure": fast,
        "baseline": full,
        "ratio": full / fast,
        "target": ">= 300x faster than the full simulation",
        "note": f"{steps} steps, through solve() end to end",
    }


def reduced_flatness(
    sizes=(10**2, 10**3, 10**4, 10**5, 10**6),
    steps: int = 10**6,
    d: int = 1,
    repeats: int = 3,
) -> dict:
    """Cost per step of the reduced simulation over ``sizes``."""
    per_step = {n: math.inf for n in sizes}
    for _ in range(repeats):
        for n in sizes:
            per_step[n] = min(
                per_step[n], _solve_seconds(reduced, n, steps, d, 1) / steps
            )
    costs = np.array(list(per_step.values()))
    return {
        "row": f"reduced sim, d={d}: s/step, max vs min over n=1e2..1e6",
        "figure": costs.max(),
        "baseline": costs.min(),
        "ratio": costs.max() / costs.min(),
        "target": "flat in n (max / min close to 1)",
        "note": ", ".join(f"n={n:.0e}: {1e9 * c:.0f} ns" for n, c in per_step.items()),
    }


def first_call_seconds(cold: bool) -> float:
    """Import plus a first tiny run of both simulations, in a fresh process.

    ``cold`` points numba at an empty cache directory (a worker that has
    never compiled); otherwise the package's cache is used.
    """
    code = (
        "import time; start = time.perf_counter()\n"
        "import numpy as np\n"
        "from phasegan.model import simulate, reduced\n"
        "from phasegan.model.parameters import Parameters\n"
        "p = Parameters.single(noise=1.0, n=50)\n"
        "simulate.solve(p, np.array([0.0, 0.1]))\n"
        "reduced.solve(p, np.array([0.0, 0.1]))\n"
        "print(time.perf_counter() - start)\n"
    )
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as empty:
        if cold:
            env["NUMBA_CACHE_DIR"] = empty
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return float(result.stdout.strip())


def run(quick: bool = False) -> list[dict]:
    """Measure the simulation rows; return one dict per row."""
    _warm_up(1)
    scale = 0.2 if quick else 1.0
    rows = [
        full_against_normals(1000, int(20_000 * scale)),
        full_against_normals(4000, int(5_000 * scale)),
        full_against_normals(10_000, int(2_000 * scale)),
        full_against_numpy_loop(200, int(20_000 * scale)),
        reduced_against_full(10_000, 5.0 * scale),
        reduced_flatness(steps=int(10**6 * scale)),
    ]
    cold, warm = first_call_seconds(cold=True), first_call_seconds(cold=False)
    rows.append(
        {
            "row": "sim kernels: first call, fresh process: cached vs cold, s",
            "figure": warm,
            "baseline": cold,
            "ratio": cold / warm,
            "target": "compilation cached, not paid per task",
            "note": f"with the numba cache {warm:.2f} s, without {cold:.2f} s "
            "(import + one tiny run of sim and reduced)",
        }
    )
    return rows


def main():
    quick = "--quick" in sys.argv
    for row in run(quick):
        print(
            f"{row['row']}\n    figure {row['figure']:.3e}  baseline "
            f"{row['baseline']:.3e}  ratio {row['ratio']:.2f}  "
            f"(target: {row['target']}; {row['note']})"
        )


if __name__ == "__main__":
    main()
