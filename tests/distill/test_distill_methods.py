"""Method interface, registry, and KD/CE losses against hand-computed golden values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kdbounds.distill import (
    DistillMethod,
    StepContext,
    TrainConfig,
    available_methods,
    get_method,
    kd_loss,
    register_method,
)
from kdbounds.distill.methods import coerce_hparams, lr_multiplier
from kdbounds.models import build_model




def _np_kd(zs, zt, T):
    """Independent numpy oracle: T² · mean_n Σ_c p_t (log p_t − log p_s)."""
    zs, zt = np.asarray(zs, np.float64) / T, np.asarray(zt, np.float64) / T
    ls = zs - zs.max(1, keepdims=True)
    ls = ls - np.log(np.exp(ls).sum(1, keepdims=True))
    lt = zt - zt.max(1, keepdims=True)
    lt = lt - np.log(np.exp(lt).sum(1, keepdims=True))
    return T * T * float(np.mean(np.sum(np.exp(lt) * (lt - ls), axis=1)))


def test_kd_loss_golden_by_hand():
    # one sample, two classes, T=1: p_s = (1/2, 1/2), p_t = softmax(0, ln 3) = (1/4, 3/4)
    # KL = 1/4 ln(1/2) + 3/4 ln(3/2) = 0.1308120...
    zs = torch.tensor([[0.0, 0.0]])
    zt = torch.tensor([[0.0, math.log(3.0)]])
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert kd_loss(zs, zt, 1.0).item() == pytest.approx(expected, rel=1e-6)
    # T = 2 doubles logits' scale back: z/T with z = 2·(0, ln 3) gives the same KL, times T² = 4
    assert kd_loss(2 * zs, 2 * zt, 2.0).item() == pytest.approx(4 * expected, rel=1e-6)
    # identical logits -> 0
    assert kd_loss(zt, zt, 4.0).item() == pytest.approx(0.0, abs=1e-7)


def test_kd_loss_golden_fixed_tensor():
    zs = [[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]
    zt = [[3.0, 1.0, 0.0], [0.0, 0.0, 4.0]]
    # golden value: float64 numpy (the _np_kd oracle, written independently of kd_loss), frozen here
    got = kd_loss(torch.tensor(zs), torch.tensor(zt), 4.0).item()
    assert got == pytest.approx(_np_kd(zs, zt, 4.0), rel=1e-5)
    assert got == pytest.approx(1.3417130, rel=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(2, 8), st.floats(0.5, 8.0), st.integers(0, 10_000))
def test_kd_loss_matches_numpy_oracle(n, c, T, seed):
    g = np.random.default_rng(seed)
    zs, zt = g.normal(0, 3, (n, c)), g.normal(0, 3, (n, c))
    got = kd_loss(torch.tensor(zs, dtype=torch.float32), torch.tensor(zt, dtype=torch.float32), T).item()
    assert got == pytest.approx(_np_kd(zs, zt, T), rel=1e-4, abs=1e-5)
    assert got >= -1e-6


def test_kd_method_total_is_weighted_sum():
    s, t = build_model("resnet8", seed=0), build_model("resnet8", seed=1).eval()
    m = get_method("kd")(s, t, 10)
    assert m.hparams == {"gamma": 0.1, "alpha": 0.9, "T": 4.0}
    zs = torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    zt = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 4.0]])
    y = torch.tensor([2, 0])
    total, parts = m.loss(None, y, zs, zt, 0)
    # CE by hand: -log softmax(zs)[y]
    lse0 = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    lse1 = math.log(math.exp(0.5) + math.exp(-1) + math.exp(2))
    ce = 0.5 * ((lse0 - 3.0) + (lse1 - 0.5))
    assert float(parts["ce"]) == pytest.approx(ce, rel=1e-6)
    assert float(parts["kd"]) == pytest.approx(_np_kd(zs, zt, 4.0), rel=1e-5)
    assert total.item() == pytest.approx(0.1 * ce + 0.9 * _np_kd(zs, zt, 4.0), rel=1e-5)


def test_kd_loss_rejects_mismatched_classes_and_bad_T():
    with pytest.raises(ValueError, match="same number of classes"):
        kd_loss(torch.zeros(2, 10), torch.zeros(2, 100), 4.0)
    with pytest.raises(ValueError, match="T must be > 0"):
        kd_loss(torch.zeros(2, 10), torch.zeros(2, 10), 0.0)


def test_registry_and_errors():
    assert {"ce", "kd"} <= set(available_methods())
    with pytest.raises(ValueError, match="valid methods:.*kd"):
        get_method("hinton")
    s = build_model("resnet8", seed=0)
    with pytest.raises(ValueError, match="needs a teacher"):
        get_method("kd")(s, None, 10)
    with pytest.raises(ValueError, match=r"unknown hyper-parameter.*temperature.*T=4.0"):
        get_method("kd")(s, s, 10, temperature=3)
    with pytest.raises(ValueError, match="'T' must be > 0"):
        get_method("kd")(s, s, 10, T=0)
    with pytest.raises(ValueError, match="must be of type float"):
        get_method("kd")(s, s, 10, T="hot")
    assert get_method("ce")(s, None, 10).requires_teacher is False


def test_coerce_hparams_from_strings():
    d = {"a": 1.0, "n": 3, "flag": False, "mode": "x"}
    out = coerce_hparams("m", d, {"a": "2.5", "n": "4", "flag": "true", "mode": "y"})
    assert out == {"a": 2.5, "n": 4, "flag": True, "mode": "y"}
    with pytest.raises(ValueError, match="n=2.5"):
        coerce_hparams("m", d, {"n": 2.5})


def test_register_custom_method_with_own_parameters_trains_them():
    @register_method
    class _Scaled(DistillMethod):
        """Test method: CE on logits scaled by a learned scalar."""
        name = "_test_scaled"
        requires_teacher = False
        requires_features = True
        defaults = {"init": 1.0}

        def __init__(self, student, teacher, num_classes, **hp):
            super().__init__(student, teacher, num_classes, **hp)
            self.scale = nn.Parameter(torch.tensor(self.hparams["init"]))

        def loss(self, x, y, s_out, t_out, epoch):
            assert t_out is None and hasattr(s_out, "stages")
            l = nn.functional.cross_entropy(s_out.logits * self.scale, y)
            return l, {"scale": self.scale.detach()}

    s = build_model("resnet8", seed=0)
    m = get_method("_test_scaled")(s, None, 10, init=2.0)
    assert [k for k, _ in m.named_parameters()] == ["scale"]  # student not registered inside
    cfg = TrainConfig(arch="resnet8", epochs=2, lr=0.1)
    opts = m.configure_optimizers(s, cfg)
    out = m.training_step(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]), s, None, opts, 0,
                          StepContext(device=torch.device("cpu"), cfg=cfg))
    assert {"loss", "acc", "scale"} <= set(out)
    assert m.scale.item() != 2.0


def test_lr_schedule_multipliers():
    cfg = TrainConfig(arch="resnet8", epochs=240)
    assert cfg.effective_milestones == (150, 180, 210)
    assert [lr_multiplier(e, cfg) for e in (0, 149, 150, 179, 180, 210, 239)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.001, 0.001])
    cos = TrainConfig(arch="resnet8", epochs=10, schedule="cosine")
    assert lr_multiplier(0, cos) == 1.0 and lr_multiplier(5, cos) == pytest.approx(0.5)
