"""Exact generalization gaps of the linear-Gaussian model and the instantiated bounds (theory.md §4).

Squared loss, population risk through ``Sigma_x``.  The gap function is::

    f(W) = tr((W - W*) Sigma_x (W - W*)^T) + k nu^2 - (1/n) ||Y - W X||_F^2,

a quadratic in ``W`` with gradient ``2 (W - W*) Sigma_x - (2/n)(W X - Y) X^T`` and Hessian (w.r.t.
column-stacked ``vec W``) ``2 (Sigma_x - Sigma_hat) kron I_k``, ``Sigma_hat = X X^T / n``.  Under a
kernel ``MN(M, I_k, Sigma)``: ``E f = f(M) + k tr((Sigma_x - Sigma_hat) Sigma)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._linalg import check_scalar
from .matrix_normal import MatrixNormal, kl_matrix_normal
from .model import Dataset, LinearGaussianProblem, check_data

__all__ = [
    "GapSpectrum",
    "InstantiatedBounds",
    "population_risk",
    "empirical_risk",
    "gap_function",
    "gap_gradient",
    "gap_hessian",
    "expected_gap",
    "gap_spectrum",
    "gap_variance",
    "gap_log_mgf",
    "instantiated_bounds",
]


def _check(problem: Any, data: Any) -> tuple[LinearGaussianProblem, Dataset]:
    if not isinstance(problem, LinearGaussianProblem):
        raise TypeError(f"problem must be a LinearGaussianProblem, got {type(problem).__name__}")
    data = check_data(data)
    if (data.d, data.k) != (problem.d, problem.k):
        raise ValueError(f"data has (d, k) = {(data.d, data.k)} but problem has {(problem.d, problem.k)}")
    return problem, data


def _check_kernel(problem: LinearGaussianProblem, kernel: Any, name: str = "kernel") -> MatrixNormal:
    if not isinstance(kernel, MatrixNormal):
        raise TypeError(f"{name} must be a MatrixNormal, got {type(kernel).__name__}")
    if kernel.mean.shape != (problem.k, problem.d):
        raise ValueError(f"{name} mean has shape {kernel.mean.shape}, expected (k, d) = {(problem.k, problem.d)}")
    if kernel.row_cov is not None:
        raise ValueError(f"{name} must have row covariance I_k (row_cov=None)")
    return kernel


def _weights(problem: LinearGaussianProblem, W: Any) -> np.ndarray:
    W = np.asarray(W, dtype=np.float64)
    if W.ndim < 2 or W.shape[-2:] != (problem.k, problem.d):
        raise ValueError(f"W must have shape (..., k, d) = (..., {problem.k}, {problem.d}), got {W.shape}")
    if not np.all(np.isfinite(W)):
        raise ValueError("W contains NaN or inf")
    return W


def _delta_cov(problem: LinearGaussianProblem, data: Dataset) -> np.ndarray:
    """``Sigma_x - Sigma_hat`` (symmetric)."""
    D = problem.Sigma_x - data.X @ data.X.T / data.n
    return 0.5 * (D + D.T)


def population_risk(problem: LinearGaussianProblem, W: Any) -> np.ndarray | float:
    """``L_mu(W) = tr((W - W*) Sigma_x (W - W*)^T) + k nu^2`` (vectorised over leading dims of W)."""
    if not isinstance(problem, LinearGaussianProblem):
        raise TypeError(f"problem must be a LinearGaussianProblem, got {type(problem).__name__}")
    W = _weights(problem, W)
    E = W - problem.W_star
    out = np.einsum("...ij,jk,...ik->...", E, problem.Sigma_x, E) + problem.k * problem.nu**2
    return float(out) if np.ndim(out) == 0 else out


def empirical_risk(data: Dataset, W: Any) -> np.ndarray | float:
    """``L_hat(W, D_n) = (1/n) ||Y - W X||_F^2`` (vectorised over leading dims of W)."""
    data = check_data(data)
    W = np.asarray(W, dtype=np.float64)
    if W.ndim < 2 or W.shape[-2:] != (data.k, data.d):
        raise ValueError(f"W must have shape (..., k, d) = (..., {data.k}, {data.d}), got {W.shape}")
    R = data.Y - W @ data.X
    out = np.sum(R * R, axis=(-2, -1)) / data.n
    return float(out) if np.ndim(out) == 0 else out


def gap_function(problem: LinearGaussianProblem, data: Dataset, W: Any) -> np.ndarray | float:
    """``f(W) = L_mu(W) - L_hat(W, D_n)`` (vectorised over leading dims of W)."""
    problem, data = _check(problem, data)
    return population_risk(problem, W) - empirical_risk(data, W)


def gap_gradient(problem: LinearGaussianProblem, data: Dataset, M: Any) -> np.ndarray:
    """``grad f(M) = 2 (M - W*) Sigma_x - (2/n) (M X - Y) X^T`` (k x d)."""
    problem, data = _check(problem, data)
    M = _weights(problem, M)
    if M.ndim != 2:
        raise ValueError("M must be a single k x d matrix")
    return 2.0 * (M - problem.W_star) @ problem.Sigma_x - (2.0 / data.n) * (M @ data.X - data.Y) @ data.X.T


def gap_hessian(problem: LinearGaussianProblem, data: Dataset) -> np.ndarray:
    """Dense Hessian of f w.r.t. column-stacked ``vec W``: ``2 (Sigma_x - Sigma_hat) kron I_k`` (kd x kd)."""
    problem, data = _check(problem, data)
    return 2.0 * np.kron(_delta_cov(problem, data), np.eye(problem.k))


def expected_gap(problem: LinearGaussianProblem, data: Dataset, kernel: MatrixNormal) -> float:
    """``gen(q | D) = E_q f = f(M) + k tr((Sigma_x - Sigma_hat) Sigma)`` for ``q = MN(M, I_k, Sigma)``."""
    problem, data = _check(problem, data)
    kernel = _check_kernel(problem, kernel)
    return float(gap_function(problem, data, kernel.mean)) + problem.k * float(
        np.sum(_delta_cov(problem, data) * kernel.col_cov)
    )


@dataclass(frozen=True)
class GapSpectrum:
    """Spectral form of the gap under ``MN(M, I_k, Sigma)``, ``Sigma = L L^T``:
    ``A_tilde = L^T (Sigma_x - Sigma_hat) L = Q diag(a_tilde) Q^T``; the Hessian-whitened operator
    is ``A = 2 A_tilde kron I_k`` (eigenvalues ``2 a_tilde``, multiplicity k);
    ``b_proj = (grad f(M) L Q)^T`` (d x k): row i holds the k components of ``b'`` along eigenvector i."""

    a_tilde: np.ndarray
    b_proj: np.ndarray
    k: int
    f_mean: float

    @property
    def eigenvalues(self) -> np.ndarray:
        return 2.0 * self.a_tilde

    @property
    def variance(self) -> float:
        """``Var f = ||b'||^2 + (1/2) ||A||_F^2 = ||grad L||^2 + 2 k ||A_tilde||_F^2``."""
        return float(np.sum(self.b_proj**2) + 2.0 * self.k * np.sum(self.a_tilde**2))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["a_tilde"] = self.a_tilde.tolist()
        d["b_proj"] = self.b_proj.tolist()
        return d


