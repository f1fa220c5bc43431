"""Workers in batch jobs, through dask-jobqueue (``--cluster slurm|pbs``).

Batch clusters (``--cluster slurm`` / ``--cluster pbs``) are configured the
dask-jobqueue way, in a Dask config file (``~/.config/dask/jobqueue.yaml``;
examples with every field explained in ``deploy/``). On top of that section,
``phasegan`` reads its own keys::

    phasegan:
      cluster:
        minimum-jobs: 0      # adaptive scaling: never fewer batch jobs than this
        maximum-jobs: 4      #   never more running (--workers N caps workers)
        drain: 60s           # stop taking new blocks this long before a worker's
                             # lifetime ends, so no running block is cut short

Worker lifetimes: a batch job dies at its walltime, and a block running then
would be lost. So every worker gets a ``--lifetime`` shorter than the walltime,
staggered (``--lifetime-stagger``) so that the jobs do not all end together;
adaptive scaling submits a fresh job for each one that ends. Give the flags in
``worker-extra-args``; when they are missing, ``phasegan`` uses 85 % of the
walltime, staggered by 5 %. ``--lifetime-restart`` is refused for batch jobs:
it restarts the worker inside the job that is about to be killed.

A worker loaded with ``--preload phasegan.drain`` (added to every batch job;
add it yourself to ``dask worker`` when you start workers by hand) stops taking
new tasks ``drain`` before its lifetime ends, finishes the blocks it is running,
hands its results to another worker and closes: each block is computed once.
Adaptive scaling counts a draining worker as gone, so its replacement job is
submitted while it drains, and it scales down only idle workers.

Known limits: a draining worker waits for its running blocks past its
lifetime (Dask's own lifetime close waits for the drain), but a block still
running at the walltime is killed with the job and computed again (same data,
twice the work): keep ``drain`` longer than a block takes. A draining worker
whose results no running worker can take (all drain at once and the
replacements still queue) waits until 15 s before its walltime, then closes;
the engine takes every result as soon as its block ends, so usually there
is none.
"""


from __future__ import annotations

import contextlib
import logging
import re
import shutil

import dask.config
from dask.utils import parse_timedelta
from distributed import Adaptive, Client, SchedulerPlugin

from phasegan.cluster import security_from_config
from phasegan.errors import InputError

log = logging.getLogger(__name__)

#: Defaults of the ``phasegan.cluster`` config section (override them in a Dask
#: config file or with ``DASK_PHASEGAN__CLUSTER__MAXIMUM_JOBS=8`` and the like).
DEFAULTS = {
    "phasegan": {
        "cluster": {
            "minimum-jobs": 0,
            "maximum-jobs": 4,
            "drain": "60s",
        }
    }
}
dask.config.update_defaults(DEFAULTS)

#: ``--cluster`` name -> (dask-jobqueue class, submit command)
BATCH_SYSTEMS = {
    "slurm": ("SLURMCluster", "sbatch"),
    "pbs": ("PBSCluster", "qsub"),
}

# Without --lifetime in worker-extra-args: lifetime and stagger as shares of
# the walltime (a 1 h job retires between 48 and 54 min).
LIFETIME_SHARE = 0.85
STAGGER_SHARE = 0.05


@contextlib.contextmanager
def open_batch(name: str, workers=None):
    """Yield a Client of an adaptive dask-jobqueue cluster ``name``."""
    options = batch_options(name)
    cls_name = BATCH_SYSTEMS[name][0]

    import dask_jobqueue  # heavy, and it writes ~/.config/dask/jobqueue.yaml

    try:
        batch = getattr(dask_jobqueue, cls_name)(**options)
    except ValueError as err:  # dask-jobqueue's own check of its section
        raise InputError(f"jobqueue.{name}", str(err).splitlines()[0]) from err
    low, high = _worker_limits(workers, batch._dummy_job.worker_processes)

    with batch, Client(batch) as client:
        log.debug("worker job script:\n%s", batch.job_script())
        log.info(
            "scheduler at %s, dashboard at %s; worker jobs named %r",
            batch.scheduler_address,
            batch.dashboard_link,
            batch.job_name,
        )
        log.info("adaptive scaling between %d and %d worker processes", low, high)
        client.register_plugin(KeepBusyWorkers())
        batch.adapt(minimum=low, maximum=high, Adaptive=DrainAwareAdaptive)
        yield client
        log.info("closing the %s cluster and cancelling its jobs", name.upper())


