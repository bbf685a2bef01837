"""An exact cache of a frozen teacher's outputs, keyed by the input image itself.

A distillation run without augmentation shows the teacher the same images every epoch; a frozen
teacher in eval mode is a fixed function of its input, so its forward pass in epoch 2, 3, ... repeats
epoch 1's. :class:`CachedTeacher` wraps the teacher and remembers, per input image, its logits, stage
features and pooled features (always computed with ``return_features=True``); a batch is answered
from the cache for the images seen before and by one forward pass over the others.

The key of an image is the BLAKE2b-128 digest of the bytes of its (normalised, float) input tensor
together with its shape and dtype, so the cache is exact whatever the data order or batch
composition: the same bytes in give the stored outputs of those bytes. Outputs are equal to
recomputed ones bit for bit when the backend's per-image result does not depend on the other images
of the batch (eval-mode BatchNorm uses running statistics, so mathematically it never does; on CPU
with one thread the float32 results are also bit-identical, which the tests check; multi-threaded
or GPU kernels may differ in the last bits from one batch size to another, as recomputation would).

Only valid for a teacher that is frozen (``requires_grad=False``) and in eval mode: the wrapper
checks both at every call and raises otherwise. Memory: one entry per distinct image, about
``4 * (classes + sum of stage sizes + pooled)`` bytes (WRN-40-2 on CIFAR: 230 kB per image, so
0.23 GB for 1,000 images, 11 GB for the 50,000 of CIFAR-10); ``max_items`` bounds it (beyond it
new images are computed but not stored).
"""
from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_int
from ..models.base import FeatureOutput

__all__ = ["CachedTeacher"]


def _image_key(x: Tensor) -> bytes:
    """Digest of one input image's shape, dtype and bytes."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{tuple(x.shape)}{x.dtype}".encode())
    h.update(x.detach().contiguous().cpu().numpy().tobytes())
    return h.digest()


class CachedTeacher(nn.Module):
    """A frozen, eval-mode teacher whose outputs are remembered per input image (see module doc).

    ``cached(x, return_features=...)`` returns exactly what ``teacher(x, return_features=...)``
    returns (a :class:`~kdbounds.models.base.FeatureOutput` or the logits). Other attributes
    (``stage_channels``, ``num_classes``, ``arch`` ...) are those of the wrapped teacher.

    Args:
        teacher: the frozen teacher (every parameter ``requires_grad=False``, eval mode).
        max_items: the most images stored (``None``: no bound).

    Raises:
        TypeError: ``teacher`` is not an ``nn.Module``, or ``max_items`` is not an integer.
        ValueError: the teacher has trainable parameters, or ``max_items < 1``.
    """

    def __init__(self, teacher: nn.Module, max_items: int | None = None) -> None:
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher: expected an nn.Module, got {type(teacher).__name__}")
        if max_items is not None:
            max_items = check_int("max_items", max_items, minimum=1, fix="or None for no bound")
        super().__init__()
        self.teacher = teacher
        self.max_items = max_items
        self._store: dict[bytes, tuple[Tensor, tuple[Tensor, ...], Tensor]] = {}
        self.hits = 0
        self.misses = 0
        self._check_frozen()

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("teacher"), name)

    def _check_frozen(self) -> None:
        if any(p.requires_grad for p in self.teacher.parameters()):
            raise ValueError("teacher: the cache is exact only for a frozen teacher; set "
                             "requires_grad=False on its parameters (the trainer does)")
        if self.teacher.training:
            raise ValueError("teacher: the cache is exact only in eval mode; call teacher.eval() "
                             "(BatchNorm in train mode depends on the batch)")

    def train(self, mode: bool = True) -> "CachedTeacher":
        """The teacher stays in eval mode: ``train(True)`` is refused.

        Args:
            mode: must be False.

        Returns:
            ``self`` (in eval mode).

        Raises:
            ValueError: ``mode`` is True.
        """
        if mode:
            raise ValueError("CachedTeacher: a cached teacher cannot be put in train mode")
        return super().train(False)

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        """Forget every stored output (and the hit/miss counts)."""
        self._store.clear()
        self.hits = self.misses = 0

    @torch.no_grad()
    def forward(self, x: Tensor, return_features: bool = False) -> Tensor | FeatureOutput:
        """The teacher's output on ``x``: stored outputs for images seen before, a teacher forward
        for the others.

        Args:
            x: the input batch.
            return_features: return the :class:`FeatureOutput` (else the logits).

        Returns:
            What ``teacher(x, return_features=...)`` returns.

        Raises:
            TypeError: the teacher gives no ``FeatureOutput`` for ``return_features=True``.
        """
        self._check_frozen()
        keys = [_image_key(xi) for xi in x]
        missing = [i for i, k in enumerate(keys) if k not in self._store]
        fresh: dict[bytes, tuple[Tensor, tuple[Tensor, ...], Tensor]] = {}
        if missing:
            out = self.teacher(x[missing], return_features=True)
            if not isinstance(out, FeatureOutput):
                raise TypeError("teacher: return_features=True must give a FeatureOutput")
            for r, i in enumerate(missing):
                entry = (out.logits[r], tuple(s[r] for s in out.stages), out.pooled[r])
                fresh[keys[i]] = entry
                if self.max_items is None or len(self._store) < self.max_items:
                    self._store[keys[i]] = entry
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        rows = [self._store.get(k) or fresh[k] for k in keys]
        logits = torch.stack([r[0] for r in rows])
        if not return_features:
            return logits
        n_stages = len(rows[0][1])
        # the teacher's own memory format (channels-last on CPU too since the trainer uses it):
        # reductions in the loss follow the layout, so the layout is part of "identical"
        fmt = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous() else torch.contiguous_format
        stages = [torch.stack([r[1][j] for r in rows]).contiguous(memory_format=fmt)
                  if rows[0][1][j].dim() == 3 else torch.stack([r[1][j] for r in rows])
                  for j in range(n_stages)]
        return FeatureOutput(logits, stages, torch.stack([r[2] for r in rows]))
