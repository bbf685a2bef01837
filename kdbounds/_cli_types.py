"""Typed ``argparse`` converters, written once for every command line (``python -m kdbounds.train``
and ``experiments/*.py``).

Each converter turns the option's text into a checked value or raises
``argparse.ArgumentTypeError``; argparse then stops at parse time — before any data is loaded or
anything is trained — with one line naming the flag, what was expected and the fix::

    train.py teacher: error: argument --lr: expected a finite number > 0, got 'inf'

Paths are checked without side effects: :func:`writable_dir` accepts a folder that exists and is
writable, or one that can be created (its nearest existing ancestor is a writable folder); a file in
place of the folder is refused. :func:`device` refuses ``cuda`` when no CUDA device is available.
Nothing here imports torch at module level (only :func:`device` does, when called).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Callable, Sequence

__all__ = [
    "SEED_MAX",
    "positive_int",
    "nonneg_int",
    "seed",
    "finite_float",
    "positive_float",
    "nonneg_float",
    "probability",
    "open_unit",
    "momentum",
    "int_list",
    "nonneg_int_list",
    "positive_int_list",
    "float_list",
    "milestones",
    "name_list",
    "existing_file",
    "existing_dir",
    "writable_dir",
    "device",
    "threads",
    "schedule",
    "data_root",
]

SEED_MAX = 2**32 - 1  # numpy's seed range; torch accepts larger, but one range for all generators


def _bad(expected: str, text: str, fix: str = "") -> argparse.ArgumentTypeError:
    msg = f"expected {expected}, got {text!r}"
    return argparse.ArgumentTypeError(msg + (f"; {fix}" if fix else ""))


def _int(text: str, expected: str) -> int:
    try:
        return int(text.strip())
    except (ValueError, AttributeError):
        raise _bad(expected, text) from None


def positive_int(text: str) -> int:
    """An integer >= 1 (epochs, batch sizes, counts)."""
    v = _int(text, "an integer >= 1")
    if v < 1:
        raise _bad("an integer >= 1", text)
    return v


def nonneg_int(text: str) -> int:
    """An integer >= 0."""
    v = _int(text, "an integer >= 0")
    if v < 0:
        raise _bad("an integer >= 0", text)
    return v


def seed(text: str) -> int:
    """A seed: an integer in [0, 2**32 - 1]."""
    v = _int(text, f"an integer seed in [0, {SEED_MAX}]")
    if not 0 <= v <= SEED_MAX:
        raise _bad(f"an integer seed in [0, {SEED_MAX}]", text)
    return v


def threads(text: str) -> int:
    """A thread count: an integer in [1, 4096]."""
    v = _int(text, "a thread count >= 1")
    if not 1 <= v <= 4096:
        raise _bad("a thread count in [1, 4096]", text)
    return v


#: sizes of CIFAR-10 (every study's data set): the bounds of the size options, checked at parse time
CIFAR10_TRAIN, CIFAR10_TEST, CIFAR10_CLASSES = 50000, 10000, 10


def _at_most(limit: int, what: str) -> Callable[[str], int]:
    def convert(text: str) -> int:
        v = positive_int(text)
        if v > limit:
            raise _bad(f"an integer in 1..{limit}", text, f"CIFAR-10 has {limit} {what}")
        return v

    convert.__name__ = convert.__qualname__ = "count"
    return convert


#: ``--n-per-class``: training images per class (CIFAR-10 has 5000)
train_per_class = _at_most(CIFAR10_TRAIN // CIFAR10_CLASSES, "training images per class")
#: ``--test-per-class``: test images per class (CIFAR-10 has 1000)
test_per_class = _at_most(CIFAR10_TEST // CIFAR10_CLASSES, "test images per class")
#: ``--n-test``/``--test-n``: test images (CIFAR-10 has 10000)
test_size = _at_most(CIFAR10_TEST, "test images")
#: ``--n-s``/``--n-t``: a side of a split of the training images (CIFAR-10 has 50000; the other side needs >= 1)
split_size = _at_most(CIFAR10_TRAIN - 1, "training images, and the other side of the split needs at least one")


def ray_address(text: str) -> str:
    """A Ray cluster address: ``auto``, ``host:port`` or ``ray://host:port`` (port in 1..65535)."""
    t = text.strip()
    if t == "auto":
        return t
    rest = t[len("ray://"):] if t.startswith("ray://") else t
    host, sep, port = rest.rpartition(":")
    ok = bool(sep) and bool(host) and not any(c.isspace() or c in "/?#@" for c in host) and port.isdigit() \
        and 1 <= int(port) <= 65535
    if not ok:
        raise _bad("'auto', 'host:port' or 'ray://host:port' with a port in 1..65535", text,
                   "e.g. --address 10.0.0.5:6379 (the head node's `ray start --head` prints it)")
    return t


