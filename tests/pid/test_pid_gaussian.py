"""Gaussian MMI PID against scalar closed forms (correlation coefficients, no log-dets)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdbounds.pid import gaussian_mi, gaussian_pid


def mi_rho(rho: float) -> float:
    """I(X;Y) of a bivariate Gaussian with correlation rho: -1/2 log(1 - rho^2)."""
    return -0.5 * np.log1p(-rho * rho)


@settings(max_examples=40, deadline=None)
@given(st.floats(-2, 2), st.floats(-2, 2), st.floats(0.1, 2))
def test_independent_sources(a, b, sigma):
    # Y = a T + b S + sigma N with T, S, N independent standard normals
    vy = a * a + b * b + sigma * sigma
    cov = np.array([[vy, a, b], [a, 1, 0], [b, 0, 1]])
    r = gaussian_pid(cov)
    i_t = mi_rho(a / np.sqrt(vy))
    i_s = mi_rho(b / np.sqrt(vy))
    i_ts = 0.5 * np.log(vy / sigma**2)  # R^2 = (a^2 + b^2) / vy
    red = min(i_t, i_s)
    np.testing.assert_allclose(
        [r.redundancy, r.unique_t, r.unique_s, r.synergy],
        [red, i_t - red, i_s - red, i_ts - i_t - i_s + red],
        atol=1e-10,
    )
    assert r.synergy >= -1e-12  # MMI synergy is >= 0 for a scalar target


def test_copy_is_redundant_and_scale_invariant():
    # T = S = Y + noise: identical sources -> no unique information
    rho2 = 0.8
    cov = np.array([[1, np.sqrt(rho2), np.sqrt(rho2)], [np.sqrt(rho2), 1, 1 - 1e-9], [np.sqrt(rho2), 1 - 1e-9, 1]])
    cov[1, 2] = cov[2, 1] = 1.0 - 1e-9
    r = gaussian_pid(cov)
    assert r.unique_t == pytest.approx(0, abs=1e-8)
    assert r.redundancy == pytest.approx(mi_rho(np.sqrt(rho2)), rel=1e-6)
    d = np.diag([3.0, 0.5, 7.0])
    r2 = gaussian_pid(d @ cov @ d)
    assert r2.redundancy == pytest.approx(r.redundancy, rel=1e-8)


def test_vector_blocks_add_over_independent_pairs():
    # Y=(Y1,Y2), T=(T1,T2) with (Y_i, T_i) independent pairs of correlation rho_i; S independent
    r1, r2 = 0.6, -0.3
    cov = np.eye(5)
    cov[0, 2] = cov[2, 0] = r1
    cov[1, 3] = cov[3, 1] = r2
    assert gaussian_mi(cov, [0, 1], [2, 3]) == pytest.approx(mi_rho(r1) + mi_rho(r2), rel=1e-12)
    r = gaussian_pid(cov, dims=(2, 2, 1), units="bits")
    assert r.unique_t == pytest.approx((mi_rho(r1) + mi_rho(r2)) / np.log(2), rel=1e-10)
    assert r.redundancy == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize(
    "cov, dims, match",
    [
        (np.eye(3), (1, 1), "three"),
        (np.eye(3), (1, 1, 2), "sum"),
        (np.ones((2, 3)), (1, 1, 1), "square"),
        (np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1]]), (1, 1, 1), "symmetric"),
        (np.array([[1, 2, 0], [2, 1, 0], [0, 0, 1]]), (1, 1, 1), "positive definite"),
        (np.full((3, 3), np.nan), (1, 1, 1), "NaN"),
    ],
)
def test_bad_covariance(cov, dims, match):
    with pytest.raises(ValueError, match=match):
        gaussian_pid(cov, dims)


def test_mmi_agrees_with_broja_on_finely_binned_gaussians():
    """Barrett 2015: for a scalar Gaussian target BROJA = MMI. Binning (10 equiprobable bins, 2e5
    samples: plug-in bias ~ 1e-3 nats) loses a little information, so BROJA of the binned law sits
    slightly below the Gaussian atoms, with the same zero pattern."""
    import warnings

    from kdbounds.pid import broja_pid_from_counts, joint_counts

    rng = np.random.default_rng(0)
    n = 200_000
    y = rng.standard_normal(n)
    t = y + 0.5 * rng.standard_normal(n)
    s = y + 1.0 * rng.standard_normal(n)  # S is a garbling of T w.r.t. Y: Uni(S\T) = 0

    def bins(v, k=10):
        return np.searchsorted(np.quantile(v, np.linspace(0, 1, k + 1)[1:-1]), v)

    g = gaussian_pid(np.cov(np.stack([y, t, s])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = broja_pid_from_counts(joint_counts(bins(y), bins(t), bins(s), n_classes=10, n_t=10, n_s=10))
    assert g.unique_s == 0.0 and b.unique_s < 0.005
    for a in ("redundancy", "unique_t", "synergy"):
        assert 0.75 * getattr(g, a) < getattr(b, a) < 1.02 * getattr(g, a), a
