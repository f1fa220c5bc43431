"""Run a sweep on Dask: prepare the store, fan the blocks out, resume.

The road of the data: spec -> grid -> blocks -> (worker: method kernel ->
classify -> store region) -> store. One Dask task per block; the task writes its
own region of the store from the worker, so results never travel back through
the client (a task returns only a few timings). Task keys are
``(phasegan-<name>-<spec hash>-<store token>, block)``: they name the sweep, so
two sweeps on one cluster never mix, and the same sweep submitted twice shares
its tasks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phasegan import store
from phasegan.classify import DIAGNOSTICS, ERROR, Classification, classify
from phasegan.errors import InputError
from phasegan.grid import Grid
from phasegan.model.methods import RunOptions, get_method
from phasegan.model.trajectories import Trajectories
from phasegan.spec import Spec

log = logging.getLogger(__name__)

#: Dask's single-machine schedulers, usable as ``scheduler=`` instead of an
#: address; no distributed cluster is started for them.
LOCAL_SCHEDULERS = ("threads", "processes", "sync", "synchronous", "single-threaded")


@dataclass
class RunResult:
    """What a call to `run` did.

    Attributes
    ----------
    store : str
    blocks, blocks_run : int
        Blocks of the grid, and blocks computed by this call (the others were
        complete already).
    progress : store.Progress
        Read from the store at the end.
    wall : float
        Seconds from the call to the end, cluster start-up included.
    task_seconds, kernel_seconds, write_seconds : float
        Summed over the blocks this call ran: time inside the tasks, and the
        parts of it inside the model's method kernels and writing the store.
    failures : list of str
        Blocks whose task raised (not points: those are labelled ``error``).
    """

    store: str
    blocks: int
    blocks_run: int
    progress: store.Progress
    wall: float
    task_seconds: float = 0.0
    kernel_seconds: float = 0.0
    write_seconds: float = 0.0
    failures: list = field(default_factory=list)


def task_prefix(spec: Spec, path) -> str:
    """Key name of a sweep's tasks: spec name and hash, plus the store's path."""
    where = hashlib.sha256(str(Path(path).absolute()).encode()).hexdigest()[:8]
    return f"phasegan-{spec.name}-{spec.hash[:16]}-{where}"


def prepare(spec: Spec, *, overwrite: bool = False) -> tuple:
    """Create or check the store; return its `Grid` and the blocks to run.

    Every refusal (`InputError`) comes before anything is written.
    """
    path = Path(spec.store)
    store.check_writable(path)
    exists = path.is_dir() and any(path.iterdir())
    ours = exists and store.read_attrs(path) is not None
    if exists and not ours:
        raise InputError(
            "store",
            "exists and is not a phasegan store",
            str(path),
            "choose another path with --store; phasegan never deletes it",
        )
    if ours and not overwrite:
        store.check_matches(path, spec)

    log.info(
        "sweep %s (%s, spec %s): %s",
        spec.name,
        spec.method,
        spec.hash[:12],
        " x ".join(f"{a.name}[{len(a)}]" for a in spec.axes),
    )
    if ours and overwrite:
        store.remove(path)
        log.info("removed the old store at %s (--overwrite)", path)
        exists = False
    elif path.is_dir() and not exists:
        path.rmdir()  # an empty directory: take its place

    if not exists:
        grid = Grid.for_spec(spec)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            store.create(spec, path, grid.chunks)
        except OSError as exc:
            raise InputError(
                "store",
                f"cannot be created ({exc.strerror or exc})",
                str(path),
                "choose a writable location with --store",
            ) from None
        log.info(
            "created %s: %d points%s in %d blocks of %s",
            path,
            spec.size,
            _seeds(spec),
            grid.size,
            "x".join(map(str, grid.chunks)),
        )
        return grid, list(range(grid.size))

    grid = Grid(spec, store.chunks(path))
    todo = grid.blocks_to_run(store.read_label(path))
    log.info(
        "resuming %s: %d of %d blocks complete, %d to compute",
        path,
        grid.size - len(todo),
        grid.size,
        len(todo),
    )
    return grid, todo


def _seeds(spec: Spec) -> str:
    return f" x {spec.replicas} seeds" if spec.simulation else ""


def run(
    spec: Spec,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    cluster: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> RunResult:
    """Compute every point of ``spec`` not yet in its store.

    Parameters
    ----------
    spec : Spec
    workers : int, optional
        Worker processes of the local cluster (default: the number of cores).
    scheduler : str, optional
        Address of a running Dask scheduler, or one of `LOCAL_SCHEDULERS`.
    cluster : str, optional
        A batch system for `phasegan.cluster.connect` (``slurm``, ``pbs``).
    overwrite : bool
        Replace a store made by another spec (or start this one afresh).
    show_progress : bool
        Draw a progress bar on stdout while the blocks run.
    """
    start = time.perf_counter()
    grid, todo = prepare(spec, overwrite=overwrite)
    tasks = [
        _delayed_block(spec, grid, block, task_prefix(spec, spec.store))
        for block in todo
    ]

    stats = []
    if tasks and scheduler in LOCAL_SCHEDULERS:
        stats = _compute_locally(tasks, scheduler, workers, show_progress)
    elif tasks:
        stats = _compute_on_cluster(tasks, scheduler, cluster, workers, show_progress)

    result = RunResult(
        store=str(spec.store),
        blocks=grid.size,
        blocks_run=len(todo),
        progress=store.progress(spec.store),
        wall=time.perf_counter() - start,
        task_seconds=sum(s.get("task", 0.0) for s in stats),
        kernel_seconds=sum(s.get("kernel", 0.0) for s in stats),
        write_seconds=sum(s.get("write", 0.0) for s in stats),
        failures=[s["error"] for s in stats if "error" in s],
    )
    _log_summary(result)
    return result


def _delayed_block(spec, grid, block, prefix):
    import dask

    # An absolute path: workers may run in another directory, or on other
    # machines that see the store through a shared file system.
    path = str(Path(spec.store).absolute())
    return dask.delayed(compute_block, pure=True)(
        spec, path, grid.chunks, block, dask_key_name=(prefix, block)
    )


def _compute_locally(tasks, scheduler, workers, show_progress) -> list:
    import dask
    from dask.diagnostics import ProgressBar

    log.info("computing %d blocks on Dask's %s scheduler", len(tasks), scheduler)
    bar = ProgressBar() if show_progress else _NoBar()
    with bar:
        (stats,) = dask.compute(tasks, scheduler=scheduler, num_workers=workers)
    return list(stats)


def _compute_on_cluster(tasks, scheduler, cluster, workers, show_progress) -> list:
    from distributed import progress, wait

    from phasegan.cluster import connect

    with connect(scheduler=scheduler, cluster=cluster, workers=workers) as client:
        log.info("dashboard: %s%s", client.dashboard_link, _dashboard_note())
        log.info("computing %d blocks on %s", len(tasks), client.scheduler.address)
        futures = client.compute(tasks)
        if show_progress:
            progress(futures)
        wait(futures)
        stats = []
        for future in futures:
            if future.status == "finished":
                stats.append(future.result())
            else:
                stats.append(
                    {"error": f"block {future.key[1]}: {future.exception()!r}"}
                )
        client.cancel(futures)
    return stats


def _dashboard_note() -> str:
    if importlib.util.find_spec("bokeh") is None:
        return " (not served: install bokeh>=3.1 to see it)"
    return ""


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _log_summary(result: RunResult):
    done = result.progress
    log.info(
        "%s: %d of %d runs complete; this call computed %d of %d blocks in %.1f s",
        result.store,
        done.done,
        done.total,
        result.blocks_run,
        result.blocks,
        result.wall,
    )
    if result.task_seconds > 0:
        log.info(
            "time in tasks %.1f s: model kernels %.1f s (%.0f%%), store writes "
            "%.1f s, the rest (parameters, classifier) %.1f s",
            result.task_seconds,
            result.kernel_seconds,
            100 * result.kernel_seconds / result.task_seconds,
            result.write_seconds,
            result.task_seconds - result.kernel_seconds - result.write_seconds,
        )
    for failure in result.failures:
        log.error("task failed: %s", failure)


# --- the task ------------------------------------------------------------------


def compute_block(spec: Spec, path, chunks: tuple, block: int) -> dict:
    """Compute, classify and write one block; runs on a worker.

    Returns a few timings (seconds), or ``{"error": ...}`` if the block could not
    be written; failures of single points are stored as ``label = error``.
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
    except Exception:
        return {"block": block, "error": f"block {block}: {traceback.format_exc()}"}
    end = time.perf_counter()
    return {
        "block": block,
        "points": params.size,
        "kernel": kernel,
        "write": end - computed,
        "task": end - start,
    }


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
