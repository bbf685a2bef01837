r"""The matrix normal law and its KL divergence, together (theory.md §3.3).

:class:`MatrixNormal` is ``MN(mean, row_cov, col_cov)``; :func:`kl_matrix_normal` and :func:`kl_terms`
give ``KL(q || p)`` in closed form, split into its mean and covariance terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla

from ._linalg import as_matrix, as_rng, check_integer, check_scalar, check_spd, readonly

__all__ = ["MatrixNormal", "phi", "kl_terms", "kl_matrix_normal", "check_pair", "whiten_by"]


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
        M = as_matrix("mean", self.mean)
        k, d = M.shape
        if k < 1 or d < 1:
            raise ValueError(f"mean must be a non-empty k x d matrix, got shape {M.shape}")
        V, LV = check_spd("col_cov", self.col_cov, d)
        object.__setattr__(self, "mean", readonly(M))
        object.__setattr__(self, "col_cov", readonly(V))
        object.__setattr__(self, "_chol_col", LV)
        object.__setattr__(self, "_prec_chol", None)
        self._set_row()

    def _set_row(self) -> None:
        if self.row_cov is not None:
            U, LU = check_spd("row_cov", self.row_cov, self.k)
            object.__setattr__(self, "row_cov", readonly(U))
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
        M = as_matrix("mean", mean)
        k, d = M.shape
        if k < 1 or d < 1:
            raise ValueError(f"mean must be a non-empty k x d matrix, got shape {M.shape}")
        sc = check_scalar("scale", scale, positive=True)
        P, LP = check_spd("col_precision", col_precision, d)
        LP = math.sqrt(sc) * LP
        obj = object.__new__(cls)
        cov = sla.cho_solve((LP, True), np.eye(d), check_finite=False)
        object.__setattr__(obj, "mean", readonly(M))
        object.__setattr__(obj, "col_cov", readonly(0.5 * (cov + cov.T)))
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
        return kl_matrix_normal(self, other)

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """``size`` draws ``W = M + L_U Z L_V^T`` (``Z`` standard normal), shape ``(size, k, d)``."""
        size = check_integer("size", size, low=0)
        rng = as_rng(rng)
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
        Xs = as_matrix("X_star", X_star, (self.d, None))
        nu = check_scalar("nu", nu, nonneg=True)
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



def phi(x: Any) -> np.ndarray:
    """``phi(x) = x - 1 - log x >= 0`` (zero iff x = 1), by its series in ``x - 1`` near 1."""
    x = np.asarray(x, dtype=np.float64)
    if np.any(x <= 0):
        raise ValueError("phi needs x > 0 (eigenvalues of Sigma_T^{-1} Sigma_S must be positive)")
    delta = x - 1.0
    out = np.empty_like(x)
    small = np.abs(delta) < 0.1
    if np.any(small):
        ds = delta[small]
        acc = np.zeros_like(ds)
        power = ds * ds
        for j in range(2, 24):
            acc = acc + (power / j if j % 2 == 0 else -power / j)
            power = power * ds
        out[small] = acc
    big = ~small
    out[big] = delta[big] - np.log(x[big])
    return out


def check_pair(q: Any, p: Any, qname: str = "student", pname: str = "teacher") -> None:
    for name, obj in ((qname, q), (pname, p)):
        if not isinstance(obj, MatrixNormal):
            raise TypeError(f"{name} must be a MatrixNormal, got {type(obj).__name__}")
    if q.mean.shape != p.mean.shape:
        raise ValueError(f"{qname} and {pname} must have the same mean shape (k, d), got {q.mean.shape} and {p.mean.shape}")


def whiten_by(p: MatrixNormal, A: np.ndarray) -> np.ndarray:
    """``L_{U_p}^{-1} A L_{V_p}^{-T}`` for a ``k x d`` matrix ``A``."""
    Z = p.col_whiten(A.T).T
    if p.chol_row is not None:
        Z = sla.solve_triangular(p.chol_row, Z, lower=True, check_finite=False)
    return Z


class _CovRatio:
    """Spectral summaries of ``C_p^{-1} C_q`` from Cholesky factors (``None`` = identity):
    ``trace = ||L_p^{-1} L_q||_F^2``, ``logdet = 2 sum log diag L_q - 2 sum log diag L_p`` (both
    accurate), and, on demand, the eigenvalues (``eigvalsh`` of ``B B^T``, ``B = L_p^{-1} L_q``)."""

    def __init__(self, Lq: np.ndarray | None, Lp: np.ndarray | None, size: int) -> None:
        self.size = size
        if Lq is None and Lp is None:
            self.B = None
            self.trace, self.logdet = float(size), 0.0
            return
        Lq_ = np.eye(size) if Lq is None else Lq
        self.B = Lq_ if Lp is None else sla.solve_triangular(Lp, Lq_, lower=True, check_finite=False)
        self.trace = float(np.sum(self.B * self.B))
        ld = 0.0 if Lq is None else 2.0 * float(np.sum(np.log(np.diag(Lq))))
        if Lp is not None:
            ld -= 2.0 * float(np.sum(np.log(np.diag(Lp))))
        self.logdet = ld

    def eigs(self) -> np.ndarray:
        if self.B is None:
            return np.ones(self.size)
        G = self.B @ self.B.T
        mu = np.linalg.eigvalsh(0.5 * (G + G.T))
        if np.any(mu <= 0):
            raise ValueError("covariance ratio has a non-positive eigenvalue in float64 (covariances too ill-conditioned)")
        return mu


class _ColRatio(_CovRatio):
    """:class:`_CovRatio` for the column covariances, through the kernels' factor operations
    (``B = C_p^{-1} C_q``), so precision-parametrised kernels are never inverted."""

    def __init__(self, q: MatrixNormal, p: MatrixNormal) -> None:
        self.size = q.d
        Pq, Pp = q._prec_chol, p._prec_chol  # type: ignore[attr-defined]
        if Pq is not None and Pp is not None:
            # B = L_Pp^T L_Pq^{-T}; B^T = L_Pq^{-1} L_Pp has the same Frobenius norm and spectrum of B B^T
            self.B = sla.solve_triangular(Pq, Pp, lower=True, check_finite=False)
        else:
            self.B = p.col_whiten(q.col_color(np.eye(q.d)))
        self.trace = float(np.sum(self.B * self.B))
        self.logdet = q.col_logdet() - p.col_logdet()


def _cov_term(q: MatrixNormal, p: MatrixNormal) -> float:
    """``1/2 [tr(U_p^{-1}U_q) tr(V_p^{-1}V_q) - kd - d log det(U_p^{-1}U_q) - k log det(V_p^{-1}V_q)]``.

    Evaluated directly from traces and Cholesky log-determinants when the cancellation is mild
    (result > 1e-4 x the size of the summands); otherwise all eigenvalues are near 1 and the sum
    ``1/2 sum_{ij} phi(alpha_j mu_i)`` over the eigenvalues (series near 1) is used instead."""
    k, d = q.k, q.d
    col = _ColRatio(q, p)
    row = _CovRatio(q.chol_row, p.chol_row, k)
    direct = 0.5 * (row.trace * col.trace - k * d - d * row.logdet - k * col.logdet)
    scale = row.trace * col.trace + k * d + d * abs(row.logdet) + k * abs(col.logdet)
    if direct > 1e-4 * scale:
        return float(direct)
    mu = col.eigs()
    alpha = row.eigs()
    if row.B is None:
        return 0.5 * k * float(np.sum(phi(mu)))
    return 0.5 * float(np.sum(phi(np.outer(alpha, mu))))


def kl_terms(q: MatrixNormal, p: MatrixNormal) -> tuple[float, float]:
    """``(mean term, covariance term)`` of ``KL(q || p)`` (theory.md §3.3, general row covariances).

    mean term ``1/2 ||U_p^{-1/2} (M_q - M_p) V_p^{-1/2}||_F^2``; covariance term
    ``1/2 [tr(U_p^{-1}U_q) tr(V_p^{-1}V_q) - kd - d log det(U_p^{-1}U_q) - k log det(V_p^{-1}V_q)]
    = 1/2 sum_{i,j} phi(alpha_j mu_i)`` with ``alpha``, ``mu`` the eigenvalues of ``U_p^{-1}U_q``
    and ``V_p^{-1}V_q`` (the Kronecker product's eigenvalues are the products)."""
    check_pair(q, p, "q", "p")
    Z = whiten_by(p, q.mean - p.mean)
    mean_term = 0.5 * float(np.sum(Z * Z))
    return mean_term, _cov_term(q, p)


def kl_matrix_normal(q: MatrixNormal, p: MatrixNormal) -> float:
    """``KL(q || p)`` between matrix normals (theory.md §3.3)::

        K = 1/2 ||U_p^{-1/2} Delta V_p^{-1/2}||_F^2 + 1/2 sum_{i,j} phi(alpha_j mu_i),

    which for row covariances ``I_k`` is ``1/2 tr(Delta Sigma_T^{-1} Delta^T) + (k/2)[tr(Sigma_T^{-1}
    Sigma_S) - d - log det(Sigma_T^{-1} Sigma_S)]``."""
    m, c = kl_terms(q, p)
    return m + c


