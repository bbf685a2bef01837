"""The one data convention of every public function that takes data (private plumbing).

Every such function accepts the same three forms and names the argument when it gets anything else:

1. ``(x, y)`` — two tensors (or numpy arrays) with the same leading length: inputs and targets;
2. an iterable of ``(x, y)`` batches — a list, a tuple, a generator (read once and kept);
3. a ``torch.utils.data.DataLoader`` (or any re-iterable object yielding ``(x, y)`` batches; extra
   batch entries after ``y``, e.g. an index, are dropped).

:func:`as_batches` turns any of them into a re-iterable of ``(x, y)`` batches (what the Hessian
operators and the trainer's evaluation iterate over); :func:`as_tensors` into one ``(x, y)`` pair of
tensors (what the checks and the certificate need: all of the data at once); :func:`is_pair` tells
form 1 from the others. Nothing here moves data between devices or changes dtypes, except numpy
arrays, which become tensors.

The checks of what such data holds, each naming the argument and the fix, are written here once:
:func:`check_inputs` (a network's inputs: floating, the network's dtype, finite), :func:`check_labels`
(class indices: 1-D, an integer dtype, ``>= 0``, below the number of classes) and
:func:`check_finite_tensors` (no NaN/inf in any floating tensor of a batch, whatever its structure).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._checks import check_int

__all__ = ["FORMS", "as_batches", "as_tensors", "is_pair", "check_inputs", "check_labels", "check_finite_tensors",
           "label_law_shift", "warn_label_law_shift"]

FORMS = "(x, y) tensors, an iterable of (x, y) batches, or a DataLoader"


def _tensor(a: Any) -> Tensor | None:
    if isinstance(a, Tensor):
        return a
    if isinstance(a, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a))
    return None


def is_pair(data: Any) -> bool:
    """True when ``data`` is form 1: a tuple/list of two tensors (or arrays) of the same leading length.

    A list of two *batches* is a list of two tuples, so it is not a pair.

    Args:
        data: anything.

    Returns:
        Whether ``data`` is an ``(x, y)`` pair of tensors.
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        return False
    x, y = (_tensor(a) for a in data)
    return x is not None and y is not None and x.dim() >= 1 and y.dim() >= 1 and len(x) == len(y)


def _wrong_form(name: str, data: Any, detail: str = "") -> TypeError:
    return TypeError(f"{name}: expected {FORMS}; got {type(data).__name__}{detail}")


def _batch_pair(batch: Any, name: str, i: int) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        x, y = batch[0], batch[1]
        xt, yt = _tensor(x), _tensor(y)
        return (xt if xt is not None else x), (yt if yt is not None else y)
    kind = f"a {type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    raise TypeError(f"{name}: batch {i} is {kind}; every batch must be an (x, y) pair ({FORMS})")


class _Batches:
    """A re-iterable view of a DataLoader-like object that checks every batch is ``(x, y)``."""

    def __init__(self, source: Iterable, name: str) -> None:
        self.source = source
        self.name = name

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        for i, batch in enumerate(self.source):
            yield _batch_pair(batch, self.name, i)

    def __len__(self) -> int:
        return len(self.source)  # type: ignore[arg-type]


