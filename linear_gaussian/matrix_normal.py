r"""The matrix normal law and its KL divergence, together (theory.md §3.3).

:class:`MatrixNormal` is :math:`\mathcal{MN}(M, U, V)`; :func:`kl_matrix_normal` and
:func:`kl_terms` give :math:`\mathrm{KL}(q \Vert p)` in closed form, split into its mean and
covariance terms.
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
    r"""Matrix normal :math:`\mathcal{MN}(M, U, V)`: :math:`\operatorname{vec} W \sim \mathcal N(\operatorname{vec} M, V \otimes U)`.

    ``mean`` :math:`M` is :math:`k \times d`; ``col_cov`` :math:`V` (:math:`d \times d`, SPD) is the
    covariance of each row; ``row_cov`` :math:`U` (:math:`k \times k`, SPD) defaults to :math:`I_k`
    (``None``). Arrays are copied and made read-only; the Cholesky factors are computed once at
    construction.

    Args:
        mean: the :math:`k \times d` mean.
        col_cov: the :math:`d \times d` column covariance :math:`V`.
        row_cov: the :math:`k \times k` row covariance :math:`U`, or ``None`` for :math:`I_k`.

    Raises:
        ValueError: an empty mean, wrong shapes, NaN/inf, or a covariance that is not positive definite.
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
        r"""A matrix normal parametrised by a column *precision*: :math:`\mathcal{MN}(M, U, (s P)^{-1})`.

        Internally the square-root factor is :math:`C = L_P^{-\top}` with
        :math:`L_P = \sqrt s\,\operatorname{chol}(P)`: whitening is a multiplication by
        :math:`L_P^\top` and nothing inverts the precision explicitly except the informational
        ``col_cov`` attribute. Use it when the precision is the natural object (posterior precisions
        :math:`A/\tau`: pass ``col_precision=A, scale=1/tau``, so that kernels with the same :math:`A`
        share the exact same Cholesky factor up to a scalar; this keeps ill-conditioned kernels accurate).

        Args:
            mean: the :math:`k \times d` mean :math:`M`.
            col_precision: the :math:`d \times d` SPD precision :math:`P`.
            row_cov: the row covariance :math:`U`, or ``None`` for :math:`I_k`.
            scale: :math:`s > 0`.

        Returns:
            The :class:`MatrixNormal`.

        Raises:
            ValueError: an empty mean, ``scale <= 0``, or a precision that is not SPD.
        """
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
        r""":math:`C^{-1} B` for ``B`` with d rows (:math:`C C^\top = V`).

        Args:
            B: a matrix with d rows.

        Returns:
            :math:`C^{-1} B`.
        """
        if self._prec_chol is not None:  # type: ignore[attr-defined]
            return self._prec_chol.T @ B  # type: ignore[attr-defined]
        return sla.solve_triangular(self._chol_col, B, lower=True, check_finite=False)  # type: ignore[attr-defined]

    def col_color(self, B: np.ndarray) -> np.ndarray:
        r""":math:`C B` for ``B`` with d rows (:math:`C C^\top = V`).

        Args:
            B: a matrix with d rows.

        Returns:
            :math:`C B`.
        """
        if self._prec_chol is not None:  # type: ignore[attr-defined]
            return sla.solve_triangular(self._prec_chol, B, lower=True, trans="T", check_finite=False)  # type: ignore[attr-defined]
        return self._chol_col @ B  # type: ignore[attr-defined]

    def col_color_T(self, B: np.ndarray) -> np.ndarray:
        r""":math:`C^\top B` for ``B`` with d rows (:math:`C C^\top = V`).

        Args:
            B: a matrix with d rows.

        Returns:
            :math:`C^\top B`.
        """
        if self._prec_chol is not None:  # type: ignore[attr-defined]
            return sla.solve_triangular(self._prec_chol, B, lower=True, check_finite=False)  # type: ignore[attr-defined]
        return self._chol_col.T @ B  # type: ignore[attr-defined]

    def col_logdet(self) -> float:
        r""":math:`\log\det V` from the triangular factor.

        Returns:
            The log-determinant of ``col_cov``.
        """
        if self._prec_chol is not None:  # type: ignore[attr-defined]
            return -2.0 * float(np.sum(np.log(np.diag(self._prec_chol))))  # type: ignore[attr-defined]
        return 2.0 * float(np.sum(np.log(np.diag(self._chol_col))))  # type: ignore[attr-defined]

    @property
    def k(self) -> int:
        """Number of rows of the mean (outputs)."""
        return int(self.mean.shape[0])

    @property
    def d(self) -> int:
        """Number of columns of the mean (inputs)."""
        return int(self.mean.shape[1])

    @property
    def chol_col(self) -> np.ndarray:
        r"""A triangular square-root factor :math:`C` of ``col_cov`` (:math:`C C^\top = V`).

        The lower Cholesky factor, or the upper :math:`L_P^{-\top}` for :meth:`from_precision` kernels.
        """
        if self._prec_chol is not None:  # type: ignore[attr-defined]
            return self.col_color(np.eye(self.d))
        return self._chol_col  # type: ignore[attr-defined]

    @property
    def chol_row(self) -> np.ndarray | None:
        """Lower Cholesky factor of ``row_cov`` (``None`` for ``I_k``)."""
        return self._chol_row  # type: ignore[attr-defined]

    def kl(self, other: "MatrixNormal") -> float:
        r""":math:`\mathrm{KL}(\text{self} \Vert \text{other})` in closed form (theory.md §3.3).

        Args:
            other: a :class:`MatrixNormal` of the same shape.

        Returns:
            The KL divergence (nats), see :func:`kl_matrix_normal`.
        """
        return kl_matrix_normal(self, other)

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        r"""Draws :math:`W = M + L_U Z C^\top` with :math:`Z` standard normal.

        Args:
            size: number of draws, :math:`\ge 0`.
            rng: a ``numpy.random.Generator`` (or a seed).

        Returns:
            ``(size, k, d)`` samples.
        """
        size = check_integer("size", size, low=0)
        rng = as_rng(rng)
        Z = rng.standard_normal((size, self.k, self.d))
        W = self.col_color(Z.reshape(size * self.k, self.d).T).T.reshape(size, self.k, self.d)  # Z C^T
        if self.chol_row is not None:
            W = self.chol_row @ W
        return self.mean + W

    def whiten(self, W: Any) -> np.ndarray:
        r""":math:`L_U^{-1} (W - M) C^{-\top}`, standard normal when :math:`W` is drawn from self.

        Args:
            W: ``(..., k, d)`` matrices.

        Returns:
            The whitened matrices, same shape.

        Raises:
            ValueError: ``W`` has the wrong shape or holds NaN/inf.
        """
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
        r"""Log-determinant of the full covariance.

        .. math::
            \log\det(V \otimes U) = k \log\det V + d \log\det U

        Returns:
            The log-determinant.
        """
        out = self.k * self.col_logdet()
        if self.chol_row is not None:
            out += 2.0 * self.d * float(np.sum(np.log(np.diag(self.chol_row))))
        return out

    def logpdf(self, W: Any) -> np.ndarray | float:
        r"""Log-density, vectorised over the leading dimensions of ``W``.

        .. math::
            \log p(W) = -\tfrac12\bigl[k d \log(2\pi) + \log\det(V \otimes U)
            + \lVert L_U^{-1} (W - M) C^{-\top}\rVert_F^2\bigr]

        Args:
            W: ``(..., k, d)`` matrices.

        Returns:
            A float, or an array of the leading shape.
        """
        Z = self.whiten(W)
        quad = np.sum(Z * Z, axis=(-2, -1))
        out = -0.5 * (self.k * self.d * math.log(2.0 * math.pi) + self.logdet_cov() + quad)
        return float(out) if np.ndim(out) == 0 else out

    def predictive(self, X_star: Any, nu: float) -> "MatrixNormal":
        r"""Law of the predictions :math:`\hat Y = W X_* + \nu E` at query inputs :math:`X_*` (theory.md §3.6).

        .. math::
            \hat Y \sim \mathcal{MN}(M X_*,\ I_k,\ X_*^\top V X_* + \nu^2 I_m)

        (the row covariance must be :math:`I_k` when :math:`\nu > 0`).

        Args:
            X_star: the :math:`d \times m` query inputs.
            nu: the noise level :math:`\nu \ge 0`.

        Returns:
            The predictive :class:`MatrixNormal` (:math:`k \times m`).

        Raises:
            ValueError: a row covariance with :math:`\nu > 0`, or a singular predictive covariance.
        """
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
    r""":math:`\varphi(x) = x - 1 - \log x \ge 0` (zero iff :math:`x = 1`), by its series in :math:`x - 1` near 1.

    Args:
        x: positive values (array-like).

    Returns:
        :math:`\varphi(x)`, elementwise, float64.

    Raises:
        ValueError: some :math:`x \le 0`.
    """
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
    """Check that ``q`` and ``p`` are matrix normals of the same shape.

    Args:
        q: the first law.
        p: the second law.
        qname: the name of ``q`` in messages.
        pname: the name of ``p`` in messages.

    Raises:
        TypeError: one of them is not a :class:`MatrixNormal`.
        ValueError: their means have different shapes.
    """
    for name, obj in ((qname, q), (pname, p)):
        if not isinstance(obj, MatrixNormal):
            raise TypeError(f"{name} must be a MatrixNormal, got {type(obj).__name__}")
    if q.mean.shape != p.mean.shape:
        raise ValueError(f"{qname} and {pname} must have the same mean shape (k, d), got {q.mean.shape} and {p.mean.shape}")


