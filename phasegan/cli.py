"""The ``phasegan`` command: argument parsing and exit codes only.

Exit status (CONTRACT.md): 0 done; 2 bad input (spec, arguments, store
mismatch), with one message on stderr naming the field, and nothing written;
1 any other failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

from phasegan.errors import InputError, PhaseganError

log = logging.getLogger("phasegan")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is an `InputError` (one line, exit 2)."""

    def error(self, message):
        field, sep, rule = message.partition(": ")
        required = "the following arguments are required: "
        if message.startswith(required):
            field, rule = message.removeprefix(required), "is required"
        elif not (sep and field.startswith("argument ")):
            field, rule = "arguments", message
        else:
            field = field.removeprefix("argument ").split("/")[-1]
        raise InputError(field, rule, hint=f"see {self.prog} --help")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="phasegan",
        description="Phase diagrams of GAN training in a solvable model, "
        "swept on Dask and stored in Zarr.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug logging, tracebacks on failure",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )

    run = commands.add_parser("run", help="run (or resume) a sweep")
    run.add_argument("spec", metavar="SPEC.yaml")
    run.add_argument("--store", metavar="PATH", help="store path (default: spec's)")
    run.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="worker processes: of the local cluster (default: number of cores),"
        " or at most this many with --cluster",
    )
    where = run.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running scheduler tcp://HOST:PORT, or threads/processes/"
        "sync for Dask's single-machine schedulers",
    )
    where.add_argument("--cluster", metavar="NAME", help="slurm or pbs (dask-jobqueue)")
    run.add_argument(
        "--overwrite", action="store_true", help="replace a store made by another spec"
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one spec value by dotted path, e.g. model.tau=0.3",
    )
    run.add_argument(
        "--detach",
        action="store_true",
        help="submit to --scheduler and exit; the sweep runs without a client",
    )
    run.add_argument("--no-plot", action="store_true", help="skip the phase diagram")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    status = commands.add_parser("status", help="progress of a store")
    status.add_argument("store", metavar="STORE")
    status.add_argument(
        "--watch", action="store_true", help="a progress bar until done"
    )

    cancel = commands.add_parser(
        "cancel", help="stop the blocks of a detached sweep that have not run"
    )
    cancel.add_argument("store", metavar="STORE")
    cancel.add_argument("--scheduler", metavar="ADDRESS", required=True)

    plot = commands.add_parser("plot", help="phase diagram or trajectories of stores")
    plot.add_argument(
        "stores",
        metavar="STORE",
        nargs="+",
        help="one store; with --trajectories, ODE and simulation stores to overlay",
    )
    plot.add_argument("-o", "--output", metavar="FILE.png")
    plot.add_argument(
        "--trajectories", action="store_true", help="q, P, r over time at chosen points"
    )
    plot.add_argument("--x", metavar="AXIS", help="horizontal grid axis")
    plot.add_argument("--y", metavar="AXIS", help="vertical grid axis")
    plot.add_argument(
        "--point",
        action="append",
        default=[],
        metavar="AXIS=V,...",
        help="a point for --trajectories (repeatable), e.g. noise=0.5,tau_gen=0.1",
    )

    validate = commands.add_parser("validate", help="check a spec, print size and cost")
    validate.add_argument("spec", metavar="SPEC.yaml")
    validate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return parser


def _version() -> str:
    from phasegan import __version__

    return __version__


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})")
    return value


