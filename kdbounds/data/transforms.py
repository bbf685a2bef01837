"""Normalisation constants, vectorised augmentation and a device-resident batch loader.

Augmentation (the standard CIFAR recipe) on a batch of ``uint8`` NHWC images ``x`` (``H = W = 32``):
pad every image with ``p = 4`` zeros on each side, then take the ``H x W`` window whose top-left
corner is ``(i_b, j_b)`` (uniform in ``{0..2p}``), and mirror it horizontally when ``f_b = 1``::

    out[b, h, w, c] = pad(x)[b, i_b + h, j_b + (W - 1 - w if f_b else w), c]

done as one gather for the whole batch (no per-image loop). Normalisation maps a pixel ``v`` in
``{0..255}`` of channel ``c`` to ``(v / 255 - mean_c) / std_c``.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch

from .._checks import check_choice, check_int

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "NORMALIZATION",
    "normalization",
    "random_crop_flip",
    "normalize_uint8",
    "normalized_images",
    "TensorLoader",
]

# Per-channel pixel means / standard deviations of the training sets (values in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
NORMALIZATION = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "cifar100": (CIFAR100_MEAN, CIFAR100_STD)}


def normalization(spec: bool | str | tuple = True) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Resolve a normalisation spec to ``(mean, std)`` (or ``None`` for no normalisation).

    ``True`` or ``"cifar10"``: CIFAR-10 statistics; ``"cifar100"``: CIFAR-100 statistics;
    ``(mean, std)``: explicit per-channel values; ``False``: none (pixels scaled to [0, 1] only).

    Args:
        spec: ``True``, ``False``, ``"cifar10"``, ``"cifar100"`` or ``(mean, std)``.

    Returns:
        ``(mean, std)`` per channel, or ``None``.

    Raises:
        ValueError: unknown name, or ``(mean, std)`` of unequal lengths, non-finite means or
            non-positive stds.
        TypeError: ``spec`` is of another type.
    """
    if spec is False or spec is None:
        return None
    if spec is True:
        spec = "cifar10"
    if isinstance(spec, str):
        key = spec.lower().replace("-", "")
        if key not in NORMALIZATION:
            raise ValueError(f"normalize={spec!r} is unknown; use True, False, one of "
                             f"{sorted(NORMALIZATION)} or a (mean, std) pair")
        return NORMALIZATION[key]
    try:
        mean, std = spec
        mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    except (TypeError, ValueError) as e:
        raise TypeError(f"normalize={spec!r} is not understood; use True, False, 'cifar10', 'cifar100' "
                        "or a (mean, std) pair of per-channel sequences") from e
    if len(mean) != len(std) or not all(s > 0 and math.isfinite(s) for s in std) \
            or not all(math.isfinite(m) for m in mean):
        raise ValueError(f"normalize=(mean, std) needs equal lengths, finite means and positive stds; got {spec!r}")
    return mean, std


