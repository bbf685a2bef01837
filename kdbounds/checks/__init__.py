"""Bound checks for trained teacher–student pairs, each labelled by what it is (theory.md §4, §6).

One job per module:

=================  ==============================================================================
``losses``         per-example clipped CE, 0–1 loss, exact Gibbs 0–1 loss; means with SEs
``verdicts``       :class:`CheckRecord`, holds / violated / inconclusive / not_defined, Holm/Shaffer
``gibbs``          the Gibbs-classifier check (exact demonstration, every pair, any architectures)
``kernel_checks``  Theorems 3A/3B under Gaussian kernels, same-architecture pairs only
``conditional``    Theorems 1/2 with the sigma^2/n rate (conditional) and the product-law proxy
``teacher_stats``  Kendall tau with a permutation test at the teacher or recipe level, Holm across tests
``pair``           :func:`evaluate_pair`: every record of one pair
``gentle``         :func:`gentle_student`: the teacher moved by a few full-batch gradient steps (3B's tight case)
=================  ==============================================================================
"""

from .conditional import product_law_proxy, theorem1_sigma_n, theorem2_central
from .gentle import gentle_student
from .gibbs import gibbs_bound, gibbs_classifier
from .kernel_checks import (
    C_MODES,
    KERNEL_CHECK_NAMES,
    FROB_UCL_METHODS,
    KernelGaps,
    TeacherCurvature,
    frobenius_upper_limit,
    kernel_checks,
    kernel_constants,
    kernel_gaps,
    kernel_std_from_loss_increase,
    measure_teacher_curvature,
    student_in_teacher_space,
)
from .losses import (
    LOSSES,
    LossGap,
    clipped_cross_entropy,
    gibbs_error,
    loss_gap,
    loss_range,
    mean_estimate,
    paired_gap_difference,
    per_example_losses,
    zero_one_loss,
)
from .pair import PAIR_LOSSES, PairChecks, evaluate_pair
from .teacher_stats import PermutationKendall, kendall_tau_b, kendall_tests, permutation_kendall, recipe_kendall
from .verdicts import (
    KINDS,
    SIDES,
    VERDICTS,
    CheckRecord,
    assign_verdicts,
    holm_adjust,
    holm_reject,
    make_record,
    not_defined,
    one_sided_pvalues,
    verdict_counts,
)

__all__ = [
    "C_MODES", "KERNEL_CHECK_NAMES", "KINDS", "LOSSES", "PAIR_LOSSES", "SIDES", "VERDICTS",
    "CheckRecord", "KernelGaps", "LossGap", "PairChecks", "PermutationKendall", "TeacherCurvature",
    "FROB_UCL_METHODS", "assign_verdicts", "clipped_cross_entropy", "frobenius_upper_limit", "evaluate_pair", "gentle_student", "gibbs_bound", "gibbs_classifier",
    "gibbs_error", "holm_adjust", "holm_reject", "kendall_tau_b", "kendall_tests", "kernel_checks",
    "kernel_constants", "kernel_gaps", "kernel_std_from_loss_increase", "loss_gap", "loss_range",
    "make_record", "mean_estimate", "measure_teacher_curvature", "not_defined", "one_sided_pvalues",
    "paired_gap_difference", "per_example_losses", "permutation_kendall", "product_law_proxy", "recipe_kendall",
    "student_in_teacher_space", "theorem1_sigma_n", "theorem2_central", "verdict_counts", "zero_one_loss",
]
