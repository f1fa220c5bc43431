"""phasegan: phase diagrams of GAN training in a solvable high-dimensional model."""

from phasegan.model import Parameters, Status, Trajectories

__version__ = "0.1.0"

__all__ = ["Parameters", "Status", "Trajectories", "__version__"]
