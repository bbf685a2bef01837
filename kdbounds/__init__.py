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

Citations "theory.md §N" and "methods.md §N" in docstrings refer to ``docs/theory.md`` and
``docs/methods.md`` in the repository.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Topic modules, importable as attributes (``kdbounds.bounds``) without an explicit import.
_SUBMODULES = (
    "bounds", "pid", "stats", "certificates", "curvature", "divergence", "fidelity", "checks", "pacbayes",
    "data", "models", "distill", "runs", "studies", "train", "figures",
)

# Topic packages whose every public name (``__all__``, and the lazy names of ``certificates``) is
# re-exported here; tests/test_package_imports.py checks that the table below covers them all.
_TOPICS = ("bounds", "certificates", "pacbayes", "pid", "stats", "curvature", "divergence", "fidelity", "checks",
           "data", "models", "distill", "runs")

# Names two topics define differently; the top level keeps the first, the other stays in its topic:
# ``holm_adjust`` is kdbounds.stats' (``kdbounds.checks.holm_adjust`` is the verdicts' array form);
# ``train`` is the CLI module ``kdbounds.train`` (the trainer function is ``kdbounds.distill.train``);
# ``LOSSES`` is the checks' (``kdbounds.pacbayes.LOSSES`` names the certificate losses).
_NOT_AT_TOP = {("checks", "holm_adjust"), ("distill", "train"), ("pacbayes", "LOSSES")}

# Public names re-exported at the top level, grouped by topic: name -> module that defines it.
_EXPORTS: dict[str, str] = {}


def _export(module: str, *names: str) -> None:
    for n in names:
        _EXPORTS[n] = module


# ---- bounds (numpy/scipy): Theorems 1, 2, 3A, 3B as functions of measured quantities ----
_export(
    "bounds",
    "subgaussian_bound", "central_lower_bound", "central_eta_from_subgaussian", "sharpness_radius_bound",
    "tightness_radius", "subgamma_bound", "log_mgf_quadratic", "quadratic_spectrum",
    "gaussian_quadratic_bound", "GaussianQuadraticBound",
)

# ---- certificates: PAC-Bayes-kl certificates, the teacher as prior (theory.md §7) ----
# numpy: the Bernoulli kl, its inverses, the chained certificate
_export(
    "certificates",
    "CertificateBound", "GaussianKL", "classic_bound", "compose_certificate", "diag_gaussian_kl",
    "grid_delta", "kl_bernoulli", "kl_inverse_lower", "kl_inverse_upper", "mc_risk_upper",
    "pac_bayes_complexity", "pac_bayes_kl_bound", "pinsker_bound", "quadratic_bound", "test_set_bound",
)
# the D_T/D_S split record and the prior-scale grid (numpy)
_export("certificates", "DataSplit", "make_split", "scale_grid", "indices_sha256")
# torch (measurement): Gaussian kernels over a network's parameters, the Gibbs classifier, certify
_export(
    "pacbayes",
    "GaussianKernel", "KernelKL", "kernel_kl", "check_compatible", "Certificate", "select_scales", "ScaleChoice",
    "certify", "DRAW_MODES", "DRAW_SCHEMES", "draw_logits", "gibbs_losses", "per_example_logits",
)
# training glue (runs): where a prior is trained, a learnt pbb/pbkd posterior read back, or learnt for any nn.Module
_export("runs.priors", "PriorRun", "prior_run", "random_prior")
_export("runs.posteriors", "posterior_from_run", "prior_from_run")
_export("runs.posterior_learning", "learn_posterior", "POSTERIOR_METHODS", "POSTERIOR_SCHEDULES")

# ---- pid (numpy/scipy/cvxpy): partial information decomposition of distilled knowledge ----
_export(
    "pid",
    "Discretizer", "PIDResult", "PIDSolverError", "RepresentationPID", "broja_pid", "broja_pid_from_counts",
    "dual_lower_bound", "fit_discretizer", "gaussian_mi", "gaussian_pid", "joint_counts", "kmeans",
    "pid_of_representations", "validate_joint",
)

# ---- statistics across seeds (numpy/scipy) ----
_export("stats", "GroupComparison", "compare_groups", "holm_adjust", "mean_interval", "clopper_pearson")

