"""ITRD: Information Theoretic Representation Distillation (Miles et al., BMVC 2022), methods.md §4.

On the penultimate pooled features z_s (N x d_s) and z_t (N x d_t), with a learned linear
embedding W: d_s -> d_t applied to the student (e = z_s W^T, no bias):

Correlation loss. Standardise each dimension over the batch,
    e_hat = (e - mean_n e) / (std_n e + eps),   t_hat likewise  (std with Bessel's correction,
    i.e. the unbiased N-1 form, as torch.std; eps = 1e-8 guards constant dimensions),
    c_j   = (1/N) sum_n e_hat[n, j] t_hat[n, j],
    L_corr = log2 sum_j |1 - c_j|^(2 alpha).
(With the N-1 standard deviation, perfectly correlated dimensions give c_j = (N-1)/N, so the
loss stays finite.)

Mutual-information loss (matrix-based Renyi entropy of order 2). L2-normalise rows of e and z_t,
    K_s = E E^T,  K_t = Z_t Z_t^T,  K_st = K_s o K_t (Hadamard),
    A_s = K_s / tr K_s,  A_st = K_st / tr K_st,
    L_MI = ||A_s||_F^2 - ||A_st||_F^2.
(The order-2 entropy is H_2(A) = -log2 ||A||_F^2; minimising L_MI raises the student entropy and
lowers the joint entropy, i.e. raises I(S;T) = H(S) + H(T) - H(S,T).)

Total: L = gamma * CE(y, z_s) + beta * (lam_corr * L_corr + lam_mi * L_MI); defaults gamma = 1,
beta = 1, lam_corr = 2, lam_mi = 1, alpha = 1.01. The embedding is trained with the student.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from .methods import DistillMethod, register_method
from .._checks import as_float
from .features import get_features, require_feature_model, upcast

__all__ = ["ITRD", "itrd_correlation_loss", "itrd_mi_loss", "STD_EPS"]

STD_EPS = 1e-8


def _check_pair(z_s: torch.Tensor, z_t: torch.Tensor, same_dim: bool) -> None:
    if z_s.dim() != 2 or z_t.dim() != 2:
        raise ValueError(f"ITRD features must be N x d matrices, got {tuple(z_s.shape)} and "
                         f"{tuple(z_t.shape)}")
    if z_s.shape[0] != z_t.shape[0]:
        raise ValueError(f"batch sizes differ: {z_s.shape[0]} vs {z_t.shape[0]}")
    if z_s.shape[0] < 2:
        raise ValueError("ITRD needs a batch of at least 2 examples (it standardises over the "
                         "batch); use batch_size >= 2 and drop_last for the last batch")
    if same_dim and z_s.shape[1] != z_t.shape[1]:
        raise ValueError(f"embedded student dim {z_s.shape[1]} != teacher dim {z_t.shape[1]}")


def itrd_correlation_loss(e: torch.Tensor, z_t: torch.Tensor, alpha: float = 1.01,
                          eps: float = STD_EPS) -> torch.Tensor:
    """``L_corr = log2 sum_j |1 - c_j|^(2 alpha)``, c_j the batch correlation of dimension j.

    Args:
        e: student embeddings, ``N x d``.
        z_t: teacher features, ``N x d``.
        alpha: the exponent's ``alpha``.
        eps: added to the standard deviations.

    Returns:
        The scalar loss.
    """
    _check_pair(e, z_t, same_dim=True)
    n = e.shape[0]
    e_hat = (e - e.mean(0)) / (e.std(0) + eps)
    t_hat = (z_t - z_t.mean(0)) / (z_t.std(0) + eps)
    c = (e_hat * t_hat).sum(0) / n
    return torch.log2((1.0 - c).abs().pow(2.0 * alpha).sum())


def itrd_mi_loss(e: torch.Tensor, z_t: torch.Tensor) -> torch.Tensor:
    """``L_MI = ||A_s||_F^2 - ||A_st||_F^2`` (trace-normalised Gram matrices, rows L2-normalised).

    Args:
        e: student embeddings, ``N x d_s``.
        z_t: teacher features, ``N x d_t``.

    Returns:
        The scalar loss.
    """
    _check_pair(e, z_t, same_dim=False)
    es = F.normalize(e, dim=1)
    et = F.normalize(z_t, dim=1)
    k_s = es @ es.T
    k_t = et @ et.T
    k_st = k_s * k_t
    a_s = k_s / torch.trace(k_s)
    a_st = k_st / torch.trace(k_st)
    return a_s.pow(2).sum() - a_st.pow(2).sum()


@register_method
class ITRD(DistillMethod):
    """ITRD: L = gamma*CE + beta*(lam_corr*L_corr + lam_mi*L_MI) on pooled features, learned W.

    Hyper-parameters: gamma (CE weight, default 1), beta (default 1), lam_corr (default 2),
    lam_mi (default 1), alpha (> 0, default 1.01).
    """

    name = "itrd"
    requires_teacher = True
    requires_features = True

    defaults = {"gamma": 1.0, "beta": 1.0, "lam_corr": 2.0, "lam_mi": 1.0, "alpha": 1.01}

    @classmethod
    def parse_hparams(cls, h: Mapping[str, Any]) -> dict[str, Any]:
        """``gamma, beta, lam_corr, lam_mi >= 0`` and ``alpha > 0``.

        Args:
            h: the hyper-parameters completed by their defaults.

        Returns:
            The checked values.

        Raises:
            ValueError: a value out of range.
            TypeError: a value of the wrong type.
        """
        out = {k: as_float(k, h[k], low=0.0) for k in ("gamma", "beta", "lam_corr", "lam_mi")}
        out["alpha"] = as_float("alpha", h["alpha"], low=0.0, low_open=True)
        return out

    def __init__(self, student: nn.Module, teacher: nn.Module | None, num_classes: int,
                 **hparams: Any) -> None:
        super().__init__(student, teacher, num_classes, **hparams)
        p = self.parse_hparams(self.hparams)
        require_feature_model(student, "student", self.name)
        require_feature_model(teacher, "teacher", self.name)
        self.gamma, self.beta, self.lam_corr, self.lam_mi, self.alpha = (
            p["gamma"], p["beta"], p["lam_corr"], p["lam_mi"], p["alpha"])
        self.embed = nn.Linear(int(student.feature_dim), int(teacher.feature_dim), bias=False)
        p = next(iter(student.parameters()), None)
        if p is not None:
            self.embed.to(p.device)

    def loss(self, x, y, s_out, t_out, epoch):
        """ITRD's objective: cross-entropy plus the correlation and mutual-information terms.
        Args:
            x: the normalised (augmented) input batch.
            y: the labels.
            s_out: the student's output (logits, or a :class:`FeatureOutput`).
            t_out: the teacher's output on ``x`` (``None`` when the method needs no teacher).
            epoch: the 0-based epoch.

        Returns:
            ``(loss, parts)``: the scalar loss and its named parts (detached).
        """
        s_out = get_features(s_out, "student", self.name)
        t_out = get_features(t_out, "teacher", self.name)
        ce = F.cross_entropy(upcast(s_out.logits), y)
        e = upcast(self.embed(s_out.pooled))
        zt = upcast(t_out.pooled.detach())
        l_corr = itrd_correlation_loss(e, zt, self.alpha)
        l_mi = itrd_mi_loss(e, zt)
        loss = self.gamma * ce + self.beta * (self.lam_corr * l_corr + self.lam_mi * l_mi)
        return loss, {"ce": ce.detach(), "corr": l_corr.detach(),
                      "mi": l_mi.detach(), "loss": loss.detach()}
