"""PIDTracker: features -> PID from real model forward passes (tiny random images, CPU); the study on
the sweep runner (oracles: the local executor for Ray; trainings counted by a wrapper around the
trainer; the run id of the arrays loaded by hand)."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import kdbounds.distill
from kdbounds.models import build_model
from kdbounds.runs import cache as cache_mod
from kdbounds.studies import pid_transfer as pt
from kdbounds.studies.pid_transfer import PIDTracker, extract_features
from kdbounds.runs.sweep import SweepError
from study_helpers import CountingTrain, needs_ray


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


# ------------------------------------------------------------------- the study on the sweep runner

_TRAIN = kdbounds.distill.train  # the real trainer, whatever a test has patched



pytestmark = pytest.mark.usefixtures("private_data_cache")


def smoke(fake_root: Path) -> pt.Config:
    """The smoke preset on the fake CIFAR-10 (10 test images per class: 5 + 5 per class for the PID)."""
    return dataclasses.replace(pt.PRESETS["smoke"], data_root=str(fake_root), pid_per_class=5)


def rows(result: pt.Result) -> list[dict]:
    """The rows as strict JSON values (nan -> None, so that two nan compare equal); floats exact."""
    from kdbounds._io import to_jsonable

    return to_jsonable(list(result.rows))


def _count(monkeypatch, counting: CountingTrain) -> CountingTrain:
    monkeypatch.setattr(cache_mod, "train", counting)  # the teacher (train_cached)
    monkeypatch.setattr(kdbounds.distill, "train", counting)  # the students (student_run)
    return counting


def _run(cfg, root: Path, **kw):
    return pt.run(cfg, root / "out", cache_root=root / "cache", progress=False, log=lambda s: None, **kw)


def test_smoke_study_interrupted_then_restarted_trains_every_run_once(tmp_path, fake_root, monkeypatch):
    """A failure in the 3rd training (teacher, kd-trained, then vid-trained) is a SweepError after
    the outputs of the finished student are written; the restart trains the 5 other students and not
    the teacher; a third run trains nothing and gives the same rows. The teacher's run id is that of
    the arrays the study used before the sweep runner (load_cifar's full test split, by hand)."""
    from kdbounds.data import load_cifar

    cfg = smoke(fake_root)
    first = _count(monkeypatch, CountingTrain(_TRAIN, stop_at=2, error=RuntimeError("out of memory")))
    with pytest.raises(SweepError, match="out of memory"):
        _run(cfg, tmp_path)
    partial = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {(r["teacher"], r["method"]) for r in partial["rows"]} == {("trained", "kd")}
    assert (tmp_path / "out" / "curves.csv").is_file()
    second = _count(monkeypatch, CountingTrain(_TRAIN))
    res = _run(cfg, tmp_path)
    students = {f"{m}-{k}" for m in cfg.methods for k in pt.TEACHER_KINDS}
    assert sorted(second.calls) == sorted(students - {"kd-trained"})
    assert sorted(first.calls[1:] + second.calls) == sorted(students)  # each student trained once
    assert [(r["teacher"], r["method"], r["epoch"]) for r in res.rows] == [
        (k, m, e) for k in pt.TEACHER_KINDS for m in cfg.methods for e in (1, 2)]
    assert all(np.isfinite(r["redundancy"]) and np.isfinite(r["final_test_acc"]) for r in res.rows)
    for f in ("curves.csv", "results.json", "curves.png"):
        assert (tmp_path / "out" / f).is_file(), f
    third = _count(monkeypatch, CountingTrain(_TRAIN))
    again = _run(cfg, tmp_path)
    assert third.calls == [] and rows(again) == rows(res)
    tx, ty = load_cifar("cifar10", root=str(fake_root), split="train")
    vx, vy = load_cifar("cifar10", root=str(fake_root), split="test")
    teacher = pt._base(cfg, cfg.teacher_arch, cfg.teacher_epochs, 1000)
    assert cache_mod.run_dir(teacher, tmp_path / "cache", data=(tx, ty, vx, vy)).name == first.calls[0]


def test_training_specs_and_an_impossible_pid_set_fails_before_training(tmp_path, fake_root, monkeypatch):
    cfg = smoke(fake_root)
    specs = pt.training_specs(cfg, tmp_path / "out", tmp_path / "cache")
    assert [s.key for s in specs] == ["teacher"] + [f"{m}-{k}" for k in pt.TEACHER_KINDS for m in cfg.methods]
    for s in specs[1:]:
        trained = s.key.endswith("-trained")
        assert s.deps == (("teacher",) if trained else ())
        assert s.kwargs["config"]["teacher_ckpt"] == (
            None if trained else str(pt.untrained_teacher_path(cfg, tmp_path / "cache")))
        assert s.kwargs["out_dir"] == str(tmp_path / "out" / "runs" / s.key)
    counting = _count(monkeypatch, CountingTrain(_TRAIN))
    with pytest.raises(ValueError, match="n_per_class=22"):  # 2 x 11 per class; the fake test split has 10
        _run(dataclasses.replace(cfg, pid_per_class=11), tmp_path)
    assert counting.calls == []


@needs_ray
@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_smoke_on_ray_equals_local(tmp_path, fake_root, ray_cluster, monkeypatch):
    """The smoke sweep (teacher + 6 students with PID per epoch) through Ray (2 workers, 1 thread) and
    locally (1 thread), each with its own output and cache: the same rows, every PID value to the last
    bit. The local study on the Ray run's folders then trains nothing."""
    cfg = smoke(fake_root)
    local = _run(cfg, tmp_path / "l", sweep={"executor": "local", "threads": 1})
    remote = _run(cfg, tmp_path / "r", sweep={"executor": "ray", "workers": 2, "threads": 1})
    assert rows(remote) == rows(local) and len(local.rows) == 12
    counting = _count(monkeypatch, CountingTrain(_TRAIN))
    assert rows(_run(cfg, tmp_path / "r")) == rows(local)
    assert counting.calls == []
