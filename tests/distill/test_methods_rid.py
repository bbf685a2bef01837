"""RID: the phase schedule, the learning-rate multipliers, and which parameters each phase moves."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kdbounds.distill import StepContext, TrainConfig, get_method
from kdbounds.distill.rid import (rid_cycle_length, rid_is_warmup, rid_lr_multiplier, rid_phase,
                                  rid_schedule)


# ------------------------------------------------------------------------------- schedule
def test_paper_schedule_q30_r_quarter():
    phases = rid_schedule(300, q=30, r=0.25)
    assert len(phases) == 300
    # epochs 0..7 of every 30-epoch cycle are phase 1 (7 < 7.5 <= 8)
    for e, p in enumerate(phases):
        assert p == (1 if e % 30 <= 7 else 2), e
    assert phases[:10] == [1] * 8 + [2, 2]
    assert phases[30:39] == [1] * 8 + [2]
    assert sum(p == 1 for p in phases) == 80
    # n_rounds=10 is the same schedule
    assert rid_schedule(300, n_rounds=10, r=0.25) == phases
    # warm-up: only the first cycle's phase 1
    assert [e for e in range(300) if rid_is_warmup(e, 300, q=30, r=0.25)] == list(range(8))


def test_small_schedule_by_hand():
    # E = 12, 3 rounds -> q = 4; r = 1/2 -> epochs 0,1 | 4,5 | 8,9 are phase 1
    assert rid_schedule(12, n_rounds=3, r=0.5) == [1, 1, 2, 2] * 3
    assert rid_cycle_length(12, n_rounds=3, r=0.5) == 4
    # E = 10, q = 4: the pattern continues in the incomplete last cycle
    assert rid_schedule(10, q=4, r=0.25) == [1, 2, 2, 2, 1, 2, 2, 2, 1, 2]
    assert rid_phase(9, 10, q=4, r=0.25) == 2
    # float noise: 0.1 * 30 = 3.0000000000000004 still gives 3 phase-1 epochs
    assert rid_schedule(30, q=30, r=0.1) == [1] * 3 + [2] * 27


@settings(max_examples=50, deadline=None)
@given(q=st.integers(2, 40), r=st.floats(0.01, 0.99), cycles=st.integers(1, 5),
       extra=st.integers(0, 39))
def test_schedule_properties(q, r, cycles, extra):
    n1 = math.ceil(r * q - 1e-9)
    if n1 > q - 1:
        with pytest.raises(ValueError, match="no phase-2 epoch"):
            rid_cycle_length(q * cycles + extra, q=q, r=r)
        return
    epochs = q * cycles + extra % q
    phases = rid_schedule(epochs, q=q, r=r)
    for c in range(cycles):
        block = phases[c * q:(c + 1) * q]
        # each full cycle: exactly ceil(r q) phase-1 epochs, all before its phase-2 epochs
        assert block == [1] * n1 + [2] * (q - n1)
    warm = [e for e in range(epochs) if rid_is_warmup(e, epochs, q=q, r=r)]
    assert warm == list(range(n1))


def test_lr_multipliers_as_in_the_paper():
    lr = 0.05
    rates = {e: lr * rid_lr_multiplier(e, 300) for e in (0, 149, 150, 199, 200, 299)}
    assert rates[0] == rates[149] == pytest.approx(0.05)
    assert rates[150] == rates[199] == pytest.approx(0.01)
    assert rates[200] == rates[299] == pytest.approx(0.002)
    # scaled to a 30-epoch run: milestones at 15 and 20
    assert [rid_lr_multiplier(e, 30) for e in (14, 15, 19, 20)] == pytest.approx(
        [1.0, 0.2, 0.2, 0.04])


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_rid_schedulers_are_multipliers_and_are_stepped(tiny_net):
    s, t = tiny_net((2, 3), seed=0), tiny_net((4, 5), seed=1).eval()
    m = get_method("rid")(s, t, 4, q=30, image_size=8)
    cfg = TrainConfig(arch="resnet8", epochs=300, lr=0.05, device="cpu")
    opts = m.configure_optimizers(s, cfg)
    scheds = m.configure_schedulers(opts, cfg)
    assert len(opts) == len(scheds) == 2
    for o in opts:
        g = o.param_groups[0]
        assert g["nesterov"] and g["momentum"] == 0.9 and g["weight_decay"] == 5e-4
    seen = {}
    for e in range(300):
        seen[e] = [o.param_groups[0]["lr"] for o in opts]
        for sch in scheds:
            sch.step()
    for e, want in ((0, 0.05), (149, 0.05), (150, 0.01), (200, 0.002), (299, 0.002)):
        assert seen[e] == pytest.approx([want, want]), e


# ------------------------------------------------------------------------------- parameter deltas
def _snapshot(mod: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in mod.state_dict().items()}


def _changed(before, mod, params_only=True) -> dict[str, bool]:
    names = {n for n, _ in mod.named_parameters()} if params_only else set(before)
    now = mod.state_dict()
    return {k: not torch.equal(before[k], now[k]) for k in before if k in names}


def _setup(tiny_net, epochs=8, q=4, r=0.25):
    torch.manual_seed(0)
    s, t = tiny_net((2, 3), seed=0), tiny_net((4, 5), seed=1).eval()
    m = get_method("rid")(s, t, 4, q=q, r=r, image_size=8)
    cfg = TrainConfig(arch="resnet8", epochs=epochs, lr=0.05, device="cpu")
    opts = m.configure_optimizers(s, cfg)
    m.train()
    ctx = StepContext(device=torch.device("cpu"), cfg=cfg)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 8, 8, generator=g)
    y = torch.randint(0, 4, (6,), generator=g)
    return s, t, m, opts, ctx, x, y


@pytest.mark.parametrize("epoch", [0, 4])  # warm-up and a later phase 1
def test_phase1_moves_only_teacher_filters_and_heads(tiny_net, epoch):
    s, t, m, opts, ctx, x, y = _setup(tiny_net)
    assert m.phase(epoch) == 1 and m.is_warmup(epoch) == (epoch == 0)
    s0, t0 = _snapshot(s), _snapshot(t)
    parts = {n: _snapshot(getattr(m, n)) for n in
             ("teacher_filters", "heads", "student_filters", "sigma_params")}
    out = m.training_step(x, y, s, t, opts, epoch, ctx)
    assert out["phase"] == 1.0 and math.isfinite(float(out["loss"]))
    assert all(_changed(parts["teacher_filters"], m.teacher_filters).values())
    assert all(_changed(parts["heads"], m.heads).values())
    # nothing else moves, buffers (BN running stats) included
    assert not any(_changed(s0, s, params_only=False).values())
    assert not any(_changed(t0, t, params_only=False).values())
    assert not any(_changed(parts["student_filters"], m.student_filters, False).values())
    assert not any(_changed(parts["sigma_params"], m.sigma_params, False).values())
    assert s.training and m.student_filters.training  # modes restored


def test_phase1_v_term_only_after_warmup(tiny_net):
    s, t, m, opts, ctx, x, y = _setup(tiny_net)
    warm = m.training_step(x, y, s, t, opts, 0, ctx)
    later = m.training_step(x, y, s, t, opts, 4, ctx)
    assert float(warm["v_term"]) == 0.0 and float(later["v_term"]) > 0.0


def test_phase2_moves_only_student_its_filters_and_sigma(tiny_net):
    s, t, m, opts, ctx, x, y = _setup(tiny_net)
    epoch = 1
    assert m.phase(epoch) == 2
    s0, t0 = _snapshot(s), _snapshot(t)
    parts = {n: _snapshot(getattr(m, n)) for n in
             ("teacher_filters", "heads", "student_filters", "sigma_params")}
    out = m.training_step(x, y, s, t, opts, epoch, ctx)
    assert out["phase"] == 2.0
    assert all(_changed(s0, s).values())
    assert all(_changed(parts["student_filters"], m.student_filters).values())
    assert all(_changed(parts["sigma_params"], m.sigma_params).values())
    assert not any(_changed(parts["teacher_filters"], m.teacher_filters, False).values())
    assert not any(_changed(parts["heads"], m.heads, False).values())
    assert not any(_changed(t0, t, params_only=False).values())


def test_gradient_clip_bounds_the_step(tiny_net):
    # with grad_clip tiny, the phase-2 update of all parameters together is tiny
    torch.manual_seed(0)
    s, t = tiny_net((2, 3), seed=0), tiny_net((4, 5), seed=1).eval()
    m = get_method("rid")(s, t, 4, q=4, image_size=8, grad_clip=1e-6)
    cfg = TrainConfig(arch="resnet8", epochs=8, lr=0.05, momentum=0.0, weight_decay=0.0,
                      device="cpu")
    opts = m.configure_optimizers(s, cfg)
    ctx = StepContext(device=torch.device("cpu"), cfg=cfg)
    before = [p.detach().clone() for p in m.phase2_parameters(s)]
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    m.training_step(x, y, s, t, opts, 1, ctx)
    sq = sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(m.phase2_parameters(s), before))
    assert math.sqrt(sq) <= 0.05 * 1e-6 * 1.01


def test_frozen_student_uses_batch_statistics_and_keeps_its_buffers(tiny_net):
    """Phase 1 reads the frozen student in train mode (batch statistics, as the official code):
    garbage BN running statistics neither change the phase-1 loss nor get overwritten."""
    s, t, m, opts, ctx, x, y = _setup(tiny_net)
    m.training_step(x, y, s, t, opts, 1, ctx)  # one phase-2 step so the student filters learn
    state = {k: v.clone() for k, v in m.state_dict().items()}
    sd = {k: v.clone() for k, v in s.state_dict().items()}
    clean = m.training_step(x, y, s, t, opts, 4, ctx)
    m.load_state_dict(state)
    s.load_state_dict(sd)
    opts = m.configure_optimizers(s, ctx.cfg)
    with torch.no_grad():
        for mod in list(s.modules()) + list(m.student_filters.modules()):
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.fill_(100.0)
                mod.running_var.fill_(1e-4)
    garbage = {k: v.clone() for k, v in s.state_dict().items()}
    dirty = m.training_step(x, y, s, t, opts, 4, ctx)
    assert float(dirty["v_term"]) == pytest.approx(float(clean["v_term"]), rel=1e-5)
    assert all(torch.equal(garbage[k], v) for k, v in s.state_dict().items())
