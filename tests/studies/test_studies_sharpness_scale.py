"""The flagship at scale (issue 23): the ``scale`` preset's design, its sweep (bank teachers on D_T, students on
D_S from scratch and started at their teacher), the student started at its teacher equal to it at step 0, and the
``smoke-scale`` miniature end to end on a fake CIFAR-10 (strict JSON, recipe-level headline, every check labelled).

Oracles: the teacher's own logits (step 0), the D_T/D_S split's arrays (run-cache data fingerprints), a JSON
parser that refuses NaN/Infinity, scipy's exact Kendall p-value over the recipe means.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from kdbounds.checks import KINDS, VERDICTS
from kdbounds.runs.splits import split_data
from kdbounds.studies import sharpness_vs_gap as ss
from repo_files import load_file

pytestmark = pytest.mark.usefixtures("private_data_cache")


def _strict_loads(text: str):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def smoke_scale(fake_root: Path, bank: Path, **kw) -> ss.StudyConfig:
    return dataclasses.replace(ss.PRESETS["smoke-scale"], data_root=str(fake_root), bank_root=str(bank), threads=1,
                               **kw)


def test_scale_preset_can_answer_at_the_recipe_level():
    """≥ 12 teachers from ≥ 6 recipes that move sharpness (learning rate, batch size, weight decay, label
    smoothing), bank teachers with the fast recipe, same-architecture students from scratch and started at the
    teacher on D_S, curvature on the gaps' samples; the recipe-level exact test can reach p < 0.05 (2/6!)."""
    cfg = ss.PRESETS["scale"]
    runs = cfg.teacher_runs()
    recipes = {r.name for _, r, _ in runs}
    assert len(runs) >= 12 and len(recipes) >= 6 and 2 / math.factorial(len(recipes)) < 0.05
    base = cfg.teachers[0]
    knobs = {k for r in cfg.teachers[1:] for k in ("lr", "batch_size", "weight_decay", "label_smoothing")
             if getattr(r, k) != getattr(base, k)}
    assert knobs == {"lr", "batch_size", "weight_decay", "label_smoothing"}
    assert cfg.recipe == "fast" and cfg.bank_teacher and cfg.n_s is not None and cfg.n_per_class is None
    assert cfg.gap_sample == "kernel" and cfg.curvature_params == "*"
    labels = {lab: (arch, m) for lab, arch, m in cfg.students()}
    assert {"ce", "kd", "rid", ss.from_teacher_label("kd"), ss.from_teacher_label("ce")} <= set(labels)
    assert all(arch == cfg.teacher_arch for arch, _ in labels.values())  # every pair: Theorems 3A/3B defined
    small = ss.PRESETS["smoke-scale"]
    assert len({r.name for _, r, _ in small.teacher_runs()}) == 3 and small.teacher_seeds == 2
    assert small.from_teacher and small.bank_teacher and small.gap_sample == "kernel"


@pytest.mark.parametrize("kw, msg", [
    ({"from_teacher": ("kd",)}, "from_teacher: a student started at its teacher"),
    ({"n_t": 100}, "n_t: the size of D_T is for the split mode"),
    ({"bank_teacher": True}, "bank_teacher: the teacher bank holds fast-recipe teachers"),
    ({"recipe": "fast"}, r"recipe='fast' whitens the first layer of an airbench network; \['resnet14', 'resnet8'\]"),
    ({"recipe": "quick"}, "recipe: expected one of"),
    ({"gap_sample": "some"}, "gap_sample: expected one of"),
    ({"teacher_seeds": 0}, "teacher_seeds: expected an integer >= 1"),
    ({"n_s": 50}, "n_per_class: with a split"),
    ({"n_s": 0, "n_per_class": None}, "n_s: expected an integer >= 1"),
    ({"from_teacher_lr_scale": 0.0}, "from_teacher_lr_scale"),
    ({"kernel_std": -1.0}, "kernel_std"),
    ({"gentle_steps": (1,)}, "gentle_steps: a gentle student takes its steps on the kernel sample's D_S images"),
    ({"gentle_steps": (0,)}, "gentle_steps: expected an integer >= 1"),
    ({"gentle_steps": (2, 2)}, "gentle_steps: a step count is listed twice"),
    ({"gentle_lr": 0.0}, "gentle_lr"),
])
def test_scale_fields_are_checked_when_the_config_is_made(kw, msg):
    with pytest.raises(ValueError, match=msg):
        dataclasses.replace(ss.PRESETS["smoke"], **kw)


