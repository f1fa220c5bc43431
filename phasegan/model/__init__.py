"""The maths of MODEL.md: parameters, the ODE, the simulations, the SDE, stability."""

from phasegan.model import _cache
from phasegan.model.parameters import Parameters
from phasegan.model.trajectories import Status, Trajectories

__all__ = ["Parameters", "Status", "Trajectories"]

# Before any kernel module is imported: numba needs a writable cache.
_cache.apply()
