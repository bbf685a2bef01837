"""Feature plumbing shared by the feature-based distillation methods (VID, VID-RID, RID, ITRD, controls).

A *feature model* (every model of :mod:`kdbounds.models`) has ``stage_channels``, ``feature_dim`` and a
``forward(x, return_features=True)`` returning ``FeatureOutput(logits, stages, pooled)``. Here: checking
that a model is one (:func:`require_feature_model`), reading the features of an output
(:func:`get_features`), choosing the student/teacher stage pairs a method distils
(:func:`select_stage_pairs`), average-pooling two maps to a common spatial size (:func:`match_spatial`)
and computing a loss in float32 under mixed precision (:func:`upcast`).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["require_feature_model", "select_stage_pairs", "get_features", "match_spatial", "upcast"]


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
