"""certify_students on the sweep runner (issues 12 and 14), on a fake CIFAR-10 (random images).

Oracles: the local executor for the Ray executor (identical certificates at equal threads); the
number of trainings counted by a wrapper around the run cache's trainer (independent of the runner);
the split's arrays rebuilt by hand from ``load_cifar`` + ``stratified_subset`` + ``make_split``;
the random prior's initialisation (``build_model(seed=1000 + s)``) for "the RID student trained".
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fake_cifar import write_fake_cifar10
from kdbounds.runs import cache as cache_mod
from kdbounds.runs.splits import SplitSpec, split_data
from kdbounds.studies import certify_students as cs
from study_helpers import CountingTrain, needs_ray
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ("prior", "student", "loss", "risk_upper", "divergence", "n_s", "test_gibbs_risk", "vacuous",
            "mean_term", "variance_term", "seed", "sigma_prior", "sigma_posterior", "student_test_acc")


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    return write_fake_cifar10(tmp_path_factory.mktemp("fakecifar"), per_class_train=100, per_class_test=20)


@pytest.fixture(autouse=True)
def _private_split_cache(private_data_cache):
    split_data.cache_clear()
    yield
    split_data.cache_clear()


def smoke(fake_root: Path, **kw) -> cs.Config:
    return dataclasses.replace(cs.PRESETS["smoke"], data_root=str(fake_root), **kw)


def small(fake_root: Path) -> cs.Config:
    """Fewer runs than the smoke preset, every kind of run present (teacher prior, RID, pbb)."""
    return smoke(fake_root, priors=("random", "teacher"), students=("ce", "rid", "pbb"))


def numbers(result: cs.Result) -> list[dict]:
    """Every certificate row without the run folder names (which contain the cache's run ids)."""
    return [{k: v for k, v in r.items() if k != "certificate"} for r in result.certificates]



def test_split_data_rebuilds_the_arrays_once_per_process(fake_root, monkeypatch):
    from kdbounds import data as data_mod
    from kdbounds.certificates.split import make_split
    from kdbounds.data import load_cifar, stratified_subset

    spec = SplitSpec(n_s=300, n_t=400, test_n=100, split_seed=3, data_root=str(fake_root), test_seed=4)
    xtr, ytr = load_cifar("cifar10", root=str(fake_root), split="train")
    xte, yte = load_cifar("cifar10", root=str(fake_root), split="test")
    j = stratified_subset(yte, 10, seed=4)
    sp = make_split(ytr, 300, n_t=400, seed=3)
    calls = []
    real = data_mod.load_cifar
    monkeypatch.setattr(data_mod, "load_cifar", lambda *a, **k: calls.append(k["split"]) or real(*a, **k))
    d = split_data(spec)
    assert split_data(SplitSpec(300, 400, 100, 3, str(fake_root), 4)) is d  # equal description: no reload
    assert calls == ["train", "test"]
    for got, want in zip(d.data_t, (xtr[sp.teacher], ytr[sp.teacher], xte[j], yte[j])):
        assert np.array_equal(got, want)
    for got, want in zip(d.data_u, (xtr[sp.union], ytr[sp.union], xte[j], yte[j])):
        assert np.array_equal(got, want)
    assert np.array_equal(d.x_s, xtr[sp.cert]) and np.array_equal(d.y_s, ytr[sp.cert])
    assert d.split.to_dict() == sp.to_dict()


def test_sweep_graph_orders_teachers_priors_students_posteriors_and_certificates(tmp_path, fake_root):
    specs = {s.key: s for s in cs.sweep_specs(smoke(fake_root, seeds=(0, 1)), tmp_path)}
    assert len(specs) == 2 * (2 + 2 + 3 + 2 * 4 + 4)
    assert specs["seed1/student-rid"].deps == ("seed1/teacher-big",)
    assert specs["seed0/pbb-teacher"].deps == ("seed0/teacher-same",)
    assert specs["seed0/pbkd-distilled"].deps == ("seed0/teacher-big", "seed0/prior-distilled")
    assert specs["seed0/pbb-random"].deps == ()
    assert set(specs["seed0/certify-learnt"].deps) == {
        "seed0/prior-learnt", "seed0/student-ce", "seed0/student-kd", "seed0/student-rid", "seed0/pbb-learnt",
        "seed0/pbkd-learnt"}
    rid = cs.student_config(smoke(fake_root), "rid", 0)
    assert (rid.method, rid.epochs, rid.init_seed, rid.nesterov) == ("rid", 2, 1000, True)
    assert dict(rid.method_kwargs) == {"q": 2, "r": 0.5, "layers": -1, "teacher_layers": -1, "spatial_pool": True}


@pytest.mark.parametrize("preset", ["smoke", "cpu", "gpu"])
def test_rid_pairs_the_students_and_teachers_layers_of_every_preset(preset):
    """RID builds for each preset's pair (the gpu preset's teacher is a ResNet-20 with 8 × 8 maps), and
    RID's default pairing would not (the MLP student has fewer stages than the teacher)."""
    from kdbounds.distill.rid import RID
    from kdbounds.models import build_model

    cfg = cs.PRESETS[preset]
    student, teacher = build_model(cfg.student_arch, seed=0), build_model(cfg.teacher_arch, seed=1).eval()
    rid = RID(student, teacher, 10, **dict(cs.student_config(cfg, "rid", 0).method_kwargs))
    assert rid.pairs == ((len(student.stage_channels) - 1, len(teacher.stage_channels) - 1),)
    if len(student.stage_channels) != len(teacher.stage_channels):
        with pytest.raises(ValueError, match="cannot pair them automatically"):
            RID(student, teacher, 10, q=2)


def test_rid_epochs_that_leave_rid_no_student_epoch_are_refused():
    with pytest.raises(ValueError, match="rid_epochs/rid_q/rid_r: .*rid_epochs ≥ 2"):
        cs.Config(student_epochs=1)
    cs.Config(student_epochs=1, students=("ce", "kd", "pbb", "pbkd"))  # no RID: fine


def test_rid_student_row_and_a_second_run_that_trains_nothing(tmp_path, fake_root, monkeypatch):
    from kdbounds.distill import load_checkpoint_model
    from kdbounds.models import build_model

    cfg = small(fake_root)
    counting = CountingTrain(cache_mod.train)
    monkeypatch.setattr(cache_mod, "train", counting)
    first = cs.run(cfg, tmp_path / "a", cache_root=tmp_path / "cache", progress=False, log=lambda s: None)
    # teacher-same, teacher-big, ce, rid, pbb-random, pbb-teacher
    assert len(counting.calls) == 6 and len(set(counting.calls)) == 6
    rows = [r for r in first.certificates if r["student"] == "rid"]
    assert [r["prior"] for r in rows] == ["random", "teacher"]
    for r in rows:
        for k in REQUIRED:
            assert r[k] is not None, k
        assert r["n_grid"] == cfg.n_scales and r["n_s"] == cfg.n_s
        assert cfg.scale_low <= r["sigma_prior"] <= cfg.scale_high and r["sigma_posterior"] in cfg.posterior_scales
    rec = next(s for s in first.students if s["student"] == "rid")
    assert rec["config"]["method"] == "rid" and rec["config"]["init_seed"] == 1000
    run_dir = tmp_path / "cache" / rows[0]["student_run"]
    state = load_checkpoint_model(run_dir / "model.pt").state_dict()
    init = build_model(cfg.student_arch, seed=1000).state_dict()
    assert any(not torch.equal(state[k], init[k]) for k in init)  # phase 2 moved the student

    counting.calls.clear()
    second = cs.run(cfg, tmp_path / "b", cache_root=tmp_path / "cache", progress=False, log=lambda s: None)
    assert counting.calls == []
    assert numbers(second) == numbers(first)
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert {r["student"] for r in res["certificates"]} == {"ce", "rid", "pbb"}


def test_cli_merge_keeps_working(tmp_path):
    cli = load_file("experiments/certify_students.py")
    from kdbounds._io import atomic_write_json

    cfg = cs.PRESETS["smoke"].to_dict()
    for seed in (0, 1):
        rows = [{"seed": seed, "prior": "learnt", "student": "pbb", "loss": "zero_one", "risk_upper": 0.6 + seed / 10,
                 "test_gibbs_risk": 0.5, "gap": 0.1, "n_s": 500, "mean_term": 1.0, "variance_term": 0.5}]
        atomic_write_json(tmp_path / str(seed) / "results.json",
                          {"config": {**cfg, "seeds": [seed]}, "certificates": rows, "priors": [], "students": [],
                           "split": {}, "summary": {}, "seconds": 1.0, "environment": {}})
    assert cli.main(["--merge", str(tmp_path / "0"), str(tmp_path / "1"), "--out", str(tmp_path / "m")]) == 0
    merged = json.loads((tmp_path / "m" / "results.json").read_text())
    assert merged["config"]["seeds"] == [0, 1] and len(merged["certificates"]) == 2


def test_cli_sets_the_kd_weight_of_certified_distillation_and_merge_refuses_mixed_weights(tmp_path, capsys):
    """``--pbkd-alpha`` (the KD weight of the ``pbkd`` posteriors) reaches the config; a negative weight is refused by
    name; runs with different weights do not merge into one table."""
    from kdbounds._io import atomic_write_json
    from kdbounds.studies import _cli

    cli = load_file("experiments/certify_students.py")
    a = cli.parse_args(["--preset", "scale", "--pbkd-alpha", "0.01", "--seeds", "3", "--split-seed", "3"])
    cfg = _cli.config_from_args(cs.PRESETS, a, tuple(cli.OVERRIDES), seeds=(3,))
    assert (cfg.pbkd_alpha, cfg.seeds, cfg.split_seed) == (0.01, (3,), 3)
    assert cfg.students == cs.PRESETS["scale"].students
    with pytest.raises(SystemExit):
        cli.parse_args(["--preset", "scale", "--pbkd-alpha", "-1"])
    assert "--pbkd-alpha" in capsys.readouterr().err
    base = cs.PRESETS["smoke"].to_dict()
    for seed, alpha in ((0, 0.1), (1, 0.01)):
        atomic_write_json(tmp_path / str(seed) / "results.json",
                          {"config": {**base, "seeds": [seed], "pbkd_alpha": alpha}, "certificates": [], "priors": [],
                           "students": [], "split": {}, "summary": {}, "seconds": 1.0, "environment": {}})
    with pytest.raises(ValueError, match="pbkd_alpha"):
        cs.merge_results([tmp_path / "0", tmp_path / "1"], tmp_path / "m")


@needs_ray
@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_certify_students_smoke_on_ray_equals_local_and_reruns_train_nothing(tmp_path, fake_root, ray_cluster,
                                                                           monkeypatch):
    """The smoke preset (19 runs: trainings and per-prior certifications) through Ray with 2 workers and
    locally, each on its own cache: identical certificates; then the Ray cache run again locally trains
    nothing and gives the same certificates."""
    cfg = smoke(fake_root)
    local = cs.run(cfg, tmp_path / "l" / "out", cache_root=tmp_path / "l" / "cache", progress=False,
                   log=lambda s: None, sweep={"executor": "local", "threads": 1})
    remote = cs.run(cfg, tmp_path / "r" / "out", cache_root=tmp_path / "r" / "cache", progress=False,
                    log=lambda s: None, sweep={"executor": "ray", "workers": 2, "threads": 1})
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("student_run", "certificate")} for r in rows]  # noqa: E731
    assert len(local.certificates) == 4 * 5 * len(cfg.losses)
    assert strip(remote.certificates) == strip(local.certificates)
    assert [r["certificate"]["risk_upper"] for r in remote.certificates] == \
        [r["certificate"]["risk_upper"] for r in local.certificates]
    counting = CountingTrain(cache_mod.train)
    monkeypatch.setattr(cache_mod, "train", counting)
    again = cs.run(cfg, tmp_path / "r" / "out2", cache_root=tmp_path / "r" / "cache", progress=False,
                   log=lambda s: None)
    assert counting.calls == []
    assert strip(again.certificates) == strip(remote.certificates)