def finite_float(text: str) -> float:
    """A finite real number (``inf``/``nan`` refused)."""
    try:
        v = float(text.strip())
    except (ValueError, AttributeError):
        raise _bad("a finite number", text) from None
    if not math.isfinite(v):
        raise _bad("a finite number", text)
    return v


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, temperatures)."""
    v = _fl(text, "a finite number > 0")
    if not v > 0:
        raise _bad("a finite number > 0", text)
    return v


def nonneg_float(text: str) -> float:
    """A finite number >= 0 (weight decay, loss weights)."""
    v = _fl(text, "a finite number >= 0")
    if v < 0:
        raise _bad("a finite number >= 0", text)
    return v


def probability(text: str) -> float:
    """A number in [0, 1]."""
    v = _fl(text, "a number in [0, 1]")
    if not 0.0 <= v <= 1.0:
        raise _bad("a number in [0, 1]", text)
    return v


def open_unit(text: str) -> float:
    """A number in the open interval (0, 1) (confidence levels, fractions that cannot be 0 or 1)."""
    v = _fl(text, "a number in (0, 1)")
    if not 0.0 < v < 1.0:
        raise _bad("a number in (0, 1)", text)
    return v


def momentum(text: str) -> float:
    """SGD momentum: a number in [0, 1) (momentum >= 1 makes SGD diverge)."""
    v = _fl(text, "a momentum in [0, 1)")
    if not 0.0 <= v < 1.0:
        raise _bad("a momentum in [0, 1)", text, "typical values are 0.9 or 0")
    return v


def _fl(text: str, expected: str) -> float:
    try:
        v = float(text.strip())
    except (ValueError, AttributeError):
        raise _bad(expected, text) from None
    if not math.isfinite(v):
        raise _bad(expected, text)
    return v


def _list(text: str, item: Callable[[str], object], what: str, example: str) -> tuple:
    parts = [t for t in (s.strip() for s in text.split(",")) if t]
    if not parts:
        raise _bad(f"{what} separated by commas, e.g. {example}", text)
    out = []
    for t in parts:
        try:
            out.append(item(t))
        except argparse.ArgumentTypeError:
            raise _bad(f"{what} separated by commas, e.g. {example}", text, f"{t!r} is not valid") from None
    return tuple(out)


def int_list(text: str) -> tuple[int, ...]:
    """Comma-separated integers, e.g. ``1,2,3``."""
    return _list(text, lambda t: _int(t, "an integer"), "integers", "1,2,3")


def nonneg_int_list(text: str) -> tuple[int, ...]:
    """Comma-separated integers >= 0, e.g. ``0,1,2`` (seeds)."""
    return _list(text, nonneg_int, "integers >= 0", "0,1,2")


def positive_int_list(text: str) -> tuple[int, ...]:
    """Comma-separated integers >= 1, e.g. ``8,16``."""
    return _list(text, positive_int, "integers >= 1", "8,16")


def float_list(text: str) -> tuple[float, ...]:
    """Comma-separated finite numbers, e.g. ``0.5,1,2``."""
    return _list(text, finite_float, "finite numbers", "0.5,1,2")


def milestones(text: str) -> tuple[int, ...]:
    """Learning-rate milestones: increasing epochs >= 1 separated by commas, or ``none`` (empty)."""
    if text.strip().lower() == "none":
        return ()
    ms = _list(text, positive_int, "epochs >= 1", "150,180,210")
    if list(ms) != sorted(set(ms)):
        raise _bad("strictly increasing epochs, e.g. 150,180,210", text)
    return ms


def name_list(choices: tuple[str, ...] | list[str] | Callable[[], Sequence[str]]) -> Callable[[str], tuple[str, ...]]:
    """A converter for comma-separated names, each one of ``choices`` (no repeats).

    ``choices`` may be a function returning them: it is called only when the option is given, so a
    list that needs a heavy import (the registered distillation methods) costs nothing otherwise.
    """

    def convert(text: str) -> tuple[str, ...]:
        opts = tuple(choices() if callable(choices) else choices)
        names = tuple(t for t in (s.strip() for s in text.split(",")) if t)
        if not names:
            raise _bad(f"comma-separated names from {','.join(opts)}", text)
        bad = [n for n in names if n not in opts]
        if bad:
            raise _bad(f"comma-separated names from {','.join(opts)}", text, f"unknown: {','.join(bad)}")
        if len(set(names)) != len(names):
            raise _bad("names without repeats", text)
        return names

    convert.__name__ = "names"
    return convert


def existing_file(text: str) -> str:
    """A path to an existing, readable, non-empty file."""
    p = Path(text).expanduser()
    if not p.exists():
        raise _bad("an existing file", text, "no such file")
    if not p.is_file():
        raise _bad("a regular file", text, "it is a folder" if p.is_dir() else "it is not a regular file")
    if not os.access(p, os.R_OK):
        raise _bad("a readable file", text, "permission denied")
    if p.stat().st_size == 0:
        raise _bad("a non-empty file", text, "the file is empty (a killed run?); pass a complete file")
    return str(p)


def existing_dir(text: str) -> str:
    """A path to an existing folder."""
    p = Path(text).expanduser()
    if not p.is_dir():
        raise _bad("an existing folder", text, "it is a file" if p.exists() else "no such folder")
    return str(p)


def writable_dir(text: str) -> str:
    """A folder that exists and is writable, or can be created (nothing is created here).

    A file at the path (or at any of its ancestors) is refused, so a run cannot train for hours and
    fail when it writes.
    """
    if not text or not text.strip():
        raise _bad("a folder path", text)
    p = Path(text).expanduser()
    if p.exists():
        if not p.is_dir():
            raise _bad("a folder", text, "a file is in the way: pass a folder path, or move the file")
        if not os.access(p, os.W_OK | os.X_OK):
            raise _bad("a writable folder", text, "permission denied: pick a folder you can write to")
        return str(p)
    anc = p.absolute().parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise _bad("a folder path", text, f"{str(anc)!r} is a file, so the folder cannot be created")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise _bad("a writable folder", text, f"cannot create it: {str(anc)!r} is not writable")
    return str(p)


def _may_have_cuda() -> bool:
    """False when this machine certainly has no CUDA device (no NVIDIA driver): answered without
    importing torch, so a ``--device cuda`` typo on a CPU machine fails in a fraction of a second."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists() or os.name != "posix"


