"""theory.md §3.7 worked cases and the §3.4 closed-form special cases as unit tests."""

import math

import numpy as np
import pytest

import linear_gaussian as lg


def mn(mean, cov):
    return lg.MatrixNormal(np.asarray(mean, float), np.asarray(cov, float))


def test_case1_identical_kernels():
    rng = np.random.default_rng(1)
    cov = lg.random_spd(4, rng, cond=100.0)
    M = rng.standard_normal((3, 4))
    dec = lg.decompose(mn(M, cov), mn(M, cov), rank=3)
    assert dec.total == dec.bias == dec.variance == dec.rank_bottleneck == 0.0


def test_case2_rank_bottleneck_only():
    T = mn(np.diag([3.0, 1.0]), np.eye(2))
    S = mn(np.diag([3.0, 0.0]), np.eye(2))
    dec = lg.decompose(S, T, rank=1)
    assert dec.total == pytest.approx(0.5, abs=1e-14)
    assert dec.rank_bottleneck == pytest.approx(0.5, abs=1e-14)
    assert dec.bias == pytest.approx(0.0, abs=1e-14)
    assert dec.variance == pytest.approx(0.0, abs=1e-14)


def test_case3_variance():
    T = mn(np.diag([3.0, 1.0]), np.eye(2))
    S = mn(np.diag([3.0, 0.0]), 2 * np.eye(2))
    dec = lg.decompose(S, T, rank=1)
    assert dec.variance == pytest.approx(2 * (1 - math.log(2)), rel=1e-13)
    assert dec.variance == pytest.approx(0.6137056, abs=1e-7)
    assert dec.total == pytest.approx(1.1137056, abs=1e-7)
    assert lg.kl_matrix_normal(S, T) == pytest.approx(1.1137056, abs=1e-7)


def test_case4_bias():
    T = mn(np.diag([3.0, 1.0]), np.eye(2))
    S = mn(np.diag([2.5, 0.0]), np.eye(2))
    dec = lg.decompose(S, T, rank=1)
    assert dec.mean_term == pytest.approx(0.625, abs=1e-14)
    assert dec.rank_bottleneck == pytest.approx(0.5, abs=1e-14)
    assert dec.bias == pytest.approx(0.125, abs=1e-14)
    assert dec.total == pytest.approx(0.625, abs=1e-14)


def test_case5_metric_rank_bottleneck():
    T = mn([[2.0, 1.0], [0.0, 1.0]], np.diag([4.0, 0.25]))
    S = mn(np.zeros((2, 2)), np.diag([4.0, 0.25]))
    # eigenvalues of M_T Sigma_T^{-1} M_T^T = [[5, 4], [4, 4]]: (9 +- sqrt(65)) / 2
    small = (9 - math.sqrt(65)) / 2
    assert lg.decompose(S, T, rank=0).rank_bottleneck == pytest.approx(4.5, rel=1e-14)
    assert lg.decompose(S, T, rank=1).rank_bottleneck == pytest.approx(small / 2, rel=1e-12)
    assert lg.decompose(S, T, rank=1).rank_bottleneck == pytest.approx(0.2344356, abs=1e-7)
    assert lg.decompose(S, T, rank=2).rank_bottleneck == 0.0


def test_variance_equal_ridges_closed_form():
    """V = (k d / 2) phi(tau_S / tau_T) when lam_S = lam_T, independent of n."""
    rng = np.random.default_rng(3)
    prob = lg.random_problem(6, 3, 40, 0.5, rng)
    for n in (10, 40, 200):
        data = prob.sample(rng, n=n)
        T = lg.teacher_kernel(data, 0.3, 0.25)
        S = lg.student_kernel(data, T, 0.3, 0.75)
        V = lg.decompose(S, T, rank=None).variance
        assert V == pytest.approx(3 * 6 / 2 * (3 - 1 - math.log(3)), rel=1e-10)


def test_variance_ridge_family_eigenvalues():
    """mu_i = (tau_S/tau_T)(e_i + lam_T)/(e_i + lam_S) (theory.md §3.4)."""
    rng = np.random.default_rng(4)
    prob = lg.random_problem(5, 2, 30, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.7, 0.2)
    S = lg.student_kernel(data, T, 2.0, 0.5)
    e = np.linalg.eigvalsh(data.X @ data.X.T)
    mu = (0.5 / 0.2) * (e + 0.7) / (e + 2.0)
    want = 2 / 2 * np.sum(mu - 1 - np.log(mu))
    assert lg.decompose(S, T, None).variance == pytest.approx(want, rel=1e-10)


def test_ridge_shrinkage_bias_matches_decomposition():
    rng = np.random.default_rng(5)
    prob = lg.random_problem(6, 3, 12, 0.4, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.5, 0.16)
    S = lg.student_kernel(data, T, 3.0, 0.16)
    dec = lg.decompose(S, T, None)
    assert dec.rank_bottleneck == 0.0
    want = lg.ridge_shrinkage_bias(data.X, T.mean, 0.5, 0.16, 3.0)
    assert dec.bias == pytest.approx(want, rel=1e-9)


def test_equal_ridges_metrics_coincide():
    """G = Sigma_T^{-1} and G = A_S give the same truncation when lam_S = lam_T (theory.md §3.2)."""
    rng = np.random.default_rng(6)
    prob = lg.random_problem(7, 4, 30, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.9, 0.25)
    a = lg.student_kernel(data, T, 0.9, 0.5, rank=2, metric="teacher")
    b = lg.student_kernel(data, T, 0.9, 0.5, rank=2, metric=lg.Metric.RIDGE)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-9, atol=1e-12)


def test_ridge_metric_is_rank_r_ridge_regression():
    """metric='ridge' minimises ||Y_hat - M X||^2 + lam_S ||M||^2 over rank-r M."""
    rng = np.random.default_rng(7)
    prob = lg.random_problem(6, 4, 25, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.2, 0.25)
    lam_S, r = 1.5, 2
    Y_hat = T.mean @ data.X

    def obj(M):
        return np.sum((Y_hat - M @ data.X) ** 2) + lam_S * np.sum(M**2)

    best = obj(lg.student_kernel(data, T, lam_S, 0.3, rank=r, metric="ridge").mean)
    other = obj(lg.student_kernel(data, T, lam_S, 0.3, rank=r, metric="teacher").mean)
    assert best <= other + 1e-10
    M0 = lg.student_kernel(data, T, lam_S, 0.3, rank=r, metric="ridge").mean
    for _ in range(50):
        P = np.linalg.svd(M0 + 0.05 * rng.standard_normal(M0.shape))
        Mr = (P[0][:, :r] * P[1][:r]) @ P[2][:r]
        assert obj(Mr) >= best - 1e-10
