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

from kdbounds.checks import kendall_tau_b, kendall_tests, permutation_kendall, recipe_kendall


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


# ------------------------------------------------------------------------------------------------ recipes
def _recipe_design(R: int, seeds: int, seed: int):
    """R recipes × ``seeds`` teachers, 2 students per teacher; a recipe effect shared by its teachers."""
    rng = np.random.default_rng(seed)
    effect = rng.normal(size=R)
    recipe_of, sharp, gaps = {}, {}, []
    for r in range(R):
        for s in range(seeds):
            t = f"r{r}/s{s}"
            recipe_of[t] = f"r{r}"
            sharp[t] = float(effect[r] + 0.3 * rng.normal())
            gaps += [(t, float(0.7 * effect[r] + 0.5 * rng.normal())) for _ in range(2)]
    return recipe_of, sharp, gaps


@pytest.mark.parametrize("seed", [0, 3])
def test_recipe_level_p_against_a_full_enumeration_of_recipe_assignments(seed):
    """Oracle: recipe means computed here, every one of the R! assignments of the recipes' mean sharpness to
    their mean gaps enumerated with itertools, τ_b by scipy; and scipy's exact Kendall null (distinct values)."""
    R = 5
    recipe_of, sharp, gaps = _recipe_design(R, 3, seed)
    res = recipe_kendall(sharp, gaps, recipe_of, label="x")
    recipes = sorted(set(recipe_of.values()))
    xs = np.array([np.mean([sharp[t] for t in sharp if recipe_of[t] == r]) for r in recipes])
    ys = np.array([np.mean([np.mean([g for u, g in gaps if u == t]) for t in sharp if recipe_of[t] == r])
                   for r in recipes])
    tau = kendalltau(xs, ys).statistic
    perm = [kendalltau(xs[list(p)], ys).statistic for p in itertools.permutations(range(R))]
    p = float(np.mean(np.abs(perm) >= abs(tau) - 1e-12))
    assert res.unit == "recipe" and res.statistic == "recipe_mean" and res.exact
    assert res.n_recipes == R and res.n_teachers == 3 * R and res.n_students == 6 * R
    assert res.n_permutations == math.factorial(R)
    assert res.tau == pytest.approx(tau, abs=1e-12) and res.p_value == pytest.approx(p, abs=1e-12)
    assert res.p_value == pytest.approx(kendalltau(xs, ys, method="exact").pvalue, abs=1e-12)
    assert res.min_attainable_p == pytest.approx(2 / math.factorial(R))


def test_recipe_level_is_not_the_teacher_level_test():
    """18 teachers of 6 recipes: the teacher-level permutation (within-design) can reach p far below 2/6! = 0.0028,
    the recipe-level test cannot; with one teacher per recipe both are the same test."""
    recipe_of, sharp, gaps = _recipe_design(6, 3, 1)
    rec = recipe_kendall(sharp, gaps, recipe_of)
    teach = permutation_kendall(sharp, gaps, n_perm=2000, seed=0)
    assert rec.n_recipes == 6 and teach.n_teachers == 18 and teach.unit == "teacher"
    assert rec.min_attainable_p == pytest.approx(2 / 720) and teach.min_attainable_p < 1e-3
    one = {t: t for t in sharp}
    same = recipe_kendall(sharp, gaps, one, n_perm=2000, seed=0)
    ref = permutation_kendall(sharp, gaps, n_perm=2000, seed=0)
    assert same.tau == pytest.approx(ref.tau) and same.p_value == pytest.approx(ref.p_value)


def test_recipe_level_errors_name_the_argument():
    recipe_of, sharp, gaps = _recipe_design(3, 2, 0)
    with pytest.raises(ValueError, match="recipe_of"):
        recipe_kendall(sharp, gaps, {t: r for t, r in list(recipe_of.items())[1:]})
    with pytest.raises(ValueError, match="at least 3 recipes"):
        recipe_kendall(sharp, gaps, {t: ("a" if r == "r0" else "b") for t, r in recipe_of.items()})
