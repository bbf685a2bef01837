r"""Gaussian predictive kernels (theory.md §3.6, regression).

:func:`gaussian_predictive_divergence` is the KL between the matrix normals
:math:`\mathcal{MN}(M_S, I_k, C_S)` and :math:`\mathcal{MN}(M_T, I_k, C_T)` (§3.3 with
:math:`(M, \Sigma, d) \to (M X_*, C, m)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ._linalg import as_f64, cholesky, logdet_chol

__all__ = ["GaussianDivergence", "gaussian_predictive_divergence"]


@dataclass(frozen=True)
class GaussianDivergence:
    r"""KL between matrix normals :math:`\mathcal{MN}(M_S, I_k, C_S) \Vert \mathcal{MN}(M_T, I_k, C_T)` (theory.md §3.3).

    With :math:`\Delta = M_S - M_T`:

    .. math::
        \text{mean\_term} = \tfrac12 \operatorname{tr}(\Delta C_T^{-1} \Delta^\top), \qquad
        \text{cov\_term} = \tfrac k2 \bigl[\operatorname{tr}(C_T^{-1} C_S) - m - \log\det(C_T^{-1} C_S)\bigr],

    and ``value = mean_term + cov_term``; ``k`` outputs, ``m`` query inputs.
    """

    value: float
    mean_term: float
    cov_term: float
    k: int
    m: int

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values.

        Returns:
            ``{"value", "mean_term", "cov_term", "k", "m"}``.
        """
        return {
            "value": self.value,
            "mean_term": self.mean_term,
            "cov_term": self.cov_term,
            "k": self.k,
            "m": self.m,
        }


def gaussian_predictive_divergence(mean_s: Any, cov_s: Any, mean_t: Any, cov_t: Any) -> GaussianDivergence:
    r"""KL between Gaussian predictive kernels (theory.md §3.3, §3.6).

    :math:`M` is :math:`k \times m` (k outputs, m query inputs; a vector is read as :math:`k = 1`),
    :math:`C` the :math:`m \times m` column covariance (for the linear-Gaussian model
    :math:`C = X_*^\top \Sigma X_* + \nu^2 I_m`). With :math:`\Delta = M_S - M_T`:

    .. math::
        K = \tfrac12 \operatorname{tr}(\Delta C_T^{-1} \Delta^\top)
        + \tfrac k2 \bigl[\operatorname{tr}(C_T^{-1} C_S) - m - \log\det(C_T^{-1} C_S)\bigr],

    computed with Cholesky factors (no explicit inverse).

    Args:
        mean_s: the student's predictive mean :math:`M_S`, ``(k, m)`` or ``(m,)``.
        cov_s: the student's column covariance :math:`C_S`, ``(m, m)``, positive definite.
        mean_t: the teacher's predictive mean :math:`M_T`, same shape as ``mean_s``.
        cov_t: the teacher's column covariance :math:`C_T`, ``(m, m)``, positive definite.

    Returns:
        A :class:`GaussianDivergence` (nats).

    Raises:
        ValueError: shapes that disagree, NaN/inf, or a covariance that is not positive definite.
    """
    Ms = as_f64(mean_s, "mean_s")
    Mt = as_f64(mean_t, "mean_t")
    if Ms.ndim == 1:
        Ms = Ms[None, :]
    if Mt.ndim == 1:
        Mt = Mt[None, :]
    if Ms.ndim != 2 or Ms.shape != Mt.shape:
        raise ValueError(f"mean_s and mean_t must both be k×m matrices of equal shape, got {tuple(Ms.shape)} and {tuple(Mt.shape)}")
    k, m = Ms.shape
    Cs = as_f64(cov_s, "cov_s")
    Ct = as_f64(cov_t, "cov_t")
    for C, nm in ((Cs, "cov_s"), (Ct, "cov_t")):
        if C.shape != (m, m):
            raise ValueError(f"{nm} must be the {m}×{m} column covariance of the {m} query inputs, got {tuple(C.shape)}")
    Ls = cholesky(Cs, "cov_s")
    Lt = cholesky(Ct, "cov_t")
    D = Ms - Mt
    # tr(Δ C_T⁻¹ Δᵀ) = ‖L_T⁻¹ Δᵀ‖_F²
    mean_term = 0.5 * float(torch.linalg.solve_triangular(Lt, D.T, upper=False).pow(2).sum())
    tr = float(torch.linalg.solve_triangular(Lt, Ls, upper=False).pow(2).sum())  # tr(C_T⁻¹ C_S)
    cov_term = 0.5 * k * (tr - m - (logdet_chol(Ls) - logdet_chol(Lt)))
    cov_term = max(cov_term, 0.0)
    return GaussianDivergence(mean_term + cov_term, mean_term, cov_term, int(k), int(m))
