"""Nuisance-teacher study: config validation, the seed summary against the statistics module, the study
on the sweep runner (oracles: the local executor for Ray, trainings counted by a wrapper around the
trainer, run ids of the pre-port arrays drawn by hand)."""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import pytest

from kdbounds.distill import TrainConfig
from kdbounds.runs import cache as cache_mod
from kdbounds.studies import nuisance_teacher as nt
from study_helpers import CountingTrain, needs_ray




pytestmark = pytest.mark.usefixtures("private_data_cache")



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
    assert s.milestones == (6, 8) and s.lr_gamma == 0.2


# ----------------------------------------------------------------------------- issue 15: the paper's recipe

def test_default_vid_is_the_rid_papers_variant():
    for cfg in nt.PRESETS.values():
        assert cfg.methods == ("ce", "vid_rid", "rid") and not cfg.augment
    cfg = nt.PRESETS["cpu"]
    assert nt.method_kwargs(cfg, "vid_rid") == {"lam": 100.0}
    assert nt.grad_clip("vid_rid") == 100.0 and nt.grad_clip("ce") is None
    for teacher in (True, False):  # no augmentation for anyone, as in the official run
        arch = cfg.teacher_arch if teacher else cfg.student_arch
        assert nt.base_config(cfg, arch, 3, seed=0, teacher=teacher).augment is False


def test_gpu_preset_has_every_stated_setting():
    p = nt.PRESETS["gpu"]
    assert (p.teacher_arch, p.student_arch, p.n_per_class, p.test_per_class) == ("wrn_40_2", "wrn_16_1", None, None)
    assert (p.epochs, p.batch_size, p.lr, p.milestones, p.lr_gamma, p.nesterov) == (300, 128, 0.05, (150, 200), 0.2, True)
    assert (p.rid_q, p.rid_r, p.lam2, p.vid_lam, p.augment) == (30, 0.25, 10.0, 100.0, False)
    s = nt.base_config(p, p.student_arch, p.epochs, seed=0)
    assert (s.momentum, s.weight_decay) == (0.9, 5e-4)


def test_cpu_preset_is_the_paper_recipe_scaled():
    """Same architectures, optimiser, weights and clip; milestones at the paper's fractions of the
    epochs; r*q a whole number of epochs so that r = 1/4 holds exactly."""
    c, p = nt.PRESETS["cpu"], nt.PRESETS["gpu"]
    same = ("teacher_arch", "student_arch", "lr", "lr_gamma", "nesterov", "rid_r", "lam2", "vid_lam",
            "augment", "schedule", "methods")
    assert {k: getattr(c, k) for k in same} == {k: getattr(p, k) for k in same}
    assert [m / c.epochs for m in c.milestones] == pytest.approx([m / p.epochs for m in p.milestones], abs=0.01)
    assert (c.rid_q * c.rid_r).is_integer() and c.seeds >= 3 and c.teacher_cache


def test_config_rejects_bad_values():
    cfg = nt.PRESETS["smoke"]
    with pytest.raises(ValueError, match="teacher_cache"):
        dataclasses.replace(cfg, augment=True)  # smoke has the cache on
    assert dataclasses.replace(cfg, augment=True, teacher_cache=False).augment
    with pytest.raises(ValueError, match="seed"):
        dataclasses.replace(cfg, seed=-1)
    with pytest.raises(ValueError, match="rid_q"):
        dataclasses.replace(cfg, rid_q=0)
    with pytest.raises(ValueError, match="rid_r"):
        dataclasses.replace(cfg, rid_r=1.0)


def test_jobs_go_seed_by_seed_and_honour_the_first_seed():
    """A run stopped early has whole replicates: every (method, teacher) of seed s before any job of seed s + 1."""
    cfg = dataclasses.replace(nt.PRESETS["cpu"], seed=5, seeds=2)
    jobs = nt._jobs(cfg)
    seeds = [s for s, _, _ in jobs]
    assert seeds == sorted(seeds) == [5] * 5 + [6] * 5
    assert {(m, k) for s, m, k in jobs if s == 5} == {(m, k) for s, m, k in jobs if s == 6}
    assert {k for _, _, k in jobs} == {"none", "untrained", "trained"} and len(set(jobs)) == 2 * 5
    assert ("ce" in {m for _, m, k in jobs if k == "none"}) and all(m != "ce" for _, m, k in jobs if k != "none")


