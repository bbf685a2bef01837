"""The exact teacher-output cache (kdbounds.distill.teacher_cache).

Oracle: the uncached teacher itself. The cache must return the teacher's own outputs bit for bit
(one thread, CPU), whatever the batch composition, and a training run with the cache must give
the same per-epoch losses and the same final weights as the run without it (so the same losses
and gradients at every step: SGD maps equal gradients to equal weights, any difference in one
step's gradient would show in the weights).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdbounds.distill import TrainConfig, train
from kdbounds.distill.checkpoint import load_checkpoint_model
from kdbounds.distill.controls import make_untrained_teacher
from kdbounds.distill.teacher_cache import CachedTeacher
from kdbounds.models import build_model


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _frozen(arch: str = "resnet8", seed: int = 3) -> torch.nn.Module:
    m = build_model(arch, num_classes=10, seed=seed).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def test_outputs_equal_the_teacher_for_any_batch_composition():
    t = _frozen()
    c = CachedTeacher(t)
    x = torch.randn(24, 3, 32, 32)
    with torch.no_grad():
        ref = t(x, return_features=True)
    first = c(x[:16], return_features=True)  # fills 16 entries
    assert c.misses == 16 and c.hits == 0 and len(c) == 16
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    got = c(x[perm], return_features=True)  # 16 hits, 8 misses, shuffled
    assert c.hits == 16 and c.misses == 24 and len(c) == 24
    assert torch.equal(first.logits, ref.logits[:16])
    assert torch.equal(got.logits, ref.logits[perm])
    assert torch.equal(got.pooled, ref.pooled[perm])
    for a, b in zip(got.stages, ref.stages):
        assert torch.equal(a, b[perm])
    assert torch.equal(c(x[perm]), ref.logits[perm])  # return_features=False: the logits
    # attributes of the wrapped teacher pass through
    assert c.stage_channels == t.stage_channels and c.num_classes == 10


def test_refuses_a_teacher_that_is_not_frozen_or_in_train_mode():
    m = build_model("resnet8", num_classes=10, seed=0).eval()
    with pytest.raises(ValueError, match="frozen"):
        CachedTeacher(m)
    t = _frozen()
    c = CachedTeacher(t)
    with pytest.raises(ValueError, match="train mode"):
        c.train()
    t.train()  # changed behind the wrapper's back: refused at the next call
    with pytest.raises(ValueError, match="eval mode"):
        c(torch.zeros(2, 3, 32, 32))
    with pytest.raises(TypeError, match="teacher"):
        CachedTeacher("resnet8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_items"):
        CachedTeacher(_frozen(), max_items=0)


def test_max_items_bounds_the_store_but_not_the_answers():
    t = _frozen()
    c = CachedTeacher(t, max_items=5)
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        ref = t(x)
    assert torch.equal(c(x), ref) and len(c) == 5
    assert torch.equal(c(x), ref) and c.hits == 5


def _data(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    tx = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    ty = np.arange(n) % 10
    return tx, ty, tx[:20], ty[:20]


@pytest.mark.parametrize("method,kwargs", [("vid_rid", {"lam": 100.0}),
                                           ("rid", {"q": 2, "r": 0.5, "lr_schedule": "config"}),
                                           ("kd", {})])
def test_training_with_the_cache_equals_training_without(tmp_path, method, kwargs):
    teacher = make_untrained_teacher("resnet8", 10, 7, tmp_path / "t.pt")
    cfg = TrainConfig(arch="resnet8", epochs=3, batch_size=16, lr=0.05, nesterov=True, augment=False,
                      device="cpu", method=method, method_kwargs=kwargs, teacher_ckpt=str(teacher),
                      grad_clip=100.0 if method == "vid_rid" else None, seed=1)
    data = _data()
    a = train(cfg, tmp_path / "plain", data=data, progress=False)
    b = train(cfg, tmp_path / "cached", data=data, progress=False, teacher_cache=True)
    def losses(h):
        return {k: v for k, v in h.items() if k.startswith(("train_", "test_")) and not k.endswith("_time_s")}

    assert len(a.history) == len(b.history) == 3 and len(losses(a.history[0])) > 3
    for ha, hb in zip(a.history, b.history):
        assert losses(ha) == losses(hb)
    wa = load_checkpoint_model(a.paths["model"]).state_dict()
    wb = load_checkpoint_model(b.paths["model"]).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_the_trainer_uses_the_cache(tmp_path):
    """Epochs 2.. are answered from the cache: the teacher's forward runs in epoch 1 only."""
    teacher = make_untrained_teacher("resnet8", 10, 7, tmp_path / "t.pt")
    cfg = TrainConfig(arch="resnet8", epochs=3, batch_size=16, augment=False, device="cpu",
                      method="vid_rid", teacher_ckpt=str(teacher))
    seen = []
    train(cfg, tmp_path / "r", data=_data(), progress=False, teacher_cache=True,
          callbacks=[lambda info: seen.append((info.teacher.hits, info.teacher.misses))])
    assert seen == [(0, 40), (40, 40), (80, 40)]
    with pytest.raises(ValueError, match="augment"):
        train(cfg.replace(augment=True), tmp_path / "r2", data=_data(), progress=False, teacher_cache=True)


def test_channels_last_outputs_keep_the_teachers_layout():
    """The trainer runs channels-last on CPU: cached stages must come back channels-last and equal."""
    t = _frozen().to(memory_format=torch.channels_last)
    c = CachedTeacher(t)
    x = torch.randn(12, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = t(x, return_features=True)
    c(x[:5].contiguous(memory_format=torch.channels_last), return_features=True)
    got = c(x, return_features=True)
    for a, b in zip(got.stages, ref.stages):
        assert torch.equal(a, b)
        assert a.is_contiguous(memory_format=torch.channels_last) == b.is_contiguous(memory_format=torch.channels_last)