def test_sweep_bank_teachers_on_dt_students_on_ds_started_at_their_teacher(tmp_path, fake_root):
    """The sweep of the split mode: per (recipe, seed) a bank teacher on the study's split, each distilled student
    depending on its teacher, the students started at the teacher filling ``init_ckpt`` from that run, every
    student on D_S, the measurement after all of them; the teacher-free student once."""
    cfg = smoke_scale(fake_root, tmp_path / "bank")
    specs = {s.key: s for s in ss.sweep_specs(cfg, tmp_path / "cache")}
    split = cfg.split()
    names = [n for n, _, _ in cfg.teacher_runs()]
    assert names == ["fast-s0", "fast-s1", "fast-ls0-s0", "fast-ls0-s1", "fast-lr0.3x-s0", "fast-lr0.3x-s1"]
    assert [s for s in specs if s.startswith("alone-")] == ["alone-ce"]
    for name, recipe, seed in cfg.teacher_runs():
        t = specs[f"teacher-{name}"]
        assert t.fn is ss.bank_teacher_timed and t.kwargs["data"] == split and t.deps == ()
        bank_cfg = t.kwargs["spec"].config()
        assert (bank_cfg.seed, bank_cfg.lr, bank_cfg.batch_size, bank_cfg.recipe) == (seed, recipe.lr,
                                                                                        recipe.batch_size, "fast")
        ft = specs[f"kd-from-teacher-{name}"]
        assert ft.kwargs["init"] == ft.kwargs["teacher"] == f"teacher-{name}" and ft.kwargs["side"] == "s"
        assert ft.kwargs["config"]["epochs"] == cfg.from_teacher_epochs and "init_ckpt" not in ft.kwargs["config"]
        kd = specs[f"kd-{name}"]
        assert kd.kwargs["init"] is None and kd.kwargs["side"] == "s" and kd.deps == (f"teacher-{name}",)
        assert ft.kwargs["config"]["lr"] == pytest.approx(cfg.from_teacher_lr_scale * kd.kwargs["config"]["lr"])
        m = specs[f"measure-{name}"]
        assert set(m.deps) == {f"teacher-{name}", "alone-ce", f"kd-{name}", f"rid-{name}", f"kd-from-teacher-{name}"}
        assert m.kwargs["data"] == split and m.kwargs["params"]["gap_sample"] == "kernel"


def test_worker_refuses_a_start_that_is_not_a_dependency(tmp_path, fake_root):
    from kdbounds.runs.grid import worker_config

    specs = {s.key: s for s in ss.sweep_specs(smoke_scale(fake_root, tmp_path / "bank"), tmp_path)}
    kw = specs["kd-from-teacher-fast-s0"].kwargs
    with pytest.raises(ValueError, match="init='teacher-fast-s0': not among the run's dependencies"):
        worker_config(kw["config"], None, {}, init=kw["init"])


def test_student_started_at_the_teacher_equals_it_at_step_zero(tmp_path, fake_root):
    """Evidence (issue 23): the study's student started at its teacher — its config filled in by the worker from
    the teacher run, exactly as the sweep does — computes the teacher's logits exactly (``torch.equal``) before
    its first step, and its kernel divergence to the teacher is 0."""
    from kdbounds.checks.kernel_checks import student_in_teacher_space
    from kdbounds.data.transforms import normalized_images
    from kdbounds.distill import load_checkpoint_model
    from kdbounds.distill.methods import get_method
    from kdbounds.distill.trainer import _open_run, _setup
    from kdbounds.runs.grid import worker_config

    cfg = smoke_scale(fake_root, tmp_path / "bank", teachers=ss.PRESETS["smoke-scale"].teachers[:1], teacher_seeds=1)
    specs = {s.key: s for s in ss.sweep_specs(cfg, tmp_path / "cache")}
    t_spec, s_spec = specs["teacher-fast"], specs["kd-from-teacher-fast"]
    teacher = t_spec.fn(**t_spec.kwargs)  # the bank teacher, trained on D_T
    kw = s_spec.kwargs
    scfg = worker_config(kw["config"], kw["teacher"], {"teacher-fast": teacher.value}, init=kw["init"])
    assert scfg.init_ckpt == teacher.value.paths["model"]
    d = split_data(kw["split"])
    out, paths, _ = _open_run(scfg, tmp_path / "student", resume=False)
    run = _setup(scfg, get_method(scfg.method), out, paths, None, d.side(kw["side"]))
    t = load_checkpoint_model(teacher.value.paths["model"]).eval()
    run.student.eval()
    x = normalized_images(d.x_s, "cpu")
    with torch.no_grad():
        assert torch.equal(run.student(x), t(x))
    params, reason = student_in_teacher_space(run.student.cpu(), t)
    assert reason is None and all(torch.equal(params[n], p) for n, p in t.named_parameters())


