"""Controls (untrained teacher, SIDDO) and the methods running inside the real trainer."""
from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kdbounds.distill import TrainConfig, available_methods, get_method
from kdbounds.distill.checkpoint import load_checkpoint_model
from kdbounds.distill.controls import make_untrained_teacher, siddo_config
from kdbounds.distill.trainer import train
from kdbounds.models import build_model
from repo_files import load_file


ROOT = Path(__file__).resolve().parents[2]


def test_methods_are_registered():
    assert {"vid", "rid", "itrd", "rcd"} <= set(available_methods())
    assert get_method("rcd").requires_teacher is False
    assert all(get_method(n).requires_features for n in ("vid", "rid", "itrd"))


def test_untrained_teacher_is_a_loadable_seeded_random_init(tmp_path):
    p = make_untrained_teacher("resnet8", 10, 7, tmp_path / "u.pt")
    m = load_checkpoint_model(p)
    ref = build_model("resnet8", 10, seed=7)
    for (k, a), (k2, b) in zip(m.state_dict().items(), ref.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    other = build_model("resnet8", 10, seed=8)
    assert not torch.equal(m.conv1.weight if hasattr(m, "conv1") else next(m.parameters()),
                           next(other.parameters()))
    # deterministic bytes: the run cache (keyed on the teacher file's hash) is reused
    p2 = make_untrained_teacher("resnet8", 10, 7, tmp_path / "u2.pt")
    h = lambda q: hashlib.sha256(Path(q).read_bytes()).hexdigest()  # noqa: E731
    assert h(p) == h(p2)
    assert torch.load(p, weights_only=True)["config"]["untrained"] is True


def test_siddo_config_same_init_other_data_order():
    ref = TrainConfig(arch="resnet8", seed=3, method="kd", method_kwargs={"T": 2.0},
                      teacher_ckpt="t.pt", device="cpu")
    c = siddo_config(ref, 4)
    assert (c.method, dict(c.method_kwargs), c.teacher_ckpt) == ("ce", {}, None)
    assert c.init_seed == 3 and c.seed == 4
    ref2 = TrainConfig(arch="resnet8", seed=3, init_seed=11, device="cpu")
    assert siddo_config(ref2, 5).init_seed == 11


def _tiny_data(n_train=40, n_test=20, seed=0):
    g = np.random.default_rng(seed)
    tx = g.integers(0, 256, size=(n_train, 32, 32, 3), dtype=np.uint8)
    vx = g.integers(0, 256, size=(n_test, 32, 32, 3), dtype=np.uint8)
    return tx, np.arange(n_train) % 10, vx, np.arange(n_test) % 10


@pytest.mark.slow
@pytest.mark.parametrize("method, kw", [("vid", {}), ("itrd", {}), ("rcd", {"noise": "dirichlet"}),
                                        ("rid", {"q": "2", "lam2": "1"})])
def test_method_runs_in_the_trainer_and_resumes_exactly(method, kw, tmp_path):
    """Two epochs in the real trainer (synthetic images: only the plumbing is tested here);
    a run stopped after epoch 1 and resumed equals the uninterrupted run bit for bit."""
    data = _tiny_data()
    teacher = make_untrained_teacher("resnet8", 10, 1, tmp_path / "t.pt")
    cfg = TrainConfig(arch="resnet8", epochs=2, batch_size=20, device="cpu", method=method,
                      method_kwargs=kw, teacher_ckpt=None if method == "rcd" else str(teacher),
                      seed=0)
    full = train(cfg, tmp_path / "full", data=data, progress=False)
    assert full.epochs_completed == 2 and math.isfinite(full.final["train_loss"])
    if method == "rid":
        assert [h["train_phase"] for h in full.history] == [1.0, 2.0]

    def stop(info):
        if info.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", data=data, progress=False, callbacks=[stop])
    resumed = train(cfg, tmp_path / "cut", data=data, progress=False)
    assert resumed.resumed_from_epoch == 1
    a = load_checkpoint_model(tmp_path / "full" / "model.pt").state_dict()
    b = load_checkpoint_model(tmp_path / "cut" / "model.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _data_available() -> bool:
    from kdbounds.data import find_cifar
    try:
        find_cifar("cifar10")
        return True
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.realdata
def test_nuisance_teacher_smoke_preset(tmp_path):
    if not _data_available():
        pytest.skip("real CIFAR-10 not found (set KDBOUNDS_DATA or put it in ../shared/data)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "nuisance_teacher.py"),
                        "--preset", "smoke", "--out", str(tmp_path / "out"), "--no-progress",
                        "--methods", "ce,vid,vid_rid,rid"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ("results.csv", "summary.csv", "results.json", "accuracy.png"):
        assert (tmp_path / "out" / f).is_file(), f
    import json
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    kinds = {(row["teacher"], row["method"]) for row in res["rows"]}
    assert kinds == {("none", "ce"), ("trained", "vid"), ("untrained", "vid"), ("trained", "vid_rid"),
                     ("untrained", "vid_rid"), ("trained", "rid"), ("untrained", "rid")}
    assert all(0.0 <= row["test_acc"] <= 1.0 for row in res["rows"])
    assert "| untrained | rid |" in r.stdout


def _load_experiment():
    return load_file("experiments/nuisance_teacher.py")


def test_experiment_summary_and_presets():
    from kdbounds.studies import nuisance_teacher as study

    mod = _load_experiment()
    rows = [{"teacher": "untrained", "method": "vid", "test_acc": a} for a in (0.3, 0.5, 0.4)]
    rows.append({"teacher": "none", "method": "ce", "test_acc": 0.7})
    s = {(r["teacher"], r["method"]): r for r in study.summarise(rows)}
    v = s[("untrained", "vid")]
    assert v["mean_test_acc"] == pytest.approx(0.4) and v["n"] == 3
    assert v["std"] == pytest.approx(0.1) and v["se"] == pytest.approx(0.1 / math.sqrt(3))
    assert s[("none", "ce")]["std"] == 0.0
    p = study.PRESETS["gpu"]
    assert (p.teacher_arch, p.student_arch, p.epochs, p.rid_q, p.rid_r) == (
        "wrn_40_2", "wrn_16_1", 300, 30, 0.25)
    args = mod.parse_args(["--preset", "cpu", "--epochs", "3", "--methods", "ce,rid"])
    cfg = mod.resolve(args)
    assert cfg.epochs == 3 and cfg.methods == ("ce", "rid") and cfg.milestones == (6, 8)
    with pytest.raises(SystemExit):
        mod.resolve(mod.parse_args(["--methods", "ce,fitnet"]))
