r"""Linear-Gaussian distillation model (theory.md §1-§3.2, §3.6): problem, data, kernels.

Conventions: inputs are columns :math:`X \in \mathbb R^{d \times n}`, labels
:math:`Y \in \mathbb R^{k \times n}`, weights :math:`W \in \mathbb R^{k \times d}`.
:math:`\mathcal{MN}(M, U, V)` has mean :math:`M`, row covariance :math:`U` (:math:`k \times k`),
column covariance :math:`V` (:math:`d \times d`) and
:math:`\operatorname{vec} W \sim \mathcal N(\operatorname{vec} M, V \otimes U)` with column-stacking
vec. Everything is float64 and uses Cholesky factors / triangular solves, never explicit inverses
of the covariances.
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
    r"""A sample :math:`D_n`: inputs :math:`X` (:math:`d \times n`) and labels :math:`Y` (:math:`k \times n`), columns are examples.

    Args:
        X: the :math:`d \times n` inputs.
        Y: the :math:`k \times n` labels.

    Raises:
        ValueError: different numbers of columns, an empty data set, or NaN/inf.
    """

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
        """Input dimension d."""
        return int(self.X.shape[0])

    @property
    def k(self) -> int:
        """Number of outputs k."""
        return int(self.Y.shape[0])

    @property
    def n(self) -> int:
        """Sample size n."""
        return int(self.X.shape[1])


@dataclass(frozen=True, eq=False)
class LinearGaussianProblem:
    r"""Data channel :math:`Y \mid X \sim \mathcal{MN}(W_* X, I_k, \nu^2 I_n)` with i.i.d. inputs :math:`x \sim \mathcal N(0, \Sigma_x)`.

    Attributes:
        d: input dimension.
        k: number of outputs.
        n: sample size.
        nu: label-noise scale :math:`\nu \ge 0`.
        W_star: the :math:`k \times d` true weights :math:`W_*`.
        Sigma_x: the :math:`d \times d` SPD input second moment :math:`\mathbb E[x x^\top]`.
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
        r"""Draw :math:`X = \Sigma_x^{1/2} Z` (:math:`d \times n`) and :math:`Y = W_* X + \nu E` (:math:`k \times n`).

        Args:
            rng: a ``numpy.random.Generator`` (or a seed).
            n: the sample size (default: the problem's ``n``).

        Returns:
            The :class:`Dataset`.
        """
        rng = as_rng(rng)
        n = self.n if n is None else check_integer("n", n, low=1)
        X = self._chol_x @ rng.standard_normal((self.d, n))
        Y = self.W_star @ X + self.nu * rng.standard_normal((self.k, n))
        return Dataset(X, Y)

    def to_dict(self) -> dict[str, Any]:
        """The problem as plain JSON values.

        Returns:
            ``{"d", "k", "n", "nu", "W_star", "Sigma_x"}`` (matrices as nested lists).
        """
        return {"d": self.d, "k": self.k, "n": self.n, "nu": self.nu,
                "W_star": self.W_star.tolist(), "Sigma_x": self.Sigma_x.tolist()}


def random_spd(d: int, rng: np.random.Generator, cond: float = 10.0) -> np.ndarray:
    r"""Random SPD matrix :math:`Q \operatorname{diag}(s) Q^\top` with Haar :math:`Q` and geometric eigenvalues from 1 down to :math:`1/\mathrm{cond}`.

    Args:
        d: the dimension.
        rng: a ``numpy.random.Generator`` (or a seed).
        cond: the condition number, :math:`\ge 1`.

    Returns:
        The :math:`d \times d` matrix.

    Raises:
        ValueError: ``cond < 1``.
    """
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
    r"""A random problem: :math:`\Sigma_x` from :func:`random_spd`, :math:`W_* = \text{w\_scale}\cdot G/\sqrt d`.

    :math:`G` is Gaussian (or a product of Gaussian factors of rank ``w_rank``, scaled the same way).

    Args:
        d: input dimension.
        k: number of outputs.
        n: sample size.
        nu: label-noise scale :math:`\nu \ge 0`.
        rng: a ``numpy.random.Generator`` (or a seed).
        cond: condition number of :math:`\Sigma_x`.
        w_rank: rank of :math:`W_*`, or ``None`` for full rank.
        w_scale: scale of :math:`W_*`.

    Returns:
        The :class:`LinearGaussianProblem`.
    """
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
    """``data`` if it is a :class:`Dataset`.

    Args:
        data: the object to check.

    Returns:
        ``data``.

    Raises:
        TypeError: ``data`` is not a :class:`Dataset`.
    """
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a linear_gaussian.Dataset, got {type(data).__name__}")
    return data