def main(argv=None) -> int:
    """Entry point of the ``phasegan`` command; returns the exit status."""
    verbose, command = False, None
    try:
        args = build_parser().parse_args(argv)
        verbose, command = args.verbose, args.command
        _configure_logging(verbose)
        return _COMMANDS[args.command](args)
    except InputError as exc:
        print(f"phasegan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Only a run has work to resume; status --watch or plot just stop.
        again = "; run the same command again to resume" if command == "run" else ""
        print(f"phasegan: interrupted{again}", file=sys.stderr)
        return 1
    except Exception as exc:
        if verbose:
            log.exception("failed")
        # Our own errors are written for the user; a class name helps only
        # with one from elsewhere (KeyError: 'x').
        what = "" if isinstance(exc, PhaseganError) else f"{type(exc).__name__}: "
        print(
            f"phasegan: error: {what}{exc}"
            + ("" if verbose else " (--verbose for the traceback)"),
            file=sys.stderr,
        )
        return 1


def _configure_logging(verbose: bool):
    """Our stage lines on stderr; other libraries only from warnings up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        logging.basicConfig(level=logging.DEBUG)


# --- commands -------------------------------------------------------------------


def _run(args) -> int:
    from phasegan.spec import figure_for, read_spec

    overrides = list(args.set)
    if args.store is not None:
        overrides.append(f"store={json.dumps(args.store)}")
        # A figure follows its store unless one is named on the command line:
        # the spec's own `figure` belongs to the spec's own store.
        if not any(item.partition("=")[0].strip() == "figure" for item in args.set):
            overrides.append(f"figure={json.dumps(figure_for(args.store))}")
    spec = read_spec(args.spec, overrides)
    from phasegan import engine, store

    if not (args.no_plot or args.detach):  # found now, not after the sweep
        engine.plan(spec, overwrite=args.overwrite)  # the store's errors first
        store.check_file_writable(
            spec.figure,
            "figure",
            "choose a writable path with --set figure=FILE.png, or use --no-plot",
        )

    if args.detach:
        engine.submit(spec, scheduler=args.scheduler, overwrite=args.overwrite)
        print(f"store:  {spec.store}")
        print(f"watch:  phasegan status {spec.store} --watch")
        print(f"stop:   phasegan cancel {spec.store} --scheduler {args.scheduler}")
        return 0

    result = engine.run(
        spec,
        workers=args.workers,
        scheduler=args.scheduler,
        cluster=args.cluster,
        overwrite=args.overwrite,
        show_progress=not args.no_progress,
    )
    figure, failed = None, False
    if not args.no_plot and result.progress.done:
        try:
            figure = _plot_store(spec.store, spec.figure)
        except Exception as exc:
            log.error("the phase diagram could not be drawn: %s", exc)
            log.debug("traceback", exc_info=True)
            failed = True
    _print_table(result.progress)
    print(f"store:  {spec.store}")
    if figure:
        print(f"figure: {figure}")
    if result.failures or not result.progress.complete:
        missing = result.progress.total - result.progress.done
        print(
            f"phasegan: error: {len(result.failures)} blocks failed, {missing} runs "
            "not computed; see the log above, then run again to retry them",
            file=sys.stderr,
        )
        return 1
    return 1 if failed else 0


def _plot_store(path, figure) -> str:
    from pathlib import Path

    from phasegan import plot
    from phasegan.store import load

    Path(figure).parent.mkdir(parents=True, exist_ok=True)
    ds = load(path)
    plot.phase_diagram(ds, out=figure)
    log.info("phase diagram written to %s", figure)
    return figure


def _print_table(progress):
    unit = "points" if progress.attrs.get("method") == "ode" else "runs"
    print(f"{'label':<14}{unit:>8}{'share':>9}")
    for name, count in progress.counts.items():
        share = count / progress.total if progress.total else 0.0
        print(f"{name:<14}{count:>8}{share:>9.1%}")
    missing = progress.total - progress.done
    if missing:
        print(f"{'not computed':<14}{missing:>8}{missing / progress.total:>9.1%}")
    print(f"{'total':<14}{progress.total:>8}")


def _status(args) -> int:
    from phasegan import store

    progress = store.progress(args.store)
    attrs = progress.attrs
    print(f"store      {args.store}")
    print(
        f"sweep      {attrs['name']} ({attrs['method']}), "
        f"spec {attrs['spec_hash'][:12]}, created {attrs['created']}"
    )
    versions = ", ".join(
        f"{lib} {attrs[f'{lib}_version']}"
        for lib in ("phasegan", "numpy", "scipy", "dask", "xarray", "zarr")
        if f"{lib}_version" in attrs
    )
    print(f"versions   {versions}")
    print(f"progress   {_progress_line(progress)}")
    print("labels     " + ", ".join(f"{k} {v}" for k, v in progress.counts.items()))
    if progress.error:
        print(f"errors     e.g. {progress.error}")
    _print_failed(progress)
    if args.watch:
        progress = _watch(args.store, progress)
        if progress.failed:  # the sweep ended with blocks that raised
            _print_failed(progress)
            return 1
    return 0


def _print_failed(progress):
    if progress.failed:
        print(
            f"FAILED     {progress.failed} runs, in blocks whose task raised: "
            f"{progress.failure}"
        )


def _progress_line(progress) -> str:
    share = progress.done / progress.total if progress.total else 1.0
    line = f"{progress.done} / {progress.total} ({share:.0%})"
    if progress.complete:
        return line + ", complete"
    stalled = progress.stalled()
    if progress.rate and not stalled:  # a stopped sweep has no rate, no ETA
        line += f", {progress.rate:.2g} per s"
    eta = progress.eta
    if not stalled:
        line += f", ETA {_duration(eta)}" if eta is not None else ", ETA unknown"
    if progress.last_write is not None:
        idle = time.time() - progress.last_write
        line += f", last write {_duration(idle)} ago"
    if stalled:
        line += (
            " - looks STALLED or STOPPED (cancelled or interrupted?): is a "
            "client or a detached run still going?"
        )
    return line


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def _watch(path, progress, interval: float = 2.0, quiet_interval: float = 60.0):
    """A bar until every run is done or in a block that failed; the last
    progress read."""
    from phasegan import store

    # On a terminal a bar redrawn in place; into a file or a pipe, where \r
    # would make one endless line, a plain line at a slower pace.
    tty, width, printed = sys.stdout.isatty(), 40, None
    while True:
        ended = progress.done + progress.failed == progress.total
        if tty:
            filled = int(width * progress.done / max(progress.total, 1))
            bar = f"[{'#' * filled}{' ' * (width - filled)}]"
            print(f"\r{bar} {_progress_line(progress)}   ", end="", flush=True)
        elif ended or printed is None or time.monotonic() - printed >= quiet_interval:
            print(f"progress   {_progress_line(progress)}", flush=True)
            printed = time.monotonic()
        if ended:
            if tty:
                print()
            return progress
        time.sleep(interval)
        progress = store.progress(path)


def _cancel(args) -> int:
    from phasegan import engine

    pending = engine.cancel(args.store, scheduler=args.scheduler)
    print(f"cancelled: {pending} blocks were not complete in {args.store}")
    print(
        f"resume:    phasegan run SPEC --store {args.store}  (the same spec and "
        "the same --set overrides that made the store)"
    )
    return 0


def _plot(args) -> int:
    from pathlib import Path

    from phasegan import plot
    from phasegan.store import check_file_writable, load

    datasets = [load(path) for path in args.stores]
    stem = str(Path(args.stores[0].rstrip("/")).with_suffix(""))
    if not args.trajectories and len(datasets) > 1:
        raise InputError(
            "STORE",
            "give one store for a phase diagram",
            hint="several stores are for --trajectories",
        )
    suffix = "-trajectories.png" if args.trajectories else ".png"
    out = args.output or f"{stem}{suffix}"
    if args.output:
        check_file_writable(
            out, "-o", "give a file in an existing, writable folder", False
        )
    else:
        check_file_writable(
            out, "figure", "the default is beside the store; choose one with -o"
        )
    if args.trajectories:
        points = [_parse_point(text) for text in args.point] or None
        plot.trajectories(datasets, points=points, out=out)
    else:
        plot.phase_diagram(datasets[0], x=args.x, y=args.y, out=out)
    print(f"figure: {out}")
    return 0


def _parse_point(text: str) -> dict:
    point = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            point[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise InputError("--point", "must look like AXIS=VALUE,AXIS=VALUE", text)
    return point


def _validate(args) -> int:
    from phasegan import grid
    from phasegan.spec import read_spec

    spec = read_spec(args.spec, args.set)
    blocks = grid.Grid.for_spec(spec)
    cost = grid.point_cost(spec) * spec.size
    axes = " x ".join(f"{a.name}[{len(a)}]" for a in spec.axes)
    print(f"{args.spec}: valid")
    print(
        f"sweep      {spec.name} ({spec.method}, d = {spec.d}), spec {spec.hash[:12]}"
    )
    print(
        f"grid       {axes} = {spec.size} points"
        + (f" x {spec.replicas} seeds = {spec.runs} runs" if spec.simulation else "")
    )
    print(
        f"blocks     {blocks.size} tasks of {'x'.join(map(str, blocks.chunks))} points"
    )
    print(f"time       t_max {spec.t_max:g}, {spec.samples} samples per trajectory")
    print(
        f"store      {spec.store}, up to {_size(spec.runs * spec.run_bytes)} "
        "of trajectories (before compression)"
    )
    cores = os.cpu_count() or 1
    print(
        f"cost       {_about(cost)} of CPU time, {_about(cost / cores)} on "
        f"{cores} cores (a rough model of the kernels, not of start-up)"
    )
    if cost > _WEEK:
        print(
            f"phasegan: warning: cost: {_about(cost)} of CPU time is more than a "
            "week; check time.t_max, sim.n and the grid before running it",
            file=sys.stderr,
        )
    return 0


_WEEK = 7 * 24 * 3600.0


def _about(seconds: float) -> str:
    text = _duration(seconds)
    return text if text.startswith("under") else f"about {text}"


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000


_COMMANDS = {
    "run": _run,
    "status": _status,
    "cancel": _cancel,
    "plot": _plot,
    "validate": _validate,
}


if __name__ == "__main__":
    sys.exit(main())
