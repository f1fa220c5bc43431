"""The Zarr store of a sweep: layout, creation, block writes, progress, loading.

One xarray Dataset in Zarr format 3 (CONTRACT.md, "The store"). Dimensions:
one per grid axis in spec order, then ``seed`` for simulations, then ``time``,
``feature`` and ``gen_feature``. The store is created from the spec, metadata
only, before any task runs; each task then fills exactly one chunk of every
variable from the worker. Chunks along the grid dimensions are the blocks of
`phasegan.grid`, and along every other dimension they span the whole
dimension, so no chunk is ever shared by two tasks (see `create`).

Unwritten cells read as their fill value, never as a computed zero: ``-1`` for
``label`` and ``status``, NaN for floats and `MESSAGE_FILL` for ``message``
(a computed run's message is ``""`` when it did not fail). A computed NaN
(a trajectory after a failure, a diagnostic with no value) reads like an
unwritten float: ``label`` tells them apart. A point's ``label`` is written
after everything else of its block, so ``label >= 0`` means the point is
complete.

A block whose task raised (a full disk, a bug) keeps ``label = -1`` and, where
the store can still be written, gets ``status = BLOCK_FAILED`` and the error as
its ``message``: `progress` counts such runs, so a detached sweep's failures
show in ``phasegan status``. Running the spec again retries them.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from phasegan.classify import DIAGNOSTICS, ERROR, LABELS
from phasegan.errors import InputError, StoreMismatchError
from phasegan.model.trajectories import Status

#: Status code of a run whose method raised instead of returning (not a
#: `Status` of the model: an unexpected exception, caught by the engine).
EXCEPTION = 100
#: Status of the runs of a block whose task raised before its label was
#: written (see `record_block_failure`); the label stays `NOT_COMPUTED`.
BLOCK_FAILED = 101
NOT_COMPUTED = -1
#: What ``message`` holds before a run is computed; a computed run's message is
#: "" or the reason it failed, never this.
MESSAGE_FILL = "(not computed)"

AXIS_LONG_NAMES = {
    "noise": "noise level eta_T = eta_G",
    "noise_true": "noise level of the real data eta_T",
    "noise_gen": "noise level of the generated data eta_G",
    "tau": "discriminator learning rate tau",
    "tau_gen": "generator learning rate tau_gen",
    "lambda": "feature strength lambda (every feature)",
    "lambda_gen": "generator feature strength lambda_gen (every feature)",
    "q0": "initial overlap q0",
    "P0": "initial overlap P0",
    "n": "ambient dimension n",
}
_LIBRARIES = ("numpy", "scipy", "numba", "dask", "distributed", "xarray", "zarr")


@dataclass(frozen=True)
class Variable:
    """One data variable of the store: its trailing dims, dtype and fill."""

    name: str
    tail: tuple
    dtype: str
    fill: object
    attrs: dict


def variables(spec) -> list:
    """Every data variable of a sweep's store, ``label`` last."""
    out = [
        Variable(
            "q",
            ("time", "feature"),
            "float64",
            np.nan,
            {
                "long_name": "overlap q = U^T w of the discriminator with each "
                "true feature (MODEL.md section 3)",
                "units": "1",
            },
        ),
        Variable(
            "P",
            ("time", "feature", "gen_feature"),
            "float64",
            np.nan,
            {
                "long_name": "overlap P = U^T V of true feature i with generator "
                "feature j",
                "units": "1",
            },
        ),
        Variable(
            "r",
            ("time", "gen_feature"),
            "float64",
            np.nan,
            {
                "long_name": "overlap r = V^T w of the discriminator with each "
                "generator feature",
                "units": "1",
            },
        ),
    ]
    for diag in DIAGNOSTICS:
        out.append(
            Variable(
                diag.name,
                ("feature",) if diag.per_feature else (),
                "float64",
                np.nan,
                {"long_name": diag.long_name, "units": diag.units},
            )
        )
    codes = [(int(s), s.name.lower()) for s in Status]
    codes += [(EXCEPTION, "exception"), (BLOCK_FAILED, "block_failed")]
    out.append(
        Variable(
            "status",
            (),
            "int8",
            NOT_COMPUTED,
            {
                "long_name": "outcome of the method for this run",
                "flag_values": [code for code, _ in codes],
                "flag_meanings": " ".join(name for _, name in codes),
                "missing_value_meaning": "-1: not computed yet",
            },
        )
    )
    out.append(
        Variable(
            "message",
            (),
            "str",
            MESSAGE_FILL,
            {
                "long_name": "why the run failed ('' when it did not)",
                "missing_value_meaning": f"{MESSAGE_FILL!r}: not computed yet",
            },
        )
    )
    out.append(
        Variable(
            "label",
            (),
            "int8",
            NOT_COMPUTED,
            {
                "long_name": "regime of the training dynamics (MODEL.md section 7)",
                "flag_values": list(range(len(LABELS))),
                "flag_meanings": " ".join(LABELS),
                "missing_value_meaning": "-1: not computed yet",
            },
        )
    )
    return out


