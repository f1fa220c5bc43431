"""Where the workers come from: a local cluster, a running scheduler, or a batch
system through dask-jobqueue. One context manager hands the engine a Client.
"""

from __future__ import annotations

import contextlib
import logging
import os

from distributed import Client, LocalCluster

log = logging.getLogger(__name__)


@contextlib.contextmanager
def connect(
    *, scheduler: str | None = None, cluster: str | None = None, workers=None
):
    """Yield a `distributed.Client` and close what was started on exit.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:PORT``); nothing is
        started or stopped.
    cluster : str, optional
        ``slurm`` or ``pbs``: workers through dask-jobqueue.
    workers : int, optional
        Local cluster: worker processes (default: the number of cores).
    """
    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    if cluster is not None:
        raise NotImplementedError(f"--cluster {cluster} is not wired in yet")

    workers = workers or os.cpu_count() or 1
    log.info("starting a local Dask cluster with %d worker processes", workers)
    with LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    ) as local, Client(local) as client:
        yield client
