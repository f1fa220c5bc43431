"""phasegan on real clusters: Dask's command-line scheduler and workers, and a
real single-node SLURM (deploy/testing/start-slurm.sh) through dask-jobqueue.

Every server here listens on 127.0.0.1. Each test runs ``phasegan run`` as a
user would, then checks the store against a run on Dask's local process
pool (no cluster), and counts, from a worker preload (tests/cluster_probe.py), how
often each block was computed and in which SLURM job.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cluster_probe
import numpy as np
import pytest
import xarray as xr
import yaml

from phasegan.batch import batch_options
from phasegan.errors import InputError

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
DEPLOY = ROOT / "deploy" / "testing"

# 32 points in ~16 blocks of ~0.2 s: quick, for the plumbing.
ODE_SPEC = {
    "name": "cluster-ode",
    "method": "ode",
    "model": {"d": 1, "lambda": 1.0, "lambda_gen": 1.0, "noise": 1.0, "tau": 0.5,
              "tau_gen": 0.5},
    "init": {"q0": 0.2, "P0": 0.1},
    "time": {"t_max": 3000, "samples": 40},
    "classify": {"recovery": 0.5},
    "grid": {"noise": {"start": 0.1, "stop": 2.5, "num": 8},
             "tau_gen": {"values": [0.1, 0.5, 1.0, 2.0]}},
    "store": "unused.zarr",
}  # fmt: skip

# 32 points in ~16 blocks of ~1.5 s of SGD: ~25 s of work, several lifetimes
# of the test's workers.
SIM_SPEC = {
    **ODE_SPEC,
    "name": "cluster-sim",
    "method": "sim",
    "time": {"t_max": 300, "samples": 20},
    "sim": {"n": 300, "seeds": 2, "seed": 0},
}


# --- helpers ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_spec(directory: Path, spec: dict) -> Path:
    path = directory / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def phasegan_run(spec: Path, store: Path, *args, env=None, timeout=240):
    """``phasegan run`` in a subprocess; the CompletedProcess, output kept."""
    command = [sys.executable, "-m", "phasegan.cli", "run", str(spec),
               "--store", str(store), "--no-plot", "--no-progress", *args]  # fmt: skip
    done = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    print(done.stdout, done.stderr, sep="\n")  # shown when a test fails
    return done


def probe_env(tmp_path: Path, **extra) -> dict:
    """Environment for phasegan and its workers: the probe on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TESTS), str(ROOT), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    env["PHASEGAN_TEST_PROBE"] = str(tmp_path / "probe.jsonl")
    env.update(extra)
    return env


def assert_same_store(path: Path, reference: Path):
    """Every label written, and every variable equal to the reference run."""
    ds, ref = xr.open_zarr(path), xr.open_zarr(reference)
    label = ds["label"].values
    assert (label >= 0).all(), f"{(label < 0).sum()} runs not computed"
    # Same code, same inputs, same machine: equal to the last bit (NaN == NaN).
    xr.testing.assert_equal(ds.load(), ref.load())


def block_count(spec: Path) -> int:
    """Blocks (tasks) the engine cuts the sweep of ``spec`` into."""
    from phasegan.grid import Grid
    from phasegan.spec import read_spec

    return Grid.for_spec(read_spec(str(spec), [])).size


def assert_each_block_once(probe: Path, blocks: int) -> dict:
    """Each block started and finished executing exactly once; its records."""
    records = cluster_probe.read(probe)
    runs = cluster_probe.executions(records)
    starts = cluster_probe.starts(records)
    assert sorted(runs) == list(range(blocks)), "some blocks never finished"
    twice = {b: n for b, n in starts.items() if n != 1}
    assert not twice, f"blocks computed more than once (block: times): {twice}"
    return {block: rec[0] for block, rec in runs.items()}


