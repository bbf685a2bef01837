"""BROJA PID: known answers, identities, symmetries, an independent 2x2x2 oracle, bad input."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from kdbounds.pid import PIDSolverError, broja_pid, broja_pid_from_counts, dual_lower_bound
from kdbounds.pid._info import conditional_mi_yt_given_s, entropy, mi_terms

LN2 = np.log(2.0)
TOL = 1e-5


def xor_law() -> np.ndarray:
    p = np.zeros((2, 2, 2))
    for t in range(2):
        for s in range(2):
            p[t ^ s, t, s] = 0.25
    return p


def and_law() -> np.ndarray:
    p = np.zeros((2, 2, 2))
    for t in range(2):
        for s in range(2):
            p[t & s, t, s] = 0.25
    return p


def copy_law() -> np.ndarray:
    p = np.zeros((2, 2, 2))
    p[0, 0, 0] = p[1, 1, 1] = 0.5
    return p


def unique_t_law() -> np.ndarray:
    p = np.zeros((2, 2, 2))
    for y in range(2):
        for s in range(2):
            p[y, y, s] = 0.25
    return p


def atoms(r) -> np.ndarray:
    return np.array([r.redundancy, r.unique_t, r.unique_s, r.synergy])


@pytest.mark.parametrize(
    "law, expected",
    [
        (xor_law, [0, 0, 0, LN2]),
        (copy_law, [LN2, 0, 0, 0]),
        (unique_t_law, [0, LN2, 0, 0]),
    ],
)
def test_known_answers(law, expected):
    r = broja_pid(law())
    np.testing.assert_allclose(atoms(r), expected, atol=TOL)
    assert r.status == "optimal"


def test_and_gate_literature_values():
    # Bertschinger et al. 2014 / Griffith & Koch: AND has Uni = 0, Red = I(Y;T) = 0.3113 bits,
    # Syn = 0.5 bits.
    r = broja_pid(and_law(), units="bits")
    h = -(0.25 * np.log2(0.25) + 0.75 * np.log2(0.75))
    red = h - 0.5  # I(Y;T) = H(Y) - H(Y|T) = h - 0.5 * 1 bit
    np.testing.assert_allclose(atoms(r), [red, 0, 0, 0.5], atol=TOL)
    assert r.units == "bits"


def test_units_round_trip():
    r = broja_pid(xor_law())
    b = r.in_units("bits")
    assert b.synergy == pytest.approx(1.0, abs=TOL)
    assert b.in_units("nats").synergy == pytest.approx(r.synergy)
    assert set(r.to_dict()) >= {"redundancy", "unique_t", "unique_s", "synergy", "status", "duality_gap"}
    assert "q_star" not in r.to_dict()


def _random_law(draw_probs, shape) -> np.ndarray:
    p = np.asarray(draw_probs, dtype=float).reshape(shape)
    return p / p.sum()


laws = st.tuples(st.integers(2, 3), st.integers(2, 3), st.integers(2, 3)).flatmap(
    lambda sh: st.tuples(
        st.just(sh),
        st.lists(
            st.one_of(st.just(0.0), st.floats(0.01, 1.0)),
            min_size=int(np.prod(sh)),
            max_size=int(np.prod(sh)),
        ).filter(lambda v: sum(v) > 0.05),
    )
)


@settings(max_examples=40, deadline=None)
@given(laws)
def test_identities_and_nonnegativity(case):
    shape, probs = case
    p = _random_law(probs, shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = broja_pid(p)
    mi_yt, mi_ys, mi_yts = mi_terms(p)
    a = atoms(r)
    assert np.all(a >= 0)
    assert r.redundancy + r.unique_t == pytest.approx(mi_yt, abs=1e-6)
    assert r.redundancy + r.unique_s == pytest.approx(mi_ys, abs=1e-6)
    assert a.sum() == pytest.approx(mi_yts, abs=1e-6)
    assert r.identity_residual < 1e-6
    assert r.marginal_violation < 1e-10
    # Q* is in Δ_P and no worse than the two known feasible points
    q = r.q_star
    np.testing.assert_allclose(q.sum(axis=2), p.sum(axis=2), atol=1e-10)
    np.testing.assert_allclose(q.sum(axis=1), p.sum(axis=1), atol=1e-10)
    assert r.mi_yts_q <= mi_yts + 1e-12
    # Red <= min(I(Y;T), I(Y;S)) (since the uniques are >= 0)
    assert r.redundancy <= min(mi_yt, mi_ys) + 1e-9


@settings(max_examples=30, deadline=None)
@given(laws, st.randoms(use_true_random=False))
def test_symmetry_and_relabelling(case, rnd):
    shape, probs = case
    p = _random_law(probs, shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = broja_pid(p)
        sw = broja_pid(np.swapaxes(p, 1, 2))
        perms = [rnd.sample(range(n), n) for n in p.shape]
        rl = broja_pid(p[np.ix_(*perms)])
    np.testing.assert_allclose(atoms(sw), [r.redundancy, r.unique_s, r.unique_t, r.synergy], atol=1e-6)
    np.testing.assert_allclose(atoms(rl), atoms(r), atol=1e-6)


def _oracle_222(p: np.ndarray) -> float:
    """min_{Q in Δ_P} I_Q(Y;T,S) for 2x2x2 laws: Δ_P is a box in (Q(0,0,0|y=0), Q(0,0,0|y=1)) (independent)."""
    pyt, pys = p.sum(2), p.sum(1)
    py = p.sum((1, 2))
    lo = np.maximum(0.0, pyt[:, 0] + pys[:, 0] - py)
    hi = np.minimum(pyt[:, 0], pys[:, 0])

    def build(a):
        q = np.empty((2, 2, 2))
        q[:, 0, 0] = a
        q[:, 0, 1] = pyt[:, 0] - a
        q[:, 1, 0] = pys[:, 0] - a
        q[:, 1, 1] = py - pyt[:, 0] - pys[:, 0] + a
        return np.maximum(q, 0.0)

    def f(a):
        return mi_terms(build(a))[2]

    # f is convex in (a0, a1), so the partial minimum over a1 is convex in a0: nested 1-D searches
    opts = {"xatol": 1e-13, "maxiter": 500}

    def inner(a0: float) -> float:
        r = minimize_scalar(lambda a1: f(np.array([a0, a1])), bounds=(lo[1], hi[1]), method="bounded", options=opts)
        return float(r.fun)

    res = minimize_scalar(inner, bounds=(lo[0], hi[0]), method="bounded", options=opts)
    return float(res.fun)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.02, 1.0), min_size=8, max_size=8))
def test_against_independent_222_oracle(probs):
    p = _random_law(probs, (2, 2, 2))
    r = broja_pid(p)
    assert r.mi_yts_q == pytest.approx(_oracle_222(p), abs=1e-6)


def test_local_optimality_along_cycles():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(4 * 4 * 4)).reshape(4, 4, 4)
    r = broja_pid(p)
    q = r.q_star
    f0 = mi_terms(q)[2]
    for _ in range(300):
        y = rng.integers(4)
        t1, t2 = rng.choice(4, 2, replace=False)
        s1, s2 = rng.choice(4, 2, replace=False)
        d = np.zeros_like(q)
        d[y, t1, s1] = d[y, t2, s2] = 1.0
        d[y, t1, s2] = d[y, t2, s1] = -1.0
        for eps in (1e-4, -1e-4):
            cand = q + eps * d
            if cand.min() >= 0:
                assert mi_terms(cand)[2] >= f0 - 1e-9
    # the certified dual bound is below the primal value and close to it
    h_y = entropy(p.sum((1, 2)))
    lb = dual_lower_bound(q, p)
    assert lb <= r.mi_yts_q - h_y + 1e-12
    assert r.duality_gap < 1e-5


def test_uniques_are_conditional_mi_of_q_star():
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(27) * 0.3).reshape(3, 3, 3)
    r = broja_pid(p)
    assert r.unique_t == pytest.approx(conditional_mi_yt_given_s(r.q_star), abs=1e-12)


def test_zero_probability_cells_embed():
    # XOR padded with unused symbols on every axis gives the same atoms
    big = np.zeros((3, 4, 3))
    big[:2, 1:3, :2] = xor_law()
    np.testing.assert_allclose(atoms(broja_pid(big)), [0, 0, 0, LN2], atol=TOL)
    # a law with structural zeros inside the support rectangle
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5 * 5 * 5)).reshape(5, 5, 5)
    p[rng.random(p.shape) < 0.5] = 0.0
    p /= p.sum()
    r = broja_pid(p)
    assert r.q_star[(p.sum(2)[:, :, None] == 0) | (p.sum(1)[:, None, :] == 0)].max(initial=0) == 0
    assert r.identity_residual < 1e-6


def test_counts_entry_point():
    counts = xor_law() * 400
    r = broja_pid_from_counts(counts)
    assert r.synergy == pytest.approx(LN2, abs=TOL)
    assert broja_pid(counts, normalize=True).synergy == pytest.approx(LN2, abs=TOL)


def test_10x10x10_solves_fast():
    rng = np.random.default_rng(11)
    p = rng.dirichlet(np.ones(1000)).reshape(10, 10, 10)
    broja_pid(rng.dirichlet(np.ones(8)).reshape(2, 2, 2))  # warm cvxpy import
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = broja_pid(p)
    elapsed = time.perf_counter() - t0
    assert elapsed < 20.0  # ~0.5-4 s on 2 shared cores; target < 5 s, measured in benchmarks
    assert r.duality_gap < 1e-4
    assert r.identity_residual < 1e-6


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (np.full((2, 2), 0.25), ValueError, "3-D"),
        (np.array([[[0.5, 0.6], [0, 0]], [[0, 0], [0, -0.1]]]), ValueError, "negative"),
        (np.full((2, 2, 2), 0.2), ValueError, "sums to"),
        (np.full((2, 2, 2), np.nan), ValueError, "NaN"),
        ("abc", TypeError, "numeric"),
        (np.zeros((0, 2, 2)), ValueError, "empty"),
    ],
)
def test_bad_input(bad, exc, match):
    with pytest.raises(exc, match=match):
        broja_pid(bad)


def test_bad_options():
    with pytest.raises(ValueError, match="units"):
        broja_pid(xor_law(), units="dits")
    with pytest.raises(ValueError, match="tol"):
        broja_pid(xor_law(), tol=-1)
    with pytest.raises(ValueError, match="all-zero"):
        broja_pid_from_counts(np.zeros((2, 2, 2)))


def test_unknown_solver_is_a_clear_error_listing_installed_solvers():
    with pytest.raises(ValueError, match=r"solver: expected one of .*CLARABEL.*got 'NOT_A_SOLVER'"):
        broja_pid(xor_law(), solver="NOT_A_SOLVER")


def test_solver_failure_is_a_clear_error(monkeypatch):
    import cvxpy as cp

    def fail(self, *a, **k):
        raise cp.error.SolverError("boom")

    monkeypatch.setattr(cp.Problem, "solve", fail)
    with pytest.raises(PIDSolverError) as info:
        broja_pid(xor_law(), solver="SCS")
    assert info.value.status == "solver_error" and "SCS" in str(info.value)


def test_negative_atoms_are_flagged_not_hidden(monkeypatch):
    # Red >= I_prod(T;S) >= 0 holds by construction (the product law is a candidate), so force a
    # negative unique through the conditional-MI helper to exercise the flagging path.
    import kdbounds.pid.broja as mod

    monkeypatch.setattr(mod, "conditional_mi_yt_given_s", lambda q: -1e-3)
    with pytest.warns(RuntimeWarning, match="below -tol"):
        r = mod.broja_pid(copy_law())
    assert r.status == "negative_atom"
    assert r.unique_t == pytest.approx(-1e-3)
    monkeypatch.setattr(mod, "conditional_mi_yt_given_s", lambda q: -1e-9)
    r = mod.broja_pid(copy_law())
    assert r.unique_t == 0.0 and r.clipped == pytest.approx(1e-9) and r.status == "optimal"
