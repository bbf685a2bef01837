r"""The seeded, recorded split of a training set into ``D_T`` (teacher side) and ``D_S`` (certification side).

theory.md §7: ``D_S`` is never seen by anything the prior depends on. :func:`make_split` draws a
stratified partition (same class proportions on both sides, seeded by ``seed``);
:class:`DataSplit` holds the two index arrays, refuses overlapping ones, and records the seed and
a SHA-256 of each index array so a certificate can name exactly which examples it used;
``split.subset(data, "cert")`` takes one side's rows of a numpy array, a tensor or an ``(x, y)`` pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kdbounds._checks import check_int
from kdbounds._io import bytes_sha256

__all__ = ["DataSplit", "make_split", "indices_sha256"]


def indices_sha256(idx: np.ndarray) -> str:
    """SHA-256 of the sorted indices as little-endian int64 bytes (order-free record of a subset).

    Args:
        idx: the indices.

    Returns:
        64 hex digits.
    """
    a = np.sort(np.asarray(idx, dtype="<i8"))
    return bytes_sha256(a.tobytes())


def _indices(name: str, value: Any) -> np.ndarray:
    """``value`` as a flat int64 index array; floats, bools and other kinds are refused (never truncated)."""
    a = np.asarray(value)
    if a.ndim > 1:
        raise ValueError(f"{name}: expected a 1-D array of indices, got shape {a.shape}")
    if a.size == 0:
        return a.astype(np.int64).ravel()
    if a.dtype == bool or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name}: expected integer indices, got dtype {a.dtype} (e.g. {a.ravel()[:3].tolist()}); "
                        f"floats are not truncated: pass whole numbers of an integer dtype")
    return a.astype(np.int64).ravel()


@dataclass(frozen=True)
class DataSplit:
    """Disjoint index sets ``teacher`` (``D_T``) and ``cert`` (``D_S``) into a data set of ``n_total`` rows.

    Attributes:
        teacher: sorted int64 indices of ``D_T``.
        cert: sorted int64 indices of ``D_S``.
        n_total: size of the data set split.
        seed: the seed that drew the split (None when given by hand).

    Raises:
        ValueError: overlapping index sets, repeated or out-of-range indices, or an empty side.
    """

    teacher: np.ndarray = field(repr=False)
    cert: np.ndarray = field(repr=False)
    n_total: int
    seed: int | None = None

    def __post_init__(self) -> None:
        n_total = check_int("n_total", self.n_total, minimum=2)
        t = np.sort(_indices("teacher", self.teacher))
        c = np.sort(_indices("cert", self.cert))
        for name, a in (("teacher", t), ("cert", c)):
            if a.size == 0:
                raise ValueError(f"{name}: expected at least one index, got an empty set")
            if a[0] < 0 or a[-1] >= n_total:
                raise ValueError(f"{name}: indices must lie in [0, n_total={n_total}); got range "
                                 f"[{a[0]}, {a[-1]}]")
            if np.any(a[1:] == a[:-1]):
                raise ValueError(f"{name}: indices must be distinct; found repeats")
        both = np.intersect1d(t, c)
        if both.size:
            raise ValueError(f"teacher and cert overlap in {both.size} example(s) (e.g. {both[:5].tolist()}): "
                             f"D_S must be disjoint from everything the prior sees (theory.md §7); draw the "
                             f"split with make_split")
        t.setflags(write=False)
        c.setflags(write=False)
        object.__setattr__(self, "teacher", t)
        object.__setattr__(self, "cert", c)
        object.__setattr__(self, "n_total", n_total)

    @property
    def n_t(self) -> int:
        """The size of ``D_T``."""
        return int(self.teacher.size)

    @property
    def n_s(self) -> int:
        """The size of ``D_S``."""
        return int(self.cert.size)

    @property
    def union(self) -> np.ndarray:
        """``D_T ∪ D_S`` (sorted), what a posterior may be trained on."""
        return np.union1d(self.teacher, self.cert)

    def subset(self, data: Any, side: str = "cert") -> Any:
        """The rows of ``data`` on one side of the split, for numpy arrays and torch tensors alike.

        The index arrays themselves stay read-only (the split is a record); this copies them into the
        index type ``data`` needs, so no non-writable array reaches torch.

        Args:
            data: a numpy array or torch tensor with ``n_total`` rows, an ``(x, y)`` pair of them, or a
                ``torch.utils.data.Dataset`` (returned as a ``Subset``).
            side: ``"cert"`` (``D_S``), ``"teacher"`` (``D_T``) or ``"union"`` (``D_T ∪ D_S``).

        Returns:
            The same kind of object as ``data``, holding only the chosen rows (in index order).

        Raises:
            ValueError: an unknown ``side``, or ``data`` without ``n_total`` rows.
            TypeError: ``data`` of another kind.
        """
        sides = {"cert": self.cert, "teacher": self.teacher, "union": self.union}
        if side not in sides:
            raise ValueError(f"side: expected one of {tuple(sides)}, got {side!r}")
        idx = np.array(sides[side], dtype=np.int64)  # a writable copy
        if isinstance(data, tuple) and len(data) == 2:
            return tuple(self.subset(a, side) for a in data)
        if isinstance(data, np.ndarray):
            self._check_rows(len(data))
            return data[idx]
        import torch  # only for tensors and data sets: the split itself is numpy

        if isinstance(data, torch.Tensor):
            self._check_rows(len(data))
            return data[torch.from_numpy(idx).to(data.device)]
        if isinstance(data, torch.utils.data.Dataset):
            if hasattr(data, "__len__"):
                self._check_rows(len(data))
            return torch.utils.data.Subset(data, idx.tolist())
        raise TypeError(f"data: expected a numpy array, a torch tensor, an (x, y) pair of them or a torch Dataset, "
                        f"got {type(data).__name__}")

    def _check_rows(self, n: int) -> None:
        if n != self.n_total:
            raise ValueError(f"data: has {n} rows but the split is of n_total={self.n_total} examples")

    def to_dict(self) -> dict[str, Any]:
        """The record: sizes, seed and the SHA-256 of each index set (not the indices themselves).

        Returns:
            ``{"n_total", "n_t", "n_s", "seed", "teacher_sha256", "cert_sha256"}``.
        """
        return {"n_total": self.n_total, "n_t": self.n_t, "n_s": self.n_s, "seed": self.seed,
                "teacher_sha256": indices_sha256(self.teacher), "cert_sha256": indices_sha256(self.cert)}


def make_split(labels: np.ndarray, n_s: int, *, n_t: int | None = None, seed: int = 0) -> DataSplit:
    """Stratified random split of a labelled set into ``D_T`` and ``D_S``.

    Each class contributes in proportion to its frequency (largest-remainder rounding), drawn with
    ``numpy.random.default_rng(seed)``; ``D_T`` takes ``n_t`` of the remaining examples (all of them
    when None).

    Args:
        labels: the integer labels of the full training set.
        n_s: size of ``D_S``.
        n_t: size of ``D_T`` (None: everything not in ``D_S``).
        seed: the split's seed (recorded).

    Returns:
        A :class:`DataSplit`.

    Raises:
        ValueError: ``n_s + n_t`` larger than the data set, ``n_s < 1``; ``labels`` not 1-D class indices
            ``>= 0``.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels: expected a 1-D integer array, got dtype {y.dtype}, shape {y.shape}")
    if y.size and int(y.min()) < 0:
        raise ValueError(f"labels: expected class indices >= 0, got a minimum of {int(y.min())} (is -1 an "
                         f"'unlabelled' marker? drop those examples first)")
    n = len(y)
    if n < 2:
        raise ValueError(f"labels: a split needs at least 2 labelled examples, got {n}")
    n_s = check_int("n_s", n_s, minimum=1, maximum=n - 1)
    n_t = n - n_s if n_t is None else check_int("n_t", n_t, minimum=1)
    if n_s + n_t > n:
        raise ValueError(f"n_t: n_s + n_t = {n_s + n_t} exceeds the {n} examples; lower n_t or n_s")
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)

    def take(pool: np.ndarray, k: int) -> np.ndarray:
        classes, counts = np.unique(y[pool], return_counts=True)
        quota = counts * k / counts.sum()
        base = np.floor(quota).astype(int)
        rest = k - base.sum()
        order = np.argsort(-(quota - base), kind="stable")
        base[order[:rest]] += 1
        out = [pool[y[pool] == c][:q] for c, q in zip(classes, base)]
        return np.concatenate(out)

    cert = take(perm, n_s)
    remaining = np.setdiff1d(perm, cert, assume_unique=True)
    remaining = perm[np.isin(perm, remaining)]  # keep the random order
    teacher = take(remaining, n_t) if n_t < len(remaining) else remaining
    return DataSplit(teacher=teacher, cert=cert, n_total=n, seed=seed)
