"""The sweep spec: YAML in, one validated and immutable `Spec` out.

This is the only place that checks what a user wrote (CONTRACT.md, "Sweep
spec"). Every rule failure is an `InputError` naming the dotted field, the rule,
the bad value and the fix. The model's own rules (MODEL.md) are checked by
`Parameters.validated`, whose field names are mapped back to spec paths here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import numpy as np

from phasegan.errors import InputError, ParameterError
from phasegan.model.methods import METHODS
from phasegan.model.parameters import Parameters
from phasegan.yamlspec import dump_yaml, load_yaml

SECTIONS = (
    "name",
    "method",
    "model",
    "init",
    "time",
    "sim",
    "classify",
    "grid",
    "store",
    "figure",
)
MODEL_KEYS = (
    "d",
    "lambda",
    "lambda_gen",
    "noise",
    "noise_true",
    "noise_gen",
    "tau",
    "tau_gen",
)
INIT_KEYS = ("q0", "P0")
TIME_KEYS = ("t_max", "samples")
SIM_KEYS = ("n", "seeds", "seed")
CLASSIFY_KEYS = ("recovery",)

#: Spec name of a sweepable parameter -> the `Parameters` fields it sets.
AXIS_FIELDS = {
    "noise": ("noise_true", "noise_gen"),
    "noise_true": ("noise_true",),
    "noise_gen": ("noise_gen",),
    "tau": ("tau",),
    "tau_gen": ("tau_gen",),
    "lambda": ("lam",),
    "lambda_gen": ("lam_gen",),
    "q0": ("q0",),
    "P0": ("P0",),
    "n": ("n",),
}

#: Section a sweepable parameter lives in when it is not a grid axis.
_HOME = {
    **{name: "model" for name in MODEL_KEYS},
    "q0": "init",
    "P0": "init",
    "n": "sim",
}

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_D = 16
#: Runs (grid points x seeds) in one sweep: the client holds one label per run
#: and the scheduler one task per block, so this bounds their memory.
MAX_RUNS = 10_000_000
#: Tasks in one sweep; with more points, blocks get bigger.
MAX_BLOCKS = 100_000
#: Memory of one block's trajectories in a worker (and of one Zarr chunk).
#: A task holds about 2.7 times this at its peak (the ODE's packed states
#: and the trajectories made from them, ``S`` included), over the ~200 MB of
#: a worker's libraries: a worker stays under 1 GB whatever the grid.
MAX_BLOCK_BYTES = 128 * 2**20
#: Memory one full simulation (method sim) may hold in a worker: its state
#: ``U, V, w`` is (2d + 1) n floats, and the random start (a Gaussian matrix
#: and its QR frame) holds two more of that size at its peak.
MAX_SIM_RUN_BYTES = 2**30


def sim_run_bytes(d: int, n: int) -> int:
    """Peak bytes of one full simulation's state at dimension ``n``."""
    return 3 * (2 * d + 1) * n * 8


