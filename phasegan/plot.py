"""Pictures of a store: the phase diagram, and trajectories of chosen points.

`phase_diagram` colours each grid cell by its regime over two grid axes (the
other axes become a row of panels); for simulations each cell is split into the
fraction of seeds in each regime. For ``d = 1`` the analytic boundaries of
MODEL.md section 6 are drawn on top. `trajectories` draws ``q``, ``P``, ``r``
over time; an ODE store gives lines, a simulation store dots.
"""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")  # files only; no display needed on a cluster node

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import PatchCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from phasegan.classify import LABELS  # noqa: E402
from phasegan.errors import InputError  # noqa: E402
from phasegan.grid import parameters_from  # noqa: E402
from phasegan.model.stability import failure_margin, trace_on_line  # noqa: E402
from phasegan.spec import AXIS_FIELDS, parse_spec  # noqa: E402

COLOURS = {
    "converged": "#2ca02c",
    "oscillating": "#ff7f0e",
    "failed": "#7f7f7f",
    "partial": "#9467bd",
    "error": "#d62728",
}
NOT_COMPUTED_COLOUR = "#f4f4f4"
MAX_PANELS = 16


def grid_axes(ds) -> list:
    """The grid dimensions of a store, in spec order."""
    return [dim for dim in ds["label"].dims if dim != "seed"]


def phase_diagram(ds, *, x: str | None = None, y: str | None = None, out=None):
    """Draw the regimes of ``ds`` over axes ``x`` and ``y``; return the figure.

    Parameters
    ----------
    ds : xarray.Dataset
        A store, from `phasegan.load`.
    x, y : str, optional
        Grid axes for the horizontal and vertical direction (default: the
        first two). With one grid axis the diagram is a strip.
    out : path, optional
        Where to save the PNG.
    """
    axes = grid_axes(ds)
    x = x or axes[0]
    y = y or (next((a for a in axes if a != x), None))
    for option, name in (("--x", x), ("--y", y)):
        if name is not None and name not in axes:
            raise InputError(option, f"must be a grid axis: {', '.join(axes)}", name)
    if x == y:
        raise InputError("--y", "must differ from --x", y)
    others = [a for a in axes if a not in (x, y)]
    panels = list(itertools.product(*(range(ds.sizes[a]) for a in others)))
    if len(panels) > MAX_PANELS:
        raise InputError(
            "--x/--y",
            f"leave {len(panels)} panels over {', '.join(others)}; "
            f"at most {MAX_PANELS}",
            hint="plot the two axes with most values",
        )

    fractions = _fractions(ds)  # (..grid.., 1 + len(LABELS)); slot 0 = not computed
    spec = parse_spec(ds.attrs["spec"])
    fig, axs = plt.subplots(
        1,
        len(panels),
        figsize=(4.6 * len(panels) + 2.2, 4.2 if y else 2.6),
        squeeze=False,
        constrained_layout=True,
    )
    for ax, panel in zip(axs[0], panels):
        where = dict(zip(others, panel))
        index = tuple(where.get(a, slice(None)) for a in axes)
        cells = fractions[index]
        if axes.index(x) > (axes.index(y) if y else -1):
            cells = np.swapaxes(cells, 0, 1) if y else cells
        _draw_cells(ax, ds, x, y, cells)
        if spec.d == 1:
            _draw_boundaries(
                ax, ds, spec, x, y, {a: ds[a].values[i] for a, i in where.items()}
            )
        ax.set_title(
            ", ".join(f"{a} = {ds[a].values[i]:.3g}" for a, i in where.items())
        )

    _legend(fig, axs[0][-1], fractions, spec.d == 1)
    fig.suptitle(_title(ds, spec))
    if out is not None:
        fig.savefig(out, dpi=120)
    return fig


