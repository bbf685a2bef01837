"""The flagship experiment end to end on real CIFAR-10 (smoke preset) and its configuration errors."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from kdbounds.studies import sharpness_vs_gap as ss

ROOT = Path(__file__).resolve().parents[2]


def _have_data() -> bool:
    try:
        from kdbounds.data import find_cifar

        find_cifar("cifar10")
        return True
    except Exception:
        return False


def test_preset_errors():
    with pytest.raises(ValueError, match="preset"):
        ss.preset("huge")
    with pytest.raises(ValueError, match="unknown methods"):
        ss.preset("smoke", methods=("kd", "nope"))
    with pytest.raises(ValueError, match="teachers"):
        ss.StudyConfig(preset="x", teacher_arch="resnet8", student_arch="resnet8", teachers=())


def test_kendall_table_matches_scipy():
    from scipy.stats import kendalltau

    rows = [{"method": "kd", "teacher_train_top_eig": float(i), "teacher_train_trace": float(i * i),
             "student_gap_clipped_ce": g, "student_gap_zero_one": -g} for i, g in enumerate([0.1, 0.3, 0.2, 0.5])]
    tab = {(r["group"], r["sharpness"], r["gap"]): r for r in ss.kendall_table(rows)}
    ref = kendalltau([0, 1, 2, 3], [0.1, 0.3, 0.2, 0.5])
    got = tab[("kd", "teacher_train_top_eig", "student_gap_clipped_ce")]
    assert got["tau"] == pytest.approx(ref.statistic) and got["p_value"] == pytest.approx(ref.pvalue)
    assert tab[("kd", "teacher_train_top_eig", "student_gap_zero_one")]["tau"] == pytest.approx(-ref.statistic)
    const = [dict(r, method="ce", student_gap_clipped_ce=0.2) for r in rows]
    c = {(r["group"], r["gap"]): r for r in ss.kendall_table(const) if r["sharpness"] == "teacher_train_top_eig"}
    assert math.isnan(c[("ce", "student_gap_clipped_ce")]["tau"]) and "constant" in c[("ce", "student_gap_clipped_ce")]["note"]
    few = ss.kendall_table(rows[:2])
    assert all(math.isnan(r["tau"]) for r in few)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not _have_data(), reason="CIFAR-10 not found (set KDBOUNDS_DATA)")
def test_smoke_preset_end_to_end(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("svg", ROOT / "experiments" / "sharpness_vs_gap.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "out"
    assert mod.main(["--preset", "smoke", "--out", str(out), "--cache-root", str(tmp_path / "cache"),
                     "--no-progress"]) == 0
    for f in ("results.json", "results.csv", "kendall.csv", "sharpness_vs_gap.png", "bound_vs_observed.png",
              "report.md", "config.json"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    res = json.loads((out / "results.json").read_text())
    cfg = ss.preset("smoke")
    assert len(res["rows"]) == len(cfg.teachers) * len(cfg.methods)
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(res["rows"])
    r0 = res["rows"][0]
    for key in ("bound_thm1_per_sample_clipped_ce", "bound_thm3b_subgamma_clipped_ce", "divergence_train",
                "teacher_train_top_eig", "student_gap_zero_one", "holds_thm1_product_zero_one"):
        assert key in r0
    assert res["config"]["seed"] == 0 and res["environment"]["torch"]
    # a re-run reuses the cached models and reproduces the numbers
    out2 = tmp_path / "out2"
    assert mod.main(["--preset", "smoke", "--out", str(out2), "--cache-root", str(tmp_path / "cache"),
                     "--no-progress"]) == 0
    res2 = json.loads((out2 / "results.json").read_text())
    assert res2["rows"][0]["divergence_train"] == pytest.approx(r0["divergence_train"], rel=1e-6)
