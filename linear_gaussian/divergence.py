"""Distillation divergence between matrix-normal kernels and its exact decomposition (theory.md §3.3-§3.6).

``K = KL(q_S || q_T)`` (student || teacher).  With ``Delta = M_S - M_T`` and row covariance ``I_k``::

    K = 1/2 tr(Delta Sigma_T^{-1} Delta^T) + (k/2) sum_i phi(mu_i),   phi(x) = x - 1 - log x,

``mu_i`` the eigenvalues of ``Sigma_T^{-1} Sigma_S``, and ``K = B + R_r + V`` (bias, rank
bottleneck, variance).  All whitening uses Cholesky factors and triangular solves; the ``mu_i`` are
traces of ``L_T^{-1} L_S`` and Cholesky log-determinants, or (when these would cancel) eigenvalues
through ``phi`` evaluated by a series near 1, so that near-identical kernels give accurate (not
cancelled) small divergences.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla

from ._linalg import as_matrix, as_rng, check_choice, check_integer, check_scalar, gram_chol
from .matrix_normal import MatrixNormal, check_pair, kl_matrix_normal, kl_terms, phi, whiten_by
from .model import METRICS, Dataset, check_data, check_teacher, label_channel

__all__ = [
    "Decomposition",
    "MCEstimate",
    "StochasticLabelKL",
    "phi",
    "kl_matrix_normal",
    "kl_terms",
    "decompose",
    "predictive_kl",
    "ridge_shrinkage_bias",
    "prediction_energy_bottleneck",
    "stochastic_label_kl",
    "expected_kl_mc",
    "kl_monte_carlo",
]


@dataclass(frozen=True)
class MCEstimate:
    """A Monte Carlo estimate: sample mean ``value``, its standard error and the sample count."""

    value: float
    stderr: float
    n_samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Decomposition:
    """``total = bias + rank_bottleneck + variance`` (theory.md §3.4); ``mean_term = bias + rank_bottleneck``."""

    total: float
    bias: float
    variance: float
    rank_bottleneck: float
    mean_term: float
    rank: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StochasticLabelKL:
    """Stochastic soft labels without truncation (theory.md §3.5).

    ``expected = E_{Y_hat} KL(q_S(.|Y_hat) || q_T) = mean_term + label_term + variance``;
    ``marginal = KL(MN(M_T P, I, Sigma_S + C_lab) || q_T)``; ``convexity_gap = expected - marginal
    = (k/2) log det(I + Sigma_S^{-1} C_lab) >= 0`` (computed independently of the other two).
    """

    expected: float
    marginal: float
    convexity_gap: float
    mean_term: float
    label_term: float
    variance: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rank_arg(rank: Any, k: int, d: int) -> int:
    return min(k, d) if rank is None else check_integer("rank", rank, low=0, high=min(k, d))


def decompose(student: MatrixNormal, teacher: MatrixNormal, rank: int | None) -> Decomposition:
    """Exact split ``K = B + R_r + V`` (theory.md §3.4).

    ``R_r = 1/2 sum_{i>r} s_i^2`` with ``s_i`` the singular values of ``U_T^{-1/2} M_T Sigma_T^{-1/2}``
    (so ``s_i^2`` are the eigenvalues of ``M_T Sigma_T^{-1} M_T^T`` for ``U_T = I``);
    ``B = 1/2 ||(M_S - M_T) Sigma_T^{-1/2}||_F^2 - R_r >= 0`` (Eckart-Young, needs rank M_S <= r);
    ``V = (k/2) sum_i phi(mu_i)``.  ``rank=None`` means ``min(k, d)`` (no bottleneck).  A student
    mean of numerical rank above ``rank`` (``s_{r+1} > 1e-7 s_1``) is a ``ValueError``.
    """
    check_pair(student, teacher)
    k, d = teacher.k, teacher.d
    r = _rank_arg(rank, k, d)
    s_student = sla.svdvals(student.mean, check_finite=False)
    if r < s_student.size and s_student[0] > 0 and s_student[r] > 1e-7 * s_student[0]:
        raise ValueError(
            f"student mean has rank > rank={r} (s_{r + 1}/s_1 = {s_student[r] / s_student[0]:.2e}); "
            "pass the student's rank (B >= 0 needs rank M_S <= rank)"
        )
    mean_term, variance = kl_terms(student, teacher)
    s = sla.svdvals(whiten_by(teacher, teacher.mean), check_finite=False)
    R = 0.5 * float(np.sum(s[r:] ** 2))
    B = mean_term - R
    if B < 0.0:
        # Eckart-Young gives B >= 0; a negative value can only be rounding (relative to the terms).
        tol = 1e-9 * max(mean_term, R) + 1e-300
        if B < -tol:
            raise ValueError(f"bias came out negative ({B:.3e}); the student's mean is not of rank <= {r}")
        B = 0.0
    return Decomposition(total=B + R + variance, bias=B, variance=variance, rank_bottleneck=R,
                         mean_term=mean_term, rank=r)


def predictive_kl(student: MatrixNormal, teacher: MatrixNormal, X_star: Any, nu: float) -> float:
    """``K_pred = KL`` between the predictive laws at ``X_star`` (theory.md §3.6); ``<= K_param``."""
    check_pair(student, teacher)
    return kl_matrix_normal(student.predictive(X_star, nu), teacher.predictive(X_star, nu))


def ridge_shrinkage_bias(X: Any, M_T: Any, lam_T: float, tau_T: float, lam_S: float) -> float:
    """Bias of the untruncated deterministic-label student (theory.md §3.4)::

        1/2 ||(M~_S - M_T) Sigma_T^{-1/2}||^2 = (lam_S^2 / (2 tau_T)) sum_i ||M_T v_i||^2 (e_i + lam_T) / (e_i + lam_S)^2

    with ``(e_i, v_i)`` the eigenpairs of ``X X^T``."""
    Xa = as_matrix("X", X)
    M = as_matrix("M_T", M_T, (None, Xa.shape[0]))
    lam_T = check_scalar("lam_T", lam_T, nonneg=True)
    tau_T = check_scalar("tau_T", tau_T, positive=True)
    lam_S = check_scalar("lam_S", lam_S, nonneg=True)
    e, V = np.linalg.eigh(Xa @ Xa.T)
    e = np.clip(e, 0.0, None)
    w = np.sum((M @ V) ** 2, axis=0)
    den = (e + lam_S) ** 2
    if np.any(den == 0):
        raise ValueError("X X^T is singular and lam_S = 0: the ridge student is undefined; use lam_S > 0")
    return float(lam_S**2 / (2.0 * tau_T) * np.sum(w * (e + lam_T) / den))


def prediction_energy_bottleneck(X: Any, M_T: Any, tau_T: float, rank: int) -> float:
    """``R_r`` for ``lam_T = 0`` (theory.md §3.4): ``(1/(2 tau_T)) sum_{i>r} s_i^2(M_T X)``, the energy of
    the teacher's training predictions outside their top-r subspace (grows linearly in n)."""
    Xa = as_matrix("X", X)
    M = as_matrix("M_T", M_T, (None, Xa.shape[0]))
    tau_T = check_scalar("tau_T", tau_T, positive=True)
    r = check_integer("rank", rank, low=0, high=min(M.shape))
    s = sla.svdvals(M @ Xa, check_finite=False)
    return float(0.5 / tau_T * np.sum(s[r:] ** 2))


