"""Model zoo: shapes, feature contract, parameter counts, registry errors, seeded init."""

from __future__ import annotations

import pytest
import torch

from kdbounds.models import FeatureOutput, MODEL_NAMES, available_models, build_model, count_parameters



EXPECTED = {
    "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "resnet8x4", "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_16_8", "wrn_40_1", "wrn_40_2",
    "wrn_28_10", "vgg8", "vgg11", "vgg13", "mlp256", "mlp512x2", "airbench94", "airbench_m", "airbench_s",
}
MLPS = {"mlp256", "mlp512x2"}  # BatchNorm-free, no spatial stages (kdbounds.models.mlp)


def test_registry_lists_all_models():
    assert set(MODEL_NAMES) == EXPECTED
    assert set(available_models()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED - MLPS))
def test_forward_shapes_and_feature_contract(name):
    model = build_model(name, num_classes=7, seed=0).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
        out = model(x, return_features=True)
    assert logits.shape == (2, 7)
    assert isinstance(out, FeatureOutput)
    assert torch.allclose(out.logits, logits)
    assert model.arch == name and model.num_classes == 7
    assert len(out.stages) == len(model.stage_channels)
    for s, c in zip(out.stages, model.stage_channels):
        assert s.shape[:2] == (2, c)
    # spatial sizes are non-increasing with depth
    sizes = [s.shape[-1] for s in out.stages]
    # the airbench shape pools inside its first group (and its 2x2 whitening conv takes 32 -> 31)
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == (15 if name.startswith("airbench") else 32)
    assert out.pooled.shape == (2, model.feature_dim)
    # pooled is really the classifier input
    assert torch.allclose(model.classifier(out.pooled), logits, atol=1e-5)


@pytest.mark.parametrize(
    "name,expected_m,rel",
    [("resnet20", 0.27, 0.03), ("resnet56", 0.86, 0.03), ("wrn_40_2", 2.2, 0.03),
     ("resnet32x4", 7.4, 0.02), ("resnet110", 1.7, 0.03), ("wrn_16_2", 0.70, 0.03),
     ("airbench94", 1.97, 0.01)],
)
def test_parameter_counts_match_published(name, expected_m, rel):
    n = count_parameters(build_model(name, num_classes=10))
    assert abs(n / 1e6 - expected_m) / expected_m < rel, n


def test_resnet20_exact_parameter_count():
    # hand count: stem 3*16*9 + bn 32; 9 blocks; 1x1+BN shortcuts 16->32, 32->64; fc 64*10+10
    stem = 3 * 16 * 9 + 2 * 16
    def block(i, o):
        return i * o * 9 + o * o * 9 + 4 * o
    g1 = 3 * block(16, 16)
    g2 = block(16, 32) + 2 * block(32, 32) + 16 * 32 + 2 * 32
    g3 = block(32, 64) + 2 * block(64, 64) + 32 * 64 + 2 * 64
    fc = 64 * 10 + 10
    assert count_parameters(build_model("resnet20")) == stem + g1 + g2 + g3 + fc


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="resnet20") as e:
        build_model("resnet21")
    assert "wrn_40_2" in str(e.value) and "resnet21" in str(e.value)


def test_name_normalisation_and_bad_args():
    assert build_model("WRN-16-1").arch == "wrn_16_1"
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet8", num_classes=0)
    with pytest.raises(TypeError, match="seed"):
        build_model("resnet8", seed=1.5)
    with pytest.raises(ValueError, match="N×3×H×W"):
        build_model("resnet8")(torch.zeros(2, 32, 32, 3))


def test_seeded_init_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = build_model("resnet8", seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = build_model("resnet8", seed=3)
    c = build_model("resnet8", seed=4)
    for (ka, pa), (_, pb), (_, pc) in zip(a.state_dict().items(), b.state_dict().items(), c.state_dict().items()):
        assert torch.equal(pa, pb), ka
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_channels_last_gives_same_output():
    m = build_model("resnet8", seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = m(x)
        y2 = m.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(y, y2, atol=1e-4)
