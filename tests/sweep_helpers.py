"""Small specs and store comparisons shared by the sweep-service tests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import xarray as xr

from phasegan.spec import parse_spec

#: A 5 x 3 ODE grid that crosses all three d = 1 regimes in well under a second
#: of kernel time; long enough (t_max = 200) that the oscillating point shows
#: several cycles in the last half, as the classifier requires.
TINY = """\
name: tiny
method: ode
model: {d: 1, lambda: 1.0, lambda_gen: 1.0, noise: 1.0, tau: 0.5, tau_gen: 0.5}
init: {q0: 0.2, P0: 0.1}
time: {t_max: 200, samples: 100}
classify: {recovery: 0.5}
grid:
  noise: {start: 0.4, stop: 2.0, num: 5}
  tau_gen: {values: [0.05, 0.5, 2.0]}
"""


def tiny_spec(store, *overrides):
    """The `TINY` spec writing to ``store``, with ``KEY=VALUE`` overrides."""
    return parse_spec(TINY, [f"store={json.dumps(str(store))}", *overrides])


def store_files(path) -> dict:
    """Relative path -> bytes of every file of a store, except leftovers of
    interrupted writes; the root metadata without its creation time."""
    root = Path(path)
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            full = Path(folder) / name
            relative = str(full.relative_to(root))
            if name.endswith(".partial"):
                continue
            files[relative] = full.read_bytes()
    metadata = json.loads(files["zarr.json"])
    for key in ("created", "history"):
        metadata["attributes"].pop(key)
    files["zarr.json"] = json.dumps(metadata, sort_keys=True).encode()
    return files


def assert_stores_identical(a, b):
    """Same bytes in every chunk and array metadata, and an identical Dataset
    apart from the creation time."""
    files_a, files_b = store_files(a), store_files(b)
    assert sorted(files_a) == sorted(files_b)
    different = [name for name in files_a if files_a[name] != files_b[name]]
    assert not different, f"files differ: {different[:5]}"

    ds_a, ds_b = xr.open_zarr(a).load(), xr.open_zarr(b).load()
    for ds in (ds_a, ds_b):
        for key in ("created", "history"):
            ds.attrs.pop(key)
    xr.testing.assert_identical(ds_a, ds_b)
