r"""Distillation divergence between matrix-normal kernels and its exact decomposition (theory.md §3.3-§3.6).

:math:`K = \mathrm{KL}(q_S \Vert q_T)` (student :math:`\Vert` teacher). With
:math:`\Delta = M_S - M_T` and row covariance :math:`I_k`,

.. math::
    K = \tfrac12 \operatorname{tr}(\Delta \Sigma_T^{-1} \Delta^\top) + \tfrac k2 \sum_i \varphi(\mu_i),
    \qquad \varphi(x) = x - 1 - \log x,

:math:`\mu_i` the eigenvalues of :math:`\Sigma_T^{-1} \Sigma_S`, and :math:`K = B + R_r + V` (bias,
rank bottleneck, variance). All whitening uses Cholesky factors and triangular solves; the
:math:`\mu_i` enter through traces of :math:`L_T^{-1} L_S` and Cholesky log-determinants, or (when
these would cancel) eigenvalues through :math:`\varphi` evaluated by a series near 1, so that
near-identical kernels give accurate (not cancelled) small divergences.
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
        """The record as plain JSON values.

        Returns:
            Every field, as a dict.
        """
        return asdict(self)


@dataclass(frozen=True)
class Decomposition:
    r"""Exact split of the divergence (theory.md §3.4).

    .. math::
        \text{total} = \text{bias} + \text{rank\_bottleneck} + \text{variance}, \qquad
        \text{mean\_term} = \text{bias} + \text{rank\_bottleneck}.
    """

    total: float
    bias: float
    variance: float
    rank_bottleneck: float
    mean_term: float
    rank: int

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values.

        Returns:
            Every field, as a dict.
        """
        return asdict(self)


@dataclass(frozen=True)
class StochasticLabelKL:
    r"""Stochastic soft labels without truncation (theory.md §3.5).

    .. math::
        \text{expected} &= \mathbb E_{\hat Y}\,\mathrm{KL}(q_S(\cdot\mid\hat Y) \Vert q_T)
            = \text{mean\_term} + \text{label\_term} + \text{variance},\\
        \text{marginal} &= \mathrm{KL}\bigl(\mathcal{MN}(M_T P, I, \Sigma_S + C_{\text{lab}}) \Vert q_T\bigr),\\
        \text{convexity\_gap} &= \text{expected} - \text{marginal}
            = \tfrac k2 \log\det(I + \Sigma_S^{-1} C_{\text{lab}}) \ge 0

    (the gap is computed independently of the other two).
    """

    expected: float
    marginal: float
    convexity_gap: float
    mean_term: float
    label_term: float
    variance: float

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values.

        Returns:
            Every field, as a dict.
        """
        return asdict(self)


def _rank_arg(rank: Any, k: int, d: int) -> int:
    return min(k, d) if rank is None else check_integer("rank", rank, low=0, high=min(k, d))


def decompose(student: MatrixNormal, teacher: MatrixNormal, rank: int | None) -> Decomposition:
    r"""Exact split :math:`K = B + R_r + V` (theory.md §3.4).

    .. math::
        R_r = \tfrac12 \sum_{i>r} s_i^2, \qquad
        B = \tfrac12 \lVert (M_S - M_T)\Sigma_T^{-1/2}\rVert_F^2 - R_r \ge 0, \qquad
        V = \tfrac k2 \sum_i \varphi(\mu_i),

    with :math:`s_i` the singular values of :math:`U_T^{-1/2} M_T \Sigma_T^{-1/2}` (so :math:`s_i^2` are
    the eigenvalues of :math:`M_T \Sigma_T^{-1} M_T^\top` for :math:`U_T = I`); :math:`B \ge 0` is
    Eckart-Young and needs :math:`\operatorname{rank} M_S \le r`.

    Args:
        student: :math:`q_S`.
        teacher: :math:`q_T`.
        rank: the bottleneck r; ``None`` means :math:`\min(k, d)` (no bottleneck).

    Returns:
        The :class:`Decomposition`.

    Raises:
        ValueError: a student mean of numerical rank above ``rank``
            (:math:`s_{r+1} > 10^{-7} s_1`), or a bad ``rank``.
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
    r"""KL between the predictive laws at ``X_star`` (theory.md §3.6); :math:`K_{\text{pred}} \le K_{\text{param}}`.

    Args:
        student: :math:`q_S`.
        teacher: :math:`q_T`.
        X_star: the :math:`d \times m` query inputs.
        nu: the noise level :math:`\nu \ge 0` (see :meth:`MatrixNormal.predictive`).

    Returns:
        :math:`K_{\text{pred}}` (nats).
    """
    check_pair(student, teacher)
    return kl_matrix_normal(student.predictive(X_star, nu), teacher.predictive(X_star, nu))


