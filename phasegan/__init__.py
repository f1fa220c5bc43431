"""phasegan: phase diagrams of GAN training in a solvable high-dimensional model.

The public API::

    spec = phasegan.read_spec("sweeps/quickstart.yaml", ["model.tau=0.3"])
    result = phasegan.run_sweep(spec, workers=2)   # a local Dask cluster
    ds = phasegan.load(spec.store)                 # an xarray.Dataset

Everything else is internal. Dask and xarray are imported on first use, so
`read_spec` stays quick.
"""

from phasegan.errors import InputError
from phasegan.model import Parameters, Status, Trajectories
from phasegan.spec import Spec, parse_spec, read_spec

__version__ = "0.1.0"

__all__ = [
    "InputError",
    "Parameters",
    "Spec",
    "Status",
    "Trajectories",
    "__version__",
    "load",
    "parse_spec",
    "read_spec",
    "run_sweep",
]


def load(path):
    """Open the Zarr store of a sweep as a lazy `xarray.Dataset`."""
    from phasegan.store import load as _load

    return _load(path)


def run_sweep(
    spec,
    *,
    store=None,
    workers=None,
    scheduler=None,
    cluster=None,
    overwrite=False,
    progress=False,
):
    """Run (or resume) a sweep and return a `phasegan.engine.RunResult`.

    Parameters
    ----------
    spec : Spec or path
        A validated spec, or the path of a spec YAML file.
    store : path, optional
        Write here instead of the spec's ``store``.
    workers, scheduler, cluster, overwrite
        As for ``phasegan run``: a local cluster of ``workers`` processes by
        default; ``scheduler`` a running scheduler's address or one of Dask's
        single-machine schedulers (``threads``, ``processes``, ``sync``).
    progress : bool
        Draw a progress bar on stdout.
    """
    from phasegan import engine

    if not isinstance(spec, Spec):
        spec = read_spec(spec)
    spec = spec.with_store(store)
    return engine.run(
        spec,
        workers=workers,
        scheduler=scheduler,
        cluster=cluster,
        overwrite=overwrite,
        show_progress=progress,
    )