_FROM_TEACHER_RUNNER = """
import os, signal, sys
import numpy as np
import torch
from kdbounds.distill import register_method, train
from kdbounds.distill.kd import KDMethod
from kdbounds.studies import sharpness_vs_gap as ss

@register_method
class KillMidKD(KDMethod):
    name = "_test_kill_mid_kd"
    calls = 0

    def loss(self, x, y, s_out, t_out, epoch):
        KillMidKD.calls += 1
        if os.environ.get("KILL_AT_EPOCH") == str(epoch) and KillMidKD.calls % 3 == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-epoch
        return super().loss(x, y, s_out, t_out, epoch)

teacher = {teacher!r}
cfg = ss._from_teacher_config(ss.PRESETS["smoke-scale"], "kd").replace(
    method="_test_kill_mid_kd", init_ckpt=teacher, teacher_ckpt=teacher, device="cpu")
g = np.random.default_rng(0)
x = g.integers(0, 255, (64, 32, 32, 3)).astype(np.uint8)
y = np.arange(64) % 10
torch.set_num_threads(1)
train(cfg, sys.argv[1], data=(x[:48], y[:48], x[48:], y[48:]), progress=False)
"""


def test_student_started_at_the_teacher_resumes_bit_identically_after_kill_9(tmp_path, kill_resume_check):
    """Evidence (issue 23): the study's student started at its teacher (the ``smoke-scale`` preset's
    ``kd-from-teacher`` config: fast recipe, ``init_ckpt`` = ``teacher_ckpt`` = the teacher's model file), killed
    with SIGKILL in the middle of its second epoch and resumed, ends with the model file (bytes) and loss log of
    the uninterrupted run."""
    from kdbounds.distill.controls import make_untrained_teacher

    teacher = make_untrained_teacher("airbench_s", 10, 3, tmp_path / "teacher.pt")
    assert ss.PRESETS["smoke-scale"].from_teacher_epochs == 2
    kill_resume_check(tmp_path, _FROM_TEACHER_RUNNER.replace("{teacher!r}", repr(str(teacher))), n_epochs=2)


def _teacher_and_started_student(cfg: ss.StudyConfig, cache: Path) -> tuple:
    """Train (or reuse) the bank teacher and the ``kd`` student started at it, exactly as the sweep runs them."""
    specs = {s.key: s for s in ss.sweep_specs(cfg, cache)}
    t_spec, s_spec = specs["teacher-fast"], specs["kd-from-teacher-fast"]
    teacher = t_spec.fn(**t_spec.kwargs)
    return teacher.value, s_spec.fn(**s_spec.kwargs, deps={"teacher-fast": teacher}).value


