"""Stratified subsets and train/validation splits (deterministic given a seed).

For every class ``c`` with index set ``I_c = {i : labels[i] = c}`` a permutation ``pi_c`` of ``I_c`` is
drawn from ``numpy.random.default_rng(seed)`` (classes processed in increasing order); a stratified
subset of ``n`` per class is ``U_c pi_c[:n]``. Hence subsets with the same seed are nested
(``n1 <= n2`` implies subset(n1) is contained in subset(n2)), and ``train_val_split`` takes validation
= ``U_c pi_c[:v]``, training = ``U_c pi_c[v:]``. Returned indices are sorted ascending.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int

__all__ = ["stratified_subset", "train_val_split", "class_permutations"]


def _check_labels(labels) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class indices, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("labels is empty; pass the labels of a non-empty data set")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels must have an integer dtype, got {y.dtype}; convert with labels.astype(np.int64)")
    return y


def class_permutations(labels, seed: int) -> dict[int, np.ndarray]:
    """A random permutation of each class's indices, drawn in increasing class order.

    Args:
        labels: integer class labels ``(N,)``.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``{class: permuted indices of that class}``.
    """
    y = _check_labels(labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    return {int(c): rng.permutation(np.flatnonzero(y == c)) for c in classes}


def _too_few(perms: dict[int, np.ndarray], need: int) -> list[tuple[int, int]]:
    return [(c, len(p)) for c, p in perms.items() if len(p) < need]


def stratified_subset(labels, n_per_class: int, seed: int) -> np.ndarray:
    """Indices of ``n_per_class`` random examples of every class present in ``labels``.

    Args:
        labels: integer class labels ``(N,)``.
        n_per_class: examples drawn from each class.
        seed: seed of the draw (:func:`class_permutations`).

    Returns:
        Sorted ``int64`` indices, ``n_per_class`` per class.

    Raises:
        ValueError: some class has fewer than ``n_per_class`` examples.
    """
    n = check_int("n_per_class", n_per_class, minimum=1)
    perms = class_permutations(labels, seed)
    bad = _too_few(perms, n)
    if bad:
        raise ValueError(f"n_per_class={n} but some classes have fewer examples (class, count): {bad[:10]}; "
                         f"use n_per_class <= {min(len(p) for p in perms.values())}")
    return np.sort(np.concatenate([p[:n] for p in perms.values()])).astype(np.int64)


def train_val_split(labels, val_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split every class: ``val_per_class`` random examples to validation, the rest to training.

    The two index sets are disjoint, cover ``labels``, are sorted and are deterministic given ``seed``.

    Args:
        labels: integer class labels ``(N,)``.
        val_per_class: validation examples per class.
        seed: seed of the draw (:func:`class_permutations`).

    Returns:
        ``(train_idx, val_idx)``, sorted ``int64`` arrays.

    Raises:
        ValueError: some class has ``<= val_per_class`` examples (training would lack it).
    """
    v = check_int("val_per_class", val_per_class, minimum=1)
    perms = class_permutations(labels, seed)
    bad = _too_few(perms, v + 1)
    if bad:
        raise ValueError(f"val_per_class={v} leaves no training example for some classes (class, count): "
                         f"{bad[:10]}; use val_per_class <= {min(len(p) for p in perms.values()) - 1}")
    val = np.sort(np.concatenate([p[:v] for p in perms.values()])).astype(np.int64)
    train = np.sort(np.concatenate([p[v:] for p in perms.values()])).astype(np.int64)
    return train, val
