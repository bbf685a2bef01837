"""Shared pieces of the CIFAR model zoo: the feature output type, the base class, initialisation.

Every model in :mod:`kdbounds.models` is a :class:`CifarModel`:

* ``forward(x)`` -> logits ``(N, num_classes)``;
* ``forward(x, return_features=True)`` -> :class:`FeatureOutput` ``(logits, stages, pooled)`` where
  ``stages[k]`` is the output of the k-th residual group / VGG block (``N × stage_channels[k] × H_k × W_k``,
  before any pooling that follows it) and ``pooled`` (``N × feature_dim``) is the vector fed to the
  linear classifier, i.e. ``logits = classifier(pooled)``;
* attributes ``arch``, ``num_classes``, ``stage_channels`` and ``feature_dim``.
"""

# No ``from __future__ import annotations`` here: FeatureOutput is a NamedTuple, whose generated
# ``__new__`` cannot resolve string annotations (the API reference would warn about ``Tensor``).
import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["FeatureOutput", "CifarModel", "init_weights"]


class FeatureOutput(NamedTuple):
    """What ``model(x, return_features=True)`` returns.

    Attributes:
        logits: ``(N, num_classes)`` classifier output.
        stages: output of each residual group / VGG block, shallow to deep.
        pooled: ``(N, feature_dim)`` penultimate vector; ``logits = model.classifier(pooled)``.
    """

    logits: Tensor
    stages: list[Tensor]
    pooled: Tensor


class CifarModel(nn.Module):
    """Base class: subclasses implement ``forward_features(x) -> (stages, pooled)`` and own
    ``self.classifier`` (an ``nn.Linear(feature_dim, num_classes)``)."""

    arch: str
    num_classes: int
    stage_channels: tuple[int, ...]
    feature_dim: int
    classifier: nn.Linear

    def forward_features(self, x: Tensor) -> tuple[list[Tensor], Tensor]:  # pragma: no cover
        """The stage outputs and the pooled feature vector (see :class:`CifarModel`).

        Args:
            x: ``(N, 3, H, W)`` normalised images.

        Returns:
            ``(stages, pooled)``: the output of each stage, shallow to deep, and the ``(N, feature_dim)``
            vector fed to the classifier.

        Raises:
            NotImplementedError: subclasses implement it.
        """
        raise NotImplementedError

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor | FeatureOutput:
        """Logits, or logits with the stage outputs and the pooled features.

        Args:
            x: ``(N, 3, H, W)`` normalised CIFAR images (NCHW float).
            return_features: also return the stage outputs and the pooled vector.

        Returns:
            ``(N, num_classes)`` logits, or a :class:`FeatureOutput` when ``return_features``.

        Raises:
            ValueError: ``x`` is not an ``N x 3 x H x W`` tensor (the message says how to convert).
        """
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"{self.arch}: input x must be an N×3×H×W float tensor (normalised CIFAR images, "
                f"NCHW); got {shape}. Convert N×H×W×3 uint8 arrays with the data loader first."
            )
        stages, pooled = self.forward_features(x)
        logits = self.classifier(pooled)
        if return_features:
            return FeatureOutput(logits, stages, pooled)
        return logits

    def extra_repr(self) -> str:
        """The architecture name and class count shown by ``repr(model)``.

        Returns:
            ``"arch='...', num_classes=..."``.
        """
        return f"arch={self.arch!r}, num_classes={self.num_classes}"


def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> None:
    r"""Initialise ``model`` in place, drawing from ``generator`` (global RNG when None).

    Conv: Kaiming normal, fan_out, ReLU gain (He et al. 2015). BatchNorm: weight 1, bias 0.
    Linear: PyTorch's default, uniform for weight and bias,

    .. math::
        w_{ij},\ b_i \sim \mathcal U\bigl(-1/\sqrt{\text{fan\_in}},\ 1/\sqrt{\text{fan\_in}}\bigr).

    Args:
        model: the module to initialise (every submodule is visited).
        generator: the ``torch.Generator`` to draw from; ``None`` uses the global torch RNG.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.weight.fill_(1.0)
                m.bias.zero_()
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.in_features)
                nn.init.uniform_(m.weight, -bound, bound, generator=generator)
                if m.bias is not None:
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
