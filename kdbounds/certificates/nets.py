"""Small BatchNorm-free CIFAR networks for certificates on CPU (buildable by name inside :func:`registered`).

A PAC-Bayes certificate over a network's weights needs the prior and the posterior to share every
non-random tensor (theory.md §7): with BatchNorm, a student trained on its own would carry running
statistics different from the prior's, and its KL to the prior would be infinite. These networks
have no buffers, so any two of the same architecture can be compared. They are also cheap enough
for thousands of Monte Carlo weight draws on two CPU cores:

* ``mlp256``: 2×2 average pooling (32×32×3 → 16×16×3 = 768 inputs, parameter-free), one hidden
  ReLU layer of 256 units, linear classifier (199,434 parameters for 10 classes);
* ``mlp512x2``: the same input, two hidden ReLU layers of 512 units (661,514 parameters) — a
  larger teacher for prior (d).

``model(x, return_features=True)`` returns each hidden layer as a ``N × width × 1 × 1`` stage and the
last hidden layer as ``pooled`` (the :class:`~kdbounds.models.base.CifarModel` contract).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn
from torch.nn import functional as F

from kdbounds.models.base import CifarModel
from kdbounds.models.registry import available_models, register_model

__all__ = ["CifarMLP", "NET_NAMES", "registered"]


class CifarMLP(CifarModel):
    """``avgpool(pool) → flatten → [Linear → ReLU] × len(widths) → Linear`` (no buffers)."""

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
        h = F.avg_pool2d(x, self.pool) if self.pool > 1 else x
        h = h.flatten(1)
        stages = []
        for lin in self.hidden:
            h = F.relu(lin(h))
            stages.append(h[:, :, None, None])
        return stages, h


_NETS = {"mlp256": (256,), "mlp512x2": (512, 512)}
NET_NAMES = tuple(_NETS)


@contextmanager
def registered() -> Iterator[None]:
    """Context in which ``build_model("mlp256")`` / ``("mlp512x2")`` work (the trainer builds by name).

    The names are added to the model registry on entry and removed on exit, so the project's zoo
    (and its test that lists every registered model) is unchanged outside; nested use is free, and
    names already registered elsewhere are left alone. (Moving these networks into
    :mod:`kdbounds.models` would make this a no-op.)
    """
    from kdbounds.models import registry

    added = []
    for name, widths in _NETS.items():
        if name not in available_models():
            register_model(name, lambda c, n=name, w=widths: CifarMLP(n, w, c))
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            registry._REGISTRY.pop(name, None)
