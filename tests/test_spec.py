"""The spec: YAML reading, validation in one place, overrides, hash."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest
from sweep_helpers import TINY, tiny_spec

from phasegan.errors import InputError
from phasegan.spec import MAX_RUNS, parse_spec, read_spec
from phasegan.yamlspec import load_yaml


@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-3", 0.001),
        ("1E-3", 0.001),
        ("1.0e-3", 0.001),
        ("2e3", 2000.0),
        (".5", 0.5),
        ("-2.5E+1", -25.0),
        ("10", 10),
        ("010", 10),  # not YAML 1.1's octal 8
    ],
)
def test_numbers_read_as_numbers(text, value):
    got = load_yaml(f"x: {text}")["x"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", ["yes", "on", "1:20", "1_000", "0x10"])
def test_yaml_11_oddities_stay_strings(text):
    assert load_yaml(f"x: {text}")["x"] == text


def test_exponent_without_dot_in_a_spec(tmp_path):
    spec = tiny_spec(tmp_path / "s.zarr", "model.tau=1e-3")
    assert spec.fixed["tau"] == 0.001


@pytest.mark.parametrize(
    "text, field",
    [
        ("name: a\nname: b\n", "name"),
        ("model:\n  tau: 1\n  d: 1\n  tau: 2\n", "model.tau"),
        ("grid:\n  noise: {start: 1, start: 2}\n", "grid.noise.start"),
    ],
)
def test_duplicate_keys_rejected(text, field):
    with pytest.raises(InputError) as info:
        load_yaml(text)
    assert info.value.field == field
    assert "twice" in str(info.value)


def test_canonical_text_round_trips(tmp_path):
    spec = tiny_spec(tmp_path / "s.zarr")
    again = parse_spec(spec.text)
    assert again == spec
    assert again.hash == spec.hash


def test_hash_ignores_layout_but_not_values(tmp_path):
    spec = tiny_spec(tmp_path / "s.zarr")
    reformatted = "# a comment\n" + TINY.replace("t_max: 200", "t_max: 200.0")
    same = parse_spec(reformatted, [f"store={tmp_path / 's.zarr'}"])
    assert same.hash == spec.hash
    assert tiny_spec(tmp_path / "elsewhere.zarr").hash == spec.hash
    assert tiny_spec(tmp_path / "s.zarr", "model.tau=0.3").hash != spec.hash


def test_set_overrides_by_dotted_path(tmp_path):
    spec = tiny_spec(
        tmp_path / "s.zarr",
        "model.tau=0.3",
        "grid.tau_gen.values=[0.1, 1e-2]",
        "sim.seeds=3",  # creates a section the ode method ignores
    )
    assert spec.fixed["tau"] == 0.3
    assert spec.axis("tau_gen").values == (0.1, 0.01)
    assert spec.replicas == 1


def test_readme_set_example_replaces_a_range_axis():
    # Regression: the README's --set grid.tau_gen.values=[0.1,1] failed on
    # specs whose axis is start/stop/num/log ("cannot be combined with values").
    path = Path(__file__).parents[1] / "sweeps" / "noise-vs-lr.yaml"
    readme = read_spec(path, ["grid.tau_gen.values=[0.1,1]"])
    assert readme.axis("tau_gen").values == (0.1, 1.0)
    assert not readme.axis("tau_gen").log

    ranged = tiny_spec(
        "s.zarr", "grid.tau_gen.start=0.1", "grid.tau_gen.stop=1", "grid.tau_gen.num=3"
    )
    assert ranged.axis("tau_gen").values == (0.1, 0.55, 1.0)
    with pytest.raises(InputError, match=r"grid\.tau_gen\.stop: is required"):
        tiny_spec("s.zarr", "grid.tau_gen.start=0.1")


@pytest.mark.parametrize("item", ["model.tau", "=3", "model..tau=1"])
def test_bad_set_items(tmp_path, item):
    with pytest.raises(InputError) as info:
        tiny_spec(tmp_path / "s.zarr", item)
    assert info.value.field == "--set"


def test_spec_pickles_as_its_text(tmp_path):
    spec = tiny_spec(tmp_path / "s.zarr", "model.tau=0.3")
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_spec_is_immutable(tmp_path):
    spec = tiny_spec(tmp_path / "s.zarr")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.t_max = 1.0
    with pytest.raises(TypeError):
        spec.fixed["tau"] = 1.0


def test_grid_values():
    spec = parse_spec(
        TINY.replace(
            "tau_gen: {values: [0.05, 0.5, 2.0]}",
            "tau_gen: {start: 0.01, stop: 1, num: 3, log: true}",
        )
    )
    assert spec.shape == (5, 3)
    assert spec.axis("tau_gen").values == pytest.approx((0.01, 0.1, 1.0), rel=1e-12)
    assert spec.axis("tau_gen").log
    assert spec.size == 15 and spec.runs == 15
    assert "noise_true" not in spec.fixed and "noise_gen" not in spec.fixed


def test_simulation_spec_with_n_axis():
    spec = parse_spec(
        TINY.replace("method: ode", "method: reduced")
        + "  n: {start: 10, stop: 1000, num: 3, log: true}\n"
        + "sim: {seeds: 4, seed: 7}\n"
    )
    assert spec.axis("n").values == (10, 100, 1000)
    assert spec.replicas == 4 and spec.root_seed == 7
    assert spec.simulation


# Each case: a --set override that breaks one rule, and the field named.
BAD = [
    ("name=has space", "name"),
    ("method=euler", "method"),
    ("model.tau=-0.1", "model.tau"),
    ("model.tau_gen=-1", "model.tau_gen"),
    ("model.noise=-1", "model.noise"),
    ("model.noise_true=-1", "model.noise_true"),  # own rule before the clash
    ("model.tau='fast'", "model.tau"),
    ("model.tau=true", "model.tau"),
    ("model.tau=.nan", "model.tau"),
    ("model.d=0", "model.d"),
    ("model.d=1.5", "model.d"),
    ("model.lambda=[1, 2]", "model.lambda"),
    ("model.lambda=-1", "model.lambda"),
    ("model.bogus=1", "model.bogus"),
    ("init.q0=1.0", "init.q0"),
    ("init.P0=1.0", "init.P0"),
    ("time.t_max=0", "time.t_max"),
    ("time.samples=1", "time.samples"),
    ("time.samples=40.5", "time.samples"),
    ("time.samples=1e9", "time.samples"),
    ("classify.recovery=1.5", "classify.recovery"),
    ("grid.noise.num=0", "grid.noise.num"),
    ("grid.tau_gen.values=[]", "grid.tau_gen.values"),
    ("grid.tau_gen.values=[1, 1]", "grid.tau_gen"),
    ("grid.tau_gen.values=[0.1, -1]", "grid.tau_gen"),
    ("grid.tau_gen.values=3", "grid.tau_gen.values"),
    ("grid.bogus.values=[1]", "grid.bogus"),
    ("grid.noise={start: 0, stop: 1, num: 3, log: true}", "grid.noise.start"),
    ("grid.noise.step=1", "grid.noise.step"),
    ("grid.noise_true.values=[1]", "grid.noise_true"),
    ("grid.n.values=[100]", "grid.n"),
    (f"grid.q0={{start: 0.1, stop: 0.3, num: {MAX_RUNS}}}", "grid"),
    ("grid.q0.values=[0.1, 1.0]", "grid.q0"),
    ("grid=[]", "grid"),
    ("extra=1", "extra"),
    ("method=sim", "sim"),
]


@pytest.mark.parametrize("item, field", BAD, ids=[item for item, _ in BAD])
def test_bad_spec_names_the_field(tmp_path, item, field):
    with pytest.raises(InputError) as info:
        tiny_spec(tmp_path / "s.zarr", item)
    assert info.value.field == field, str(info.value)
    assert not (tmp_path / "s.zarr").exists()


# Regression: model.noise beside noise_true was accepted and silently won
# over by it. `noise` sets both noises, so it excludes the other two anywhere.
NOISE_CLASHES = [
    (
        "noise: 1, noise_true: 0.3",
        "{tau: {values: [0.5]}}",
        "model.noise_true",
        "model.noise",
    ),
    (
        "noise: 1, noise_gen: 0.3",
        "{tau: {values: [0.5]}}",
        "model.noise_gen",
        "model.noise",
    ),
    ("noise_gen: 0.3", "{noise: {values: [1]}}", "model.noise_gen", "grid.noise"),
    ("noise: 1", "{noise_true: {values: [1]}}", "grid.noise_true", "model.noise"),
    (
        "noise_true: 1, noise_gen: 1",
        "{noise: {values: [1]}, noise_gen: {values: [1]}}",
        "grid.noise_gen",
        "grid.noise",
    ),
]


@pytest.mark.parametrize("model, grid, field, other", NOISE_CLASHES)
def test_noise_excludes_noise_true_and_noise_gen(model, grid, field, other):
    text = TINY.split("model:")[0] + (  # name and method
        f"model: {{d: 1, lambda: 1, lambda_gen: 1, tau: 0.5, tau_gen: 0.5, {model}}}\n"
        "init: {q0: 0.2, P0: 0.1}\ntime: {t_max: 80, samples: 40}\n"
        f"grid: {grid}\n"
    )
    with pytest.raises(InputError) as info:
        parse_spec(text)
    assert info.value.field == field, str(info.value)
    assert f"cannot be given with {other}" in str(info.value)


@pytest.mark.parametrize(
    "items, field",
    [
        (["sim={n: 2000000000, seeds: 2}"], "sim.n"),
        (["sim={n: 100, seeds: 2}", "grid.n.values=[100, 2000000000]"], "grid.n"),
    ],
)
def test_a_simulation_must_fit_a_worker(items, field):
    # Regression: n = 2e9 was accepted, a 16 GB vector per run.
    with pytest.raises(InputError) as info:
        tiny_spec("s.zarr", "method=sim", *items)
    assert info.value.field == field
    assert "GiB per simulation run" in str(info.value)
    # The exact reduced simulation holds no n-vectors.
    tiny_spec("s.zarr", "method=reduced", *items)


def test_d_q0_rule_uses_d(tmp_path):
    # 2 * 0.75^2 = 1.125 >= 1: breaks d q0^2 < 1 for d = 2 but not for d = 1.
    tiny_spec(tmp_path / "a.zarr", "init.q0=0.75")
    with pytest.raises(InputError) as info:
        tiny_spec(tmp_path / "b.zarr", "init.q0=0.75", "model.d=2")
    assert info.value.field == "init.q0"
    assert "d q0^2 < 1" in info.value.rule


def test_simulation_needs_room_in_n(tmp_path):
    with pytest.raises(InputError) as info:
        tiny_spec(tmp_path / "s.zarr", "method=reduced", "sim={n: 4, seeds: 2}")
    assert info.value.field == "sim.n"


def test_missing_file():
    with pytest.raises(InputError) as info:
        read_spec("/nonexistent/spec.yaml")
    assert info.value.field == "SPEC"


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(InputError) as info:
        read_spec(path)
    assert info.value.field == str(path)
    assert "line" in str(info.value)
