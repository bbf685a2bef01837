"""Teacher-level Kendall τ and its permutation test.

Oracles: ``scipy.stats.kendalltau`` (τ_b, and its exact null p-value for distinct values); a brute-force
enumeration of teacher permutations written here with ``itertools`` and scipy's τ as the statistic.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau

from kdbounds.checks import kendall_tau_b, kendall_tests, permutation_kendall


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=3, max_size=12))
def test_tau_b_matches_scipy_with_ties(pairs):
    x, y = [a for a, _ in pairs], [b for _, b in pairs]
    ref = kendalltau(x, y).statistic
    got = kendall_tau_b(x, y)
    if math.isnan(ref):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize("T", [4, 5, 6])
def test_exact_p_equals_scipy_exact_for_one_student_per_teacher(T):
    rng = np.random.default_rng(T)
    sharp = {f"t{i}": float(v) for i, v in enumerate(rng.permutation(T) + rng.random(T) * 0.1)}
    gaps = [(f"t{i}", float(rng.normal())) for i in range(T)]
    res = permutation_kendall(sharp, gaps)
    ref = kendalltau([sharp[t] for t, _ in gaps], [g for _, g in gaps], method="exact")
    assert res.exact and res.n_permutations == math.factorial(T)
    assert res.tau == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert res.min_attainable_p == pytest.approx(2 / math.factorial(T))


def test_four_teachers_can_never_be_significant():
    sharp = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    gaps = [(t, v) for t, v in zip("abcd", [0.1, 0.2, 0.3, 0.4])]  # perfect concordance
    res = permutation_kendall(sharp, gaps)
    assert res.tau == pytest.approx(1.0)
    assert res.p_value == pytest.approx(2 / 24)


@pytest.mark.parametrize("statistic", ["teacher_mean", "pooled"])
def test_permutation_p_against_brute_force_enumeration(statistic):
    rng = np.random.default_rng(1)
    teachers = [f"t{i}" for i in range(5)]
    sharp = {t: float(rng.normal()) for t in teachers}
    gaps = [(t, float(rng.normal() + 0.5 * sharp[t])) for t in teachers for _ in range(3)]
    res = permutation_kendall(sharp, gaps, statistic=statistic)

    def stat(assign):  # assign: teacher -> sharpness
        if statistic == "teacher_mean":
            means = [np.mean([g for tt, g in gaps if tt == t]) for t in teachers]
            return kendalltau([assign[t] for t in teachers], means).statistic
        return kendalltau([assign[t] for t, _ in gaps], [g for _, g in gaps]).statistic

    obs = stat(sharp)
    vals = [sharp[t] for t in teachers]
    hits = [abs(stat(dict(zip(teachers, perm)))) >= abs(obs) - 1e-12 for perm in itertools.permutations(vals)]
    assert res.tau == pytest.approx(obs)
    assert res.p_value == pytest.approx(np.mean(hits), abs=1e-12)
    assert res.n_teachers == 5 and res.n_students == 15


def test_monte_carlo_permutations_beyond_eight_teachers_and_holm():
    rng = np.random.default_rng(2)
    teachers = [f"t{i}" for i in range(10)]
    sharp = {t: float(i) for i, t in enumerate(teachers)}
    gaps = [(t, float(i + rng.normal(scale=0.5))) for i, t in enumerate(teachers)]
    res = permutation_kendall(sharp, gaps, n_perm=4000, seed=0)
    ref = kendalltau(list(sharp.values()), [g for _, g in gaps], method="exact")
    assert not res.exact and res.p_value >= 1 / 4001
    assert res.p_value == pytest.approx(max(ref.pvalue, 1 / 4001), abs=3 * math.sqrt(max(ref.pvalue, 1e-3) / 4000) + 1 / 4001)
    a = permutation_kendall(sharp, gaps, n_perm=2000, seed=1, label="a")
    b = permutation_kendall(sharp, [(t, -g) for t, g in gaps][::-1][:5] + [(t, g) for t, g in gaps][:5],
                            n_perm=2000, seed=1, label="b")
    adj = kendall_tests([a, b])
    ps = sorted([(a.p_value, "a"), (b.p_value, "b")])
    lo, hi = ps[0], ps[1]
    got = {r.label: r.p_holm for r in adj}
    assert got[lo[1]] == pytest.approx(min(1, 2 * lo[0]))
    assert got[hi[1]] == pytest.approx(max(min(1, 2 * lo[0]), hi[0]))


def test_errors_and_undefined():
    with pytest.raises(ValueError, match="3 teachers"):
        permutation_kendall({"a": 1, "b": 2}, [("a", 0.1), ("b", 0.2)])
    with pytest.raises(ValueError, match="no sharpness"):
        permutation_kendall({"a": 1, "b": 2, "c": 3}, [("a", 0.1), ("z", 0.2), ("b", 0.1)])
    res = permutation_kendall({"a": 1, "b": 2, "c": 3}, [("a", 0.1), ("b", 0.1), ("c", 0.1)])
    assert math.isnan(res.tau) and "constant" in res.note
