"""Hessian operators and estimators with ``torch.func`` (theory.md §6: sharpness of a teacher).

Operators (flat-vector linear operators; ``op @ v``, ``op.matmat(V)``, ``op.to_scipy()``):
    HessianOperator       Hessian of the batch-weighted data loss (eval-mode BatchNorm)
    GapHessianOperator    held-out minus training loss Hessian (Theorems 3A/3B)
    MatrixOperator        a dense symmetric matrix as an operator
Estimators (functions of an operator and a matvec budget; frozen-dataclass results):
    hutchinson_trace, hutchpp_trace, frobenius_norm_sq, diagonal_estimate,
    top_eigenvalues (Lanczos; start_vector), power_iteration, spectral_density (SLQ), gradient_norm
Dense: dense_hessian (torch.func.hessian, small models).
"""

from .dense import dense_hessian
from .density import gaussian_density, spectral_density
from .eigen import EIGEN_STARTS, EIGEN_STOPS, lanczos, power_iteration, start_vector, top_eigenvalues
from .base import CurvatureOperator, MatrixOperator, as_operator
from .gap import GapHessianOperator
from .hessian import HVP_BACKENDS, HVP_MODES, HessianOperator, resolve_backend
from .._params import select_parameters
from .results import (
    DiagonalEstimate,
    EigenEstimate,
    GradientNorm,
    PowerIterationResult,
    SpectralDensity,
    TraceEstimate,
)
from .trace import (
    diagonal_estimate,
    frobenius_norm_sq,
    gradient_norm,
    hutchinson_trace,
    hutchpp_trace,
    make_generator,
    probe_vectors,
)

__all__ = [
    "HVP_BACKENDS",
    "HVP_MODES",
    "resolve_backend",
    "CurvatureOperator",
    "GapHessianOperator",
    "HessianOperator",
    "MatrixOperator",
    "as_operator",
    "select_parameters",
    "dense_hessian",
    "hutchinson_trace",
    "hutchpp_trace",
    "frobenius_norm_sq",
    "diagonal_estimate",
    "gradient_norm",
    "top_eigenvalues",
    "power_iteration",
    "lanczos",
    "start_vector",
    "EIGEN_STARTS",
    "EIGEN_STOPS",
    "spectral_density",
    "gaussian_density",
    "make_generator",
    "probe_vectors",
    "TraceEstimate",
    "DiagonalEstimate",
    "EigenEstimate",
    "PowerIterationResult",
    "SpectralDensity",
    "GradientNorm",
]