class Processes:
    """Background processes started by one test, stopped by their own ids."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.started = []

    def start(self, name: str, *command, env=None):
        # Open for the life of the process; closed in stop().
        out = open(self.logs / f"{name}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        self.started.append((name, proc, out))
        return proc

    def stop(self):
        """SIGTERM and wait, last started first (workers before the scheduler)."""
        for name, proc, out in reversed(self.started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()


def make_tls(directory: Path) -> Path:
    """A self-signed CA and one certificate, made as deploy/README.md says."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        ["openssl", "req", "-x509", *ec, "-days", "365", "-subj",
         "/CN=phasegan-dask-ca", "-keyout", "ca-key.pem", "-out", "ca.pem"],
        ["openssl", "req", *ec, "-subj", "/CN=phasegan-dask", "-keyout",
         "key.pem", "-out", "cert.csr"],
        ["openssl", "x509", "-req", "-in", "cert.csr", "-CA", "ca.pem", "-CAkey",
         "ca-key.pem", "-CAcreateserial", "-days", "365", "-out", "cert.pem"],
    ):  # fmt: skip
        subprocess.run(command, cwd=directory, check=True, capture_output=True)
    return directory


def tls_config(directory: Path) -> dict:
    """The ``distributed.comm`` section of deploy/README.md for these files."""
    pair = {"cert": str(directory / "cert.pem"), "key": str(directory / "key.pem")}
    return {
        "require-encryption": True,
        "tls": {
            "ca-file": str(directory / "ca.pem"),
            "scheduler": pair,
            "worker": pair,
            "client": pair,
        },
    }


def reference_run(directory: Path, spec: dict) -> tuple[Path, Path]:
    """``spec`` run on Dask's local process pool, no distributed cluster: the
    store every cluster run of it must equal."""
    path = write_spec(directory, spec)
    store = directory / f"{spec['name']}.zarr"
    done = phasegan_run(path, store, "--scheduler", "processes", "--workers", "2")
    assert done.returncode == 0, done.stderr
    return path, store


@pytest.fixture(scope="module")
def ode_reference(tmp_path_factory):
    return reference_run(tmp_path_factory.mktemp("reference"), ODE_SPEC)


@pytest.fixture(scope="module")
def sim_reference(tmp_path_factory):
    return reference_run(tmp_path_factory.mktemp("reference"), SIM_SPEC)


# --- (a) dask scheduler + dask worker on 127.0.0.1 --------------------------------


@pytest.fixture
def dask_cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1."""
    procs = Processes(tmp_path)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = probe_env(tmp_path)
    dask = shutil.which("dask")
    assert dask, "the `dask` command (package dask) is not on PATH"
    try:
        procs.start(
            "scheduler", dask, "scheduler", "--host", "127.0.0.1", "--port",
            str(port), "--dashboard-address", "127.0.0.1:0", env=env,
        )  # fmt: skip
        for name in ("w1", "w2"):
            procs.start(
                name, dask, "worker", address, "--name", name, "--host",
                "127.0.0.1", "--nthreads", "1", "--no-dashboard",
                "--preload", "cluster_probe", "--preload", "phasegan.drain",
                env=env,
            )  # fmt: skip
        wait_for_workers(address, 2, timeout=60)
        yield address, env
    finally:
        procs.stop()


def wait_for_workers(address: str, n: int, timeout: float):
    from distributed import Client

    with Client(address, timeout=timeout) as client:
        client.wait_for_workers(n, timeout=timeout)


def test_remote_scheduler_runs_sweep(dask_cluster, ode_reference, tmp_path):
    address, env = dask_cluster
    spec, reference = ode_reference
    store = tmp_path / "remote.zarr"

    done = phasegan_run(spec, store, "--scheduler", address, env=env)

    assert done.returncode == 0, done.stderr
    assert_same_store(store, reference)
    runs = assert_each_block_once(tmp_path / "probe.jsonl", block_count(spec))
    workers = {record["worker"] for record in runs.values()}
    assert workers == {"w1", "w2"}, f"blocks ran on {workers}, not on both workers"


def test_remote_scheduler_unreachable_is_reported(tmp_path):
    spec = write_spec(tmp_path, ODE_SPEC)
    env = probe_env(tmp_path, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there

    done = phasegan_run(spec, tmp_path / "s.zarr", "--scheduler", address, env=env)

    assert done.returncode == 1
    assert f"could not reach the Dask scheduler at {address}" in done.stderr


def test_tls_scheduler_refuses_clients_without_the_certificate(tmp_path):
    """The README's self-signed set-up: only holders of the key get in."""
    from distributed import Client
    from distributed.security import Security

    tls = make_tls(tmp_path / "tls")
    other = make_tls(tmp_path / "other")  # a certificate from another CA
    port = free_port()
    procs = Processes(tmp_path)
    try:
        procs.start(
            "scheduler", shutil.which("dask"), "scheduler", "--host", "127.0.0.1",
            "--port", str(port), "--protocol", "tls", "--dashboard-address",
            "127.0.0.1:0", "--tls-ca-file", str(tls / "ca.pem"), "--tls-cert",
            str(tls / "cert.pem"), "--tls-key", str(tls / "key.pem"),
        )  # fmt: skip

        def security(d):
            return Security(
                tls_ca_file=str(d / "ca.pem"),
                tls_client_cert=str(d / "cert.pem"),
                tls_client_key=str(d / "key.pem"),
                require_encryption=True,
            )

        with Client(f"tls://127.0.0.1:{port}", security=security(tls), timeout=30):
            pass  # the right certificate gets in
        for address, sec in (
            (f"tcp://127.0.0.1:{port}", None),
            (f"tls://127.0.0.1:{port}", security(other)),
        ):
            with pytest.raises(OSError):
                Client(address, security=sec, timeout=3)
    finally:
        procs.stop()


