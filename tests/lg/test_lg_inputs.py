"""Bad input gives a ValueError/TypeError naming the argument; near-singular covariances (condition
number 1e12) give finite, accurate results (checked against exactly known values) or a clear error."""

import math

import numpy as np
import pytest

import linear_gaussian as lg


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    prob = lg.random_problem(4, 3, 10, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.5, 0.25)
    S = lg.student_kernel(data, T, 0.5, 0.25, rank=2)
    return prob, data, T, S


def test_matrix_normal_bad_input():
    I2 = np.eye(2)
    with pytest.raises(ValueError, match="col_cov"):
        lg.MatrixNormal(np.zeros((2, 2)), np.eye(3))  # wrong shape
    with pytest.raises(ValueError, match="col_cov.*symmetric"):
        lg.MatrixNormal(np.zeros((2, 2)), np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="col_cov.*positive definite"):
        lg.MatrixNormal(np.zeros((2, 2)), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="col_cov.*positive definite"):
        lg.MatrixNormal(np.zeros((2, 2)), np.diag([1.0, 0.0]))
    with pytest.raises(ValueError, match="mean.*NaN"):
        lg.MatrixNormal(np.array([[np.nan, 0.0], [0.0, 0.0]]), I2)
    with pytest.raises(ValueError, match="col_cov.*NaN"):
        lg.MatrixNormal(np.zeros((2, 2)), np.array([[np.inf, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="mean"):
        lg.MatrixNormal(np.zeros(2), I2)
    with pytest.raises(ValueError, match="row_cov"):
        lg.MatrixNormal(np.zeros((2, 2)), I2, -I2)
    with pytest.raises(TypeError, match="mean"):
        lg.MatrixNormal([["a", "b"]], I2)
    q = lg.MatrixNormal(np.zeros((2, 2)), I2)
    with pytest.raises(TypeError, match="rng"):
        q.sample(3, rng=0)
    with pytest.raises(ValueError, match="size"):
        q.sample(-1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="W must have shape"):
        q.logpdf(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="nu"):
        q.predictive(np.eye(2), -1.0)
    with pytest.raises(ValueError, match="X_star"):
        q.predictive(np.eye(3), 1.0)
    with pytest.raises(ValueError, match="singular"):
        q.predictive(np.ones((2, 3)), 0.0)
    with pytest.raises(ValueError, match="same mean shape"):
        q.kl(lg.MatrixNormal(np.zeros((2, 3)), np.eye(3)))
    with pytest.raises(TypeError, match="p must be a MatrixNormal"):
        q.kl("teacher")


def test_problem_and_data_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="nu"):
        lg.random_problem(3, 2, 5, -0.1, rng)
    with pytest.raises(ValueError, match="W_star"):
        lg.LinearGaussianProblem(3, 2, 5, 0.1, np.zeros((3, 3)), np.eye(3))
    with pytest.raises(ValueError, match="Sigma_x"):
        lg.LinearGaussianProblem(3, 2, 5, 0.1, np.zeros((2, 3)), -np.eye(3))
    with pytest.raises(ValueError, match="d must be"):
        lg.LinearGaussianProblem(0, 2, 5, 0.1, np.zeros((2, 0)), np.eye(0))
    with pytest.raises(TypeError, match="n must be an int"):
        lg.LinearGaussianProblem(3, 2, 2.5, 0.1, np.zeros((2, 3)), np.eye(3))
    with pytest.raises(ValueError, match="same number of columns"):
        lg.Dataset(np.zeros((3, 4)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="Y contains NaN"):
        lg.Dataset(np.zeros((3, 4)), np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="cond"):
        lg.random_spd(3, rng, cond=0.5)


def test_kernel_bad_input(setup):
    prob, data, T, S = setup
    rng = np.random.default_rng(1)
    for name, kw in [("lam_T", dict(lam_T=-1.0, tau_T=1.0)), ("tau_T", dict(lam_T=1.0, tau_T=-1.0)),
                     ("tau_T", dict(lam_T=1.0, tau_T=0.0)), ("lam_T", dict(lam_T=np.nan, tau_T=1.0))]:
        with pytest.raises(ValueError, match=name):
            lg.teacher_kernel(data, **kw)
    small = lg.Dataset(data.X[:, :2], data.Y[:, :2])  # n < d
    with pytest.raises(ValueError, match="lam_T > 0"):
        lg.teacher_kernel(small, 0.0, 1.0)
    for name, kw in [("lam_S", dict(lam_S=-0.1)), ("tau_S", dict(tau_S=-2.0)), ("rank", dict(rank=-1)),
                     ("rank", dict(rank=4)), ("labels", dict(labels="soft")), ("metric", dict(metric="euclid")),
                     ("nu", dict(labels="stochastic", rng=rng, nu=-1.0)), ("nu", dict(labels="stochastic", rng=rng)),
                     ("rng", dict(labels="stochastic", nu=0.5))]:
        args = dict(lam_S=0.5, tau_S=0.25)
        args.update(kw)
        with pytest.raises(ValueError, match=name):
            lg.student_kernel(data, T, **args)
    with pytest.raises(ValueError, match=r"\['deterministic', 'stochastic'\]"):
        lg.student_kernel(data, T, 0.5, 0.25, labels="soft")
    with pytest.raises(TypeError, match="data"):
        lg.teacher_kernel((data.X, data.Y), 1.0, 1.0)
    with pytest.raises(ValueError, match="teacher mean has shape"):
        lg.student_kernel(data, lg.MatrixNormal(np.zeros((2, 4)), np.eye(4)), 0.5, 0.25)


def test_divergence_and_risk_bad_input(setup):
    prob, data, T, S = setup
    for bad in (-1, 4, 1.5):
        with pytest.raises((ValueError, TypeError), match="rank"):
            lg.decompose(S, T, bad)
    with pytest.raises(ValueError, match="rank > rank=1"):
        lg.decompose(S, T, 1)  # S has rank 2
    with pytest.raises(ValueError, match="tau_T"):
        lg.prediction_energy_bottleneck(data.X, T.mean, -1.0, 1)
    with pytest.raises(ValueError, match="lam_S"):
        lg.ridge_shrinkage_bias(data.X, T.mean, 0.1, 1.0, -1.0)
    with pytest.raises(ValueError, match="n_samples"):
        lg.expected_kl_mc(data, T, 0.5, 0.25, 0.5, 1, np.random.default_rng(0), n_samples=1)
    with pytest.raises(ValueError, match="sigma"):
        lg.instantiated_bounds(prob, data, T, S, sigma=-1.0)
    with pytest.raises(ValueError, match="rho"):
        lg.instantiated_bounds(prob, data, T, S, rho=np.inf)
    with pytest.raises(ValueError, match="eta"):
        lg.instantiated_bounds(prob, data, T, S, eta=0.0)
    with pytest.raises(ValueError, match="W must have shape"):
        lg.gap_function(prob, data, np.zeros((4, 3)))
    other = lg.random_problem(5, 3, 10, 0.5, np.random.default_rng(2))
    with pytest.raises(ValueError, match="data has"):
        lg.expected_gap(other, data, T)


def test_near_singular_kl_is_accurate():
    """cond(Sigma) = 1e12: KL(MN(M, a Sigma) || MN(M, Sigma)) = (kd/2) phi(a) and the mean term
    along the weakest eigenvector is delta^2 / (2 s_min), both exactly known."""
    rng = np.random.default_rng(3)
    d, k = 6, 3
    Sig = lg.random_spd(d, rng, cond=1e12)
    e, V = np.linalg.eigh(Sig)
    M = rng.standard_normal((k, d))
    T = lg.MatrixNormal(M, Sig)
    # a = 1/2, 2 scale Sigma exactly; a = 3 rounds a*Sigma, which already moves the weakest
    # eigenvalue by ~eps*cond = 1e-4 relative (an input perturbation, not an algorithmic error);
    # near a = 1, phi carries an absolute error ~ k d (eps cond)^2 / 2 ~ 1e-9.
    for a, rel in ((0.5, 1e-7), (2.0, 1e-7), (3.0, 1e-4), (1.0 + 1e-6, 0.0)):
        K = lg.MatrixNormal(M, a * Sig).kl(T)
        want = k * d / 2 * (a - 1 - math.log(a))
        assert K == pytest.approx(want, rel=rel, abs=1e-9)
    delta = 1e-3
    shift = np.zeros((k, d))
    shift[0] = delta * V[:, 0]
    K = lg.MatrixNormal(M + shift, Sig).kl(T)
    assert np.isfinite(K)
    assert K == pytest.approx(delta**2 / (2 * e[0]), rel=1e-3)
    dec = lg.decompose(lg.MatrixNormal(np.zeros((k, d)), Sig), T, 0)
    assert dec.rank_bottleneck == pytest.approx(dec.total, rel=1e-12)
    # 1e-18 is beyond float64: a clear error, not a NaN
    with pytest.raises(ValueError, match="positive definite"):
        lg.MatrixNormal(M, lg.random_spd(d, rng, cond=1e18))


def test_near_singular_gram_kernels_finite():
    """n < d with a tiny ridge: A = X X^T + 1e-10 I has condition number ~1e12."""
    rng = np.random.default_rng(4)
    prob = lg.random_problem(8, 3, 5, 0.3, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 1e-10, 0.09)
    S = lg.student_kernel(data, T, 1e-10, 0.09, rank=2)
    dec = lg.decompose(S, T, 2)
    assert all(np.isfinite([dec.total, dec.bias, dec.variance, dec.rank_bottleneck]))
    # same ridge and temperature: V = 0 exactly in theory
    assert dec.variance <= 1e-12 * max(1.0, dec.total)
    b = lg.instantiated_bounds(prob, data, T, S)
    assert b.theorem3b_holds
    # exact oracles that need no inverse: Sigma_T^{-1} = A / tau_T
    A = data.X @ data.X.T + 1e-10 * np.eye(8)
    assert np.linalg.cond(A) > 1e10
    D = S.mean - T.mean
    assert dec.mean_term == pytest.approx(0.5 * np.trace(D @ A @ D.T) / 0.09, rel=1e-10)
    s = np.sort(np.linalg.eigvalsh(T.mean @ A @ T.mean.T / 0.09))[::-1]
    assert dec.rank_bottleneck == pytest.approx(0.5 * s[2:].sum(), rel=1e-10)
    S2 = lg.student_kernel(data, T, 1e-10, 0.05, rank=2)
    want_V = 3 * 8 / 2 * (0.05 / 0.09 - 1 - math.log(0.05 / 0.09))
    assert lg.decompose(S2, T, 2).variance == pytest.approx(want_V, rel=1e-10)


def test_from_precision_matches_covariance_parametrisation():
    rng = np.random.default_rng(5)
    k, d = 3, 4
    P = lg.random_spd(d, rng, cond=100.0) * 2.0
    M = rng.standard_normal((k, d))
    a = lg.MatrixNormal.from_precision(M, P, scale=0.5)
    b = lg.MatrixNormal(M, np.linalg.inv(0.5 * P))
    np.testing.assert_allclose(a.col_cov, b.col_cov, rtol=1e-10)
    np.testing.assert_allclose(a.chol_col @ a.chol_col.T, b.col_cov, rtol=1e-10)
    W = b.sample(5, rng)
    np.testing.assert_allclose(a.logpdf(W), b.logpdf(W), rtol=1e-10)
    other = lg.MatrixNormal(rng.standard_normal((k, d)), lg.random_spd(d, rng, 10.0))
    assert a.kl(other) == pytest.approx(b.kl(other), rel=1e-9)
    assert other.kl(a) == pytest.approx(other.kl(b), rel=1e-9)
    S = a.sample(30000, rng)
    np.testing.assert_allclose(np.cov(S[:, 0, :].T), b.col_cov, atol=0.05 * np.abs(b.col_cov).max())
    Xs = rng.standard_normal((d, 2))
    np.testing.assert_allclose(a.predictive(Xs, 0.3).col_cov, b.predictive(Xs, 0.3).col_cov, rtol=1e-10)
    with pytest.raises(ValueError, match="col_precision"):
        lg.MatrixNormal.from_precision(M, -P)
    with pytest.raises(ValueError, match="scale"):
        lg.MatrixNormal.from_precision(M, P, scale=0.0)
