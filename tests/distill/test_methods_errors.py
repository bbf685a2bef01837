"""Bad input to VID / RID / ITRD / RCD and the controls: clear errors naming the fix."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from kdbounds.distill import TrainConfig, get_method
from kdbounds.distill.controls import make_untrained_teacher, siddo_config
from kdbounds.distill.rid import rid_cycle_length, rid_phase
from kdbounds.models import build_model



@pytest.fixture(scope="module")
def r8():
    return build_model("resnet8", 10, seed=0)


@pytest.fixture(scope="module")
def r14():
    return build_model("resnet14", 10, seed=1).eval()


@pytest.fixture(scope="module")
def vgg8():
    return build_model("vgg8", 10, seed=2).eval()


class Plain(nn.Module):
    """A model without the feature API."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("name", ["vid", "rid", "itrd"])
def test_feature_method_on_model_without_features(name, r8, r14):
    with pytest.raises(TypeError, match="does not expose them.*stage_channels"):
        get_method(name)(Plain(), r14, 10)
    with pytest.raises(TypeError, match="teacher.*does not expose"):
        get_method(name)(r8, Plain(), 10)


@pytest.mark.parametrize("name", ["vid", "rid", "itrd"])
def test_feature_method_needs_teacher(name, r8):
    with pytest.raises(ValueError, match="needs a teacher"):
        get_method(name)(r8, None, 10)


def test_feature_method_loss_given_plain_logits(r8, r14):
    m = get_method("vid")(r8, r14, 10)
    z = torch.zeros(2, 10)
    with pytest.raises(TypeError, match="FeatureOutput"):
        m.loss(None, torch.tensor([0, 1]), z, z, 0)


def test_rid_layers_whose_shapes_cannot_be_matched(r8, vgg8):
    # vgg8 has 5 stages (32, 16, 8, 4, 2 pixels), resnet8 3 stages (32, 16, 8)
    with pytest.raises(ValueError, match="student has 3 stages and teacher has 5.*layers="):
        get_method("rid")(r8, vgg8, 10)
    with pytest.raises(ValueError, match=r"cannot match layer pair 0.*32x32.*8x8.*spatial_pool"):
        get_method("rid")(r8, vgg8, 10, layers="0,1,2", teacher_layers="2,3,4")
    # matching sizes are accepted, and pooling can be asked for explicitly
    get_method("rid")(r8, vgg8, 10, layers="0,1,2", teacher_layers="0,1,2")
    get_method("rid")(r8, vgg8, 10, layers="0,1,2", teacher_layers="2,3,4", spatial_pool=True)
    with pytest.raises(ValueError, match="out of range.*teacher has 5"):
        get_method("rid")(r8, vgg8, 10, layers="0", teacher_layers="7")
    with pytest.raises(ValueError, match="same length"):
        get_method("rid")(r8, vgg8, 10, layers="0,1", teacher_layers="0")


@pytest.mark.parametrize("kw, match", [
    ({"q": 1}, "need q >= 2"),
    ({"q": 0}, "'q' must be >= 1"),
    ({"q": 4, "r": 0.9}, "no phase-2 epoch"),
    ({"r": 0.0}, "'r' must be > 0"),
    ({"r": 1.0}, "'r' must be < 1"),
    ({"r": 1.5}, "'r' must be < 1"),
    ({"lam1": -1.0}, "'lam1' must be >= 0"),
    ({"lam2": -0.5}, "'lam2' must be >= 0"),
    ({"lam1": 0.0, "lam2": 0.0}, "both 0"),
    ({"lam2": "ten"}, "lam2='ten' must be of type float"),
    ({"q": 5, "n_rounds": 3}, "either q"),
    ({"sigma_penalty": "cube"}, "one of"),
    ({"grad_clip": 0.0}, "'grad_clip' must be > 0"),
    ({"bogus": 1}, "unknown hyper-parameter"),
])
def test_rid_bad_hyperparameters(kw, match, r8, r14):
    with pytest.raises((ValueError, TypeError), match=match):
        get_method("rid")(r8, r14, 10, **kw)


def test_rid_run_too_short_for_its_cycles(r8, r14):
    m = get_method("rid")(r8, r14, 10, n_rounds=10)
    with pytest.raises(ValueError, match="no phase-2 epoch.*fewer n_rounds"):
        m.configure_optimizers(r8, TrainConfig(arch="resnet8", epochs=15, device="cpu"))
    with pytest.raises(ValueError, match="whole run"):
        rid_cycle_length(3, q=8, r=0.5)
    with pytest.raises(ValueError, match="either q"):
        rid_phase(0, 10, q=2, n_rounds=5)


@pytest.mark.parametrize("name, kw, match", [
    ("vid", {"lam": -1}, "'lam' must be >= 0"),
    ("vid", {"init_var": 0.0}, "'init_var' must be >"),
    ("vid", {"layers": "0,9"}, "out of range"),
    ("vid", {"layers": "a,b"}, "must be an integer"),
    ("itrd", {"alpha": 0.0}, "'alpha' must be > 0"),
    ("itrd", {"beta": -1.0}, "'beta' must be >= 0"),
])
def test_vid_itrd_bad_hyperparameters(name, kw, match, r8, r14):
    with pytest.raises((ValueError, TypeError), match=match):
        get_method(name)(r8, r14, 10, **kw)


@pytest.mark.parametrize("kw, match", [
    ({"T": 0.0}, "'T' must be > 0"),
    ({"noise": "uniform"}, "one of"),
    ({"concentration": 0.0}, "'concentration' must be > 0"),
    ({"seed": -1}, "'seed' must be >= 0"),
])
def test_rcd_bad_hyperparameters(kw, match, r8):
    with pytest.raises((ValueError, TypeError), match=match):
        get_method("rcd")(r8, None, 10, **kw)


def test_itrd_batch_of_one(r8, r14):
    m = get_method("itrd")(r8, r14, 10)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        s, t = r8(x, return_features=True), r14(x, return_features=True)
    with pytest.raises(ValueError, match="at least 2"):
        m.loss(x, torch.tensor([0]), s, t, 0)


def test_controls_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown model name"):
        make_untrained_teacher("resnet9000", 10, 0, tmp_path / "t.pt")
    with pytest.raises(ValueError, match=r"\.pt"):
        make_untrained_teacher("resnet8", 10, 0, tmp_path / "t.bin")
    with pytest.raises(ValueError, match="seed"):
        make_untrained_teacher("resnet8", 10, -3, tmp_path / "t.pt")
    ref = TrainConfig(arch="resnet8", seed=3, device="cpu")
    with pytest.raises(ValueError, match="different data order"):
        siddo_config(ref, 3)
    with pytest.raises(TypeError, match="TrainConfig"):
        siddo_config({"arch": "resnet8"}, 4)