def stochastic_label_kl(data: Dataset, teacher: MatrixNormal, lam_S: float, tau_S: float, nu: float) -> StochasticLabelKL:
    """Closed forms of theory.md §3.5 (stochastic soft labels, no truncation), with
    ``P = X X^T A_S^{-1}``, ``C_lab = P Sigma_T P + nu^2 A_S^{-1} X X^T A_S^{-1}``, ``Sigma_S = tau_S A_S^{-1}``::

        expected      = 1/2 ||M_T (P - I) Sigma_T^{-1/2}||^2 + (k/2) tr(Sigma_T^{-1} C_lab) + V
        marginal      = KL(MN(M_T P, I_k, Sigma_S + C_lab) || q_T)
        convexity_gap = (k/2) log det(I + Sigma_S^{-1} C_lab)   (= expected - marginal).
    """
    data = check_data(data)
    teacher = check_teacher(data, teacher)
    tau = check_scalar("tau_S", tau_S, positive=True)
    P, C, Ainv = label_channel(data, teacher, lam_S, nu)
    k = data.k
    Sigma_S = tau * Ainv
    A_S = data.X @ data.X.T + check_scalar("lam_S", lam_S, nonneg=True) * np.eye(data.d)
    det_student = MatrixNormal.from_precision(teacher.mean @ P, 0.5 * (A_S + A_S.T), scale=1.0 / tau)
    mean_term, variance = kl_terms(det_student, teacher)
    Y = teacher.col_whiten(teacher.col_whiten(C).T)  # C_T^{-1} C_lab C_T^{-T}
    label_term = 0.5 * k * float(np.trace(Y))
    expected = mean_term + label_term + variance
    marginal = kl_matrix_normal(MatrixNormal(teacher.mean @ P, Sigma_S + C), teacher)
    G = det_student.col_whiten(det_student.col_whiten(C).T)  # C_S^{-1} C_lab C_S^{-T}
    g = np.clip(np.linalg.eigvalsh(0.5 * (G + G.T)), 0.0, None)
    gap = 0.5 * k * float(np.sum(np.log1p(g)))
    return StochasticLabelKL(expected=expected, marginal=marginal, convexity_gap=gap, mean_term=mean_term,
                             label_term=label_term, variance=variance)


