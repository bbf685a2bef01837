"""CIFAR ResNets (He et al. 2016, §4.2) in the RepDistiller variant.

Depth ``6n + 2``: a 3×3 stem conv, three groups of ``n`` basic blocks (3×3 conv-BN-ReLU-3×3 conv-BN,
add, ReLU) at 32×32, 16×16, 8×8, global average pooling, linear classifier.
Shortcut: identity when shape is kept, otherwise a **1×1 strided conv + BN** ("option B", as in
RepDistiller/CRD, whose teacher/student numbers methods.md quotes) — not He et al.'s zero-padding
option A, so parameter counts are slightly above the paper's (resnet20: 272,474 here vs 0.27M;
resnet56 0.856M, resnet32x4 7.41M).
Widths: stem 16, groups 16/32/64; the ``x4`` variants use stem 32, groups 64/128/256.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .base import CifarModel

__all__ = ["BasicBlock", "CifarResNet"]


class BasicBlock(nn.Module):
    """Basic residual block: 3x3 conv-BN-ReLU, 3x3 conv-BN, add the shortcut, ReLU.

    The shortcut is the identity when the shape is kept, else a strided 1x1 conv + BN ("option B").

    Args:
        in_ch: input channels.
        out_ch: output channels.
        stride: stride of the first convolution (and of the shortcut).
    """
    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        """The block's output.

        Args:
            x: ``(N, in_ch, H, W)`` input.

        Returns:
            ``(N, out_ch, H / stride, W / stride)`` output.
        """
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(CifarModel):
    """CIFAR ResNet of depth ``6n + 2`` (see the module docstring).

    Args:
        arch: the registry name (e.g. ``"resnet20"``).
        depth: ``6n + 2`` layers.
        widths: channels of the stem and of the three groups.
        num_classes: classifier outputs.

    Raises:
        ValueError: ``depth`` is not of the form ``6n + 2``.
    """
    def __init__(self, arch: str, depth: int, widths: tuple[int, int, int, int], num_classes: int) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"depth must be 6n+2 (8, 14, 20, ...); got {depth}")
        n = (depth - 2) // 6
        self.arch, self.num_classes = arch, num_classes
        stem, w1, w2, w3 = widths
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        groups, in_ch = [], stem
        for width, stride in ((w1, 1), (w2, 2), (w3, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(in_ch, width, stride if i == 0 else 1))
                in_ch = width
            groups.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = groups
        self.stage_channels = (w1, w2, w3)
        self.feature_dim = w3
        self.classifier = nn.Linear(w3, num_classes)

    def forward_features(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """The stage outputs and the pooled feature vector (see :class:`CifarModel`).

        Args:
            x: ``(N, 3, H, W)`` normalised images.

        Returns:
            ``(stages, pooled)``: the output of each stage, shallow to deep, and the ``(N, feature_dim)``
            vector fed to the classifier.
        """
        out = F.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(out)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        pooled = F.adaptive_avg_pool2d(f3, 1).flatten(1)
        return [f1, f2, f3], pooled
