"""Linear-Gaussian distillation: closed forms of the distillation divergence, its exact decomposition
``K = B + R_r + V``, exact generalization gaps and the instantiated bounds (theory.md §3-§4).

float64, numpy/scipy only.  Typical use::

    rng = np.random.default_rng(0)
    problem = random_problem(d=20, k=5, n=100, nu=0.5, rng=rng)
    data = problem.sample(rng)
    teacher = teacher_kernel(data, lam_T=1.0, tau_T=problem.nu**2)
    student = student_kernel(data, teacher, lam_S=1.0, tau_S=0.5, rank=2)
    decompose(student, teacher, rank=2)           # total, bias, variance, rank_bottleneck
    instantiated_bounds(problem, data, teacher, student)

Kernels built by ``teacher_kernel`` / ``student_kernel`` are parametrised by their precision
(``MatrixNormal.from_precision(M, A, scale=1/tau)``), so ill-conditioned ``A = X X^T + lam I`` is
never inverted on the way to K, B, R_r, V.
"""

from .model import (
    Dataset,
    Labels,
    LinearGaussianProblem,
    MatrixNormal,
    Metric,
    label_channel,
    marginal_student_kernel,
    random_problem,
    random_spd,
    student_kernel,
    teacher_kernel,
)
from .divergence import (
    Decomposition,
    MCEstimate,
    StochasticLabelKL,
    decompose,
    expected_kl_mc,
    kl_matrix_normal,
    kl_monte_carlo,
    kl_terms,
    phi,
    prediction_energy_bottleneck,
    predictive_kl,
    ridge_shrinkage_bias,
    stochastic_label_kl,
)
from .risk import (
    GapSpectrum,
    InstantiatedBounds,
    empirical_risk,
    expected_gap,
    gap_function,
    gap_gradient,
    gap_hessian,
    gap_log_mgf,
    gap_spectrum,
    gap_variance,
    instantiated_bounds,
    population_risk,
)

__all__ = [
    # model
    "Dataset", "LinearGaussianProblem", "MatrixNormal", "Labels", "Metric", "random_problem", "random_spd",
    "teacher_kernel", "student_kernel", "marginal_student_kernel", "label_channel",
    # divergence
    "Decomposition", "MCEstimate", "StochasticLabelKL", "phi", "kl_matrix_normal", "kl_terms", "decompose",
    "predictive_kl", "ridge_shrinkage_bias", "prediction_energy_bottleneck", "stochastic_label_kl",
    "expected_kl_mc", "kl_monte_carlo",
    # risk
    "GapSpectrum", "InstantiatedBounds", "population_risk", "empirical_risk", "gap_function", "gap_gradient",
    "gap_hessian", "expected_gap", "gap_spectrum", "gap_variance", "gap_log_mgf", "instantiated_bounds",
]