def whiten_by(p: MatrixNormal, A: np.ndarray) -> np.ndarray:
    r""":math:`L_{U_p}^{-1} A\, C_p^{-\top}` for a :math:`k \times d` matrix :math:`A`.

    Args:
        p: the law whose factors whiten.
        A: a :math:`k \times d` matrix.

    Returns:
        The whitened :math:`k \times d` matrix.
    """
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
    r"""Mean and covariance terms of :math:`\mathrm{KL}(q \Vert p)` (theory.md §3.3, general row covariances).

    .. math::
        \text{mean} &= \tfrac12 \lVert U_p^{-1/2} (M_q - M_p) V_p^{-1/2}\rVert_F^2,\\
        \text{cov} &= \tfrac12\bigl[\operatorname{tr}(U_p^{-1}U_q)\operatorname{tr}(V_p^{-1}V_q) - kd
        - d\log\det(U_p^{-1}U_q) - k\log\det(V_p^{-1}V_q)\bigr]
        = \tfrac12 \sum_{i,j} \varphi(\alpha_j \mu_i),

    with :math:`\alpha`, :math:`\mu` the eigenvalues of :math:`U_p^{-1}U_q` and :math:`V_p^{-1}V_q`
    (the Kronecker product's eigenvalues are the products).

    Args:
        q: the first law (the student).
        p: the second law (the teacher).

    Returns:
        ``(mean_term, cov_term)`` in nats.
    """
    check_pair(q, p, "q", "p")
    Z = whiten_by(p, q.mean - p.mean)
    mean_term = 0.5 * float(np.sum(Z * Z))
    return mean_term, _cov_term(q, p)


def kl_matrix_normal(q: MatrixNormal, p: MatrixNormal) -> float:
    r""":math:`\mathrm{KL}(q \Vert p)` between matrix normals (theory.md §3.3).

    .. math::
        K = \tfrac12 \lVert U_p^{-1/2} \Delta V_p^{-1/2}\rVert_F^2 + \tfrac12 \sum_{i,j} \varphi(\alpha_j \mu_i),

    which for row covariances :math:`I_k` is

    .. math::
        \tfrac12 \operatorname{tr}(\Delta \Sigma_T^{-1} \Delta^\top)
        + \tfrac k2 \bigl[\operatorname{tr}(\Sigma_T^{-1}\Sigma_S) - d - \log\det(\Sigma_T^{-1}\Sigma_S)\bigr].

    Args:
        q: the first law (the student).
        p: the second law (the teacher).

    Returns:
        The KL divergence (nats), :func:`kl_terms` summed.
    """
    m, c = kl_terms(q, p)
    return m + c