def test_claim_tests_against_scipy():
    """Oracle: scipy's Welch t and Mann-Whitney U in the claimed direction; paired differences by hand."""
    from scipy import stats as st

    acc = {("none", "ce"): [0.50, 0.52, 0.47], ("untrained", "vid_rid"): [0.30, 0.45, 0.28],
           ("trained", "vid_rid"): [0.55, 0.51, 0.49], ("untrained", "rid"): [0.44, 0.47, 0.40],
           ("trained", "rid"): [0.56, 0.57, 0.50]}
    rows = [{"teacher": t, "method": m, "seed": s, "test_acc": a} for (t, m), v in acc.items() for s, a in enumerate(v)]
    got = {c["claim"]: c for c in nt.claim_tests(rows)}
    assert list(got) == [c[0] for c in nt.CLAIMS]
    for name, ga, gb, alt in nt.CLAIMS:
        c = got[name]
        a, b = acc[ga], acc[gb]
        assert c["welch_p"] == pytest.approx(st.ttest_ind(a, b, equal_var=False, alternative=alt).pvalue)
        assert c["mwu_p"] == pytest.approx(st.mannwhitneyu(a, b, alternative=alt).pvalue)
        assert c["paired_diffs"] == pytest.approx({s: x - y for s, (x, y) in enumerate(zip(a, b))})
        sign = 1 if alt == "greater" else -1
        assert c["all_seeds_agree"] == all(sign * (x - y) > 0 for x, y in zip(a, b))
        assert c["welch_p"] <= c["welch_p_holm"] <= 1.0
    assert not got["VID-tt above BAS"]["all_seeds_agree"] and got["VID-ut below BAS"]["all_seeds_agree"]
    assert nt.claim_tests(rows[:1]) == []  # one seed: nothing to test


def test_smoke_study_end_to_end_with_vid_rid(tmp_path, fake_root, monkeypatch):
    """The study on a tiny fake CIFAR-10 (random images): both teachers, BAS, VID (kd-rid variant)
    and RID for 2 seeds, through the cache; files, rows, summary and claims are written. The run ids
    are those of the arrays the study trained on before the sweep runner (oracle: the test subset
    drawn here with ``stratified_subset``); a second run trains nothing (the trainer counted)."""
    import json

    from kdbounds.data import load_cifar, stratified_subset

    cfg = dataclasses.replace(nt.PRESETS["smoke"], n_per_class=4, seeds=2, seed=3, test_per_class=5,
                              data_root=str(fake_root))
    res = nt.run(cfg, tmp_path / "out", cache_root=tmp_path / "cache", progress=False, log=lambda s: None)
    kinds = sorted({(r["teacher"], r["method"], r["seed"]) for r in res.rows})
    assert kinds == sorted((t, m, s) for s in (3, 4) for t, m in
                           [("none", "ce"), ("untrained", "vid_rid"), ("trained", "vid_rid"),
                            ("untrained", "rid"), ("trained", "rid")])
    for f in ("results.csv", "summary.csv", "results.json", "claims.json", "accuracy.png"):
        assert (tmp_path / "out" / f).is_file(), f
    claims = json.loads((tmp_path / "out" / "claims.json").read_text())
    assert [c["claim"] for c in claims] == [c[0] for c in nt.CLAIMS]
    vid_runs = [r for r in res.rows if r["method"] == "vid_rid"]
    cfg_json = json.loads((Path(vid_runs[0]["run_dir"]) / "config.json").read_text())
    assert cfg_json["method"] == "vid_rid" and cfg_json["grad_clip"] == 100.0 and cfg_json["augment"] is False
    assert {s["teacher"] for s in res.summary} == {"none", "trained", "untrained"}
    assert res.teacher_test_acc["trained"] is not None
    text = nt.summary(res)
    assert "| untrained | vid_rid |" in text and "0.398" in text and "VID-ut below BAS" in text
    # the run cache ids of the arrays used before the port: 5 test images per class, drawn by hand
    tx, ty = load_cifar("cifar10", root=str(fake_root), split="train")
    vx, vy = load_cifar("cifar10", root=str(fake_root), split="test")
    idx = stratified_subset(vy, 5, seed=0)
    old = (tx, ty, vx[idx], vy[idx])
    for r in res.rows:
        c = TrainConfig.from_dict(json.loads((Path(r["run_dir"]) / "config.json").read_text()))
        assert cache_mod.run_dir(c, tmp_path / "cache", data=old) == Path(r["run_dir"]), r
    # a second run reuses every model: nothing trained, same accuracies, same run folders
    counting = CountingTrain(cache_mod.train)
    monkeypatch.setattr(cache_mod, "train", counting)
    again = nt.run(cfg, tmp_path / "out2", cache_root=tmp_path / "cache", progress=False, log=lambda s: None)
    assert counting.calls == []
    assert [(r["run_dir"], r["test_acc"]) for r in again.rows] == [(r["run_dir"], r["test_acc"]) for r in res.rows]


def test_training_specs_the_grid_and_its_dependencies(tmp_path):
    cfg = dataclasses.replace(nt.PRESETS["smoke"], seeds=2, seed=3)
    specs = nt.training_specs(cfg, tmp_path)
    keys = [s.key for s in specs]
    assert len(keys) == len(set(keys)) == 1 + 2 * 5
    assert keys[0] == "teacher"  # first: it starts at once, its students wait for it
    assert [k.rsplit("seed", 1)[1] for k in keys[1:]] == ["3"] * 5 + ["4"] * 5  # seed by seed
    untrained = str(nt.untrained_teacher_path(cfg, tmp_path))
    for s in specs:
        c = s.kwargs["config"]
        if s.key == "teacher":
            assert s.deps == () and c["method"] == "ce" and c["seed"] == 1000
            continue
        method, kind, seed = s.key.split("-")
        assert (c["method"], c["seed"]) == (method, int(seed[4:]))
        assert s.deps == (("teacher",) if kind == "trained" else ())
        assert c["teacher_ckpt"] == (untrained if kind == "untrained" else None)
        assert s.kwargs.get("teacher_cache", False) == (method != "ce")  # smoke: the cache is on
        assert s.kwargs["data"] == nt.data_spec(cfg) and s.kwargs["data"].n_test == 10 * cfg.test_per_class


