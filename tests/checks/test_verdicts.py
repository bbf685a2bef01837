"""Verdicts with uncertainty and the multiplicity control.

Oracles: Holm's procedure on a textbook example worked by hand; a brute-force simulation of the
family-wise error over many runs with known true values (which also shows that *no* correction
fails); z thresholds from ``scipy.stats.norm``; the strict JSON parser.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import norm

from kdbounds._io import dumps_strict
from kdbounds.checks import (
    CheckRecord,
    assign_verdicts,
    holm_adjust,
    holm_reject,
    make_record,
    not_defined,
    one_sided_pvalues,
    verdict_counts,
)


def test_holm_textbook_example():
    # p = (0.01, 0.04, 0.03, 0.005), α = 0.05: sorted 0.005 ≤ .05/4, 0.01 ≤ .05/3, 0.03 > .05/2 → stop
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm_reject(p, 0.05).tolist() == [True, False, False, True]
    # adjusted: 4·0.005 = 0.02, 3·0.01 = 0.03, 2·0.03 = 0.06, max(0.06, 1·0.04) = 0.06
    assert holm_adjust(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # all rejected when every p is tiny; none when the smallest fails α/M
    assert holm_reject([1e-6] * 5, 0.05).all()
    assert not holm_reject([0.011, 0.2, 0.3, 0.4, 0.5], 0.05).any()
    # Shaffer's cap: with at most 2 true hypotheses the first threshold is α/2, not α/4
    assert holm_reject([0.02, 0.5, 0.6, 0.7], 0.05, max_true=2).tolist() == [True, False, False, False]
    assert not holm_reject([0.02, 0.5, 0.6, 0.7], 0.05).any()


def test_holm_input_errors():
    with pytest.raises(ValueError, match="alpha"):
        holm_reject([0.1], 1.5)
    with pytest.raises(ValueError, match="pvalues"):
        holm_reject([0.1, float("nan")], 0.05)
    with pytest.raises(ValueError, match="max_true"):
        holm_reject([0.1], 0.05, max_true=0)


def test_single_verdicts_with_standard_errors():
    z = norm.ppf(0.95)  # one check: threshold α/1 for its one-sided tests
    kw = dict(loss="x", assumptions_met=True, assumption="")
    assert make_record("a", "demonstration", side="abs", bound=1.0, observed=1.0 - (z + 0.01) * 0.1,
                       observed_se=0.1, **kw).verdict == "holds"
    assert make_record("a", "demonstration", side="abs", bound=1.0, observed=1.0 - (z - 0.01) * 0.1,
                       observed_se=0.1, **kw).verdict == "inconclusive"
    assert make_record("a", "demonstration", side="abs", bound=1.0, observed=-(1.0 + (z + 0.01) * 0.1),
                       observed_se=0.1, **kw).verdict == "violated"
    assert make_record("a", "demonstration", side="abs", bound=1.0, observed=1.05, observed_se=0.1,
                       **kw).verdict == "inconclusive"
    # point estimate above the bound but within z·SE: not a violation
    assert make_record("a", "demonstration", side="upper", bound=0.0, observed=0.1, observed_se=0.1,
                       **kw).verdict == "inconclusive"
    # lower bounds: observed far above holds, far below is violated
    assert make_record("a", "conditional", side="lower", bound=0.0, observed=0.5, observed_se=0.1,
                       **kw).verdict == "holds"
    assert make_record("a", "conditional", side="lower", bound=0.0, observed=-0.5, observed_se=0.1,
                       **kw).verdict == "violated"
    # exact checks are decided without a family
    r = make_record("a", "demonstration", side="abs", bound=0.2, observed=-0.2, observed_se=0.0, **kw)
    assert r.verdict == "holds" and r.method == "exact" and r.p_holds is None


def test_family_thresholds_grow_with_the_number_of_checks():
    """A check that holds alone becomes inconclusive among 100 (z from α/N, N = 100)."""
    kw = dict(loss="x", assumptions_met=True, assumption="", side="abs", bound=1.0, observed_se=0.1)
    one = make_record("a", "demonstration", observed=1.0 - 2.0 * 0.1, **kw)
    assert one.verdict == "holds"
    others = [make_record(f"b{i}", "demonstration", observed=1.0, **kw) for i in range(99)]
    fam = assign_verdicts([one] + others, 0.05)
    assert fam[0].verdict == "inconclusive" and fam[0].family_size == 100
    z100 = norm.ppf(1 - 0.05 / 100)
    assert fam[0].z == pytest.approx(z100) and one.z == pytest.approx(norm.ppf(0.95))
    # the recorded z is the rule: B ≥ |d̂| + z·SE ⇔ holds, on a sweep across the threshold
    for dz in (-0.02, 0.02):
        r = assign_verdicts([make_record("d", "demonstration", observed=1.0 - (z100 + dz) * 0.1, **kw)] + others,
                            0.05)[0]
        assert r.verdict == ("holds" if dz > 0 else "inconclusive")
    strong = make_record("c", "demonstration", observed=1.0 - (z100 + 0.05) * 0.1, **kw)
    assert assign_verdicts([strong] + others, 0.05)[0].verdict == "holds"


def test_abs_pvalue_far_side_term():
    """p_violated of an abs check adds the far tail: with B = 0 and d̂ = 0 it is 2Φ(0) capped at 1."""
    assert one_sided_pvalues(0.0, 0.0, 1.0, "abs")[1] == pytest.approx(1.0)
    ph, pv = one_sided_pvalues(1.0, 3.0, 1.0, "abs")
    assert ph == pytest.approx(norm.cdf(2.0)) and pv == pytest.approx(norm.cdf(-2.0) + norm.cdf(-4.0))


def _simulate_fwer(method_alpha, n_checks, reps, rng, *, correct=True, method="shaffer"):
    """Run `reps` families with true values on the boundary and count runs with any wrong verdict."""
    bound, se = 1.0, 0.1
    # half the checks have |d| = B exactly (the bound holds: risk of a false "violated"),
    # half |d| = B + 1e-9 (the bound fails: risk of a false "holds")
    true = np.where(np.arange(n_checks) % 2 == 0, bound, bound + 1e-9)
    cov = 0.3 * np.ones((n_checks, n_checks)) + 0.7 * np.eye(n_checks)  # correlated estimates
    L = np.linalg.cholesky(cov)
    errors = 0
    for _ in range(reps):
        d_hat = true + se * (L @ rng.standard_normal(n_checks))
        recs = [make_record(f"c{i}", "conditional", loss="x", side="upper", bound=bound, observed=float(d_hat[i]),
                            observed_se=se, assumptions_met=False, assumption="", alpha=method_alpha)
                for i in range(n_checks)]
        if correct:
            recs = assign_verdicts(recs, method_alpha, method=method)
        wrong = any((r.verdict == "holds" and true[i] > bound) or (r.verdict == "violated" and true[i] <= bound)
                    for i, r in enumerate(recs))
        errors += wrong
    return errors / reps


def test_familywise_error_is_controlled_by_simulation():
    rng = np.random.default_rng(0)
    alpha, reps, n = 0.1, 1500, 10
    fwer = _simulate_fwer(alpha, n, reps, rng)
    mc_se = math.sqrt(alpha * (1 - alpha) / reps)
    assert fwer <= alpha + 3 * mc_se
    assert fwer > alpha / 3  # not absurdly conservative on the boundary
    # plain Holm over the 2N hypotheses is valid too (and more conservative)
    assert _simulate_fwer(alpha, n, reps, rng, method="holm") <= alpha + 3 * mc_se
    # the simulation has power: without the family correction the error rate is far above α
    assert _simulate_fwer(alpha, n, 400, rng, correct=False) > 2 * alpha


def test_not_defined_and_counts_and_strict_json():
    nd = not_defined("thm3b_subgamma_mc", "conditional", loss="clipped_ce", side="abs",
                     reason="different architectures", teacher="t1", student="s1")
    assert nd.verdict == "not_defined" and nd.bound is None
    with pytest.raises(ValueError, match="reason"):
        not_defined("x", "proxy", loss="x", side="abs", reason="")
    r1 = make_record("a", "demonstration", loss="x", side="abs", bound=1.0, observed=0.1, observed_se=0.0,
                     assumptions_met=True, assumption="", teacher="t1", student="s1", inputs={"K": math.inf})
    r2 = make_record("a", "demonstration", loss="x", side="abs", bound=1.0, observed=0.1, observed_se=0.0,
                     assumptions_met=True, assumption="", teacher="t1", student="s2")
    rows = {row["name"]: row for row in verdict_counts([r1, r2, nd])}
    assert rows["a"]["holds"] == 2 and rows["a"]["n_teachers"] == 1 and rows["a"]["n_pairs"] == 2
    text = dumps_strict([r1, nd])
    back = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert back[0]["inputs"]["K"] is None and back[1]["bound"] is None
    with pytest.raises(ValueError, match="kind"):
        CheckRecord("a", "bogus", "holds", "x", "abs", 1.0, 0.0, 0.0, True, "")
    with pytest.raises(ValueError, match="finite"):
        make_record("a", "proxy", loss="x", side="abs", bound=math.nan, observed=0.0, observed_se=0.1,
                    assumptions_met=False, assumption="")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_RANK = {"violated": 0, "inconclusive": 1, "holds": 2}


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["abs", "upper", "lower"]), st.floats(-3, 3), st.floats(0.01, 2), st.floats(0, 3),
       st.floats(0.01, 2), st.integers(1, 50))
def test_verdict_is_monotone_in_the_bound(side, d, se, b, db, n_family):
    """A larger bound (for upper/abs; a smaller one for lower) never turns holds into something worse."""
    kw = dict(loss="x", assumptions_met=True, assumption="", side=side, observed=d, observed_se=se)
    others = [make_record(f"o{i}", "conditional", loss="x", assumptions_met=False, assumption="", side="abs",
                          bound=1.0, observed=1.0, observed_se=0.1) for i in range(n_family - 1)]
    sign = -1.0 if side == "lower" else 1.0
    lo = assign_verdicts([make_record("a", "conditional", bound=sign * b, **kw)] + others, 0.05)[0]
    hi = assign_verdicts([make_record("a", "conditional", bound=sign * (b + db), **kw)] + others, 0.05)[0]
    assert _RANK[hi.verdict] >= _RANK[lo.verdict]
    # p-values of complementary hypotheses: never both small
    assert lo.p_holds + lo.p_violated >= 1.0 - 1e-12