def test_a_last_batch_of_one_image_is_refused_before_training_rid(tmp_path, fake_root, monkeypatch):
    counting = CountingTrain(cache_mod.train)
    monkeypatch.setattr(cache_mod, "train", counting)
    cfg = smoke(fake_root, n_s=500, n_t=497, batch_size=996)  # 997 images = 996 + 1
    with pytest.raises(ValueError, match="batch_size: 997 training images leave a last batch of 1 image"):
        cs.run(cfg, tmp_path / "o", cache_root=tmp_path / "c", progress=False, log=lambda s: None)
    assert counting.calls == []


def test_data_path_certificates_on_ds_priors_and_teachers_on_dt(tmp_path, fake_root):
    """Issue 28 F1: every certificate was computed on D_S (its SHA-256 of (x, y) equals D_S's, rebuilt here from
    ``load_cifar`` + ``make_split`` and normalised as the networks see it); every prior and teacher run ((b) learnt,
    (c) the same-architecture teacher, (d) distilled, and the big teacher) was trained on D_T, every student and
    learnt posterior on D_T ∪ D_S (the run cache's data fingerprint). Each row is one certificate reported on its
    own, at confidence 1 − δ − δ' (F2). Certifying on D_T instead of D_S fails here."""
    from kdbounds._io import arrays_sha256, read_json
    from kdbounds.certificates.split import make_split
    from kdbounds.data import load_cifar, stratified_subset
    from kdbounds.data.transforms import normalization, normalize_uint8
    from kdbounds.runs.cache import data_fingerprint
    from kdbounds.runs.sweep import run_sweep

    cfg = smoke(fake_root, students=("pbb",))
    done = run_sweep(cs.sweep_specs(cfg, tmp_path / "cache"), progress=False)
    xtr, ytr = load_cifar("cifar10", root=str(fake_root), split="train")
    xte, yte = load_cifar("cifar10", root=str(fake_root), split="test")
    j = stratified_subset(yte, cfg.test_n // 10, seed=cfg.split_seed + 1)
    sp = make_split(ytr, cfg.n_s, n_t=cfg.n_t, seed=cfg.split_seed)
    d_t = data_fingerprint((xtr[sp.teacher], ytr[sp.teacher], xte[j], yte[j]))
    d_u = data_fingerprint((xtr[sp.union], ytr[sp.union], xte[j], yte[j]))
    mean, std = normalization("cifar10")
    x_s = normalize_uint8(torch.from_numpy(np.ascontiguousarray(xtr[sp.cert])).permute(0, 3, 1, 2), mean, std)
    d_s = arrays_sha256((x_s, torch.from_numpy(np.asarray(ytr[sp.cert]))))

    def fingerprint(key: str) -> str:
        return read_json(Path(done[key].paths["out_dir"]) / "run.json")["key"]["data"]

    on_t = ["seed0/teacher-same", "seed0/teacher-big", "seed0/prior-learnt", "seed0/prior-distilled"]
    on_u = [f"seed0/pbb-{k}" for k in cfg.priors]
    assert all(fingerprint(k) == d_t for k in on_t), {k: fingerprint(k) == d_t for k in on_t}
    assert all(fingerprint(k) == d_u for k in on_u), {k: fingerprint(k) == d_u for k in on_u}
    rows = [r for k in cfg.priors for r in done[f"seed0/certify-{k}"]["rows"]]
    assert len(rows) == len(cfg.priors)
    for r in rows:
        c = r["certificate"]
        assert c["data_sha256"] == d_s, (r["prior"], r["student"])
        assert c["n_grid_mc"] == 1 and r["confidence"] == pytest.approx(1 - cfg.delta - cfg.delta_mc)
        assert r["n_grid"] == 1  # a fixed pbb_sigma_prior, never changed on this D_S


def smoke_scale(fake_root: Path, bank: Path, **kw) -> cs.Config:
    return dataclasses.replace(cs.PRESETS["smoke-scale"], data_root=str(fake_root), bank_root=str(bank), **kw)


def test_scale_shape_data_path_bank_teacher_on_dt_and_the_priors_heldout_bounds(tmp_path, fake_root):
    """The scale preset's shape (fast recipe, a bank teacher, posteriors on the teacher's own architecture with the
    teacher as prior (c)) on a fake CIFAR-10: the bank teacher lands in the bank root and was trained on D_T (the
    run cache's data fingerprint), every posterior on D_T ∪ D_S, every certificate on D_S; next to each certificate
    the prior's own held-out bounds — ``Q = P`` (KL 0) and the binomial test-set bound of the prior's mean network,
    recomputed here from the prior's file and D_S."""
    from kdbounds._io import read_json
    from kdbounds.certificates.bounds import test_set_bound
    from kdbounds.data.transforms import normalized_images
    from kdbounds.distill import load_checkpoint_model
    from kdbounds.runs.cache import data_fingerprint
    from kdbounds.runs.sweep import run_sweep

    cfg = smoke_scale(fake_root, tmp_path / "bank", priors=("learnt",), students=("pbb",),
                      teacher_arch_posteriors=("pbkd",))
    done = run_sweep(cs.sweep_specs(cfg, tmp_path / "cache"), progress=False)
    d = split_data(cs.split_spec(cfg))
    big = done["seed0/teacher-big"]
    assert Path(big.paths["out_dir"]).parent == tmp_path / "bank"
    fp = lambda k: read_json(Path(done[k].paths["out_dir"]) / "run.json")["key"]["data"]  # noqa: E731
    assert fp("seed0/teacher-big") == fp("seed0/prior-learnt") == data_fingerprint(d.data_t)
    key_t = f"seed0/pbkd-teacher-{cfg.teacher_arch}"
    assert fp("seed0/pbb-learnt") == fp(key_t) == data_fingerprint(d.data_u)
    assert big.config["recipe"] == "fast" and done["seed0/prior-learnt"].config["recipe"] == "fast"
    assert done[key_t].config["method_kwargs"]["prior"] == big.paths["model"]
    rows = done["seed0/certify-learnt"]["rows"] + done[f"seed0/certify-teacher-{cfg.teacher_arch}"]["rows"]
    assert [(r["prior"], r["student"]) for r in rows] == [("learnt", "pbb"), ("teacher", f"pbkd@{cfg.teacher_arch}")]
    ds = (normalized_images(d.x_s, "cpu"), torch.from_numpy(d.y_s))
    for r, prior_file in zip(rows, (done["seed0/prior-learnt"].paths["model"], big.paths["model"])):
        with torch.no_grad():
            errors = int((load_checkpoint_model(prior_file).eval()(ds[0]).argmax(1) != ds[1]).sum())
        assert r["prior_mean_error_s"] == errors / cfg.n_s
        assert r["prior_mean_heldout_bound"] == pytest.approx(test_set_bound(errors, cfg.n_s, cfg.delta + cfg.delta_mc))
        assert 0 <= r["prior_gibbs_risk_s"] <= r["prior_heldout_bound"] <= 1
        assert r["epochs"] == cfg.pbb_epochs and r["mean_acc_change"] is not None


@pytest.mark.parametrize("kw, msg", [
    ({"recipe": "fast"}, "students: 'rid' configures its own optimisers"),
    ({"bank_teacher": True}, "bank_teacher: the teacher bank holds fast-recipe teachers"),
    ({"teacher_arch_posteriors": ("ce",)}, "teacher_arch_posteriors: expected one of"),
    ({"recipe": "quick", "students": ("pbb",)}, "recipe: expected one of"),
    ({"pbb_batch_size": 0}, "pbb_batch_size: expected an integer >= 1"),
])
def test_scale_fields_are_checked_when_the_config_is_made(kw, msg):
    with pytest.raises(ValueError, match=msg):
        cs.Config(**kw)
