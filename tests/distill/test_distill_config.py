"""TrainConfig: validation, JSON round trip, hashing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdbounds.distill import TrainConfig


@settings(max_examples=40, deadline=None)
@given(
    epochs=st.integers(1, 300), bs=st.integers(1, 512), lr=st.floats(1e-4, 1.0),
    sched=st.sampled_from(["step", "cosine", "constant"]),
    ms=st.one_of(st.none(), st.lists(st.integers(1, 300), min_size=1, max_size=4).map(tuple)),
    npc=st.one_of(st.none(), st.integers(1, 5000)), seed=st.integers(0, 2**31),
    kw=st.dictionaries(st.sampled_from(["T", "alpha", "gamma"]), st.floats(0.1, 10.0), max_size=3),
)
def test_json_round_trip_and_hash(epochs, bs, lr, sched, ms, npc, seed, kw):
    cfg = TrainConfig(arch="resnet8", epochs=epochs, batch_size=bs, lr=lr, schedule=sched, milestones=ms,
                      n_per_class=npc, seed=seed, method="kd", method_kwargs=kw)
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and hash(back) == hash(cfg) and back.to_json() == cfg.to_json()
    assert len(cfg.effective_milestones) >= 1
    # to_json is the one canonical serialiser (kdbounds._io), byte for byte the json.dumps it replaced
    assert cfg.to_json() == json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))


def test_to_json_escapes_like_the_serialiser_it_replaced():
    cfg = TrainConfig(arch="resnet8", data_root="/données/cifar", method_kwargs={"T": 1e-7, "alpha": 0.1})
    assert cfg.to_json() == json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"))
    assert "\\u00e9" in cfg.to_json()


def test_whole_numbers_given_as_floats_are_the_same_config_and_run():
    """``_checks.check_int`` takes ``2.0`` (and numpy integers) as ``2``: the config, its JSON and run id are those of
    the int; a fractional value is refused with the field named."""
    np = pytest.importorskip("numpy")
    a = TrainConfig("resnet8", epochs=2, batch_size=16, seed=3, n_per_class=5)
    b = TrainConfig("resnet8", epochs=2.0, batch_size=np.int64(16), seed=3.0, n_per_class=np.int32(5))
    assert a == b and a.to_json() == b.to_json() and type(b.epochs) is int and type(b.batch_size) is int
    with pytest.raises(TypeError, match="^epochs: expected an integer"):
        TrainConfig("resnet8", epochs=1.5)
    with pytest.raises(TypeError, match="^seed: expected an integer"):
        TrainConfig("resnet8", seed="3")


def test_validation_messages_name_the_field():
    for kw, msg in [({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"), ({"dataset": "mnist"}, "dataset"),
                    ({"device": "tpu"}, "device"), ({"n_per_class": 0}, "n_per_class"),
                    ({"milestones": (0,)}, "milestones"), ({"grad_clip": 0.0}, "grad_clip"),
                    ({"method_kwargs": {"T": [1, 2]}}, "method_kwargs")]:
        with pytest.raises((ValueError, TypeError), match=msg):
            TrainConfig(arch="resnet8", **kw)
    with pytest.raises(ValueError, match="unknown TrainConfig fields.*'lr_decay'"):
        TrainConfig.from_dict({"arch": "resnet8", "lr_decay": 0.1})


def test_num_classes_and_defaults_follow_the_paper_recipe():
    cfg = TrainConfig(arch="resnet8")
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.momentum, cfg.weight_decay) == (240, 64, 0.05, 0.9, 5e-4)
    assert cfg.effective_milestones == (150, 180, 210) and cfg.num_classes == 10
    assert TrainConfig(arch="resnet8", dataset="cifar100").num_classes == 100
    assert {cfg, cfg.replace()} == {cfg}
