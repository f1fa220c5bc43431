"""Worker preload for tests/test_cluster.py: a record of every task execution.

``dask worker --preload cluster_probe`` (with ``tests/`` on PYTHONPATH) appends
one JSON line per task that starts or stops executing to the file named by
``PHASEGAN_TEST_PROBE``: the key, the worker, its process and the SLURM job it
runs in. The tests read it to count how often each block was computed and
where.
"""

from __future__ import annotations

import json
import os
import time

from distributed.diagnostics.plugin import WorkerPlugin


class ExecutionProbe(WorkerPlugin):
    name = "phasegan-test-probe"

    def __init__(self, path: str):
        self.path = path

    def setup(self, worker):
        self.worker = worker

    def transition(self, key, start, finish, **kwargs):
        if "executing" not in (start, finish):
            return
        record = {
            "key": str(key),
            "start": start,
            "finish": finish,
            "worker": str(self.worker.name),
            "address": self.worker.address,
            "pid": os.getpid(),
            "slurm_job": os.environ.get("SLURM_JOB_ID"),
            "time": time.time(),
        }
        # One short write with O_APPEND: lines from many processes stay whole.
        with open(self.path, "a") as file:
            file.write(json.dumps(record) + "\n")


async def dask_setup(worker):
    path = os.environ.get("PHASEGAN_TEST_PROBE")
    if path:
        await worker.plugin_add(ExecutionProbe(path))


def read(path) -> list[dict]:
    """The records written so far (none if the file does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]


def block_of(key: str) -> int | None:
    """Block number of a phasegan task key ``('phasegan-...', 7)``, else None."""
    if not key.startswith("('phasegan-"):
        return None
    return int(key.rsplit(",", 1)[1].strip(" )"))


def executions(records) -> dict[int, list[dict]]:
    """Block -> the records of its executions that ran to the end."""
    done: dict[int, list[dict]] = {}
    for record in records:
        block = block_of(record["key"])
        if block is not None and record["start"] == "executing":
            done.setdefault(block, []).append(record)
    return done


def starts(records) -> dict[int, int]:
    """Block -> how many times it started executing."""
    count: dict[int, int] = {}
    for record in records:
        block = block_of(record["key"])
        if block is not None and record["finish"] == "executing":
            count[block] = count.get(block, 0) + 1
    return count