def ridge_shrinkage_bias(X: Any, M_T: Any, lam_T: float, tau_T: float, lam_S: float) -> float:
    r"""Bias of the untruncated deterministic-label student (theory.md §3.4).

    .. math::
        \tfrac12 \lVert (\tilde M_S - M_T)\Sigma_T^{-1/2}\rVert^2
        = \frac{\lambda_S^2}{2\tau_T} \sum_i \lVert M_T v_i\rVert^2 \frac{e_i + \lambda_T}{(e_i + \lambda_S)^2}

    with :math:`(e_i, v_i)` the eigenpairs of :math:`X X^\top`.

    Args:
        X: the :math:`d \times n` inputs.
        M_T: the teacher mean (:math:`k \times d`).
        lam_T: the teacher's ridge :math:`\lambda_T`.
        tau_T: the teacher's temperature :math:`\tau_T > 0`.
        lam_S: the student's ridge :math:`\lambda_S \ge 0`.

    Returns:
        The bias (nats).

    Raises:
        ValueError: :math:`X X^\top` singular with :math:`\lambda_S = 0`.
    """
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
    r""":math:`R_r` for :math:`\lambda_T = 0` (theory.md §3.4): the energy of the teacher's predictions outside their top-r subspace.

    .. math::
        R_r = \frac{1}{2\tau_T} \sum_{i>r} s_i^2(M_T X)

    (grows linearly in n).

    Args:
        X: the :math:`d \times n` training inputs.
        M_T: the teacher mean (:math:`k \times d`).
        tau_T: the teacher's temperature :math:`\tau_T > 0`.
        rank: the bottleneck r.

    Returns:
        :math:`R_r` (nats).
    """
    Xa = as_matrix("X", X)
    M = as_matrix("M_T", M_T, (None, Xa.shape[0]))
    tau_T = check_scalar("tau_T", tau_T, positive=True)
    r = check_integer("rank", rank, low=0, high=min(M.shape))
    s = sla.svdvals(M @ Xa, check_finite=False)
    return float(0.5 / tau_T * np.sum(s[r:] ** 2))


def stochastic_label_kl(data: Dataset, teacher: MatrixNormal, lam_S: float, tau_S: float, nu: float) -> StochasticLabelKL:
    r"""Closed forms of theory.md §3.5 (stochastic soft labels, no truncation).

    With :math:`P = X X^\top A_S^{-1}`,
    :math:`C_{\text{lab}} = P \Sigma_T P + \nu^2 A_S^{-1} X X^\top A_S^{-1}`,
    :math:`\Sigma_S = \tau_S A_S^{-1}`:

    .. math::
        \text{expected} &= \tfrac12 \lVert M_T (P - I)\Sigma_T^{-1/2}\rVert^2
            + \tfrac k2 \operatorname{tr}(\Sigma_T^{-1} C_{\text{lab}}) + V,\\
        \text{marginal} &= \mathrm{KL}\bigl(\mathcal{MN}(M_T P, I_k, \Sigma_S + C_{\text{lab}}) \Vert q_T\bigr),\\
        \text{convexity\_gap} &= \tfrac k2 \log\det(I + \Sigma_S^{-1} C_{\text{lab}})
            \quad (= \text{expected} - \text{marginal}).

    Args:
        data: the training sample.
        teacher: :math:`q_T`.
        lam_S: the student's ridge :math:`\lambda_S`.
        tau_S: the student's temperature :math:`\tau_S > 0`.
        nu: the label-noise scale :math:`\nu \ge 0`.

    Returns:
        The :class:`StochasticLabelKL`.
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
    r"""Monte Carlo :math:`\mathbb E_{\hat Y} K` for stochastic soft labels with truncation (theory.md §3.5).

    Each draw: :math:`W_T \sim q_T`, :math:`\hat Y = W_T X + \nu E'`,
    :math:`\tilde M_S = \hat Y X^\top A_S^{-1}`, truncation in the metric of :func:`student_kernel`, then

    .. math::
        K = \tfrac12 \lVert (M_S - M_T)\Sigma_T^{-1/2}\rVert^2 + V

    (:math:`V` does not depend on the draw). Vectorised over ``batch`` draws; standard error =
    sample sd / :math:`\sqrt n`.

    Args:
        data: the training sample.
        teacher: :math:`q_T`.
        lam_S: the student's ridge :math:`\lambda_S`.
        tau_S: the student's temperature :math:`\tau_S > 0`.
        nu: the label-noise scale :math:`\nu \ge 0`.
        rank: the bottleneck r, or ``None``.
        rng: a ``numpy.random.Generator`` (or a seed).
        n_samples: number of draws.
        metric: ``"teacher"`` or ``"ridge"`` (see :func:`student_kernel`).
        batch: draws per vectorised batch.

    Returns:
        An :class:`MCEstimate`.
    """
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
    r"""Monte Carlo KL with its standard error.

    .. math::
        \mathrm{KL}(q \Vert p) \approx \frac1n \sum_j \bigl[\log q(W_j) - \log p(W_j)\bigr],
        \qquad W_j \sim q

    Args:
        q: the first law.
        p: the second law.
        n_samples: number of draws n.
        rng: a ``numpy.random.Generator`` (or a seed).
        batch: draws per vectorised batch.

    Returns:
        An :class:`MCEstimate`.
    """
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