def as_batches(data: Any, name: str = "data", *, batch_size: int | None = None) -> Iterable[tuple[Any, Any]]:
    """Any of the three forms as a re-iterable of ``(x, y)`` batches.

    Args:
        data: ``(x, y)`` tensors, an iterable of ``(x, y)`` batches, or a DataLoader.
        name: the argument's name, for errors.
        batch_size: split an ``(x, y)`` pair into batches of this size (``None``: one batch).
            Batches that come as batches are kept as they are.

    Returns:
        The pair as one batch (or several), a list for a list/tuple/generator of batches (a generator
        is read once), or a checking view of a DataLoader that can be iterated again.

    Raises:
        TypeError: ``data`` is none of the three forms (``None``, a single tensor, a number, a
            string, a dict, ...) or a batch is not an ``(x, y)`` pair; the message names ``name``
            and lists the three forms.
        ValueError: ``batch_size`` < 1, or no batch at all.
    """
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    if is_pair(data):
        x, y = (_tensor(a) for a in data)
        if len(x) == 0:
            raise ValueError(f"{name}: no examples (x and y are empty)")
        if batch_size is None or batch_size >= len(x):
            return [(x, y)]
        return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(_tensor(a) is not None for a in data):
        x, y = (_tensor(a) for a in data)  # meant as (x, y), but not a valid pair
        raise ValueError(f"{name}: x and y must have the same leading length (one target per input), got shapes "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if isinstance(data, (Tensor, np.ndarray)):
        raise _wrong_form(name, data, f" of shape {tuple(data.shape)} (inputs alone: pass (x, y) with the targets)")
    if isinstance(data, (str, bytes, dict)) or not isinstance(data, Iterable):
        raise _wrong_form(name, data)
    if isinstance(data, (tuple, list, Iterator)):  # a container of batches, or a one-shot generator: keep it
        batches = [_batch_pair(b, name, i) for i, b in enumerate(data)]
        if not batches:
            raise ValueError(f"{name}: no batches ({FORMS})")
        return batches
    return _Batches(data, name)


def as_tensors(data: Any, name: str = "data") -> tuple[Tensor, Tensor]:
    """Any of the three forms as one ``(x, y)`` pair of tensors (batches concatenated in order).

    Args:
        data: ``(x, y)`` tensors, an iterable of ``(x, y)`` batches, or a DataLoader (iterated once).
        name: the argument's name, for errors.

    Returns:
        ``(x, y)``: tensors with the same, non-zero leading length.

    Raises:
        TypeError: not one of the three forms, or a batch whose ``x`` or ``y`` is not a tensor.
        ValueError: no example, or ``x`` and ``y`` of different lengths.
    """
    if is_pair(data):
        x, y = (_tensor(a) for a in data)
    else:
        xs, ys = [], []
        for i, (bx, by) in enumerate(as_batches(data, name)):
            if not isinstance(bx, Tensor) or not isinstance(by, Tensor):
                raise TypeError(f"{name}: batch {i} holds {type(bx).__name__} and {type(by).__name__}; expected "
                                f"tensors x and y")
            if len(bx) != len(by):
                raise ValueError(f"{name}: batch {i} has {len(bx)} inputs but {len(by)} targets")
            xs.append(bx)
            ys.append(by)
        if not xs:
            raise ValueError(f"{name}: no batches ({FORMS})")
        x, y = (xs[0], ys[0]) if len(xs) == 1 else (torch.cat(xs), torch.cat(ys))
    if len(x) == 0:
        raise ValueError(f"{name}: no examples (x and y are empty)")
    return x, y


def check_inputs(name: str, x: Tensor, dtype: torch.dtype | None = None, what: str = "") -> Tensor:
    """A network's inputs: a floating tensor (of ``dtype`` when given) with only finite entries.

    Args:
        name: the argument's name, for errors.
        x: the inputs.
        dtype: the dtype of the network's parameters (``None``: any floating dtype).
        what: where in ``name`` they are (e.g. ``"batch 2 "``), for errors.

    Returns:
        ``x``.

    Raises:
        TypeError: ``x`` is not a tensor, has an integer dtype (raw ``uint8`` images) or another floating
            dtype than ``dtype``.
        ValueError: a NaN or an infinite entry; a tensor on the meta device (no values).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: {what}inputs x must be a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: {what}inputs x must be normalised floating-point images, got dtype {x.dtype} "
                        f"(uint8 images: normalise them first, e.g. kdbounds.data.normalize)")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name}: {what}inputs x have dtype {x.dtype} but the network's parameters are {dtype}; pass "
                        f"x.to({dtype})")
    _check_finite(name, x, f"{what}inputs x")
    return x


def _check_values(name: str, t: Tensor, what: str) -> None:
    if t.device.type == "meta":
        raise ValueError(f"{name}: {what} are on the meta device (a shape without values); create them on a real "
                         f"device (e.g. torch.device('cpu')) or load the values with .to_empty()/load_state_dict")


def _check_finite(name: str, t: Tensor, what: str) -> None:
    _check_values(name, t, what)
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: {what} hold {int((~torch.isfinite(t)).sum())} non-finite (NaN/inf) values")


def check_finite_tensors(name: str, obj: Any, what: str) -> None:
    """No NaN/inf in any floating tensor of ``obj`` (a tensor, or tuples, lists and dicts of them).

    Args:
        name: the argument's name, for errors.
        obj: the batch part (inputs or targets, in any structure a model or a loss takes).
        what: what ``obj`` is (e.g. ``"batch 0 targets y"``), for errors.

    Raises:
        ValueError: a floating tensor with a NaN or an infinite entry.
    """
    if isinstance(obj, Tensor):
        _check_finite(name, obj, what)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            check_finite_tensors(name, o, what)
    elif isinstance(obj, dict):
        for o in obj.values():
            check_finite_tensors(name, o, what)


def check_labels(name: str, y: Tensor, num_classes: int | None = None, what: str = "labels y") -> Tensor:
    """Class indices: a 1-D tensor of an integer dtype with entries in ``[0, num_classes)``.

    Args:
        name: the argument's name, for errors.
        y: the labels.
        num_classes: the network's number of classes (``None``: only ``>= 0`` is checked).
        what: how the labels are called in ``name``, for errors.

    Returns:
        ``y``.

    Raises:
        TypeError: not a tensor, or a floating, complex or bool dtype.
        ValueError: not 1-D, a negative label, or one ``>= num_classes``; a tensor on the meta device.
    """
    if not isinstance(y, Tensor):
        raise TypeError(f"{name}: {what} must be a tensor of class indices, got {type(y).__name__}")
    if y.dim() != 1:
        raise ValueError(f"{name}: {what} must be 1-D class indices, got shape {tuple(y.shape)}")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(f"{name}: {what} must be class indices of an integer dtype, got {y.dtype}; pass y.long() if "
                        f"they are whole numbers")
    _check_values(name, y, what)
    if len(y) and int(y.min()) < 0:
        raise ValueError(f"{name}: {what} must be class indices >= 0, got a minimum of {int(y.min())}")
    if num_classes is not None and len(y) and int(y.max()) >= num_classes:
        raise ValueError(f"{name}: {what} must be class indices below the network's {num_classes} classes, got a "
                         f"maximum of {int(y.max())}")
    return y


def label_law_shift(reference: Any, other: Any, *, level: float = 1e-3) -> str | None:
    """Why ``other``'s class labels cannot be a sample of ``reference``'s label law, or None.

    A χ² test of homogeneity on the ``2 × C`` table of class counts (classes present in either set);
    a p-value below ``level`` is reported. The common cause is a held-out set taken as a prefix of a
    class-sorted array (``load_cifar`` on image folders returns the images class by class), which
    makes gaps and held-out risks measured on it say nothing about the population.

    Args:
        reference: 1-D integer class labels (tensor or array), e.g. ``D_T`` or ``D_S``.
        other: 1-D integer class labels of the set compared with it, e.g. the held-out set.
        level: the p-value below which the difference is reported.

    Returns:
        A sentence with the test's p-value and both sets' class counts, or None when the labels are
        not 1-D integers, a set has fewer than 2 examples, or the p-value is at least ``level``.
    """
    a, b = (np.asarray(t.detach().cpu() if isinstance(t, Tensor) else t) for t in (reference, other))
    if a.ndim != 1 or b.ndim != 1 or len(a) < 2 or len(b) < 2 or a.dtype.kind not in "iu" or b.dtype.kind not in "iu":
        return None
    classes = np.union1d(a, b)
    if len(classes) < 2 or classes.min() < 0:
        return None
    counts = np.stack([np.bincount(np.searchsorted(classes, t), minlength=len(classes)) for t in (a, b)])
    from scipy.stats import chi2_contingency  # lazy: only when labels are compared

    p = float(chi2_contingency(counts, correction=False).pvalue)
    if p >= level:
        return None
    return (f"its class counts {counts[1].tolist()} differ from {counts[0].tolist()} (classes {classes.tolist()}; χ² "
            f"homogeneity test p = {p:.2g}): it is not a sample of the same label law, so risks measured on it "
            f"do not estimate the population risk. Was it a prefix of a class-sorted array (load_cifar returns "
            f"image-folder data class by class)? Draw it with stratified_subset(labels, n_per_class, seed)")


def warn_label_law_shift(reference: Any, other: Any, reference_name: str, other_name: str) -> None:
    """Warn (``UserWarning``, naming both arguments) when :func:`label_law_shift` finds a difference."""
    why = label_law_shift(reference, other)
    if why is not None:
        import warnings

        warnings.warn(f"{other_name} against {reference_name}: {why}", UserWarning, stacklevel=3)
