"""Small BatchNorm-free CIFAR networks (``mlp256``, ``mlp512x2``), built for PAC-Bayes certificates on CPU.

A PAC-Bayes certificate over a network's weights needs the prior and the posterior to share every
non-random tensor (theory.md §7): with BatchNorm, a student trained on its own would carry running
statistics different from the prior's, and its KL to the prior would be infinite. These networks
have no buffers, so any two of the same architecture can be compared. They are also cheap enough
for thousands of Monte Carlo weight draws on two CPU cores:

* ``mlp256``: 2×2 average pooling (32×32×3 → 16×16×3 = 768 inputs, parameter-free), one hidden
  ReLU layer of 256 units, linear classifier (199,434 parameters for 10 classes);
* ``mlp512x2``: the same input, two hidden ReLU layers of 512 units (661,514 parameters) — a
  larger teacher for prior (d) of :mod:`kdbounds.runs.priors`.

``model(x, return_features=True)`` returns each hidden layer as a ``N × width × 1 × 1`` stage and the
last hidden layer as ``pooled`` (the :class:`~kdbounds.models.base.CifarModel` contract).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from .base import CifarModel

__all__ = ["CifarMLP", "MLP_WIDTHS"]

#: registry name -> hidden widths (registered by :mod:`kdbounds.models.registry`).
MLP_WIDTHS: dict[str, tuple[int, ...]] = {"mlp256": (256,), "mlp512x2": (512, 512)}


class CifarMLP(CifarModel):
    """``avgpool(pool) → flatten → [Linear → ReLU] × len(widths) → Linear`` (no buffers).

    Args:
        arch: the registry name recorded as ``model.arch``.
        widths: the hidden layers' widths.
        num_classes: classifier outputs.
        pool: side of the parameter-free average pooling applied to the 32×32 input first.
    """

    def __init__(self, arch: str, widths: tuple[int, ...], num_classes: int, pool: int = 2) -> None:
        super().__init__()
        self.arch, self.num_classes, self.pool = arch, num_classes, pool
        d = 3 * (32 // pool) ** 2
        layers = []
        for w in widths:
            layers.append(nn.Linear(d, w))
            d = w
        self.hidden = nn.ModuleList(layers)
        self.stage_channels = tuple(widths)
        self.feature_dim = d
        self.classifier = nn.Linear(d, num_classes)

    def forward_features(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """Each hidden layer as an ``N × width × 1 × 1`` stage, and the last one as the pooled vector.

        Args:
            x: ``(N, 3, 32, 32)`` normalised images.

        Returns:
            ``(stages, pooled)``.
        """
        h = F.avg_pool2d(x, self.pool) if self.pool > 1 else x
        h = h.flatten(1)
        stages = []
        for lin in self.hidden:
            h = F.relu(lin(h))
            stages.append(h[:, :, None, None])
        return stages, h
