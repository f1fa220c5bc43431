"""The command line: exit codes, one-line errors, run/status/plot/validate."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
import time

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


def test_validate_warns_of_more_than_a_week(spec_file, capsys):
    assert main(["validate", str(spec_file), "--set", "time.t_max=1e12"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("phasegan: warning: cost: "), err
    assert main(["validate", str(spec_file)]) == 0
    assert capsys.readouterr().err == ""


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


def test_store_option_puts_the_figure_beside_that_store(tmp_path, capsys):
    # Regression: --store wrote the figure to the spec's own `figure` path.
    spec_file = tmp_path / "fig.yaml"
    spec_file.write_text(TINY + f"figure: {tmp_path / 'spec-figure.png'}\n")
    store = tmp_path / "other.zarr"
    run = ["run", str(spec_file), "--scheduler", "sync", "--no-progress"]
    assert main([*run, "--store", str(store)]) == 0
    assert f"figure: {tmp_path / 'other.png'}" in capsys.readouterr().out
    assert (tmp_path / "other.png").exists()
    assert not (tmp_path / "spec-figure.png").exists()

    named = tmp_path / "named.png"
    assert main([*run, "--store", str(store), "--set", f"figure={named}"]) == 0
    assert named.exists()


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


# --- every kind of bad input: exit 2, one line, nothing written --------------------
#
# Each case: the command line ({spec}, {dup}, {made}, {tmp} are filled in), then
# the field the message must start with, a piece of the rule it must state and
# the bad value it must show (None where the field itself is what is wrong:
# an unknown or repeated key, a missing argument).
BAD_INPUT = [
    # wrong types
    (
        "run {spec} --set model.tau=fast",
        "model.tau",
        "a number",
        "(got 'fast')",
    ),
    (
        "run {spec} --set time.samples=seven",
        "time.samples",
        "integer",
        "(got 'seven')",
    ),
    ("run {spec} --set model.d=1.5", "model.d", "integer", "(got 1.5)"),
    ("run {spec} --set model.tau=true", "model.tau", "a number", "(got True)"),
    ("run {spec} --set 'model={tau: 1}'", "model.d", "is required", None),
    ("run {spec} --set grid.noise.num=2.5", "grid.noise.num", "integer", "(got 2.5)"),
    ("run {spec} --set model.tau=.inf", "model.tau", "finite", "(got inf)"),
    # unknown and duplicate keys
    ("run {spec} --set model.bogus=1", "model.bogus", "not a known key", None),
    ("run {spec} --set model.tua=0.3", "model.tua", "not a known key", None),
    ("run {spec} --set extra=1", "extra", "not a known key", None),
    ("run {dup}", "model.tau", "given twice", None),
    # negative noise or learning rates, on their own or on an axis
    ("run {spec} --set model.noise=-0.5", "model.noise", ">= 0", "(got -0.5)"),
    (
        "run {spec} --set model.noise_true=-1",
        "model.noise_true",
        ">= 0",
        "(got -1.0)",
    ),
    ("run {spec} --set model.tau=-0.1", "model.tau", ">= 0", "(got -0.1)"),
    ("run {spec} --set model.tau_gen=-2", "model.tau_gen", ">= 0", "(got -2.0)"),
    (
        "run {spec} --set 'grid.tau_gen.values=[0.1, -1]'",
        "grid.tau_gen",
        ">= 0",
        "(got -1.0)",
    ),
    # axes: empty, on an unknown parameter, repeated values, log through 0
    (
        "run {spec} --set 'grid.tau_gen.values=[]'",
        "grid.tau_gen.values",
        "empty",
        "(got [])",
    ),
    (
        "run {spec} --set grid.noise.num=0",
        "grid.noise.num",
        "cannot be empty",
        "(got 0)",
    ),
    ("run {spec} --set 'grid.bogus.values=[1]'", "grid.bogus", "grid axis", None),
    (
        "run {spec} --set 'grid.tau_gen.values=[1, 1]'",
        "grid.tau_gen",
        "distinct",
        "(got [1.0, 1.0])",
    ),
    (
        "run {spec} --set 'grid.noise={start: 0, stop: 1, num: 3, log: true}'",
        "grid.noise.start",
        "> 0",
        "(got 0)",
    ),
    # too large for memory
    (
        "run {spec} --set grid.noise.num=100000000",
        "grid",
        "fit in memory",
        "300,000,000 runs",
    ),
    (
        "run {spec} --set time.samples=100000000",
        "time.samples",
        "MiB",
        "(got 100000000)",
    ),
    # the model's own rules
    (
        "run {spec} --set 'model.lambda=[1, 2, 3]'",
        "model.lambda",
        "d = 1",
        "(got [1, 2, 3])",
    ),
    (
        "run {spec} --set model.d=2 --set init.q0=0.75",
        "init.q0",
        "d q0^2 < 1",
        "(got 0.75)",
    ),
    ("run {spec} --set init.P0=-1", "init.P0", "|P0| < 1", "(got -1.0)"),
    (
        "run {spec} --set method=sim --set 'sim={n: 4, seeds: 2}'",
        "sim.n",
        ">= 2d + 3",
        "(got 4)",
    ),
    ("run {spec} --set time.t_max=0", "time.t_max", "> 0", "(got 0.0)"),
    (
        "run {spec} --set classify.recovery=1.5",
        "classify.recovery",
        "(0, 1]",
        "(got 1.5)",
    ),
    ("run {spec} --set method=euler", "method", "one of", "(got 'euler')"),
    ("run {spec} --set 'name=two words'", "name", "letters", "(got 'two words')"),
    # stores that cannot be written or are not this spec's
    (
        "run {spec} --store /proc/phasegan/s.zarr",
        "store",
        "cannot be written",
        "(got '/proc/phasegan/s.zarr')",
    ),
    (
        "run {spec} --store {tmp}/file",
        "store",
        "not a directory",
        "(got '{tmp}/file')",
    ),
    (
        "run {spec} --store {tmp}/foreign",
        "store",
        "not a phasegan store",
        "(got '{tmp}/foreign')",
    ),
    (
        "run {spec} --store {made} --set model.tau=0.3",
        "store",
        "another spec",
        "(got '{made}')",
    ),
    # arguments
    ("run {spec} --set broken", "--set", "KEY=VALUE", "(got 'broken')"),
    (
        "run {spec} --set model.tau.x=1",
        "--set model.tau.x",
        "not a section",
        "(got 0.5)",
    ),
    ("run {spec} --set 'model.tau=[1'", "--set model.tau", "not valid YAML", None),
    ("run {spec} --workers 0", "--workers", ">= 1", "(got '0')"),
    ("run {spec} --detach", "--detach", "--scheduler", None),
    (
        "run {spec} --scheduler 127.0.0.1",
        "--scheduler",
        "tcp://HOST:PORT",
        "(got '127.0.0.1')",
    ),
    ("run {spec} --cluster lsf", "--cluster", "slurm", "(got 'lsf')"),
    # one line, no log line before it
    ("run {spec} --scheduler bogus", "--scheduler", "tcp://HOST:PORT", "'bogus'"),
    ("run {spec} --cluster foo", "--cluster", "slurm", "(got 'foo')"),
    ("run {tmp}/none.yaml", "SPEC", "not found", "(got '{tmp}/none.yaml')"),
    ("cancel {made}", "--scheduler", "is required", None),
    (
        "status {tmp}/foreign",
        "STORE",
        "not a phasegan store",
        "(got '{tmp}/foreign')",
    ),
    ("status {tmp}/none.zarr", "STORE", "does not exist", "(got '{tmp}/none.zarr')"),
    ("plot {tmp}/none.zarr", "STORE", "does not exist", "(got '{tmp}/none.zarr')"),
    (
        "plot {made} --trajectories --point noise",
        "--point",
        "AXIS=VALUE",
        "(got 'noise')",
    ),
    (
        "run {spec} --set figure={tmp}/file/x.png",
        "figure",
        "cannot be written",
        "(got '{tmp}/file/x.png')",
    ),
    (
        "plot {made} -o {tmp}/nonexistent/dir/x.png",
        "-o",
        "does not exist",
        "(got '{tmp}/nonexistent/dir/x.png')",
    ),
    (
        "plot {made} --trajectories --point foo=1",
        "--point",
        "'foo' is not a grid axis",
        "axes are noise, tau_gen",
    ),
    ("validate {dup}", "model.tau", "given twice", None),
    ("frobnicate", "command", "invalid choice", "'frobnicate'"),
]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A complete store of the tiny spec."""
    path = tmp_path_factory.mktemp("made") / "tiny.zarr"
    spec = tiny_spec(path)
    from phasegan import engine

    engine.run(spec, scheduler="sync", show_progress=False)
    return path


