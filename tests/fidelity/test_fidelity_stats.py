"""Seed-level statistics of kdbounds.fidelity against scipy and hand formulas."""

from __future__ import annotations

import itertools
import warnings
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from kdbounds.fidelity import (
    FidelityReport,
    MetricEstimate,
    compare_groups,
    compare_methods,
    fidelity_report,
    holm_adjust,
)

A = np.array([0.712, 0.698, 0.731, 0.705, 0.722, 0.690, 0.717])
B = np.array([0.664, 0.701, 0.672, 0.655, 0.689])


def test_welch_against_scipy_and_hand_df():
    c = compare_groups(A, B, ("kd", "rcd"))
    ref = stats.ttest_ind(A, B, equal_var=False)
    assert c.welch_t == pytest.approx(ref.statistic, rel=1e-12)
    assert c.welch_p == pytest.approx(ref.pvalue, rel=1e-10)
    # Welch–Satterthwaite by hand
    va, vb = A.var(ddof=1) / len(A), B.var(ddof=1) / len(B)
    df = (va + vb) ** 2 / (va**2 / (len(A) - 1) + vb**2 / (len(B) - 1))
    assert c.welch_df == pytest.approx(df, rel=1e-12)
    assert c.welch_df == pytest.approx(ref.df, rel=1e-12)
    ci = ref.confidence_interval(0.95)
    assert (c.diff_ci_low, c.diff_ci_high) == (pytest.approx(ci.low, rel=1e-10), pytest.approx(ci.high, rel=1e-10))
    assert c.diff == pytest.approx(A.mean() - B.mean())
    assert (c.n_a, c.n_b, c.name_a, c.name_b) == (7, 5, "kd", "rcd")


def test_mann_whitney_and_effect_sizes_against_hand():
    c = compare_groups(A, B, ("kd", "rcd"))
    ref = stats.mannwhitneyu(A, B, alternative="two-sided")
    assert c.mwu_u == ref.statistic and c.mwu_p == pytest.approx(ref.pvalue)
    # CLES by brute force over all pairs
    wins = sum((a > b) + 0.5 * (a == b) for a, b in itertools.product(A, B))
    assert c.cles == pytest.approx(wins / (len(A) * len(B)))
    assert c.rank_biserial == pytest.approx(2 * c.cles - 1)
    sp = math.sqrt(((len(A) - 1) * A.var(ddof=1) + (len(B) - 1) * B.var(ddof=1)) / (len(A) + len(B) - 2))
    d = (A.mean() - B.mean()) / sp
    assert c.cohens_d == pytest.approx(d, rel=1e-12)
    # Hedges: exact J vs the classic approximation 1 − 3/(4ν − 1), ν = 10
    assert c.hedges_g == pytest.approx(d * (1 - 3 / (4 * 10 - 1)), rel=2e-3)
    assert abs(c.hedges_g) < abs(c.cohens_d)


def test_hedges_exact_small_sample():
    # ν = 2: J = Γ(1) / (1 · Γ(½)) = 1/√π
    c = compare_groups([1.0, 2.0], [0.0, 0.5], ("a", "b"))
    assert c.hedges_g == pytest.approx(c.cohens_d / math.sqrt(math.pi), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    a=st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=2, max_size=12),
    b=st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=2, max_size=12),
)
def test_random_samples_match_scipy(a, b):
    a, b = np.array(a, dtype=float), np.array(b, dtype=float)
    c = compare_groups(a, b)
    mw = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert c.mwu_u == pytest.approx(mw.statistic)
    assert 0 <= c.cles <= 1 and -1 <= c.rank_biserial <= 1
    if c.note:  # both constant
        assert a.std() == 0 and b.std() == 0
        return
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    if se < 1e-6 * (abs(a).max() + abs(b).max() + 1):
        return  # catastrophic cancellation region: scipy itself warns
    with warnings.catch_warnings():  # scipy warns about cancellation on near-constant samples
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = stats.ttest_ind(a, b, equal_var=False)
    assert c.welch_t == pytest.approx(ref.statistic, rel=1e-6, abs=1e-9)
    assert c.welch_p == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)
    assert c.diff_ci_low <= c.diff <= c.diff_ci_high


def test_degenerate_constant_groups():
    c = compare_groups([0.5, 0.5, 0.5], [0.5, 0.5], ("kd", "rcd"))
    assert (c.welch_t, c.welch_p, c.cohens_d) == (0.0, 1.0, 0.0) and "zero variance" in c.note
    c = compare_groups([0.7, 0.7], [0.5, 0.5], ("kd", "rcd"))
    assert c.welch_t == math.inf and c.welch_p == 0.0 and c.diff_ci_low == pytest.approx(0.2)


