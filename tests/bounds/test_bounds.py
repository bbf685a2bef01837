"""Theorems 1, 2, 3A of theory.md §4 (kdbounds.bounds) and the §5 properties 11-13."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kdbounds.bounds import (
    central_eta_from_subgaussian,
    central_lower_bound,
    sharpness_radius_bound,
    subgamma_bound,
    subgaussian_bound,
    tightness_radius,
)

SET = settings(max_examples=50, deadline=None)
pos = st.floats(min_value=1e-6, max_value=1e3, allow_nan=False, allow_infinity=False)
nonneg = st.one_of(st.just(0.0), st.floats(min_value=1e-12, max_value=1e3))


# ------------------------------------------------------------------ Theorem 1


def test_subgaussian_values():
    assert subgaussian_bound(0.5, 1.0, 10) == pytest.approx(math.sqrt(2 * 0.5 / 10))
    assert subgaussian_bound(2.0, 0.5) == pytest.approx(1.0)
    # a loss in [0, 1] has sigma = 1/2: sqrt(2 * 1/4 * K / n) = sqrt(K / (2n))
    assert subgaussian_bound(0.8, 0.5, n=100) == pytest.approx(math.sqrt(0.8 / 200))


@SET
@given(sigma=nonneg, n=st.integers(1, 10**6))
def test_subgaussian_zero_divergence_forces_equal_gaps(sigma, n):
    assert subgaussian_bound(0.0, sigma, n) == 0.0
    assert subgaussian_bound(0.0, sigma) == 0.0


@SET
@given(k1=nonneg, k2=nonneg, s1=pos, s2=pos, n1=st.integers(1, 10**5), n2=st.integers(1, 10**5))
def test_subgaussian_monotone(k1, k2, s1, s2, n1, n2):
    klo, khi = sorted((k1, k2))
    slo, shi = sorted((s1, s2))
    nlo, nhi = sorted((n1, n2))
    assert subgaussian_bound(klo, s1, n1) <= subgaussian_bound(khi, s1, n1)
    assert subgaussian_bound(k1, slo, n1) <= subgaussian_bound(k1, shi, n1)
    assert subgaussian_bound(k1, s1, nhi) <= subgaussian_bound(k1, s1, nlo)


@SET
@given(k=nonneg, sigma=pos, n=st.integers(1, 10**5), a=st.floats(1e-3, 1e3))
def test_subgaussian_loss_scaling_and_per_gap_form(k, sigma, n, a):
    b = subgaussian_bound(k, sigma, n)
    assert subgaussian_bound(k, a * sigma, n) == pytest.approx(a * b, rel=1e-12, abs=1e-300)
    # sigma per sample with n  ==  per-gap sigma_n = sigma / sqrt(n)
    assert subgaussian_bound(k, sigma / math.sqrt(n)) == pytest.approx(b, rel=1e-12, abs=1e-300)


# ------------------------------------------------------------------ Theorem 2


def test_central_values():
    assert central_lower_bound(0.1, 0.2, 4.0, 0.5) == pytest.approx(0.05 - 0.05)
    assert central_lower_bound(-0.3, 0.0, 1.0, 1.0) == pytest.approx(-0.3)
    assert central_eta_from_subgaussian(0.2, 0.1, 0.5) == pytest.approx(2 * 0.5 * 0.2 / 0.01)


@SET
@given(g=st.floats(1e-3, 10), sigma_n=st.floats(1e-3, 10), k=st.floats(0, 10), c=st.floats(0, 0.999))
def test_subgaussian_gap_satisfies_central_condition(g, sigma_n, k, c):
    # A Gaussian gap G ~ N(g, sigma_n^2) is exactly sigma_n-sub-Gaussian:
    # log E exp(-eta G) = -eta g + eta^2 sigma_n^2 / 2, which must be <= -c eta g at the returned eta.
    eta = central_eta_from_subgaussian(g, sigma_n, c)
    assert eta > 0
    log_mgf = -eta * g + 0.5 * eta**2 * sigma_n**2
    assert log_mgf <= -c * eta * g + 1e-9 * (1 + abs(eta * g))
    # ...and any larger eta violates it (so eta is the largest admissible)
    eta2 = 1.01 * eta
    assert -eta2 * g + 0.5 * eta2**2 * sigma_n**2 > -c * eta2 * g


@SET
@given(g=st.floats(0.05, 5), sigma_n=st.floats(0.01, 2), frac=st.floats(0.0, 1.0))
def test_theorem2_reduces_to_theorem1_after_optimising_c(g, sigma_n, frac):
    # pick K with sqrt(sigma_n^2 K / 2) <= g (optimal c in [0, 1))
    k_max = 2 * g * g / sigma_n**2
    k = frac * k_max
    target = g - subgaussian_bound(k, sigma_n)  # gen(T) - sqrt(2 sigma_n^2 K)
    def lower(c):
        return central_lower_bound(g, k, central_eta_from_subgaussian(g, sigma_n, c), c)

    cs = np.linspace(0.0, 1.0 - 1e-9, 401)
    vals = np.array([lower(c) for c in cs])
    i = int(np.argmax(vals))
    res = minimize_scalar(lambda c: -lower(c), bounds=(cs[max(i - 1, 0)], cs[min(i + 1, 400)]),
                          method="bounded", options={"xatol": 1e-12})
    best = max(vals.max(), -res.fun)
    assert best <= target + 1e-9 * (1 + abs(target))  # never better than the closed form
    assert best >= target - 1e-6 * (abs(g) + abs(target))  # and the optimum over c reaches it
    # the analytic optimum 1 - c* = sqrt(sigma_n^2 K / 2) / g attains it
    t = math.sqrt(sigma_n**2 * k / 2) / g
    if 1e-9 < t <= 1:
        c_star = 1 - t
        assert lower(c_star) == pytest.approx(target, rel=1e-9, abs=1e-12)


@SET
@given(g=st.floats(-5, 5), k=st.floats(1e-6, 10), sigma_n=st.floats(1e-3, 5), eta=st.floats(1e-3, 100))
def test_central_sharper_than_theorem1_iff(g, k, sigma_n, eta):
    # with c = 1: g - K/eta >= g - sqrt(2 sigma_n^2 K)  iff  K <= 2 sigma_n^2 eta^2
    thr = 2 * sigma_n**2 * eta**2
    assume(abs(k - thr) > 1e-6 * thr)
    sharper = central_lower_bound(g, k, eta, 1.0) > g - subgaussian_bound(k, sigma_n)
    assert sharper == (k < thr)


@SET
@given(g=st.floats(-5, 5), k1=nonneg, k2=nonneg, eta=pos, c=st.floats(0, 1))
def test_central_monotone_in_divergence_and_eta(g, k1, k2, eta, c):
    klo, khi = sorted((k1, k2))
    assert central_lower_bound(g, khi, eta, c) <= central_lower_bound(g, klo, eta, c)
    assert central_lower_bound(g, k1, eta, c) <= central_lower_bound(g, k1, 2 * eta, c)


# ------------------------------------------------------------------ Theorem 3A


@SET
@given(sigma=pos, g0=nonneg, beta=nonneg, rho=nonneg)
def test_tightness_radius_characterises_a_rho(sigma, g0, beta, rho):
    assume(g0 > 0 or beta > 0)
    rho0 = tightness_radius(sigma, g0, beta)
    a_rho = g0 * rho + 0.5 * beta * rho * rho
    assume(abs(rho - rho0) > 1e-7 * rho0)
    assert (a_rho < sigma) == (rho < rho0)
    # at rho0 the radius bound equals the global per-gap bound sqrt(2 sigma^2 K)
    a0 = g0 * rho0 + 0.5 * beta * rho0**2
    assert a0 == pytest.approx(sigma, rel=1e-9)
    k = 0.37
    assert sharpness_radius_bound(k, rho0, g0, beta) == pytest.approx(subgaussian_bound(k, sigma), rel=1e-9)


@SET
@given(sigma=pos, g0=nonneg, b1=nonneg, b2=nonneg)
def test_tightness_radius_decreasing_in_curvature(sigma, g0, b1, b2):
    assume(g0 > 0 or min(b1, b2) > 0)
    lo, hi = sorted((b1, b2))
    assert tightness_radius(sigma, g0, hi) <= tightness_radius(sigma, g0, lo)


def test_tightness_radius_special_cases():
    assert tightness_radius(2.0, 4.0, 0.0) == pytest.approx(0.5)  # sigma / G0
    assert tightness_radius(2.0, 0.0, 1.0) == pytest.approx(2.0)  # sqrt(2 sigma / beta)
    g0, beta, s = 3.0, 0.7, 1.3
    assert tightness_radius(s, g0, beta) == pytest.approx((math.sqrt(g0**2 + 2 * beta * s) - g0) / beta)
    assert tightness_radius(1.0, 0.0, 0.0) == math.inf
    assert tightness_radius(0.0, 1.0, 1.0) == 0.0
    # tiny curvature: the cancellation-free form still matches sigma / G0
    assert tightness_radius(1.0, 2.0, 1e-300) == pytest.approx(0.5, rel=1e-12)


@SET
@given(k=nonneg, rho=nonneg, g0=nonneg, beta=nonneg, a=st.floats(1e-3, 1e3))
def test_sharpness_bound_formula_and_loss_scaling(k, rho, g0, beta, a):
    b = sharpness_radius_bound(k, rho, g0, beta)
    assert b == pytest.approx((g0 * rho + 0.5 * beta * rho**2) * math.sqrt(2 * k), rel=1e-12, abs=1e-300)
    # loss -> a * loss scales G0 and beta by a, the bound by a; rho0 is invariant
    assert sharpness_radius_bound(k, rho, a * g0, a * beta) == pytest.approx(a * b, rel=1e-12, abs=1e-300)
    if g0 > 0 or beta > 0:
        assert tightness_radius(a * 1.0, a * g0, a * beta) == pytest.approx(
            tightness_radius(1.0, g0, beta), rel=1e-12
        )


# ------------------------------------------------------------------ sub-gamma


@SET
@given(k=nonneg, v=nonneg, cp=nonneg, cm=nonneg)
def test_subgamma_bound_is_the_optimised_relaxation(k, v, cp, cm):
    lo, hi = subgamma_bound(k, v, cp, cm)
    assert lo <= 0.0 <= hi
    assert hi == pytest.approx(math.sqrt(2 * v * k) + cp * k, rel=1e-12, abs=1e-300)
    assert lo == pytest.approx(-math.sqrt(2 * v * k) - cm * k, rel=1e-12, abs=1e-300)


@SET
@given(k=st.floats(1e-3, 1e6), v=st.floats(1e-3, 1e6),
       cp=st.one_of(st.just(0.0), st.floats(1e-6, 1e6)), cm=st.floats(0.0, 1e6))
def test_subgamma_bound_is_the_optimised_relaxation_on_a_grid(k, v, cp, cm):
    # it is inf_lam (K + lam^2 v / (2 (1 - cp lam))) / lam: check against a grid of lam
    _, hi = subgamma_bound(k, v, cp, cm)
    # cp = 0: no pole; put the grid's span around the unconstrained optimum sqrt(2K/v) (a fixed 1e8
    # left optima below the grid's first point 1e-4 for small K / large v)
    lam_max = 1 / cp if cp > 0 else 1e4 * np.sqrt(2 * k / v)
    lams = lam_max * np.concatenate([np.geomspace(1e-12, 0.5, 20001), 1 - np.geomspace(0.5, 1e-12, 20001)])
    grid = np.min((k + lams**2 * v / (2 * (1 - cp * lams))) / lams)
    assert hi <= grid * (1 + 1e-9)
    assert grid <= hi * (1 + 1e-5)  # grid resolution (geometric steps of ~0.13 %)


# ------------------------------------------------------------------ validation


BAD_SCALARS = [-1.0, float("nan"), float("inf"), -1e-300]


@pytest.mark.parametrize("bad", BAD_SCALARS)
def test_bad_inputs_name_the_argument(bad):
    with pytest.raises(ValueError, match="divergence"):
        subgaussian_bound(bad, 1.0, 10)
    with pytest.raises(ValueError, match="sigma"):
        subgaussian_bound(1.0, bad, 10)
    with pytest.raises(ValueError, match="n"):
        subgaussian_bound(1.0, 1.0, bad)
    with pytest.raises(ValueError, match="eta"):
        central_lower_bound(0.1, 1.0, bad, 0.5)
    with pytest.raises(ValueError, match="rho"):
        sharpness_radius_bound(1.0, bad, 1.0, 1.0)
    with pytest.raises(ValueError, match="curvature"):
        tightness_radius(1.0, 1.0, bad)
    with pytest.raises(ValueError, match="v"):
        subgamma_bound(1.0, bad, 1.0)


def test_bad_inputs_misc():
    with pytest.raises(ValueError, match="n"):
        subgaussian_bound(1.0, 1.0, 0)
    with pytest.raises(ValueError, match="eta"):
        central_lower_bound(0.1, 1.0, 0.0, 0.5)
    for c in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError, match="c"):
            central_lower_bound(0.1, 1.0, 1.0, c)
    with pytest.raises(ValueError, match="c"):
        central_eta_from_subgaussian(0.1, 1.0, 1.0)
    with pytest.raises(ValueError, match="gen_teacher"):
        central_eta_from_subgaussian(-0.1, 1.0, 0.5)
    with pytest.raises(ValueError, match="gen_teacher"):
        central_lower_bound(float("nan"), 1.0, 1.0, 0.5)
    with pytest.raises(TypeError, match="divergence"):
        subgaussian_bound("0.1", 1.0)
    with pytest.raises(TypeError, match="sigma"):
        subgaussian_bound(0.1, np.ones(3))
    # numpy scalars are accepted
    assert subgaussian_bound(np.float32(0.5), np.float64(1.0), np.int64(2)) == pytest.approx(math.sqrt(0.5))
