r"""Exact generalization gaps of the linear-Gaussian model and the instantiated bounds (theory.md §4).

Squared loss, population risk through :math:`\Sigma_x`. The gap function is

.. math::
    f(W) = \operatorname{tr}\bigl((W - W_*)\Sigma_x (W - W_*)^\top\bigr) + k\nu^2
    - \tfrac1n \lVert Y - W X\rVert_F^2,

a quadratic in :math:`W` with gradient
:math:`2(W - W_*)\Sigma_x - \tfrac2n (W X - Y) X^\top` and Hessian (w.r.t. column-stacked
:math:`\operatorname{vec} W`) :math:`2(\Sigma_x - \hat\Sigma) \otimes I_k`,
:math:`\hat\Sigma = X X^\top / n`. Under a kernel :math:`\mathcal{MN}(M, I_k, \Sigma)`:

.. math::
    \mathbb E f = f(M) + k \operatorname{tr}\bigl((\Sigma_x - \hat\Sigma)\Sigma\bigr).
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
    r"""Population risk, vectorised over the leading dimensions of ``W``.

    .. math::
        L_\mu(W) = \operatorname{tr}\bigl((W - W_*)\Sigma_x (W - W_*)^\top\bigr) + k\nu^2

    Args:
        problem: the :class:`LinearGaussianProblem`.
        W: ``(..., k, d)`` weights.

    Returns:
        A float, or an array of the leading shape.

    Raises:
        TypeError: ``problem`` is not a :class:`LinearGaussianProblem`.
        ValueError: ``W`` has the wrong shape or holds NaN/inf.
    """
    if not isinstance(problem, LinearGaussianProblem):
        raise TypeError(f"problem must be a LinearGaussianProblem, got {type(problem).__name__}")
    W = _weights(problem, W)
    E = W - problem.W_star
    out = np.einsum("...ij,jk,...ik->...", E, problem.Sigma_x, E) + problem.k * problem.nu**2
    return float(out) if np.ndim(out) == 0 else out


def empirical_risk(data: Dataset, W: Any) -> np.ndarray | float:
    r"""Empirical risk, vectorised over the leading dimensions of ``W``.

    .. math::
        \hat L(W, D_n) = \tfrac1n \lVert Y - W X\rVert_F^2

    Args:
        data: the sample :math:`D_n`.
        W: ``(..., k, d)`` weights.

    Returns:
        A float, or an array of the leading shape.

    Raises:
        ValueError: ``W`` has the wrong shape or holds NaN/inf.
    """
    data = check_data(data)
    W = np.asarray(W, dtype=np.float64)
    if W.ndim < 2 or W.shape[-2:] != (data.k, data.d):
        raise ValueError(f"W must have shape (..., k, d) = (..., {data.k}, {data.d}), got {W.shape}")
    R = data.Y - W @ data.X
    out = np.sum(R * R, axis=(-2, -1)) / data.n
    return float(out) if np.ndim(out) == 0 else out


def gap_function(problem: LinearGaussianProblem, data: Dataset, W: Any) -> np.ndarray | float:
    r"""The gap :math:`f(W) = L_\mu(W) - \hat L(W, D_n)`, vectorised over the leading dimensions of ``W``.

    Args:
        problem: the :class:`LinearGaussianProblem`.
        data: the training sample :math:`D_n` (same d, k).
        W: ``(..., k, d)`` weights.

    Returns:
        A float, or an array of the leading shape.
    """
    problem, data = _check(problem, data)
    return population_risk(problem, W) - empirical_risk(data, W)


def gap_gradient(problem: LinearGaussianProblem, data: Dataset, M: Any) -> np.ndarray:
    r"""Gradient of the gap at :math:`M`.

    .. math::
        \nabla f(M) = 2(M - W_*)\Sigma_x - \tfrac2n (M X - Y) X^\top

    Args:
        problem: the :class:`LinearGaussianProblem`.
        data: the training sample :math:`D_n` (same d, k).
        M: one :math:`k \times d` matrix.

    Returns:
        The :math:`k \times d` gradient.

    Raises:
        ValueError: ``M`` is not a single :math:`k \times d` matrix.
    """
    problem, data = _check(problem, data)
    M = _weights(problem, M)
    if M.ndim != 2:
        raise ValueError("M must be a single k x d matrix")
    return 2.0 * (M - problem.W_star) @ problem.Sigma_x - (2.0 / data.n) * (M @ data.X - data.Y) @ data.X.T


def gap_hessian(problem: LinearGaussianProblem, data: Dataset) -> np.ndarray:
    r"""Dense Hessian of :math:`f` w.r.t. column-stacked :math:`\operatorname{vec} W`: :math:`2(\Sigma_x - \hat\Sigma) \otimes I_k`.

    Args:
        problem: the :class:`LinearGaussianProblem`.
        data: the training sample :math:`D_n` (same d, k).

    Returns:
        The :math:`kd \times kd` Hessian.
    """
    problem, data = _check(problem, data)
    return 2.0 * np.kron(_delta_cov(problem, data), np.eye(problem.k))


def expected_gap(problem: LinearGaussianProblem, data: Dataset, kernel: MatrixNormal) -> float:
    r"""Expected gap under a kernel :math:`q = \mathcal{MN}(M, I_k, \Sigma)`.

    .. math::
        \mathrm{gen}(q \mid D) = \mathbb E_q f = f(M) + k \operatorname{tr}\bigl((\Sigma_x - \hat\Sigma)\Sigma\bigr)

    Args:
        problem: the :class:`LinearGaussianProblem`.
        data: the training sample :math:`D_n` (same d, k).
        kernel: :math:`q`, row covariance :math:`I_k`.

    Returns:
        :math:`\mathrm{gen}(q \mid D)`.
    """
    problem, data = _check(problem, data)
    kernel = _check_kernel(problem, kernel)
    return float(gap_function(problem, data, kernel.mean)) + problem.k * float(
        np.sum(_delta_cov(problem, data) * kernel.col_cov)
    )


@dataclass(frozen=True)
class GapSpectrum:
    r"""Spectral form of the gap under :math:`\mathcal{MN}(M, I_k, \Sigma)`, :math:`\Sigma = L L^\top`.

    .. math::
        \tilde A = L^\top (\Sigma_x - \hat\Sigma) L = Q \operatorname{diag}(\tilde a) Q^\top, \qquad
        A = 2\tilde A \otimes I_k, \qquad b_{\text{proj}} = (\nabla f(M)\, L Q)^\top,

    so the Hessian-whitened operator :math:`A` has eigenvalues :math:`2\tilde a` with multiplicity k,
    and row i of ``b_proj`` (:math:`d \times k`) holds the k components of :math:`b'` along
    eigenvector i.
    """

    a_tilde: np.ndarray
    b_proj: np.ndarray
    k: int
    f_mean: float

    @property
    def eigenvalues(self) -> np.ndarray:
        r"""The eigenvalues :math:`2\tilde a` of :math:`A` (each with multiplicity k)."""
        return 2.0 * self.a_tilde

    @property
    def variance(self) -> float:
        r"""The variance of the gap, :math:`\mathrm{Var} f = \lVert b'\rVert^2 + \tfrac12\lVert A\rVert_F^2 = \lVert b'\rVert^2 + 2k\lVert\tilde A\rVert_F^2`."""
        return float(np.sum(self.b_proj**2) + 2.0 * self.k * np.sum(self.a_tilde**2))

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values.

        Returns:
            Every field, as a dict (arrays as nested lists).
        """
        d = asdict(self)
        d["a_tilde"] = self.a_tilde.tolist()
        d["b_proj"] = self.b_proj.tolist()
        return d


