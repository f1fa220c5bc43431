"""Measure every row of the performance table in one run and print the ratios.

    python benchmarks/run.py            # the full table (about 6 to 10 minutes)
    python benchmarks/run.py --quick    # smaller sizes, a few minutes
    python benchmarks/run.py --only ode # one group: ode, simulation, sweep

Every figure is printed beside its baseline, measured in the same run on the
same machine: on a shared machine an absolute time means little, a ratio more.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

GROUPS = {
    "ode": "bench_ode",
    "simulation": "bench_simulation",
    "sweep": "bench_sweep",
}


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def describe_machine() -> str:
    import numba
    import numpy

    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {numpy.__version__}, "
        f"numba {numba.__version__}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", choices=sorted(GROUPS), action="append")
    args = parser.parse_args(argv)

    print(f"machine: {describe_machine()}", flush=True)
    header = f"{'row':58} {'figure':>10} {'baseline':>10} {'ratio':>8}  target"
    print(header)
    print("-" * len(header))
    for group in args.only or GROUPS:
        module = importlib.import_module(GROUPS[group])
        for row in module.run(quick=args.quick):
            print(
                f"{row['row'][:58]:58} {_number(row['figure']):>10} "
                f"{_number(row['baseline']):>10} {_number(row['ratio']):>8}  "
                f"{row['target']}",
                flush=True,
            )
            if row.get("note"):
                print(f"{'':60}{row['note']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
