"""The RID paper's VID variant (``vid_rid``) and the RepDistiller default of ``vid``.

Oracles: hand computations (variance pinned to softplus = 2 exactly, regressor output pinned to
0), an independent float64 numpy implementation of the whole loss (1x1 convolutions, BatchNorm
with batch statistics, ReLU, adaptive pooling, Gaussian NLL), the Kaiming-uniform law of the
regressor weights (bound and variance), the trainer's exact-resume contract, and gradient flow
in a real training step.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from kdbounds.distill import StepContext, TrainConfig, get_method, train
from kdbounds.distill.checkpoint import read_checkpoint
from kdbounds.distill.trainer import load_checkpoint_model
from kdbounds.distill.vid_rid import VIDRIDRegressor, vid_rid_variance
from kdbounds.models import FeatureOutput, build_model


def _t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def _np_bn_train(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5):
    """BatchNorm2d in training mode: batch mean and biased batch variance per channel."""
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    return gamma[None, :, None, None] * (x - mu) / np.sqrt(var + eps) + beta[None, :, None, None]


def _np_pool(x: np.ndarray, f: int) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // f, f, w // f, f).mean(axis=(3, 5))


# ------------------------------------------------------------------------------- registry, defaults
def test_both_variants_registered_with_their_sources_defaults():
    assert get_method("vid").defaults["lam"] == 1.0          # RepDistiller: -a 0 -b 1
    assert get_method("vid").defaults["eps"] == 1e-5
    d = dict(get_method("vid_rid").defaults)
    assert d == {"lam": 100.0, "ce_weight": 1.0, "layers": None, "teacher_layers": None,
                 "hidden_mult": 4, "alpha_init": 5.0, "eps": 1e-3}
    assert get_method("vid_rid").requires_teacher and get_method("vid_rid").requires_features


def test_paper_pair_regressor_shapes_and_initial_variance():
    student, teacher = build_model("wrn_16_1", 10, seed=0), build_model("wrn_40_2", 10, seed=1)
    assert student.stage_channels == (16, 32, 64) and teacher.stage_channels == (32, 64, 128)
    m = get_method("vid_rid")(student, teacher, 10)
    assert m.pairs == ((0, 0), (1, 1), (2, 2))
    # official filter1..3: 16->64->64->32, 32->128->128->64, 64->256->256->128, BN after 1st/2nd
    expected = [(16, 64, 32), (32, 128, 64), (64, 256, 128)]
    for reg, (cs, h, ct) in zip(m.regressors, expected):
        convs = [l for l in reg.mu if isinstance(l, nn.Conv2d)]
        bns = [l for l in reg.mu if isinstance(l, nn.BatchNorm2d)]
        assert [tuple(c.weight.shape) for c in convs] == [(h, cs, 1, 1), (h, h, 1, 1), (ct, h, 1, 1)]
        assert all(c.bias is None for c in convs)
        assert [b.num_features for b in bns] == [h, h]
        assert [type(l).__name__ for l in reg.mu] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d",
                                                      "BatchNorm2d", "ReLU", "Conv2d"]
        np.testing.assert_allclose(reg.alpha.detach().numpy(), 5.0)
        np.testing.assert_allclose(reg.variance().detach().numpy(),
                                   math.log(1.0 + math.exp(5.0)) + 1e-3, rtol=1e-6)
    n_params = sum(p.numel() for p in m.parameters())
    hand = sum(cs * h + h * h + h * ct + 4 * h + ct for cs, h, ct in expected)
    assert n_params == hand


def test_regressor_weights_are_kaiming_uniform_fan_out():
    # U(-b, b) with b = gain * sqrt(3 / fan_out), gain = sqrt(2): variance b^2 / 3 = 2 / fan_out
    torch.manual_seed(0)
    reg = VIDRIDRegressor(64, 128)
    for conv in [l for l in reg.mu if isinstance(l, nn.Conv2d)]:
        w = conv.weight.detach().numpy().ravel()
        fan_out = conv.weight.shape[0]
        b = math.sqrt(6.0 / fan_out)
        assert np.abs(w).max() <= b
        assert np.abs(w).max() > 0.95 * b
        assert w.var() == pytest.approx(2.0 / fan_out, rel=0.08)


# ------------------------------------------------------------------------------- loss values
def test_variance_hand_values():
    a2 = math.log(math.e ** 2 - 1.0)                 # softplus(a2) = 2 exactly
    got = vid_rid_variance(_t([a2, 5.0]))
    np.testing.assert_allclose(got.numpy(), [2.001, math.log1p(math.exp(5.0)) + 1e-3], rtol=1e-14)
    with pytest.raises(ValueError, match="eps"):
        vid_rid_variance(_t([0.0]), eps=0.0)


def test_method_loss_hand_value(tiny_net):
    """Last regressor conv zeroed -> mu = 0; teacher maps constant 3; softplus(alpha) = 2.

    Per layer 1/2 [log 2.001 + 9 / 2.001]; logits zero -> CE = log 4.
    total = 1 * log 4 + 100 * 2 * 1/2 [log 2.001 + 9/2.001].
    """
    torch.manual_seed(0)
    student, teacher = tiny_net((2, 3)), tiny_net((4, 5))
    m = get_method("vid_rid")(student, teacher, 4).double()
    a2 = math.log(math.e ** 2 - 1.0)
    for reg in m.regressors:
        reg.mu[6].weight.data.zero_()
        reg.alpha.data.fill_(a2)
    rng = np.random.default_rng(0)
    s_out = FeatureOutput(_t(np.zeros((2, 4))), [_t(rng.normal(size=(2, 2, 4, 4))),
                                                 _t(rng.normal(size=(2, 3, 2, 2)))], _t(np.zeros((2, 3))))
    t_out = FeatureOutput(_t(np.zeros((2, 4))), [_t(np.full((2, 4, 4, 4), 3.0)),
                                                 _t(np.full((2, 5, 2, 2), 3.0))], _t(np.zeros((2, 5))))
    loss, parts = m.loss(None, torch.tensor([0, 3]), s_out, t_out, 0)
    per_layer = 0.5 * (math.log(2.001) + 9.0 / 2.001)
    assert float(parts["vid_0"]) == pytest.approx(per_layer, rel=1e-13)
    assert float(parts["vid"]) == pytest.approx(2 * per_layer, rel=1e-13)
    assert float(loss.detach()) == pytest.approx(math.log(4.0) + 100.0 * 2 * per_layer, rel=1e-13)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_method_loss_against_numpy(np_ref, tiny_net, seed):
    torch.manual_seed(seed)
    student, teacher = tiny_net((2, 3)), tiny_net((4, 5))
    m = get_method("vid_rid")(student, teacher, 4, lam="7.5", ce_weight=1.3, hidden_mult=2).double()
    m.train()
    rng = np.random.default_rng(10 + seed)
    params = []
    for reg in m.regressors:
        ws = []
        for conv in (reg.mu[0], reg.mu[3], reg.mu[6]):
            w = rng.normal(size=tuple(conv.weight.shape))
            conv.weight.data = _t(w)
            ws.append(w)
        bn = []
        for b in (reg.mu[1], reg.mu[4]):
            g, be = rng.uniform(0.5, 1.5, b.num_features), rng.normal(size=b.num_features)
            b.weight.data, b.bias.data = _t(g), _t(be)
            bn.append((g, be))
        a = rng.normal(size=reg.alpha.shape) * 2.0
        reg.alpha.data = _t(a)
        params.append((ws, bn, a))
    n = 5
    s_st = [rng.normal(size=(n, 2, 4, 4)), rng.normal(size=(n, 3, 2, 2))]
    t_st = [rng.normal(size=(n, 4, 2, 2)), rng.normal(size=(n, 5, 2, 2))]   # layer 0: student pooled
    z, y = rng.normal(size=(n, 4)), np.array([0, 3, 1, 2, 2])
    s_out = FeatureOutput(_t(z), [_t(a) for a in s_st], _t(np.zeros((n, 3))))
    t_out = FeatureOutput(_t(np.zeros((n, 4))), [_t(a) for a in t_st], _t(np.zeros((n, 5))))
    loss, parts = m.loss(None, torch.tensor(y), s_out, t_out, 0)

    relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
    total = 0.0
    for (ws, bn, a), s, t in zip(params, s_st, t_st):
        if s.shape[-1] != t.shape[-1]:
            s = _np_pool(s, s.shape[-1] // t.shape[-1])
        h = relu(_np_bn_train(np_ref.conv1x1(ws[0], s), *bn[0]))
        h = relu(_np_bn_train(np_ref.conv1x1(ws[1], h), *bn[1]))
        mu = np_ref.conv1x1(ws[2], h)
        v = np.log1p(np.exp(a))[None, :, None, None] + 1e-3
        total += 0.5 * np.mean(np.log(v) + (t - mu) ** 2 / v)
    assert float(parts["vid"]) == pytest.approx(total, rel=1e-11)
    assert float(loss.detach()) == pytest.approx(1.3 * np_ref.ce(z, y) + 7.5 * total, rel=1e-11)


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kw, match", [
    ({"lam": -1}, "'lam' must be >= 0"),
    ({"eps": 0.0}, "'eps' must be > 0"),
    ({"hidden_mult": 0}, "'hidden_mult' must be >= 1"),
    ({"hidden_mult": 2.5}, "hidden_mult"),
    ({"alpha_init": "x"}, "alpha_init"),
    ({"layers": "0,9"}, "out of range"),
    ({"sigma": 1.0}, "unknown hyper-parameter"),
])
def test_bad_hyperparameters(tiny_net, kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        get_method("vid_rid")(tiny_net((2, 3)), tiny_net((4, 5)), 4, **kw)


def test_needs_teacher_and_feature_models(tiny_net):
    with pytest.raises(ValueError, match="needs a teacher"):
        get_method("vid_rid")(tiny_net(), None, 4)
    with pytest.raises(TypeError, match="does not expose"):
        get_method("vid_rid")(tiny_net(), nn.Linear(3, 4), 4)
    m = get_method("vid_rid")(tiny_net((2, 3)), tiny_net((4, 5)), 4)
    with pytest.raises(TypeError, match="FeatureOutput"):
        m.loss(None, torch.tensor([0]), torch.zeros(1, 4), torch.zeros(1, 4), 0)


# ------------------------------------------------------------------------------- training
def test_training_step_moves_student_regressor_bn_and_alpha_not_teacher(tiny_net):
    torch.manual_seed(3)
    student, teacher = tiny_net((2, 3)), tiny_net((4, 5)).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    m = get_method("vid_rid")(student, teacher, 4)
    cfg = TrainConfig(arch="resnet8", epochs=1, lr=0.01, momentum=0.9, nesterov=True, device="cpu")
    opts = m.configure_optimizers(student, cfg)
    ctx = StepContext(device=torch.device("cpu"), grad_clip=100.0, cfg=cfg)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 4, (8,), generator=g)
    before = {k: v.clone() for k, v in {**{f"s.{k}": v for k, v in student.state_dict().items()},
                                        **{f"m.{k}": v for k, v in m.state_dict().items()},
                                        **{f"t.{k}": v for k, v in teacher.state_dict().items()}}.items()}
    out0 = m.training_step(x, y, student, teacher, opts, 0, ctx)
    assert set(out0) >= {"loss", "acc", "ce", "vid", "vid_0", "vid_1"}
    for name, p in list(m.named_parameters()) + [("student." + k, p) for k, p in student.named_parameters()]:
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
    after = {**{f"s.{k}": v for k, v in student.state_dict().items()},
             **{f"m.{k}": v for k, v in m.state_dict().items()},
             **{f"t.{k}": v for k, v in teacher.state_dict().items()}}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    for k in ("m.regressors.0.alpha", "m.regressors.1.mu.1.weight", "m.regressors.1.mu.4.running_mean",
              "m.regressors.0.mu.6.weight", "s.classifier.weight", "s.blocks.0.0.weight"):
        assert k in changed, k
    assert not any(k.startswith("t.") for k in changed)
    losses = [float(out0["loss"])]
    for _ in range(7):   # same batch: the objective goes down
        losses.append(float(m.training_step(x, y, student, teacher, opts, 0, ctx)["loss"]))
    assert losses[-1] < losses[0]


def _data(n_train=48, n_test=24, seed=0):
    g = np.random.default_rng(seed)
    y = np.arange(n_train + n_test) % 4
    x = g.integers(0, 60, (n_train + n_test, 32, 32, 3)).astype(np.uint8)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 16 * r:16 * r + 16, 16 * q:16 * q + 16] += 150
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def test_resume_restores_regressors_bn_statistics_and_alpha(tmp_path):
    data = _data()
    teacher = build_model("resnet8", num_classes=10, seed=5)
    cfg = TrainConfig(arch="resnet8", epochs=3, batch_size=16, lr=0.05, schedule="step",
                      milestones=(2,), device="cpu", seed=1, method="vid_rid", nesterov=True,
                      grad_clip=100.0)
    full = train(cfg, tmp_path / "full", teacher=teacher, data=data, progress=False)

    def stop_after_1(info):
        if info.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", teacher=teacher, data=data, progress=False,
              callbacks=[stop_after_1])
    resumed = train(cfg, tmp_path / "cut", teacher=teacher, data=data, progress=False)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_completed == 3
    sa = load_checkpoint_model(full.paths["model"]).state_dict()
    sb = load_checkpoint_model(resumed.paths["model"]).state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    ck_full = read_checkpoint(full.paths["checkpoint"])["method"]
    ck_res = read_checkpoint(resumed.paths["checkpoint"])["method"]
    assert {"regressors.0.alpha", "regressors.0.mu.1.running_mean",
            "regressors.2.mu.4.num_batches_tracked"} <= set(ck_full)
    for k in ck_full:
        assert torch.equal(ck_full[k], ck_res[k]), k
    fresh = get_method("vid_rid")(build_model("resnet8", 10, seed=0), teacher, 10).state_dict()
    assert not torch.equal(fresh["regressors.0.alpha"], ck_full["regressors.0.alpha"])
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in resumed.history]
    assert all(math.isfinite(h["train_vid"]) for h in full.history)
