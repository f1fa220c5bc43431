"""One task of a sweep: compute, classify and write one block, on a worker.

A numerical failure at a point is data: the method reports it as a status, or,
if the method raises, the block is redone point by point and each point that
raises gets ``label = error``, status ``exception`` and the exception as its
message. Solver warnings are silenced here: one per point would flood the
worker's log.

A block that fails as a whole (its store cannot be written, a bug) leaves its
reason in the store where it can (`store.record_block_failure`), so even a
detached sweep's failure shows in ``phasegan status``; its label stays -1.
"""

from __future__ import annotations

import time
import traceback
import warnings

import numpy as np

from phasegan import store
from phasegan.classify import DIAGNOSTICS, ERROR, Classification, classify
from phasegan.grid import Grid
from phasegan.model.methods import RunOptions, get_method
from phasegan.model.trajectories import Trajectories
from phasegan.spec import Spec


def compute_block(spec: Spec, path, chunks: tuple, block: int) -> dict:
    """Compute, classify and write one block; runs on a worker.

    Returns a few timings (seconds), or ``{"error": ...}`` if the block could not
    be written (the reason is also recorded in the store); failures of single
    points are stored as ``label = error``.
    """
    start = time.perf_counter()
    try:
        grid = Grid(spec, tuple(chunks))
        params = grid.parameters(block)
        options = RunOptions(
            replicas=spec.replicas,
            root_seed=spec.root_seed,
            point_ids=grid.point_ids(block),
        )
        traj, result, kernel = _solve_block(spec, params, options)
        computed = time.perf_counter()
        values = store.block_values(
            traj, result, grid.region_shape(block), spec.simulation
        )
        store.write_region(path, grid.slices(block), values)
    except Exception as exc:
        _record_failure(spec, path, chunks, block, exc)
        return {"block": block, "error": f"block {block}: {traceback.format_exc()}"}
    end = time.perf_counter()
    return {
        "block": block,
        "points": params.size,
        "kernel": kernel,
        "write": end - computed,
        "task": end - start,
    }


def _record_failure(spec, path, chunks, block, exc):
    reason = f"block {block} failed: {type(exc).__name__}: {exc}"[:500]
    try:
        region = Grid(spec, tuple(chunks)).slices(block)
        store.record_block_failure(path, region, reason + "; run again to retry")
    except Exception:  # the store itself may be what failed: best effort
        pass


def _solve_block(spec, params, options):
    """Method kernel then classifier; a point that raises becomes an error."""
    try:
        return _solve(spec, params, options)
    except Exception:
        pass

    # Something in the block raised: redo it point by point, so only the
    # points that fail are lost, each with its reason.
    ids = options.ids(params.size)
    parts, kernel = [], 0.0
    for i in range(params.size):
        single = RunOptions(
            rtol=options.rtol,
            atol=options.atol,
            max_steps=options.max_steps,
            replicas=options.replicas,
            root_seed=options.root_seed,
            point_ids=ids[i : i + 1],
        )
        try:
            traj, result, seconds = _solve(spec, params.point(i), single)
            kernel += seconds
        except Exception as exc:
            traj, result = _raised(spec, exc)
        parts.append((traj, result))
    return _concatenate(spec, parts), _concatenate_results(parts), kernel


def _solve(spec, params, options):
    solve = get_method(spec.method)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # per-point solver chatter: not logged
        t0 = time.perf_counter()
        traj = solve(params, spec.times, options)
        kernel = time.perf_counter() - t0
        if spec.simulation:
            result = classify(traj, recovery=spec.recovery, n=params.n)
        else:  # the ODE end state's stability decides settled vs oscillating
            result = classify(traj, recovery=spec.recovery, params=params)
    return traj, result, kernel


def _raised(spec, exc):
    traj = Trajectories.empty(1, spec.replicas, spec.times, spec.d)
    traj.status[:] = store.EXCEPTION
    traj.message[:] = f"{type(exc).__name__}: {exc}"[:500]
    diagnostics = {}
    for diag in DIAGNOSTICS:
        shape = (1, spec.replicas) + ((spec.d,) if diag.per_feature else ())
        diagnostics[diag.name] = np.full(shape, np.nan)
    label = np.full((1, spec.replicas), ERROR, dtype=np.int8)
    return traj, Classification(label=label, diagnostics=diagnostics)


def _concatenate(spec, parts) -> Trajectories:
    trajs = [traj for traj, _ in parts]
    return Trajectories(
        times=spec.times,
        **{
            name: np.concatenate([getattr(t, name) for t in trajs])
            for name in ("q", "P", "r", "S", "status", "message")
        },
    )


def _concatenate_results(parts) -> Classification:
    results = [result for _, result in parts]
    return Classification(
        label=np.concatenate([r.label for r in results]),
        diagnostics={
            d.name: np.concatenate([r.diagnostics[d.name] for r in results])
            for d in DIAGNOSTICS
        },
    )
