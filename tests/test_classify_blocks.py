"""The classifier takes a large block a slice of points at a time; the slices
must not change a label or a diagnostic.

Tolerance: the same arithmetic on the same numbers, only the batch sizes of
the vectorized reductions differ, so diagnostics agree to rounding (1e-12
relative) and labels exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

import phasegan.classify as classifier
from phasegan.classify import DIAGNOSTICS, classify
from phasegan.model import ode
from phasegan.model.methods import RunOptions, get_method
from phasegan.model.parameters import Parameters


def ode_block(d: int) -> tuple[Parameters, object]:
    noise, tau_gen = np.meshgrid(
        np.linspace(0.1, 2.0, 8), np.geomspace(0.05, 1.5, 4), indexing="ij"
    )
    lam = np.linspace(2.0, 1.0, d)
    params = Parameters(
        lam=np.tile(lam, (noise.size, 1)),
        lam_gen=np.tile(lam, (noise.size, 1)),
        noise_true=noise.ravel(),
        noise_gen=noise.ravel(),
        tau=0.5,
        tau_gen=tau_gen.ravel(),
        q0=0.2,
        P0=0.1,
        n=0,
    )
    return params, ode.solve(params, np.linspace(0, 1000, 200))


def assert_same(sliced, whole):
    np.testing.assert_array_equal(sliced.label, whole.label)
    for diagnostic in DIAGNOSTICS:
        np.testing.assert_allclose(
            sliced.diagnostics[diagnostic.name],
            whole.diagnostics[diagnostic.name],
            rtol=1e-12,
            atol=0,
            err_msg=diagnostic.name,
        )


@pytest.mark.parametrize("d", [1, 2])
def test_ode_block_in_slices_equals_the_block_at_once(d, monkeypatch):
    params, traj = ode_block(d)
    whole = classify(traj, params=params)
    # A few points per slice, and a last slice shorter than the others.
    monkeypatch.setattr(classifier, "CHUNK_BYTES", 5 * 200 * (4 * d * d) * 8)
    assert_same(classify(traj, params=params), whole)


def test_simulation_block_in_slices_keeps_each_points_n(monkeypatch):
    params = Parameters.stack(
        [
            Parameters.single(noise=noise, tau=0.5, tau_gen=0.5, n=n)
            for noise, n in [(0.75, 300), (1.2, 3000), (0.75, 30000)]
        ]
    )
    times = np.linspace(0, 200, 100)
    traj = get_method("reduced")(params, times, RunOptions(replicas=2, root_seed=1))
    whole = classify(traj, n=params.n)
    monkeypatch.setattr(classifier, "CHUNK_BYTES", 1)
    sliced = classify(traj, n=params.n)
    assert_same(sliced, whole)
    floor = sliced.diagnostics["amplitude_floor"][:, 0]
    np.testing.assert_allclose(floor, classifier.NOISE_FLOOR / np.sqrt(params.n))


def test_params_of_another_block_are_refused_before_slicing(monkeypatch):
    params, traj = ode_block(1)
    monkeypatch.setattr(classifier, "CHUNK_BYTES", 1)
    with pytest.raises(ValueError, match="params has 3 points"):
        classify(traj, params=params.take(np.arange(3)))
