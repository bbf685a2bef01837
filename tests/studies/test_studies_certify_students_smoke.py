"""The certify_students study: presets validate; the smoke preset runs end to end on real CIFAR-10
(skipped when the data is absent) and writes strict JSON with the documented fields, a CSV and a figure."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kdbounds.studies.certify_students import PRESETS, Config, summarise

ROOT = Path(__file__).resolve().parents[2]


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_presets_validate_and_cpu_meets_the_size_goal():
    assert set(PRESETS) == {"smoke", "cpu", "gpu", "smoke-scale", "scale"}
    scale = PRESETS["scale"]  # issue 28: PBB's 70/30 split of the full training set, the test set held out
    assert (scale.n_t, scale.n_s, scale.test_n) == (35000, 15000, None) and scale.bank_teacher
    assert scale.delta + scale.delta_mc <= 0.035 and scale.recipe == "fast"
    assert PRESETS["cpu"].n_s >= 5000 and len(PRESETS["cpu"].seeds) >= 2
    assert PRESETS["gpu"].test_n is None and PRESETS["gpu"].device == "auto"
    for p in PRESETS.values():
        assert Config(**{**p.to_dict(), "seeds": tuple(p.seeds), "priors": tuple(p.priors),
                         "students": tuple(p.students), "losses": tuple(p.losses),
                         "teacher_arch_posteriors": tuple(p.teacher_arch_posteriors),
                         "posterior_scales": tuple(p.posterior_scales)}) == p


@pytest.mark.parametrize("kw, msg", [
    ({"priors": ("posterior",)}, "priors: expected one of"),
    ({"students": ()}, "students: expected at least one"),
    ({"delta": 1.0}, r"delta: expected a number in \(0, 1\)"),
    ({"n_s": 0}, "n_s: expected an integer >= 1"),
    ({"scale_low": 0.1, "scale_high": 0.01}, "high: expected > low"),
    ({"delta": 0.6, "delta_mc": 0.5}, "delta_mc: expected delta [+] delta_mc < 1"),
])
def test_config_guards(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Config(**kw)


def test_summary_reports_goals_from_rows():
    rows = []
    for seed, (a, b, c, d) in enumerate([(0.95, 0.7, 0.7, 0.6), (0.97, 0.72, 0.72, 0.7)]):
        for prior, r in zip(("random", "learnt", "teacher", "distilled"), (a, b, c, d)):
            rows.append({"seed": seed, "prior": prior, "student": "pbb", "loss": "zero_one", "risk_upper": r,
                         "test_gibbs_risk": r - 0.1, "gap": 0.1, "n_s": 5000})
    s = summarise(rows)["learnt_posteriors"]
    assert s["teacher_informed_non_vacuous"]["all_below_0.9"] is True
    assert s["teacher_tighter_than_random"]["all"] is True
    d = s["distilled_minus_learnt"]["pbb"]
    assert d["mean"] == pytest.approx(-0.06) and d["n_seeds"] == 2 and d["stderr"] == pytest.approx(0.04)
    assert s["certified_minus_heldout"] == {"max": pytest.approx(0.1), "n": 8, "all_at_most_0.05": False,
                                            "n_s": [5000]}


@pytest.mark.realdata
@pytest.mark.slow
def test_smoke_preset_end_to_end(tmp_path):
    from kdbounds.data import load_cifar

    try:
        load_cifar("cifar10", split="test")
    except FileNotFoundError as e:
        pytest.skip(f"real CIFAR-10 not available: {e}")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "certify_students.py"), "--preset", "smoke",
                           "--out", str(out), "--cache-root", str(tmp_path / "runs"), "--no-progress"],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = _strict((out / "results.json").read_text())
    certs = res["certificates"]
    cfg = PRESETS["smoke"]
    assert len(certs) == len(cfg.priors) * len(cfg.students) * len(cfg.losses) * len(cfg.seeds)
    for c in certs:
        for k in ("prior", "student", "loss", "risk_upper", "divergence", "n_s", "test_gibbs_risk", "vacuous",
                  "mean_term", "variance_term", "seed"):
            assert k in c, k
        assert c["n_s"] == cfg.n_s and 0 <= c["test_gibbs_risk"] <= 1 and 0 <= c["risk_upper"] <= 1
        assert c["mean_term"] + c["variance_term"] == pytest.approx(c["divergence"], rel=1e-9)
        assert c["certificate"]["split"]["n_s"] == cfg.n_s
    assert res["config"]["preset"] == "smoke" and res["config"]["seeds"] == list(cfg.seeds)
    assert res["split"]["seed"] == cfg.split_seed and len(res["split"]["cert_sha256"]) == 64
    with open(out / "certificates.csv") as f:
        assert len(list(csv.DictReader(f))) == len(certs)
    assert (out / "certificates.png").stat().st_size > 0


def test_summary_by_student_separates_wrapped_and_learnt_posteriors():
    rows = [{"seed": 0, "prior": p, "student": st, "loss": "zero_one", "risk_upper": r, "test_gibbs_risk": 0.5,
             "gap": r - 0.5, "n_s": 5000}
            for st, vals in (("ce", (1.0, 1.0, 1.0, 1.0)), ("pbb", (0.92, 0.57, 0.57, 0.58)))
            for p, r in zip(("random", "learnt", "teacher", "distilled"), vals)]
    for r in rows:
        r["certificate"] = {"delta": 0.025, "delta_mc": 0.01}
    s = summarise(rows)
    # F6: no key pools wrapped students with learnt posteriors (a wrapped student's gap, 0.5, is not a learnt one's)
    assert s["wrapped_students"]["teacher_informed_non_vacuous"]["all_below_0.9"] is False
    assert s["learnt_posteriors"]["teacher_informed_non_vacuous"]["all_below_0.9"] is True
    assert s["learnt_posteriors"]["certified_minus_heldout"]["max"] == pytest.approx(0.42)
    assert s["wrapped_students"]["certified_minus_heldout"]["max"] == pytest.approx(0.5)
    assert not any(k.startswith(("max_", "teacher_")) or k == "best" for k in s)
    assert s["by_student"]["pbb"]["certified_minus_heldout"]["max"] == pytest.approx(0.42)
    assert s["by_student"]["ce"]["teacher_tighter_than_random"]["all"] is False
    # the lowest learnt certificate names its selection: a minimum over 4 certificates on one D_S
    low = s["lowest_certified_learnt_posterior"]
    assert low["student"] == "pbb" and low["risk_upper"] == 0.57 and low["min_over"] == 4
    assert low["confidence"] == pytest.approx(1 - 4 * 0.035)


def test_merge_results_recomputes_the_summary_and_refuses_mixed_configs(tmp_path):
    from kdbounds._io import atomic_write_json
    from kdbounds.studies.certify_students import merge_results

    cfg = PRESETS["smoke"].to_dict()

    def part(seed, r):
        rows = [{"seed": seed, "prior": p, "student": "pbb", "loss": "zero_one", "risk_upper": v,
                 "test_gibbs_risk": 0.5, "gap": v - 0.5, "n_s": 500, "mean_term": 1.0,
                 "variance_term": 0.5} for p, v in zip(("learnt", "distilled"), r)]
        return {"config": {**cfg, "seeds": [seed]}, "certificates": rows, "priors": [], "students": [],
                "split": {"seed": 0}, "summary": {}, "seconds": 1.0, "environment": {}}

    atomic_write_json(tmp_path / "a" / "results.json", part(0, (0.6, 0.62)))
    atomic_write_json(tmp_path / "b" / "results.json", part(1, (0.6, 0.66)))
    res = merge_results([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    assert res.config["seeds"] == [0, 1] and len(res.certificates) == 4
    summ = _strict((tmp_path / "m" / "results.json").read_text())["summary"]
    d = summ["learnt_posteriors"]["distilled_minus_learnt"]["pbb"]
    assert d["mean"] == pytest.approx(0.04) and d["stderr"] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="seeds repeat"):
        merge_results([tmp_path / "a", tmp_path / "a"], tmp_path / "m2")
    bad = part(2, (0.6, 0.6))
    bad["config"]["n_s"] = 999
    atomic_write_json(tmp_path / "c" / "results.json", bad)
    with pytest.raises(ValueError, match="another configuration"):
        merge_results([tmp_path / "a", tmp_path / "c"], tmp_path / "m3")


def _rep_part(seed, split_seed, vals, pq=0.5):
    """A fake one-seed results.json of the scale shape (learnt posteriors with their Q = P bound)."""
    cfg = {**PRESETS["smoke-scale"].to_dict(), "seeds": [seed], "split_seed": split_seed}
    rows = [{"seed": seed, "prior": p, "student": st, "loss": "zero_one", "risk_upper": v, "test_gibbs_risk": v - 0.02,
             "gap": 0.02, "n_s": 500, "mean_term": 1.0, "variance_term": 0.5, "prior_heldout_bound": pq,
             "confidence": 0.965, "vacuous": False, "certificate": {"delta": 0.025, "delta_mc": 0.01}}
            for (p, st), v in zip((("learnt", "pbb"), ("distilled", "pbb"), ("teacher", "pbb@airbench94")), vals)]
    split = {"n_total": 1000, "n_t": 500, "n_s": 500, "seed": split_seed, "cert_sha256": f"{split_seed:064d}"}
    return {"config": cfg, "certificates": rows, "priors": [], "students": [], "split": split, "summary": {},
            "seconds": 60.0, "environment": {"executor": "local", "threads": 2},
            "teachers": [{"seed": seed, "test_acc": 0.9}]}


def test_merge_across_split_seeds_gives_replicate_intervals(tmp_path):
    """Issue 28: one run per seed, each its own split; the merged summary's differences carry t intervals
    over the replicates (scipy's t interval as the oracle), and its unit is the split."""
    from scipy import stats as sps

    from kdbounds._io import atomic_write_json
    from kdbounds.studies.certify_students import merge_results, readme_table

    vals = {0: (0.60, 0.58, 0.55), 1: (0.62, 0.57, 0.54), 2: (0.61, 0.60, 0.56)}
    for s, v in vals.items():
        atomic_write_json(tmp_path / f"s{s}" / "results.json", _rep_part(s, s, v))
    res = merge_results([tmp_path / f"s{s}" for s in vals], tmp_path / "m")
    d = _strict((tmp_path / "m" / "results.json").read_text())
    assert d["config"]["split_seed"] == [0, 1, 2] and [c["split_seed"] for c in d["certificates"]][::3] == [0, 1, 2]
    assert [r["seed"] for r in d["split"]["replicates"]] == [0, 1, 2] and d["split"]["n_s"] == 500
    rep = d["summary"]["replicates"]
    assert rep["unit"] == "split" and rep["n"] == 3
    dmb = np.array([v[1] - v[0] for v in vals.values()])
    lo, hi = sps.t.interval(0.95, 2, loc=dmb.mean(), scale=sps.sem(dmb))
    got = rep["distilled_minus_learnt"]["pbb"]
    assert (got["mean"], got["ci95_low"], got["ci95_high"]) == (pytest.approx(dmb.mean()), pytest.approx(lo),
                                                                 pytest.approx(hi))
    pq = rep["posterior_minus_prior_alone"]["teacher/pbb@airbench94"]
    assert pq["values"] == pytest.approx([v[2] - 0.5 for v in vals.values()])
    # the teacher-architecture posteriors count as learnt posteriors (they were left out before)
    assert d["summary"]["lowest_certified_learnt_posterior"]["student"] == "pbb@airbench94"
    table = readme_table(d)
    assert "each seed its own split: split seeds 0, 1, 2" in table and "95 % t interval" in table
    assert f"[{lo:+.3f}, {hi:+.3f}]" in table
    assert res.summary == d["summary"]


def test_merge_refuses_a_split_seed_that_recorded_two_splits_and_names_the_differing_setting(tmp_path):
    from kdbounds._io import atomic_write_json
    from kdbounds.studies.certify_students import merge_results

    a, b = _rep_part(0, 0, (0.6, 0.6, 0.6)), _rep_part(1, 0, (0.6, 0.6, 0.6))
    b["split"]["cert_sha256"] = "f" * 64
    atomic_write_json(tmp_path / "a" / "results.json", a)
    atomic_write_json(tmp_path / "b" / "results.json", b)
    with pytest.raises(ValueError, match="another split for split seed 0"):
        merge_results([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    c = _rep_part(2, 2, (0.6, 0.6, 0.6))
    c["config"]["pbb_epochs"] = 5
    atomic_write_json(tmp_path / "c" / "results.json", c)
    with pytest.raises(ValueError, match="differs in pbb_epochs"):
        merge_results([tmp_path / "a", tmp_path / "c"], tmp_path / "m2")
    # seeds sharing one split are replicates of training and draws only: the summary says so
    b["split"] = a["split"]
    atomic_write_json(tmp_path / "b" / "results.json", b)
    res = merge_results([tmp_path / "a", tmp_path / "b"], tmp_path / "m3")
    assert res.summary["replicates"]["unit"] == "seed on one split"


def test_headline_is_the_named_certificate_at_its_own_confidence_not_the_minimum():
    """The pre-registered headline (HEADLINE: pbkd on the teacher's net, prior (c)) is reported per seed at the
    row's own confidence even when another row is lower; the minimum keeps its union-bound confidence."""
    from kdbounds.studies.certify_students import HEADLINE

    rows = _rep_part(0, 0, (0.30, 0.12, 0.20))["certificates"]  # pbb on (d) is the lowest, not the headline
    rows.append({**rows[2], "student": "pbkd@airbench94", "risk_upper": 0.19})
    rows.append({**rows[2], "student": "pbkd", "risk_upper": 0.05})  # pbkd on the student net: not the headline
    s = summarise(rows)
    assert HEADLINE == {"prior": "teacher", "posterior": "pbkd", "on_teacher_arch": True}
    assert [(r["student"], r["risk_upper"], r["confidence"]) for r in s["headline"]["rows"]] == [
        ("pbkd@airbench94", 0.19, 0.965)]
    low = s["lowest_certified_learnt_posterior"]
    assert low["risk_upper"] == 0.05 and low["confidence"] == pytest.approx(1 - 5 * 0.035)


def test_merged_replicates_are_in_numeric_split_seed_order(tmp_path):
    from kdbounds._io import atomic_write_json
    from kdbounds.studies.certify_students import merge_results

    for s in (10, 2):
        atomic_write_json(tmp_path / f"s{s}" / "results.json", _rep_part(s, s, (0.6, 0.6, 0.6)))
    res = merge_results([tmp_path / "s10", tmp_path / "s2"], tmp_path / "m")
    assert [r["seed"] for r in res.split["replicates"]] == [2, 10]


def test_findings_say_which_rows_miss_the_goals():
    """README's goal lines name every row above the goal (the headline's 0.15, the 0.05 certified − held-out gap)
    and say "met" only when none is — a value just above the limit (0.15003) is not rounded into the goal."""
    from kdbounds.studies.certify_students import GOALS, _findings

    rows = _rep_part(0, 0, (0.30, 0.12, 0.20))["certificates"]
    head = {**rows[2], "student": "pbkd@airbench94", "risk_upper": 0.15003, "gap": 0.01}
    lines = _findings([{**r, "gap": 0.02} for r in rows] + [head])
    assert GOALS == {"risk": 0.15, "gap": 0.05}
    risk = next(ln for ln in lines if "headline certified" in ln)
    assert "**not met** by 1 of 1" in risk and "0.15003" in risk
    gap = next(ln for ln in lines if "held-out Gibbs risk ≤ 0.05" in ln)
    assert gap.endswith("met by all 4.")
    lines = _findings([{**r, "gap": 0.02} for r in rows] + [{**head, "risk_upper": 0.15, "gap": 0.0501}])
    assert next(ln for ln in lines if "headline certified" in ln).endswith("met by all 1.")
    gap = next(ln for ln in lines if "held-out Gibbs risk ≤ 0.05" in ln)
    assert "**not met** by 1 of 4" in gap and "`teacher/pbkd@airbench94` seed 0 0.0501" in gap


def test_minimum_over_many_certificates_says_when_the_union_bound_proves_nothing():
    # 32 learnt posteriors at 0.965 each: 1 - 32 x 0.035 < 0; README printed "holds at 0.000" before
    from kdbounds.studies.certify_students import _union_words

    assert _union_words(24, 0.965) == "it holds at 0.160 (union bound)"
    words = _union_words(32, 0.965)
    assert words.startswith("it holds at no confidence") and "32 × 0.035 < 0" in words
    assert "0.000" not in words