PAD_MODES = ("zeros", "reflect")
FLIP_MODES = ("random", "alternating")


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Reflect out-of-range indices into ``[0, n)`` without repeating the edge (``-1 -> 1``, ``n -> n-2``)."""
    i = torch.where(i < 0, -i, i)
    return torch.where(i >= n, 2 * (n - 1) - i, i)


def _crop_flip_rows(idx: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, h: int, w: int,
                    padding: int, zero_row: int, pad_mode: str = "zeros") -> torch.Tensor:
    """Flat pixel-row indices ``(B*H*W,)`` into an ``(N*H*W + 1, C)`` pixel table whose last row is 0.

    Pixel ``(h', w')`` of output ``b`` reads source pixel ``(i_b - p + h', j_b - p + w'')`` of image
    ``idx[b]`` with ``w'' = W-1-w'`` if flipped else ``w'``; positions outside the image read the zero row
    (``pad_mode="zeros"``) or their mirror image across the border (``"reflect"``, as ``F.pad(mode="reflect")``).
    """
    dev = idx.device
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    r = offsets[:, 0:1] - padding + ar_h  # (B, H)
    c = offsets[:, 1:2] - padding + ar_w  # (B, W): crop in the padded image, then mirror the crop
    if pad_mode == "reflect":
        r, c = _reflect(r, h), _reflect(c, w)
    c = torch.where(flips[:, None], c.flip(1), c)
    valid = ((r >= 0) & (r < h))[:, :, None] & ((c >= 0) & (c < w))[:, None, :]
    flat = idx[:, None, None] * (h * w) + r[:, :, None] * w + c[:, None, :]
    return torch.where(valid, flat, torch.full_like(flat, zero_row)).reshape(-1)


def _pixel_table(x: torch.Tensor) -> torch.Tensor:
    """``(N*H*W + 1, C)`` copy of an NHWC uint8 tensor with an extra all-zero last row."""
    n, h, w, c = x.shape
    table = torch.empty((n * h * w + 1, c), dtype=x.dtype, device=x.device)
    table[:-1] = x.reshape(n * h * w, c)
    table[-1] = 0
    return table


def random_crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor,
                     padding: int = 4, pad_mode: str = "zeros") -> torch.Tensor:
    """Zero-padded random crop + horizontal flip of a uint8 NHWC batch, as one gather.

    The formula is in the module docstring. :class:`TensorLoader` uses the same index computation on
    its whole data set.

    Args:
        x: ``(B, H, W, C)`` uint8 batch.
        offsets: ``(B, 2)`` integer top-left corners ``(i, j)`` in padded coordinates, in
            ``[0, 2 * padding]``.
        flips: ``(B,)`` bool, flip image ``b`` horizontally.
        padding: padding on each side.
        pad_mode: ``"zeros"`` or ``"reflect"`` (mirror across the border, ``padding < H, W``).

    Returns:
        A new ``(B, H, W, C)`` tensor.

    Raises:
        ValueError: wrong shapes of ``x``, ``offsets`` or ``flips``, offsets out of range, or an unknown ``pad_mode``.
    """
    _check_pad_mode(pad_mode)
    if x.ndim != 4:
        raise ValueError(f"x must be a (B, H, W, C) batch, got shape {tuple(x.shape)}")
    b, h, w, c = x.shape
    if offsets.shape != (b, 2) or flips.shape != (b,):
        raise ValueError(f"offsets must be ({b}, 2) and flips ({b},); got {tuple(offsets.shape)}, {tuple(flips.shape)}")
    if offsets.numel() and (int(offsets.min()) < 0 or int(offsets.max()) > 2 * padding):
        raise ValueError(f"offsets must lie in [0, {2 * padding}] for padding={padding}")
    table = _pixel_table(x)
    rows = _crop_flip_rows(torch.arange(b, device=x.device), offsets.to(x.device), flips.to(x.device).bool(),
                           h, w, int(padding), b * h * w, pad_mode)
    return table.index_select(0, rows).view(b, h, w, c)


def _check_pad_mode(pad_mode: str) -> None:
    check_choice("pad_mode", pad_mode, PAD_MODES)


def normalize_uint8(x: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""Scale a uint8 NCHW batch (any strides) to floats and normalise per channel.

    .. math::
        y_{nchw} = \frac{x_{nchw} / 255 - \mu_c}{\sigma_c}

    (or :math:`x / 255` when ``mean`` is ``None``). Keeps the memory format of ``x`` (a
    channels-last view stays channels-last).

    Args:
        x: uint8 ``(N, C, H, W)`` images.
        mean: per-channel means :math:`\mu_c`, or ``None`` for no normalisation.
        std: per-channel standard deviations :math:`\sigma_c`.
        dtype: floating dtype of the result.

    Returns:
        The normalised float tensor, same shape and memory format as ``x``.

    Raises:
        ValueError: ``mean`` has a different number of channels than ``x``.
    """
    out = x.to(dtype)
    c = x.shape[1]
    if mean is None:
        return out.mul_(1.0 / 255.0)
    if len(mean) != c:
        raise ValueError(f"normalisation has {len(mean)} channels, images have {c}")
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=dtype, device=x.device).view(1, c, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], dtype=dtype, device=x.device).view(1, c, 1, 1)
    return out.mul_(scale).sub_(shift)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, int(epoch)]).generate_state(
        1, dtype=np.uint64)[0] >> 1)