def batch_options(name: str) -> dict:
    """Check the Dask config of a batch cluster and complete it.

    Parameters
    ----------
    name : str
        ``slurm`` or ``pbs``.

    Returns
    -------
    dict
        Keyword arguments for the dask-jobqueue cluster class, on top of what
        it reads itself from ``jobqueue.<name>``: the worker arguments with the
        lifetime flags and the drain preload, and the scheduler options.

    Raises
    ------
    InputError
        Unknown `name`, missing submit command, or a missing or inconsistent
        config value; the message names the config key.
    """
    if name not in BATCH_SYSTEMS:
        raise InputError(
            "--cluster",
            f"must be one of: {', '.join(BATCH_SYSTEMS)}",
            name,
            hint="or give --scheduler ADDRESS for a running scheduler",
        )
    section = f"jobqueue.{name}"
    submit = BATCH_SYSTEMS[name][1]

    # Required values: dask-jobqueue has no sensible default for these.
    hint = (
        f"copy deploy/{name}/jobqueue.yaml to ~/.config/dask/ (or to the "
        "directory in $DASK_CONFIG) and edit it for your site"
    )
    for key in ("cores", "memory"):
        if dask.config.get(f"{section}.{key}", None) is None:
            raise InputError(
                f"{section}.{key}", "must be set in a Dask config file", hint=hint
            )

    # The scheduler listens on one address the compute nodes can reach, never
    # on every interface by default.
    scheduler_options = dict(dask.config.get(f"{section}.scheduler-options", {}) or {})
    if not (
        dask.config.get(f"{section}.interface", None)
        or scheduler_options.get("host")
        or scheduler_options.get("interface")
    ):
        raise InputError(
            f"{section}.interface",
            "must name the network interface the compute nodes reach this "
            f"machine on (or set {section}.scheduler-options.host)",
            hint="phasegan does not open the scheduler on every interface by "
            "default; see deploy/README.md",
        )
    scheduler_options.setdefault("dashboard_address", "127.0.0.1:8787")

    if shutil.which(submit) is None:
        raise InputError(
            "--cluster",
            f"needs the `{submit}` command of {name.upper()} on PATH",
            name,
            hint="run phasegan on a login node of the cluster",
        )

    args = list(dask.config.get(f"{section}.worker-extra-args", []) or [])
    walltime = _walltime_seconds(section, dask.config.get(f"{section}.walltime"))
    args = _lifetime_args(section, args, walltime)
    if "phasegan.drain" not in args:
        args += ["--preload", "phasegan.drain"]

    # The drain time travels to the workers in their environment.
    drain = _seconds(
        "phasegan.cluster.drain", dask.config.get("phasegan.cluster.drain")
    )
    prologue = list(dask.config.get(f"{section}.job-script-prologue", []) or [])
    prologue.append(f"export DASK_PHASEGAN__CLUSTER__DRAIN={drain:g}")
    # When the batch system will kill the job (epoch seconds): a draining
    # worker may wait for a taker of its results until shortly before.
    prologue.append(
        f"export DASK_PHASEGAN__CLUSTER__JOB_END=$(( $(date +%s) + {walltime:.0f} ))"
    )

    options = {
        "worker_extra_args": args,
        "job_script_prologue": prologue,
        "scheduler_options": scheduler_options,
    }
    security = security_from_config()
    if security is not None:
        options["security"] = security
    return options


def _lifetime_args(section: str, args: list, walltime: float) -> list:
    """Check or add ``--lifetime`` and ``--lifetime-stagger`` (seconds)."""
    field = f"{section}.worker-extra-args"
    if "--lifetime-restart" in args:
        raise InputError(
            field,
            "must not hold --lifetime-restart for batch jobs: it restarts the "
            "worker inside the job that is about to reach its walltime",
            args,
            hint="remove it; adaptive scaling submits a fresh job instead",
        )

    lifetime = _flag(args, "--lifetime")
    stagger = _flag(args, "--lifetime-stagger")
    if lifetime is None:
        lifetime = LIFETIME_SHARE * walltime
        if stagger is None:
            stagger = STAGGER_SHARE * walltime
            args += ["--lifetime-stagger", f"{stagger:.0f}s"]
        args += ["--lifetime", f"{lifetime:.0f}s"]
        log.info(
            "worker lifetime %.0fs +- %.0fs (no --lifetime in %s; walltime %.0fs)",
            lifetime,
            stagger,
            field,
            walltime,
        )
    lifetime = _seconds(field, lifetime)
    stagger = _seconds(field, stagger or 0)

    # A worker may keep its job up to `drain` past its lifetime while it
    # waits for another worker to take its results.
    drain = _drain_seconds()
    if lifetime + stagger + drain >= walltime:
        raise InputError(
            field,
            "--lifetime plus --lifetime-stagger plus phasegan.cluster.drain "
            f"({drain:.0f}s) must be shorter than the walltime ({walltime:.0f}s), "
            "or jobs are killed in the middle of a block",
            args,
            hint="leave a few minutes for the worker to start and to hand over",
        )
    if drain >= lifetime - stagger:
        raise InputError(
            "phasegan.cluster.drain",
            "must be shorter than the shortest worker lifetime "
            f"({lifetime - stagger:.0f}s = --lifetime minus --lifetime-stagger)",
            dask.config.get("phasegan.cluster.drain"),
        )
    return args


