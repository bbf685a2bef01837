"""theory.md §5 properties 1-10 and 14 as hypothesis tests (random SPD covariances up to condition
number 1e9, means, ranks, dimensions k, d <= 8)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import linear_gaussian as lg

SETTINGS = settings(max_examples=30, deadline=None)
CONDS = [1.0, 10.0, 1e3, 1e6, 1e9]


def rank_r(rng, k, d, r, scale=1.0):
    return scale * (rng.standard_normal((k, r)) @ rng.standard_normal((r, d))) if r > 0 else np.zeros((k, d))


def oracle_kl(MS, SS, MT, ST):
    """Textbook formula with dense solves (only trusted for moderate conditioning)."""
    k, d = MS.shape
    D = MS - MT
    mean = 0.5 * np.trace(D @ np.linalg.solve(ST, D.T))
    R = np.linalg.solve(ST, SS)
    return mean + 0.5 * k * (np.trace(R) - d - np.linalg.slogdet(R)[1])


@st.composite
def instances(draw, max_cond=1e9):
    k = draw(st.integers(1, 8))
    d = draw(st.integers(1, 8))
    r = draw(st.integers(0, min(k, d)))
    seed = draw(st.integers(0, 2**32 - 1))
    conds = [c for c in CONDS if c <= max_cond]
    cT = draw(st.sampled_from(conds))
    cS = draw(st.sampled_from(conds))
    rng = np.random.default_rng(seed)
    sT = 10 ** rng.uniform(-2, 2)
    ST = sT * lg.random_spd(d, rng, cT)
    SS = sT * 10 ** rng.uniform(-1, 1) * lg.random_spd(d, rng, cS)
    MT = rng.standard_normal((k, d)) * 10 ** rng.uniform(-1, 1)
    MS = rank_r(rng, k, d, r, 10 ** rng.uniform(-1, 1))
    return dict(k=k, d=d, r=r, rng=rng, ST=ST, SS=SS, MT=MT, MS=MS)


def ctol(inst):
    """Relative tolerance for quantities whose condition number is that of the covariances."""
    return 1e-8 + 1e-15 * max(np.linalg.cond(inst["ST"]), np.linalg.cond(inst["SS"]))


def kernels(inst):
    return lg.MatrixNormal(inst["MS"], inst["SS"]), lg.MatrixNormal(inst["MT"], inst["ST"])


def close(a, b, rtol=1e-7, atol=1e-10):
    return abs(a - b) <= atol + rtol * max(abs(a), abs(b))


# 1 ------------------------------------------------------------------------------------------
@SETTINGS
@given(instances())
def test_p1_terms_nonnegative_and_sum_to_kl(inst):
    S, T = kernels(inst)
    dec = lg.decompose(S, T, inst["r"])
    assert dec.bias >= 0 and dec.rank_bottleneck >= 0 and dec.variance >= 0 and dec.total >= 0
    assert dec.mean_term >= dec.rank_bottleneck * (1 - 1e-9)
    assert np.isfinite(dec.total)
    assert close(dec.total, dec.bias + dec.rank_bottleneck + dec.variance, 1e-12)
    assert close(dec.total, lg.kl_matrix_normal(S, T), 1e-12)


@SETTINGS
@given(instances(max_cond=1e3))
def test_p1_kl_matches_dense_oracle(inst):
    S, T = kernels(inst)
    assert close(lg.kl_matrix_normal(S, T), oracle_kl(inst["MS"], inst["SS"], inst["MT"], inst["ST"]), 1e-7, 1e-9)


# 2 ------------------------------------------------------------------------------------------
@SETTINGS
@given(instances())
def test_p2_additivity(inst):
    K = lg.kl_matrix_normal(lg.MatrixNormal(inst["MS"], inst["SS"]), lg.MatrixNormal(inst["MT"], inst["ST"]))
    Kmean = lg.kl_matrix_normal(lg.MatrixNormal(inst["MS"], inst["ST"]), lg.MatrixNormal(inst["MT"], inst["ST"]))
    Kcov = lg.kl_matrix_normal(lg.MatrixNormal(inst["MT"], inst["SS"]), lg.MatrixNormal(inst["MT"], inst["ST"]))
    assert close(K, Kmean + Kcov, 1e-10)


# 3 ------------------------------------------------------------------------------------------
@SETTINGS
@given(instances())
def test_p3_zero_conditions(inst):
    T = lg.MatrixNormal(inst["MT"], inst["ST"])
    d0 = lg.decompose(T, T, None)
    assert d0.total == pytest.approx(0.0, abs=1e-12)
    same_cov = lg.MatrixNormal(inst["MS"], inst["ST"])
    assert lg.decompose(same_cov, T, inst["r"]).variance == pytest.approx(0.0, abs=1e-12)
    # teacher mean of rank q <= r: no bottleneck
    rng = inst["rng"]
    q = rng.integers(0, inst["r"] + 1)
    Tq = lg.MatrixNormal(rank_r(rng, inst["k"], inst["d"], q), inst["ST"])
    dq = lg.decompose(lg.MatrixNormal(inst["MS"], inst["SS"]), Tq, inst["r"])
    assert dq.rank_bottleneck <= 1e-10 * max(1.0, dq.mean_term)


# 4 ------------------------------------------------------------------------------------------
def kl_optimal_mean(MT, ST, r):
    L = np.linalg.cholesky(ST)
    Z = np.linalg.solve(L, MT.T).T  # M_T L^{-T}
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    return ((U[:, :r] * s[:r]) @ Vt[:r]) @ L.T


@SETTINGS
@given(instances(max_cond=1e6))
def test_p4_monotone_in_rank_and_optimal_student(inst):
    k, d = inst["k"], inst["d"]
    T = lg.MatrixNormal(inst["MT"], inst["ST"])
    Rs, Ks = [], []
    for r in range(min(k, d) + 1):
        S = lg.MatrixNormal(kl_optimal_mean(inst["MT"], inst["ST"], r), inst["SS"])
        dec = lg.decompose(S, T, r)
        assert dec.bias <= 1e-7 * max(1.0, dec.mean_term)
        Rs.append(dec.rank_bottleneck)
        Ks.append(dec.total)
    assert all(a >= b - 1e-9 * max(1.0, a) for a, b in zip(Rs, Rs[1:]))
    assert all(a >= b - 1e-7 * max(1.0, a) for a, b in zip(Ks, Ks[1:]))
    assert Rs[-1] == 0.0


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.5, 5.0]),
       st.sampled_from([0.25, 0.1]))
def test_p4_student_kernel_teacher_metric_is_kl_optimal(k, d, seed, lam_T, tau_S):
    """lam_S = 0 and n > d make the ridge fit on deterministic labels recover M_T exactly (P = I), so
    the metric='teacher' truncation is the KL-optimal rank-r student: B = 0 and K(r) non-increasing."""
    rng = np.random.default_rng(seed)
    prob = lg.random_problem(d, k, 3 * d + 2, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, lam_T, 0.25)
    prev = np.inf
    for r in range(min(k, d) + 1):
        S = lg.student_kernel(data, T, 0.0, tau_S, rank=r, metric="teacher")
        dec = lg.decompose(S, T, r)
        assert dec.bias <= 1e-7 * max(1.0, dec.mean_term)
        assert dec.total <= prev + 1e-7 * max(1.0, dec.total)
        prev = dec.total
    assert dec.rank_bottleneck == 0.0


# 5 ------------------------------------------------------------------------------------------
@SETTINGS
@given(instances())
def test_p5_eckart_young(inst):
    S, T = kernels(inst)
    dec = lg.decompose(S, T, inst["r"])
    opt = lg.decompose(lg.MatrixNormal(kl_optimal_mean(inst["MT"], inst["ST"], inst["r"]), inst["SS"]), T, inst["r"])
    assert dec.mean_term >= opt.mean_term * (1 - 1e-7) - 1e-10
    if max(np.linalg.cond(inst["ST"]), 1) < 1e7:
        assert close(opt.mean_term, opt.rank_bottleneck, 1e-6, 1e-9)


# 6 ------------------------------------------------------------------------------------------
@SETTINGS
@given(instances(max_cond=1e3))
def test_p6_invariances(inst):
    rng = inst["rng"]
    k, d = inst["k"], inst["d"]
    S, T = kernels(inst)
    base = lg.decompose(S, T, inst["r"])
    O, _ = np.linalg.qr(rng.standard_normal((k, k)))
    Q = rng.standard_normal((d, d)) + 3 * np.eye(d)
    Qinv = np.linalg.inv(Q)

    def reparam(M, C):
        C2 = Qinv.T @ C @ Qinv
        return lg.MatrixNormal(O @ M @ Qinv, 0.5 * (C2 + C2.T))

    dec = lg.decompose(reparam(inst["MS"], inst["SS"]), reparam(inst["MT"], inst["ST"]), inst["r"])
    for name in ("total", "bias", "rank_bottleneck", "variance"):
        a, b = getattr(base, name), getattr(dec, name)
        assert close(a, b, 1e-5, 1e-8 * max(1.0, base.total)), name


# 7 ------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1), st.data())
def test_p7_prediction_energy_and_data_duplication(k, d, seed, data_st):
    rng = np.random.default_rng(seed)
    r = data_st.draw(st.integers(0, min(k, d)))
    prob = lg.random_problem(d, k, d + 3, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.0, 0.3)
    S = lg.student_kernel(data, T, 0.0, 0.6, rank=r)
    dec = lg.decompose(S, T, r)
    assert close(dec.rank_bottleneck, lg.prediction_energy_bottleneck(data.X, T.mean, 0.3, r), 1e-7, 1e-10)
    dup = lg.Dataset(np.hstack([data.X, data.X]), np.hstack([data.Y, data.Y]))
    T2 = lg.teacher_kernel(dup, 0.0, 0.3)
    S2 = lg.student_kernel(dup, T2, 0.0, 0.6, rank=r)
    dec2 = lg.decompose(S2, T2, r)
    assert close(dec2.rank_bottleneck, 2 * dec.rank_bottleneck, 1e-7, 1e-10)
    assert close(dec2.variance, dec.variance, 1e-8, 1e-12)


# 8 ------------------------------------------------------------------------------------------
@SETTINGS
@given(instances(), st.floats(1e-3, 1e3))
def test_p8_scaling_covariances(inst, alpha):
    S, T = kernels(inst)
    base = lg.decompose(S, T, inst["r"])
    dec = lg.decompose(lg.MatrixNormal(inst["MS"], alpha * inst["SS"]), lg.MatrixNormal(inst["MT"], alpha * inst["ST"]), inst["r"])
    tol = ctol(inst)
    assert close(dec.mean_term, base.mean_term / alpha, tol, 1e-12)
    assert close(dec.rank_bottleneck, base.rank_bottleneck / alpha, tol, 1e-12)
    assert close(dec.bias, base.bias / alpha, 1e-6, tol * max(1.0, base.mean_term / alpha))
    assert close(dec.variance, base.variance, tol, 1e-12)


# 9 ------------------------------------------------------------------------------------------
@SETTINGS
@given(instances(max_cond=1e6), st.integers(1, 8), st.sampled_from([0.0, 0.1, 1.0]))
def test_p9_predictive_below_parameter_kl(inst, m, nu):
    rng = inst["rng"]
    d = inst["d"]
    if nu == 0.0:
        m = min(m, d)
    Xs = rng.standard_normal((d, m))
    S, T = kernels(inst)
    K = lg.kl_matrix_normal(S, T)
    Kp = lg.predictive_kl(S, T, Xs, nu)
    assert Kp >= 0
    assert Kp <= K * (1 + 1e-7) + 1e-9


# 10 -----------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(2, 12), st.integers(0, 2**32 - 1),
       st.floats(0.0, 2.0), st.floats(0.0, 2.0), st.floats(0.05, 2.0), st.floats(0.05, 2.0))
def test_p10_stochastic_label_convexity_gap(k, d, n, seed, lam_T, lam_S, tau_T, tau_S):
    rng = np.random.default_rng(seed)
    prob = lg.random_problem(d, k, n, 0.5, rng)
    data = prob.sample(rng)
    lam_T = max(lam_T, 0.01)
    lam_S = max(lam_S, 0.01)
    T = lg.teacher_kernel(data, lam_T, tau_T)
    res = lg.stochastic_label_kl(data, T, lam_S, tau_S, prob.nu)
    assert res.convexity_gap >= 0 and res.marginal >= 0
    assert close(res.expected - res.marginal, res.convexity_gap, 1e-6, 1e-9 * max(1.0, res.expected))
    assert res.expected >= res.marginal - 1e-9 * max(1.0, res.expected)


# 14 -----------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(2, 20), st.integers(0, 2**32 - 1), st.data())
def test_p14_exact_gap_within_dv_within_subgamma(k, d, n, seed, data_st):
    rng = np.random.default_rng(seed)
    prob = lg.random_problem(d, k, n, float(rng.uniform(0.1, 1.0)), rng, cond=10 ** rng.uniform(0, 3))
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, float(rng.uniform(0.05, 2.0)), float(rng.uniform(0.05, 1.0)))
    r = data_st.draw(st.integers(0, min(k, d)))
    labels = data_st.draw(st.sampled_from(["deterministic", "stochastic"]))
    metric = data_st.draw(st.sampled_from(["teacher", "ridge"]))
    S = lg.student_kernel(data, T, float(rng.uniform(0.05, 2.0)), float(rng.uniform(0.05, 1.0)), rank=r,
                          labels=labels, metric=metric, rng=rng, nu=prob.nu)
    b = lg.instantiated_bounds(prob, data, T, S)
    tol = 1e-8 * max(1.0, abs(b.subgamma_upper), abs(b.subgamma_lower))
    assert b.subgamma_lower - tol <= b.theorem3b_lower
    assert b.theorem3b_lower - tol <= b.gap_difference <= b.theorem3b_upper + tol
    assert b.theorem3b_upper <= b.subgamma_upper + tol
    assert b.theorem3b_holds
    if b.theorem2_lower_gen_student is not None:
        assert b.gen_student >= b.theorem2_lower_gen_student - tol
