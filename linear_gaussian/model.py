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

SYM_RTOL = 1e-8


def _as_matrix(name: str, value: Any, shape: tuple[int | None, ...] | None = None, ndim: int = 2) -> np.ndarray:
    """Return ``value`` as a finite float64 array with ``ndim`` dims (and ``shape`` if given)."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers: {exc}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if shape is not None:
        for axis, (want, got) in enumerate(zip(shape, arr.shape)):
            if want is not None and want != got:
                raise ValueError(f"{name} has shape {arr.shape}, expected {tuple(shape)} (axis {axis} mismatched)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; pass finite values")
    return arr


def _scalar(name: str, value: Any, *, positive: bool = False, nonneg: bool = False) -> float:
    """A finite float, optionally > 0 or >= 0."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got a bool")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    if positive and not x > 0:
        raise ValueError(f"{name} must be > 0, got {x}")
    if nonneg and x < 0:
        raise ValueError(f"{name} must be >= 0, got {x}")
    return x


def _integer(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """An int in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    v = int(value)
    if low is not None and v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v}")
    return v


def _spd(name: str, value: Any, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a symmetric positive-definite matrix; return ``(symmetrised matrix, lower Cholesky)``."""
    m = _as_matrix(name, value)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be square, got shape {m.shape}")
    if size is not None and m.shape[0] != size:
        raise ValueError(f"{name} has shape {m.shape}, expected ({size}, {size})")
    scale = float(np.max(np.abs(m))) if m.size else 0.0
    if scale == 0.0:
        raise ValueError(f"{name} is zero; a covariance must be positive definite")
    if np.max(np.abs(m - m.T)) > SYM_RTOL * scale:
        raise ValueError(f"{name} is not symmetric (max |C - C^T| > {SYM_RTOL:g} * max |C|); symmetrise it")
    m = 0.5 * (m + m.T)
    chol = _cholesky(name, m)
    return m, chol


def _cholesky(name: str, m: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor or a ``ValueError`` saying that ``name`` is not positive definite."""
    try:
        chol = sla.cholesky(m, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"{name} is not positive definite (Cholesky failed); it may be singular or too ill-conditioned "
            "for float64 (condition number near 1e16)"
        ) from None
    if not np.all(np.isfinite(chol)) or np.any(np.diag(chol) <= 0):
        raise ValueError(f"{name} is not positive definite (non-positive Cholesky pivot)")
    return chol


def _choice(name: str, value: Any, valid: tuple[str, ...]) -> str:
    """A string option among ``valid`` (accepts Enum members with a ``.value``)."""
    v = getattr(value, "value", value)
    if not isinstance(v, str) or v not in valid:
        raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}")
    return v


class Labels(str, Enum):
    """Soft-label option of the student kernel (theory.md §3.2)."""

    DETERMINISTIC = "deterministic"  # Y_hat = M_T X
    STOCHASTIC = "stochastic"  # Y_hat = W_T X + nu E',  W_T ~ q_T


class Metric(str, Enum):
    """Truncation metric G of the rank bottleneck (theory.md §3.2)."""

    TEACHER = "teacher"  # G = Sigma_T^{-1} (KL-optimal)
    RIDGE = "ridge"  # G = A_{lambda_S} (rank-r ridge regression on the soft labels)


_LABELS = tuple(m.value for m in Labels)
_METRICS = tuple(m.value for m in Metric)


def _rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


# ---------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True, eq=False)
class Dataset:
    """A sample ``D_n``: inputs ``X (d x n)`` and labels ``Y (k x n)`` (columns are examples)."""

    X: np.ndarray
    Y: np.ndarray

    def __post_init__(self) -> None:
        X = _as_matrix("X", self.X)
        Y = _as_matrix("Y", self.Y)
        if X.shape[1] != Y.shape[1]:
            raise ValueError(f"X (d x n) and Y (k x n) need the same number of columns, got {X.shape} and {Y.shape}")
        if X.shape[1] < 1:
            raise ValueError("the data set is empty (n = 0)")
        object.__setattr__(self, "X", _readonly(X))
        object.__setattr__(self, "Y", _readonly(Y))

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
        d = _integer("d", self.d, low=1)
        k = _integer("k", self.k, low=1)
        n = _integer("n", self.n, low=1)
        nu = _scalar("nu", self.nu, nonneg=True)
        W = _as_matrix("W_star", self.W_star, (k, d))
        S, L = _spd("Sigma_x", self.Sigma_x, d)
        for name, val in (("d", d), ("k", k), ("n", n), ("nu", nu)):
            object.__setattr__(self, name, val)
        object.__setattr__(self, "W_star", _readonly(W))
        object.__setattr__(self, "Sigma_x", _readonly(S))
        object.__setattr__(self, "_chol_x", L)

    def sample(self, rng: np.random.Generator, n: int | None = None) -> Dataset:
        """Draw ``X = Sigma_x^{1/2} Z`` (d x n) and ``Y = W* X + nu E`` (k x n) from ``rng``."""
        rng = _rng(rng)
        n = self.n if n is None else _integer("n", n, low=1)
        X = self._chol_x @ rng.standard_normal((self.d, n))
        Y = self.W_star @ X + self.nu * rng.standard_normal((self.k, n))
        return Dataset(X, Y)

    def to_dict(self) -> dict[str, Any]:
        return {"d": self.d, "k": self.k, "n": self.n, "nu": self.nu,
                "W_star": self.W_star.tolist(), "Sigma_x": self.Sigma_x.tolist()}


def random_spd(d: int, rng: np.random.Generator, cond: float = 10.0) -> np.ndarray:
    """Random SPD ``Q diag(s) Q^T`` with geometric eigenvalues from 1 down to ``1/cond`` (Haar Q)."""
    d = _integer("d", d, low=1)
    rng = _rng(rng)
    cond = _scalar("cond", cond, positive=True)
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
    d = _integer("d", d, low=1)
    k = _integer("k", k, low=1)
    rng = _rng(rng)
    w_scale = _scalar("w_scale", w_scale, nonneg=True)
    Sigma_x = random_spd(d, rng, cond)
    if w_rank is None:
        W = rng.standard_normal((k, d))
    else:
        r = _integer("w_rank", w_rank, low=0, high=min(k, d))
        W = rng.standard_normal((k, r)) @ rng.standard_normal((r, d)) / math.sqrt(max(r, 1))
    return LinearGaussianProblem(d, k, n, nu, w_scale * W / math.sqrt(d), Sigma_x)


# ---------------------------------------------------------------------------------------------
# matrix normal


@dataclass(frozen=True, eq=False)
class MatrixNormal:
    """Matrix normal ``MN(mean, row_cov, col_cov)``: ``vec W ~ N(vec mean, col_cov kron row_cov)``.

    ``mean`` is ``k x d``; ``col_cov`` (``d x d``, SPD) is the covariance of each row; ``row_cov``
    (``k x k``, SPD) defaults to ``I_k`` (``None``).  Arrays are copied and made read-only; the
    Cholesky factors are computed once at construction (a non-PD covariance is a ``ValueError``).
    """

    mean: np.ndarray
    col_cov: np.ndarray
    row_cov: np.ndarray | None = None

    def __post_init__(self) -> None:
        M = _as_matrix("mean", self.mean)
        k, d = M.shape
        if k < 1 or d < 1:
            raise ValueError(f"mean must be a non-empty k x d matrix, got shape {M.shape}")
        V, LV = _spd("col_cov", self.col_cov, d)
        object.__setattr__(self, "mean", _readonly(M))
        object.__setattr__(self, "col_cov", _readonly(V))
        object.__setattr__(self, "_chol_col", LV)
        object.__setattr__(self, "_prec_chol", None)
        self._set_row()

    def _set_row(self) -> None:
        if self.row_cov is not None:
            U, LU = _spd("row_cov", self.row_cov, self.k)
            object.__setattr__(self, "row_cov", _readonly(U))
            object.__setattr__(self, "_chol_row", LU)
        else:
            object.__setattr__(self, "_chol_row", None)

    @classmethod
    def from_precision(cls, mean: Any, col_precision: Any, row_cov: Any = None, scale: float = 1.0) -> "MatrixNormal":
        """``MN(mean, row_cov, (scale * col_precision)^{-1})`` parametrised by a column *precision*.

        Internally the square-root factor is ``C = L_P^{-T}`` with ``L_P = sqrt(scale) chol(col_precision)``:
        whitening is a multiplication by ``L_P^T`` and nothing inverts the precision explicitly except
        the informational ``col_cov`` attribute.  Use it when the precision is the natural object
        (posterior precisions ``A / tau``: pass ``col_precision=A, scale=1/tau``, so that kernels with
        the same ``A`` share the exact same Cholesky factor up to a scalar; this keeps ill-conditioned
        kernels accurate)."""
        M = _as_matrix("mean", mean)
        k, d = M.shape
        if k < 1 or d < 1:
            raise ValueError(f"mean must be a non-empty k x d matrix, got shape {M.shape}")
        sc = _scalar("scale", scale, positive=True)
        P, LP = _spd("col_precision", col_precision, d)
        LP = math.sqrt(sc) * LP
        obj = object.__new__(cls)
        cov = sla.cho_solve((LP, True), np.eye(d), check_finite=False)
        object.__setattr__(obj, "mean", _readonly(M))
        object.__setattr__(obj, "col_cov", _readonly(0.5 * (cov + cov.T)))
        object.__setattr__(obj, "row_cov", row_cov)
        object.__setattr__(obj, "_chol_col", None)
        object.__setattr__(obj, "_prec_chol", LP)
        obj._set_row()
        return obj

    # square-root factor C of col_cov (C C^T = col_cov): lower Cholesky L, or L_P^{-T} from a precision
    def col_whiten(self, B: np.ndarray) -> np.ndarray:
        """``C^{-1} B`` for ``B`` with d rows."""
        if self._prec_chol is not None:  # type: ignore[attr-defined]
            return self._prec_chol.T @ B  # type: ignore[attr-defined]
        return sla.solve_triangular(self._chol_col, B, lower=True, check_finite=False)  # type: ignore[attr-defined]

    def col_color(self, B: np.ndarray) -> np.ndarray:
        """``C B`` for ``B`` with d rows."""
        if self._prec_chol is not None:  # type: ignore[attr-defined]
            return sla.solve_triangular(self._prec_chol, B, lower=True, trans="T", check_finite=False)  # type: ignore[attr-defined]
        return self._chol_col @ B  # type: ignore[attr-defined]

    def col_color_T(self, B: np.ndarray) -> np.ndarray:
        """``C^T B`` for ``B`` with d rows."""
        if self._prec_chol is not None:  # type: ignore[attr-defined]
            return sla.solve_triangular(self._prec_chol, B, lower=True, check_finite=False)  # type: ignore[attr-defined]
        return self._chol_col.T @ B  # type: ignore[attr-defined]

    def col_logdet(self) -> float:
        """``log det col_cov`` from the triangular factor."""
        if self._prec_chol is not None:  # type: ignore[attr-defined]
            return -2.0 * float(np.sum(np.log(np.diag(self._prec_chol))))  # type: ignore[attr-defined]
        return 2.0 * float(np.sum(np.log(np.diag(self._chol_col))))  # type: ignore[attr-defined]

    @property
    def k(self) -> int:
        return int(self.mean.shape[0])

    @property
    def d(self) -> int:
        return int(self.mean.shape[1])

    @property
    def chol_col(self) -> np.ndarray:
        """A triangular square-root factor ``C`` of ``col_cov`` (``C C^T = col_cov``): the lower
        Cholesky factor, or the upper ``L_P^{-T}`` for :meth:`from_precision` kernels."""
        if self._prec_chol is not None:  # type: ignore[attr-defined]
            return self.col_color(np.eye(self.d))
        return self._chol_col  # type: ignore[attr-defined]

    @property
    def chol_row(self) -> np.ndarray | None:
        """Lower Cholesky factor of ``row_cov`` (``None`` for ``I_k``)."""
        return self._chol_row  # type: ignore[attr-defined]

    def kl(self, other: "MatrixNormal") -> float:
        """``KL(self || other)`` in closed form (theory.md §3.3); see :func:`kl_matrix_normal`."""
        from .divergence import kl_matrix_normal

        return kl_matrix_normal(self, other)

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` draws ``W = M + L_U Z L_V^T`` (``Z`` standard normal), shape ``(size, k, d)``."""
        size = _integer("size", size, low=0)
        rng = _rng(rng)
        Z = rng.standard_normal((size, self.k, self.d))
        W = self.col_color(Z.reshape(size * self.k, self.d).T).T.reshape(size, self.k, self.d)  # Z C^T
        if self.chol_row is not None:
            W = self.chol_row @ W
        return self.mean + W

    def whiten(self, W: Any) -> np.ndarray:
        """``L_U^{-1} (W - M) L_V^{-T}`` for ``W`` of shape ``(..., k, d)`` (standard normal under self)."""
        W = np.asarray(W, dtype=np.float64)
        if W.ndim < 2 or W.shape[-2:] != self.mean.shape:
            raise ValueError(f"W must have shape (..., {self.k}, {self.d}), got {W.shape}")
        if not np.all(np.isfinite(W)):
            raise ValueError("W contains NaN or inf")
        lead = W.shape[:-2]
        D = (W - self.mean).reshape(-1, self.k, self.d)
        b = D.shape[0]
        # right solve: Z1 = D L_V^{-T}  <=>  L_V Z1^T = D^T  (stack all rows as columns)
        Z = self.col_whiten(D.reshape(b * self.k, self.d).T)
        Z = Z.T.reshape(b, self.k, self.d)
        if self.chol_row is not None:
            Zt = np.moveaxis(Z, 1, 0).reshape(self.k, b * self.d)
            Zt = sla.solve_triangular(self.chol_row, Zt, lower=True, check_finite=False)
            Z = np.moveaxis(Zt.reshape(self.k, b, self.d), 0, 1)
        return Z.reshape(*lead, self.k, self.d)

    def logdet_cov(self) -> float:
        """``log det(V kron U) = k log det V + d log det U``."""
        out = self.k * self.col_logdet()
        if self.chol_row is not None:
            out += 2.0 * self.d * float(np.sum(np.log(np.diag(self.chol_row))))
        return out

    def logpdf(self, W: Any) -> np.ndarray | float:
        """``-1/2 [k d log(2 pi) + log det(V kron U) + ||L_U^{-1} (W - M) L_V^{-T}||_F^2]``.

        Vectorised over the leading dimensions of ``W`` (shape ``(..., k, d)``)."""
        Z = self.whiten(W)
        quad = np.sum(Z * Z, axis=(-2, -1))
        out = -0.5 * (self.k * self.d * math.log(2.0 * math.pi) + self.logdet_cov() + quad)
        return float(out) if np.ndim(out) == 0 else out

    def predictive(self, X_star: Any, nu: float) -> "MatrixNormal":
        """Law of predictions ``Y_hat = W X_* + nu E`` at query inputs ``X_* (d x m)`` (theory.md §3.6):
        ``MN(M X_*, I_k, X_*^T Sigma X_* + nu^2 I_m)`` (row covariance must be ``I_k`` when nu > 0)."""
        Xs = _as_matrix("X_star", X_star, (self.d, None))
        nu = _scalar("nu", nu, nonneg=True)
        if self.row_cov is not None and nu > 0:
            raise ValueError("predictive with nu > 0 needs row_cov = I_k (None); the sum is not matrix normal otherwise")
        B = self.col_color_T(Xs)
        C = B.T @ B + nu * nu * np.eye(Xs.shape[1])
        try:
            return MatrixNormal(self.mean @ Xs, 0.5 * (C + C.T), self.row_cov)
        except ValueError as exc:
            raise ValueError(
                f"predictive covariance X_*^T Sigma X_* + nu^2 I is singular ({exc}); use nu > 0 or at most d "
                "linearly independent query inputs"
            ) from None


# ---------------------------------------------------------------------------------------------
# kernels (theory.md §3.1-§3.2)


def _check_data(data: Any) -> Dataset:
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a linear_gaussian.Dataset, got {type(data).__name__}")
    return data


def _gram_chol(X: np.ndarray, lam: float, name: str) -> np.ndarray:
    """Lower Cholesky factor of ``A_lam = X X^T + lam I``."""
    A = X @ X.T
    A[np.diag_indices_from(A)] += lam
    try:
        return _cholesky(name, A)
    except ValueError:
        raise ValueError(
            f"X X^T + {name} I is singular or numerically not positive definite (n < d or collinear inputs?); "
            f"use {name} > 0"
        ) from None


def _gram(X: np.ndarray, lam: float) -> np.ndarray:
    A = X @ X.T
    A[np.diag_indices_from(A)] += lam
    return 0.5 * (A + A.T)


def _chol_inverse(L: np.ndarray) -> np.ndarray:
    """``(L L^T)^{-1}`` from the Cholesky factor (symmetrised)."""
    inv = sla.cho_solve((L, True), np.eye(L.shape[0]), check_finite=False)
    return 0.5 * (inv + inv.T)


def teacher_kernel(data: Dataset, lam_T: float, tau_T: float) -> MatrixNormal:
    """Teacher kernel (theory.md §3.1): ``q_T = MN(M_T, I_k, Sigma_T)`` with
    ``M_T = Y X^T A^{-1}``, ``Sigma_T = tau_T A^{-1}``, ``A = X X^T + lam_T I`` (``tau_T = nu^2``: Bayes)."""
    data = _check_data(data)
    lam = _scalar("lam_T", lam_T, nonneg=True)
    tau = _scalar("tau_T", tau_T, positive=True)
    L = _gram_chol(data.X, lam, "lam_T")
    M = sla.cho_solve((L, True), data.X @ data.Y.T, check_finite=False).T
    return MatrixNormal.from_precision(M, _gram(data.X, lam), scale=1.0 / tau)


def _truncate(Z: np.ndarray, r: int) -> np.ndarray:
    """Best rank-r approximation ``[Z]_r`` (truncated SVD)."""
    if r >= min(Z.shape):
        return Z
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    return (U[:, :r] * s[:r]) @ Vt[:r]


def _check_teacher(data: Dataset, teacher: Any) -> MatrixNormal:
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
    data = _check_data(data)
    teacher = _check_teacher(data, teacher)
    lam = _scalar("lam_S", lam_S, nonneg=True)
    tau = _scalar("tau_S", tau_S, positive=True)
    lab = _choice("labels", labels, _LABELS)
    met = _choice("metric", metric, _METRICS)
    k, d = data.k, data.d
    r = min(k, d) if rank is None else _integer("rank", rank, low=0, high=min(k, d))
    X = data.X
    if lab == Labels.STOCHASTIC.value:
        if rng is None:
            raise ValueError("labels='stochastic' needs rng (a numpy Generator) to draw W_T and the label noise")
        rng = _rng(rng)
        if nu is None:
            raise ValueError("labels='stochastic' needs nu (the soft-label noise scale, usually problem.nu)")
        nu_f = _scalar("nu", nu, nonneg=True)
        W_T = teacher.sample(1, rng)[0]
        Y_hat = W_T @ X + nu_f * rng.standard_normal((k, data.n))
    else:
        if nu is not None:
            _scalar("nu", nu, nonneg=True)
        Y_hat = teacher.mean @ X
    LS = _gram_chol(X, lam, "lam_S")
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
    return MatrixNormal.from_precision(M_S, _gram(X, lam), scale=1.0 / tau)


def label_channel(data: Dataset, teacher: MatrixNormal, lam_S: float, nu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stochastic-label channel of theory.md §3.5: returns ``(P, C_lab, A_S^{-1})`` with
    ``P = X X^T A_S^{-1}`` and ``C_lab = P^T Sigma_T P + nu^2 A_S^{-1} X X^T A_S^{-1}``, so that the
    untruncated ridge fit on stochastic labels is ``M~_S ~ MN(M_T P, I_k, C_lab)``."""
    data = _check_data(data)
    teacher = _check_teacher(data, teacher)
    lam = _scalar("lam_S", lam_S, nonneg=True)
    nu_f = _scalar("nu", nu, nonneg=True)
    LS = _gram_chol(data.X, lam, "lam_S")
    XXt = data.X @ data.X.T
    P = sla.cho_solve((LS, True), XXt, check_finite=False).T  # X X^T A^{-1} (A, XX^T commute)
    P = 0.5 * (P + P.T)
    B = teacher.col_color_T(P)  # C_T^T P
    Ainv = _chol_inverse(LS)
    N = Ainv @ data.X
    C = B.T @ B + nu_f * nu_f * (N @ N.T)
    return P, 0.5 * (C + C.T), Ainv


def marginal_student_kernel(data: Dataset, teacher: MatrixNormal, lam_S: float, tau_S: float, nu: float) -> MatrixNormal:
    """Marginal student kernel of stochastic soft labels without truncation (theory.md §3.5):
    ``MN(M_T P, I_k, Sigma_S + C_lab)``, ``Sigma_S = tau_S A_S^{-1}``."""
    tau = _scalar("tau_S", tau_S, positive=True)
    P, C, Ainv = label_channel(data, teacher, lam_S, nu)
    return MatrixNormal(teacher.mean @ P, tau * Ainv + C)