def test_moved_cache_reuses_the_student_started_at_its_teacher(tmp_path, fake_root, monkeypatch):
    """Evidence (issue 23): after ``mv A B`` of the folder holding the run cache and the teacher bank, the student
    started at its teacher is found again (its run id holds the starting network by its bytes, not its path):
    nothing is trained, the numbers and the model file are the same, every path names the new place."""
    from kdbounds._io import read_json
    from kdbounds.runs import cache as cache_mod
    from study_helpers import CountingTrain

    def config(root: Path) -> ss.StudyConfig:
        return smoke_scale(fake_root, root / "bank", teachers=ss.PRESETS["smoke-scale"].teachers[:1],
                           teacher_seeds=1)

    a, b = tmp_path / "A", tmp_path / "B"
    t0, s0 = _teacher_and_started_student(config(a), a / "cache")
    key = read_json(Path(s0.paths["out_dir"]) / "run.json")["key"]
    assert "init_ckpt" not in key["config"] and key["init_sha256"] == key["teacher_sha256"]
    model = Path(s0.paths["model"]).read_bytes()
    a.rename(b)
    counting = CountingTrain(cache_mod.train)
    monkeypatch.setattr(cache_mod, "train", counting)
    t1, s1 = _teacher_and_started_student(config(b), b / "cache")
    assert counting.calls == []
    assert (t1.final, s1.final) == (t0.final, s0.final) and Path(s1.paths["model"]).read_bytes() == model
    assert Path(s1.paths["out_dir"]).parent == b / "cache" and Path(t1.paths["out_dir"]).parent == b / "bank"


@pytest.mark.slow
def test_smoke_scale_end_to_end(tmp_path, fake_root, monkeypatch):
    """The miniature of the scale preset on a fake CIFAR-10: bank teachers on D_T (the data fingerprint of the
    split's D_T), students on D_S, strict JSON, the headline Kendall test over the 3 recipe means (scipy's exact
    p), the teacher-level tests labelled within-design, two student groups; every check with a kind and a
    verdict; the students started at the teacher much closer to it (K) than those trained from scratch; after
    ``mv A B`` of the folder holding the run cache and the bank, a second run trains and measures nothing and gives
    the same rows."""
    from scipy.stats import kendalltau

    from kdbounds._io import read_json
    from kdbounds.runs import cache as cache_mod
    from kdbounds.runs.cache import data_fingerprint
    from study_helpers import CountingTrain

    a, b = tmp_path / "A", tmp_path / "B"
    cfg = smoke_scale(fake_root, a / "bank")
    res = ss.run(cfg, tmp_path / "out", cache_root=a / "cache", progress=False, log=lambda s: None)
    d = split_data(cfg.split())
    for row in res.rows:
        key = read_json(Path(a / "bank" / row["teacher_run"]) / "run.json")["key"]
        assert key["data"] == data_fingerprint(d.data_t)
        if row["student_start"] == "teacher, gradient steps":  # gentle: built by the measurement, no run folder
            assert row["method"] == ss.gentle_label(1) and row["student_run"] is None
            continue
        skey = read_json(Path(a / "cache" / row["student_run"]) / "run.json")["key"]
        assert skey["data"] == data_fingerprint(d.data_s)
        assert ("init_sha256" in skey) == (row["student_start"] == "teacher")
    doc = _strict_loads((tmp_path / "out" / "results.json").read_text())
    assert all(c["kind"] in KINDS and c["verdict"] in VERDICTS for c in doc["checks"])
    head = [k for k in res.kendall if k["level"] == "recipe"]
    assert {k["students"] for k in head} == {"distilled", "from-teacher"}
    assert all(k["n_recipes"] == 3 and k["n_teachers"] == 6 and k["unit"] == "recipe" for k in head)
    within = [k for k in res.kendall if k["level"] == "within-design"]
    assert within and all(k["unit"] == "teacher" and k["n_teachers"] == 6 for k in within)
    g = "student_gap_clipped_ce"
    h = next(k for k in head if k["students"] == "distilled" and k["gap"] == g)
    recipes = [r.name for r in cfg.teachers]
    sharp = {r: [res.curvature[n]["train_trace"]["value"] for n, rr, _ in cfg.teacher_runs() if rr.name == r]
             for r in recipes}
    gaps = {r: [x[g] for x in res.rows if x["teacher_recipe"] == r and x["method"] in ("kd", "rid")] for r in recipes}
    ref = kendalltau([sum(v) / len(v) for v in sharp.values()], [sum(v) / len(v) for v in gaps.values()],
                     method="exact")
    assert h["tau"] == pytest.approx(ref.statistic) and h["p_value"] == pytest.approx(ref.pvalue)
    tight = {(t["name"], t["student"]): t for t in ss.kernel_tightness(res.checks)}
    ft, kd = ss.from_teacher_label("kd"), "kd"
    assert tight[("thm3b_subgamma_quadratic", ft)]["K_median"] < tight[("thm3b_subgamma_quadratic", kd)]["K_min"]
    assert (tmp_path / "out" / "tightness.csv").is_file()
    _check_gentle_students(cfg, res, a / "bank")
    assert "Theorems 3A/3B" in (tmp_path / "out" / "report.md").read_text()
    block = ss.readme_report(doc)  # README's generated block (experiments/report_scale.py)
    assert "None" not in block and "nan" not in block.lower()
    assert sum(line.startswith("| `") and "batch" in line for line in block.splitlines()) == 6  # one row per teacher
    assert "of 6 reach it" in block
    a.rename(b)
    counting = CountingTrain(cache_mod.train)
    monkeypatch.setattr(cache_mod, "train", counting)
    again = ss.run_study(dataclasses.replace(cfg, bank_root=str(b / "bank")), b / "cache", progress=False,
                         log=lambda s: None)
    assert counting.calls == [] and again.timing["curvature_cpu_s"] == 0.0  # measurements reused too
    assert again.rows == res.rows