@dataclass(frozen=True)
class Axis:
    """One grid axis: a sweepable parameter and its values, in spec order."""

    name: str
    values: tuple
    log: bool = False

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Spec:
    """A validated sweep spec. Build it with `read_spec` or `parse_spec`.

    Attributes
    ----------
    name, method : str
    d : int
        Number of features.
    fixed : mapping of str -> value
        Every `Parameters` field not set by a grid axis (``lam`` as a tuple of
        ``d`` values, ``n`` an int, the others floats).
    axes : tuple of Axis
        The grid axes in spec order; the sweep is their product.
    t_max : float
    samples : int
        Stored samples per trajectory, evenly spaced on ``[0, t_max]``.
    replicas : int
        Seeds per point (1 for the ODE).
    root_seed : int
    recovery : float
    store, figure : str
        Where the Zarr store and the phase diagram go.
    text : str
        The spec as canonical YAML, every default written out; parsing it
        gives the same spec and the same hash.
    identity : str
        `text` without ``store`` and ``figure``: what decides the results.
        The store keeps it, so a store does not depend on where it was made.
    hash : str
        SHA-256 of `identity` (of its JSON form).
    """

    name: str
    method: str
    d: int
    fixed: Mapping
    axes: tuple
    t_max: float
    samples: int
    replicas: int
    root_seed: int
    recovery: float
    store: str
    figure: str
    text: str
    identity: str
    hash: str

    @property
    def simulation(self) -> bool:
        """True for ``sim`` and ``reduced``, which have a ``seed`` dimension."""
        return self.method != "ode"

    @property
    def shape(self) -> tuple:
        """Number of values of each axis."""
        return tuple(len(axis) for axis in self.axes)

    @property
    def size(self) -> int:
        """Number of grid points."""
        return math.prod(self.shape)

    @property
    def runs(self) -> int:
        """Number of trajectories: points x replicas."""
        return self.size * self.replicas

    @property
    def times(self) -> np.ndarray:
        """Sample times, shape (samples,)."""
        return np.linspace(0.0, self.t_max, self.samples)

    @property
    def run_bytes(self) -> int:
        """Bytes of one run's stored trajectories ``q, P, r`` (float64)."""
        return self.samples * (2 * self.d + self.d**2) * 8

    def __reduce__(self):
        # A spec is its canonical text; pickling it keeps only that (the
        # read-only `fixed` mapping does not pickle by itself).
        return _unpickle, (self.text,)

    def axis(self, name: str) -> Axis:
        for axis in self.axes:
            if axis.name == name:
                return axis
        raise KeyError(name)

    def with_store(self, store: str | None) -> Spec:
        """The same spec writing to another store (the hash does not change)."""
        if store is None or store == self.store:
            return self
        return parse_spec(self.text, [f"store={json.dumps(str(store))}"])


@functools.lru_cache(maxsize=16)
def _unpickle(text: str) -> Spec:
    # Every task of a sweep carries the same spec, and parsing one costs
    # milliseconds: a worker parses each text once (a spec is immutable).
    return parse_spec(text)