def gap_spectrum(problem: LinearGaussianProblem, data: Dataset, kernel: MatrixNormal) -> GapSpectrum:
    """:class:`GapSpectrum` of ``f`` under ``kernel`` (theory.md §4, linear-Gaussian instantiation)."""
    problem, data = _check(problem, data)
    kernel = _check_kernel(problem, kernel)
    L = kernel.chol_col  # any factor with L L^T = Sigma
    At = L.T @ _delta_cov(problem, data) @ L
    a, Q = np.linalg.eigh(0.5 * (At + At.T))
    G = gap_gradient(problem, data, kernel.mean)
    b_proj = (G @ L @ Q).T
    return GapSpectrum(a_tilde=a, b_proj=b_proj, k=problem.k, f_mean=expected_gap(problem, data, kernel))


def gap_variance(problem: LinearGaussianProblem, data: Dataset, kernel: MatrixNormal) -> float:
    """``Var_q f = ||grad f(M) Sigma^{1/2}||_F^2 + 2 k ||Sigma^{1/2} (Sigma_x - Sigma_hat) Sigma^{1/2}||_F^2``."""
    return gap_spectrum(problem, data, kernel).variance


def gap_log_mgf(problem: LinearGaussianProblem, data: Dataset, kernel: MatrixNormal, lam: float) -> float:
    """``psi(lam) = log E_q exp(lam (f - E_q f))`` (``+inf`` outside ``I - lam A > 0``), by
    :func:`kdbounds.bounds.log_mgf_quadratic` with ``A = 2 A_tilde kron I_k``."""
    from kdbounds.bounds import log_mgf_quadratic

    sp = gap_spectrum(problem, data, kernel)
    return float(log_mgf_quadratic(lam, sp.eigenvalues, sp.b_proj, multiplicity=sp.k))