def _worker_limits(workers: int | None, processes: int) -> tuple[int, int]:
    """Adaptive bounds in worker processes (``processes`` per job)."""
    low = dask.config.get("phasegan.cluster.minimum-jobs")
    high = dask.config.get("phasegan.cluster.maximum-jobs")
    for key, value in (("minimum-jobs", low), ("maximum-jobs", high)):
        if not isinstance(value, int) or value < 0:
            raise InputError(
                f"phasegan.cluster.{key}", "must be a whole number >= 0", value
            )
    if workers is not None:  # --workers caps the processes, whatever the config
        return min(low * processes, workers), workers
    if high < max(low, 1):
        raise InputError(
            "phasegan.cluster.maximum-jobs",
            f"must be >= 1 and >= minimum-jobs ({low})",
            high,
        )
    return low * processes, high * processes


def _drain_seconds() -> float:
    return _seconds("phasegan.cluster.drain", dask.config.get("phasegan.cluster.drain"))


def _flag(args: list, name: str):
    """The value after ``name`` (or of ``name=value``) in a flag list."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if isinstance(arg, str) and arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _seconds(field: str, value) -> float:
    try:
        return float(parse_timedelta(value, default="seconds"))
    except (TypeError, ValueError, KeyError) as err:
        raise InputError(
            field, "must be a duration like 55m or '120 s'", value
        ) from err


def _walltime_seconds(section: str, text) -> float:
    """A batch walltime in seconds.

    SLURM: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS``. PBS: ``SS``, ``MM:SS``, ``HH:MM:SS``. A bare number is
    minutes for SLURM and seconds for PBS, as those systems read it.
    """
    field = f"{section}.walltime"
    match = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", str(text).strip())
    if text is None or match is None:
        raise InputError(field, "must be a walltime like 01:00:00", text)

    days, clock = match.groups()
    parts = [int(p) for p in clock.split(":")]
    if days is not None:  # D-HH[:MM[:SS]]
        parts = (parts + [0, 0])[:3]
    elif len(parts) == 1:
        parts = [0, parts[0], 0] if section.endswith("slurm") else [0, 0, parts[0]]
    else:  # MM:SS or HH:MM:SS
        parts = [0] * (3 - len(parts)) + parts
    hours, minutes, seconds = parts
    total = ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise InputError(field, "must be longer than zero", text)
    return float(total)


class DrainAwareAdaptive(Adaptive):
    """Adaptive scaling that counts a draining worker as gone.

    A worker that drains before its lifetime ends takes no new blocks, but
    its job lives on until it has finished and handed over its results. Its
    replacement is asked for at once, so for a while up to ``maximum`` plus
    the draining workers exist; and when every worker drains at once, the
    replacements are there to take the results.
    """

    async def safe_target(self) -> int:
        target = await super().safe_target()
        if not target:  # nothing to do: no replacements either
            return target
        workers = (await self.scheduler.identity()).get("workers", {})
        draining = sum(
            w.get("status") == "closing_gracefully" for w in workers.values()
        )
        return target + draining


class KeepBusyWorkers(SchedulerPlugin):
    """Scale down only idle workers.

    Adaptive scaling would otherwise retire a worker in the middle of a
    block when the queue runs short (at the end of a sweep), and the block
    would be computed again elsewhere.
    """

    name = "phasegan-keep-busy-workers"

    def valid_workers_downscaling(self, scheduler, workers):
        return [ws for ws in workers if not ws.processing]
