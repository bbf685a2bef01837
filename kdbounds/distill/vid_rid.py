"""VID as the RID paper ran it (``vid_rid``): the kd-rid variant of Variational Information Distillation.

The RID paper (Dissanayake et al., AISTATS 2025) compares RID with VID in its nuisance-teacher
experiment (CIFAR-10, WRN-40-2 -> WRN-16-1). Its VID is not RepDistiller's (``"vid"``,
:mod:`kdbounds.distill.vid`); methods.md §2 specifies the difference. Every detail below was
read in the official repository ``github.com/pasandissanayake/kd-rid`` (commit 3f8151a), file
``systems/wrncifar.py``, class ``VIDStudent``, and the run script
``experiment4_5000spc/cifar10.py`` (nothing copied):

* Regressor per distilled layer (``VIDStudent.__init__``, ``filter1..3``), 1x1 convolutions
  without bias::

      mu(s) = conv(C_s -> 4 C_s) -> BN -> ReLU -> conv(4 C_s -> 4 C_s) -> BN -> ReLU -> conv(4 C_s -> C_t)

  (the code hard-codes 16->64->64->32, 32->128->128->64, 64->256->256->128 for the WRN-16-1 /
  WRN-40-2 group widths 16/32/64 and 32/64/128; the hidden width is 4 C_s = 2 C_t there; this
  module uses ``hidden_mult * C_s`` with ``hidden_mult = 4``). Convolution weights are
  initialised Kaiming-uniform, fan_out, ReLU gain (``init_model_weights(self, 'kaiming')`` in
  ``systems/system_utils.py``); BatchNorm starts at weight 1, bias 0.
* Per-channel variance (``hsvaralpha1..3``, shape (1, C_t, 1, 1), initialised to 5)::

      v_c = softplus(alpha_c) + 1e-3,      alpha_c = 5 at init   (v_c = 5.0077...)

  methods.md calls this quantity sigma_c; in the loss it plays the role of the Gaussian
  VARIANCE (it is divided into the squared error and its log is taken, neither is squared).
* Loss per layer (``VIDStudent.get_loss_fn``)::

      L_k = 1/2 * mean_{n,c,h,w} [ log v_c + (t - mu(s))^2 / v_c ]

  the mean running over batch, channels and pixels of the layer; the three layer terms are
  summed. The total is ``CE * 1 + 100 * sum_k L_k`` (``alpha = [1.0, 100.0]`` in the script).
* Distilled layers: the outputs of the three WRN groups (``out_l1..out_l3``) of student and
  teacher. Their spatial sizes agree (32, 16, 8) so the official code pools nothing; here a
  spatial mismatch (other architectures) is resolved as in ``"vid"`` by adaptive average
  pooling of the larger map (:func:`kdbounds.distill.features.match_spatial`).
* Regressor, BatchNorm and alpha are trained with the student by the same SGD (weight decay
  included); the teacher is frozen.

Run settings that belong to the training recipe rather than to the loss (gradient-norm clip 100,
SGD Nesterov, no augmentation) are set by the caller's :class:`~kdbounds.distill.TrainConfig`.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from .methods import DistillMethod, register_method
from .._checks import as_float, as_int, as_int_tuple, check_positive
from .features import require_feature_model, select_stage_pairs
from .vid import vid_objective

__all__ = ["VIDRID", "VIDRIDRegressor", "vid_rid_variance", "KD_RID_ALPHA_INIT", "KD_RID_EPS",
           "KD_RID_LAM", "KD_RID_HIDDEN_MULT"]

#: alpha_c at initialisation in the official code (``5 * torch.ones(...)``).
KD_RID_ALPHA_INIT = 5.0
#: additive floor of the variance (``+ 1e-3``).
KD_RID_EPS = 1e-3
#: weight of the VID term (``alpha = [1.0, 100.0]`` in ``experiment4_5000spc/cifar10.py``).
KD_RID_LAM = 100.0
#: hidden width of the regressor as a multiple of the student channels (16 -> 64 etc.).
KD_RID_HIDDEN_MULT = 4


def vid_rid_variance(alpha: torch.Tensor, eps: float = KD_RID_EPS) -> torch.Tensor:
    """Per-channel variance of the kd-rid VID.

    .. math::
        v_c = \\operatorname{softplus}(\\alpha_c) + \\varepsilon = \\log(1 + e^{\\alpha_c}) + \\varepsilon

    Args:
        alpha: unconstrained parameters, shape (C,).
        eps: additive floor (1e-3 in the official code), > 0.

    Returns:
        Tensor of shape (C,), every entry > eps.

    Raises:
        TypeError: ``eps`` is not a real number.
        ValueError: ``eps`` is not a positive finite number.
    """
    eps = check_positive("eps", eps)
    return F.softplus(alpha) + eps


class VIDRIDRegressor(nn.Module):
    """Mean regressor mu(s) and per-channel variance of one kd-rid VID layer.

    ``mu``: conv1x1(C_s->H) -> BN(H) -> ReLU -> conv1x1(H->H) -> BN(H) -> ReLU -> conv1x1(H->C_t),
    H = ``hidden_mult * C_s``, no biases, conv weights Kaiming-uniform (fan_out, ReLU gain).
    ``variance() = softplus(alpha) + eps`` with ``alpha`` initialised to ``alpha_init``.

    Args:
        s_channels: student channels C_s.
        t_channels: teacher channels C_t.
        hidden_mult: H / C_s (4 in the official code).
        alpha_init: initial alpha_c (5 in the official code).
        eps: variance floor (1e-3 in the official code).
    """

    def __init__(self, s_channels: int, t_channels: int, hidden_mult: int = KD_RID_HIDDEN_MULT,
                 alpha_init: float = KD_RID_ALPHA_INIT, eps: float = KD_RID_EPS) -> None:
        super().__init__()
        hidden = int(hidden_mult) * int(s_channels)
        self.mu = nn.Sequential(
            nn.Conv2d(s_channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, t_channels, 1, bias=False),
        )
        with torch.no_grad():
            for m in self.mu:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_uniform_(m.weight, mode="fan_out", nonlinearity="relu")
        self.eps = float(eps)
        self.alpha = nn.Parameter(torch.full((t_channels,), float(alpha_init)))

    def variance(self) -> torch.Tensor:
        """v_c = softplus(alpha_c) + eps, shape (C_t,).

        Returns:
            The variances.
        """
        return vid_rid_variance(self.alpha, self.eps)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """The predicted mean of the teacher's features.

        Args:
            s: the student's features.

        Returns:
            ``mu(s)``, shaped like the teacher's features.
        """
        return self.mu(s)


@register_method
class VIDRID(DistillMethod):
    """VID as in the RID paper's code: L = CE + 100 sum_k 1/2 mean[log v + (t - mu(s))^2 / v].

    .. math::
        L = w_{CE}\\,\\mathrm{CE}(y, z_s) + \\lambda \\sum_k \\frac{1}{2}\\,
            \\operatorname*{mean}_{n,c,h,w}\\Big[\\log v_{k,c}
            + \\frac{(t_{k,nchw} - \\mu_k(s_k)_{nchw})^2}{v_{k,c}}\\Big],
        \\qquad v_{k,c} = \\operatorname{softplus}(\\alpha_{k,c}) + 10^{-3}

    Hyper-parameters (``--method-arg key=value``), defaults from the official kd-rid code:
      lam (float >= 0, default 100): weight of the VID term.
      ce_weight (float >= 0, default 1): weight of the cross-entropy term.
      layers (e.g. "0,1,2"; default all stages): student stage indices to distil.
      teacher_layers (default = layers): teacher stage indices paired with ``layers``.
      hidden_mult (int >= 1, default 4): regressor hidden width / student channels.
      alpha_init (float, default 5): initial alpha_c.  eps (float > 0, default 1e-3).

    Raises (at construction):
      ValueError / TypeError: for a bad hyper-parameter (naming it), a missing teacher, or a
      model without the feature API.
    """

    name = "vid_rid"
    requires_teacher = True
    requires_features = True

    defaults = {"lam": KD_RID_LAM, "ce_weight": 1.0, "layers": None, "teacher_layers": None,
                "hidden_mult": KD_RID_HIDDEN_MULT, "alpha_init": KD_RID_ALPHA_INIT,
                "eps": KD_RID_EPS}

    @classmethod
    def parse_hparams(cls, h: Mapping[str, Any]) -> dict[str, Any]:
        """``lam, ce_weight >= 0``, ``eps > 0``, finite ``alpha_init``, ``hidden_mult >= 1``, stage indices.

        Args:
            h: the hyper-parameters completed by their defaults.

        Returns:
            The checked values.

        Raises:
            ValueError: a value out of range.
            TypeError: a value of the wrong type.
        """
        return {"lam": as_float("lam", h["lam"], low=0.0), "ce_weight": as_float("ce_weight", h["ce_weight"], low=0.0),
                "eps": as_float("eps", h["eps"], low=0.0, low_open=True),
                "alpha_init": as_float("alpha_init", h["alpha_init"]),
                "hidden_mult": as_int("hidden_mult", h["hidden_mult"], low=1),
                "layers": as_int_tuple("layers", h["layers"]),
                "teacher_layers": as_int_tuple("teacher_layers", h["teacher_layers"])}

    def __init__(self, student: nn.Module, teacher: nn.Module | None, num_classes: int,
                 **hparams: Any) -> None:
        super().__init__(student, teacher, num_classes, **hparams)
        p = self.parse_hparams(self.hparams)
        s_ch = require_feature_model(student, "student", self.name)
        t_ch = require_feature_model(teacher, "teacher", self.name)
        self.lam, self.ce_weight, self.eps = p["lam"], p["ce_weight"], p["eps"]
        self.alpha_init, self.hidden_mult = p["alpha_init"], p["hidden_mult"]
        self.pairs = select_stage_pairs(self.name, s_ch, t_ch, p["layers"], p["teacher_layers"])
        self.regressors = nn.ModuleList(
            VIDRIDRegressor(s_ch[i], t_ch[j], hidden_mult=self.hidden_mult,
                            alpha_init=self.alpha_init, eps=self.eps)
            for i, j in self.pairs)

    def loss(self, x, y, s_out, t_out, epoch):
        """VID-RID's objective (:func:`vid_objective`).
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