def gap_spectrum(problem: LinearGaussianProblem, data: Dataset, kernel: MatrixNormal) -> GapSpectrum:
    r""":class:`GapSpectrum` of :math:`f` under ``kernel`` (theory.md §4, linear-Gaussian instantiation).

    Args:
        problem: the :class:`LinearGaussianProblem`.
        data: the training sample :math:`D_n` (same d, k).
        kernel: :math:`\mathcal{MN}(M, I_k, \Sigma)`.

    Returns:
        The :class:`GapSpectrum`.
    """
    problem, data = _check(problem, data)
    kernel = _check_kernel(problem, kernel)
    L = kernel.chol_col  # any factor with L L^T = Sigma
    At = L.T @ _delta_cov(problem, data) @ L
    a, Q = np.linalg.eigh(0.5 * (At + At.T))
    G = gap_gradient(problem, data, kernel.mean)
    b_proj = (G @ L @ Q).T
    return GapSpectrum(a_tilde=a, b_proj=b_proj, k=problem.k, f_mean=expected_gap(problem, data, kernel))


def gap_variance(problem: LinearGaussianProblem, data: Dataset, kernel: MatrixNormal) -> float:
    r"""Variance of the gap under a kernel.

    .. math::
        \mathrm{Var}_q f = \lVert \nabla f(M)\,\Sigma^{1/2}\rVert_F^2
        + 2k \lVert \Sigma^{1/2} (\Sigma_x - \hat\Sigma) \Sigma^{1/2}\rVert_F^2

    Args:
        problem: the :class:`LinearGaussianProblem`.
        data: the training sample :math:`D_n` (same d, k).
        kernel: :math:`q = \mathcal{MN}(M, I_k, \Sigma)`.

    Returns:
        :math:`\mathrm{Var}_q f`.
    """
    return gap_spectrum(problem, data, kernel).variance