def _snapshot(*roots) -> dict:
    """Every file and directory under ``roots``: size and modification time."""
    seen = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                info = os.stat(os.path.join(folder, name))
                seen[os.path.join(folder, name)] = (info.st_size, info.st_mtime_ns)
    return seen


@pytest.mark.parametrize(
    "args, field, rule, value",
    BAD_INPUT,
    ids=[c[0][:60] for c in BAD_INPUT],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, made, capsys, args, field, rule, value
):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY + f"store: {tmp_path / 'tiny.zarr'}\n")
    (tmp_path / "dup.yaml").write_text(
        TINY.replace("time:", "model:\n  tau: 0.1\n  tau: 0.2\ntime:", 1).replace(
            "model: {", "other: {", 1
        )
    )
    (tmp_path / "file").write_text("")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("keep")
    places = {"{spec}": spec, "{dup}": tmp_path / "dup.yaml", "{made}": made}
    places["{tmp}"] = tmp_path

    def fill(text):
        for key, path in places.items():
            text = text.replace(key, str(path))
        return text

    before = _snapshot(tmp_path, made.parent)
    assert main([fill(a) for a in shlex.split(args)]) == 2
    line = one_error_line(capsys, field)
    assert rule in line, line
    if value is not None:
        assert fill(value) in line, line
    assert _snapshot(tmp_path, made.parent) == before


