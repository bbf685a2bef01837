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

This module also holds the small helpers shared by the feature-based methods of this package
(VID, RID, ITRD): checking that a model exposes features, choosing stage pairs, and coercing
hyper-parameters given as strings on the command line.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .methods import DistillMethod, register_method

__all__ = [
    "VID",
    "VIDRegressor",
    "vid_layer_loss",
    "match_spatial",
    "require_feature_model",
    "select_stage_pairs",
    "as_float",
    "as_int",
    "as_bool",
    "as_int_tuple",
    "as_choice",
    "upcast",
]


# ---------------------------------------------------------------------------------------------
# Hyper-parameter coercion (the CLI passes `--method-arg key=value`; values may arrive as str).
# ---------------------------------------------------------------------------------------------
def as_float(name: str, value: Any, *, low: float | None = None, high: float | None = None,
             low_open: bool = False, high_open: bool = False) -> float:
    """Coerce ``value`` to float and check ``low <= value <= high`` (open ends when asked).

    Args:
        name: the hyper-parameter's name (for messages).
        value: the value given.
        low: lower end (``None``: none).
        high: upper end (``None``: none).
        low_open: exclude ``low``.
        high_open: exclude ``high``.

    Returns:
        The float.

    Raises:
        TypeError: not a number (a bool included).
        ValueError: not finite, or out of range.
    """
    if isinstance(value, bool):
        raise TypeError(f"hyper-parameter {name!r} must be a number, got the boolean {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"hyper-parameter {name!r} must be a number, got {value!r}; "
                        f"pass e.g. --method-arg {name}=1.0") from None
    if not math.isfinite(out):
        raise ValueError(f"hyper-parameter {name!r} must be finite, got {value!r}")
    if low is not None and (out < low or (low_open and out == low)):
        rel = ">" if low_open else ">="
        raise ValueError(f"hyper-parameter {name!r} must be {rel} {low}, got {out}")
    if high is not None and (out > high or (high_open and out == high)):
        rel = "<" if high_open else "<="
        raise ValueError(f"hyper-parameter {name!r} must be {rel} {high}, got {out}")
    return out


def as_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Coerce ``value`` to int (accepting "3" and 3.0, refusing 2.5) and check its range.

    Args:
        name: the hyper-parameter's name (for messages).
        value: the value given.
        low: smallest allowed (``None``: none).
        high: largest allowed (``None``: none).

    Returns:
        The int.

    Raises:
        TypeError: not a number (a bool included).
        ValueError: not an integer, or out of range.
    """
    if isinstance(value, bool):
        raise TypeError(f"hyper-parameter {name!r} must be an integer, got the boolean {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"hyper-parameter {name!r} must be an integer, got {value!r}") from None
    if not math.isfinite(f) or f != int(f):
        raise ValueError(f"hyper-parameter {name!r} must be an integer, got {value!r}")
    out = int(f)
    if low is not None and out < low:
        raise ValueError(f"hyper-parameter {name!r} must be >= {low}, got {out}")
    if high is not None and out > high:
        raise ValueError(f"hyper-parameter {name!r} must be <= {high}, got {out}")
    return out


def as_bool(name: str, value: Any) -> bool:
    """Coerce true/false/1/0/yes/no (str or bool) to bool.

    Args:
        name: the hyper-parameter's name (for messages).
        value: the value given.

    Returns:
        The bool.

    Raises:
        TypeError: anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "0", "no", "off"}:
        return False
    raise TypeError(f"hyper-parameter {name!r} must be a boolean (true/false), got {value!r}")