def teacher_kernel(data: Dataset, lam_T: float, tau_T: float) -> MatrixNormal:
    r"""Teacher kernel (theory.md §3.1), the ridge posterior.

    .. math::
        q_T = \mathcal{MN}(M_T, I_k, \Sigma_T), \quad M_T = Y X^\top A^{-1}, \quad
        \Sigma_T = \tau_T A^{-1}, \quad A = X X^\top + \lambda_T I

    (:math:`\tau_T = \nu^2`: the Bayes posterior).

    Args:
        data: the training sample.
        lam_T: the ridge :math:`\lambda_T > 0`.
        tau_T: the temperature :math:`\tau_T > 0`.

    Returns:
        :math:`q_T`, built from the precision :math:`A/\tau_T`.
    """
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
    r"""``teacher`` if it is a matrix normal teacher kernel that fits ``data``.

    Args:
        data: the sample.
        teacher: the object to check.

    Returns:
        ``teacher``.

    Raises:
        TypeError: ``teacher`` is not a :class:`MatrixNormal`.
        ValueError: its mean is not :math:`k \times d` or its row covariance is not :math:`I_k`.
    """
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
    r"""Student kernel (theory.md §3.2): :math:`q_S = \mathcal{MN}(M_S, I_k, \tau_S A_S^{-1})`, :math:`A_S = X X^\top + \lambda_S I`.

    Soft labels :math:`\hat Y = M_T X` (``labels="deterministic"``) or :math:`\hat Y = W_T X + \nu E'`
    with :math:`W_T \sim q_T` (``"stochastic"``: one draw from ``rng``, needs ``nu``). Ridge fit, then
    rank-r truncation in the metric :math:`G`:

    .. math::
        \tilde M_S = \hat Y X^\top A_S^{-1}, \qquad M_S = [\tilde M_S G^{1/2}]_r\, G^{-1/2},

    with :math:`G = \Sigma_T^{-1}` (``metric="teacher"``, KL-optimal) or :math:`G = A_S`
    (``"ridge"``). Any square root :math:`R R^\top = G` gives the same :math:`M_S`; we use
    :math:`R = C_T^{-\top}` (:math:`\Sigma_T = C_T C_T^\top`) and :math:`R = L_S`
    (:math:`A_S = L_S L_S^\top`). Both kernels are built by :meth:`MatrixNormal.from_precision`
    (precision :math:`A/\tau`), never inverting :math:`A`. This is the kernel *given* the label
    draw; the marginal kernel of stochastic labels is :func:`marginal_student_kernel`.

    Args:
        data: the training sample.
        teacher: the teacher kernel :math:`q_T`.
        lam_S: the ridge :math:`\lambda_S > 0`.
        tau_S: the temperature :math:`\tau_S > 0`.
        rank: the bottleneck rank r, or ``None`` for no truncation.
        labels: ``"deterministic"`` or ``"stochastic"`` (a :class:`Labels`).
        metric: ``"teacher"`` or ``"ridge"`` (a :class:`Metric`).
        rng: the generator of the stochastic labels.
        nu: the soft-label noise scale of stochastic labels.

    Returns:
        :math:`q_S`.

    Raises:
        ValueError: stochastic labels without ``rng`` or ``nu``, bad scalars, rank or options.
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
    r"""Stochastic-label channel of theory.md §3.5.

    .. math::
        P = X X^\top A_S^{-1}, \qquad
        C_{\text{lab}} = P^\top \Sigma_T P + \nu^2 A_S^{-1} X X^\top A_S^{-1},

    so that the untruncated ridge fit on stochastic labels is
    :math:`\tilde M_S \sim \mathcal{MN}(M_T P, I_k, C_{\text{lab}})`.

    Args:
        data: the training sample.
        teacher: the teacher kernel :math:`q_T`.
        lam_S: the ridge :math:`\lambda_S > 0`.
        nu: the label-noise scale :math:`\nu \ge 0`.

    Returns:
        ``(P, C_lab, A_S^{-1})``.
    """
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
    r"""Marginal student kernel of stochastic soft labels without truncation (theory.md §3.5).

    .. math::
        \mathcal{MN}(M_T P,\ I_k,\ \Sigma_S + C_{\text{lab}}), \qquad \Sigma_S = \tau_S A_S^{-1}

    (:math:`P`, :math:`C_{\text{lab}}` from :func:`label_channel`).

    Args:
        data: the training sample.
        teacher: the teacher kernel :math:`q_T`.
        lam_S: the ridge :math:`\lambda_S > 0`.
        tau_S: the temperature :math:`\tau_S > 0`.
        nu: the label-noise scale :math:`\nu \ge 0`.

    Returns:
        The marginal student kernel.
    """
    tau = check_scalar("tau_S", tau_S, positive=True)
    P, C, Ainv = label_channel(data, teacher, lam_S, nu)
    return MatrixNormal(teacher.mean @ P, tau * Ainv + C)