def test_plot_beside_a_store_on_read_only_media_suggests_o(made, capsys, monkeypatch):
    from phasegan import store

    # Root may write anywhere, so read-only media is the write probe failing.
    monkeypatch.setattr(store, "_can_write", lambda folder: False)
    assert main(["plot", str(made)]) == 2
    line = one_error_line(capsys, "figure")
    assert "-o" in line and "cannot be written" in line


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_stderr(spec_file, capsys, monkeypatch):
    # Regression: the bar went to stdout even into a log file, as one long
    # line of \r-joined bars.
    run = ["run", str(spec_file), "--scheduler", "sync", "--no-plot"]
    assert main(run) == 0
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([*run, "--overwrite"]) == 0
    assert "\r" not in capsys.readouterr().out
    assert "\r[" in terminal.getvalue()


def test_engine_bar_draws_on_its_stream():
    from phasegan.engine import _Bar

    out = io.StringIO()
    bar = _Bar(2, width=4, out=out)
    bar.step()
    bar.step()
    assert out.getvalue().endswith("\r[####] 2/2 blocks, 0 s\n")


def test_status_watch_into_a_file_prints_lines(made, capsys):
    assert main(["status", str(made), "--watch"]) == 0
    out = capsys.readouterr().out
    assert "\r" not in out
    assert out.splitlines()[-1].startswith("progress   15 / 15 (100%), complete")


def _partial(idle: float, seconds_per_block: float = 1.0):
    from phasegan.store import Progress

    return Progress(
        done=5,
        total=15,
        counts={"converged": 5},
        attrs={"created": "2026-01-01T00:00:00+00:00"},
        rate=1.0 / seconds_per_block,  # one run per block here
        last_write=time.time() - idle,
        blocks_written=5,
    )


def test_status_of_a_stopped_sweep_drops_rate_and_eta():
    # Regression: after Ctrl-C or cancel, status kept a rate and an ETA.
    from phasegan.cli import _progress_line

    running = _progress_line(_partial(idle=2))
    assert "per s" in running and "ETA 10 s" in running and "STALLED" not in running

    stopped = _progress_line(_partial(idle=120))  # past the 60 s minimum
    assert "STALLED or STOPPED" in stopped
    assert "ETA" not in stopped and "per s" not in stopped
    assert _partial(idle=120).eta is None

    # Slow blocks: patience is five intervals between writes, past the minimum.
    assert not _partial(idle=400, seconds_per_block=100).stalled()
    assert _partial(idle=600, seconds_per_block=100).stalled()


def test_refused_scheduler_fails_fast_in_one_plain_line(spec_file, capsys):
    # Regression: 30 s of retries, then "PhaseganError: ..." on stderr.
    import socket

    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    start = time.monotonic()
    assert main(["run", str(spec_file), "--scheduler", address]) == 1
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err.strip().splitlines()
    refused = f"could not reach the Dask scheduler at {address}: connection refused"
    assert err[-1].startswith(f"phasegan: error: {refused}"), err
    assert "PhaseganError" not in err[-1]


def test_version(capsys):
    from phasegan import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"phasegan {__version__}"


def test_interrupted_watch_has_nothing_to_resume(made, capsys, monkeypatch):
    from phasegan import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_watch", interrupted)
    assert main(["status", str(made), "--watch"]) == 1
    assert capsys.readouterr().err == "phasegan: interrupted\n"


def test_cancel_says_how_to_resume(made, capsys, monkeypatch):
    from phasegan import engine

    monkeypatch.setattr(engine, "cancel", lambda path, scheduler: 3)
    assert main(["cancel", str(made), "--scheduler", "tcp://127.0.0.1:8786"]) == 0
    out = capsys.readouterr().out
    assert f"phasegan run SPEC --store {made}" in out
    assert "the same spec and the same --set overrides" in out
