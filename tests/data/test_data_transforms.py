"""Normalisation, vectorised crop/flip against a per-image numpy reference, and TensorLoader behaviour."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdbounds.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    TensorLoader,
    normalization,
    random_crop_flip,
)


def ref_crop_flip(img: np.ndarray, i: int, j: int, flip: bool, p: int = 4) -> np.ndarray:
    """Per-image reference: zero-pad p, take the HxW window at (i, j), then mirror left-right."""
    h, w, _ = img.shape
    out = np.pad(img, ((p, p), (p, p), (0, 0)))[i:i + h, j:j + w]
    return out[:, ::-1] if flip else out


def images(n, seed=0, h=32, w=32):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(0, 3), st.integers(0, 2**31 - 1), st.sampled_from([(32, 32), (7, 5)]))
def test_random_crop_flip_matches_reference(b, p, seed, hw):
    rng = np.random.default_rng(seed)
    x = images(b, seed, *hw)
    off = rng.integers(0, 2 * p + 1, size=(b, 2))
    fl = rng.integers(0, 2, size=b).astype(bool)
    out = random_crop_flip(torch.from_numpy(x), torch.from_numpy(off), torch.from_numpy(fl), padding=p).numpy()
    assert out.shape == x.shape and out.dtype == np.uint8
    for k in range(b):
        np.testing.assert_array_equal(out[k], ref_crop_flip(x[k], off[k, 0], off[k, 1], fl[k], p))


def test_crop_flip_on_hand_made_image():
    img = np.zeros((1, 32, 32, 3), np.uint8)
    img[0, :, :, 0] = np.arange(32)[:, None] + 1  # row index + 1
    img[0, :, :, 1] = np.arange(32)[None, :] + 1  # column index + 1
    img[0, :, :, 2] = 200
    x = torch.from_numpy(img)
    ident = random_crop_flip(x, torch.tensor([[4, 4]]), torch.tensor([False]))
    assert torch.equal(ident, x)
    flipped = random_crop_flip(x, torch.tensor([[4, 4]]), torch.tensor([True]))[0].numpy()
    np.testing.assert_array_equal(flipped[:, :, 1], np.tile(np.arange(32, 0, -1), (32, 1)))
    np.testing.assert_array_equal(flipped[:, :, 0], img[0, :, :, 0])
    shifted = random_crop_flip(x, torch.tensor([[0, 8]]), torch.tensor([False]))[0].numpy()
    # window starts 4 rows above the image (zeros) and 4 columns right of its left edge
    assert np.all(shifted[:4] == 0) and np.all(shifted[:, 28:] == 0)
    np.testing.assert_array_equal(shifted[4:, :28, 0], np.arange(1, 29)[:, None] * np.ones((1, 28)))
    np.testing.assert_array_equal(shifted[4:, :28, 1], np.arange(5, 33)[None, :] * np.ones((28, 1)))
    assert np.all(shifted[4:, :28, 2] == 200)


def test_normalisation_values_and_constants():
    assert normalization(True) == (CIFAR10_MEAN, CIFAR10_STD)
    assert normalization("cifar100") == (CIFAR100_MEAN, CIFAR100_STD)
    assert normalization(False) is None
    x = images(10, 1)
    y = np.arange(10)
    xb, yb = next(iter(TensorLoader(x, y, 10, shuffle=False, dtype=torch.float64)))
    ref = (x.transpose(0, 3, 1, 2) / 255.0 - np.array(CIFAR10_MEAN)[:, None, None]) / np.array(CIFAR10_STD)[:, None, None]
    np.testing.assert_allclose(xb.numpy(), ref, rtol=0, atol=1e-12)
    assert xb.shape == (10, 3, 32, 32) and xb.is_contiguous() and yb.dtype == torch.int64
    xr, _ = next(iter(TensorLoader(x, y, 10, shuffle=False, normalize=False, dtype=torch.float64)))
    np.testing.assert_allclose(xr.numpy(), x.transpose(0, 3, 1, 2) / 255.0, atol=1e-12)
    xc, _ = next(iter(TensorLoader(x, y, 10, shuffle=False, normalize=((0.5,) * 3, (0.25,) * 3), dtype=torch.float64)))
    np.testing.assert_allclose(xc.numpy(), (x.transpose(0, 3, 1, 2) / 255.0 - 0.5) / 0.25, atol=1e-12)
    with pytest.raises(ValueError, match="normalize='imagenet'"):
        normalization("imagenet")
    with pytest.raises(ValueError, match="positive stds"):
        normalization(((0.5,) * 3, (0.0, 1.0, 1.0)))


def test_channels_last_same_values():
    x, y = images(20, 2), np.arange(20)
    a = list(TensorLoader(x, y, 8, augment=True, seed=3))
    b = list(TensorLoader(x, y, 8, augment=True, seed=3, channels_last=True))
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xb.is_contiguous(memory_format=torch.channels_last) and not xb.is_contiguous()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_augmented_samples_are_crops_of_their_source():
    n = 48
    x = images(n, 4)
    loader = TensorLoader(x, np.arange(n), 16, augment=True, seed=5, normalize=False, dtype=torch.float64)
    flips, offsets = [], []
    for xb, yb in loader:
        out = np.rint(xb.numpy().transpose(0, 2, 3, 1) * 255).astype(np.uint8)
        for img, src in zip(out, yb.numpy()):
            match = [(i, j, f) for i, j, f in itertools.product(range(9), range(9), (False, True))
                     if np.array_equal(img, ref_crop_flip(x[src], i, j, f))]
            assert len(match) == 1
            offsets.append(match[0][:2])
            flips.append(match[0][2])
    assert 10 < sum(flips) < 38  # about half flipped
    assert len(set(offsets)) > 20  # offsets spread over the 81 windows


def test_epoch_covers_each_sample_once_and_len():
    n = 50
    x, y = images(n, 6), np.arange(n)
    loader = TensorLoader(x, y, 16, seed=1)
    assert len(loader) == 4
    seen = torch.cat([yb for _, yb in loader])
    assert sorted(seen.tolist()) == list(range(n))
    loader = TensorLoader(x, y, 16, seed=1, drop_last=True)
    assert len(loader) == 3 and sum(len(yb) for _, yb in loader) == 48
    ordered = torch.cat([yb for _, yb in TensorLoader(x, y, 16, shuffle=False)])
    assert ordered.tolist() == list(range(n))


def _epoch(loader):
    return [(xb.clone(), yb.clone()) for xb, yb in loader]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))


def test_determinism_epochs_and_set_epoch():
    x, y = images(40, 7), np.arange(40)
    l1 = TensorLoader(x, y, 8, augment=True, seed=11)
    l2 = TensorLoader(x, y, 8, augment=True, seed=11)
    e0, e1 = _epoch(l1), _epoch(l1)  # re-iterable; advances the epoch
    assert l1.epoch == 2
    assert _same(e0, _epoch(l2)) and _same(e1, _epoch(l2))
    assert not _same(e0, e1)
    assert not _same(e0, _epoch(TensorLoader(x, y, 8, augment=True, seed=12)))
    l2.set_epoch(1)
    assert _same(e1, _epoch(l2))


def test_state_dict_resume_mid_epoch():
    x, y = images(40, 8), np.arange(40)
    full = TensorLoader(x, y, 8, augment=True, seed=2)
    _epoch(full)
    reference = _epoch(full)  # epoch 1, uninterrupted
    a = TensorLoader(x, y, 8, augment=True, seed=2)
    _epoch(a)
    it = iter(a)
    first = [next(it) for _ in range(2)]
    state = a.state_dict()
    assert state["epoch"] == 1 and state["batch"] == 2
    b = TensorLoader(x, y, 8, augment=True, seed=2)
    b.load_state_dict(state)
    rest = _epoch(b)
    assert _same(first + rest, reference)
    assert b.state_dict()["epoch"] == 2 and b.state_dict()["batch"] == 0
    with pytest.raises(ValueError, match="batch_size"):
        TensorLoader(x, y, 4, augment=True, seed=2).load_state_dict(state)


def test_bad_inputs():
    x, y = images(4, 0), np.arange(4)
    with pytest.raises(TypeError, match="uint8"):
        TensorLoader(x.astype(np.float32), y, 2)
    with pytest.raises(ValueError, match="labels must have shape"):
        TensorLoader(x, y[:3], 2)
    with pytest.raises(ValueError, match="batch_size"):
        TensorLoader(x, y, 0)
    with pytest.raises(TypeError, match="labels must be integer"):
        TensorLoader(x, y.astype(float), 2)
    with pytest.raises(ValueError, match="shape \\(N, H, W, C\\)"):
        TensorLoader(x.transpose(0, 3, 1, 2).copy(), y, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_equal_cpu_batches():
    x, y = images(64, 9), np.arange(64)
    cpu = _epoch(TensorLoader(x, y, 16, augment=True, seed=4))
    gpu = TensorLoader(x, y, 16, augment=True, seed=4, device="cuda", channels_last=True)
    out = _epoch(gpu)
    assert out[0][0].device.type == "cuda" and out[0][0].is_contiguous(memory_format=torch.channels_last)
    assert _same(cpu, [(a.cpu(), b.cpu()) for a, b in out])
