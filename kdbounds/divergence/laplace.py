r"""Laplace weight-space divergence (theory.md §3.3, §6) for pairs that share a parameter space.

:func:`laplace_divergence` gives, in closed form,

.. math::
    \mathrm{KL}\bigl(\mathcal N(w_S, \tau (H_S + \delta I)^{-1}) \,\Vert\,
    \mathcal N(w_T, \tau (H_T + \delta I)^{-1})\bigr)

for diagonal or small dense (last-layer) precisions, split into its mean and covariance terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from .._checks import check_nonnegative, check_positive
from ._linalg import as_f64, cholesky, logdet_chol

__all__ = ["LaplaceDivergence", "laplace_divergence"]


@dataclass(frozen=True)
class LaplaceDivergence:
    r"""Closed-form KL between two Laplace (Gaussian) weight posteriors.

    ``value = mean_term + cov_term`` with :math:`P = H + \delta I`, :math:`\Sigma = \tau P^{-1}` and
    :math:`\Delta = w_S - w_T`:

    .. math::
        \text{mean\_term} &= \tfrac12 \Delta^\top \Sigma_T^{-1} \Delta = \tfrac{1}{2\tau} \Delta^\top P_T \Delta,\\
        \text{cov\_term} &= \tfrac12 \bigl[\operatorname{tr}(\Sigma_T^{-1}\Sigma_S) - p - \log\det(\Sigma_T^{-1}\Sigma_S)\bigr]
        = \tfrac12 \bigl[\operatorname{tr}(P_T P_S^{-1}) - p - \log\det(P_T P_S^{-1})\bigr]

    (the covariance term does not depend on :math:`\tau`).
    """

    value: float
    mean_term: float
    cov_term: float
    dim: int
    tau: float
    delta: float
    kind: str

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values.

        Returns:
            ``{"value", "mean_term", "cov_term", "dim", "tau", "delta", "kind"}``.
        """
        return {
            "value": self.value,
            "mean_term": self.mean_term,
            "cov_term": self.cov_term,
            "dim": self.dim,
            "tau": self.tau,
            "delta": self.delta,
            "kind": self.kind,
        }



def laplace_divergence(
    w_s: Any,
    w_t: Any,
    prec_s: Any,
    prec_t: Any,
    tau: float = 1.0,
    kind: Literal["diag", "dense", "last_layer"] = "diag",
    *,
    delta: float = 0.0,
) -> LaplaceDivergence:
    r"""Closed-form KL between Laplace posteriors with :math:`P = H + \delta I` (theory.md §3.3, §6).

    With :math:`\Delta = w_S - w_T` and :math:`p` parameters,

    .. math::
        \mathrm{KL}\bigl(\mathcal N(w_S, \tau P_S^{-1}) \Vert \mathcal N(w_T, \tau P_T^{-1})\bigr)
        = \underbrace{\tfrac{1}{2\tau} \Delta^\top P_T \Delta}_{\text{mean term}}
        + \underbrace{\tfrac12 \bigl[\operatorname{tr}(P_T P_S^{-1}) - p - \log\det(P_T P_S^{-1})\bigr]}_{\text{cov term}}

    (:math:`\tau` cancels in the covariance term). ``kind="diag"``: ``prec_*`` are vectors (diagonal
    precisions, e.g. a diagonal GGN/Fisher) and the covariance term is
    :math:`\tfrac12 \sum_i \varphi(P_{T,i} / P_{S,i})`, :math:`\varphi(x) = x - 1 - \log x`.
    ``kind="dense"`` (alias ``"last_layer"``): ``prec_*`` are small dense :math:`p \times p` matrices
    (e.g. the last-layer Hessian/GGN); traces and log-determinants by Cholesky, no explicit inverse.
    Weights of any shape are flattened (row-major, the same order as the precision's rows).

    Args:
        w_s: the student's weights :math:`w_S` (any shape, flattened).
        w_t: the teacher's weights :math:`w_T`, same number of entries.
        prec_s: the student's precision :math:`H_S` (vector for ``"diag"``, matrix for ``"dense"``).
        prec_t: the teacher's precision :math:`H_T`.
        tau: posterior temperature :math:`\tau > 0`.
        kind: ``"diag"``, ``"dense"`` or ``"last_layer"``.
        delta: damping :math:`\delta \ge 0` added to both precisions.

    Returns:
        A :class:`LaplaceDivergence` (nats).

    Raises:
        ValueError: shapes disagree, :math:`\tau \le 0`, :math:`\delta < 0`, NaN/inf, unknown ``kind``, empty
            weights, or a damped precision that is not positive definite.
        TypeError: an argument that is not a number / an array of numbers.
    """
    if kind not in ("diag", "dense", "last_layer"):
        raise ValueError(f"kind must be 'diag', 'dense' or 'last_layer', got {kind!r}")
    tau_f = check_positive("tau", tau)  # the posterior temperature
    delta_f = check_nonnegative("delta", delta, "the damping added to both precisions is >= 0 (0: none)")
    ws = as_f64(w_s, "w_s").reshape(-1)
    wt = as_f64(w_t, "w_t").reshape(-1)
    if ws.shape != wt.shape:
        raise ValueError(
            f"w_s and w_t must have the same number of parameters, got {ws.numel()} and {wt.numel()}"
        )
    p = ws.numel()
    if p == 0:
        raise ValueError("w_s is empty: no parameters")
    diff = ws - wt
    Ps = as_f64(prec_s, "prec_s")
    Pt = as_f64(prec_t, "prec_t")
    if kind == "diag":
        Ps, Pt = Ps.reshape(-1) + delta_f, Pt.reshape(-1) + delta_f
        for P, nm in ((Ps, "prec_s"), (Pt, "prec_t")):
            if P.numel() != p:
                raise ValueError(f"{nm} must hold one precision per parameter ({p}), got {P.numel()}")
            if bool((P <= 0).any()):
                bad = int((P <= 0).sum())
                raise ValueError(
                    f"{nm} + delta has {bad} non-positive entries; a Laplace precision must be > 0 — "
                    "use a larger delta (damping) or a positive curvature (GGN/Fisher)"
                )
        mean_term = float(0.5 / tau_f * (Pt * diff * diff).sum())
        r = Pt / Ps
        cov_term = float(0.5 * (r - 1.0 - torch.log(r)).sum())
    else:
        for P, nm in ((Ps, "prec_s"), (Pt, "prec_t")):
            if P.shape != (p, p):
                raise ValueError(f"{nm} must be a {p}×{p} matrix for {p} parameters, got shape {tuple(P.shape)}")
        eye = torch.eye(p, dtype=torch.float64)
        Ls = cholesky(Ps + delta_f * eye, "prec_s + delta*I")
        Lt = cholesky(Pt + delta_f * eye, "prec_t + delta*I")
        # Δᵀ P_T Δ = ‖L_Tᵀ Δ‖²
        mean_term = float(0.5 / tau_f * (Lt.T @ diff).pow(2).sum())
        # tr(P_S⁻¹ P_T) = ‖L_S⁻¹ L_T‖_F²
        Z = torch.linalg.solve_triangular(Ls, Lt, upper=False)
        tr = float(Z.pow(2).sum())
        cov_term = 0.5 * (tr - p - (logdet_chol(Lt) - logdet_chol(Ls)))
        cov_term = max(cov_term, 0.0)
    return LaplaceDivergence(mean_term + cov_term, mean_term, cov_term, p, tau_f, delta_f, kind)