def expected_kl_mc(
    data: Dataset,
    teacher: MatrixNormal,
    lam_S: float,
    tau_S: float,
    nu: float,
    rank: int | None,
    rng: np.random.Generator,
    n_samples: int = 256,
    metric: str = "teacher",
    batch: int = 512,
) -> MCEstimate:
    """Monte Carlo ``E_{Y_hat} K`` for stochastic soft labels with truncation (theory.md §3.5).

    Each draw: ``W_T ~ q_T``, ``Y_hat = W_T X + nu E'``, ``M~_S = Y_hat X^T A_S^{-1}``, truncation in
    the metric of :func:`student_kernel`, then ``K = 1/2 ||(M_S - M_T) Sigma_T^{-1/2}||^2 + V`` (V does
    not depend on the draw).  Vectorised over ``batch`` draws; standard error = sample std / sqrt(n)."""
    data = check_data(data)
    teacher = check_teacher(data, teacher)
    rng = as_rng(rng)
    n = check_integer("n_samples", n_samples, low=2)
    batch = check_integer("batch", batch, low=1)
    lam = check_scalar("lam_S", lam_S, nonneg=True)
    tau = check_scalar("tau_S", tau_S, positive=True)
    nu_f = check_scalar("nu", nu, nonneg=True)
    met = check_choice("metric", metric, METRICS)
    k, d, m = data.k, data.d, data.n
    r = _rank_arg(rank, k, d)
    X = data.X
    LS = gram_chol(X, lam, "lam_S")
    _, variance = kl_terms(MatrixNormal.from_precision(teacher.mean, X @ X.T + lam * np.eye(d), scale=1.0 / tau), teacher)
    ZT = whiten_by(teacher, teacher.mean)

    def right_whiten(B: np.ndarray) -> np.ndarray:
        """``B C_T^{-T}`` for a batch ``B`` of shape (b, k, d)."""
        b = B.shape[0]
        return teacher.col_whiten(B.reshape(b * k, d).T).T.reshape(b, k, d)

    def trunc(Z: np.ndarray) -> np.ndarray:
        if r >= min(k, d):
            return Z
        U, s, Vt = np.linalg.svd(Z, full_matrices=False)
        return (U[..., :r] * s[..., None, :r]) @ Vt[..., :r, :]

    vals = []
    done = 0
    while done < n:
        b = min(batch, n - done)
        W_T = teacher.sample(b, rng)
        Y_hat = W_T @ X + nu_f * rng.standard_normal((b, k, m))
        R = (Y_hat @ X.T).reshape(b * k, d)
        M_tilde = sla.cho_solve((LS, True), R.T, check_finite=False).T.reshape(b, k, d)  # (Y_hat X^T) A_S^{-1}
        if met == "teacher":
            Z = trunc(right_whiten(M_tilde))
        else:
            Zr = trunc(M_tilde @ LS)
            bb = Zr.shape[0]
            M_S = sla.solve_triangular(LS, Zr.reshape(bb * k, d).T, lower=True, trans="T", check_finite=False)
            Z = right_whiten(M_S.T.reshape(bb, k, d))
        diff = Z - ZT
        vals.append(0.5 * np.sum(diff * diff, axis=(1, 2)) + variance)
        done += b
    v = np.concatenate(vals)
    return MCEstimate(float(v.mean()), float(v.std(ddof=1) / math.sqrt(n)), n)


def kl_monte_carlo(q: MatrixNormal, p: MatrixNormal, n_samples: int, rng: np.random.Generator, batch: int = 256) -> MCEstimate:
    """Monte Carlo ``KL(q || p) ~ mean_j [log q(W_j) - log p(W_j)]``, ``W_j ~ q``, with its standard error."""
    check_pair(q, p, "q", "p")
    rng = as_rng(rng)
    n = check_integer("n_samples", n_samples, low=2)
    batch = check_integer("batch", batch, low=1)
    vals = []
    done = 0
    while done < n:
        b = min(batch, n - done)
        W = q.sample(b, rng)
        vals.append(np.atleast_1d(q.logpdf(W) - p.logpdf(W)))
        done += b
    v = np.concatenate(vals)
    return MCEstimate(float(v.mean()), float(v.std(ddof=1) / math.sqrt(n)), n)