def gap_log_mgf(problem: LinearGaussianProblem, data: Dataset, kernel: MatrixNormal, lam: float) -> float:
    r"""Log-MGF of the gap, :math:`\psi(\lambda) = \log \mathbb E_q \exp(\lambda (f - \mathbb E_q f))`.

    Computed by :func:`kdbounds.bounds.log_mgf_quadratic` with :math:`A = 2\tilde A \otimes I_k`;
    ``+inf`` outside :math:`I - \lambda A \succ 0`.

    Args:
        problem: the :class:`LinearGaussianProblem`.
        data: the training sample :math:`D_n` (same d, k).
        kernel: :math:`q = \mathcal{MN}(M, I_k, \Sigma)`.
        lam: :math:`\lambda`.

    Returns:
        :math:`\psi(\lambda)`.
    """
    from kdbounds.bounds import log_mgf_quadratic

    sp = gap_spectrum(problem, data, kernel)
    return float(log_mgf_quadratic(lam, sp.eigenvalues, sp.b_proj, multiplicity=sp.k))


@dataclass(frozen=True)
class InstantiatedBounds:
    r"""Every bound of theory.md §4 on one linear-Gaussian instance, next to the exact gap difference.

    ``gap_difference`` :math:`= \mathrm{gen}(S\mid D) - \mathrm{gen}(T\mid D)` (exact). Two-sided bounds
    are ``lower <= gap_difference <= upper``; Theorems 1 and 3A are symmetric
    (``|gap_difference| <= bound``); Theorem 2 lower-bounds :math:`\mathrm{gen}(S\mid D)` itself.
    ``ratio_*`` = bound / gap_difference on the side of the difference's sign (>= 1 when the bound
    holds; ``None`` when the difference is 0 or the bound is unavailable).
    ``theorem1_sigma_source`` / ``theorem3a_rho_source`` say whether :math:`\sigma` / :math:`\rho`
    came from the user or from a stated heuristic (a quadratic gap under a Gaussian is sub-gamma, not
    sub-Gaussian, and a Gaussian has no bounded support: only Theorem 3B is rigorous here).
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
        """The record as plain JSON values.

        Returns:
            Every field, as a dict (arrays as nested lists).
        """
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
    r"""Evaluate Theorems 1, 2, 3A, 3B (conditional on :math:`D_n`) on a linear-Gaussian instance.

    - Theorem 1: :math:`|\mathrm{gen}(S\mid D) - \mathrm{gen}(T\mid D)| \le \sqrt{2\sigma^2 K}` with
      per-gap proxy :math:`\sigma` (user); ``sigma=None`` uses :math:`\sqrt{\mathrm{Var}_T f}`
      (heuristic: the gap is not sub-Gaussian).
    - Theorem 2: :math:`\mathrm{gen}(S\mid D) \ge c\,\mathrm{gen}(T\mid D) - K/\eta` with the largest
      :math:`c \in [0, 1]` for which the :math:`(\eta, c)`-central condition holds exactly,
      :math:`c = 1 - \psi(-\eta) / (\eta\,\mathrm{gen}(T\mid D))` (needs :math:`\mathrm{gen}(T\mid D) > 0`;
      otherwise ``None``); ``eta=None`` uses the optimal :math:`\lambda` of the 3B lower side.
    - Theorem 3A: :math:`a_\rho\sqrt{2K}`, :math:`a_\rho = G_0\rho + \beta\rho^2/2` with
      :math:`G_0 = \lVert\nabla f(M_T)\rVert_F`,
      :math:`\beta = \lVert\nabla^2 f\rVert_{\mathrm{op}} = 2\max|\mathrm{eig}(\Sigma_x - \hat\Sigma)|`;
      ``rho=None`` uses the RMS radius :math:`\sqrt{k \operatorname{tr}\Sigma_T}` (heuristic); also
      the tightness radius :math:`\rho_0(\sigma, G_0, \beta)`.
    - Theorem 3B: exact DV upper/lower and the sub-gamma relaxation (rigorous).

    Args:
        problem: the :class:`LinearGaussianProblem`.
        data: the training sample :math:`D_n` (same d, k).
        teacher: :math:`q_T`, row covariance :math:`I_k`.
        student: :math:`q_S`, row covariance :math:`I_k`.
        sigma: Theorem 1's proxy, or ``None`` (heuristic).
        rho: Theorem 3A's radius, or ``None`` (heuristic).
        eta: Theorem 2's :math:`\eta`, or ``None``.

    Returns:
        The :class:`InstantiatedBounds`.
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