def grid_dims(spec) -> tuple:
    """Dimensions every variable starts with: the axes, then ``seed``."""
    dims = tuple(axis.name for axis in spec.axes)
    return dims + ("seed",) if spec.simulation else dims


# --- create -------------------------------------------------------------------


def create(spec, path, chunks: tuple) -> None:
    """Create the store of ``spec`` at ``path``: metadata and coordinates only.

    Built in a temporary directory beside ``path`` and renamed into place, so
    a store at ``path`` always has its full metadata even if this process is
    killed half-way.

    Chunks equal ``chunks`` (the blocks of `phasegan.grid`) along the grid
    dimensions and span every other dimension whole. This is where the rule
    "one task writes one chunk, no chunk is shared between tasks" is
    guaranteed: a block's region covers exactly one chunk of each variable,
    and `write_region` refuses any region that is not one whole chunk.
    """
    path = Path(path)
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.creating")
    try:
        _build(spec, staging, chunks)
        os.rename(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build(spec, path: Path, chunks: tuple):
    group = zarr.create_group(store=str(path), zarr_format=3, attributes=_attrs(spec))
    sizes = dict(zip(grid_dims(spec), spec.shape + (spec.replicas,)))
    sizes.update(time=spec.samples, feature=spec.d, gen_feature=spec.d)
    lead_chunks = tuple(chunks) + ((spec.replicas,) if spec.simulation else ())

    for axis in spec.axes:
        dtype = "int64" if axis.name == "n" else "float64"
        attrs = {
            "long_name": AXIS_LONG_NAMES[axis.name],
            "units": "1",
            "spacing": _spacing(axis),
        }
        _coordinate(group, axis.name, np.asarray(axis.values, dtype=dtype), attrs)
    if spec.simulation:
        _coordinate(
            group,
            "seed",
            np.arange(spec.replicas),
            {"long_name": "replica: independent run at the same point", "units": "1"},
        )
    _coordinate(
        group,
        "time",
        spec.times,
        {
            "long_name": "training time t = k / n (SGD steps per dimension)",
            "units": "1",
        },
    )
    _coordinate(
        group,
        "feature",
        np.arange(spec.d),
        {"long_name": "index i of a true feature", "units": "1"},
    )
    _coordinate(
        group,
        "gen_feature",
        np.arange(spec.d),
        {"long_name": "index j of a generator feature", "units": "1"},
    )

    for var in variables(spec):
        dims = grid_dims(spec) + var.tail
        group.create_array(
            var.name,
            shape=tuple(sizes[d] for d in dims),
            dtype=var.dtype,
            chunks=lead_chunks + tuple(sizes[d] for d in var.tail),
            fill_value=var.fill,
            compressors=_compressors(var.dtype),
            dimension_names=list(dims),
            attributes=var.attrs,
        )

    # xarray reads the consolidated metadata without a warning; zarr warns
    # that format 3 has not standardized it yet, which users cannot act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(path))


def _compressors(dtype: str):
    """Blosc LZ4 with byte shuffle for numbers, zarr's default for text.

    Trajectories are most of what a task writes: on them this costs about a
    third of the CPU time of zarr's default Zstandard and compresses a little
    better (the shuffle groups the bytes of equal rank of the float64s).
    """
    if dtype == "str":
        return "auto"
    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def _spacing(axis) -> str:
    """How an axis' values were given: evenly ("linear"/"log") or a list."""
    if len(axis.values) < 2 or axis.log:
        return "log" if axis.log else "linear"
    steps = np.diff(np.asarray(axis.values, dtype=float))
    return "linear" if np.allclose(steps, steps[0]) else "values"


def _coordinate(group, name, values, attrs):
    array = group.create_array(
        name,
        shape=values.shape,
        dtype=values.dtype,
        chunks=values.shape,
        dimension_names=[name],
        attributes=attrs,
    )
    array[...] = values


def _attrs(spec) -> dict:
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    attrs = {
        "title": f"phasegan sweep {spec.name}: {spec.method} over "
        + " x ".join(axis.name for axis in spec.axes),
        "Conventions": "CF-1.11",
        "source": f"phasegan {_version('phasegan')}",
        "history": f"{created} created by phasegan {_version('phasegan')}",
        "name": spec.name,
        "method": spec.method,
        "spec": spec.identity,
        "spec_hash": spec.hash,
        "created": created,
        "phasegan_version": _version("phasegan"),
        "python_version": platform.python_version(),
    }
    for library in _LIBRARIES:
        attrs[f"{library}_version"] = _version(library)
    return attrs


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


# --- open, check, remove ------------------------------------------------------


def read_attrs(path) -> dict | None:
    """The group attributes of a phasegan store, or None if ``path`` is none."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        return None
    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # a broken or foreign zarr.json: not ours
        return None
    return attrs if "spec_hash" in attrs else None


def check_writable(path) -> None:
    """Raise `InputError` if a store could not be created or written at ``path``.

    Tries it: makes and removes an empty directory in ``path`` if it is a
    directory, else in its nearest existing parent.
    """
    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise InputError(
            "store",
            "exists and is not a directory",
            str(path),
            "choose another path with --store",
        )
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not _can_write(parent):
        raise InputError(
            "store",
            f"cannot be written ({parent} is not a writable directory)",
            str(path),
            "choose a writable location with --store",
        )


def check_file_writable(path, field: str, hint: str, make_parents=True) -> None:
    """Raise `InputError` naming ``field`` if a file could not be written at
    ``path`` (a figure), before any work is done.

    With ``make_parents`` the missing folders would be made, so the nearest
    existing one must be writable; without, the file's own folder must exist.
    """
    path = Path(path).absolute()
    if path.is_dir():
        raise InputError(field, "is a directory, not a file", str(path), hint)
    folder = path.parent
    if not make_parents and not folder.is_dir():
        raise InputError(
            field, f"cannot be written ({folder} does not exist)", str(path), hint
        )
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not _can_write(folder):
        raise InputError(
            field,
            f"cannot be written ({folder} is not a writable directory)",
            str(path),
            hint,
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(field, "exists and cannot be overwritten", str(path), hint)


def _can_write(folder: Path) -> bool:
    # Try it: os.access says yes to root on /proc, and knows nothing of
    # quotas, read-only bind mounts or root squashing on NFS.
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".phasegan-probe-", dir=folder))
    except OSError:
        return False
    return True


def check_matches(path, spec) -> None:
    """Raise `StoreMismatchError` unless the store at ``path`` was made by ``spec``."""
    attrs = read_attrs(path)
    if attrs is None:
        raise InputError(
            "store",
            "exists and is not a phasegan store",
            str(path),
            "choose another path with --store; it is not overwritten",
        )
    if attrs["spec_hash"] != spec.hash:
        raise StoreMismatchError(
            "store",
            f"was made by another spec ({attrs.get('name')}, hash "
            f"{attrs['spec_hash'][:12]}; this spec has {spec.hash[:12]})",
            str(path),
            "give --overwrite to replace it, or --store for a new path",
        )


def remove(path) -> None:
    """Delete a phasegan store; refuses a directory that is not one."""
    if read_attrs(path) is None:
        raise InputError(
            "store", "is not a phasegan store, so it is not deleted", str(path)
        )
    shutil.rmtree(path)


def chunks(path) -> tuple:
    """Chunk shape of the store along the grid axes (the blocks)."""
    group = zarr.open_group(str(path), mode="r")
    label = group["label"]
    axes = len(label.shape) - (1 if "seed" in label.metadata.dimension_names else 0)
    return tuple(label.chunks[:axes])


def read_label(path) -> np.ndarray:
    """The whole label array (grid axes, then seed), int8."""
    return zarr.open_group(str(path), mode="r")["label"][...]


# --- write --------------------------------------------------------------------


def write_region(path, region: tuple, values: dict) -> None:
    """Write one block's values (name -> array of the region's shape).

    ``label`` goes last, after every other variable, so a reader never sees a
    label for a point whose data is not on disk yet.
    """
    # The consolidated metadata of `create` opens every array without
    # reading its own zarr.json (the layout never changes after creation).
    group = zarr.open_group(str(path), mode="r+", use_consolidated=True)
    names = sorted(values, key=lambda name: name == "label")
    for name in names:
        array = group[name]
        _check_one_chunk(array, region, name)
        array[region] = values[name]


def _check_one_chunk(array, region: tuple, name: str) -> None:
    """Raise unless ``region`` is exactly one chunk of ``array``.

    Tasks write their blocks at the same time, from many processes; a write
    that covered part of a chunk would read, modify and write back a chunk
    another task may be writing, and one of the two would be lost. `create`
    and `phasegan.grid` make every block one chunk; this check keeps a future
    change from breaking that silently.
    """
    for axis, (part, size, length) in enumerate(zip(region, array.chunks, array.shape)):
        start, stop, step = part.indices(length)
        if step != 1 or start % size or stop != min(start + size, length):
            raise ValueError(
                f"region {region} of {name!r} is not one whole chunk (chunks "
                f"{array.chunks}, axis {axis}): concurrent block writes would "
                "share a chunk; blocks must follow the store's chunks"
            )
    rest = zip(array.chunks[len(region) :], array.shape[len(region) :])
    if any(size < length for size, length in rest):
        raise ValueError(
            f"{name!r} has chunks {array.chunks} that split a dimension after the "
            "grid axes: every block would share them"
        )


def record_block_failure(path, region: tuple, reason: str) -> bool:
    """Mark the runs of a block whose task raised: `BLOCK_FAILED` and the reason.

    ``label`` is left alone (still `NOT_COMPUTED`), so the block runs again on
    the next run of the spec, and `progress` reports the failure meanwhile.
    A block whose label is on disk is complete (its worker died after the
    last write, say): it is left as it is, and the answer is False.
    """
    group = zarr.open_group(str(path), mode="r+", use_consolidated=True)
    if (group["label"][region] >= 0).all():
        return False
    for name, value in (("status", BLOCK_FAILED), ("message", reason)):
        array = group[name]
        _check_one_chunk(array, region, name)
        shape = tuple(s.stop - s.start for s in region) + array.shape[len(region) :]
        array[region] = np.full(shape, value, dtype=array.dtype)
    return True


def block_values(traj, result, shape: tuple, simulation: bool) -> dict:
    """A block's trajectories and classification in the store's layout.

    Parameters
    ----------
    traj : Trajectories
        ``B`` points x ``R`` replicas; ``B`` = prod(shape).
    result : Classification
    shape : tuple of int
        The block's shape along the grid axes.
    simulation : bool
        Keep the replica axis as ``seed``; otherwise drop it (``R = 1``).
    """

    def layout(array):
        array = np.asarray(array)
        array = array.reshape(tuple(shape) + array.shape[1:])
        if not simulation:
            array = array.reshape(
                array.shape[: len(shape)] + array.shape[len(shape) + 1 :]
            )
        return array

    out = {
        "q": layout(traj.q),
        "P": layout(traj.P),
        "r": layout(traj.r),
        "status": layout(traj.status.astype(np.int8)),
        "message": layout(np.asarray(traj.message, dtype=str)),
    }
    for diag in DIAGNOSTICS:
        out[diag.name] = layout(
            np.asarray(result.diagnostics[diag.name], dtype=np.float64)
        )
    out["label"] = layout(result.label.astype(np.int8))
    return out


# --- progress and loading -----------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """What the store says about a sweep, read from the store alone.

    Attributes
    ----------
    done, total : int
        Runs (points x seeds) with a label, and all runs.
    counts : dict of str -> int
        Runs per label name.
    attrs : dict
        The store's provenance attributes.
    rate : float or None
        Runs per second over the recent writes; None before two writes.
    last_write : float or None
        POSIX time of the newest label chunk.
    blocks_written : int
        Label chunks on disk (one per complete block).
    failed : int
        Runs not done whose block task raised (`BLOCK_FAILED`).
    failure : str or None
        The reason stored for the first of them.
    error : str or None
        The message of the first run labelled ``error``: what went wrong at
        a point that could not be computed.
    """

    done: int
    total: int
    counts: dict
    attrs: dict
    rate: float | None
    last_write: float | None
    blocks_written: int = 0
    failed: int = 0
    failure: str | None = None
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.done == self.total

    def stalled(self, patience: float = 60.0) -> bool:
        """Incomplete, and no block written for ``patience`` seconds (or five
        times the recent interval between writes, if longer): the sweep looks
        stopped (a cancel, Ctrl-C, a dead cluster), and its rate is history."""
        if self.complete:
            return False
        last = self.last_write
        if last is None:
            created = datetime.datetime.fromisoformat(self.attrs["created"])
            last = created.timestamp()
        if self.rate:
            per_block = self.done / max(self.blocks_written, 1) / self.rate
            patience = max(patience, 5 * per_block)
        return time.time() - last > patience

    @property
    def eta(self) -> float | None:
        """Seconds left at the recent rate, None when unknown or stalled."""
        if self.complete:
            return 0.0
        if not self.rate or self.stalled():
            return None
        return (self.total - self.done) / self.rate


def require_store(path) -> dict:
    """The attributes of the phasegan store at ``path``, or an `InputError`."""
    attrs = read_attrs(path)
    if attrs is not None:
        return attrs
    what = "does not exist" if not Path(path).exists() else "is not a phasegan store"
    raise InputError(
        "STORE",
        what,
        str(path),
        "give the directory that 'phasegan run' wrote (the spec's store: path)",
    )


def progress(path) -> Progress:
    """Points done and total, label counts and the recent rate of a store."""
    attrs = require_store(path)
    group = zarr.open_group(str(path), mode="r")
    label = group["label"][...]
    done = int((label >= 0).sum())
    counts = {name: int((label == code).sum()) for code, name in enumerate(LABELS)}
    failed = (label < 0) & (group["status"][...] == BLOCK_FAILED)
    failure = _first_message(group, failed)
    error = _first_message(group, label == ERROR)
    times = _write_times(Path(path))
    return Progress(
        done=done,
        total=int(label.size),
        counts=counts,
        attrs=attrs,
        rate=_rate(times, done),
        last_write=times[-1] if times else None,
        blocks_written=len(times),
        failed=int(failed.sum()),
        failure=failure,
        error=error,
    )


def _first_message(group, which: np.ndarray) -> str | None:
    """The stored message of the first run where ``which`` holds (one chunk)."""
    if not which.any():
        return None
    first = np.unravel_index(int(np.argmax(which)), which.shape)
    return str(group["message"][first])


def _write_times(path: Path) -> list:
    """Modification times of the label chunks (one per written block), sorted."""
    times = []
    for root, _, files in os.walk(path / "label" / "c"):
        times += [
            os.stat(os.path.join(root, f)).st_mtime
            for f in files
            if not f.endswith(".partial")
        ]
    return sorted(times)


def _rate(times: list, done: int, recent: int = 20) -> float | None:
    """Runs per second over the last ``recent`` block writes."""
    window = times[-recent:]
    if len(window) < 2 or window[-1] <= window[0]:
        return None
    per_block = done / len(times)
    return (len(window) - 1) * per_block / (window[-1] - window[0])


def load(path):
    """The store at ``path`` as a lazy `xarray.Dataset` (Dask-backed)."""
    import xarray as xr

    require_store(path)
    return xr.open_zarr(str(path))
