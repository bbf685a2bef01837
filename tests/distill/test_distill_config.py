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