def test_fewer_than_two_seeds_refused():
    with pytest.raises(ValueError, match=r"group 'kd' has 1 seed\(s\).*at least 2 seeds per group"):
        compare_groups([0.7], [0.5, 0.6], ("kd", "rcd"))
    with pytest.raises(ValueError, match=r"group 'siddo' has 0 seed"):
        compare_groups([0.7, 0.8], [], ("kd", "siddo"))
    with pytest.raises(ValueError, match="NaN"):
        compare_groups([0.7, float("nan")], [0.5, 0.6])
    with pytest.raises(ValueError, match=r"group 'rcd' has 1 seed"):
        compare_methods({"kd": [{"agreement": 0.9}, {"agreement": 0.8}], "rcd": [{"agreement": 0.7}]})


def test_holm_hand_example():
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm_adjust([]) == []


def _fake_results(seed=0, n_seeds=5):
    rng = np.random.default_rng(seed)
    out = {}
    for g, base_wrong in (("kd", 0.55), ("rcd", 0.35), ("siddo", 0.38), ("alone", 0.36)):
        reps = []
        for _ in range(n_seeds):
            reps.append(
                {
                    "agreement": 0.85 + 0.01 * rng.standard_normal(),
                    "agreement_teacher_correct": 0.92 + 0.01 * rng.standard_normal(),
                    "agreement_teacher_wrong": {"value": base_wrong + 0.02 * rng.standard_normal(), "stderr": 0.01, "n": 100},
                    "js_divergence": 0.05 + 0.005 * rng.standard_normal(),
                }
            )
        out[g] = reps
    return out


def test_compare_methods_table_and_dicts():
    res = _fake_results()
    s = compare_methods(res, reference="kd")
    assert s.metrics == ("agreement", "agreement_teacher_correct", "agreement_teacher_wrong", "js_divergence")
    assert len(s.comparisons) == 4 * 3
    rows = s.rows()
    row = next(r for r in rows if r["metric"] == "agreement_teacher_wrong" and r["group"] == "rcd")
    kd = [r["agreement_teacher_wrong"]["value"] for r in res["kd"]]
    rcd = [r["agreement_teacher_wrong"]["value"] for r in res["rcd"]]
    direct = compare_groups(kd, rcd, ("kd", "rcd"))
    assert row["welch_p"] == pytest.approx(direct.welch_p) and row["diff"] == pytest.approx(direct.diff)
    assert row["welch_p_holm"] >= row["welch_p"]
    assert row["welch_p"] < 1e-4  # a clear simulated effect is detected
    text = str(s)
    assert "agreement_teacher_wrong" in text and "Welch p" in text and "siddo" in text
    json.dumps(s.to_dict(), allow_nan=False)
    assert s.group_stats["agreement"]["kd"][2] == 5
    # a subset of metrics, explicit
    s2 = compare_methods(res, reference="kd", metrics=["js_divergence"])
    assert len(s2.comparisons) == 3
    with pytest.raises(KeyError, match="no metric 'nope'"):
        compare_methods(res, metrics=["nope"])
    with pytest.raises(ValueError, match="reference group 'vid'"):
        compare_methods(res, reference="vid")


def test_compare_methods_with_reports_and_undefined_metric():
    rng = np.random.default_rng(1)
    import torch

    results = {}
    for g, noise in (("kd", 0.5), ("alone", 2.0)):
        reps = []
        for s in range(3):
            zt = torch.tensor(rng.normal(size=(300, 10)) * 3)
            zs = zt + noise * torch.tensor(rng.normal(size=(300, 10)))
            y = zt.argmax(1)
            y[:60] = (y[:60] + 1) % 10  # the teacher is wrong on 60 inputs
            reps.append(fidelity_report(zs, zt, y, n_boot=20))
        results[g] = reps
    # make one 'alone' seed undefined on the teacher-wrong subset -> still 2 seeds left
    d = results["alone"][0].to_dict()
    d["agreement_teacher_wrong"] = MetricEstimate(float("nan"), float("nan"), 0).to_dict()
    results["alone"][0] = FidelityReport.from_dict(d)
    s = compare_methods(results, reference="kd")
    assert "agreement_teacher_wrong" in s.metrics
    assert s.group_stats["agreement_teacher_wrong"]["alone"][2] == 2
    kd_agree = [r.agreement.value for r in results["kd"]]
    al_agree = [r.agreement.value for r in results["alone"]]
    c = next(c for c in s.comparisons if c.metric == "agreement")
    assert c.diff == pytest.approx(np.mean(kd_agree) - np.mean(al_agree))
    assert c.diff > 0
    # with 2 undefined seeds the default metric is skipped, not fatal; explicit request raises
    d2 = results["alone"][1].to_dict()
    d2["agreement_teacher_wrong"] = MetricEstimate(float("nan"), float("nan"), 0).to_dict()
    results["alone"][1] = FidelityReport.from_dict(d2)
    s = compare_methods(results, reference="kd")
    assert "agreement_teacher_wrong" not in s.metrics
    assert s.skipped and s.skipped[0][0] == "agreement_teacher_wrong"
    assert "skipped agreement_teacher_wrong" in str(s)
    with pytest.raises(ValueError, match="fewer than 2 seeds"):
        compare_methods(results, reference="kd", metrics=["agreement_teacher_wrong"])


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_one_sided_alternatives_match_scipy(alternative):
    c = compare_groups(A, B, alternative=alternative)
    assert c.welch_p == pytest.approx(stats.ttest_ind(A, B, equal_var=False, alternative=alternative).pvalue, rel=1e-10)
    assert c.mwu_p == pytest.approx(stats.mannwhitneyu(A, B, alternative=alternative).pvalue, rel=1e-10)