def normalized_images(images: np.ndarray, device: str | torch.device = "cpu", spec: bool | str | tuple = "cifar10"
                      ) -> torch.Tensor:
    """uint8 NHWC images (as :func:`kdbounds.data.load_cifar` returns them) as a normalised float NCHW tensor.

    The one conversion the measurements use: ``permute`` to NCHW (a view, channels-last in memory), move
    to ``device``, then :func:`normalize_uint8` with :func:`normalization` ``(spec)``.

    Args:
        images: ``(N, H, W, C)`` uint8 images.
        device: where the tensor lives.
        spec: the normalisation (see :func:`normalization`; default CIFAR-10 statistics).

    Returns:
        The float32 ``(N, C, H, W)`` tensor.

    Raises:
        ValueError: ``images`` is not a 4-D uint8 array.
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.dtype != np.uint8:
        raise ValueError(f"images: expected uint8 (N, H, W, C) images, got dtype {x.dtype}, shape {x.shape}")
    stats = normalization(spec)
    mean, std = stats if stats is not None else (None, None)
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).to(device)
    return normalize_uint8(t, mean, std)


class TensorLoader:
    """Batches from images held as one uint8 tensor on ``device``; augmentation as tensor ops there.

    Yields ``(x, y)``: ``x`` float ``(B, C, H, W)`` normalised (see :func:`normalization`),
    ``y`` int64 ``(B,)``. Epoch ``e`` uses a ``torch.Generator`` seeded from ``(seed, e)`` for the
    shuffle order and the per-sample crop offsets / flips, so an epoch's batches depend only on
    ``(seed, e)``. Each iteration runs the current epoch and then advances it; ``set_epoch(e)`` picks
    the epoch of the next iteration; ``state_dict()`` / ``load_state_dict()`` record the epoch and the
    number of batches already yielded, so a resumed loader continues mid-epoch with the same batches.
    ``channels_last=True`` returns ``x`` in ``torch.channels_last`` memory format.

    Augmentation: a crop translated by up to ``padding`` pixels (borders filled with zeros or, with
    ``pad_mode="reflect"``, mirrored) and a horizontal flip. ``flip="random"`` flips each image with
    probability 1/2 in every epoch; ``flip="alternating"`` (airbench) draws one flip bit ``f_i`` per image
    from ``seed`` alone and flips image ``i`` in epoch ``e`` iff ``f_i XOR (e mod 2)``, so every image is
    seen in both orientations in each pair of epochs.

    The per-epoch plan (order, crop offsets, flips) is drawn on the CPU and moved to ``device`` once,
    so CPU and CUDA loaders with the same seed yield the same batches. Leaving a ``for`` loop early
    leaves the loader mid-epoch: the next iteration continues that epoch (call ``set_epoch`` to
    restart). Each batch costs one ``index_select`` of ``B*H*W`` pixel rows plus elementwise ops.
    """

    def __init__(self, images, labels, batch_size: int, shuffle: bool = True, augment: bool = False,
                 device: str | torch.device = "cpu", seed: int = 0, drop_last: bool = False,
                 normalize: bool | str | tuple = True, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, padding: int = 4, pad_mode: str = "zeros",
                 flip: str = "random") -> None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
        padding = check_int("padding", padding, minimum=0)
        _check_pad_mode(pad_mode)
        check_choice("flip", flip, FLIP_MODES)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
        if x.dtype != torch.uint8:
            raise TypeError(f"images must be uint8 (N, H, W, C) as returned by load_cifar, got dtype {x.dtype}")
        if x.ndim != 4 or x.shape[-1] not in (1, 3):
            raise ValueError(f"images must have shape (N, H, W, C) with C in (1, 3), got {tuple(x.shape)}")
        y = labels if isinstance(labels, torch.Tensor) else torch.from_numpy(np.asarray(labels))
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"labels must have shape ({x.shape[0]},) to match images, got {tuple(y.shape)}")
        if y.dtype.is_floating_point or y.dtype == torch.bool or y.dtype.is_complex:
            raise TypeError(f"labels must be integer class indices, got dtype {y.dtype}")
        if x.shape[0] == 0:
            raise ValueError("images is empty; a loader needs at least one example")
        self.device = torch.device(device)
        x = x.to(self.device)
        # NHWC uint8 kept as a pixel table with a trailing zero row (the padding read by augmentation)
        self._table = _pixel_table(x)
        self._x = self._table[:-1].view(x.shape)
        self._y = y.to(self.device, torch.int64)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.augment = bool(augment)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.dtype = dtype
        self.channels_last = bool(channels_last)
        self.padding = int(padding)
        self.pad_mode, self.flip = pad_mode, flip
        if pad_mode == "reflect" and self.padding >= min(x.shape[1], x.shape[2]):
            raise ValueError(f"padding={padding} must be smaller than the image side for pad_mode='reflect'")
        self._norm = normalization(normalize)
        if self._norm is not None and len(self._norm[0]) != x.shape[-1]:
            raise ValueError(f"normalize has {len(self._norm[0])} channels, images have {x.shape[-1]}")
        self._epoch = 0
        self._batch = 0

    # ----------------------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Number of examples in the loader's data set."""
        return int(self._x.shape[0])

    @property
    def epoch(self) -> int:
        """Epoch that the next (or current) iteration uses."""
        return self._epoch

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration run epoch ``epoch`` from its first batch.

        Args:
            epoch: the epoch to run next (its shuffle and augmentation draws).

        Raises:
            TypeError: ``epoch`` is not an integer.
            ValueError: ``epoch`` is negative.
        """
        self._epoch, self._batch = check_int("epoch", epoch, minimum=0), 0

    def state_dict(self) -> dict:
        """``{"epoch", "batch", "seed", "num_samples", "batch_size"}``: where the next batch comes from.

        Returns:
            The position as a plain dict.
        """
        epoch, batch = self._epoch, self._batch
        if batch >= len(self):
            epoch, batch = epoch + 1, 0
        return {"epoch": epoch, "batch": batch, "seed": self.seed, "num_samples": self.num_samples,
                "batch_size": self.batch_size, "shuffle": self.shuffle, "augment": self.augment,
                "drop_last": self.drop_last, "pad_mode": self.pad_mode, "flip": self.flip}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`; the loader must have the same data size, batch size and seed.

        Args:
            state: a dict from :meth:`state_dict`.

        Raises:
            ValueError: the position is out of range or the loader differs (size, batch size, seed).
        """
        for k in ("num_samples", "batch_size", "seed", "shuffle", "augment", "drop_last", "pad_mode", "flip"):
            if k in state and state[k] != getattr(self, k):
                raise ValueError(f"loader state has {k}={state[k]!r} but this loader has {getattr(self, k)!r}; "
                                 "build the loader with the same data and settings to resume")
        epoch, batch = int(state["epoch"]), int(state["batch"])
        if epoch < 0 or not 0 <= batch <= len(self):
            raise ValueError(f"loader state epoch={epoch}, batch={batch} is out of range (len={len(self)})")
        self._epoch, self._batch = epoch, batch

    # ----------------------------------------------------------------------------------------
    def _plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(order, offsets, flips) of one epoch, drawn on CPU from the epoch's generator, moved to device."""
        g = torch.Generator()
        g.manual_seed(_epoch_seed(self.seed, epoch))
        n = self.num_samples
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        offsets = flips = None
        if self.augment:
            offsets = torch.randint(0, 2 * self.padding + 1, (n, 2), generator=g)
            flips = torch.randint(0, 2, (n,), generator=g).bool()
            if self.flip == "alternating":  # per image, fixed by the seed, toggled every other epoch
                base = torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(
                    _epoch_seed(self.seed, 2**62))).bool()
                flips = (base ^ bool(epoch % 2))[order]
            offsets, flips = offsets.to(self.device), flips.to(self.device)
        return order.to(self.device), offsets, flips

    def _make_batch(self, idx: torch.Tensor, offsets, flips) -> tuple[torch.Tensor, torch.Tensor]:
        _, h, w, c = self._x.shape
        if offsets is not None:
            rows = _crop_flip_rows(idx, offsets, flips, h, w, self.padding, self._table.shape[0] - 1,
                                   self.pad_mode)
            xb = self._table.index_select(0, rows).view(idx.shape[0], h, w, c)
        else:
            xb = self._x.index_select(0, idx)
        xb = xb.permute(0, 3, 1, 2)  # NCHW view with channels-last strides
        if not self.channels_last:
            xb = xb.contiguous()  # transpose the uint8 batch (4x cheaper than the float one)
        mean, std = self._norm if self._norm is not None else (None, None)
        return normalize_uint8(xb, mean, std, self.dtype), self._y.index_select(0, idx)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch, start = self._epoch, self._batch
        if start >= len(self):  # resumed exactly at an epoch's end
            epoch, start = epoch + 1, 0
            self._epoch, self._batch = epoch, 0
        order, offsets, flips = self._plan(epoch)
        n, bs = self.num_samples, self.batch_size
        for b in range(start, len(self)):
            lo, hi = b * bs, min((b + 1) * bs, n)
            sl = slice(lo, hi)
            batch = self._make_batch(order[sl], None if offsets is None else offsets[sl],
                                     None if flips is None else flips[sl])
            self._batch = b + 1
            yield batch
        self._epoch, self._batch = epoch + 1, 0

    def __repr__(self) -> str:
        return (f"TensorLoader(n={self.num_samples}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"augment={self.augment}, device={self.device}, epoch={self._epoch})")