def numbers(res: nt.Result) -> dict:
    """Every number of a result and of each run's own record (final losses to the last bit), with each
    run folder reduced to its name (the run id), except the wall times. The students of the trained
    teacher have no comparable run id across caches: it hashes the teacher's model file, which
    records the teacher's wall times."""
    import json

    rows = []
    for r in res.rows:
        rec = json.loads((Path(r["run_dir"]) / "result.json").read_text())
        rows.append({**{k: v for k, v in r.items() if k not in ("run_dir", "train_wall_s")},
                     "run_id": Path(r["run_dir"]).name if r["teacher"] != "trained" else None,
                     "final": {k: v for k, v in rec["final"].items() if not k.endswith("time_s")}})
    return {"rows": rows, "summary": res.summary, "teacher_test_acc": res.teacher_test_acc}


@needs_ray
@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_smoke_on_ray_equals_local_and_fills_the_same_cache(tmp_path, fake_root, ray_cluster, monkeypatch):
    """The smoke preset through Ray (2 workers, 1 thread) and locally (1 thread), each in its own
    cache: the same numbers (every row, every run's final losses, the same run ids). The local
    study on the Ray cache then trains nothing (the trainer counted in this process)."""
    cfg = dataclasses.replace(nt.PRESETS["smoke"], data_root=str(fake_root))
    local = nt.run(cfg, tmp_path / "l" / "out", cache_root=tmp_path / "l" / "cache", progress=False,
                   log=lambda s: None, sweep={"executor": "local", "threads": 1})
    remote = nt.run(cfg, tmp_path / "r" / "out", cache_root=tmp_path / "r" / "cache", progress=False,
                    log=lambda s: None, sweep={"executor": "ray", "workers": 2, "threads": 1})
    assert numbers(remote) == numbers(local)
    teacher = nt._teacher_config(cfg)
    for side in ("l", "r"):  # the trained teacher has the same run id in both caches
        assert cache_mod.run_dir(teacher, tmp_path / side / "cache", data=nt.load_data(cfg)).is_dir()
    assert len([p for p in (tmp_path / "r" / "cache").iterdir() if p.is_dir() and p.name != "teachers"]) == 6
    counting = CountingTrain(cache_mod.train)
    monkeypatch.setattr(cache_mod, "train", counting)
    again = nt.run(cfg, tmp_path / "again", cache_root=tmp_path / "r" / "cache", progress=False, log=lambda s: None)
    assert counting.calls == [] and numbers(again) == numbers(remote)


def test_claims_table_cuts_welch_intervals_at_the_range_of_an_accuracy_difference():
    # two seeds per group, spread over [0, 1]: Welch's t has ~1 degree of freedom and its interval
    # passes ±1 (oracle: compare_groups itself); the table shows it cut, marked, with a footnote
    import numpy as np

    from kdbounds.stats import compare_groups

    acc = {("none", "ce"): (0.05, 0.95), ("untrained", "vid_rid"): (0.5, 0.45), ("trained", "vid_rid"): (0.5, 0.52),
           ("untrained", "rid"): (0.3, 0.31), ("trained", "rid"): (0.6, 0.61)}
    rows = tuple({"teacher": t, "method": m, "seed": s, "test_acc": a}
                 for (t, m), accs in acc.items() for s, a in enumerate(accs))
    raw = compare_groups(acc[("untrained", "vid_rid")], acc[("none", "ce")])
    assert raw.diff_ci_low < -1.0 and raw.diff_ci_high > 1.0  # the uncut interval does pass ±1
    summary = tuple({"teacher": t, "method": m, "mean_test_acc": float(np.mean(a)), "std": float(np.std(a, ddof=1)),
                     "n": 2} for (t, m), a in acc.items())
    res = nt.Result(config={}, rows=rows, summary=summary, teacher_test_acc={"trained": None, "untrained": None})
    text = nt.summary(res)
    line = next(ln for ln in text.splitlines() if ln.startswith("| VID-ut below BAS"))
    assert "[-1.000†, +1.000†]" in line, line
    assert "† Welch's interval reaches past ±1" in text
    assert next(c for c in nt.claim_tests(rows) if c["claim"] == "VID-ut below BAS")["diff_ci_low"] < -1.0
    narrow = next(ln for ln in text.splitlines() if ln.startswith("| RID-ut above VID-ut"))
    assert "†" not in narrow.split("|")[3], narrow