# ----------------------------------------------------------------------------------------------
# mean_interval: the replicate-level interval of certify_students' multi-seed summary
# ----------------------------------------------------------------------------------------------
def test_mean_interval_equals_scipy_t_interval():
    from scipy import stats as sps

    from kdbounds.stats import mean_interval

    x = [0.12, -0.03, 0.07, 0.01]
    e = mean_interval(x, level=0.9)
    lo, hi = sps.t.interval(0.9, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert (e.value, e.ci_low, e.ci_high, e.n, e.level) == (pytest.approx(np.mean(x)), pytest.approx(lo),
                                                           pytest.approx(hi), 4, 0.9)
    assert e.stderr == pytest.approx(sps.sem(x))


def test_mean_interval_covers_at_its_level_for_three_replicates():
    from kdbounds.stats import mean_interval

    rng = np.random.default_rng(3)
    hits = [(e.ci_low <= 0.5 <= e.ci_high) for e in
            (mean_interval(rng.normal(0.5, 0.2, size=3)) for _ in range(4000))]
    assert abs(np.mean(hits) - 0.95) < 0.012  # binomial sd 0.0034: a normal quantile (0.87) would fail


def test_mean_interval_one_replicate_has_no_interval_and_bad_input_is_named():
    from kdbounds.stats import mean_interval

    e = mean_interval([0.3])
    assert e.value == 0.3 and e.stderr == np.inf and e.ci_low is None
    for bad, msg in (([], "diffs: expected a non-empty"), ([0.1, np.nan], "diffs: expected finite")):
        with pytest.raises(ValueError, match=msg):
            mean_interval(bad, name="diffs")
    with pytest.raises(ValueError, match="level: expected"):
        mean_interval([0.1, 0.2], level=95)


def test_printed_intervals_stay_in_the_range_a_difference_can_take():
    """Two seeds per group: the Welch t interval of an agreement difference reaches beyond [-1, 1] (oracle: scipy's
    t quantile, computed here). The table prints it cut to [-1, 1] with a ``*`` and a line that says why; the raw
    bounds stay in ``rows()``. An interval inside the range is printed as it is."""
    import re

    res = {"kd": [{"agreement": 0.1}, {"agreement": 0.9}], "rcd": [{"agreement": 0.5}, {"agreement": 0.52}],
           "siddo": [{"agreement": 0.1 + 0.001 * i} for i in range(2)]}
    s = compare_methods(res, reference="kd", metrics=["agreement"])
    row = next(r for r in s.rows() if r["group"] == "rcd")
    se = math.sqrt(np.var([0.1, 0.9], ddof=1) / 2 + np.var([0.5, 0.52], ddof=1) / 2)
    half = stats.t.ppf(0.975, row["welch_df"]) * se
    assert row["diff_ci_low"] == pytest.approx(row["diff"] - half) and row["diff_ci_low"] < -1 < 1 < row["diff_ci_high"]
    text = str(s)
    shown = [(float(lo), float(hi)) for lo, hi in re.findall(r"\[([+-]\d\.\d+)\*?, ([+-]\d\.\d+)\*?\]", text)]
    assert len(shown) == 2 and all(-1 <= lo <= hi <= 1 for lo, hi in shown)
    assert "[-1.0000*, +1.0000*]" in text and "cut to the range the difference can take" in text
    assert "2 seeds per group" in text
    tight = compare_methods({"kd": [{"agreement": 0.50}, {"agreement": 0.51}, {"agreement": 0.52}],
                             "rcd": [{"agreement": 0.40}, {"agreement": 0.41}, {"agreement": 0.42}]},
                            reference="kd", metrics=["agreement"])
    assert "*" not in str(tight) and "cut to the range" not in str(tight)
