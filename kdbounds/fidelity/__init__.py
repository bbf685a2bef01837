r"""Functional transfer: student–teacher fidelity metrics and seed-level statistics (methods.md §5).

**Per-pair metrics** on held-out inputs, each a :class:`MetricEstimate` (value, standard error, n).
With ``p_S, p_T`` the softmax outputs (at temperature t) and ``ŷ = argmax p``:

- agreement ``mean 1[ŷ_S = ŷ_T]``; disagreement ``1 − agreement``;
- agreement split by whether the teacher is right (``ŷ_T = y``) or wrong (``ŷ_T ≠ y``): the
  "negative asymmetric payoff" of seed 001 is a student that copies the teacher's *errors* more
  readily than its correct answers (relative to controls);
- activation distance ``mean ‖p_S − p_T‖₂``;
- Jensen–Shannon divergence ``½ KL(p_S‖m) + ½ KL(p_T‖m)``, ``m = (p_S + p_T)/2``, in nats (≤ ln 2);
- cosine similarity ``mean ⟨p_S, p_T⟩ / (‖p_S‖ ‖p_T‖)``;
- ``KL(p_S ‖ p_T)`` (the predictive distillation divergence of :mod:`kdbounds.divergence`);
- accuracy and expected calibration error (15 equal-width confidence bins, one model vs labels).

Standard errors of per-example means are ``sd(ddof=1)/sqrt(n)``; ECE is not a per-example mean, so
its standard error is the standard deviation of a seeded bootstrap (``n_boot`` resamples).

**Seed-level statistics**: :func:`compare_groups` (Welch's t-test, Mann–Whitney U, Cohen's d,
Hedges' g, common-language effect size, rank-biserial correlation, Welch CI of the mean difference)
and :func:`compare_methods`, which compares a reference method (KD) against controls (random-control
distillation, SIDDO, student alone) on every metric and returns a :class:`TransferSummary` that
prints as a table (Holm-adjusted p-values across all comparisons are included).

Modules: :mod:`.metrics` (per-pair metrics), :mod:`.report` (the pair report and the
comparison over seeds); the seed-level tests live in :mod:`kdbounds.stats`. Nothing here prints or
writes files.
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