@dataclass(frozen=True)
class InstantiatedBounds:
    """Every bound of theory.md §4 on one linear-Gaussian instance, next to the exact gap difference.

    ``gap_difference = gen(S|D) - gen(T|D)`` (exact).  Two-sided bounds are ``lower <= gap_difference
    <= upper``; Theorem 1 and 3A are symmetric (``|gap_difference| <= bound``); Theorem 2 lower-bounds
    ``gen(S|D)`` itself.  ``ratio_*`` = bound / gap_difference on the side of the difference's sign
    (>= 1 when the bound holds; ``None`` when the difference is 0 or the bound is unavailable).
    ``theorem1_sigma_source`` / ``theorem3a_rho_source`` say whether sigma / rho came from the user
    or from a stated heuristic (a quadratic gap under a Gaussian is sub-gamma, not sub-Gaussian, and a
    Gaussian has no bounded support: only Theorem 3B is rigorous here).
    """

    divergence: float
    gen_teacher: float
    gen_student: float
    gap_difference: float
    var_teacher: float
    c_plus: float
    c_minus: float
    theorem1_sigma: float
    theorem1_sigma_source: str
    theorem1_bound: float
    theorem2_eta: float
    theorem2_c: float | None
    theorem2_lower_gen_student: float | None
    theorem3a_rho: float
    theorem3a_rho_source: str
    theorem3a_beta: float
    theorem3a_grad_norm: float
    theorem3a_a_rho: float
    theorem3a_bound: float
    theorem3a_tightness_radius: float
    theorem3b_upper: float
    theorem3b_lower: float
    theorem3b_lambda_upper: float
    theorem3b_lambda_lower: float
    subgamma_upper: float
    subgamma_lower: float
    k0: float
    ratio_theorem1: float | None
    ratio_theorem3a: float | None
    ratio_theorem3b: float | None
    ratio_subgamma: float | None

    @property
    def theorem3b_holds(self) -> bool:
        """``lower <= gap_difference <= upper`` up to 1e-9 relative slack."""
        tol = 1e-9 * max(1.0, abs(self.theorem3b_upper), abs(self.theorem3b_lower))
        return self.theorem3b_lower - tol <= self.gap_difference <= self.theorem3b_upper + tol

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["theorem3b_holds"] = self.theorem3b_holds
        return {key: (None if isinstance(v, float) and not math.isfinite(v) else v) for key, v in out.items()}


def _side_ratio(lower: float, upper: float, delta: float) -> float | None:
    if delta == 0.0 or not math.isfinite(lower) or not math.isfinite(upper):
        return None
    return float((upper if delta > 0 else lower) / delta)


