"""Linear-Gaussian distillation model (theory.md §1-§3.2, §3.6): problem, data, matrix normals, kernels.

Conventions: inputs are columns ``X (d x n)``, labels ``Y (k x n)``, weights ``W (k x d)``.
``MN(M, U, V)`` has mean ``M``, row covariance ``U (k x k)``, column covariance ``V (d x d)`` and
``vec W ~ N(vec M, V kron U)`` with column-stacking ``vec``.  Everything is float64 and uses
Cholesky factors / triangular solves, never explicit inverses of the covariances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import scipy.linalg as sla

from ._linalg import (as_matrix, as_rng, check_choice, check_integer, check_scalar, check_spd, chol_inverse,
                      gram, gram_chol, readonly)
from .matrix_normal import MatrixNormal

__all__ = [
    "Dataset",
    "LinearGaussianProblem",
    "MatrixNormal",
    "Labels",
    "Metric",
    "random_problem",
    "random_spd",
    "teacher_kernel",
    "student_kernel",
    "marginal_student_kernel",
    "label_channel",
]

class Labels(str, Enum):
    """Soft-label option of the student kernel (theory.md §3.2)."""

    DETERMINISTIC = "deterministic"  # Y_hat = M_T X
    STOCHASTIC = "stochastic"  # Y_hat = W_T X + nu E',  W_T ~ q_T


class Metric(str, Enum):
    """Truncation metric G of the rank bottleneck (theory.md §3.2)."""

    TEACHER = "teacher"  # G = Sigma_T^{-1} (KL-optimal)
    RIDGE = "ridge"  # G = A_{lambda_S} (rank-r ridge regression on the soft labels)


LABELS = tuple(m.value for m in Labels)
METRICS = tuple(m.value for m in Metric)



@dataclass(frozen=True, eq=False)
class Dataset:
    """A sample ``D_n``: inputs ``X (d x n)`` and labels ``Y (k x n)`` (columns are examples)."""

    X: np.ndarray
    Y: np.ndarray

    def __post_init__(self) -> None:
        X = as_matrix("X", self.X)
        Y = as_matrix("Y", self.Y)
        if X.shape[1] != Y.shape[1]:
            raise ValueError(f"X (d x n) and Y (k x n) need the same number of columns, got {X.shape} and {Y.shape}")
        if X.shape[1] < 1:
            raise ValueError("the data set is empty (n = 0)")
        object.__setattr__(self, "X", readonly(X))
        object.__setattr__(self, "Y", readonly(Y))

    @property
    def d(self) -> int:
        return int(self.X.shape[0])

    @property
    def k(self) -> int:
        return int(self.Y.shape[0])

    @property
    def n(self) -> int:
        return int(self.X.shape[1])


@dataclass(frozen=True, eq=False)
class LinearGaussianProblem:
    """Data channel ``Y | X ~ MN(W* X, I_k, nu^2 I_n)`` with i.i.d. inputs ``x ~ N(0, Sigma_x)``.

    ``d`` input dimension, ``k`` outputs, ``n`` sample size, ``nu >= 0`` label-noise scale,
    ``W_star (k x d)`` true weights, ``Sigma_x (d x d)`` SPD input second moment ``E[x x^T]``.
    """

    d: int
    k: int
    n: int
    nu: float
    W_star: np.ndarray
    Sigma_x: np.ndarray

    def __post_init__(self) -> None:
        d = check_integer("d", self.d, low=1)
        k = check_integer("k", self.k, low=1)
        n = check_integer("n", self.n, low=1)
        nu = check_scalar("nu", self.nu, nonneg=True)
        W = as_matrix("W_star", self.W_star, (k, d))
        S, L = check_spd("Sigma_x", self.Sigma_x, d)
        for name, val in (("d", d), ("k", k), ("n", n), ("nu", nu)):
            object.__setattr__(self, name, val)
        object.__setattr__(self, "W_star", readonly(W))
        object.__setattr__(self, "Sigma_x", readonly(S))
        object.__setattr__(self, "_chol_x", L)

    def sample(self, rng: np.random.Generator, n: int | None = None) -> Dataset:
        """Draw ``X = Sigma_x^{1/2} Z`` (d x n) and ``Y = W* X + nu E`` (k x n) from ``rng``."""
        rng = as_rng(rng)
        n = self.n if n is None else check_integer("n", n, low=1)
        X = self._chol_x @ rng.standard_normal((self.d, n))
        Y = self.W_star @ X + self.nu * rng.standard_normal((self.k, n))
        return Dataset(X, Y)

    def to_dict(self) -> dict[str, Any]:
        return {"d": self.d, "k": self.k, "n": self.n, "nu": self.nu,
                "W_star": self.W_star.tolist(), "Sigma_x": self.Sigma_x.tolist()}


def random_spd(d: int, rng: np.random.Generator, cond: float = 10.0) -> np.ndarray:
    """Random SPD ``Q diag(s) Q^T`` with geometric eigenvalues from 1 down to ``1/cond`` (Haar Q)."""
    d = check_integer("d", d, low=1)
    rng = as_rng(rng)
    cond = check_scalar("cond", cond, positive=True)
    if cond < 1:
        raise ValueError(f"cond must be >= 1, got {cond}")
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    s = np.geomspace(1.0, 1.0 / cond, d) if d > 1 else np.ones(1)
    m = (q * s) @ q.T
    return 0.5 * (m + m.T)


def random_problem(
    d: int,
    k: int,
    n: int,
    nu: float,
    rng: np.random.Generator,
    cond: float = 10.0,
    w_rank: int | None = None,
    w_scale: float = 1.0,
) -> LinearGaussianProblem:
    """A random problem: ``Sigma_x`` = :func:`random_spd` with condition number ``cond``;
    ``W* = w_scale * G / sqrt(d)`` with Gaussian ``G`` (or a product of Gaussian factors of rank
    ``w_rank``, scaled the same way)."""
    d = check_integer("d", d, low=1)
    k = check_integer("k", k, low=1)
    rng = as_rng(rng)
    w_scale = check_scalar("w_scale", w_scale, nonneg=True)
    Sigma_x = random_spd(d, rng, cond)
    if w_rank is None:
        W = rng.standard_normal((k, d))
    else:
        r = check_integer("w_rank", w_rank, low=0, high=min(k, d))
        W = rng.standard_normal((k, r)) @ rng.standard_normal((r, d)) / math.sqrt(max(r, 1))
    return LinearGaussianProblem(d, k, n, nu, w_scale * W / math.sqrt(d), Sigma_x)


# ---------------------------------------------------------------------------------------------
# kernels (theory.md §3.1-§3.2)


def check_data(data: Any) -> Dataset:
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a linear_gaussian.Dataset, got {type(data).__name__}")
    return data


def teacher_kernel(data: Dataset, lam_T: float, tau_T: float) -> MatrixNormal:
    """Teacher kernel (theory.md §3.1): ``q_T = MN(M_T, I_k, Sigma_T)`` with
    ``M_T = Y X^T A^{-1}``, ``Sigma_T = tau_T A^{-1}``, ``A = X X^T + lam_T I`` (``tau_T = nu^2``: Bayes)."""
    data = check_data(data)
    lam = check_scalar("lam_T", lam_T, nonneg=True)
    tau = check_scalar("tau_T", tau_T, positive=True)
    L = gram_chol(data.X, lam, "lam_T")
    M = sla.cho_solve((L, True), data.X @ data.Y.T, check_finite=False).T
    return MatrixNormal.from_precision(M, gram(data.X, lam), scale=1.0 / tau)


def _truncate(Z: np.ndarray, r: int) -> np.ndarray:
    """Best rank-r approximation ``[Z]_r`` (truncated SVD)."""
    if r >= min(Z.shape):
        return Z
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    return (U[:, :r] * s[:r]) @ Vt[:r]


def check_teacher(data: Dataset, teacher: Any) -> MatrixNormal:
    if not isinstance(teacher, MatrixNormal):
        raise TypeError(f"teacher must be a MatrixNormal, got {type(teacher).__name__}")
    if teacher.mean.shape != (data.k, data.d):
        raise ValueError(f"teacher mean has shape {teacher.mean.shape}, expected (k, d) = {(data.k, data.d)} from data")
    if teacher.row_cov is not None:
        raise ValueError("teacher must have row covariance I_k (row_cov=None), as in theory.md §3.1")
    return teacher


def student_kernel(
    data: Dataset,
    teacher: MatrixNormal,
    lam_S: float,
    tau_S: float,
    rank: int | None = None,
    labels: str | Labels = "deterministic",
    metric: str | Metric = "teacher",
    rng: np.random.Generator | None = None,
    nu: float | None = None,
) -> MatrixNormal:
    """Student kernel (theory.md §3.2): ``q_S = MN(M_S, I_k, tau_S A_S^{-1})``, ``A_S = X X^T + lam_S I``.

    Soft labels ``Y_hat = M_T X`` (``labels="deterministic"``) or ``Y_hat = W_T X + nu E'`` with
    ``W_T ~ q_T`` (``"stochastic"``: one draw from ``rng``, needs ``nu``).  Ridge fit
    ``M~_S = Y_hat X^T A_S^{-1}``, then rank-``rank`` truncation in the metric ``G``:
    ``M_S = [M~_S G^{1/2}]_r G^{-1/2}`` with ``G = Sigma_T^{-1}`` (``metric="teacher"``, KL-optimal)
    or ``G = A_S`` (``"ridge"``).  Any square root ``R R^T = G`` gives the same ``M_S``; we use
    ``R = C_T^{-T}`` (``Sigma_T = C_T C_T^T``) and ``R = L_S`` (``A_S = L_S L_S^T``).  Both kernels
    are built :meth:`MatrixNormal.from_precision` (precision ``A / tau``), never inverting ``A``.
    ``rank=None`` means no truncation.  This is the kernel *given* the label draw; the marginal
    kernel of stochastic labels is :func:`marginal_student_kernel`.
    """
    data = check_data(data)
    teacher = check_teacher(data, teacher)
    lam = check_scalar("lam_S", lam_S, nonneg=True)
    tau = check_scalar("tau_S", tau_S, positive=True)
    lab = check_choice("labels", labels, LABELS)
    met = check_choice("metric", metric, METRICS)
    k, d = data.k, data.d
    r = min(k, d) if rank is None else check_integer("rank", rank, low=0, high=min(k, d))
    X = data.X
    if lab == Labels.STOCHASTIC.value:
        if rng is None:
            raise ValueError("labels='stochastic' needs rng (a numpy Generator) to draw W_T and the label noise")
        rng = as_rng(rng)
        if nu is None:
            raise ValueError("labels='stochastic' needs nu (the soft-label noise scale, usually problem.nu)")
        nu_f = check_scalar("nu", nu, nonneg=True)
        W_T = teacher.sample(1, rng)[0]
        Y_hat = W_T @ X + nu_f * rng.standard_normal((k, data.n))
    else:
        if nu is not None:
            check_scalar("nu", nu, nonneg=True)
        Y_hat = teacher.mean @ X
    LS = gram_chol(X, lam, "lam_S")
    M_tilde = sla.cho_solve((LS, True), X @ Y_hat.T, check_finite=False).T
    if r < min(k, d):
        if met == Metric.TEACHER.value:
            Z = teacher.col_whiten(M_tilde.T).T  # M~ C_T^{-T}
            M_S = teacher.col_color(_truncate(Z, r).T).T  # [.]_r C_T^T
        else:
            Z = M_tilde @ LS
            M_S = sla.solve_triangular(LS, _truncate(Z, r).T, lower=True, trans="T", check_finite=False).T
    else:
        M_S = M_tilde
    return MatrixNormal.from_precision(M_S, gram(X, lam), scale=1.0 / tau)


def label_channel(data: Dataset, teacher: MatrixNormal, lam_S: float, nu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stochastic-label channel of theory.md §3.5: returns ``(P, C_lab, A_S^{-1})`` with
    ``P = X X^T A_S^{-1}`` and ``C_lab = P^T Sigma_T P + nu^2 A_S^{-1} X X^T A_S^{-1}``, so that the
    untruncated ridge fit on stochastic labels is ``M~_S ~ MN(M_T P, I_k, C_lab)``."""
    data = check_data(data)
    teacher = check_teacher(data, teacher)
    lam = check_scalar("lam_S", lam_S, nonneg=True)
    nu_f = check_scalar("nu", nu, nonneg=True)
    LS = gram_chol(data.X, lam, "lam_S")
    XXt = data.X @ data.X.T
    P = sla.cho_solve((LS, True), XXt, check_finite=False).T  # X X^T A^{-1} (A, XX^T commute)
    P = 0.5 * (P + P.T)
    B = teacher.col_color_T(P)  # C_T^T P
    Ainv = chol_inverse(LS)
    N = Ainv @ data.X
    C = B.T @ B + nu_f * nu_f * (N @ N.T)
    return P, 0.5 * (C + C.T), Ainv


def marginal_student_kernel(data: Dataset, teacher: MatrixNormal, lam_S: float, tau_S: float, nu: float) -> MatrixNormal:
    """Marginal student kernel of stochastic soft labels without truncation (theory.md §3.5):
    ``MN(M_T P, I_k, Sigma_S + C_lab)``, ``Sigma_S = tau_S A_S^{-1}``."""
    tau = check_scalar("tau_S", tau_S, positive=True)
    P, C, Ainv = label_channel(data, teacher, lam_S, nu)
    return MatrixNormal(teacher.mean @ P, tau * Ainv + C)