def as_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of ``choices`` (case-insensitive).

    Args:
        name: the hyper-parameter's name (for messages).
        value: the value given.
        choices: the allowed values (lower case).

    Returns:
        The value, stripped and lower-cased.

    Raises:
        ValueError: not one of ``choices``.
    """
    v = str(value).strip().lower()
    if v not in choices:
        raise ValueError(f"hyper-parameter {name!r} must be one of {list(choices)}, got {value!r}")
    return v


def as_int_tuple(name: str, value: Any) -> tuple[int, ...] | None:
    """Parse None / "all" / 2 / "0,2" / "0;2" / [0, 2] into a tuple of ints (None = all).

    Args:
        name: the hyper-parameter's name (for messages).
        value: the value given.

    Returns:
        The indices, or ``None`` for all.

    Raises:
        TypeError: a value of another kind.
    """
    if value is None:
        return None
    if isinstance(value, str):
        s = value.strip().lower()
        if s in {"", "all", "none"}:
            return None
        parts = [p for p in s.replace(";", ",").replace(" ", ",").split(",") if p]
        return tuple(as_int(name, p) for p in parts)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (as_int(name, value),)
    if isinstance(value, (list, tuple)):
        return tuple(as_int(name, p) for p in value)
    raise TypeError(f"hyper-parameter {name!r} must be a list of stage indices like '0,1,2', "
                    f"got {value!r}")


# ---------------------------------------------------------------------------------------------
# Feature plumbing shared by VID, RID and ITRD.
# ---------------------------------------------------------------------------------------------
def require_feature_model(model: Any, role: str, method: str) -> tuple[int, ...]:
    """Check that ``model`` exposes features; return its ``stage_channels``.

    A feature model has ``stage_channels`` (tuple of ints), ``feature_dim`` (int) and a
    ``forward(x, return_features=True)`` returning ``FeatureOutput(logits, stages, pooled)``
    (see ``kdbounds.models``).

    Args:
        model: the model checked.
        role: ``"student"`` or ``"teacher"`` (for messages).
        method: the method's name (for messages).

    Returns:
        The model's ``stage_channels``.

    Raises:
        ValueError: ``model`` is None.
        TypeError: not an ``nn.Module``, or no feature interface.
    """
    if model is None:
        raise ValueError(f"method {method!r} needs a {role}; got None. "
                         + ("Pass --teacher CKPT." if role == "teacher" else ""))
    if not isinstance(model, nn.Module):
        raise TypeError(f"method {method!r}: the {role} must be a torch.nn.Module, "
                        f"got {type(model).__name__}")
    channels = getattr(model, "stage_channels", None)
    dim = getattr(model, "feature_dim", None)
    if (not isinstance(channels, (tuple, list)) or len(channels) == 0
            or not all(isinstance(c, int) and c > 0 for c in channels) or not isinstance(dim, int)):
        raise TypeError(
            f"method {method!r} distils intermediate features, but the {role} "
            f"({type(model).__name__}) does not expose them: it needs attributes "
            f"stage_channels (tuple of ints) and feature_dim (int) and "
            f"forward(x, return_features=True) -> FeatureOutput(logits, stages, pooled). "
            f"Use a model from kdbounds.models.build_model, or a logit method such as 'kd'.")
    return tuple(int(c) for c in channels)


def select_stage_pairs(method: str, s_channels: Sequence[int], t_channels: Sequence[int],
                       layers: Sequence[int] | None,
                       teacher_layers: Sequence[int] | None) -> tuple[tuple[int, int], ...]:
    """Pair student stage indices with teacher stage indices.

    ``layers`` are student stage indices (None = all), ``teacher_layers`` teacher stage indices
    (None = same as ``layers``). Negative indices count from the end. With both None the models
    must have the same number of stages.

    Args:
        method: the method's name (for messages).
        s_channels: the student's stage channels.
        t_channels: the teacher's stage channels.
        layers: student stage indices (None = all).
        teacher_layers: teacher stage indices (None = same as ``layers``).

    Returns:
        ``(student index, teacher index)`` pairs, non-negative.

    Raises:
        ValueError: unequal stage counts with both None, an empty or unequal selection, an index
            out of range, or a repeated pair.
    """
    ns, nt = len(s_channels), len(t_channels)
    if layers is None and teacher_layers is None:
        if ns != nt:
            raise ValueError(
                f"method {method!r}: student has {ns} stages and teacher has {nt}; cannot pair "
                f"them automatically. Choose the pairs with layers=... (student stage indices) "
                f"and teacher_layers=... (teacher stage indices), e.g. layers=0,1,2 "
                f"teacher_layers={max(nt - 3, 0)},{max(nt - 2, 0)},{nt - 1}.")
        s_idx = list(range(ns))
        t_idx = list(range(nt))
    else:
        s_idx = list(layers) if layers is not None else list(range(ns))
        t_idx = list(teacher_layers) if teacher_layers is not None else list(s_idx)
    if len(s_idx) == 0:
        raise ValueError(f"method {method!r}: 'layers' selects no stage; give at least one index")
    if len(s_idx) != len(t_idx):
        raise ValueError(f"method {method!r}: layers={tuple(s_idx)} and "
                         f"teacher_layers={tuple(t_idx)} must have the same length")
    pairs = []
    for i, j in zip(s_idx, t_idx):
        if not -ns <= i < ns:
            raise ValueError(f"method {method!r}: student stage index {i} out of range; the "
                             f"student has {ns} stages (valid 0..{ns - 1})")
        if not -nt <= j < nt:
            raise ValueError(f"method {method!r}: teacher stage index {j} out of range; the "
                             f"teacher has {nt} stages (valid 0..{nt - 1})")
        pairs.append((i % ns, j % nt))
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"method {method!r}: duplicate layer pairs {pairs}")
    return tuple(pairs)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 (autocast) -> float32 for loss arithmetic; other dtypes unchanged.

    Args:
        x: a tensor.

    Returns:
        ``x`` in float32 when it was half precision, else ``x``.
    """
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def get_features(out: Any, role: str, method: str):
    """Return ``out`` if it looks like a FeatureOutput, else a clear TypeError.

    Args:
        out: a model's output.
        role: ``"student"`` or ``"teacher"`` (for messages).
        method: the method's name (for messages).

    Returns:
        ``out``.

    Raises:
        TypeError: ``out`` has no ``logits``, ``stages`` and ``pooled``.
    """
    if not hasattr(out, "stages") or not hasattr(out, "logits") or not hasattr(out, "pooled"):
        raise TypeError(f"method {method!r} needs the {role} output as FeatureOutput(logits, "
                        f"stages, pooled) (forward(x, return_features=True)); got "
                        f"{type(out).__name__}. The trainer passes features when the method's "
                        f"requires_features is True.")
    return out


