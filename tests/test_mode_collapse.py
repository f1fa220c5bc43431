"""Mode collapse for d = 2 features of unequal strength (MODEL.md section 7).

Runs the shipped sweep ``sweeps/mode-collapse.yaml`` (read as CONTRACT.md
defines it) through the ODE and the classifier, and checks the known
qualitative result: weak noise oscillates, medium noise recovers both
features, strong noise recovers only the stronger one (``partial``), and
stronger still recovers none.

Where each regime must hold comes from section 6 applied feature by feature
on the line ``q = r = 0`` (with ``lambda~ = lambda`` the two features
decouple there while ``P`` is near diagonal), with ``a = tau^2 noise^2`` (the
two noises are equal):

- feature i oscillates while ``tau_gen lambda_i - 2a > 0``;
- feature i is lost once ``a > tau lambda_i``.

The bands asserted keep 10 % of the noise away from each of these analytic
lines, and 15 % from the weaker feature's failure line, below which its
overlap fades continuously to the recovery threshold rather than at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from phasegan.classify import CONVERGED, FAILED, OSCILLATING, PARTIAL, classify
from phasegan.model import ode
from phasegan.model.parameters import Parameters

SPEC = Path(__file__).resolve().parents[1] / "sweeps" / "mode-collapse.yaml"


@pytest.fixture(scope="module")
def sweep():
    spec = yaml.safe_load(SPEC.read_text())
    model, axis = spec["model"], spec["grid"]["noise"]
    assert spec["method"] == "ode" and model["d"] == 2
    assert list(spec["grid"]) == ["noise"]
    noise = np.linspace(axis["start"], axis["stop"], axis["num"])
    params = Parameters(
        lam=np.tile(model["lambda"], (noise.size, 1)),
        lam_gen=model["lambda_gen"],
        noise_true=noise,
        noise_gen=noise,
        tau=model["tau"],
        tau_gen=model["tau_gen"],
        q0=spec["init"]["q0"],
        P0=spec["init"]["P0"],
        n=0,
    ).validated()
    times = np.linspace(0, spec["time"]["t_max"], spec["time"]["samples"])
    traj = ode.solve(params, times)
    result = classify(traj, recovery=spec["classify"]["recovery"], params=params)
    return params, result


def analytic_noise(params: Parameters):
    """Noise levels of the per-feature oscillation and failure lines."""
    tau, tau_gen = params.tau[0], params.tau_gen[0]
    lam = params.lam[0]
    assert (params.lam_gen[0] == lam).all() and lam[0] > lam[1]
    # a = tau^2 noise^2 with equal noises; solve each condition for noise.
    oscillation = np.sqrt(tau_gen * lam / (2 * tau**2))
    failure = np.sqrt(lam / tau)
    return oscillation, failure


def test_weak_noise_oscillates(sweep):
    params, result = sweep
    oscillation, _ = analytic_noise(params)
    weak = params.noise_true <= 0.9 * oscillation[0]
    assert weak.sum() >= 3
    assert (result.label[weak, 0] == OSCILLATING).all()


def test_medium_noise_recovers_both_features(sweep):
    params, result = sweep
    oscillation, failure = analytic_noise(params)
    medium = (params.noise_true >= 1.1 * oscillation[0]) & (
        params.noise_true <= 0.85 * failure[1]
    )
    assert medium.sum() >= 3
    assert (result.label[medium, 0] == CONVERGED).all()


def test_strong_noise_recovers_only_the_stronger_feature(sweep):
    params, result = sweep
    _, failure = analytic_noise(params)
    strong = (params.noise_true >= 1.05 * failure[1]) & (
        params.noise_true <= 0.9 * failure[0]
    )
    assert strong.sum() >= 3
    assert (result.label[strong, 0] == PARTIAL).all()
    best = result.diagnostics["P_final"][strong, 0]
    assert (best[:, 0] >= 0.5).all() and (best[:, 1] < 0.5).all()


def test_strongest_noise_recovers_nothing(sweep):
    params, result = sweep
    _, failure = analytic_noise(params)
    strongest = params.noise_true >= 1.1 * failure[0]
    assert strongest.sum() >= 3
    assert (result.label[strongest, 0] == FAILED).all()


def test_regimes_come_in_order_of_noise(sweep):
    # Along increasing noise the regimes never come back: every label of the
    # sweep falls in one run of oscillating, then converged, then partial,
    # then failed, and all four are there.
    params, result = sweep
    order = [OSCILLATING, CONVERGED, PARTIAL, FAILED]
    labels = result.label[np.argsort(params.noise_true), 0]
    rank = np.array([order.index(label) for label in labels])
    assert (np.diff(rank) >= 0).all()
    assert set(rank) == {0, 1, 2, 3}
