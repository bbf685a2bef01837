"""Independent oracles for linear_gaussian: torch.distributions, scipy densities, conjugate-Bayes
formulas on the vectorised Gaussian, finite differences and Monte Carlo (within 4 standard errors)."""

import math

import numpy as np
import pytest
import scipy.stats as st
import torch

import linear_gaussian as lg


def vec(M):
    """Column-stacking vec."""
    return np.asarray(M).reshape(-1, order="F") if np.ndim(M) == 2 else np.asarray(M).transpose(0, 2, 1).reshape(len(M), -1)


def torch_mvn(q: lg.MatrixNormal):
    U = np.eye(q.k) if q.row_cov is None else q.row_cov
    cov = np.kron(q.col_cov, U)
    return torch.distributions.MultivariateNormal(
        torch.tensor(vec(q.mean), dtype=torch.float64), covariance_matrix=torch.tensor(cov, dtype=torch.float64)
    )


def random_mn(rng, k, d, cond=10.0, row=False, scale=1.0):
    M = rng.standard_normal((k, d))
    V = scale * lg.random_spd(d, rng, cond)
    U = lg.random_spd(k, rng, 5.0) if row else None
    return lg.MatrixNormal(M, V, U)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("row", [False, True])
def test_kl_matches_torch(seed, row):
    rng = np.random.default_rng(seed)
    k, d = rng.integers(1, 6), rng.integers(1, 7)
    q = random_mn(rng, k, d, cond=10.0 ** rng.uniform(0, 4), row=row)
    p = random_mn(rng, k, d, cond=10.0 ** rng.uniform(0, 4), row=row)
    want = float(torch.distributions.kl_divergence(torch_mvn(q), torch_mvn(p)))
    assert lg.kl_matrix_normal(q, p) == pytest.approx(want, rel=1e-8, abs=1e-10)
    assert q.kl(p) == pytest.approx(want, rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("row", [False, True])
def test_logpdf_and_sampling_match_vectorised_gaussian(row):
    rng = np.random.default_rng(11)
    q = random_mn(rng, 3, 4, cond=50.0, row=row)
    W = q.sample(7, rng)
    assert W.shape == (7, 3, 4)
    U = np.eye(3) if q.row_cov is None else q.row_cov
    ref = st.multivariate_normal(vec(q.mean), np.kron(q.col_cov, U)).logpdf(vec(W))
    np.testing.assert_allclose(q.logpdf(W), ref, rtol=1e-10)
    np.testing.assert_allclose(q.logpdf(W.reshape(7, 1, 3, 4))[:, 0], ref, rtol=1e-10)
    assert isinstance(q.logpdf(W[0]), float)
    # second moments of the sampler: cov(vec W) = V kron U
    S = q.sample(40000, rng)
    emp = np.cov(vec(S).T)
    np.testing.assert_allclose(emp, np.kron(q.col_cov, U), atol=0.05 * np.abs(np.kron(q.col_cov, U)).max())


@pytest.mark.parametrize("seed", range(2))
def test_kl_against_monte_carlo(seed):
    """mean(log q(W) - log p(W)), W ~ q, with scipy densities: within 4 SE of the closed form."""
    rng = np.random.default_rng(100 + seed)
    q = random_mn(rng, 2, 3, cond=5.0)
    p = random_mn(rng, 2, 3, cond=5.0, scale=2.0)
    K = q.kl(p)
    W = q.sample(8000, rng)
    lq = st.multivariate_normal(vec(q.mean), np.kron(q.col_cov, np.eye(2))).logpdf(vec(W))
    lp = st.multivariate_normal(vec(p.mean), np.kron(p.col_cov, np.eye(2))).logpdf(vec(W))
    diff = lq - lp
    se = diff.std(ddof=1) / math.sqrt(diff.size)
    assert abs(diff.mean() - K) < 4 * se
    est = lg.kl_monte_carlo(q, p, 8000, rng)
    assert est.n_samples == 8000 and est.stderr > 0
    assert abs(est.value - K) < 4 * est.stderr


def test_teacher_kernel_is_conjugate_bayes_posterior():
    """tau_T = nu^2: q_T equals the posterior of vec W under prior N(0, (tau/lam) I) and
    vec Y = (X^T kron I_k) vec W + nu e, computed densely."""
    rng = np.random.default_rng(12)
    prob = lg.random_problem(4, 3, 9, 0.7, rng)
    data = prob.sample(rng)
    lam, tau = 0.8, prob.nu**2
    T = lg.teacher_kernel(data, lam, tau)
    Phi = np.kron(data.X.T, np.eye(3))  # vec(W X) = (X^T kron I) vec W
    prec = (lam / tau) * np.eye(12) + Phi.T @ Phi / tau
    cov = np.linalg.inv(prec)
    mean = cov @ Phi.T @ vec(data.Y) / tau
    np.testing.assert_allclose(vec(T.mean), mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.kron(T.col_cov, np.eye(3)), cov, rtol=1e-9, atol=1e-12)


def test_gradient_and_hessian_vs_finite_differences():
    rng = np.random.default_rng(13)
    prob = lg.random_problem(4, 3, 10, 0.5, rng)
    data = prob.sample(rng)
    M = rng.standard_normal((3, 4))
    G = lg.gap_gradient(prob, data, M)
    H = lg.gap_hessian(prob, data)
    h = 1e-5
    num = np.zeros((3, 4))
    for i in range(3):
        for j in range(4):
            E = np.zeros((3, 4))
            E[i, j] = h
            num[i, j] = (lg.gap_function(prob, data, M + E) - lg.gap_function(prob, data, M - E)) / (2 * h)
    np.testing.assert_allclose(G, num, rtol=1e-6, atol=1e-8)
    # Hessian: finite differences of the gradient along column-stacked coordinates
    Hn = np.zeros((12, 12))
    for c in range(12):
        e = np.zeros(12)
        e[c] = h
        Ev = e.reshape(3, 4, order="F")
        Hn[:, c] = vec(lg.gap_gradient(prob, data, M + Ev) - lg.gap_gradient(prob, data, M - Ev)) / (2 * h)
    np.testing.assert_allclose(H, Hn, rtol=1e-6, atol=1e-7)


def test_population_risk_vs_fresh_samples():
    rng = np.random.default_rng(14)
    prob = lg.random_problem(3, 2, 10, 0.6, rng)
    W = rng.standard_normal((2, 3))
    fresh = prob.sample(rng, n=400000)
    losses = np.sum((fresh.Y - W @ fresh.X) ** 2, axis=0)
    se = losses.std(ddof=1) / math.sqrt(losses.size)
    assert abs(losses.mean() - lg.population_risk(prob, W)) < 4 * se
    assert lg.empirical_risk(fresh, W) == pytest.approx(losses.mean(), rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_gen_variance_and_log_mgf_vs_sampling(seed):
    rng = np.random.default_rng(200 + seed)
    prob = lg.random_problem(4, 2, 8, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.5, 0.3)
    N = 200000
    f = lg.gap_function(prob, data, T.sample(N, rng))
    gen_T = lg.expected_gap(prob, data, T)
    se = f.std(ddof=1) / math.sqrt(N)
    assert abs(f.mean() - gen_T) < 4 * se
    v = lg.gap_variance(prob, data, T)
    c = f - f.mean()
    se_v = math.sqrt(np.var(c**2) / N)
    assert abs(np.mean(c**2) - v) < 4 * se_v + 1e-12
    sp = lg.gap_spectrum(prob, data, T)
    cmax = max(abs(sp.eigenvalues).max(), 1e-12)
    fc = f - gen_T
    for lam in (-0.2 / cmax, 0.1 / cmax, 0.2 / cmax, -0.5 / math.sqrt(v), 0.5 / math.sqrt(v)):
        lam = float(np.clip(lam, -0.2 / cmax, 0.2 / cmax))
        e = np.exp(lam * fc)
        mgf, se_m = e.mean(), e.std(ddof=1) / math.sqrt(N)
        psi = lg.gap_log_mgf(prob, data, T, lam)
        assert abs(mgf - math.exp(psi)) < 4 * se_m + 1e-12


def test_student_gap_and_bound_quantities_vs_sampling():
    rng = np.random.default_rng(15)
    prob = lg.random_problem(5, 3, 12, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.5, 0.25)
    S = lg.student_kernel(data, T, 1.0, 0.4, rank=2)
    f = lg.gap_function(prob, data, S.sample(100000, rng))
    assert abs(f.mean() - lg.expected_gap(prob, data, S)) < 4 * f.std() / math.sqrt(f.size)


def test_stochastic_labels_expected_kl_vs_monte_carlo():
    rng = np.random.default_rng(16)
    prob = lg.random_problem(4, 2, 10, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.4, 0.25)
    cf = lg.stochastic_label_kl(data, T, 0.6, 0.3, prob.nu)
    mc = lg.expected_kl_mc(data, T, 0.6, 0.3, prob.nu, rank=None, rng=rng, n_samples=20000)
    assert mc.n_samples == 20000
    assert abs(mc.value - cf.expected) < 4 * mc.stderr


@pytest.mark.parametrize("metric", ["teacher", "ridge"])
def test_truncated_stochastic_mc_vs_student_kernel_loop(metric):
    """The vectorised MC agrees with averaging KL of student_kernel(labels='stochastic') draws."""
    rng = np.random.default_rng(18)
    prob = lg.random_problem(4, 3, 10, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.4, 0.25)
    mc = lg.expected_kl_mc(data, T, 0.6, 0.3, prob.nu, rank=1, rng=rng, n_samples=10000, metric=metric)
    loop = np.array([
        lg.student_kernel(data, T, 0.6, 0.3, rank=1, labels="stochastic", metric=metric, rng=rng, nu=prob.nu).kl(T)
        for _ in range(200)
    ])
    se = math.sqrt(mc.stderr**2 + loop.var(ddof=1) / loop.size)
    assert abs(mc.value - loop.mean()) < 4 * se
    Sdet = lg.student_kernel(data, T, 0.6, 0.3, rank=1)
    assert mc.value >= lg.decompose(Sdet, T, 1).rank_bottleneck


def test_marginal_student_kernel_moments():
    """Draws of M~_S under stochastic labels have mean M_T P and column covariance C_lab."""
    rng = np.random.default_rng(17)
    prob = lg.random_problem(3, 2, 6, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.4, 0.25)
    P, C, _ = lg.label_channel(data, T, 0.6, prob.nu)
    draws = np.stack([
        lg.student_kernel(data, T, 0.6, 1.0, labels="stochastic", rng=rng, nu=prob.nu).mean for _ in range(8000)
    ])
    np.testing.assert_allclose(draws.mean(0), T.mean @ P, atol=4 * math.sqrt(C.diagonal().max() / 20000))
    rows = draws.reshape(-1, 3)  # every row of M~_S has covariance C_lab
    emp = np.cov((rows - np.tile(T.mean @ P, (8000, 1))).T, bias=True)
    np.testing.assert_allclose(emp, C, atol=0.05 * np.abs(C).max())
    marg = lg.marginal_student_kernel(data, T, 0.6, 1.0, prob.nu)
    np.testing.assert_allclose(marg.col_cov, C + 1.0 * np.linalg.inv(data.X @ data.X.T + 0.6 * np.eye(3)), rtol=1e-9)


def test_gap_spectrum_matches_dense_gaussian_quadratic_bound():
    """Spectral instantiation (A = 2 A_tilde kron I_k) == kdbounds.bounds dense path on vec W with
    the finite-difference-checked gradient and Hessian and the kron(Sigma_T, I_k) covariance."""
    from kdbounds.bounds import gaussian_quadratic_bound

    rng = np.random.default_rng(19)
    prob = lg.random_problem(4, 3, 9, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.5, 0.25)
    S = lg.student_kernel(data, T, 1.0, 0.4, rank=1)
    b = lg.instantiated_bounds(prob, data, T, S)
    dense = gaussian_quadratic_bound(b.divergence, grad=vec(lg.gap_gradient(prob, data, T.mean)),
                                     hessian=lg.gap_hessian(prob, data), cov=np.kron(T.col_cov, np.eye(3)))
    assert b.var_teacher == pytest.approx(dense.v, rel=1e-9)
    assert b.theorem3b_upper == pytest.approx(dense.upper, rel=1e-6)
    assert b.theorem3b_lower == pytest.approx(dense.lower, rel=1e-6)
    assert b.c_plus == pytest.approx(dense.c_plus, rel=1e-9, abs=1e-14)
    # gen(T|D) = f(M_T) + tr(H S)/2
    assert b.gen_teacher == pytest.approx(float(lg.gap_function(prob, data, T.mean)) + dense.trace_a / 2, rel=1e-10)


def test_predictive_law_vs_sampling():
    """Y_hat = W X_* + nu E with W ~ q: mean M X_* and column covariance X_*^T Sigma X_* + nu^2 I."""
    rng = np.random.default_rng(20)
    prob = lg.random_problem(4, 2, 9, 0.5, rng)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, 0.5, 0.25)
    Xs = rng.standard_normal((4, 3))
    pred = T.predictive(Xs, 0.5)
    N = 40000
    Y = T.sample(N, rng) @ Xs + 0.5 * rng.standard_normal((N, 2, 3))
    np.testing.assert_allclose(Y.mean(0), T.mean @ Xs, atol=4 * math.sqrt(pred.col_cov.diagonal().max() / N))
    emp = np.cov(Y[:, 1, :].T)
    np.testing.assert_allclose(emp, pred.col_cov, atol=0.04 * np.abs(pred.col_cov).max())
