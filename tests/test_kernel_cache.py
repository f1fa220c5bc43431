"""Numba's cache of the compiled kernels: where it goes, and that a fresh
process loads the kernels from it instead of compiling them again."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from phasegan.model import _cache

FIRST_CALL = """
import json, time
start = time.perf_counter()
import numpy as np
from phasegan.model import ode
from phasegan.model.parameters import Parameters
ode.solve(Parameters.single(noise=1.0), np.linspace(0.0, 1.0, 3))
stats = ode._integrate_block.stats
print(json.dumps({
    "seconds": time.perf_counter() - start,
    "hits": sum(stats.cache_hits.values()),
    "misses": sum(stats.cache_misses.values()),
    "path": stats.cache_path,
}))
"""


def unwritable(tmp_path: Path, name: str) -> Path:
    """A directory path that cannot be made, even by root: under a file."""
    blocker = tmp_path / f"{name}-is-a-file"
    blocker.write_text("")
    return blocker / "cache"


def test_numba_cache_dir_set_by_the_user_wins(tmp_path):
    environ = {"NUMBA_CACHE_DIR": "/somewhere"}
    chosen = _cache.choose_cache_dir(
        unwritable(tmp_path, "source"), unwritable(tmp_path, "user"), environ
    )
    assert chosen is None
    assert environ == {"NUMBA_CACHE_DIR": "/somewhere"}


def test_numba_keeps_its_own_choice_when_it_has_one(tmp_path):
    environ = {}
    for source, user in [
        (tmp_path / "source", unwritable(tmp_path, "user")),
        (unwritable(tmp_path, "source"), tmp_path / "user"),
    ]:
        assert _cache.choose_cache_dir(source, user, environ) is None
        assert environ == {}


def test_a_temporary_cache_when_nothing_else_is_writable(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    environ = {}
    chosen = _cache.choose_cache_dir(
        unwritable(tmp_path, "source"), unwritable(tmp_path, "user"), environ
    )
    assert chosen == environ["NUMBA_CACHE_DIR"]
    assert Path(chosen).parent == tmp_path / "tmp"
    assert Path(chosen).is_dir()


def test_no_cache_at_all_is_a_warning_not_an_error(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(tempfile, "tempdir", str(unwritable(tmp_path, "tmp")))
    # The command line stops phasegan's log at its own handler; let it through.
    monkeypatch.setattr(logging.getLogger("phasegan"), "propagate", True)
    environ = {}
    chosen = _cache.choose_cache_dir(
        unwritable(tmp_path, "source"), unwritable(tmp_path, "user"), environ
    )
    assert chosen is None and environ == {}
    assert "set NUMBA_CACHE_DIR" in caplog.text


def test_a_fresh_process_loads_the_ode_kernel_from_the_cache(tmp_path):
    # The first process compiles and writes the cache; the next one, like a
    # new worker, must load every signature (hits) and compile none (misses).
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    runs = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_CALL],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    assert cold["misses"] >= 1 and cold["hits"] == 0
    assert warm["misses"] == 0 and warm["hits"] >= 1
    assert Path(warm["path"]).is_relative_to(tmp_path / "numba")