def _fractions(ds) -> np.ndarray:
    """Share of runs per label (slot 0: not computed), over the grid cells."""
    label = np.asarray(ds["label"].values)
    if "seed" not in ds["label"].dims:
        label = label[..., None]
    codes = np.arange(-1, len(LABELS))
    counts = (label[..., None] == codes).sum(axis=-2)
    return counts / label.shape[-1]


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted coordinate values (midpoints, in log if log)."""
    v = np.log(values) if log else np.asarray(values, dtype=float)
    if len(v) == 1:
        half = abs(v[0]) * 0.1 or 0.5
        edges = np.array([v[0] - half, v[0] + half])
    else:
        mid = (v[1:] + v[:-1]) / 2
        edges = np.concatenate(
            [[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]]
        )
    return np.exp(edges) if log else edges


def _is_log(ds, name) -> bool:
    """Log scale for log-spaced axes, and for listed values over 1.5 decades."""
    spacing = ds[name].attrs.get("spacing")
    values = np.asarray(ds[name].values, dtype=float)
    if spacing == "values" and values.min() > 0:
        return values.max() / values.min() >= 30
    return spacing == "log"


def _draw_cells(ax, ds, x, y, cells):
    """Stacked rectangles per cell: one colour per regime, height = share."""
    xs = np.asarray(ds[x].values, dtype=float)
    x_order = np.argsort(xs)
    x_edges = _edges(xs[x_order], _is_log(ds, x))
    if y is None:
        ys, y_order, y_edges = np.array([0.0]), np.array([0]), np.array([0.0, 1.0])
        cells = cells[:, None, :]
    else:
        ys = np.asarray(ds[y].values, dtype=float)
        y_order = np.argsort(ys)
        y_edges = _edges(ys[y_order], _is_log(ds, y))

    colours = [NOT_COMPUTED_COLOUR] + [COLOURS[name] for name in LABELS]
    log_y = y is not None and _is_log(ds, y)
    patches, faces = [], []
    for i, xi in enumerate(x_order):
        for j, yj in enumerate(y_order):
            share = cells[xi, yj]
            low, high = y_edges[j], y_edges[j + 1]
            bottom = 0.0
            for slot in np.nonzero(share)[0]:
                top = bottom + share[slot]
                y0, y1 = (_along(low, high, f, log_y) for f in (bottom, top))
                patches.append(
                    Rectangle((x_edges[i], y0), x_edges[i + 1] - x_edges[i], y1 - y0)
                )
                faces.append(colours[slot])
                bottom = top
    ax.add_collection(PatchCollection(patches, facecolors=faces, edgecolors="none"))

    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], y_edges[-1])
    if _is_log(ds, x):
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(_axis_label(ds, x))
    if y is None:
        ax.set_yticks([])
        if "seed" in ds.dims:
            ax.set_ylabel("share of seeds")
    else:
        ax.set_ylabel(_axis_label(ds, y))


def _along(low, high, fraction, log):
    if log:
        return low * (high / low) ** fraction
    return low + (high - low) * fraction


def _axis_label(ds, name) -> str:
    long_name = ds[name].attrs.get("long_name")
    return f"{name}: {long_name}" if long_name else name


def _draw_boundaries(ax, ds, spec, x, y, fixed_axes: dict):
    """Zero levels of trace J and of tau lambda - a (MODEL.md section 6)."""
    xs = _fine(ds, x)
    ys = _fine(ds, y) if y is not None else np.array([0.0])
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    columns = dict(spec.fixed)
    for name, values in ((x, X.ravel()), (y, Y.ravel()), *fixed_axes.items()):
        if name is None:
            continue
        for field in AXIS_FIELDS[name]:
            columns[field] = values
    params = parameters_from(spec, columns, X.size)
    with np.errstate(all="ignore"):
        levels = {
            "oscillation": trace_on_line(params).reshape(X.shape),
            "failure": failure_margin(params).reshape(X.shape),
        }
    for kind, value in levels.items():
        style = _BOUNDARY_STYLE[kind]
        if y is None:
            for crossing in _crossings(xs, value[:, 0]):
                ax.axvline(crossing, **style)
        elif np.nanmin(value) < 0 < np.nanmax(value):
            ax.contour(
                X,
                Y,
                value,
                levels=[0.0],
                colors=style["color"],
                linestyles=style["linestyle"],
                linewidths=style["linewidth"],
            )


_BOUNDARY_STYLE = {
    "oscillation": {"color": "black", "linestyle": "--", "linewidth": 1.8},
    "failure": {"color": "black", "linestyle": ":", "linewidth": 2.2},
}


def _fine(ds, name, num: int = 400) -> np.ndarray:
    values = np.asarray(ds[name].values, dtype=float)
    edges = _edges(np.sort(values), _is_log(ds, name))
    space = np.geomspace if _is_log(ds, name) else np.linspace
    return space(edges[0], edges[-1], num)


def _crossings(xs, values) -> list:
    sign = np.sign(values)
    where = np.nonzero(sign[1:] * sign[:-1] < 0)[0]
    return [
        xs[i] - values[i] * (xs[i + 1] - xs[i]) / (values[i + 1] - values[i])
        for i in where
    ]


def _legend(fig, ax, fractions, boundaries: bool):
    present = fractions.reshape(-1, fractions.shape[-1]).sum(axis=0) > 0
    handles = [
        Patch(facecolor=COLOURS[name], label=name)
        for slot, name in enumerate(LABELS, start=1)
        if present[slot]
    ]
    if present[0]:
        handles.append(
            Patch(
                facecolor=NOT_COMPUTED_COLOUR, edgecolor="#bbbbbb", label="not computed"
            )
        )
    if boundaries:
        handles += [
            Line2D(
                [],
                [],
                label="trace J = 0 (oscillation)",
                **_BOUNDARY_STYLE["oscillation"],
            ),
            Line2D(
                [], [], label="a = tau lambda (failure)", **_BOUNDARY_STYLE["failure"]
            ),
        ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        frameon=False,
        title="regime",
    )


def _title(ds, spec) -> str:
    swept = {f for a in spec.axes for f in AXIS_FIELDS[a.name]}
    shown = []
    for field, symbol in (
        ("tau", "tau"),
        ("tau_gen", "tau_gen"),
        ("lam", "lambda"),
        ("lam_gen", "lambda_gen"),
        ("noise_true", "eta_T"),
        ("noise_gen", "eta_G"),
    ):
        if field not in swept and field in spec.fixed:
            value = spec.fixed[field]
            value = (
                value[0] if isinstance(value, tuple) and len(set(value)) == 1 else value
            )
            shown.append(f"{symbol} = {_fmt(value)}")
    if spec.simulation and "n" not in swept:
        shown.append(f"n = {spec.fixed['n']}")
    extra = f", {spec.replicas} seeds" if spec.simulation else ""
    return f"{spec.name}: {spec.method}, d = {spec.d}{extra}\n" + ", ".join(shown)


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:.3g}" for v in value) + ")"
    return f"{value:.3g}"


# --- trajectories ---------------------------------------------------------------


def trajectories(datasets, *, points=None, out=None, max_points: int = 4):
    """Draw ``q``, ``P``, ``r`` over time at chosen grid points.

    Parameters
    ----------
    datasets : list of xarray.Dataset
        Stores to overlay: an ODE store is drawn as lines, a simulation store
        (``sim``/``reduced``) as dots, one per seed and sample.
    points : list of dict, optional
        Each ``{axis: value}``; the nearest grid value is used, and axes a
        store does not have are ignored for it. Default: one point of each
        regime found in the first store.
    out : path, optional
        Where to save the PNG.
    """
    _check_points(datasets, points or [])
    points = points or _one_point_per_regime(datasets[0], max_points)
    names = ("q", "P", "r")
    fig, axs = plt.subplots(
        len(points),
        3,
        figsize=(12, 2.8 * len(points) + 0.6),
        squeeze=False,
        constrained_layout=True,
        sharex=True,
    )
    for row, point in enumerate(points):
        titles = []
        for ds in sorted(datasets, key=lambda d: "seed" in d.dims, reverse=True):
            cell, label = _select(ds, point)
            titles.append(f"{ds.attrs.get('method')}: {label}")
            for col, name in enumerate(names):
                _draw_series(axs[row][col], cell, name, "seed" in ds.dims, row == 0)
        where = ", ".join(f"{a} = {v:.3g}" for a, v in point.items())
        axs[row][0].set_title(f"{where}  ({'; '.join(titles)})", loc="left", fontsize=9)
        for col, name in enumerate(names):
            axs[row][col].set_ylabel(name)
    for col in range(3):
        axs[-1][col].set_xlabel("time t")
        axs[0][col].legend(loc="best", fontsize=7, ncol=2)
    fig.suptitle(_trajectory_title(datasets))
    if out is not None:
        fig.savefig(out, dpi=120)
    return fig


def _check_points(datasets, points: list):
    """Every axis a point names must be a grid axis of at least one store."""
    known = [a for ds in datasets for a in grid_axes(ds)]
    for point in points:
        for axis in point:
            if axis not in known:
                raise InputError(
                    "--point",
                    f"{axis!r} is not a grid axis of the store",
                    ",".join(f"{a}={v:g}" for a, v in point.items()),
                    f"the store's axes are {', '.join(dict.fromkeys(known))}",
                )


def _one_point_per_regime(ds, max_points: int) -> list:
    label = np.asarray(ds["label"].values)
    if "seed" in ds["label"].dims:
        label = label[..., 0]
    axes = grid_axes(ds)
    points = []
    for code in range(len(LABELS)):
        found = np.argwhere(label == code)
        if len(found):
            middle = found[len(found) // 2]
            points.append({a: float(ds[a].values[i]) for a, i in zip(axes, middle)})
    if not points:
        raise InputError("STORE", "has no computed point to draw yet")
    return points[:max_points]


def _select(ds, point: dict):
    axes = grid_axes(ds)
    chosen = {a: v for a, v in point.items() if a in axes}
    cell = ds.sel(chosen, method="nearest") if chosen else ds
    rest = {a: 0 for a in axes if a not in chosen}
    cell = cell.isel(rest).load()
    label = np.atleast_1d(cell["label"].values)
    names = [LABELS[c] if c >= 0 else "not computed" for c in label]
    common = max(set(names), key=names.count)
    share = f" ({names.count(common)}/{len(names)} seeds)" if "seed" in ds.dims else ""
    return cell, common + share


def _trajectory_title(datasets) -> str:
    kinds = {"seed" in ds.dims for ds in datasets}
    if kinds == {True, False}:
        return "order parameters: ODE lines, simulation dots (one per seed)"
    if kinds == {True}:
        return "order parameters: simulation, one dot per seed and sample"
    return "order parameters: ODE"


def _component_names(name: str, data, tail: list) -> list:
    """``q_0``, ``P_01``, ``r_1``...: one per flattened component, in order."""
    indices = np.ndindex(*(data.sizes[d] for d in tail))
    return [f"{name}_{''.join(map(str, index))}" for index in indices]


def _draw_series(ax, cell, name: str, dots: bool, legend: bool = False):
    data = cell[name]
    times = cell["time"].values
    tail = [d for d in data.dims if d not in ("time", "seed")]
    values = data.transpose(*(["seed"] if dots else []), "time", *tail).values
    values = values.reshape(values.shape[: 2 if dots else 1] + (-1,))
    labels = _component_names(name, data, tail)
    step = max(1, len(times) // 80)
    for component in range(values.shape[-1]):
        colour = f"C{component}"
        # One legend entry per component and kind; "_" hides the others.
        label = labels[component] if legend else "_"
        if dots:
            for seed in range(values.shape[0]):
                ax.plot(
                    times[::step],
                    values[seed, ::step, component],
                    ".",
                    color=colour,
                    markersize=3,
                    alpha=0.45,
                    label=f"{label} (sim)" if seed == 0 and legend else "_",
                )
        else:  # the ODE on top of any dots
            ax.plot(
                times,
                values[:, component],
                "-",
                color=colour,
                linewidth=1.4,
                zorder=3,
                label=label,
            )
