r"""The airbench94-shaped fast CIFAR network (Jordan 2024, arXiv 2404.00498) and its narrower variants.

Layout (``widths = (w_1, w_2, w_3)``; airbench94: 64, 256, 256, about 1.97 M parameters)::

    whiten  2x2 conv, 3 -> 24 channels, bias, no padding (32x32 -> 31x31), GELU
    group k conv 3x3 (no bias, 'same') -> max-pool 2x2 -> BatchNorm -> GELU
            -> conv 3x3 (no bias, 'same') -> BatchNorm -> GELU          k = 1, 2, 3 (31 -> 15 -> 7 -> 3)
    head    max-pool 3x3 -> flatten (w_3) -> times 1/9 -> linear w_3 -> classes (no bias)

The ``1/9`` scale of the logits is applied to the pooled vector (the classifier has no bias, so
``classifier(pooled / 9) = classifier(pooled) / 9``): ``logits = classifier(pooled)`` holds as for every
zoo model. BatchNorm has no learnable scale (weight fixed at 1, ``requires_grad=False``), a learnable
bias, ``eps = 1e-12`` and running-average momentum 0.4 (PyTorch's convention).

Initialisation (:meth:`AirbenchNet.init_parameters`): PyTorch's default for every convolution and the
classifier, drawn from the given generator, then **identity (dirac) on the first ``in_channels`` filters of
every 3×3 convolution**, so that at initialisation ``conv(x)[:, :in] = x``. The whitening layer's weights
are set from training patches by :func:`whitening_weights` and :meth:`AirbenchNet.set_whitening`
(the fast recipe does this, then freezes them; :mod:`kdbounds.distill.recipes`):

.. math::
    \Sigma = \mathrm{Cov}(\text{2×2×3 patches}) = V \Lambda V^\top, \qquad
    W = \begin{bmatrix} V^\top / \sqrt{\Lambda + \varepsilon} \\ -V^\top / \sqrt{\Lambda + \varepsilon}
    \end{bmatrix} \in \mathbb R^{24 \times 12},

so the first 12 outputs (before the bias) are the whitened patches and the other 12 their negatives.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import check_positive
from .base import CifarModel

__all__ = ["AIRBENCH_WIDTHS", "AirbenchNet", "patch_covariance", "whitening_weights"]

#: registered names -> widths of the three groups (``airbench94`` is the published network).
AIRBENCH_WIDTHS: dict[str, tuple[int, int, int]] = {
    "airbench94": (64, 256, 256),
    "airbench_m": (64, 128, 128),
    "airbench_s": (32, 64, 64),
}
WHITEN_PATCH = 2
WHITEN_CHANNELS = 2 * 3 * WHITEN_PATCH * WHITEN_PATCH  # 24
BN_MOMENTUM = 0.4
BN_EPS = 1e-12
LOGIT_SCALE = 1.0 / 9.0


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)
    bn.weight.requires_grad_(False)  # scale fixed at 1; the bias learns
    return bn


class ConvGroup(nn.Module):
    """conv 3×3 -> max-pool 2 -> BN -> GELU -> conv 3×3 -> BN -> GELU.

    Args:
        in_ch: input channels.
        out_ch: output channels (``>= in_ch`` so the dirac initialisation covers the input).
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding="same", bias=False)
        self.norm1 = _batch_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding="same", bias=False)
        self.norm2 = _batch_norm(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        """The group's output.

        Args:
            x: ``(N, in_ch, H, W)`` input.

        Returns:
            ``(N, out_ch, H // 2, W // 2)`` output.
        """
        x = F.gelu(self.norm1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.norm2(self.conv2(x)))


class AirbenchNet(CifarModel):
    """The airbench94-shaped network (layout in the module docstring).

    Args:
        arch: the registered name.
        widths: channels of the three groups.
        num_classes: classifier outputs.
    """

    def __init__(self, arch: str, widths: tuple[int, int, int], num_classes: int = 10) -> None:
        super().__init__()
        if len(widths) != 3 or any(int(w) < WHITEN_CHANNELS for w in widths) or list(widths) != sorted(widths):
            raise ValueError(f"widths must be 3 non-decreasing ints >= {WHITEN_CHANNELS}; got {widths!r}")
        self.arch, self.num_classes = arch, num_classes
        self.stage_channels = tuple(int(w) for w in widths)
        self.feature_dim = self.stage_channels[-1]
        self.whiten = nn.Conv2d(3, WHITEN_CHANNELS, WHITEN_PATCH, padding=0, bias=True)
        chans = (WHITEN_CHANNELS,) + self.stage_channels
        self.groups = nn.ModuleList(ConvGroup(chans[k], chans[k + 1]) for k in range(3))
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False)

    def forward_features(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """The three group outputs and the pooled, scaled feature vector.

        Args:
            x: ``(N, 3, 32, 32)`` normalised images.

        Returns:
            ``(stages, pooled)`` with ``pooled = maxpool3(stages[-1]).flatten() / 9``.
        """
        h = F.gelu(self.whiten(x))
        stages = []
        for g in self.groups:
            h = g(h)
            stages.append(h)
        pooled = F.max_pool2d(h, 3).flatten(1) * LOGIT_SCALE
        return stages, pooled

    def dirac_convs(self) -> list[nn.Conv2d]:
        """The 3×3 convolutions that get the identity initialisation.

        Returns:
            Every group's two convolutions, shallow to deep.
        """
        return [c for g in self.groups for c in (g.conv1, g.conv2)]

    def init_parameters(self, generator: torch.Generator | None = None) -> None:
        """PyTorch's default initialisation from ``generator``, then dirac on the 3×3 convolutions.

        Default (``kaiming_uniform_(a=sqrt(5))``): weights and biases uniform in ``+-1/sqrt(fan_in)``. Then for every
        3×3 convolution with ``c_in`` input channels, filters ``0..c_in-1`` are the identity. BatchNorm:
        weight 1, bias 0, running statistics reset.

        Args:
            generator: the ``torch.Generator`` to draw from (``None``: the global RNG).
        """
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    bound = 1.0 / math.sqrt(m.weight[0].numel())
                    m.weight.uniform_(-bound, bound, generator=generator)
                    if m.bias is not None:
                        m.bias.uniform_(-bound, bound, generator=generator)
                elif isinstance(m, nn.BatchNorm2d):
                    m.reset_parameters()
            self.whiten.bias.zero_()
            for c in self.dirac_convs():
                nn.init.dirac_(c.weight[: c.in_channels])

    def set_whitening(self, weight: Tensor) -> None:
        """Set the whitening layer's weights (from :func:`whitening_weights`) and freeze them.

        Args:
            weight: ``(24, 3, 2, 2)`` weights.

        Raises:
            ValueError: wrong shape or non-finite entries.
        """
        if tuple(weight.shape) != tuple(self.whiten.weight.shape) or not torch.isfinite(weight).all():
            raise ValueError(f"whitening weight must be finite with shape {tuple(self.whiten.weight.shape)}; "
                             f"got {tuple(weight.shape)}")
        with torch.no_grad():
            self.whiten.weight.copy_(weight.to(self.whiten.weight))
        self.whiten.weight.requires_grad_(False)


def patch_covariance(images: Tensor, patch: int = WHITEN_PATCH) -> Tensor:
    """Covariance of all ``patch × patch × 3`` patches (stride 1) of normalised images, in float64.

    Args:
        images: ``(N, 3, H, W)`` normalised float images.
        patch: patch side.

    Returns:
        The ``(3 patch^2, 3 patch^2)`` covariance, features ordered as ``Conv2d`` weights flatten (c, i, j).

    Raises:
        ValueError: ``images`` is not ``N x 3 x H x W`` with ``N >= 1`` or has non-finite entries.
    """
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3 or images.shape[0] < 1:
        raise ValueError(f"images must be an N×3×H×W float tensor with N ≥ 1; got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or inf; whitening statistics need finite normalised images")
    p = F.unfold(images.double(), patch)  # N × (3·p²) × L, rows ordered (c, i, j) like a conv weight
    p = p.transpose(1, 2).reshape(-1, p.shape[1])
    p = p - p.mean(0, keepdim=True)
    return p.T @ p / max(p.shape[0] - 1, 1)


def whitening_weights(images: Tensor, eps: float = 5e-4, patch: int = WHITEN_PATCH) -> Tensor:
    r"""Whitening-layer weights from training images (formula in the module docstring).

    Args:
        images: ``(N, 3, H, W)`` normalised training images (airbench: the first 5,000).
        eps: added to the eigenvalues before the inverse square root.
        patch: patch side (2 for the published network).

    Returns:
        ``(2 * 3 * patch^2, 3, patch, patch)`` float32 weights (formula in the module docstring).

    Raises:
        TypeError: ``eps`` is not a real number.
        ValueError: ``eps`` is not a positive finite number (plus :func:`patch_covariance`'s errors).
    """
    eps = check_positive("eps", eps)
    cov = patch_covariance(images, patch)
    lam, v = torch.linalg.eigh(cov)
    rows = (v.T / torch.sqrt(lam.clamp_min(0) + eps)[:, None]).reshape(-1, 3, patch, patch)
    return torch.cat([rows, -rows]).float()
