"""Worker-side helpers of the fault tests; importable by Dask worker processes.

Worker processes started by a `distributed.LocalCluster` from the tests get
the tests' ``sys.path``, so they can unpickle functions from this module.
"""

from __future__ import annotations

import os
from pathlib import Path

from phasegan.task import compute_block


def started_marker(path, block: int, pid: int) -> Path:
    """The file saying that block ``block`` started in process ``pid``."""
    return Path(path).parent / "started" / f"{block}-{pid}"


def marked_compute_block(spec, path, chunks, block):
    """`compute_block`, after leaving a marker naming the process running it."""
    marker = started_marker(path, block, os.getpid())
    marker.parent.mkdir(exist_ok=True)
    marker.touch()
    return compute_block(spec, path, chunks, block)


#: The block `dies_on_block` kills its worker on.
POISON_BLOCK = 2


def dies_on_block(spec, path, chunks, block):
    """`compute_block`, except that block `POISON_BLOCK` kills its worker."""
    if block == POISON_BLOCK:
        os._exit(1)
    return compute_block(spec, path, chunks, block)
