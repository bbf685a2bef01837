"""Partial information decomposition (PID) of distilled knowledge (math layer: numpy/scipy/cvxpy).

- :func:`broja_pid`, :func:`broja_pid_from_counts`  BROJA PID of a discrete law P(Y, T, S).
- :func:`gaussian_pid`                               MMI PID of a jointly Gaussian (Y, T, S).
- :func:`pid_of_representations`                     features -> PCA -> k-means -> counts -> PID,
  with the shuffled-label plug-in bias and a bootstrap interval.
"""

from .broja import (
    PIDResult,
    PIDSolverError,
    broja_pid,
    broja_pid_from_counts,
    dual_lower_bound,
    validate_joint,
)
from .discretize import (
    Discretizer,
    RepresentationPID,
    fit_discretizer,
    joint_counts,
    kmeans,
    pid_of_representations,
)
from .gaussian import gaussian_mi, gaussian_pid

__all__ = [
    "Discretizer",
    "PIDResult",
    "PIDSolverError",
    "RepresentationPID",
    "broja_pid",
    "broja_pid_from_counts",
    "dual_lower_bound",
    "fit_discretizer",
    "gaussian_mi",
    "gaussian_pid",
    "joint_counts",
    "kmeans",
    "pid_of_representations",
    "validate_joint",
]
