"""Worker side of batch clusters: drain before the lifetime ends.

Loaded into each batch worker with ``dask worker --preload phasegan.drain``
(`phasegan.batch` adds it to every job; add it yourself when you start workers
with ``--lifetime`` by hand). A worker stops taking new blocks
``phasegan.cluster.drain`` before its lifetime ends, finishes the blocks it is
running, hands over any results and closes, so no block is cut short.
"""

from __future__ import annotations

import asyncio
import logging
import time

import dask.config
from dask.utils import parse_timedelta

import phasegan.batch  # noqa: F401  (registers the phasegan.cluster defaults)

# Worker processes configure only the "distributed" loggers; log there so the
# drain shows up in the worker's own log (the batch job's output).
worker_log = logging.getLogger("distributed.worker.phasegan")

# A draining worker gives up waiting for a taker of its results this long
# before its job's walltime (seconds): time to close before SLURM/PBS kill it.
JOB_END_MARGIN = 15.0


async def dask_setup(worker):
    """Preload hook (``dask worker --preload phasegan.drain``).

    Plans the drain of a worker started with ``--lifetime``: nothing happens
    for workers without one.
    """
    if not getattr(worker, "lifetime", None):
        return
    drain = parse_timedelta(dask.config.get("phasegan.cluster.drain"))
    loop = asyncio.get_running_loop()
    start = max(worker.lifetime - drain, 0.0)

    # Wait for a taker of the results until shortly before the batch system
    # kills the job, or, outside a batch job, until `drain` after the lifetime.
    job_end = dask.config.get("phasegan.cluster.job-end", None)
    if job_end:
        give_up = loop.time() + float(job_end) - time.time() - JOB_END_MARGIN
    else:
        give_up = loop.time() + worker.lifetime + drain
    worker_log.info(
        "worker %s: lifetime %.0fs, stops taking new blocks after %.0fs",
        worker.name,
        worker.lifetime,
        start,
    )
    worker._phasegan_drain = loop.call_later(  # kept with the worker
        start, lambda: asyncio.ensure_future(_drain(worker, give_up))
    )


async def _drain(worker, give_up: float):
    """Stop taking tasks, finish the running ones, hand over results, close.

    Dask's own lifetime close would cut a running task short and have it
    computed again elsewhere; this waits for it instead. Results held here
    move to a running worker; when none is running (all are draining, or
    their replacements still queue), try again until ``give_up`` (event loop
    time), then close anyway and let them be computed again.
    """
    from distributed.core import Status

    if worker.status not in (Status.running, Status.paused):
        return
    worker_log.info("worker %s: draining before its lifetime ends", worker.name)
    worker.status = Status.closing_gracefully  # the scheduler stops sending tasks

    loop = asyncio.get_running_loop()
    while worker.state.executing:
        await asyncio.sleep(0.2)

    while True:
        retired = await worker.scheduler.retire_workers(
            workers=[worker.address],
            close_workers=False,
            remove=True,
            stimulus_id=f"phasegan-drain-{time.time()}",
        )
        if worker.address in retired or loop.time() > give_up:
            break
        await asyncio.sleep(1.0)
    if worker.address not in retired:
        worker_log.warning(
            "worker %s: no running worker took its results; they will be "
            "computed again",
            worker.name,
        )
    await worker.close(nanny=not worker.lifetime_restart, reason="phasegan-drain")