# --- batch configuration: errors before anything starts ---------------------------


def jobqueue_config(tmp_path: Path, name: str, **slurm) -> dict:
    """A Dask config for the test SLURM: small jobs, everything on 127.0.0.1."""
    section = {
        "name": name,
        "cores": 1,
        "memory": "1GiB",
        "processes": 1,
        "interface": "lo",
        "walltime": "00:05:00",
        "log-directory": str(tmp_path / "jobs"),
        "worker-extra-args": ["--preload", "cluster_probe"],
        "scheduler-options": {"dashboard_address": "127.0.0.1:0"},
    }
    section.update(slurm)
    return {
        "jobqueue": {"slurm": section},
        "phasegan": {"cluster": {"minimum-jobs": 0, "maximum-jobs": 2, "drain": "3s"}},
        # A job whose worker has gone is replaced after this long (default 15 s).
        "distributed": {"deploy": {"lost-worker-timeout": "1s"}},
    }


def dotted(config: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: `dask.config.set` replaces whole
    sections given as nested dicts, and dotted keys only their leaves."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value and key != "scheduler-options":
            flat.update(dotted(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_unknown_cluster_is_an_input_error(tmp_path):
    spec = write_spec(tmp_path, ODE_SPEC)
    done = phasegan_run(spec, tmp_path / "s.zarr", "--cluster", "kubernetes")
    assert done.returncode == 2
    assert "--cluster: must be one of: slurm, pbs (got 'kubernetes')" in done.stderr


def test_missing_batch_config_exits_2_and_writes_nothing(tmp_path):
    spec = write_spec(tmp_path, ODE_SPEC)
    store = tmp_path / "s.zarr"
    # Whatever config files this machine has: no cores for SLURM.
    env = probe_env(tmp_path, DASK_JOBQUEUE__SLURM__CORES="None")

    done = phasegan_run(spec, store, "--cluster", "slurm", env=env)

    assert done.returncode == 2
    assert "jobqueue.slurm.cores: must be set in a Dask config file" in done.stderr
    assert "deploy/slurm/jobqueue.yaml" in done.stderr
    assert not store.exists()


def test_local_cluster_listens_on_127_0_0_1_only():
    """Scheduler, nannies, workers and dashboard of the default cluster."""
    import psutil

    from phasegan.cluster import connect

    with connect(workers=2) as client:
        client.wait_for_workers(2, timeout=60)
        me = psutil.Process()
        listening = [
            conn.laddr
            for proc in [me, *me.children(recursive=True)]
            for conn in proc.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        ]
    # scheduler + dashboard, and per worker process its worker and nanny
    assert len(listening) >= 6
    assert {addr.ip for addr in listening} == {"127.0.0.1"}


def test_local_cluster_uses_tls_from_dask_config(tmp_path, ode_reference):
    """With the README's TLS config, even the local cluster speaks tls://."""
    spec, reference = ode_reference
    tls = make_tls(tmp_path / "tls")
    env = probe_env(
        tmp_path,
        DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION="True",
        DASK_DISTRIBUTED__COMM__TLS__CA_FILE=str(tls / "ca.pem"),
        **{
            f"DASK_DISTRIBUTED__COMM__TLS__{role}__{part}": str(tls / f"{file}.pem")
            for role in ("SCHEDULER", "WORKER", "CLIENT")
            for part, file in (("CERT", "cert"), ("KEY", "key"))
        },
    )

    done = phasegan_run(spec, tmp_path / "tls.zarr", "--workers", "2", env=env)

    assert done.returncode == 0, done.stderr
    assert re.search(r"computing \d+ blocks on tls://127\.0\.0\.1:\d+", done.stderr)
    assert_same_store(tmp_path / "tls.zarr", reference)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cores": None}, "jobqueue.slurm.cores: must be set in a Dask config file"),
        ({"interface": None}, "jobqueue.slurm.interface: must name the network"),
        ({"walltime": "soon"}, "jobqueue.slurm.walltime: must be a walltime"),
        (
            {"worker-extra-args": ["--lifetime", "4m", "--lifetime-stagger", "1m"]},
            "must be shorter than the walltime (300s)",
        ),
        ({"worker-extra-args": ["--lifetime-restart"]}, "must not hold --lifetime-"),
    ],
)
def test_bad_batch_config_is_an_input_error(tmp_path, change, message):
    import dask.config

    config = jobqueue_config(tmp_path, "pgtest-bad", **change)
    with (
        dask.config.set(dotted(config)),
        pytest.raises(InputError, match=re.escape(message)),
    ):
        batch_options("slurm")


def test_batch_options_add_lifetime_and_drain(tmp_path):
    import dask.config

    with dask.config.set(dotted(jobqueue_config(tmp_path, "pgtest"))):
        options = batch_options("slurm")
    args = options["worker_extra_args"]
    # 85 % of a 300 s walltime, staggered by 5 %
    assert args[args.index("--lifetime") + 1] == "255s"
    assert args[args.index("--lifetime-stagger") + 1] == "15s"
    assert args[-2:] == ["--preload", "phasegan.drain"]
    assert "export DASK_PHASEGAN__CLUSTER__DRAIN=3" in options["job_script_prologue"]
    assert options["scheduler_options"]["dashboard_address"] == "127.0.0.1:0"


@pytest.mark.parametrize(
    ("system", "submit", "expected"),
    [
        ("slurm", "sbatch", ["#SBATCH -t 01:00:00", "#SBATCH --cpus-per-task=8"]),
        ("pbs", "qsub", ["#PBS -l walltime=01:00:00",
                         "#PBS -l select=1:ncpus=8:mem=32GB"]),
    ],
)  # fmt: skip
def test_deploy_example_config_makes_job_script(
    system, submit, expected, tmp_path, monkeypatch
):
    """deploy/<system>/jobqueue.yaml passes the checks and gives the job script
    its comments promise. The submit command is a stand-in that is never run:
    this test needs no batch system."""
    import dask.config
    import dask_jobqueue

    fake = tmp_path / "bin" / submit
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'not a real batch system' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    config = yaml.safe_load((ROOT / "deploy" / system / "jobqueue.yaml").read_text())
    config["jobqueue"][system]["interface"] = "lo"  # ib0 is not on this machine
    config["jobqueue"][system]["log-directory"] = str(tmp_path / "logs")
    config["jobqueue"][system]["scheduler-options"]["dashboard_address"] = "127.0.0.1:0"

    with dask.config.set(dotted(config)):
        options = batch_options(system)
        cls = getattr(
            dask_jobqueue, {"slurm": "SLURMCluster", "pbs": "PBSCluster"}[system]
        )
        with cls(**options) as batch:
            script = batch.job_script()
            address = batch.scheduler_address

    for line in expected:
        assert line in script
    assert address.startswith("tcp://127.0.0.1:")
    assert "--lifetime 50m --lifetime-stagger 4m" in script
    assert "--preload phasegan.drain" in script
    assert "export DASK_PHASEGAN__CLUSTER__DRAIN=120" in script
    # One single-threaded worker process per core, as the comments advise.
    assert re.search(r"--nthreads 1 .*--nworkers 8 ", script)


# --- (b), (c) a real SLURM ---------------------------------------------------------


def _install_slurm() -> str | None:
    """Install Debian's slurm-wlm and munge if missing; None, or why not."""
    if shutil.which("slurmctld") and shutil.which("munged"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "slurmctld is not installed and cannot be (needs root and apt-get)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update"],
                    ["apt-get", "install", "-y", "slurm-wlm", "munge"]):  # fmt: skip
        done = subprocess.run(
            command, check=False, env=env, capture_output=True, text=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr[-500:]}"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A single-node SLURM on 127.0.0.1 for this module; stopped afterwards.

    Yields the environment (``SLURM_CONF``) and the directory of its files.
    """
    why_not = _install_slurm()
    if why_not and os.environ.get("CI"):
        pytest.fail(f"CI must run the SLURM tests, but {why_not}")
    if why_not:
        pytest.skip(why_not)

    directory = Path(f"/tmp/phasegan-slurm-pytest-{os.getpid()}")
    env = dict(
        os.environ,
        PHASEGAN_SLURM_DIR=str(directory),
        PHASEGAN_SLURMCTLD_PORT=str(free_port()),
        PHASEGAN_SLURMD_PORT=str(free_port()),
        # Room for two replacement jobs while two old ones wind down.
        PHASEGAN_SLURM_CPUS="4",
    )
    started = subprocess.run(
        [str(DEPLOY / "start-slurm.sh")], check=False, env=env,
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        env["SLURM_CONF"] = str(directory / "etc" / "slurm.conf")
        yield env, directory
    finally:
        subprocess.run(
            [str(DEPLOY / "stop-slurm.sh"), "--clean"], check=False, env=env,
            stdin=subprocess.DEVNULL, timeout=60,
        )  # fmt: skip


def slurm_jobs(env, name: str) -> dict[str, dict]:
    """Job id -> fields, of the jobs named ``name`` that SLURM remembers."""
    done = subprocess.run(
        ["scontrol", "-o", "show", "job"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    jobs = {}
    for line in done.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("JobName") == name:
            jobs[fields["JobId"]] = fields
    return jobs


def run_on_slurm(slurm, tmp_path, spec, config):
    env, _ = slurm
    config_dir = tmp_path / "dask"
    config_dir.mkdir()
    (config_dir / "phasegan-test.yaml").write_text(yaml.safe_dump(config))
    run_env = probe_env(
        tmp_path, SLURM_CONF=env["SLURM_CONF"], DASK_CONFIG=str(config_dir)
    )
    return phasegan_run(spec, tmp_path / "slurm.zarr", "--cluster", "slurm",
                        env=run_env)  # fmt: skip


@pytest.mark.slurm
def test_slurm_cluster_runs_sweep_over_tls(slurm, ode_reference, tmp_path):
    """--cluster slurm with the README's TLS config: the workers come through
    sbatch and talk to the scheduler over tls:// only."""
    env, _ = slurm
    spec, reference = ode_reference
    name = f"pgtest-{uuid.uuid4().hex[:8]}"
    config = jobqueue_config(tmp_path, name)
    config["distributed"]["comm"] = tls_config(make_tls(tmp_path / "tls"))

    done = run_on_slurm(slurm, tmp_path, spec, config)

    assert done.returncode == 0, done.stderr
    assert re.search(r"scheduler at tls://127\.0\.0\.1:\d+", done.stderr)
    assert_same_store(tmp_path / "slurm.zarr", reference)
    runs = assert_each_block_once(tmp_path / "probe.jsonl", block_count(spec))
    assert {r["address"].split(":")[0] for r in runs.values()} == {"tls"}

    # Every block ran inside a batch job that sbatch submitted under our name.
    used = {record["slurm_job"] for record in runs.values()}
    assert None not in used, "a block ran outside any SLURM job"
    jobs = slurm_jobs(env, name)
    assert used <= set(jobs), f"jobs {used - set(jobs)} are not {name!r} jobs"
    for job in used:
        assert jobs[job]["BatchFlag"] == "1", f"job {job} did not come from sbatch"