def match_spatial(s: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the spatially larger of two NCHW maps to the other's size.

    ``adaptive_avg_pool2d`` of the map with more pixels; if one is taller and the other wider,
    both are pooled to the elementwise minimum size.

    Args:
        s: student map, NCHW.
        t: teacher map, NCHW.

    Returns:
        ``(s, t)`` with equal spatial sizes.

    Raises:
        ValueError: a map is not 4-dimensional.
    """
    if s.dim() != 4 or t.dim() != 4:
        raise ValueError(f"feature maps must be NCHW, got shapes {tuple(s.shape)} and "
                         f"{tuple(t.shape)}")
    hs, ws = s.shape[-2:]
    ht, wt = t.shape[-2:]
    h, w = min(hs, ht), min(ws, wt)
    if (hs, ws) != (h, w):
        s = F.adaptive_avg_pool2d(s, (h, w))
    if (ht, wt) != (h, w):
        t = F.adaptive_avg_pool2d(t, (h, w))
    return s, t


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

    def __init__(self, student: nn.Module, teacher: nn.Module | None, num_classes: int,
                 **hparams: Any) -> None:
        super().__init__(student, teacher, num_classes, **hparams)
        h = self.hparams
        s_ch = require_feature_model(student, "student", self.name)
        t_ch = require_feature_model(teacher, "teacher", self.name)
        self.lam = as_float("lam", h["lam"], low=0.0)
        self.ce_weight = as_float("ce_weight", h["ce_weight"], low=0.0)
        self.eps = as_float("eps", h["eps"], low=0.0, low_open=True)
        self.init_var = as_float("init_var", h["init_var"], low=self.eps, low_open=True)
        self.pairs = select_stage_pairs(self.name, s_ch, t_ch,
                                        as_int_tuple("layers", h["layers"]),
                                        as_int_tuple("teacher_layers", h["teacher_layers"]))
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
