"""The command line: exit codes, one-line errors, run/status/plot/validate."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sweep_helpers import TINY, store_files, tiny_spec

from phasegan.cli import main


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY + f"store: {tmp_path / 'tiny.zarr'}\n")
    return path


def one_error_line(capsys, field: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"phasegan: error: {field}: "), err[0]
    return err[0]


def test_validate_prints_size_and_cost(spec_file, capsys):
    assert main(["validate", str(spec_file)]) == 0
    out = capsys.readouterr().out
    assert "noise[5] x tau_gen[3] = 15 points" in out
    assert "CPU time" in out


# Input errors that reach the command line: exit 2, one line naming the field,
# and no store created.
CASES = [
    (["--set", "model.tau=-1"], "model.tau"),
    (["--set", "init.q0=1.2"], "init.q0"),
    (["--set", "grid.tau_gen.values=[]"], "grid.tau_gen.values"),
    (["--set", "grid.oops.values=[1]"], "grid.oops"),
    (["--set", "time.samples=seven"], "time.samples"),
    (["--set", "model.lambda=[1, 2, 3]"], "model.lambda"),
    (["--set", "grid.noise.num=100000000"], "grid"),
    (["--set", "broken"], "--set"),
    (["--workers", "0"], "--workers"),
    (["--bogus"], "arguments"),
    (["--scheduler", "sync", "--cluster", "slurm"], "--cluster"),
]


@pytest.mark.parametrize("extra, field", CASES, ids=[c[1] for c in CASES])
def test_run_with_bad_input_exits_2(spec_file, tmp_path, capsys, extra, field):
    assert main(["run", str(spec_file), *extra]) == 2
    one_error_line(capsys, field)
    assert not (tmp_path / "tiny.zarr").exists()


def test_duplicate_key_in_file(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text(TINY.replace("time:", "method: sim\ntime:"))
    assert main(["validate", str(path)]) == 2
    one_error_line(capsys, "method")


def test_missing_spec_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.yaml")]) == 2
    one_error_line(capsys, "SPEC")


def test_store_that_cannot_be_written(spec_file, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    store = tmp_path / "file" / "s.zarr"
    assert main(["run", str(spec_file), "--store", str(store)]) == 2
    one_error_line(capsys, "store")


def test_run_status_plot_and_mismatch(spec_file, tmp_path, capsys):
    store = tmp_path / "tiny.zarr"
    assert main(["run", str(spec_file), "--scheduler", "sync", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "converged" in out and "total" in out
    assert f"store:  {store}" in out
    assert f"figure: {tmp_path / 'tiny.png'}" in out
    assert (tmp_path / "tiny.png").stat().st_size > 0

    assert main(["status", str(store)]) == 0
    out = capsys.readouterr().out
    assert "15 / 15 (100%), complete" in out and "spec_hash" not in out

    out_png = tmp_path / "traj.png"
    assert (
        main(
            [
                "plot",
                str(store),
                "--trajectories",
                "-o",
                str(out_png),
                "--point",
                "noise=0.6,tau_gen=0.05",
            ]
        )
        == 0
    )
    assert out_png.stat().st_size > 0

    before = store_files(store)
    assert main(["run", str(spec_file), "--set", "model.tau=0.3"]) == 2
    one_error_line(capsys, "store")
    assert store_files(store) == before


def test_detach_needs_a_running_scheduler(spec_file, tmp_path, capsys):
    assert main(["run", str(spec_file), "--detach"]) == 2
    one_error_line(capsys, "--detach")
    assert not (tmp_path / "tiny.zarr").exists()


def test_real_process_exit_code_and_single_stderr_line(spec_file, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "phasegan.cli",
            "run",
            str(spec_file),
            "--set",
            "model.noise=-0.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "phasegan: error: model.noise: must be >= 0 (got -0.5); use a value >= 0"
    ]
    assert not (tmp_path / "tiny.zarr").exists()


def test_simulation_store_beside_the_ode(tmp_path, capsys):
    ode = tiny_spec(
        tmp_path / "ode.zarr",
        "grid.noise.num=2",
        "grid.tau_gen.values=[0.3]",
        "time.t_max=40",
    )
    sim = tiny_spec(
        tmp_path / "sim.zarr",
        "method=reduced",
        "sim={n: 200, seeds: 2}",
        "grid.noise.num=2",
        "grid.tau_gen.values=[0.3]",
        "time.t_max=40",
        "grid.n.values=[50, 200]",
    )
    for spec in (ode, sim):
        path = tmp_path / f"{spec.method}.yaml"
        path.write_text(spec.text)
        assert main(["run", str(path), "--scheduler", "sync", "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "both.png"
    assert (
        main(
            [
                "plot",
                str(tmp_path / "ode.zarr"),
                str(tmp_path / "sim.zarr"),
                "--trajectories",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    assert out.stat().st_size > 0
    assert (tmp_path / "sim.png").stat().st_size > 0  # shares of seeds per cell