@pytest.mark.slurm
def test_worker_jobs_expire_midway_and_nothing_is_lost(slurm, sim_reference, tmp_path):
    """Workers live 7-9 s in jobs of 1 min; the sweep takes several lifetimes.

    Each worker drains 4 s before its lifetime ends (blocks take ~1.5 s);
    adaptive scaling keeps two running workers and submits a new job for
    each that drains.
    """
    env, _ = slurm
    spec, reference = sim_reference
    name = f"pgtest-{uuid.uuid4().hex[:8]}"
    config = jobqueue_config(
        tmp_path, name, walltime="00:01:00",
        **{"worker-extra-args": ["--preload", "cluster_probe", "--lifetime", "8s",
                                 "--lifetime-stagger", "1s"]},
    )  # fmt: skip
    config["phasegan"]["cluster"].update(
        {"minimum-jobs": 2, "maximum-jobs": 2, "drain": "4s"}
    )

    started = time.monotonic()
    done = run_on_slurm(slurm, tmp_path, spec, config)
    wall = time.monotonic() - started

    assert done.returncode == 0, done.stderr
    assert_same_store(tmp_path / "slurm.zarr", reference)
    runs = assert_each_block_once(tmp_path / "probe.jsonl", block_count(spec))

    # The sweep outlived its first jobs: blocks ran in more jobs than run at
    # once, and none of them reached its walltime.
    used = {record["slurm_job"] for record in runs.values()}
    assert len(used) > 2, f"blocks ran in jobs {used} only ({wall:.0f} s)"
    jobs = slurm_jobs(env, name)
    assert used <= set(jobs)
    timeouts = [j for j, fields in jobs.items() if fields["JobState"] == "TIMEOUT"]
    assert not timeouts, f"jobs {timeouts} were killed at their walltime"

    # Workers left by draining (their logs say so), not by being killed.
    logs = "".join(p.read_text() for p in (tmp_path / "jobs").glob("*.err"))
    assert logs.count("draining before its lifetime ends") >= len(used) - 2
    assert np.isfinite(wall)


