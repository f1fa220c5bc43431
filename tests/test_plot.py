"""The phase diagram: each cell's colour is its label, shares of seeds stack,
and the boundaries lie on the analytic zero levels of MODEL.md section 6."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest
from sweep_helpers import TINY, tiny_spec

from phasegan import plot, store
from phasegan.classify import LABELS
from phasegan.grid import Grid, parameters_from
from phasegan.model.stability import failure_margin, trace_on_line
from phasegan.spec import AXIS_FIELDS, parse_spec


def labelled_store(spec, label):
    """A store of ``spec`` whose labels are ``label`` (no trajectories)."""
    grid = Grid.for_spec(spec)
    store.create(spec, spec.store, grid.chunks)
    for block in range(grid.size):
        region = grid.slices(block)
        store.write_region(spec.store, region, {"label": label[region]})
    return store.load(spec.store)


def cells(ax):
    """(x centre, y bottom, y top, colour) of every rectangle drawn."""
    collection = ax.collections[0]
    out = []
    for path, face in zip(collection.get_paths(), collection.get_facecolors()):
        (x0, y0), (x1, y1) = path.vertices.min(axis=0), path.vertices.max(axis=0)
        out.append(((x0 + x1) / 2, y0, y1, mcolors.to_hex(face)))
    return out


def nearest(values, x, log=False):
    values = np.asarray(values, dtype=float)
    distance = np.abs(np.log(values) - np.log(x)) if log else np.abs(values - x)
    return int(np.argmin(distance))


@pytest.mark.parametrize("x, y", [("noise", "tau_gen"), ("tau_gen", "noise")])
def test_each_cell_has_the_colour_of_its_label(tmp_path, x, y):
    spec = tiny_spec(tmp_path / "s.zarr")
    label = (np.add.outer(np.arange(5), 2 * np.arange(3)) % 3).astype(np.int8)
    ds = labelled_store(spec, label)
    fig = plot.phase_diagram(ds, x=x, y=y)
    ax = fig.axes[0]

    drawn = cells(ax)
    assert len(drawn) == label.size
    for xc, y0, y1, colour in drawn:
        yc = np.sqrt(y0 * y1) if plot._is_log(ds, y) else (y0 + y1) / 2
        i = nearest(ds[x].values, xc, plot._is_log(ds, x))
        j = nearest(ds[y].values, yc, plot._is_log(ds, y))
        index = {x: i, y: j}
        expected = LABELS[label[index["noise"], index["tau_gen"]]]
        assert colour == plot.COLOURS[expected]


def test_shares_of_seeds_stack_in_a_cell(tmp_path):
    spec = parse_spec(
        TINY.replace("method: ode", "method: reduced") + "sim: {n: 100, seeds: 4}\n",
        [
            f"store={tmp_path / 's.zarr'}",
            "grid.noise.num=1",
            "grid.tau_gen.values=[0.5]",
        ],
    )
    label = np.array([[[0, 0, 1, 2]]], dtype=np.int8)
    ds = labelled_store(spec, label)
    drawn = cells(plot.phase_diagram(ds).axes[0])
    heights = {colour: y1 - y0 for _, y0, y1, colour in drawn}  # one value: linear
    total = sum(heights.values())
    assert heights[plot.COLOURS["converged"]] / total == pytest.approx(0.5)
    assert heights[plot.COLOURS["oscillating"]] / total == pytest.approx(0.25)
    assert heights[plot.COLOURS["failed"]] / total == pytest.approx(0.25)


def test_boundaries_lie_on_the_analytic_zero_levels(tmp_path):
    spec = tiny_spec(tmp_path / "s.zarr", "grid.noise.stop=2.5")
    ds = labelled_store(spec, np.zeros(spec.shape, dtype=np.int8))
    ax = plot.phase_diagram(ds, x="noise", y="tau_gen").axes[0]

    lines = [c for c in ax.collections[1:] if c.get_paths()]
    assert len(lines) == 2, "one contour for each boundary"
    for contour, level in zip(lines, (trace_on_line, failure_margin)):
        xy = np.concatenate([p.vertices for p in contour.get_paths()])
        columns = dict(spec.fixed)
        for name, values in (("noise", xy[:, 0]), ("tau_gen", xy[:, 1])):
            for field in AXIS_FIELDS[name]:
                columns[field] = values
        value = level(parameters_from(spec, columns, len(xy)))
        # Contouring interpolates linearly between the 400 x 400 samples of a
        # smooth function whose values span O(1): errors are O(1e-4).
        assert np.abs(value).max() < 1e-3


@pytest.mark.parametrize("method", ["ode", "sim"])
def test_trajectories_have_a_legend_and_an_honest_title(tmp_path, method):
    # Regression: no legend (which line is P_00, which P_01?), and "simulation
    # dots" in the title of an ODE-only figure.
    extra = ["method=sim", "sim={n: 100, seeds: 2}"] if method == "sim" else []
    spec = tiny_spec(tmp_path / "s.zarr", "model.d=2", *extra)
    shape = spec.shape + ((spec.replicas,) if spec.simulation else ())
    ds = labelled_store(spec, np.zeros(shape, dtype=np.int8))

    fig = plot.trajectories([ds], points=[{"noise": 0.2, "tau_gen": 0.05}])
    first = fig.axes[:3]  # the first row: q, P, r
    names = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in first]
    suffix = " (sim)" if method == "sim" else ""
    assert names[1] == [f"P_{i}{j}{suffix}" for i in range(2) for j in range(2)]
    assert names[0] == [f"q_{i}{suffix}" for i in range(2)]
    title = fig._suptitle.get_text()
    assert ("dot" in title) == (method == "sim"), title
