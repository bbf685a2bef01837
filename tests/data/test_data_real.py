"""The real CIFAR-10 archive (../shared/data/cifar10-jpg.tar.gz or $KDBOUNDS_DATA).

The decode (~6-10 s) happens once per test session: the suite's own ``$KDBOUNDS_CACHE`` (tests/conftest.py), so
later tests read the .npz in well under a second.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from kdbounds.data import CIFAR10_STD, TensorLoader, find_cifar, load_cifar, stratified_subset

pytestmark = pytest.mark.realdata

REPO = Path(__file__).resolve().parents[2]


def _real_root() -> Path | None:
    for root in (os.environ.get("KDBOUNDS_DATA"), REPO.parent / "shared" / "data"):
        if root and (Path(root) / "cifar10-jpg.tar.gz").is_file():
            return Path(root)
    return None


@pytest.fixture(scope="module")
def real():
    root = _real_root()
    if root is None:
        pytest.skip("real CIFAR-10 archive cifar10-jpg.tar.gz not found in $KDBOUNDS_DATA or ../shared/data")
    return {"root": root, "train": load_cifar("cifar10", root=root), "test": load_cifar("cifar10", root=root, split="test")}


def test_sizes_and_balance(real):
    for split, n in (("train", 50_000), ("test", 10_000)):
        x, y = real[split]
        assert x.shape == (n, 32, 32, 3) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, n // 10))


def test_channel_statistics(real):
    x, _ = real["train"]
    flat = torch.from_numpy(x).view(-1, 3)
    v = np.arange(256) / 255.0
    mean, std = [], []
    for c in range(3):  # exact moments from the histogram of pixel values
        h = torch.bincount(flat[:, c], minlength=256).numpy().astype(np.float64)
        m = (h @ v) / h.sum()
        mean.append(m)
        std.append(np.sqrt((h @ (v - m) ** 2) / h.sum()))
    np.testing.assert_allclose(mean, (0.491, 0.482, 0.447), atol=0.002)
    np.testing.assert_allclose(std, CIFAR10_STD, atol=0.003)  # JPEG smooths slightly (README)


def test_label_order_is_cifar10(real):
    """Airplane (0) and ship (8) are the two bluest classes (sky, water): a permuted mapping fails."""
    x, y = real["train"]
    m = np.array([x[np.flatnonzero(y == c)[:500]].reshape(-1, 3).mean(0) for c in range(10)])
    blue_minus_red = m[:, 2] - m[:, 0]
    assert set(np.argsort(blue_minus_red)[-2:]) == {0, 8}


def test_source_is_the_jpeg_archive_and_train_test_differ(real):
    src = find_cifar("cifar10", real["root"])
    assert src.kind in ("image_tar", "batches_dir", "batches_tar", "image_dir")
    assert not np.array_equal(real["train"][0][:100], real["test"][0][:100])


def test_loader_normalises_real_data(real):
    x, y = real["train"]
    idx = stratified_subset(y, 200, seed=0)
    loader = TensorLoader(x[idx], y[idx], 500, shuffle=False)
    s = torch.zeros(3, dtype=torch.float64)
    s2 = torch.zeros(3, dtype=torch.float64)
    for xb, _ in loader:
        s += xb.double().sum((0, 2, 3))
        s2 += (xb.double() ** 2).sum((0, 2, 3))
    n = len(idx) * 32 * 32
    mean = s / n
    std = (s2 / n - mean ** 2).sqrt()
    assert torch.all(mean.abs() < 0.05), mean  # a 2,000-image subset of a normalised set
    assert torch.all((std - 1).abs() < 0.05), std
