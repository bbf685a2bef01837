"""A tiny CIFAR-10 in the official python layout (random images) for study tests; importable by name
from the tests in this folder."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from kdbounds.data import CIFAR10_CLASSES


def _rows(imgs: np.ndarray) -> np.ndarray:
    return imgs.transpose(0, 3, 1, 2).reshape(len(imgs), 3072)


def write_fake_cifar10(root: Path, per_class_train: int = 10, per_class_test: int = 10, seed: int = 0) -> Path:
    """The official python layout with random images (enough for the smoke presets)."""
    g = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for split, per in (("train", per_class_train), ("test", per_class_test)):
        x = g.integers(0, 256, (10 * per, 32, 32, 3), dtype=np.uint8)
        y = np.tile(np.arange(10), per)
        if split == "train":
            for i, ch in enumerate(np.array_split(np.arange(len(y)), 5), 1):
                (d / f"data_batch_{i}").write_bytes(pickle.dumps(
                    {b"labels": y[ch].tolist(), b"data": _rows(x[ch])}, protocol=2))
        else:
            (d / "test_batch").write_bytes(pickle.dumps({b"labels": y.tolist(), b"data": _rows(x)}, protocol=2))
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [c.encode() for c in CIFAR10_CLASSES]}, protocol=2))
    return root
