"""Trainer: determinism, exact resume, config mismatch, NaN stop, checkpoints, callbacks, evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from kdbounds.distill import DistillMethod, TrainConfig, TrainingDiverged, register_method
from kdbounds.distill.checkpoint import read_checkpoint
from kdbounds.distill.trainer import (
    ConfigMismatchError,
    evaluate,
    load_checkpoint_model,
    predict_logits,
    train,
)
from kdbounds.models import build_model




def _data(n_train=48, n_test=24, seed=0):
    g = np.random.default_rng(seed)
    # learnable synthetic task: class = which quadrant is bright
    y = np.arange(n_train + n_test) % 4
    x = g.integers(0, 60, (n_train + n_test, 32, 32, 3)).astype(np.uint8)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 16 * r:16 * r + 16, 16 * q:16 * q + 16] += 150
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _cfg(**kw):
    base = dict(arch="resnet8", epochs=3, batch_size=16, lr=0.05, schedule="step", milestones=(2,),
                device="cpu", seed=1)
    base.update(kw)
    return TrainConfig(**base)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@register_method
class _NaNLater(DistillMethod):
    """Test method: CE that turns NaN from epoch `at` (0-based) on."""
    name = "_test_nan_later"
    requires_teacher = False
    defaults = {"at": 1}

    def loss(self, x, y, s_out, t_out, epoch):
        l = nn.functional.cross_entropy(s_out, y)
        if epoch >= self.hparams["at"]:
            l = l * float("nan")
        return l, {}


@register_method
class _WithState(DistillMethod):
    """Test method with its own parameter and buffer, to check they are checkpointed."""
    name = "_test_with_state"
    requires_teacher = True
    requires_features = True
    defaults = {}

    def __init__(self, student, teacher, num_classes, **hp):
        super().__init__(student, teacher, num_classes, **hp)
        self.proj = nn.Linear(student.feature_dim, teacher.feature_dim)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def loss(self, x, y, s_out, t_out, epoch):
        self.steps += 1
        ce = nn.functional.cross_entropy(s_out.logits, y)
        feat = (self.proj(s_out.pooled) - t_out.pooled).pow(2).mean()
        return ce + 0.1 * feat, {"feat": feat.detach()}


def test_log_result_files_and_last_epoch_reporting(tmp_path):
    cfg = _cfg()
    seen = []
    r = train(cfg, tmp_path, data=_data(), progress=False, callbacks=[lambda info: seen.append(info)])
    lines = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2, 3]
    assert r.final == lines[-1] and r.epochs_completed == 3 and len(r.history) == 3
    assert [l["lr"] for l in lines] == pytest.approx([0.05, 0.05, 0.005])  # milestone at epoch index 2
    for l in lines:
        assert {"train_loss", "train_acc", "train_ce", "test_loss", "test_acc", "epoch_time_s"} <= set(l)
        assert 0.0 <= l["test_acc"] <= 1.0
    assert [i.epoch for i in seen] == [1, 2, 3]
    assert seen[-1].metrics == r.final and seen[0].method.name == "ce" and seen[0].teacher is None
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["final"] == r.final
    assert TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == cfg


def test_deterministic_with_seed_and_seed_matters(tmp_path):
    data = _data()
    a = train(_cfg(epochs=2), tmp_path / "a", data=data, progress=False)
    b = train(_cfg(epochs=2), tmp_path / "b", data=data, progress=False)
    c = train(_cfg(epochs=2, seed=2), tmp_path / "c", data=data, progress=False)
    ma, mb, mc = (load_checkpoint_model(r.paths["model"]) for r in (a, b, c))
    assert _same_weights(ma, mb)
    assert not _same_weights(ma, mc)
    assert a.final["train_loss"] == b.final["train_loss"]


_INITS: list[torch.Tensor] = []


@register_method
class _RecordInit(DistillMethod):
    """Test method: plain CE that records the student's stem weights before the first epoch."""
    name = "_test_record_init"
    requires_teacher = False
    defaults = {}

    def on_epoch_start(self, epoch, student, teacher):
        if epoch == 0:
            _INITS.append(student.conv1.weight.detach().clone())

    def loss(self, x, y, s_out, t_out, epoch):
        l = nn.functional.cross_entropy(s_out, y)
        return l, {}


def test_init_seed_separates_init_from_data_order(tmp_path):
    data = _data()
    _INITS.clear()
    a = train(_cfg(epochs=1, seed=1, init_seed=7, method="_test_record_init"), tmp_path / "a", data=data,
              progress=False)
    b = train(_cfg(epochs=1, seed=2, init_seed=7, method="_test_record_init"), tmp_path / "b", data=data,
              progress=False)
    c = train(_cfg(epochs=1, seed=1, method="_test_record_init"), tmp_path / "c", data=data, progress=False)
    # same init (build_model(seed=7)), different data order -> different trained weights
    assert torch.equal(_INITS[0], _INITS[1]) and torch.equal(_INITS[0], build_model("resnet8", seed=7).conv1.weight)
    assert not torch.equal(_INITS[0], _INITS[2])  # init_seed=None -> init from seed=1
    assert torch.equal(_INITS[2], build_model("resnet8", seed=1).conv1.weight)
    assert not _same_weights(load_checkpoint_model(a.paths["model"]), load_checkpoint_model(b.paths["model"]))
    assert c.config["init_seed"] is None


