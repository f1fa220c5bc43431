"""Run a sweep on Dask: plan against the store, fan the blocks out, resume.

The road of the data: spec -> grid -> blocks -> (worker: `phasegan.task`:
method kernel -> classify -> store region) -> store. One Dask task per block;
the task writes its own region of the store from the worker, so results never
travel back through the client (a task returns only a few timings). Task keys
are ``(phasegan-<name>-<spec hash>-<store token>, block)``: they name the sweep,
so two sweeps on one cluster never mix, and the same sweep submitted twice
shares its tasks instead of computing them twice.

Three ways to run: `run` waits for the blocks (a local cluster by default);
`submit` hands them to a running scheduler and returns, the scheduler keeping
them alive with no client (`distributed.fire_and_forget`); `cancel` stops the
blocks of a submitted sweep that have not run.

Faults. A block is a pure function of (spec, block): it writes the same bytes
to its own chunks whenever and wherever it runs, and its label last, so a block
run twice, or run again after a partial write, ends the same. A worker that
dies in a task (killed, out of memory, a lost node) is the scheduler's to
handle: it runs the task again on another worker, up to
``distributed.scheduler.allowed-failures`` deaths (Dask's default 3) before
the block fails with ``KilledWorker``. An exception inside a task is caught
there and recorded in the store (`phasegan.task`), so Dask's ``retries`` would
never see it; running the spec again retries every block whose label is -1.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from phasegan import store
from phasegan.errors import InputError
from phasegan.grid import Grid
from phasegan.spec import Spec
from phasegan.task import compute_block

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


@dataclass(frozen=True)
class Plan:
    """What a run will do to its store, decided before anything is written.

    Attributes
    ----------
    grid : Grid
    todo : list of int
        Blocks to compute.
    create : bool
        Make a new store (removing the old one first when ``replace``).
    replace : bool
    """

    grid: Grid
    todo: list
    create: bool
    replace: bool = False


def task_prefix(spec: Spec, path) -> str:
    """Key name of a sweep's tasks: spec name and hash, plus the store's path."""
    where = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:8]
    return f"phasegan-{spec.name}-{spec.hash[:16]}-{where}"


def plan(spec: Spec, *, overwrite: bool = False) -> Plan:
    """Check the store against ``spec``; write nothing.

    Every refusal is an `InputError`: a directory that is not a phasegan
    store, a store made by another spec (unless ``overwrite``), a store path
    that cannot be written. Writability is tested last, by trying it, and only
    where the run will write anyway: a refused run leaves every directory as
    it was.
    """
    path = Path(spec.store)
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
    store.check_writable(path)
    if not ours or overwrite:
        grid = Grid.for_spec(spec)
        return Plan(grid, list(range(grid.size)), create=True, replace=ours)

    grid = Grid(spec, store.chunks(path))
    return Plan(grid, grid.blocks_to_run(store.read_label(path)), create=False)


def apply(spec: Spec, plan: Plan) -> None:
    """Make the store the plan needs: remove the old one, create the new."""
    path = Path(spec.store)
    if not plan.create:
        log.info(
            "resuming %s: %d of %d blocks complete, %d to compute",
            path,
            plan.grid.size - len(plan.todo),
            plan.grid.size,
            len(plan.todo),
        )
        return

    if plan.replace:
        store.remove(path)
        log.info("removed the old store at %s (--overwrite)", path)
    elif path.is_dir():
        path.rmdir()  # an empty directory: take its place
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        store.create(spec, path, plan.grid.chunks)
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
        f" x {spec.replicas} seeds" if spec.simulation else "",
        plan.grid.size,
        "x".join(map(str, plan.grid.chunks)),
    )


def run(
    spec: Spec,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    cluster: str | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> RunResult:
    """Compute every point of ``spec`` not yet in its store, and wait.

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
        Draw a progress bar on stderr while the blocks run, if it is a
        terminal.
    """
    start = time.perf_counter()
    todo = plan(spec, overwrite=overwrite)

    # The sweep's log line comes once the input is accepted: a refused run
    # prints its one error line and nothing else.
    stats = []
    if not todo.todo:
        _log_sweep(spec)
        apply(spec, todo)
    elif scheduler in LOCAL_SCHEDULERS:
        _log_sweep(spec)
        apply(spec, todo)
        stats = _compute_locally(spec, todo, scheduler, workers, show_progress)
    else:
        from phasegan.cluster import connect

        # Connect first: a bad address or cluster name is refused before the
        # store is touched.
        with connect(scheduler=scheduler, cluster=cluster, workers=workers) as client:
            _log_sweep(spec)
            apply(spec, todo)
            stats = _compute_on(client, spec, todo, show_progress)

    result = RunResult(
        store=str(spec.store),
        blocks=todo.grid.size,
        blocks_run=len(todo.todo),
        progress=store.progress(spec.store),
        wall=time.perf_counter() - start,
        task_seconds=sum(s.get("task", 0.0) for s in stats),
        kernel_seconds=sum(s.get("kernel", 0.0) for s in stats),
        write_seconds=sum(s.get("write", 0.0) for s in stats),
        failures=[s["error"] for s in stats if "error" in s],
    )
    _log_summary(result)
    return result


def submit(spec: Spec, *, scheduler: str, overwrite: bool = False) -> Plan:
    """Hand the missing blocks to a running scheduler and return at once.

    The scheduler keeps the tasks alive with no client connected
    (`distributed.fire_and_forget`); progress is read from the store
    (`phasegan.store.progress`), and `cancel` stops what has not run.
    """
    if scheduler is None or scheduler in LOCAL_SCHEDULERS:
        raise InputError(
            "--detach",
            "needs --scheduler ADDRESS of a running Dask scheduler",
            ... if scheduler is None else scheduler,
            "a detached sweep runs on a scheduler that outlives this command",
        )
    from distributed import fire_and_forget

    from phasegan.cluster import connect

    todo = plan(spec, overwrite=overwrite)
    with connect(scheduler=scheduler) as client:
        _log_sweep(spec)
        apply(spec, todo)
        if todo.todo:
            fire_and_forget(client.compute(_tasks(spec, todo)))
        log.info("dashboard: %s%s", client.dashboard_link, _dashboard_note())
        log.info(
            "submitted %d blocks to %s; they run to the end without this client",
            len(todo.todo),
            scheduler,
        )
    return todo


def cancel(path, *, scheduler: str) -> int:
    """Stop the blocks of the sweep in store ``path`` that have not run.

    Blocks already written stay; running the spec again resumes. Returns the
    number of blocks that were not complete.
    """
    attrs = store.require_store(path)
    from distributed import Future

    from phasegan.cluster import connect
    from phasegan.spec import parse_spec

    where = json.dumps(str(Path(path).resolve()))
    spec = parse_spec(attrs["spec"], [f"store={where}"])
    grid = Grid(spec, store.chunks(path))
    prefix = task_prefix(spec, path)
    with connect(scheduler=scheduler) as client:
        futures = [Future((prefix, block), client) for block in range(grid.size)]
        client.cancel(futures, force=True, reason="phasegan cancel")
    pending = grid.blocks_to_run(store.read_label(path))
    log.info(
        "cancelled the blocks of %s on %s: %d of %d were not complete; "
        "run the spec again to resume",
        path,
        scheduler,
        len(pending),
        grid.size,
    )
    return len(pending)


def _tasks(spec: Spec, todo: Plan) -> list:
    import dask

    prefix = task_prefix(spec, spec.store)
    # An absolute path: workers may run in another directory, or on other
    # machines that see the store through a shared file system.
    path = str(Path(spec.store).resolve())
    return [
        dask.delayed(compute_block, pure=True)(
            spec, path, todo.grid.chunks, block, dask_key_name=(prefix, block)
        )
        for block in todo.todo
    ]


def _compute_locally(spec, todo, scheduler, workers, show_progress) -> list:
    import dask
    from dask.diagnostics import ProgressBar

    log.info("computing %d blocks on Dask's %s scheduler", len(todo.todo), scheduler)
    bar = ProgressBar(out=sys.stderr) if _bar_wanted(show_progress) else _NoBar()
    with bar:
        (stats,) = dask.compute(
            _tasks(spec, todo), scheduler=scheduler, num_workers=workers
        )
    return list(stats)


def _compute_on(client, spec, todo, show_progress) -> list:
    from distributed import as_completed

    log.info("dashboard: %s%s", client.dashboard_link, _dashboard_note())
    log.info("computing %d blocks on %s", len(todo.todo), client.scheduler.address)
    futures = client.compute(_tasks(spec, todo))

    # Take each result as it comes and let go of its future: a worker then
    # holds no finished results, so one that reaches its lifetime (batch
    # jobs) can leave at once without handing anything over.
    stats = []
    bar = _Bar(len(futures)) if _bar_wanted(show_progress) else None
    for future in as_completed(futures):
        if future.status == "finished":
            stats.append(future.result())
        else:  # e.g. a worker died on it more often than the scheduler allows
            block, exc = future.key[1], future.exception()
            if _record_failure(spec, todo.grid, block, exc):
                stats.append({"error": f"block {block}: {exc!r}"})
        future.release()
        if bar:
            bar.step()
    return stats


def _bar_wanted(show_progress: bool) -> bool:
    # A bar redraws one line with \r: in a log file or a pipe it becomes one
    # endless line, so it is drawn only on a terminal (stderr: stdout is for
    # the results table, which may be redirected).
    return show_progress and sys.stderr.isatty()


class _Bar:
    """A one-line text progress bar over the blocks, on ``out`` (stderr)."""

    def __init__(self, total: int, width: int = 40, out=None):
        self.total, self.width, self.done = total, width, 0
        self.out = out or sys.stderr
        self.start = time.perf_counter()
        self._draw()

    def step(self):
        self.done += 1
        self._draw()
        if self.done == self.total:
            print(file=self.out, flush=True)

    def _draw(self):
        filled = self.width * self.done // max(self.total, 1)
        elapsed = time.perf_counter() - self.start
        print(
            f"\r[{'#' * filled}{' ' * (self.width - filled)}] "
            f"{self.done}/{self.total} blocks, {elapsed:.0f} s",
            end="",
            file=self.out,
            flush=True,
        )


def _record_failure(spec, grid, block, exc) -> bool:
    """A block that never returned: its reason in the store, for `status`.

    False if the block is complete after all: its worker died after writing
    the label, before reporting back (the store is what counts).
    """
    reason = f"block {block} failed: {type(exc).__name__}: {exc}"[:500]
    try:
        return store.record_block_failure(
            spec.store, grid.slices(block), reason + "; run again to retry"
        )
    except Exception:  # best effort: the store may be what failed
        log.debug("could not record the failure of block %d", block, exc_info=True)
        return True


def _dashboard_note() -> str:
    if importlib.util.find_spec("bokeh") is None:
        return " (not served: install bokeh>=3.1 to see it)"
    return ""


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _log_sweep(spec: Spec):
    log.info(
        "sweep %s (%s, spec %s): %s",
        spec.name,
        spec.method,
        spec.hash[:12],
        " x ".join(f"{a.name}[{len(a)}]" for a in spec.axes),
    )


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
    # One traceback, then one line for the rest: a fault that hits every
    # block (a full disk) must not bury the log.
    if result.failures:
        log.error("task failed: %s", result.failures[0].rstrip())
    if len(result.failures) > 1:
        log.error(
            "%d more blocks failed; last lines: %s",
            len(result.failures) - 1,
            " | ".join(
                sorted({f.strip().splitlines()[-1] for f in result.failures})[:3]
            ),
        )