def instantiated_bounds(
    problem: LinearGaussianProblem,
    data: Dataset,
    teacher: MatrixNormal,
    student: MatrixNormal,
    sigma: float | None = None,
    rho: float | None = None,
    eta: float | None = None,
) -> InstantiatedBounds:
    """Evaluate Theorems 1, 2, 3A, 3B (conditional on ``D_n``) on a linear-Gaussian instance.

    - Theorem 1: ``|gen(S|D) - gen(T|D)| <= sqrt(2 sigma^2 K)`` with per-gap proxy ``sigma`` (user);
      ``sigma=None`` uses ``sqrt(Var_T f)`` (heuristic: the gap is not sub-Gaussian).
    - Theorem 2: ``gen(S|D) >= c gen(T|D) - K / eta`` with the largest ``c in [0, 1]`` for which the
      (eta, c)-central condition holds exactly, ``c = 1 - psi(-eta) / (eta gen(T|D))`` (needs
      gen(T|D) > 0; otherwise ``None``); ``eta=None`` uses the optimal lambda of the 3B lower side.
    - Theorem 3A: ``a_rho sqrt(2K)``, ``a_rho = G0 rho + beta rho^2 / 2`` with ``G0 = ||grad f(M_T)||_F``,
      ``beta = ||Hess f||_op = 2 max|eig(Sigma_x - Sigma_hat)|``; ``rho=None`` uses the RMS radius
      ``sqrt(k tr Sigma_T)`` (heuristic); also the tightness radius rho_0(sigma, G0, beta).
    - Theorem 3B: exact DV upper/lower and the sub-gamma relaxation (rigorous).
    """
    from kdbounds import bounds as kb

    problem, data = _check(problem, data)
    teacher = _check_kernel(problem, teacher, "teacher")
    student = _check_kernel(problem, student, "student")
    K = kl_matrix_normal(student, teacher)
    sp = gap_spectrum(problem, data, teacher)
    gen_T = sp.f_mean
    gen_S = expected_gap(problem, data, student)
    delta = gen_S - gen_T
    v = sp.variance
    gq = kb.gaussian_quadratic_bound(K, eigenvalues=sp.eigenvalues, b_proj=sp.b_proj, multiplicity=sp.k)

    if sigma is None:
        sig, sig_src = math.sqrt(v), "sqrt(Var_T f) heuristic"
    else:
        sig, sig_src = check_scalar("sigma", sigma, nonneg=True), "user"
    th1 = kb.subgaussian_bound(K, sig)

    G0 = float(np.linalg.norm(gap_gradient(problem, data, teacher.mean)))
    beta = 2.0 * float(np.max(np.abs(np.linalg.eigvalsh(_delta_cov(problem, data)))))
    if rho is None:
        rho_f, rho_src = math.sqrt(problem.k * float(np.trace(teacher.col_cov))), "RMS radius sqrt(k tr Sigma_T) heuristic"
    else:
        rho_f, rho_src = check_scalar("rho", rho, nonneg=True), "user"
    a_rho = G0 * rho_f + 0.5 * beta * rho_f**2
    th3a = kb.sharpness_radius_bound(K, rho_f, G0, beta)
    rho0 = kb.tightness_radius(sig, G0, beta) if sig > 0 else 0.0

    if eta is None:
        eta_f = gq.lambda_lower if (math.isfinite(gq.lambda_lower) and gq.lambda_lower > 0) else 1.0
    else:
        eta_f = check_scalar("eta", eta, positive=True)
    c_val: float | None = None
    th2: float | None = None
    if gen_T > 0:
        psi_neg = kb.log_mgf_quadratic(-eta_f, sp.eigenvalues, sp.b_proj, multiplicity=sp.k)
        if math.isfinite(psi_neg):
            c_raw = 1.0 - psi_neg / (eta_f * gen_T)
            if c_raw >= 0.0:
                c_val = min(1.0, c_raw)
                th2 = kb.central_lower_bound(gen_T, K, eta_f, c_val)

    return InstantiatedBounds(
        divergence=K,
        gen_teacher=gen_T,
        gen_student=gen_S,
        gap_difference=delta,
        var_teacher=v,
        c_plus=gq.c_plus,
        c_minus=gq.c_minus,
        theorem1_sigma=sig,
        theorem1_sigma_source=sig_src,
        theorem1_bound=th1,
        theorem2_eta=eta_f,
        theorem2_c=c_val,
        theorem2_lower_gen_student=th2,
        theorem3a_rho=rho_f,
        theorem3a_rho_source=rho_src,
        theorem3a_beta=beta,
        theorem3a_grad_norm=G0,
        theorem3a_a_rho=a_rho,
        theorem3a_bound=th3a,
        theorem3a_tightness_radius=rho0,
        theorem3b_upper=gq.upper,
        theorem3b_lower=gq.lower,
        theorem3b_lambda_upper=gq.lambda_upper,
        theorem3b_lambda_lower=gq.lambda_lower,
        subgamma_upper=gq.subgamma_upper,
        subgamma_lower=gq.subgamma_lower,
        k0=gq.k0(sig),
        ratio_theorem1=_side_ratio(-th1, th1, delta),
        ratio_theorem3a=_side_ratio(-th3a, th3a, delta),
        ratio_theorem3b=_side_ratio(gq.lower, gq.upper, delta),
        ratio_subgamma=_side_ratio(gq.subgamma_lower, gq.subgamma_upper, delta),
    )
