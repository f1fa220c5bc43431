"""The macroscopic ODE of MODEL.md section 3 for a block of points.

Placeholder until the compiled block kernel lands: integrates with the scipy
reference, one point at a time. Same interface and results within tolerance.
"""

from __future__ import annotations

import numpy as np

from phasegan.model.methods import RunOptions
from phasegan.model.parameters import Parameters
from phasegan.model.reference import solve_reference
from phasegan.model.trajectories import Trajectories


def solve(
    params: Parameters, times: np.ndarray, options: RunOptions = RunOptions()
) -> Trajectories:
    """Integrate every point of ``params`` and sample at ``times`` (shape (T,))."""
    return solve_reference(params, times, rtol=options.rtol, atol=options.atol)
