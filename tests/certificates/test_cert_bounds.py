"""kdbounds.certificates.bounds against independent oracles.

Oracles: scipy.stats.entropy (Bernoulli kl), scipy.optimize.brentq (kl inversion), the exact binomial
distribution (Maurer's xi(n), Clopper–Pearson limits, coverage of the Monte Carlo step),
torch.distributions (Gaussian KL), linear_gaussian's matrix-normal KL, mpmath (phi near 1).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import mpmath
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import binom, entropy
from scipy.stats import beta as beta_dist

from kdbounds._io import dumps_strict
from kdbounds.certificates import (
    CertificateBound,
    GaussianKL,
    classic_bound,
    compose_certificate,
    diag_gaussian_kl,
    grid_delta,
    kl_bernoulli,
    kl_inverse_lower,
    kl_inverse_upper,
    mc_risk_upper,
    pac_bayes_complexity,
    pac_bayes_kl_bound,
    pinsker_bound,
    quadratic_bound,
)

probs = st.floats(0.0, 1.0, allow_nan=False)
inner_probs = st.floats(1e-6, 1 - 1e-6, allow_nan=False)
costs = st.floats(0.0, 5.0, allow_nan=False)


# ---------------------------------------------------------------------------------- independent oracles
def kl_ref(q: float, p: float) -> float:
    """Bernoulli KL via scipy.stats.entropy (relative entropy of two distributions)."""
    return float(entropy([q, 1 - q], [p, 1 - p]))


def inv_upper_ref(q: float, c: float) -> float:
    """sup{p >= q : kl(q||p) <= c} by brentq on the scipy-entropy kl."""
    if c == 0:
        return q
    hi = 1 - 1e-15
    if kl_ref(q, hi) <= c:
        return 1.0
    return brentq(lambda p: kl_ref(q, p) - c, q, hi, xtol=1e-15, rtol=1e-15, maxiter=500)


def inv_lower_ref(q: float, c: float) -> float:
    if c == 0:
        return q
    lo = 1e-15
    if kl_ref(q, lo) <= c:
        return 0.0
    return brentq(lambda p: kl_ref(q, p) - c, lo, q, xtol=1e-15, rtol=1e-15, maxiter=500)


def maurer_xi(n: int) -> float:
    """xi(n) = sum_k P(Bin(n, k/n) = k) (Maurer 2004, Theorem 5 uses ln(xi(n)/delta))."""
    k = np.arange(n + 1)
    return float(np.sum(binom.pmf(k, n, k / n)))


# ------------------------------------------------------------------------------------------- kl itself
@given(probs, probs)
def test_kl_bernoulli_matches_scipy_entropy(q, p):
    assume(0 < p < 1)
    assert kl_bernoulli(q, p) == pytest.approx(kl_ref(q, p), rel=1e-10, abs=1e-14)


def test_kl_bernoulli_conventions_and_broadcasting():
    assert kl_bernoulli(0.0, 0.0) == 0.0 and kl_bernoulli(1.0, 1.0) == 0.0
    assert kl_bernoulli(0.3, 0.0) == math.inf and kl_bernoulli(0.3, 1.0) == math.inf
    assert kl_bernoulli(0.0, 0.5) == pytest.approx(math.log(2))
    out = kl_bernoulli(np.array([[0.1], [0.2]]), np.array([0.3, 0.4, 0.5]))
    assert out.shape == (2, 3)
    assert isinstance(kl_bernoulli(0.1, 0.2), float)


# ----------------------------------------------------------------------------------------- kl inverses
@given(probs, costs)
def test_kl_inverse_upper_solves_kl_equation(q, c):
    p = kl_inverse_upper(q, c)
    assert q <= p <= 1.0
    if c > 0 and q < 1 and p < 1 - 1e-6:
        assert kl_ref(q, p) == pytest.approx(c, abs=1e-9)
    if c == 0 or c > 1e-6:  # below, scipy's kl cancels (the mpmath test covers tiny c)
        assert p == pytest.approx(inv_upper_ref(q, c), abs=1e-10)


@given(probs, costs)
def test_kl_inverse_lower_solves_kl_equation(q, c):
    p = kl_inverse_lower(q, c)
    assert 0.0 <= p <= q
    if c > 0 and q > 0 and p > 1e-6:
        assert kl_ref(q, p) == pytest.approx(c, abs=1e-9)
    if c == 0 or c > 1e-6:  # below, scipy's kl cancels (the mpmath test covers tiny c)
        assert p == pytest.approx(inv_lower_ref(q, c), abs=1e-10)


@given(st.lists(probs, min_size=2, max_size=20), costs)
def test_kl_inverses_monotone_in_q(qs, c):
    q = np.sort(np.array(qs))
    assert np.all(np.diff(kl_inverse_upper(q, c)) >= 0)
    assert np.all(np.diff(kl_inverse_lower(q, c)) >= 0)


@given(probs, st.lists(costs, min_size=2, max_size=20))
def test_kl_inverses_monotone_in_c(q, cs):
    c = np.sort(np.array(cs))
    assert np.all(np.diff(kl_inverse_upper(q, c)) >= 0)
    assert np.all(np.diff(kl_inverse_lower(q, c)) <= 0)


@given(inner_probs, st.floats(1e-6, 1 - 1e-6))
def test_kl_inverse_upper_inverts_kl(q, p):
    """Round trip: p >= q gives back p from kl(q||p)."""
    assume(p > q + 1e-6)
    c = kl_ref(q, p)
    assert kl_inverse_upper(q, c) == pytest.approx(p, abs=1e-9)


@given(inner_probs, st.floats(1e-6, 1 - 1e-6))
def test_kl_inverse_lower_inverts_kl(q, p):
    assume(p < q - 1e-6)
    c = kl_ref(q, p)
    assert kl_inverse_lower(q, c) == pytest.approx(p, abs=1e-9)


def test_kl_inverse_edge_cases_exact():
    c = np.array([0.0, 1e-12, 0.3, 7.0, 1e6])
    np.testing.assert_array_equal(kl_inverse_upper(0.0, c), -np.expm1(-c))  # kl(0||p) = -ln(1-p)
    np.testing.assert_array_equal(kl_inverse_lower(1.0, c), np.exp(-c))  # kl(1||p) = -ln p
    np.testing.assert_array_equal(kl_inverse_upper(1.0, c), 1.0)
    np.testing.assert_array_equal(kl_inverse_lower(0.0, c), 0.0)
    q = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    np.testing.assert_array_equal(kl_inverse_upper(q, 0.0), q)
    np.testing.assert_array_equal(kl_inverse_lower(q, 0.0), q)
    assert kl_inverse_upper(0.5, 1e6) == 1.0 and kl_inverse_lower(0.5, 1e6) == 0.0
    assert kl_inverse_upper(0.3, 1e-14) >= 0.3  # tiny c: never below q


@pytest.mark.parametrize("q", [1e-300, 1e-20, 0.3, 1 - 1e-12])
@pytest.mark.parametrize("c", [1e-300, 1e-30, 1e-8, 0.5])
def test_kl_inverses_extreme_values_against_mpmath(q, c):
    """Tiny q, tiny c, q near 1: the distance p - q against a 700-digit root of kl(q||p) = c."""
    mpmath.mp.dps = 700  # 1 - 1e-300 must not round to 1
    qm, cm = mpmath.mpf(q), mpmath.mpf(c)

    def kl_mp(p):
        return qm * mpmath.log(qm / p) + (1 - qm) * mpmath.log((1 - qm) / (1 - p))

    def distance(sign, dmax):
        """Geometric bisection on d = |p - q| in [1e-400, dmax] (kl increases with d): plain, independent."""
        lo, hi = mpmath.mpf(10) ** -400, dmax
        for _ in range(90):  # log-scale: ratio 1e-400 -> relative 1e-12 in ~60 halvings
            mid = mpmath.sqrt(lo * hi)
            if kl_mp(qm + sign * mid) <= cm:
                lo = mid
            else:
                hi = mid
        return mpmath.sqrt(lo * hi)

    eps50 = mpmath.mpf(10) ** -50
    for fn, sign in ((kl_inverse_upper, 1), (kl_inverse_lower, -1)):
        got = fn(q, c)
        dmax = (1 - qm - eps50) if sign > 0 else (qm - qm * eps50)
        if kl_mp(qm + sign * dmax) <= cm:  # answer indistinguishable from the end of [0, 1] in float64
            assert abs(got - (1.0 if sign > 0 else 0.0)) < 1e-12
        else:
            dist_ref = float(distance(sign, dmax))
            assert abs(abs(got - q) - dist_ref) <= 1e-7 * dist_ref + 4 * np.spacing(max(got, q)), (fn.__name__, got, dist_ref)
    mpmath.mp.dps = 15


def test_kl_inverse_broadcasting_and_types():
    out = kl_inverse_upper(np.array([[0.1], [0.2], [0.3]]), np.array([0.01, 0.1, 1.0, 2.0]))
    assert out.shape == (3, 4)
    assert isinstance(kl_inverse_upper(0.1, 0.2), float)
    assert isinstance(kl_inverse_lower(np.float64(0.1), 0.2), float)
    ref = [[inv_upper_ref(q, c) for c in (0.01, 0.1, 1.0, 2.0)] for q in (0.1, 0.2, 0.3)]
    np.testing.assert_allclose(out, ref, atol=1e-10)


@pytest.mark.parametrize("fn", [kl_inverse_upper, kl_inverse_lower])
@pytest.mark.parametrize(
    "q, c, name",
    [(-0.1, 0.1, "q"), (1.1, 0.1, "q"), (math.nan, 0.1, "q"), (0.1, -1.0, "c"), (0.1, math.inf, "c"), (0.1, math.nan, "c")],
)
def test_kl_inverse_guards_name_the_argument(fn, q, c, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        fn(q, c)


# -------------------------------------------------------------------------------------- PAC-Bayes-kl
@pytest.mark.parametrize("risk, k, n, delta", [(0.05, 0.0, 1000, 0.05), (0.2, 37.5, 5000, 0.025), (0.0, 3.0, 100, 0.01), (0.6, 1e3, 50_000, 0.1)])
def test_pac_bayes_kl_bound_is_the_maurer_inverse(risk, k, n, delta):
    """theory.md §7: kl(L_hat || L) <= (K + ln(2 sqrt(n)/delta))/n, inverted independently with brentq."""
    rhs = (k + math.log(2 * math.sqrt(n) / delta)) / n
    got = pac_bayes_kl_bound(risk, k, n, delta)
    assert got == pytest.approx(inv_upper_ref(risk, rhs), abs=1e-10)
    assert pac_bayes_complexity(k, n, delta) == pytest.approx(rhs, rel=1e-14)


def test_maurer_constant_is_valid_and_not_weakened():
    """The certificate is never below the one from Maurer's exact xi(n) (validity), and xi(n) <= 2 sqrt(n).

    Any weakening of a term (ln(2 sqrt n/delta) -> ln(sqrt n/delta), K -> K/2, n -> 2n) falls below the
    exact-xi certificate for some of these cases.
    """
    for n in (2, 5, 30, 200, 1000):
        xi = maurer_xi(n)
        assert math.sqrt(n) <= xi <= 2 * math.sqrt(n)
        for k in (0.0, 2.0, 40.0):
            for risk in (0.0, 0.1, 0.4):
                exact = inv_upper_ref(risk, (k + math.log(xi / 0.05)) / n)
                assert pac_bayes_kl_bound(risk, k, n, 0.05) >= exact - 1e-12


def test_pac_bayes_kl_bound_vectorised_and_monotone():
    risks = np.linspace(0, 1, 11)
    out = pac_bayes_kl_bound(risks, 10.0, 2000, 0.05)
    assert out.shape == (11,) and np.all(np.diff(out) >= 0) and np.all(out >= risks)
    ks = np.array([0.0, 1.0, 10.0, 100.0])
    assert np.all(np.diff(pac_bayes_kl_bound(0.1, ks, 2000, 0.05)) > 0)
    assert pac_bayes_kl_bound(0.1, 10.0, 2000, 0.01) > pac_bayes_kl_bound(0.1, 10.0, 2000, 0.05)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(delta=0.0), "delta"),
        (dict(delta=1.0), "delta"),
        (dict(delta=math.nan), "delta"),
        (dict(n=0), "n"),
        (dict(divergence=-0.5), "divergence"),
        (dict(divergence=math.nan), "divergence"),
        (dict(divergence=math.inf), "divergence"),
        (dict(empirical_risk=1.5), "empirical_risk"),
        (dict(empirical_risk=math.nan), "empirical_risk"),
    ],
)
def test_pac_bayes_kl_bound_guards(kwargs, name):
    args = dict(empirical_risk=0.1, divergence=1.0, n=100, delta=0.05) | kwargs
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        pac_bayes_kl_bound(**args)


# ------------------------------------------------------------------------------------------ Monte Carlo
@pytest.mark.parametrize("q, m, delta", [(0.1, 100, 0.01), (0.0, 10, 0.05), (0.45, 1000, 0.001), (1.0, 5, 0.1)])
def test_mc_risk_upper_is_langford_caruana(q, m, delta):
    assert mc_risk_upper(q, m, delta) == pytest.approx(inv_upper_ref(q, math.log(2 / delta) / m), abs=1e-10)


def test_mc_risk_upper_dominates_clopper_pearson():
    """Chernoff's kl bound is never tighter than the exact one-sided binomial (Clopper–Pearson) limit."""
    for m in (1, 7, 50, 400):
        for k in range(0, m + 1, max(1, m // 10)):
            cp = 1.0 if k == m else float(beta_dist.ppf(1 - 0.01, k + 1, m - k))
            assert mc_risk_upper(k / m, m, 0.01) >= cp - 1e-12


def test_mc_risk_upper_coverage_by_simulation():
    rng = np.random.default_rng(7)
    m, delta, reps = 40, 0.2, 4000
    for p in (0.05, 0.3, 0.7):
        ups = mc_risk_upper(rng.binomial(m, p, size=reps) / m, m, delta)
        rate = float(np.mean(ups < p))
        assert rate <= delta + 3 * math.sqrt(delta * (1 - delta) / reps)


@pytest.mark.parametrize("kwargs, name", [(dict(n_draws=0), "n_draws"), (dict(delta=1.2), "delta"), (dict(mc_risk=-0.1), "mc_risk")])
def test_mc_risk_upper_guards(kwargs, name):
    args = dict(mc_risk=0.1, n_draws=10, delta=0.05) | kwargs
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        mc_risk_upper(**args)


# ---------------------------------------------------------------------------------------- relaxations
@given(probs, costs)
def test_relaxations_upper_bound_the_kl_inverse(q, c):
    p = kl_inverse_upper(q, c)
    assert p <= pinsker_bound(q, c) + 1e-12
    assert p <= quadratic_bound(q, c) + 1e-12


@given(probs, st.floats(0, 100), st.integers(1, 10**6), st.floats(1e-4, 0.5))
def test_classic_bound_dominates_pac_bayes_kl(risk, k, n, delta):
    assert pac_bayes_kl_bound(risk, k, n, delta) <= classic_bound(risk, k, n, delta) + 1e-12


def test_relaxations_worked_values():
    # Pinsker: q + sqrt(c/2); quad: (sqrt(q + c/2) + sqrt(c/2))^2, checked at a hand-computed point.
    assert pinsker_bound(0.1, 0.02) == pytest.approx(0.2)
    assert quadratic_bound(0.1, 0.02) == pytest.approx((math.sqrt(0.11) + 0.1) ** 2)
    assert classic_bound(0.1, 0.0, 1, 0.5) == pytest.approx(0.1 + math.sqrt(math.log(4.0) / 2))


def test_grid_delta():
    assert grid_delta(0.05, 10) == pytest.approx(0.005)
    with pytest.raises(ValueError, match="^n_grid: expected"):
        grid_delta(0.05, 0)
    with pytest.raises(ValueError, match="^delta: expected"):
        grid_delta(0.0, 3)


# ---------------------------------------------------------------------------------------- Gaussian KL
def _torch_kl(mq, vq, mp, vp):
    torch = pytest.importorskip("torch")
    from torch.distributions import Independent, Normal, kl_divergence

    t = lambda a: torch.as_tensor(np.broadcast_to(a, np.shape(mq)).copy(), dtype=torch.float64)  # noqa: E731
    q = Independent(Normal(t(mq), t(vq).sqrt()), np.ndim(mq))
    p = Independent(Normal(t(mp), t(vp).sqrt()), np.ndim(mq))
    return float(kl_divergence(q, p))


@given(st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_diag_gaussian_kl_matches_torch_with_split(d, seed):
    rng = np.random.default_rng(seed)
    mq, mp = rng.normal(size=d), rng.normal(size=d)
    vq, vp = np.exp(rng.normal(size=d)), np.exp(rng.normal(size=d))
    out = diag_gaussian_kl(mq, vq, mp, vp)
    assert isinstance(out, GaussianKL)
    assert out.total == pytest.approx(_torch_kl(mq, vq, mp, vp), rel=1e-10, abs=1e-12)
    # the split: same variances -> the mean term only; same means -> the variance term only
    assert out.mean_term == pytest.approx(_torch_kl(mq, vp, mp, vp), rel=1e-10, abs=1e-12)
    assert out.variance_term == pytest.approx(_torch_kl(mp, vq, mp, vp), rel=1e-10, abs=1e-12)
    assert out.total == pytest.approx(out.mean_term + out.variance_term, rel=1e-14)
    assert out.mean_term >= 0 and out.variance_term >= 0


def test_diag_gaussian_kl_scalar_variances_broadcast():
    mq, mp = np.arange(6.0).reshape(2, 3), np.zeros((2, 3))
    a = diag_gaussian_kl(mq, 0.5, mp, 2.0)
    b = diag_gaussian_kl(mq, np.full((2, 3), 0.5), mp, np.full((2, 3), 2.0))
    assert a == b
    assert a.total == pytest.approx(_torch_kl(mq, 0.5, mp, 2.0), rel=1e-12)
    assert diag_gaussian_kl([0.0, 1.0], 1.0, [0.0, 1.0], 1.0) == GaussianKL(0.0, 0.0, 0.0)


def test_diag_gaussian_kl_accepts_float32_tensors_with_grad():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    mq = torch.randn(1000, generator=g, requires_grad=True)
    vq, mp, vp = torch.rand(1000, generator=g) + 0.1, torch.randn(1000, generator=g), torch.rand(1000, generator=g) + 0.1
    out = diag_gaussian_kl(mq, vq, mp, vp)
    ref = diag_gaussian_kl(*(t.detach().double().numpy() for t in (mq, vq, mp, vp)))
    assert out == ref
    assert out.total == pytest.approx(_torch_kl(*(t.detach().double().numpy() for t in (mq, vq, mp, vp))), rel=1e-12)


@pytest.mark.parametrize("k", [1, 3])
def test_diag_gaussian_kl_equals_matrix_normal_kl(k):
    """linear_gaussian's MN(M, I_k, diag v) is vec W ~ N(vec M, diag v kron I_k): the same diagonal law."""
    from linear_gaussian.model import MatrixNormal

    rng = np.random.default_rng(3)
    d = 7
    mq, mp = rng.normal(size=(k, d)), rng.normal(size=(k, d))
    vq, vp = np.exp(rng.normal(size=d)), np.exp(rng.normal(size=d))
    mn = MatrixNormal(mq, np.diag(vq)).kl(MatrixNormal(mp, np.diag(vp)))
    out = diag_gaussian_kl(mq, np.broadcast_to(vq, (k, d)), mp, np.broadcast_to(vp, (k, d)))
    assert out.total == pytest.approx(mn, rel=1e-10)


def test_variance_term_is_stable_near_one():
    """phi(x) = x - 1 - ln x for x = 1 + u with tiny u, against 50-digit mpmath."""
    mpmath.mp.dps = 50
    for u in (1e-12, -3e-9, 1e-6, -1e-4, 0.05, -0.09, 0.11, 3.0):
        vp = 1.7
        vq = vp * (1 + u)
        x = mpmath.mpf(vq) / mpmath.mpf(vp)
        ref = float((x - 1 - mpmath.log(x)) / 2)
        got = diag_gaussian_kl([0.0], [vq], [0.0], [vp]).variance_term
        assert got == pytest.approx(ref, rel=1e-9), u
    mpmath.mp.dps = 15


@pytest.mark.parametrize(
    "args, name",
    [
        (([0.0, 1.0], 1.0, [0.0], 1.0), "mean_p"),
        (([0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0], 1.0), "var_q"),
        (([0.0, 1.0], 1.0, [0.0, 0.0], [1.0, 0.0]), "var_p"),
        (([0.0, 1.0], -1.0, [0.0, 0.0], 1.0), "var_q"),
        (([0.0, math.nan], 1.0, [0.0, 0.0], 1.0), "mean_q"),
        (([0.0, 1.0], 1.0, [0.0, 0.0], math.inf), "var_p"),
        (([], 1.0, [], 1.0), "mean_q"),
    ],
)
def test_diag_gaussian_kl_guards(args, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        diag_gaussian_kl(*args)


# ----------------------------------------------------------------------------------------- certificate
def test_compose_certificate_chains_the_two_inversions():
    cert = compose_certificate(0.12, 200, 35.0, 8000, 0.025, 0.01, n_grid=4, trivial=0.9)
    emp = inv_upper_ref(0.12, math.log(2 / 0.01) / 200)
    ref = inv_upper_ref(emp, (35.0 + math.log(2 * math.sqrt(8000) / (0.025 / 4))) / 8000)
    assert cert.empirical_risk_upper == pytest.approx(emp, abs=1e-10)
    assert cert.risk_upper == pytest.approx(ref, abs=1e-10)
    assert cert.delta_pac == pytest.approx(0.025 / 4)
    assert cert.confidence == pytest.approx(1 - 0.035)
    assert cert.mc_risk <= cert.empirical_risk_upper <= cert.risk_upper <= cert.classic_risk_upper <= cert.pinsker_risk_upper
    assert not cert.vacuous
    # the grid correction is the PAC-Bayes step at delta / J
    same = compose_certificate(0.12, 200, 35.0, 8000, 0.025 / 4, 0.01)
    assert same.risk_upper == cert.risk_upper


def test_compose_certificate_pays_the_minimum_in_the_monte_carlo_step():
    """A minimum over J' certificates: each Monte Carlo step at δ'/J' (oracle: the inversion by brentq), so the
    minimum holds at 1 − δ − δ' (confidence unchanged); J' = 1 is the certificate reported alone."""
    cert = compose_certificate(0.12, 200, 35.0, 8000, 0.025, 0.01, n_grid=4, n_grid_mc=4, trivial=0.9)
    emp = inv_upper_ref(0.12, math.log(2 * 4 / 0.01) / 200)
    ref = inv_upper_ref(emp, (35.0 + math.log(2 * math.sqrt(8000) / (0.025 / 4))) / 8000)
    assert cert.empirical_risk_upper == pytest.approx(emp, abs=1e-10)
    assert cert.risk_upper == pytest.approx(ref, abs=1e-10)
    assert (cert.n_grid_mc, cert.delta_mc_each, cert.confidence) == (4, pytest.approx(0.0025), pytest.approx(0.965))
    alone = compose_certificate(0.12, 200, 35.0, 8000, 0.025, 0.01, n_grid=4, trivial=0.9)
    assert alone.risk_upper < cert.risk_upper and alone.n_grid_mc == 1
    with pytest.raises(ValueError, match="n_grid_mc"):
        compose_certificate(0.12, 200, 35.0, 8000, 0.025, 0.01, n_grid_mc=0)


def test_compose_certificate_record_and_vacuity():
    cert = compose_certificate(0.5, 10, 5000.0, 1000, 0.05, 0.05, trivial=0.9)
    assert isinstance(cert, CertificateBound) and cert.vacuous and cert.risk_upper >= 0.9
    d = json.loads(dumps_strict(cert.to_dict()))
    for key in ("mc_risk", "n_draws", "divergence", "n", "delta", "delta_mc", "n_grid", "trivial", "risk_upper", "vacuous"):
        assert key in d
    with pytest.raises(Exception):
        cert.risk_upper = 0.0  # frozen


@given(probs, st.integers(1, 10**5), st.floats(0, 1e4), st.integers(1, 10**6), st.floats(1e-4, 0.4), st.floats(1e-4, 0.4), st.integers(1, 50))
def test_compose_certificate_properties(q, m, k, n, delta, delta_mc, j):
    cert = compose_certificate(q, m, k, n, delta, delta_mc, n_grid=j)
    assert q <= cert.empirical_risk_upper <= cert.risk_upper <= 1.0
    assert cert.risk_upper <= cert.classic_risk_upper + 1e-12 <= cert.pinsker_risk_upper + 2e-12
    assert cert.vacuous == (cert.risk_upper >= 1.0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(delta=0.0), "delta"),
        (dict(delta=1.0), "delta"),
        (dict(delta=-0.1), "delta"),
        (dict(delta_mc=0.0), "delta_mc"),
        (dict(delta_mc=1.5), "delta_mc"),
        (dict(delta=0.6, delta_mc=0.5), "delta_mc"),
        (dict(n_draws=0), "n_draws"),
        (dict(n=0), "n"),
        (dict(divergence=-1.0), "divergence"),
        (dict(divergence=math.nan), "divergence"),
        (dict(divergence=math.inf), "divergence"),
        (dict(mc_risk=1.2), "mc_risk"),
        (dict(mc_risk=math.nan), "mc_risk"),
        (dict(n_grid=0), "n_grid"),
        (dict(trivial=0.0), "trivial"),
    ],
)
def test_compose_certificate_guards(kwargs, name):
    args = dict(mc_risk=0.1, n_draws=100, divergence=3.0, n=1000, delta=0.025, delta_mc=0.01) | kwargs
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        compose_certificate(**args)


def test_compose_certificate_refuses_non_integer_counts():
    with pytest.raises(TypeError, match="^n_draws: expected an integer"):
        compose_certificate(0.1, 10.5, 3.0, 1000, 0.025, 0.01)


# ---------------------------------------------------------------------------------------- import cost
def test_import_does_not_load_torch():
    code = (
        "import sys; import kdbounds.certificates, kdbounds.certificates.bounds, kdbounds.certificates.oracle; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("delta, delta_mc, ok", [(0.025, 0.01, True), (0.5, 0.49, True), (0.5, 0.5, False),
                                                 (0.9, 0.2, False), (0.0, 0.1, False), (0.1, 1.0, False)])
def test_the_confidence_pair_rule_is_checked_in_one_place_by_every_caller(delta, delta_mc, ok):
    """δ + δ' < 1 with both in (0, 1): the rule, and the study configs that use it refuse a bad pair at once."""
    import dataclasses

    from kdbounds.certificates.bounds import check_confidences
    from kdbounds.studies import certify_flatness as cf
    from kdbounds.studies import certify_students as cs

    calls = [lambda: check_confidences(delta, delta_mc),
             lambda: compose_certificate(0.1, 100, 1.0, 1000, delta, delta_mc),
             lambda: dataclasses.replace(cs.PRESETS["smoke"], delta=delta, delta_mc=delta_mc),
             lambda: dataclasses.replace(cf.PRESETS["smoke"], delta=delta, delta_mc=delta_mc)]
    for call in calls:
        if ok:
            call()
        else:
            with pytest.raises(ValueError, match="delta"):
                call()


# ------------------------------------------------------------------------------------ test-set bound
@given(n=st.integers(1, 3000), frac=st.floats(0, 1), delta=st.floats(1e-6, 0.5))
def test_test_set_bound_is_the_binomial_tail_inversion(n, frac, delta):
    """Oracle: the binomial distribution. At the bound p̄, P[Bin(n, p̄) <= k] = delta (k < n), and it is never above
    the Chernoff form kl^{-1}(k/n, ln(1/delta)/n) (brentq on scipy's entropy)."""
    from kdbounds.certificates import test_set_bound

    k = min(n, int(frac * n))
    b = test_set_bound(k, n, delta)
    assert k / n <= b <= 1
    if k == n:
        assert b == 1.0
        return
    assert binom.cdf(k, n, b) == pytest.approx(delta, rel=1e-6, abs=1e-12)
    c = math.log(1 / delta) / n
    chernoff = brentq(lambda p: entropy([k / n, 1 - k / n], [p, 1 - p]) - c, k / n, 1 - 1e-15) \
        if entropy([k / n, 1 - k / n], [1 - 1e-15, 1e-15]) > c else 1.0
    assert b <= chernoff + 1e-9


def test_test_set_bound_covers_at_its_confidence():
    """Coverage by simulation: over 20,000 held-out sets of n = 200 at true risk 0.1, the bound at delta = 0.05
    falls below the truth in at most 5 % of them (it is exact up to discreteness: about 3.6 % here)."""
    from kdbounds.certificates import test_set_bound

    rng = np.random.default_rng(0)
    k = rng.binomial(200, 0.1, size=20000)
    bounds = {int(v): test_set_bound(int(v), 200, 0.05) for v in np.unique(k)}
    fail = np.mean([bounds[int(v)] < 0.1 for v in k])
    assert 0.02 < fail <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 20000)


@pytest.mark.parametrize("args, msg", [((3, 2, 0.05), "n_errors: expected at most n = 2"),
                                       ((-1, 10, 0.05), "n_errors: expected an integer >= 0"),
                                       ((1, 0, 0.05), "n: expected an integer >= 1"),
                                       ((1, 10, 1.0), r"delta: expected a number in \(0, 1\)")])
def test_test_set_bound_refuses_bad_input(args, msg):
    from kdbounds.certificates import test_set_bound

    with pytest.raises(ValueError, match=msg):
        test_set_bound(*args)
