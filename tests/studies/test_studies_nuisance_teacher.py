"""Nuisance-teacher study: config validation, the seed summary against the statistics module."""

from __future__ import annotations

import dataclasses
import math
import statistics

import pytest

from kdbounds.studies import nuisance_teacher as nt


def test_presets_validate_and_are_frozen():
    cfg = nt.PRESETS["smoke"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seeds = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="methods"):
        dataclasses.replace(cfg, methods=("kd", "nope"))
    with pytest.raises(ValueError, match="seeds"):
        dataclasses.replace(cfg, seeds=0)
    assert dataclasses.replace(cfg, milestones=()).milestones is None


def test_summarise_matches_statistics_module():
    accs = {("trained", "kd"): [0.5, 0.7, 0.65], ("none", "ce"): [0.4]}
    rows = [{"teacher": t, "method": m, "test_acc": a} for (t, m), v in accs.items() for a in v]
    got = {(s["teacher"], s["method"]): s for s in nt.summarise(rows)}
    kd = got[("trained", "kd")]
    v = accs[("trained", "kd")]
    assert kd["mean_test_acc"] == pytest.approx(statistics.fmean(v))
    assert kd["std"] == pytest.approx(statistics.stdev(v))
    assert kd["se"] == pytest.approx(statistics.stdev(v) / math.sqrt(3)) and kd["n"] == 3
    assert got[("none", "ce")]["std"] == 0.0 and got[("none", "ce")]["n"] == 1


def test_student_recipes():
    cfg = nt.PRESETS["cpu"]
    assert nt.method_kwargs(cfg, "rid")["lr_schedule"] == "config"
    assert nt.method_kwargs(cfg, "vid") == {"lam": 100.0}
    assert nt.grad_clip("vid") == 100.0 and nt.grad_clip("rid") is None
    t = nt.base_config(cfg, cfg.teacher_arch, cfg.teacher_epochs, seed=1000, teacher=True)
    s = nt.base_config(cfg, cfg.student_arch, cfg.epochs, seed=0)
    assert t.milestones is None and t.lr_gamma == 0.1
    assert s.milestones == (8, 11) and s.lr_gamma == 0.2
