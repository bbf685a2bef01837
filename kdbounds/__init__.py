"""kdbounds: the generalization theory of knowledge distillation, turned into experiments.

Import a topic module (``kdbounds.bounds``, ``kdbounds.pid``, ...) or a name from the top level
(``kdbounds.subgaussian_bound``). Every name below is resolved lazily (PEP 562 ``__getattr__``):
``import kdbounds`` imports nothing heavy, and ``import kdbounds.bounds`` / ``import kdbounds.pid``
never load torch. Layers (see ``docs/architecture.md``):

- math (numpy/scipy only): ``kdbounds.bounds``, ``kdbounds.pid``, ``kdbounds.stats``, ``kdbounds.certificates``;
- measurement (torch): ``kdbounds.curvature``, ``kdbounds.divergence``, ``kdbounds.fidelity``,
  ``kdbounds.checks``, ``kdbounds.pacbayes``;
- training (torch, beside measurement): ``kdbounds.data``, ``kdbounds.models``, ``kdbounds.distill``;
- runs: ``kdbounds.runs`` (run cache, sweeps, splits, priors; CLI ``python -m kdbounds.train``);
- studies (write files): ``kdbounds.studies``, one module per study.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Topic modules, importable as attributes (``kdbounds.bounds``) without an explicit import.
_SUBMODULES = (
    "bounds", "pid", "stats", "certificates", "curvature", "divergence", "fidelity", "checks", "pacbayes",
    "data", "models", "distill", "runs", "studies", "train",
)

# Public names re-exported at the top level, grouped by topic: name -> module that defines it.
_EXPORTS: dict[str, str] = {}


def _export(module: str, *names: str) -> None:
    for n in names:
        _EXPORTS[n] = module


# ---- bounds (numpy/scipy): Theorems 1, 2, 3A, 3B as functions of measured quantities ----
_export(
    "bounds",
    "subgaussian_bound", "central_lower_bound", "central_eta_from_subgaussian",
    "sharpness_radius_bound", "tightness_radius", "subgamma_bound", "log_mgf_quadratic",
    "quadratic_spectrum", "gaussian_quadratic_bound", "GaussianQuadraticBound",
)

# ---- certificates (numpy): PAC-Bayes-kl certificates, the teacher as prior (theory.md §7) ----
_export(
    "certificates",
    "kl_bernoulli", "kl_inverse_upper", "kl_inverse_lower", "pac_bayes_complexity", "pac_bayes_kl_bound",
    "mc_risk_upper", "pinsker_bound", "classic_bound", "quadratic_bound", "grid_delta",
    "diag_gaussian_kl", "GaussianKL", "compose_certificate", "CertificateBound",
)

# ---- pid (numpy/scipy/cvxpy): partial information decomposition of distilled knowledge ----
_export(
    "pid",
    "broja_pid", "broja_pid_from_counts", "dual_lower_bound", "gaussian_mi", "gaussian_pid",
    "joint_counts", "validate_joint", "fit_discretizer", "kmeans", "pid_of_representations",
    "Discretizer", "PIDResult", "PIDSolverError", "RepresentationPID",
)

# ---- curvature (torch): Hessian operators and matrix-free estimators ----
_export(
    "curvature",
    "CurvatureOperator", "HessianOperator", "GapHessianOperator", "MatrixOperator", "as_operator",
    "select_parameters", "dense_hessian", "hutchinson_trace", "hutchpp_trace", "frobenius_norm_sq",
    "diagonal_estimate", "gradient_norm", "top_eigenvalues", "power_iteration", "lanczos",
    "spectral_density", "gaussian_density", "TraceEstimate", "DiagonalEstimate", "EigenEstimate",
    "PowerIterationResult", "SpectralDensity", "GradientNorm",
)

# ---- divergence (torch): predictive and Laplace weight-space distillation divergence ----
_export(
    "divergence",
    "predictive_divergence", "divergence_from_logits", "laplace_divergence",
    "gaussian_predictive_divergence", "DivergenceEstimate", "LaplaceDivergence", "GaussianDivergence",
)

# ---- fidelity (torch): functional transfer between teacher and student ----
_export(
    "fidelity",
    "fidelity_report", "agreement", "disagreement", "agreement_by_teacher_correctness",
    "activation_distance", "js_divergence", "expected_calibration_error", "FidelityReport",
    "MetricEstimate",
)

# ---- statistics across seeds (numpy/scipy) ----
_export("stats", "compare_groups", "holm_adjust", "GroupComparison")
_export("fidelity", "compare_methods", "TransferSummary")

# ---- data, models, training ----
_export("data", "load_cifar", "find_cifar", "download_cifar", "stratified_subset", "train_val_split", "TensorLoader")
_export("models", "build_model", "available_models", "register_model", "CifarModel")
_export(
    "distill",
    "TrainConfig", "TrainResult", "load_checkpoint_model", "predict_logits",
    "available_methods", "get_method", "register_method", "kd_loss",
)

__all__ = ["__version__", *_SUBMODULES, *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import a topic module or a re-exported name on first access (PEP 562)."""
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