@pytest.mark.parametrize("method", ["ce", "_test_with_state"])
def test_resume_after_interrupt_equals_uninterrupted(tmp_path, method):
    data = _data()
    teacher = build_model("resnet8", num_classes=10, seed=5) if method != "ce" else None
    cfg = _cfg(method=method, epochs=3)
    full = train(cfg, tmp_path / "full", teacher=teacher, data=data, progress=False)

    def stop_after_1(info):
        if info.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", teacher=teacher, data=data, progress=False, callbacks=[stop_after_1])
    assert read_checkpoint(tmp_path / "cut" / "checkpoint.pt")["epoch"] == 1
    resumed = train(cfg, tmp_path / "cut", teacher=teacher, data=data, progress=False)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_completed == 3
    assert _same_weights(load_checkpoint_model(full.paths["model"]), load_checkpoint_model(resumed.paths["model"]))
    ck_full = read_checkpoint(full.paths["checkpoint"])
    ck_res = read_checkpoint(resumed.paths["checkpoint"])
    for k in ck_full["method"]:
        assert torch.equal(ck_full["method"][k], ck_res["method"][k]), k
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in resumed.history]
    # a finished run is not retrained
    again = train(cfg, tmp_path / "cut", teacher=teacher, data=data, progress=False)
    assert again.resumed_from_epoch == 3 and again.final == resumed.final


def test_resume_with_other_config_is_a_clear_error(tmp_path):
    data = _data()
    train(_cfg(epochs=1), tmp_path, data=data, progress=False)
    with pytest.raises(ConfigMismatchError, match=r"lr: checkpoint 0.05 vs now 0.1.*resume=False"):
        train(_cfg(epochs=1, lr=0.1), tmp_path, data=data, progress=False)
    r = train(_cfg(epochs=1, lr=0.1), tmp_path, data=data, progress=False, resume=False)
    assert r.resumed_from_epoch is None and r.config["lr"] == 0.1


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = _cfg(method="_test_nan_later", method_kwargs={"at": 1})
    with pytest.raises(TrainingDiverged, match=r"epoch 2/3.*last good epoch \(1\)"):
        train(cfg, tmp_path, data=_data(), progress=False)
    ck = read_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 1


@register_method
class _BadStep(DistillMethod):
    """Test method whose training_step forgets the 'loss' key."""
    name = "_test_bad_step"
    requires_teacher = False
    defaults = {}

    def training_step(self, x, y, student, teacher, optimizers, epoch, step_ctx):
        return {"acc": 0.0}


def test_bad_inputs(tmp_path):
    data = _data()
    with pytest.raises(ValueError, match="valid methods"):
        train(_cfg(method="nope"), tmp_path / "a", data=data, progress=False)
    with pytest.raises(ValueError, match="unknown model name.*resnet20"):
        train(_cfg(arch="resnet9"), tmp_path / "b", data=data, progress=False)
    with pytest.raises(ValueError, match="needs a teacher"):
        train(_cfg(method="kd"), tmp_path / "c", data=data, progress=False)
    x, y, tx, ty = data
    with pytest.raises(ValueError, match="N×32×32×3"):
        train(_cfg(), tmp_path / "d", data=(x.transpose(0, 3, 1, 2), y, tx, ty), progress=False)
    with pytest.raises(ValueError, match="out of range"):
        train(_cfg(), tmp_path / "e", data=(x, y + 20, tx, ty), progress=False)
    with pytest.raises(ValueError, match="teacher has num_classes=100"):
        train(_cfg(method="kd"), tmp_path / "f", teacher=build_model("resnet8", 100), data=data, progress=False)
    with pytest.raises(TypeError, match="must return a dict with at least 'loss'"):
        train(_cfg(method="_test_bad_step"), tmp_path / "g", data=data, progress=False)
    with pytest.raises(ValueError, match="lr: expected"):
        _cfg(lr=-1.0)
    with pytest.raises(ValueError, match="schedule: expected one of"):
        _cfg(schedule="poly")


def test_checkpoint_model_roundtrip_and_errors(tmp_path):
    r = train(_cfg(epochs=1), tmp_path, data=_data(), progress=False)
    m = load_checkpoint_model(r.paths["model"])
    m2 = load_checkpoint_model(r.paths["checkpoint"])  # the training checkpoint works too
    assert not m.training and m.arch == "resnet8" and _same_weights(m, m2)
    with pytest.raises(ValueError, match=r"holds a 'resnet8' model .* 'resnet20' was expected"):
        load_checkpoint_model(r.paths["model"], model=build_model("resnet20"))
    with pytest.raises(ValueError, match="'resnet14' was expected"):
        load_checkpoint_model(r.paths["model"], arch="resnet14")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        load_checkpoint_model(bad)
    bare = tmp_path / "bare.pt"
    torch.save(m.state_dict(), bare)
    with pytest.raises(ValueError, match="not a kdbounds checkpoint"):
        load_checkpoint_model(bare)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint_model(tmp_path / "missing.pt")


def test_evaluate_and_predict_logits_match_manual_computation():
    from kdbounds.data import CIFAR10_MEAN, CIFAR10_STD, TensorLoader

    x, y, _, _ = _data(n_train=20)
    model = build_model("resnet8", num_classes=10, seed=0)
    model.train()
    logits = predict_logits(model, x, batch_size=7)
    assert model.training  # mode restored
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    xt = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - mean) / std
    with torch.no_grad():
        ref = model.eval()(xt)
    assert torch.allclose(logits, ref, atol=1e-4)
    loader = TensorLoader(x, y, batch_size=6, shuffle=False, augment=False, normalize="cifar10")
    loss, acc = evaluate(model, loader)
    yt = torch.from_numpy(y)
    assert loss == pytest.approx(nn.functional.cross_entropy(ref, yt).item(), rel=1e-4)
    assert acc == pytest.approx((ref.argmax(1) == yt).float().mean().item())
    assert math.isfinite(loss)