def read_spec(path, overrides=()) -> Spec:
    """Read and validate the spec file at ``path``.

    Parameters
    ----------
    path : str or Path
    overrides : sequence of str
        ``KEY=VALUE`` items (``model.tau=0.3``) applied before validation.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(
            "SPEC", "file not found", str(path), "give the path of a spec YAML"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("SPEC", f"cannot be read ({exc})", str(path)) from None
    return parse_spec(text, overrides, source=str(path))


def parse_spec(text: str, overrides=(), source: str = "spec") -> Spec:
    """Validate a spec given as YAML text; see `read_spec`."""
    raw = load_yaml(text, source)
    if not isinstance(raw, dict):
        raise InputError(
            source,
            "must be a YAML mapping of the spec sections",
            raw,
            "start from one of the files in sweeps/",
        )
    for item in overrides:
        _apply_override(raw, item)
    return _validate(raw)


# --- overrides ---------------------------------------------------------------


def _apply_override(raw: dict, item: str):
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InputError(
            "--set", "must look like KEY=VALUE", item, "e.g. --set model.tau=0.3"
        )
    parts = key.split(".")
    if any(not part for part in parts):
        raise InputError("--set", "KEY must be a dotted path", key)

    target = raw
    for depth, part in enumerate(parts[:-1]):
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise InputError(
                f"--set {key}", f"{where} is a value, not a section", child
            )
        target = child
    if len(parts) == 3 and parts[0] == "grid":
        _drop_other_form(target, parts[-1])
    target[parts[-1]] = load_yaml(value, f"--set {key}")


_RANGE_KEYS = ("start", "stop", "num", "log")


def _drop_other_form(axis: dict, key: str):
    """An override of an axis's form replaces that axis: setting ``values``
    drops start/stop/num/log, setting one of those drops ``values``."""
    if key == "values":
        for other in _RANGE_KEYS:
            axis.pop(other, None)
    elif key in _RANGE_KEYS:
        axis.pop("values", None)


# --- validation --------------------------------------------------------------


def _validate(raw: dict) -> Spec:
    _known_keys(raw, SECTIONS, "")
    for key in ("name", "method", "model", "time", "grid"):
        if key not in raw:
            raise InputError(key, "is required", hint=_SECTION_HINTS[key])

    name = raw["name"]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError("name", "must be 1-64 letters, digits, '-' or '_'", name)
    method = raw["method"]
    if method not in METHODS:
        raise InputError("method", f"must be one of {', '.join(METHODS)}", method)

    model = _section(raw, "model", MODEL_KEYS, required=True)
    init = _section(raw, "init", INIT_KEYS)
    time = _section(raw, "time", TIME_KEYS, required=True)
    sim = _section(raw, "sim", SIM_KEYS, required=method != "ode")
    classify = _section(raw, "classify", CLASSIFY_KEYS)

    if "d" not in model:
        raise InputError(
            "model.d", "is required", hint=f"the number of features, 1 to {MAX_D}"
        )
    d = _integer(model["d"], "model.d", 1, MAX_D)
    axes_raw = _grid_section(raw.get("grid"), method)

    t_max = _number(_need(time, "time", "t_max"), "time.t_max")
    if not t_max > 0:
        raise InputError("time.t_max", "must be > 0", t_max)
    samples = _integer(_need(time, "time", "samples"), "time.samples", 2)
    if method != "ode":
        _need(sim, "sim", "seeds")
    replicas = _integer(sim.get("seeds", 1), "sim.seeds", 1, 100_000)
    root_seed = _integer(sim.get("seed", 0), "sim.seed", 0, 2**63 - 1)
    if method == "ode":
        replicas, root_seed = 1, 0  # deterministic: one run, no random stream
    recovery = _number(classify.get("recovery", 0.5), "classify.recovery")
    if not 0 < recovery <= 1:
        raise InputError("classify.recovery", "must be in (0, 1]", recovery)

    _check_size(axes_raw, d, samples, replicas)
    axes = tuple(_axis(name, spec, method) for name, spec in axes_raw.items())
    given = _given_values(model, init, sim, d, axes, method)
    _check_model_rules(given, axes, model, method, d)
    _check_noise_forms(model, axes_raw)
    if method == "sim":
        _check_sim_memory(given, axes, d)
    swept = {field for axis in axes for field in AXIS_FIELDS[axis.name]}
    fixed = {k: v for k, v in given.items() if k not in swept}

    store = raw.get("store", f"results/{name}.zarr")
    if not isinstance(store, str) or not store.strip():
        raise InputError("store", "must be a path", store)
    figure = raw.get("figure", figure_for(store))
    if not isinstance(figure, str) or not figure.strip():
        raise InputError("figure", "must be a path to a .png file", figure)

    canonical = {
        "name": name,
        "method": method,
        "model": {
            "d": d,
            **{k: _plain(model[k]) for k in MODEL_KEYS[1:] if k in model},
        },
        "init": {k: _plain(init[k]) for k in INIT_KEYS if k in init},
        "time": {"t_max": t_max, "samples": samples},
    }
    if sim or method != "ode":
        canonical["sim"] = {k: int(sim[k]) for k in SIM_KEYS if k in sim}
        if method != "ode":
            canonical["sim"]["seed"] = root_seed
    canonical["classify"] = {"recovery": recovery}
    canonical["grid"] = {
        name: _axis_text(axis, axes_raw[name]) for name, axis in zip(axes_raw, axes)
    }
    canonical["store"] = store
    if "figure" in raw:  # else it follows the store, also under --store
        canonical["figure"] = figure
    if not canonical["init"]:
        del canonical["init"]

    identity = {k: v for k, v in canonical.items() if k not in ("store", "figure")}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return Spec(
        name=name,
        method=method,
        d=d,
        fixed=MappingProxyType(fixed),
        axes=axes,
        t_max=t_max,
        samples=samples,
        replicas=replicas,
        root_seed=root_seed,
        recovery=recovery,
        store=store,
        figure=figure,
        text=dump_yaml(canonical),
        identity=dump_yaml(identity),
        hash=digest,
    )


_SECTION_HINTS = {
    "name": "e.g. name: noise-vs-lr",
    "method": f"one of {', '.join(METHODS)}",
    "model": "the model parameters d, lambda, lambda_gen, noise, tau, tau_gen",
    "time": "e.g. time: {t_max: 3000, samples: 600}",
    "grid": "at least one axis, e.g. grid: {noise: {start: 0.1, stop: 2.5, num: 25}}",
    "sim": "sim and reduced need sim: {n: 2000, seeds: 4, seed: 0}",
}


def _known_keys(mapping: dict, allowed, prefix: str):
    for key in mapping:
        if key not in allowed:
            field = f"{prefix}{key}"
            raise InputError(
                field, "is not a known key", hint=f"allowed: {', '.join(allowed)}"
            )


def _section(raw: dict, key: str, allowed, required: bool = False) -> dict:
    value = raw.get(key)
    if value is None:
        if required:
            raise InputError(key, "is required", hint=_SECTION_HINTS.get(key, ""))
        if key in raw:
            raise InputError(key, "must be a mapping, not empty")
        return {}
    if not isinstance(value, dict):
        raise InputError(key, "must be a mapping", value)
    _known_keys(value, allowed, f"{key}.")
    return value


def _need(section: dict, name: str, key: str):
    if key not in section:
        raise InputError(f"{name}.{key}", "is required")
    return section[key]


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(field, "must be a number", value)
    if not math.isfinite(value):
        raise InputError(field, "must be a finite number", value)
    return float(value)


def _integer(value, field: str, low: int, high: int | None = None) -> int:
    allowed = (
        f"an integer >= {low}" if high is None else (f"an integer from {low} to {high}")
    )
    ok_type = isinstance(value, int) or (
        isinstance(value, float) and value.is_integer()
    )
    if isinstance(value, bool) or not ok_type:
        raise InputError(field, f"must be {allowed}", value)
    value = int(value)
    if value < low or (high is not None and value > high):
        raise InputError(field, f"must be {allowed}", value)
    return value


def _plain(value):
    """A validated number or list of numbers as floats, for the canonical text."""
    if isinstance(value, list):
        return [float(v) for v in value]
    return float(value)


def figure_for(store: str) -> str:
    """The default figure path of a store: beside it, ``.zarr`` -> ``.png``."""
    if store.rstrip("/").endswith(".zarr"):
        return store.rstrip("/")[: -len(".zarr")] + ".png"
    return store.rstrip("/") + ".png"


# --- grid ---------------------------------------------------------------------


def _grid_section(grid, method: str) -> dict:
    if not isinstance(grid, dict) or not grid:
        raise InputError(
            "grid",
            "must map at least one parameter to its values",
            grid,
            _SECTION_HINTS["grid"],
        )
    for name in grid:
        if name not in AXIS_FIELDS:
            raise InputError(
                f"grid.{name}",
                "is not a parameter that can be a grid axis",
                hint=f"use one of {', '.join(AXIS_FIELDS)}",
            )
    _check_noise_forms({}, grid)
    if "n" in grid and method == "ode":
        raise InputError(
            "grid.n",
            "is not a parameter of the ode method",
            hint="sweep n with method sim or reduced",
        )
    return grid


def _check_noise_forms(model: dict, grid: dict):
    """``noise`` sets both noises, so it excludes ``noise_true`` and
    ``noise_gen`` anywhere in the spec: in model, on the grid, or across them."""
    both = [
        f"{where}.noise"
        for where, sec in (("model", model), ("grid", grid))
        if "noise" in sec
    ]
    split = [
        f"{where}.{key}"
        for where, sec in (("model", model), ("grid", grid))
        for key in ("noise_true", "noise_gen")
        if key in sec
    ]
    if both and split:
        raise InputError(
            split[0],
            f"cannot be given with {both[0]}, which sets both noise_true and noise_gen",
            hint=f"remove {both[0]}, or give noise alone",
        )


def _check_sim_memory(given: dict, axes: tuple, d: int):
    n_axis = [axis for axis in axes if axis.name == "n"]
    field, n = ("grid.n", max(n_axis[0].values)) if n_axis else ("sim.n", given["n"])
    need = sim_run_bytes(d, n)
    if need > MAX_SIM_RUN_BYTES:
        largest = MAX_SIM_RUN_BYTES // (3 * (2 * d + 1) * 8)
        raise InputError(
            field,
            f"needs {need / 2**30:,.1f} GiB per simulation run (3 (2d + 1) n "
            f"floats), more than a worker's {MAX_SIM_RUN_BYTES / 2**30:.0f} GiB",
            n,
            f"use n <= {largest:,} for d = {d}, or method reduced",
        )


def _axis_length(name: str, raw) -> int:
    field = f"grid.{name}"
    if not isinstance(raw, dict):
        raise InputError(
            field, "must be {start, stop, num[, log]} or {values: [...]}", raw
        )
    if "values" in raw:
        extra = sorted(set(raw) - {"values"})
        if extra:
            raise InputError(
                f"{field}.{extra[0]}",
                "cannot be combined with values",
                hint="give either values: [...] or start/stop/num",
            )
        values = raw["values"]
        if not isinstance(values, list):
            raise InputError(f"{field}.values", "must be a list of numbers", values)
        if not values:
            raise InputError(
                f"{field}.values",
                "must not be empty",
                values,
                "give at least one value",
            )
        return len(values)
    _known_keys(raw, ("start", "stop", "num", "log"), f"{field}.")
    for key in ("start", "stop", "num"):
        if key not in raw:
            raise InputError(
                f"{field}.{key}",
                "is required",
                hint="give start, stop and num, or values: [...]",
            )
    num = raw["num"]
    if isinstance(num, (int, float)) and not isinstance(num, bool) and num < 1:
        raise InputError(f"{field}.num", "must be >= 1 (an axis cannot be empty)", num)
    return _integer(num, f"{field}.num", 1)


def _check_size(axes_raw: dict, d: int, samples: int, replicas: int):
    points = math.prod(_axis_length(n, r) for n, r in axes_raw.items())
    runs = points * replicas
    if runs > MAX_RUNS:
        raise InputError(
            "grid",
            f"has {runs:,} runs (points x seeds); at most {MAX_RUNS:,} fit in memory",
            hint="use fewer values or split the sweep into several",
        )
    run_bytes = samples * (2 * d + d * d) * 8
    smallest_block = max(replicas, math.ceil(runs / MAX_BLOCKS))
    if smallest_block * run_bytes > MAX_BLOCK_BYTES:
        mib = smallest_block * run_bytes / 2**20
        raise InputError(
            "time.samples",
            f"makes a block of {mib:,.0f} MiB, more than a worker's "
            f"{MAX_BLOCK_BYTES / 2**20:.0f} MiB",
            samples,
            "store fewer samples, or use fewer seeds or grid points",
        )


def _axis(name: str, raw: dict, method: str) -> Axis:
    field = f"grid.{name}"
    if "values" in raw:
        values = [
            _number(v, f"{field}.values[{i}]") for i, v in enumerate(raw["values"])
        ]
        log = False
    else:
        start = _number(raw["start"], f"{field}.start")
        stop = _number(raw["stop"], f"{field}.stop")
        num = int(raw["num"])
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise InputError(f"{field}.log", "must be true or false", log)
        if log and not (start > 0 and stop > 0):
            bad = "start" if start <= 0 else "stop"
            raise InputError(f"{field}.{bad}", "must be > 0 with log: true", raw[bad])
        space = np.geomspace if log else np.linspace
        values = [float(v) for v in space(start, stop, num)]

    if name == "n":
        if "values" in raw and any(not v.is_integer() for v in values):
            raise InputError(f"{field}.values", "must be integers", raw["values"])
        values = [int(round(v)) for v in values]
    if len(set(values)) != len(values):
        raise InputError(
            field,
            "must have distinct values",
            values,
            "use fewer points or a wider range",
        )
    return Axis(name=name, values=tuple(values), log=log)


def _axis_text(axis: Axis, raw: dict) -> dict:
    if "values" in raw:
        return {"values": list(axis.values)}
    return {
        "start": float(raw["start"]),
        "stop": float(raw["stop"]),
        "num": int(raw["num"]),
        "log": axis.log,
    }


# --- model values and rules ---------------------------------------------------


def _given_values(model, init, sim, d, axes, method) -> dict:
    """`Parameters` field -> value for every field given outside the grid.

    A value a grid axis overrides is still read and checked (it is in the
    spec, and would count as soon as the axis goes); one that no axis sets
    must be given.
    """
    swept = {field for axis in axes for field in AXIS_FIELDS[axis.name]}
    given = {}

    for key, field in (("lambda", "lam"), ("lambda_gen", "lam_gen")):
        if key in model:
            given[field] = _feature_values(model[key], f"model.{key}", d)
        elif field not in swept:
            raise _missing("model", key)

    for field in ("noise_true", "noise_gen"):
        key = field if field in model else "noise"
        if key in model:
            given[field] = _number(model[key], f"model.{key}")
        elif field not in swept:
            raise InputError(
                f"model.{field}",
                "is required",
                hint="give model.noise (both noises) or noise_true and noise_gen",
            )

    for key, section, name in (
        ("tau", model, "model"),
        ("tau_gen", model, "model"),
        ("q0", init, "init"),
        ("P0", init, "init"),
        ("n", sim, "sim"),
    ):
        if key in section:
            given[key] = (
                _integer(section[key], "sim.n", 0)
                if key == "n"
                else _number(section[key], f"{name}.{key}")
            )
        elif key == "n" and method == "ode":
            given[key] = 0  # the ODE is the n -> infinity limit
        elif key not in swept:
            raise _missing(name, key)
    return given


def _missing(section: str, key: str) -> InputError:
    return InputError(
        f"{section}.{key}",
        "is required",
        hint=f"give it a value in {section}, or make it a grid axis",
    )


def _feature_values(value, field: str, d: int) -> tuple:
    if isinstance(value, list):
        if len(value) != d:
            raise InputError(
                field, f"must be a number or a list of d = {d} numbers", value
            )
        return tuple(_number(v, f"{field}[{i}]") for i, v in enumerate(value))
    return (_number(value, field),) * d


def _check_model_rules(given, axes, model, method, d):
    """Run `Parameters.validated` on every value given and every axis value,
    naming spec fields."""
    simulation = method != "ode"
    axis_of = {field: axis.name for axis in axes for field in AXIS_FIELDS[axis.name]}
    first = {field: axis.values[0] for axis in axes for field in AXIS_FIELDS[axis.name]}

    def block(columns: dict, size: int, swept=()) -> Parameters:
        columns = dict(columns)
        for field in ("lam", "lam_gen"):
            value = np.asarray(columns[field], dtype=np.float64)
            if field in swept:
                value = value[:, None]  # one axis value for every feature
            columns[field] = np.broadcast_to(value, (size, d))
        return Parameters(**columns)

    def path_of(field: str, written: bool) -> str:
        if written or field not in axis_of:
            return _spec_path(field, model)
        return f"grid.{axis_of[field]}"

    # The values as written, where missing ones the axes' first values.
    _validated(
        block({**first, **given}, 1), simulation, lambda f: path_of(f, f in given)
    )
    # Each axis in turn, every other axis at its first value.
    for axis in axes:
        values = np.asarray(axis.values)
        swept = AXIS_FIELDS[axis.name]
        columns = {**given, **first, **{field: values for field in swept}}
        _validated(
            block(columns, len(values), swept),
            simulation,
            lambda f: path_of(f, False),
        )


def _validated(params: Parameters, simulation: bool, path_of):
    try:
        params.validated(simulation=simulation)
    except ParameterError as exc:
        raise InputError(
            path_of(exc.field),
            exc.rule,
            exc.value,
            exc.hint or _HINTS.get(exc.field, ""),
        ) from None


_HINTS = {
    "q0": "the initial overlap q0 needs d q0^2 < 1 (MODEL.md section 3)",
    "P0": "the initial overlap P0 needs |P0| < 1",
    "n": "use a larger ambient dimension",
}
for _field in ("noise_true", "noise_gen", "tau", "tau_gen", "lam", "lam_gen"):
    _HINTS[_field] = "use a value >= 0"


def _spec_path(field: str, model: dict) -> str:
    if field in ("noise_true", "noise_gen"):
        return f"model.{field}" if field in model else "model.noise"
    names = {"lam": "model.lambda", "lam_gen": "model.lambda_gen"}
    if field in names:
        return names[field]
    return f"{_HOME.get(field, 'model')}.{field}"
