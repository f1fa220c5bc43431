"""Where the workers come from: a local cluster, a running scheduler, or a batch
system through dask-jobqueue (`phasegan.batch`). One context manager hands the
engine a Client; the local cluster and its dashboard listen on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket

import dask.config
from distributed import Client, LocalCluster

from phasegan.errors import InputError, PhaseganError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def connect(*, scheduler: str | None = None, cluster: str | None = None, workers=None):
    """Yield a `distributed.Client` and close what was started on exit.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:PORT`` or ``tls://...``
        with the TLS files in the Dask config); nothing is started or stopped.
    cluster : str, optional
        ``slurm`` or ``pbs``: workers in batch jobs through dask-jobqueue,
        scaled adaptively between ``phasegan.cluster.minimum-jobs`` and
        ``maximum-jobs``.
    workers : int, optional
        Local cluster: worker processes (default: the number of cores).
        Batch cluster: the most worker processes at a time (default: from
        ``maximum-jobs``).

    Raises
    ------
    InputError
        Both `scheduler` and `cluster`, an unknown `cluster`, a bad `workers`,
        or a batch cluster whose Dask config is missing or inconsistent.
    PhaseganError
        The scheduler at `scheduler` could not be reached.
    """
    if scheduler is not None and cluster is not None:
        raise InputError(
            "--cluster",
            "cannot be combined with --scheduler",
            cluster,
            hint="give --scheduler ADDRESS for a running scheduler, or --cluster "
            "NAME to start one",
        )
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise InputError("--workers", "must be a whole number >= 1", workers)

    if scheduler is not None:
        with _remote(scheduler) as client:
            yield client
    elif cluster is not None:
        from phasegan.batch import open_batch

        with open_batch(cluster, workers) as client:
            yield client
    else:
        with _local(workers) as client:
            yield client


@contextlib.contextmanager
def _local(workers):
    workers = workers or os.cpu_count() or 1
    security = security_from_config()  # TLS files in the Dask config: use them here too
    log.info(
        "starting a local Dask cluster with %d worker processes%s",
        workers,
        " (TLS)" if security else "",
    )
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            security=security,
            protocol="tls://" if security else None,
        ) as local,
        Client(local) as client,
    ):
        yield client


@contextlib.contextmanager
def _remote(address):
    if "://" not in address or not re.search(r":\d+/?$", address):
        raise InputError(
            "--scheduler",
            "must be an address like tcp://HOST:PORT or tls://HOST:PORT",
            address,
        )

    timeout = dask.config.get("distributed.comm.timeouts.connect")
    _refuse_fast(address)
    log.info("connecting to the Dask scheduler at %s", address)
    try:
        client = Client(address, timeout=timeout)
    except OSError as err:
        raise PhaseganError(
            f"could not reach the Dask scheduler at {address} within {timeout}: "
            f"{err}; check that `dask scheduler` runs there and that the address, "
            "port and TLS settings match"
        ) from err
    with client:
        yield client


def _refuse_fast(address: str, probe_seconds: float = 5.0):
    """Fail at once when nothing listens at ``address``.

    distributed retries a refused connection until its connect timeout (30 s
    by default) and has no shorter timeout for the first attempt, so one
    plain TCP connection is tried first: "refused" is final. Anything else
    (a slow or filtered network) is left to distributed's own retries.
    """
    from distributed.comm import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme not in ("tcp", "tls"):
        return
    host, port = parse_host_port(location)
    try:
        socket.create_connection((host, port), timeout=probe_seconds).close()
    except ConnectionRefusedError:
        raise PhaseganError(
            f"could not reach the Dask scheduler at {address}: connection "
            "refused (nothing listens on that port); check that `dask "
            "scheduler` runs there and that the address and port match"
        ) from None
    except OSError:
        pass


def security_from_config():
    """TLS settings from the Dask config (``distributed.comm.tls``), if any."""
    from distributed.security import Security

    security = Security()
    if security.require_encryption or security.tls_ca_file:
        return security
    return None
