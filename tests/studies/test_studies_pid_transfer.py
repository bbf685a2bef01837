"""PIDTracker: features -> PID from real model forward passes (tiny random images, CPU)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kdbounds.models import build_model
from kdbounds.studies.pid_transfer import PIDTracker, extract_features


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(120, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 3, size=120)
    return x, y


def test_extract_features_shapes_and_mode(images):
    x, _ = images
    m = build_model("resnet8", num_classes=3, seed=0)
    m.train()
    f = extract_features(m, x[:10], layer="pooled")
    assert f.shape[0] == 10 and f.ndim == 2 and np.isfinite(f).all()
    assert m.training  # mode restored
    g = extract_features(m, x[:10], layer="last")
    assert g.shape[0] == 10
    with pytest.raises(ValueError, match="uint8"):
        extract_features(m, x[:10].astype(np.float32))


def test_tracker_records_every_n_epochs(images):
    x, y = images
    torch.manual_seed(0)
    teacher = build_model("resnet8", num_classes=3, seed=1)
    student = build_model("resnet8", num_classes=3, seed=2)
    tr = PIDTracker(x[:60], y[:60], x[60:], y[60:], every=2, n_components=3, n_clusters=3, n_shuffle=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ep in (1, 2, 3, 4):
            tr(SimpleNamespace(epoch=ep, student=student, teacher=teacher, metrics={}))
    assert [r["epoch"] for r in tr.records] == [2, 4]
    r = tr.records[0]
    for k in ("redundancy", "unique_t", "unique_s", "synergy", "redundancy_shuffle_mean"):
        assert np.isfinite(r[k]) and r[k] >= 0
    # random labels, untrained nets: everything is at the plug-in bias level
    assert r["mi_yts"] < 0.5
    with pytest.raises(ValueError, match="teacher"):
        tr.measure(student, None, 0)


@pytest.mark.slow
def test_tracker_as_trainer_callback(images, tmp_path):
    """End to end with the real trainer: KD student, untrained teacher, 1 epoch, PID after it."""
    from kdbounds.distill import TrainConfig, train
    from kdbounds.distill.controls import make_untrained_teacher

    x, _ = images
    y = np.random.default_rng(1).integers(0, 10, size=x.shape[0])
    data = (x[:60], y[:60], x[60:], y[60:])
    teacher = make_untrained_teacher("resnet8", 10, 5, tmp_path / "teacher.pt")
    cfg = TrainConfig(arch="resnet8", epochs=1, batch_size=30, device="cpu", method="kd",
                      teacher_ckpt=str(teacher), eval_every=1, amp=False, channels_last=False)
    tr = PIDTracker(x[:60], y[:60], x[60:], y[60:], every=1, n_components=3, n_clusters=3, n_shuffle=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(cfg, tmp_path / "run", data=data, callbacks=[tr], progress=False)
    assert [r["epoch"] for r in tr.records] == [1]
    assert all(np.isfinite(r["redundancy"]) for r in tr.records)
