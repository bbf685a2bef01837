"""Theorem 3B (kdbounds.bounds.gaussian_quadratic_bound): exact DV bound for a Gaussian teacher and a
quadratic gap, checked against independent oracles (dense matrix formulas, Monte Carlo, and the
exactly tilted Gaussian that attains the Donsker-Varadhan bound)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdbounds.bounds import (
    GaussianQuadraticBound,
    gaussian_quadratic_bound,
    log_mgf_quadratic,
    quadratic_spectrum,
    subgaussian_bound,
)

SET = settings(max_examples=40, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def _sym(rng, p, scale=1.0):
    m = rng.standard_normal((p, p)) * scale
    return 0.5 * (m + m.T)


def _spd(rng, p, cond=10.0):
    q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    ev = np.geomspace(1.0, 1.0 / cond, p) * rng.uniform(0.5, 2.0)
    return (q * ev) @ q.T


def _psi_dense(lam, a_mat, b):
    """Oracle: -1/2 logdet(I - lam A) - lam/2 tr A + lam^2/2 b^T (I - lam A)^{-1} b, by matrices."""
    m = np.eye(a_mat.shape[0]) - lam * a_mat
    sign, logdet = np.linalg.slogdet(m)
    if sign <= 0 or np.linalg.eigvalsh(m).min() <= 0:
        return math.inf
    return -0.5 * logdet - 0.5 * lam * np.trace(a_mat) + 0.5 * lam**2 * b @ np.linalg.solve(m, b)


def _gauss_kl(mu_q, c_q, mu_p, c_p):
    """KL(N(mu_q, C_q) || N(mu_p, C_p)) by the textbook formula (dense, independent of bounds.py)."""
    p = len(mu_q)
    cp_inv = np.linalg.inv(c_p)
    d = mu_q - mu_p
    return 0.5 * (
        np.trace(cp_inv @ c_q) + d @ cp_inv @ d - p + np.linalg.slogdet(c_p)[1] - np.linalg.slogdet(c_q)[1]
    )


def _quad_mean(b, h, mu, c):
    """E f for f(w) = b^T w + w^T H w / 2, w ~ N(mu, C)."""
    return b @ mu + 0.5 * (mu @ h @ mu + np.trace(h @ c))


# ------------------------------------------------------------------ psi


@SET
@given(seed=seeds, p=st.integers(1, 7), t=st.floats(-0.99, 0.99))
def test_psi_matches_dense_matrix_formula(seed, p, t):
    rng = np.random.default_rng(seed)
    a_mat = _sym(rng, p)
    b = rng.standard_normal(p)
    a, q = np.linalg.eigh(a_mat)
    # lam in the admissible interval (-1/c_-, 1/c_+)
    cp, cm = max(a.max(), 0.0), max(-a.min(), 0.0)
    lam = t / cp if (t > 0 and cp > 0) else (t / cm if (t < 0 and cm > 0) else t)
    got = log_mgf_quadratic(lam, a, q.T @ b)
    want = _psi_dense(lam, a_mat, b)
    assert got == pytest.approx(want, rel=1e-8, abs=1e-12)
    assert got >= -1e-15  # psi >= 0 (convex, psi(0) = psi'(0) = 0)


def test_psi_outside_admissible_interval_is_inf_and_small_lambda_is_accurate():
    a, b = np.array([2.0, -1.0]), np.array([0.5, 0.3])
    assert log_mgf_quadratic(0.5, a, b) == math.inf
    assert log_mgf_quadratic(0.7, a, b) == math.inf
    assert log_mgf_quadratic(-1.0, a, b) == math.inf
    assert math.isfinite(log_mgf_quadratic(0.4999, a, b))
    # second order: psi(lam) ~ lam^2 v / 2, v = |b|^2 + |a|^2 / 2, no cancellation at tiny lam
    v = b @ b + 0.5 * a @ a
    lam = 1e-9
    assert log_mgf_quadratic(lam, a, b) == pytest.approx(0.5 * lam**2 * v, rel=1e-6)
    assert log_mgf_quadratic(0.0, a, b) == 0.0


def test_psi_against_monte_carlo():
    rng = np.random.default_rng(12345)
    p = 4
    h = _sym(rng, p, 0.4)
    s = _spd(rng, p, cond=5.0)
    b = rng.standard_normal(p) * 0.5
    a, bp = quadratic_spectrum(b, h, s)
    chol = np.linalg.cholesky(s)
    n = 400_000
    w = rng.standard_normal((n, p)) @ chol.T  # w - m ~ N(0, S)
    f = w @ b + 0.5 * np.einsum("ij,jk,ik->i", w, h, w)
    f_centred = f - 0.5 * np.trace(h @ s)  # exact E f = tr(H S) / 2
    # gen(T) and Var_T f against sampling
    assert abs(f.mean() - 0.5 * np.trace(h @ s)) < 4 * f.std() / math.sqrt(n)
    v = bp @ bp + 0.5 * a @ a
    se_var = math.sqrt(np.var((f - f.mean()) ** 2) / n)
    assert abs(f.var() - v) < 4 * se_var
    for lam in (-0.3, -0.1, 0.05, 0.15, 0.3):
        e = np.exp(lam * f_centred)
        mean, se = e.mean(), e.std() / math.sqrt(n)
        assert abs(mean - math.exp(log_mgf_quadratic(lam, a, bp))) < 4 * se, lam


# ------------------------------------------------------------------ exact DV vs sub-gamma


@SET
@given(seed=seeds, p=st.integers(1, 8), log_k=st.floats(-10, 4), scale=st.floats(0.01, 10))
def test_exact_dv_between_zero_and_subgamma_both_sides(seed, p, log_k, scale):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(p) * scale
    b = rng.standard_normal(p) * rng.uniform(0, 2)
    k = 10.0**log_k
    r = gaussian_quadratic_bound(k, eigenvalues=a, b_proj=b)
    tol = 1e-9 * (1 + abs(r.subgamma_upper))
    assert 0.0 < r.upper <= r.subgamma_upper + tol
    assert r.subgamma_lower - tol <= r.lower < 0.0
    assert r.v == pytest.approx(b @ b + 0.5 * a @ a)
    assert r.c_plus == pytest.approx(max(a.max(), 0.0))
    assert r.c_minus == pytest.approx(max(-a.min(), 0.0))
    # the reported lambda attains the reported value and is admissible
    if r.c_plus > 0:
        assert 0 < r.lambda_upper < 1 / r.c_plus
    psi = log_mgf_quadratic(r.lambda_upper, a, b)
    assert (k + psi) / r.lambda_upper == pytest.approx(r.upper, rel=1e-9)
    psi_m = log_mgf_quadratic(-r.lambda_lower, a, b)
    assert -(k + psi_m) / r.lambda_lower == pytest.approx(r.lower, rel=1e-9)
    # and it is the infimum: no point of a fine grid of admissible lambda does better
    lam_max = 1 / r.c_plus if r.c_plus > 0 else 1e3 * r.lambda_upper
    grid = lam_max * np.concatenate([np.geomspace(1e-9, 0.5, 400), 1 - np.geomspace(0.5, 1e-9, 400)])
    vals = [(k + log_mgf_quadratic(lam, a, b)) / lam for lam in grid]
    assert r.upper <= min(vals) * (1 + 1e-9)


@SET
@given(seed=seeds, p=st.integers(1, 6), log_k1=st.floats(-8, 3), log_k2=st.floats(-8, 3))
def test_monotone_in_divergence(seed, p, log_k1, log_k2):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(p), rng.standard_normal(p)
    k1, k2 = sorted((10.0**log_k1, 10.0**log_k2))
    r1 = gaussian_quadratic_bound(k1, eigenvalues=a, b_proj=b)
    r2 = gaussian_quadratic_bound(k2, eigenvalues=a, b_proj=b)
    assert r1.upper <= r2.upper * (1 + 1e-9)
    assert r2.lower <= r1.lower * (1 - 1e-9) if r1.lower < 0 else True


@SET
@given(seed=seeds, p=st.integers(1, 6), log_k=st.floats(-6, 3), a_scale=st.floats(0.01, 100))
def test_loss_scaling(seed, p, log_k, a_scale):
    # loss -> a * loss: b -> a b, H -> a H (S fixed) scales both bounds and v^{1/2}, c_+- by a
    rng = np.random.default_rng(seed)
    h, s, g = _sym(rng, p), _spd(rng, p), rng.standard_normal(p)
    k = 10.0**log_k
    r = gaussian_quadratic_bound(k, grad=g, hessian=h, cov=s)
    ra = gaussian_quadratic_bound(k, grad=a_scale * g, hessian=a_scale * h, cov=s)
    assert ra.upper == pytest.approx(a_scale * r.upper, rel=1e-7)
    assert ra.lower == pytest.approx(a_scale * r.lower, rel=1e-7)
    assert ra.subgamma_upper == pytest.approx(a_scale * r.subgamma_upper, rel=1e-9)
    assert math.sqrt(ra.v) == pytest.approx(a_scale * math.sqrt(r.v), rel=1e-9)


@SET
@given(seed=seeds, p=st.integers(1, 6), log_k=st.floats(-8, 3))
def test_zero_hessian_recovers_gaussian_bound(seed, p, log_k):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(p)
    s = _spd(rng, p)
    k = 10.0**log_k
    r = gaussian_quadratic_bound(k, grad=b, hessian=np.zeros((p, p)), cov=s)
    sigma = math.sqrt(b @ s @ b)  # f is Gaussian with sd sqrt(b^T S b)
    assert r.upper == pytest.approx(subgaussian_bound(k, sigma), rel=1e-7)
    assert r.lower == pytest.approx(-subgaussian_bound(k, sigma), rel=1e-7)
    assert r.c_plus == 0.0 and r.c_minus == 0.0
    # and a vanishing Hessian approaches it continuously (the perturbation small against the linear term
    # b^T S b and the budget k, which scale how far a fixed Hessian moves the bound)
    eps = 1e-7 * sigma**2 / (float(np.linalg.norm(s, 2)) * (1.0 + k))
    r_eps = gaussian_quadratic_bound(k, grad=b, hessian=eps * _sym(rng, p), cov=s)
    assert r_eps.upper == pytest.approx(r.upper, rel=1e-4, abs=1e-9)


def test_zero_divergence_gives_zero():
    r = gaussian_quadratic_bound(0.0, eigenvalues=[1.0, -2.0], b_proj=[0.3, 0.0])
    assert r.upper == 0.0 and r.lower == 0.0 and r.subgamma_upper == 0.0
    r = gaussian_quadratic_bound(0.0, grad=np.zeros(2), hessian=np.zeros((2, 2)), cov=np.eye(2))
    assert r.upper == 0.0 and r.lower == 0.0
    # nothing to bound: f constant under the teacher => any student has the same expected gap
    r = gaussian_quadratic_bound(5.0, eigenvalues=[0.0, 0.0], b_proj=[0.0, 0.0])
    assert r.upper == 0.0 and r.lower == 0.0


def test_extreme_divergence_is_linear_in_k_with_slope_c_plus():
    a, b = np.array([1.0, -0.5, 0.2]), np.array([0.3, 0.1, -1.0])
    for k in (1e4, 1e8, 1e12):
        r = gaussian_quadratic_bound(k, eigenvalues=a, b_proj=b)
        assert r.c_plus * k <= r.upper <= r.subgamma_upper
        assert r.upper / k == pytest.approx(1.0, rel=1e-2)
        assert -r.lower / k == pytest.approx(0.5, rel=1e-2)
    r = gaussian_quadratic_bound(1e-20, eigenvalues=a, b_proj=b)
    assert r.upper == pytest.approx(math.sqrt(2 * r.v * 1e-20), rel=1e-6)


# ------------------------------------------------------------------ the DV bound holds (and is attained)


@SET
@given(seed=seeds, p=st.integers(1, 6), t=st.floats(0.02, 0.995), sign=st.sampled_from([1, -1]))
def test_tilted_gaussian_attains_the_exact_bound(seed, p, t, sign):
    """Q_lam ∝ P exp(lam f) is Gaussian; DV is an equality there: E_Q f - E_P f = U(KL(Q||P))."""
    rng = np.random.default_rng(seed)
    h, s = _sym(rng, p), _spd(rng, p, cond=20.0)
    g = rng.standard_normal(p)
    # admissible lam: I - lam S^{1/2} H S^{1/2} > 0
    a_all = np.linalg.eigvals(np.linalg.solve(np.linalg.inv(s), h)).real
    lam_edge = 1 / max(a_all.max(), 0) if sign > 0 and a_all.max() > 0 else (
        1 / max(-a_all.min(), 0) if sign < 0 and a_all.min() < 0 else 5.0)
    lam = sign * t * lam_edge
    # tilted law in the original coordinates: precision S^{-1} - lam H, mean lam C g  (m = 0)
    prec = np.linalg.inv(s) - lam * h
    c = np.linalg.inv(prec)
    c = 0.5 * (c + c.T)
    mu = lam * c @ g
    kl = _gauss_kl(mu, c, np.zeros(p), s)
    gap = _quad_mean(g, h, mu, c) - _quad_mean(g, h, np.zeros(p), s)
    r = gaussian_quadratic_bound(max(kl, 0.0), grad=g, hessian=h, cov=s)
    side = r.upper if sign > 0 else r.lower
    assert gap == pytest.approx(side, rel=1e-6, abs=1e-9)
    assert r.lower - 1e-9 <= gap <= r.upper + 1e-9
    lam_opt = r.lambda_upper if sign > 0 else r.lambda_lower
    assert lam_opt == pytest.approx(abs(lam), rel=1e-3)


@SET
@given(seed=seeds, p=st.integers(1, 6), shift=st.floats(0, 3), spread=st.floats(0.1, 3))
def test_dv_bound_holds_for_arbitrary_gaussian_students(seed, p, shift, spread):
    rng = np.random.default_rng(seed)
    h, s = _sym(rng, p), _spd(rng, p, cond=20.0)
    g = rng.standard_normal(p)
    m = rng.standard_normal(p)  # teacher mean
    mu = m + shift * rng.standard_normal(p)
    c = _spd(rng, p, cond=20.0) * spread
    kl = _gauss_kl(mu, c, m, s)

    def f_mean(mean, cov):  # f(w) = b^T (w - m) + (w - m)^T H (w - m) / 2
        return _quad_mean(g, h, mean - m, cov)

    gap = f_mean(mu, c) - f_mean(m, s)
    r = gaussian_quadratic_bound(kl, grad=g, hessian=h, cov=s)
    tol = 1e-9 * (1 + abs(gap))
    assert r.lower - tol <= gap <= r.upper + tol
    assert r.subgamma_lower - tol <= gap <= r.subgamma_upper + tol


# ------------------------------------------------------------------ dense path, multiplicity


@SET
@given(seed=seeds, p=st.integers(1, 7), rank=st.integers(0, 7), log_k=st.floats(-6, 3))
def test_dense_path_equals_spectral_path(seed, p, rank, log_k):
    rng = np.random.default_rng(seed)
    h, g = _sym(rng, p), rng.standard_normal(p)
    r_s = min(rank, p)
    f = rng.standard_normal((p, r_s))
    s = f @ f.T + (1e-3 * np.eye(p) if rank > p else 0.0)  # possibly singular PSD
    k = 10.0**log_k
    dense = gaussian_quadratic_bound(k, grad=g, hessian=h, cov=s)
    # independent spectral data via the factor F (S = F F^T): A_F = F^T H F and F^T b share the
    # nonzero spectrum and projections of S^{1/2} H S^{1/2} and S^{1/2} b
    a_f, q_f = np.linalg.eigh(f.T @ h @ f) if r_s > 0 else (np.zeros(0), np.zeros((0, 0)))
    if rank > p:
        lf = np.linalg.cholesky(s)
        a_f, q_f = np.linalg.eigh(lf.T @ h @ lf)
        bp = q_f.T @ (lf.T @ g)
    else:
        bp = q_f.T @ (f.T @ g) if r_s > 0 else np.zeros(0)
    spec = gaussian_quadratic_bound(k, eigenvalues=a_f, b_proj=bp)
    for name in ("upper", "lower", "subgamma_upper", "subgamma_lower", "v", "c_plus", "c_minus", "trace_a"):
        assert getattr(dense, name) == pytest.approx(getattr(spec, name), rel=1e-7, abs=1e-9), name


@SET
@given(seed=seeds, m=st.integers(1, 5), kk=st.integers(1, 4), log_k=st.floats(-4, 2))
def test_multiplicity_equals_explicit_kronecker(seed, m, kk, log_k):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(m)
    bp = rng.standard_normal((m, kk))
    k = 10.0**log_k
    r2d = gaussian_quadratic_bound(k, eigenvalues=a, b_proj=bp, multiplicity=kk)
    rflat = gaussian_quadratic_bound(k, eigenvalues=a, b_proj=bp.reshape(-1), multiplicity=kk)
    rexp = gaussian_quadratic_bound(k, eigenvalues=np.repeat(a, kk), b_proj=bp.reshape(-1))
    for name in ("upper", "lower", "v", "c_plus", "c_minus", "trace_a", "dimension"):
        assert getattr(r2d, name) == pytest.approx(getattr(rexp, name), rel=1e-9), name
        assert getattr(rflat, name) == pytest.approx(getattr(rexp, name), rel=1e-9), name
    assert log_mgf_quadratic(0.1, a, bp, multiplicity=kk) == pytest.approx(
        log_mgf_quadratic(0.1, np.repeat(a, kk), bp.reshape(-1)), rel=1e-12, abs=1e-15)
    # dense with H kron I_k (vec index j*k + l, grad of shape (p, k))
    h, s = _sym(rng, m), _spd(rng, m)
    g = rng.standard_normal((m, kk))
    rd = gaussian_quadratic_bound(k, grad=g, hessian=h, cov=s, multiplicity=kk)
    rk = gaussian_quadratic_bound(k, grad=g.reshape(-1), hessian=np.kron(h, np.eye(kk)), cov=np.kron(s, np.eye(kk)))
    for name in ("upper", "lower", "v", "c_plus", "c_minus", "trace_a"):
        assert getattr(rd, name) == pytest.approx(getattr(rk, name), rel=1e-7, abs=1e-10), name


# ------------------------------------------------------------------ K0 and the record


@SET
@given(seed=seeds, p=st.integers(1, 5), sigma_scale=st.floats(1.01, 10))
def test_k0_is_the_crossover_with_the_global_bound(seed, p, sigma_scale):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(p), rng.standard_normal(p)
    r = gaussian_quadratic_bound(1.0, eigenvalues=a, b_proj=b)
    sigma = sigma_scale * math.sqrt(r.v)
    k0 = r.k0(sigma)
    if r.c_plus == 0:
        assert k0 == math.inf
        return
    assert k0 == pytest.approx(2 * (sigma - math.sqrt(r.v)) ** 2 / r.c_plus**2)
    at = gaussian_quadratic_bound(k0, eigenvalues=a, b_proj=b)
    assert at.subgamma_upper == pytest.approx(subgaussian_bound(k0, sigma), rel=1e-9)
    below = gaussian_quadratic_bound(0.5 * k0, eigenvalues=a, b_proj=b)
    assert below.subgamma_upper < subgaussian_bound(0.5 * k0, sigma)
    above = gaussian_quadratic_bound(2.0 * k0, eigenvalues=a, b_proj=b)
    assert above.subgamma_upper > subgaussian_bound(2.0 * k0, sigma)
    assert r.k0(0.5 * math.sqrt(r.v)) == 0.0


def test_record_is_frozen_and_serialisable():
    r = gaussian_quadratic_bound(0.2, eigenvalues=[0.5, -0.1], b_proj=[1.0, 0.2])
    assert isinstance(r, GaussianQuadraticBound)
    d = r.to_dict()
    assert set(d) >= {"upper", "lower", "subgamma_upper", "subgamma_lower", "v", "c_plus", "c_minus",
                      "lambda_upper", "lambda_lower", "divergence"}
    assert all(isinstance(x, (float, int)) for x in d.values())
    with pytest.raises(Exception):
        r.upper = 0.0  # type: ignore[misc]


# ------------------------------------------------------------------ validation


def test_validation_messages():
    a, b = [1.0, 2.0], [0.1, 0.2]
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="divergence"):
            gaussian_quadratic_bound(bad, eigenvalues=a, b_proj=b)
    with pytest.raises(ValueError, match="b_proj"):
        gaussian_quadratic_bound(0.1, eigenvalues=a, b_proj=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="b_proj"):
        gaussian_quadratic_bound(0.1, eigenvalues=a, b_proj=np.ones((2, 3)), multiplicity=2)
    with pytest.raises(ValueError, match="b_proj"):
        gaussian_quadratic_bound(0.1, eigenvalues=a)
    with pytest.raises(ValueError, match="eigenvalues"):
        gaussian_quadratic_bound(0.1, eigenvalues=[[1.0, 2.0]], b_proj=b)
    with pytest.raises(ValueError, match="eigenvalues"):
        gaussian_quadratic_bound(0.1, eigenvalues=[1.0, float("nan")], b_proj=b)
    with pytest.raises(ValueError, match="either"):
        gaussian_quadratic_bound(0.1)
    with pytest.raises(ValueError, match="not both"):
        gaussian_quadratic_bound(0.1, eigenvalues=a, b_proj=b, cov=np.eye(2))
    with pytest.raises(ValueError, match="multiplicity"):
        gaussian_quadratic_bound(0.1, eigenvalues=a, b_proj=b, multiplicity=0)
    with pytest.raises(TypeError, match="^multiplicity: expected an integer, got float 2.5"):
        gaussian_quadratic_bound(0.1, eigenvalues=a, b_proj=b, multiplicity=2.5)
    with pytest.raises(TypeError, match="^multiplicity: expected an integer, got bool"):
        gaussian_quadratic_bound(0.1, eigenvalues=a, b_proj=b, multiplicity=True)
    # a whole float is the integer (kdbounds._checks.check_int, the one int policy)
    assert gaussian_quadratic_bound(0.1, eigenvalues=a, b_proj=b, multiplicity=1.0) == \
        gaussian_quadratic_bound(0.1, eigenvalues=a, b_proj=b, multiplicity=1)
    h_bad = np.array([[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match="hessian"):
        gaussian_quadratic_bound(0.1, grad=b, hessian=h_bad, cov=np.eye(2))
    with pytest.raises(ValueError, match="cov"):
        gaussian_quadratic_bound(0.1, grad=b, hessian=np.eye(2), cov=np.diag([1.0, -0.5]))
    with pytest.raises(ValueError, match="cov"):
        gaussian_quadratic_bound(0.1, grad=b, hessian=np.eye(2), cov=np.eye(3))
    with pytest.raises(ValueError, match="grad"):
        gaussian_quadratic_bound(0.1, grad=[1.0, 2.0, 3.0], hessian=np.eye(2), cov=np.eye(2))
    with pytest.raises(ValueError, match="grad"):
        gaussian_quadratic_bound(0.1, grad=np.ones((2, 3)), hessian=np.eye(2), cov=np.eye(2))
    with pytest.raises(ValueError, match="hessian"):
        gaussian_quadratic_bound(0.1, grad=b, hessian=np.ones((2, 3)), cov=np.eye(2))
    with pytest.raises(ValueError, match="grad, hessian and cov"):
        gaussian_quadratic_bound(0.1, grad=b, hessian=np.eye(2))
    with pytest.raises(ValueError, match="lam"):
        log_mgf_quadratic(float("nan"), a, b)
    r = gaussian_quadratic_bound(0.1, eigenvalues=a, b_proj=b)
    with pytest.raises(ValueError, match="sigma"):
        r.k0(-1.0)


@pytest.mark.parametrize(
    "a,b,k",
    [
        ([1e-300, -1.0], [0.3, 0.2], 0.5),  # c_+ at the underflow edge
        ([5e-324, -1.0], [0.3, 0.2], 0.5),  # subnormal c_+
        ([1.0, -1e-310], [1.0, 1.0], 1e-300),  # tiny K
        ([1e5, -3.0], [1e5, 1.0], 1e-300),
        ([1e-3], [1e-150], 1e300),  # huge K: slope c_+
        ([2.0], [0.0], 1e-12),
    ],
)
def test_extreme_scales_are_finite_and_ordered(a, b, k):
    r = gaussian_quadratic_bound(k, eigenvalues=a, b_proj=b)
    vals = [r.upper, r.lower, r.subgamma_upper, r.subgamma_lower, r.lambda_upper, r.lambda_lower]
    assert all(math.isfinite(x) for x in vals)
    tol = 1e-12 * abs(r.subgamma_upper)
    assert 0 < r.upper <= r.subgamma_upper + tol
    assert r.subgamma_lower - 1e-12 * abs(r.subgamma_lower) <= r.lower < 0
    # a c_+ at the underflow edge behaves as c_+ = 0
    if a[0] <= 1e-300:
        r0 = gaussian_quadratic_bound(k, eigenvalues=[0.0] + list(a[1:]), b_proj=b)
        assert r.upper == pytest.approx(r0.upper, rel=1e-9)
        assert r.lower == pytest.approx(r0.lower, rel=1e-9)
