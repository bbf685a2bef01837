r"""Functional transfer: student–teacher fidelity metrics and seed-level comparisons (methods.md §5).

Modules: :mod:`.metrics` (per-pair metrics, each a :class:`MetricEstimate`), :mod:`.report` (the pair
report :func:`fidelity_report` and the KD-vs-controls comparison :func:`compare_methods`); the
seed-level tests themselves live in :mod:`kdbounds.stats`. Nothing here prints or writes files.
"""

from ..stats import GroupComparison, compare_groups, holm_adjust
from .metrics import (
    MetricEstimate,
    accuracy,
    activation_distance,
    agreement,
    agreement_by_teacher_correctness,
    cosine_similarity,
    disagreement,
    expected_calibration_error,
    js_divergence,
    kl_divergence,
    softmax_probs,
)
from .report import DEFAULT_METRICS, FidelityReport, TransferSummary, compare_methods, fidelity_report

__all__ = [
    "MetricEstimate",
    "FidelityReport",
    "GroupComparison",
    "TransferSummary",
    "softmax_probs",
    "agreement",
    "disagreement",
    "agreement_by_teacher_correctness",
    "activation_distance",
    "js_divergence",
    "cosine_similarity",
    "kl_divergence",
    "accuracy",
    "expected_calibration_error",
    "fidelity_report",
    "compare_groups",
    "compare_methods",
    "holm_adjust",
    "DEFAULT_METRICS",
]