def wait_for_job(env, job: str, timeout: float) -> dict:
    """Fields of SLURM job ``job`` once it has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["scontrol", "-o", "show", "job", job], check=False, env=env,
            capture_output=True, text=True,
        )  # fmt: skip
        fields = dict(re.findall(r"(\w+)=(\S*)", done.stdout))
        if fields.get("JobState") not in (None, "PENDING", "RUNNING", "COMPLETING"):
            return fields
        time.sleep(0.5)
    raise AssertionError(f"job {job} still running after {timeout} s")


@pytest.mark.slurm
def test_sweep_sbatch_runs_whole_sweep_in_one_allocation(
    slurm, ode_reference, tmp_path
):
    """deploy/slurm/sweep.sbatch, as a user submits it, with TLS on."""
    env, _ = slurm
    spec, reference = ode_reference
    job_env = probe_env(
        tmp_path,
        SLURM_CONF=env["SLURM_CONF"],
        PHASEGAN_INTERFACE="lo",
        PHASEGAN_TLS_DIR=str(make_tls(tmp_path / "tls")),
    )

    submitted = subprocess.run(
        ["sbatch", "--parsable", "--ntasks=2", "--ntasks-per-node=2",
         "--mem-per-cpu=1G", "--time=5", f"--chdir={tmp_path}",
         str(ROOT / "deploy" / "slurm" / "sweep.sbatch"), str(spec),
         "--store", "sbatch.zarr", "--no-plot"],
        check=False, env=job_env, capture_output=True, text=True,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    fields = wait_for_job(env, job, timeout=150)

    output = (tmp_path / f"phasegan-sweep-{job}.out").read_text()
    print(output)
    assert fields["JobState"] == "COMPLETED", fields
    assert fields["ExitCode"] == "0:0"
    assert re.search(r"scheduler at tls://127\.0\.0\.1:\d+", output)
    assert_same_store(tmp_path / "sbatch.zarr", reference)
    scheduler_log = (tmp_path / f"dask-{job}" / "scheduler.log").read_text()
    for rank in (0, 1):
        assert f"name: slurm-{job}-{rank}" in scheduler_log
