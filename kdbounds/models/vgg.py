"""VGG with BatchNorm for CIFAR (Simonyan & Zisserman 2015; the CRD/RepDistiller layout).

Five blocks of 3×3 conv-BN-ReLU layers; 2×2 max-pooling after blocks 1–3 (32→16→8→4); blocks 4
and 5 run at 4×4 px; global average pooling; one linear classifier 512 → classes.
Widths per block: vgg8 [64],[128],[256],[512],[512]; vgg11 [64],[128],[256,256],[512,512],[512,512];
vgg13 [64,64],[128,128],[256,256],[512,512],[512,512].
``stages`` = the five block outputs (after ReLU, before pooling).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .base import CifarModel

__all__ = ["VGG", "VGG_CONFIGS"]

VGG_CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg8": ((64,), (128,), (256,), (512,), (512,)),
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
}


def _block(in_ch: int, widths: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for w in widths:
        layers += [nn.Conv2d(in_ch, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        in_ch = w
    return nn.Sequential(*layers)


class VGG(CifarModel):
    """VGG with BatchNorm for CIFAR (see the module docstring for the layout).

    Args:
        arch: a key of ``VGG_CONFIGS`` (``"vgg8"``, ``"vgg11"``, ``"vgg13"``).
        num_classes: classifier outputs.
    """
    def __init__(self, arch: str, num_classes: int) -> None:
        super().__init__()
        cfg = VGG_CONFIGS[arch]
        self.arch, self.num_classes = arch, num_classes
        blocks, in_ch = [], 3
        for widths in cfg:
            blocks.append(_block(in_ch, widths))
            in_ch = widths[-1]
        self.blocks = nn.ModuleList(blocks)
        self.stage_channels = tuple(w[-1] for w in cfg)
        self.feature_dim = in_ch
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward_features(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """The stage outputs and the pooled feature vector (see :class:`CifarModel`).

        Args:
            x: ``(N, 3, H, W)`` normalised images.

        Returns:
            ``(stages, pooled)``: the output of each stage, shallow to deep, and the ``(N, feature_dim)``
            vector fed to the classifier.
        """
        stages = []
        out = x
        for i, block in enumerate(self.blocks):
            out = block(out)
            stages.append(out)
            if i < 3:
                out = F.max_pool2d(out, 2)
        pooled = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return stages, pooled