def test_command_line_sets_the_start_at_the_teacher():
    """``experiments/sharpness_vs_gap.py --preset scale`` with the options of the students started at their
    teacher and of the kernel scale (what to turn if the kernel divergence comes out large)."""

    from kdbounds.studies import _cli

    cli = load_file("experiments/sharpness_vs_gap.py")
    a = cli.parse_args(["--preset", "scale", "--from-teacher-epochs", "1", "--from-teacher-lr-scale", "0.02",
                        "--kernel-std", "0.003"])
    cfg = _cli.config_from_args(ss.PRESETS, a, cli.OVERRIDES)
    assert (cfg.from_teacher_epochs, cfg.from_teacher_lr_scale, cfg.kernel_std) == (1, 0.02, 0.003)
    assert cfg.teachers == ss.PRESETS["scale"].teachers
    with pytest.raises(SystemExit):
        cli.parse_args(["--preset", "scale", "--from-teacher-lr-scale", "0"])
    # README's pre-registered gentle run: the scale teachers, only the teacher-free student trained, gentle students
    a = cli.parse_args(["--preset", "scale", "--methods", "ce", "--from-teacher", "none", "--gentle-steps", "1,3,10",
                        "--gentle-lr", "0.01"])
    cfg = _cli.config_from_args(ss.PRESETS, a, cli.OVERRIDES, methods=a.methods, from_teacher=a.from_teacher)
    assert (cfg.methods, cfg.from_teacher, cfg.gentle_steps, cfg.gentle_lr) == (("ce",), (), (1, 3, 10), 0.01)
    assert cfg.students() == (("ce", "airbench_s", "ce"),) and len(cfg.gentle_students()) == 3
    assert cli.parse_args(["--from-teacher", "kd,ce"]).from_teacher == ("kd", "ce")
    for bad in (["--from-teacher", "kd,nope"], ["--gentle-steps", "0"], ["--gentle-steps", "a"]):
        with pytest.raises(SystemExit):
            cli.parse_args(bad)


def _check_gentle_students(cfg, res, bank: Path) -> None:
    """Each teacher's gentle student is :func:`kdbounds.checks.gentle_student` of that teacher on the kernel
    sample's D_S images (oracle: rebuilt here from the bank teacher; the record's ‖Δ‖ and the row's accuracy on its
    sample agree to float rounding), not on D_T or the test images; it is outside the Kendall groups."""
    import math

    from kdbounds.checks import gentle_student, student_in_teacher_space
    from kdbounds.distill import load_checkpoint_model

    label = ss.gentle_label(1)
    _, _, te_t, kernel_train, _ = ss._measurement_inputs(ss.data_spec(cfg), cfg.device, cfg.curvature_per_class,
                                                         cfg.seed)
    recs = {c["teacher"]: c for c in res.checks if c["name"] == "thm3b_subgamma_quadratic" and c["student"] == label}
    rows = {r["teacher"]: r for r in res.rows if r["method"] == label}
    assert set(recs) == set(rows) == {n for n, _, _ in cfg.teacher_runs()}
    for name, row in rows.items():
        teacher = load_checkpoint_model(bank / row["teacher_run"] / "model.pt")
        student = gentle_student(teacher, *kernel_train, steps=1, lr=cfg.gentle_lr,
                                 batch_size=cfg.curvature_batch_size)
        params, _ = student_in_teacher_space(student, teacher)
        norm = math.sqrt(sum(float((params[n] - p.detach()).pow(2).sum()) for n, p in teacher.named_parameters()))
        assert recs[name]["inputs"]["gap_delta_norm"] == pytest.approx(norm, rel=1e-5)
        assert row["student_train_acc"] == pytest.approx(ss._accuracy(student, kernel_train))
        assert row["student_test_acc"] == pytest.approx(ss._accuracy(student, te_t))
    n_teachers = len(cfg.teacher_runs())
    sizes = {"distilled": n_teachers * 2, "from-teacher": n_teachers * len(cfg.from_teacher)}  # kd, rid; no gentle
    assert all(k["n_students"] == sizes[k["students"]] for k in res.kendall)