def device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:k``; CUDA only when a CUDA device ``k`` is available."""
    t = text.strip().lower()
    if t in ("auto", "cpu"):
        return t
    head, sep, idx = t.partition(":")
    if head != "cuda" or (sep and not idx.isdigit()):
        raise _bad("auto, cpu, cuda or cuda:k", text)
    if not _may_have_cuda():
        raise _bad("a device available on this machine", text,
                   "no CUDA device is available (no NVIDIA driver): use --device cpu (or auto)")
    import torch

    if not torch.cuda.is_available():
        raise _bad("a device available on this machine", text,
                   "no CUDA device is available: use --device cpu (or auto)")
    if sep and int(idx) >= torch.cuda.device_count():
        raise _bad(f"cuda:k with k < {torch.cuda.device_count()}", text)
    return t


def schedule(text: str) -> str:
    """A learning-rate schedule: ``step``, ``cosine`` or ``constant``."""
    t = text.strip().lower()
    if t not in ("step", "cosine", "constant"):
        raise _bad("one of step, cosine, constant", text)
    return t


def data_root(text: str) -> str:
    """Where CIFAR is: a folder, or a ``.tar``/``.tar.gz``/``.tgz`` archive. A path that does not exist
    yet is accepted (a download may create it); a path below a file, or another kind of file, is not."""
    p = Path(text).expanduser()
    if p.is_file():
        if not p.name.endswith((".tar", ".tar.gz", ".tgz")):
            raise _bad("a folder or a .tar/.tar.gz archive of CIFAR", text, "pass the folder that holds the data")
        return str(p)
    if not p.exists():
        anc = p.absolute().parent
        while not anc.exists():
            anc = anc.parent
        if not anc.is_dir():
            raise _bad("a folder path", text, f"{str(anc)!r} is a file")
    return str(p)
