"""VID: Variational Information Distillation (Ahn et al., CVPR 2019), methods.md §2.

VID maximises a Gaussian variational lower bound on the mutual information I(T;S) between a
teacher feature map T and a student feature map S. Per distilled layer a regressor predicts the
mean of the teacher map from the student map and a per-channel variance is learned:

    mu(s)      = conv1x1(C_s -> C_t) -> ReLU -> conv1x1(C_t -> C_t) -> ReLU -> conv1x1(C_t -> C_t)
    sigma_c^2  = softplus(alpha_c) + eps,       eps = 1e-5, alpha_c chosen so that sigma_c^2 = 5
    L_VID      = mean_{n,c,h,w} 1/2 [ (t - mu(s))^2 / sigma_c^2 + log sigma_c^2 ]

(the negative Gaussian log-likelihood up to the constant 1/2 log 2 pi). The training loss is

    L = ce_weight * CE(y, z_s) + lam * sum_layers L_VID(layer).

When the spatial sizes differ, the larger map is average-pooled (adaptive average pooling) to the
size of the smaller one. Distilled layers: by default every residual stage output
(``FeatureOutput.stages``). Regressors and variances are trained with the student (they are
parameters of the method module, which the trainer optimises together with the student).

This is RepDistiller's form (``github.com/HobbitLong/RepDistiller``, ``distiller_zoo/VID.py``),
which its CIFAR-100 script runs with weight ``lam = 1`` (``-a 0 -b 1``): ``lam = 1`` is the
default here. The RID paper's code uses a different VID (BatchNorm in a wider regressor,
variance floor 1e-3, weight 100): that variant is registered as ``"vid_rid"``
(:mod:`kdbounds.distill.vid_rid`). Weight 100 with this regressor is a mix of the two sources
that neither paper ran.

The helpers shared by the feature-based methods (a model's features, stage pairs, spatial
matching) are in :mod:`kdbounds.distill.features`; hyper-parameter coercion in :mod:`kdbounds._checks`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import as_float, as_int_tuple
from .features import get_features, match_spatial, require_feature_model, select_stage_pairs, upcast
from .methods import DistillMethod, register_method

__all__ = ["VID", "VIDRegressor", "vid_layer_loss", "vid_objective"]


# ---------------------------------------------------------------------------------------------
# VID proper.
# ---------------------------------------------------------------------------------------------
def vid_layer_loss(target: torch.Tensor, mean: torch.Tensor,
                   variance: torch.Tensor) -> torch.Tensor:
    """Gaussian negative log-likelihood of one layer, constant dropped.

    ``L = mean_{n,c,h,w} 1/2 [ (t - mu)^2 / sigma_c^2 + log sigma_c^2 ]`` with ``target`` and
    ``mean`` of shape (N, C, H, W) (or (N, C)) and ``variance`` of shape (C,), all positive.

    Args:
        target: the teacher's features.
        mean: the predicted mean, same shape.
        variance: per-channel variances, shape (C,).

    Returns:
        The scalar loss.

    Raises:
        ValueError: shapes do not match.
    """
    if target.shape != mean.shape:
        raise ValueError(f"target {tuple(target.shape)} and mean {tuple(mean.shape)} differ")
    if variance.dim() != 1 or variance.shape[0] != target.shape[1]:
        raise ValueError(f"variance must have shape ({target.shape[1]},), got "
                         f"{tuple(variance.shape)}")
    var = variance.view(1, -1, *([1] * (target.dim() - 2)))
    return 0.5 * ((target - mean).pow(2) / var + torch.log(var)).mean()


class VIDRegressor(nn.Module):
    """Mean regressor mu(s) and per-channel variance for one VID layer.

    ``mu``: conv1x1(C_s->C_h) -> ReLU -> conv1x1(C_h->C_h) -> ReLU -> conv1x1(C_h->C_t), hidden
    width C_h = C_t by default, no biases (as in the common CIFAR implementations).
    ``variance() = softplus(alpha) + eps`` with alpha initialised to softplus^{-1}(init_var - eps).
    """

    def __init__(self, s_channels: int, t_channels: int, hidden: int | None = None,
                 init_var: float = 5.0, eps: float = 1e-5) -> None:
        super().__init__()
        hidden = int(hidden or t_channels)
        self.mu = nn.Sequential(
            nn.Conv2d(s_channels, hidden, 1, bias=False), nn.ReLU(inplace=False),
            nn.Conv2d(hidden, hidden, 1, bias=False), nn.ReLU(inplace=False),
            nn.Conv2d(hidden, t_channels, 1, bias=False),
        )
        self.eps = float(eps)
        # softplus^{-1}(v) = log(exp(v) - 1)
        a0 = math.log(math.expm1(init_var - eps))
        self.alpha = nn.Parameter(torch.full((t_channels,), a0))

    def variance(self) -> torch.Tensor:
        """sigma_c^2 = softplus(alpha_c) + eps, shape (C_t,).

        Returns:
            The variances.
        """
        return F.softplus(self.alpha) + self.eps

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """The predicted mean of the teacher's features.

        Args:
            s: the student's features.

        Returns:
            ``mu(s)``, shaped like the teacher's features.
        """
        return self.mu(s)


@register_method
class VID(DistillMethod):
    """VID: L = ce_weight*CE + lam*sum_layers mean 1/2[(t - mu(s))^2/sigma^2 + log sigma^2].

    Hyper-parameters (``--method-arg key=value``):
      lam (float >= 0, default 1.0): weight of the VID term (RepDistiller's beta, ``-b 1``;
        the RID paper's variant with weight 100 is the separate method ``"vid_rid"``).
      ce_weight (float >= 0, default 1.0): weight of the cross-entropy term.
      layers (e.g. "0,1,2"; default all stages): student stage indices to distil.
      teacher_layers (default = layers): teacher stage indices paired with ``layers``.
      init_var (float > eps, default 5.0): initial sigma^2.  eps (float > 0, default 1e-5).
    """

    name = "vid"
    requires_teacher = True
    requires_features = True

    defaults = {"lam": 1.0, "ce_weight": 1.0, "layers": None, "teacher_layers": None,
                "init_var": 5.0, "eps": 1e-5}

    @classmethod
    def parse_hparams(cls, h: Mapping[str, Any]) -> dict[str, Any]:
        """``lam, ce_weight >= 0``, ``eps > 0``, ``init_var > eps``, stage indices (no model needed).

        Args:
            h: the hyper-parameters completed by their defaults.

        Returns:
            The checked values.

        Raises:
            ValueError: a value out of range.
            TypeError: a value of the wrong type.
        """
        eps = as_float("eps", h["eps"], low=0.0, low_open=True)
        return {"lam": as_float("lam", h["lam"], low=0.0), "ce_weight": as_float("ce_weight", h["ce_weight"], low=0.0),
                "eps": eps, "init_var": as_float("init_var", h["init_var"], low=eps, low_open=True),
                "layers": as_int_tuple("layers", h["layers"]),
                "teacher_layers": as_int_tuple("teacher_layers", h["teacher_layers"])}

    def __init__(self, student: nn.Module, teacher: nn.Module | None, num_classes: int,
                 **hparams: Any) -> None:
        super().__init__(student, teacher, num_classes, **hparams)
        p = self.parse_hparams(self.hparams)
        s_ch = require_feature_model(student, "student", self.name)
        t_ch = require_feature_model(teacher, "teacher", self.name)
        self.lam, self.ce_weight, self.eps, self.init_var = p["lam"], p["ce_weight"], p["eps"], p["init_var"]
        self.pairs = select_stage_pairs(self.name, s_ch, t_ch, p["layers"], p["teacher_layers"])
        self.regressors = nn.ModuleList(
            VIDRegressor(s_ch[i], t_ch[j], init_var=self.init_var, eps=self.eps)
            for i, j in self.pairs)

    def loss(self, x, y, s_out, t_out, epoch):
        """VID's objective (:func:`vid_objective`).
        Args:
            x: the normalised (augmented) input batch.
            y: the labels.
            s_out: the student's output (logits, or a :class:`FeatureOutput`).
            t_out: the teacher's output on ``x`` (``None`` when the method needs no teacher).
            epoch: the 0-based epoch.

        Returns:
            ``(loss, parts)``: the scalar loss and its named parts (detached).
        """
        return vid_objective(self, y, s_out, t_out)


def vid_objective(method: Any, y: torch.Tensor, s_out: Any, t_out: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""The VID objective shared by both variants (``vid`` and ``vid_rid``; they differ in their regressors).

    .. math::
        L = w_{ce}\,\mathrm{CE} + \lambda \sum_k \operatorname{mean}\tfrac12
            \left[\frac{(t_k - \mu_k(s_k))^2}{v_k} + \log v_k\right]

    Args:
        method: a VID method with ``name``, ``pairs``, ``regressors`` (each with ``variance()``),
            ``ce_weight`` and ``lam``.
        y: labels.
        s_out: the student's forward output (with features).
        t_out: the teacher's forward output (with features); its stages are detached.

    Returns:
        The loss and its parts (``ce``, ``vid_k`` per layer, ``vid``, ``loss``), detached.
    """
    s_out = get_features(s_out, "student", method.name)
    t_out = get_features(t_out, "teacher", method.name)
    ce = F.cross_entropy(upcast(s_out.logits), y)
    parts: dict[str, torch.Tensor] = {"ce": ce.detach()}
    vid = ce.new_zeros(())
    for k, ((i, j), reg) in enumerate(zip(method.pairs, method.regressors)):
        s, t = match_spatial(s_out.stages[i], t_out.stages[j].detach())
        lk = vid_layer_loss(upcast(t), upcast(reg(s)), reg.variance())
        parts[f"vid_{k}"] = lk.detach()
        vid = vid + lk
    loss = method.ce_weight * ce + method.lam * vid
    parts["vid"] = vid.detach()
    parts["loss"] = loss.detach()
    return loss, parts
