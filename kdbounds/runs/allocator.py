"""Keep large CPU tensors in the C heap: glibc ``malloc`` settings that spare training its page faults.

Why: glibc serves every allocation above its mmap threshold (at most 32 MiB with its dynamic rule) with a
fresh ``mmap`` and returns it to the kernel on ``free``. A training step on CIFAR-sized batches allocates and
frees activations of hundreds of MiB (airbench94 at batch 1024: 64 channels x 32 x 32 x 1024 float32 is about
256 MiB), so every step maps fresh pages, the kernel zero-fills each one on first touch, and unmaps them again.
Measured on this project's 2-core machine: a 16-epoch fast-recipe run of ``airbench_s`` took 92 million minor page
faults and spent a fifth of its CPU time in the kernel; with the tuning, one airbench94 epoch took 0.77x the time
(``python benchmarks/allocator.py``). PyTorch's CPU performance guide
recommends a caching allocator (jemalloc or tcmalloc through ``LD_PRELOAD``) for the same reason; this module
gets most of the effect without a preload, by raising two glibc thresholds with ``mallopt``:

* ``M_MMAP_THRESHOLD`` = ``mmap_threshold`` bytes: allocations below it come from the heap and are reused;
* ``M_TRIM_THRESHOLD`` = ``trim_threshold`` bytes: freed memory at the top of the heap below it is kept for the
  next step instead of being returned to the kernel.

The numbers a network computes do not depend on where its memory comes from (tested: the same training with
and without gives identical weights). The cost is memory: the heap keeps its peak size until the process ends
(the benchmark reports peak RSS both ways). The settings are process-wide, so nothing applies them at import:
the training CLI (``kdbounds-train``), every run of the sweep runner (local or in a Ray worker) and the
benchmarks call :func:`tune_cpu_allocator`; a user's own script may call it once at its start. Set
``KDBOUNDS_MALLOC=default`` in the environment to leave glibc's defaults alone everywhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import threading
from dataclasses import dataclass

from .._checks import check_int

__all__ = ["AllocatorTuning", "tune_cpu_allocator", "allocator_tuning", "ENV_VAR"]

#: the environment variable that turns the tuning off: ``KDBOUNDS_MALLOC=default``
ENV_VAR = "KDBOUNDS_MALLOC"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
_INT_MAX = 2**31 - 1  # mallopt takes a C int
_LOCK = threading.Lock()
_APPLIED: AllocatorTuning | None = None


@dataclass(frozen=True)
class AllocatorTuning:
    """What :func:`tune_cpu_allocator` did.

    Attributes:
        applied: True when both thresholds are in force in this process.
        reason: why not, when ``applied`` is False (``""`` otherwise).
        mmap_threshold: bytes; allocations below it come from the heap (``None`` when not applied).
        trim_threshold: bytes of free heap top kept for reuse (``None`` when not applied).
    """

    applied: bool
    reason: str = ""
    mmap_threshold: int | None = None
    trim_threshold: int | None = None


def allocator_tuning() -> AllocatorTuning | None:
    """The tuning in force in this process, without applying any.

    Returns:
        The :class:`AllocatorTuning` that :func:`tune_cpu_allocator` applied, or None when it has not (yet)
        been applied in this process.
    """
    return _APPLIED


def _mallopt():
    """glibc's ``mallopt`` or the reason it is not available."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None, f"not Linux with glibc ({platform.system()}, {platform.libc_ver()[0] or 'unknown libc'})"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallopt
    except (OSError, AttributeError) as e:  # pragma: no cover - glibc always has mallopt
        return None, f"glibc's mallopt could not be loaded ({e})"
    fn.argtypes, fn.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return fn, ""


def tune_cpu_allocator(mmap_threshold: int = 2**30, trim_threshold: int = _INT_MAX) -> AllocatorTuning:
    """Raise glibc's mmap and trim thresholds for this process (once; later calls return the first result).

    With ``M_MMAP_THRESHOLD = mmap_threshold`` and ``M_TRIM_THRESHOLD = trim_threshold``, a training step's
    activations below ``mmap_threshold`` bytes come from the heap and are reused by the next step, instead of
    being mapped, zero-filled by the kernel page by page, and unmapped on every step.

    Args:
        mmap_threshold: bytes, 1 MiB to 2**31 - 1 (default 1 GiB).
        trim_threshold: bytes, 1 MiB to 2**31 - 1 (default the maximum, about 2 GiB).

    Returns:
        An :class:`AllocatorTuning`: ``applied`` False with the reason when the platform is not Linux/glibc or
        ``KDBOUNDS_MALLOC=default`` is set — never an error, since the tuning changes speed, not results.

    Raises:
        ValueError / TypeError: a threshold that is not an int in range (named, with the range).
    """
    global _APPLIED
    for name, v in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        check_int(name, v, minimum=2**20, maximum=_INT_MAX, strict=True)
    with _LOCK:
        if _APPLIED is not None:
            return _APPLIED
        if os.environ.get(ENV_VAR, "").strip().lower() == "default":
            return AllocatorTuning(False, f"{ENV_VAR}=default is set")
        fn, reason = _mallopt()
        if fn is None:
            return AllocatorTuning(False, reason)
        if not (fn(_M_MMAP_THRESHOLD, mmap_threshold) == 1 and fn(_M_TRIM_THRESHOLD, trim_threshold) == 1):
            return AllocatorTuning(False, "glibc's mallopt refused the thresholds")
        _APPLIED = AllocatorTuning(True, "", mmap_threshold, trim_threshold)
        return _APPLIED
