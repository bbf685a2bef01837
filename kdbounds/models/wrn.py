"""Wide ResNets WRN-d-k (Zagoruyko & Komodakis 2016) for CIFAR, without dropout.

Depth ``d = 6n + 4``: 3×3 stem conv (16 ch), three groups of ``n`` pre-activation blocks
(BN-ReLU-3×3 conv-BN-ReLU-3×3 conv, add) of widths 16k/32k/64k at 32/16/8 px; a 1×1 strided conv
shortcut (applied to the pre-activated input) where width or resolution changes; final BN-ReLU,
global average pooling, linear classifier.
``stages`` are the raw outputs of the three groups (the last one before the final BN-ReLU, as in
RepDistiller); ``pooled`` = avgpool(ReLU(BN(stage 3))).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .base import CifarModel

__all__ = ["PreActBlock", "WideResNet"]


class PreActBlock(nn.Module):
    """Pre-activation block: BN-ReLU-3x3 conv-BN-ReLU-3x3 conv, added to the shortcut.

    The shortcut is the identity when the shape is kept, else a strided 1x1 conv of the activated input.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        stride: stride of the first convolution (and of the shortcut).
    """
    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.equal = in_ch == out_ch and stride == 1
        self.shortcut = None if self.equal else nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """The block's output.

        Args:
            x: ``(N, in_ch, H, W)`` input.

        Returns:
            ``(N, out_ch, H / stride, W / stride)`` output.
        """
        act = F.relu(self.bn1(x))
        out = self.conv1(act)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (x if self.shortcut is None else self.shortcut(act))


class WideResNet(CifarModel):
    """Wide ResNet WRN-d-k for CIFAR (see the module docstring).

    Args:
        arch: the registry name (e.g. ``"wrn_40_2"``).
        depth: ``d = 6n + 4``.
        widen: the widening factor ``k``.
        num_classes: classifier outputs.

    Raises:
        ValueError: ``depth`` is not of the form ``6n + 4``.
    """
    def __init__(self, arch: str, depth: int, widen: int, num_classes: int) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4 (10, 16, 22, 28, 40, ...); got {depth}")
        n = (depth - 4) // 6
        self.arch, self.num_classes = arch, num_classes
        widths = (16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        groups, in_ch = [], 16
        for width, stride in zip(widths, (1, 2, 2)):
            blocks = []
            for i in range(n):
                blocks.append(PreActBlock(in_ch, width, stride if i == 0 else 1))
                in_ch = width
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(widths[2])
        self.stage_channels = widths
        self.feature_dim = widths[2]
        self.classifier = nn.Linear(widths[2], num_classes)

    def forward_features(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """The stage outputs and the pooled feature vector (see :class:`CifarModel`).

        Args:
            x: ``(N, 3, H, W)`` normalised images.

        Returns:
            ``(stages, pooled)``: the output of each stage, shallow to deep, and the ``(N, feature_dim)``
            vector fed to the classifier.
        """
        out = self.conv1(x)
        f1 = self.block1(out)
        f2 = self.block2(f1)
        f3 = self.block3(f2)
        pooled = F.adaptive_avg_pool2d(F.relu(self.bn(f3)), 1).flatten(1)
        return [f1, f2, f3], pooled