# ---- curvature (torch): Hessian operators and matrix-free estimators ----
_export(
    "curvature",
    "HVP_MODES", "HVP_BACKENDS", "resolve_backend", "CurvatureOperator", "GapHessianOperator", "HessianOperator", "MatrixOperator",
    "as_operator", "select_parameters", "dense_hessian", "hutchinson_trace", "hutchpp_trace",
    "frobenius_norm_sq", "diagonal_estimate", "gradient_norm", "top_eigenvalues", "power_iteration",
    "start_vector", "EIGEN_STARTS", "EIGEN_STOPS",
    "lanczos", "spectral_density", "gaussian_density", "make_generator", "probe_vectors", "TraceEstimate",
    "DiagonalEstimate", "EigenEstimate", "PowerIterationResult", "SpectralDensity", "GradientNorm",
)

# ---- divergence (torch): predictive and Laplace weight-space distillation divergence ----
_export(
    "divergence",
    "DivergenceEstimate", "LaplaceDivergence", "GaussianDivergence", "predictive_divergence",
    "divergence_from_logits", "mixture_log_probs", "summarize_per_example", "collect_logits",
    "laplace_divergence", "gaussian_predictive_divergence",
)

# ---- fidelity (torch): functional transfer between teacher and student ----
_export(
    "fidelity",
    "MetricEstimate", "FidelityReport", "TransferSummary", "softmax_probs", "agreement", "disagreement",
    "agreement_by_teacher_correctness", "activation_distance", "js_divergence", "cosine_similarity",
    "kl_divergence", "accuracy", "expected_calibration_error", "fidelity_report", "compare_methods",
    "DEFAULT_METRICS",
)

# ---- checks (torch): every bound check on a pair, labelled by kind, with a verdict ----
_export(
    "checks",
    "C_MODES", "KERNEL_CHECK_NAMES", "KINDS", "LOSSES", "PAIR_LOSSES", "SIDES", "VERDICTS", "CheckRecord",
    "KernelGaps", "LossGap", "PairChecks", "PermutationKendall", "TeacherCurvature", "FROB_UCL_METHODS",
    "assign_verdicts", "clipped_cross_entropy", "frobenius_upper_limit", "evaluate_pair", "gentle_student", "gibbs_bound",
    "gibbs_classifier", "gibbs_error", "holm_reject", "kendall_tau_b", "kendall_tests", "kernel_checks",
    "kernel_constants", "kernel_gaps", "kernel_std_from_loss_increase", "loss_gap", "loss_range",
    "make_record", "mean_estimate", "measure_teacher_curvature", "not_defined", "one_sided_pvalues",
    "paired_gap_difference", "per_example_losses", "permutation_kendall", "recipe_kendall", "product_law_proxy",
    "student_in_teacher_space", "theorem1_sigma_n", "theorem2_central", "verdict_counts", "zero_one_loss",
)

# ---- data, models, training ----
_export(
    "data",
    "CIFAR10_CLASSES", "CIFAR100_CLASSES", "CIFAR_MD5", "CIFAR_URLS", "DATASETS", "SPLITS", "ChecksumError",
    "CifarSource", "CorruptArchiveError", "DataNotFoundError", "cache_dir", "candidate_roots",
    "download_cifar", "find_cifar", "load_cifar", "num_classes", "class_permutations", "stratified_subset",
    "train_val_split", "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "NORMALIZATION",
    "TensorLoader", "normalization", "normalize_uint8", "random_crop_flip", "normalized_images",
)
_export(
    "models",
    "CifarMLP", "CifarModel", "FeatureOutput", "MODEL_NAMES", "available_models", "build_model",
    "count_parameters", "init_weights", "register_model", "AirbenchNet", "arch_name",
)
_export(
    "distill",
    "ConfigMismatchError", "DistillMethod", "EpochInfo", "TrainResult", "evaluate", "load_checkpoint_model",
    "predict_logits", "StepContext", "TrainConfig", "TrainingDiverged", "available_methods",
    "build_method", "describe_methods", "feature_shapes", "get_method", "kd_loss", "logits_of",
    "register_method", "FastRecipeSettings", "evaluate_tta", "fast_config", "tta_logits",
)
_export("runs.bank", "BankTeacher", "bank_root", "bank_teacher")
_export("runs.allocator", "tune_cpu_allocator")

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