@pytest.mark.slow
def test_gentle_only_run_writes_every_output(tmp_path, fake_root):
    """README's pre-registered gentle run in miniature (only the teacher-free student trained, no student started
    at the teacher by training, gentle students of 1 and 3 steps): results, CSVs, figures, report and README's
    generated block are written (no Kendall group has students: the tests are left out, said so), every gentle pair
    has its 3B records, and the anatomy table lists the gentle students."""
    cfg = smoke_scale(fake_root, tmp_path / "bank", teachers=ss.PRESETS["smoke-scale"].teachers[:2], teacher_seeds=1,
                      methods=("ce",), from_teacher=(), gentle_steps=(1, 3))
    res = ss.run(cfg, tmp_path / "out", cache_root=tmp_path / "cache", progress=False, log=lambda s: None)
    out = tmp_path / "out"
    for f in ("results.json", "results.csv", "checks.csv", "kendall.csv", "tightness.csv", "report.md",
              "sharpness_vs_gap.png", "bound_vs_observed.png"):
        assert (out / f).is_file(), f
    assert {r["method"] for r in res.rows} == {"ce", ss.gentle_label(1), ss.gentle_label(3)}
    doc = _strict_loads((out / "results.json").read_text())
    block = ss.readme_report(doc)
    assert "None" not in block and "nan" not in block.lower()
    for label in (ss.gentle_label(1), ss.gentle_label(3)):
        assert f"| `{label}` | 2 |" in block  # tightness and anatomy rows, both teachers
    assert res.kendall == () and "No Kendall test of sharpness" in block


def _rows_in(rows: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """For each row of ``rows``, whether it equals some row of ``pool`` exactly."""
    return (rows.flatten(1)[:, None, :] == pool.flatten(1)[None, :, :]).all(-1).any(1)


def test_kernel_sample_is_drawn_from_ds_and_the_test_images_never_from_dt(fake_root):
    """``kernel_sample``, what notebook 03 and a user re-measure on: with a split, each training row is one of D_S's
    images (the split's own arrays, normalised the measurements' way) and none of D_T's, each test row one of the
    held-out images, ``curvature_per_class`` per class; ``results.json``'s config dict gives the same tensors as the
    config, and the tensors are copies (changing them changes no later call); a non-config is refused by name."""
    from kdbounds.data.transforms import normalized_images

    cfg = dataclasses.replace(ss.PRESETS["smoke-scale"], data_root=str(fake_root))
    (xk, yk), (xt, yt) = ss.kernel_sample(cfg)
    d = split_data(cfg.split())
    assert _rows_in(xk, normalized_images(d.x_s)).all() and not _rows_in(xk, normalized_images(d.data_t[0])).any()
    assert _rows_in(xt, normalized_images(d.x_test)).all()
    assert torch.bincount(yk).tolist() == [cfg.curvature_per_class] * 10 == torch.bincount(yt).tolist()
    again = ss.kernel_sample(json.loads(json.dumps(cfg.to_dict())))
    assert torch.equal(again[0][0], xk) and torch.equal(again[0][1], yk) and torch.equal(again[1][0], xt)
    xk.zero_()
    assert not torch.equal(ss.kernel_sample(cfg)[0][0], xk)
    with pytest.raises(TypeError, match="config"):
        ss.kernel_sample(["n_s", 40])
