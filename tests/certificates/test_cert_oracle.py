"""The exact oracle of theory.md §7 against Monte Carlo, and the certificate's failure rate.

Oracles: Monte Carlo over inputs, labels and weight draws (with standard errors); the deterministic
limit s -> 0; the nominal level delta (+ delta') with a binomial standard error; a negative control.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from kdbounds._io import dumps_strict
from kdbounds.certificates.oracle import (
    RepeatResult,
    gibbs_error,
    population_gibbs_risk,
    population_risk,
    repeat_certificates,
    sample_halfspace,
)


def _z(estimate: float, samples: np.ndarray, value: float) -> float:
    se = samples.std(ddof=1) / math.sqrt(samples.size)
    return abs(estimate - value) / max(se, 1e-300)


def test_sample_halfspace_flip_rate():
    rng = np.random.default_rng(0)
    w = np.array([1.0, -2.0, 0.5])
    x, y = sample_halfspace(50_000, w, 0.15, rng)
    assert x.shape == (50_000, 3) and set(np.unique(y)) == {-1.0, 1.0}
    flipped = (y != np.sign(x @ w)).astype(float)
    assert _z(flipped.mean(), flipped, 0.15) < 4


@pytest.mark.parametrize("d, eta", [(2, 0.0), (5, 0.1), (40, 0.3)])
def test_population_risk_matches_monte_carlo(d, eta):
    rng = np.random.default_rng(d)
    w_star, w = rng.normal(size=d), rng.normal(size=d)
    x, y = sample_halfspace(200_000, w_star, eta, rng)
    err = (np.sign(x @ w) != y).astype(float)
    assert _z(err.mean(), err, population_risk(w, w_star, eta)) < 4


def test_gibbs_error_matches_monte_carlo_over_weight_draws():
    rng = np.random.default_rng(1)
    d = 6
    m, s = rng.normal(size=d), 0.7
    x = rng.normal(size=(5, d))
    y = np.array([1.0, -1.0, 1.0, 1.0, -1.0])
    exact = gibbs_error(m, s, x, y)
    W = m + s * rng.standard_normal((200_000, d))
    for i in range(5):
        err = (y[i] * (W @ x[i]) < 0).astype(float)
        assert _z(err.mean(), err, exact[i]) < 4


@pytest.mark.parametrize(
    "d, noise, s_factor",
    [(2, 1.0, 0.8), (3, 0.5, 0.3), (5, 1.0, 1.5), (20, 0.3, 0.3), (200, 1.0, 0.3), (10, 0.2, 0.02)],
)
def test_population_gibbs_risk_matches_monte_carlo(d, noise, s_factor):
    """Against E_W[eta + (1-2 eta) theta(W, w*)/pi] by sampling W ~ N(m, s^2 I) (the angle oracle)."""
    rng = np.random.default_rng(d)
    w_star = rng.normal(size=d)
    m = w_star / np.linalg.norm(w_star) + noise * rng.normal(size=d) / math.sqrt(d)
    s = s_factor * np.linalg.norm(m) / math.sqrt(d)
    eta = 0.1
    W = m + s * rng.standard_normal((200_000 if d <= 20 else 40_000, d))
    risks = population_risk(W, w_star, eta)
    assert _z(risks.mean(), risks, population_gibbs_risk(m, s, w_star, eta)) < 4


def test_population_gibbs_risk_matches_full_monte_carlo():
    """Against the raw definition: fresh (x, y) and a fresh W ~ Q per example."""
    rng = np.random.default_rng(5)
    d, eta = 8, 0.2
    w_star, m, s = rng.normal(size=d), rng.normal(size=d), 0.6
    x, y = sample_halfspace(400_000, w_star, eta, rng)
    W = m + s * rng.standard_normal((400_000, d))
    err = (y * np.sum(W * x, axis=1) < 0).astype(float)
    assert _z(err.mean(), err, population_gibbs_risk(m, s, w_star, eta)) < 4


def test_population_gibbs_risk_limits_and_vectorisation():
    rng = np.random.default_rng(2)
    d = 12
    w_star, m = rng.normal(size=d), rng.normal(size=d)
    # s -> 0: the deterministic classifier's risk; s -> infinity: a coin flip (1/2)
    assert population_gibbs_risk(m, 1e-7, w_star, 0.1) == pytest.approx(population_risk(m, w_star, 0.1), abs=1e-6)
    assert population_gibbs_risk(m, 1e7, w_star, 0.1) == pytest.approx(0.5, abs=1e-6)
    # the true direction itself, eta = 0, tiny s: zero risk
    assert population_gibbs_risk(w_star, 1e-9, w_star, 0.0) == pytest.approx(0.0, abs=1e-6)
    ms = rng.normal(size=(3, d))
    ss = np.array([0.1, 1.0, 3.0])
    vec = population_gibbs_risk(ms, ss, w_star, 0.05)
    assert vec.shape == (3,)
    for i in range(3):
        assert vec[i] == pytest.approx(population_gibbs_risk(ms[i], ss[i], w_star, 0.05), rel=1e-12)


def test_certificate_failure_rate_within_nominal_exact_path():
    """theory.md §7: over 500 draws of the data, failures <= delta + 3 binomial SE."""
    res = repeat_certificates(d=10, n_t=200, n_s=400, eta=0.1, repetitions=500, rng=np.random.default_rng(11), delta=0.05)
    assert isinstance(res, RepeatResult) and res.repetitions == 500
    assert res.failure_rate.value <= res.nominal_level + 3 * res.nominal_stderr
    # a real certificate: above the empirical risk and below 1 on average
    assert res.mean_empirical_risk < res.mean_certificate < 1.0
    assert res.mean_divergence > 0


def test_certificate_failure_rate_within_nominal_monte_carlo_path():
    res = repeat_certificates(
        d=10, n_t=200, n_s=300, eta=0.1, repetitions=500, rng=np.random.default_rng(12), delta=0.05, n_draws=20, delta_mc=0.02,
        posterior="certification",
    )
    assert res.nominal_level == pytest.approx(0.07)
    assert res.failure_rate.value <= res.nominal_level + 3 * res.nominal_stderr
    assert res.mean_empirical_risk < res.mean_certificate < 1.0


def test_negative_control_fails_visibly():
    """Prior fitted on D_S itself with d > n_S: the certificate must fail most of the time (power)."""
    res = repeat_certificates(d=150, n_t=10, n_s=60, eta=0.1, repetitions=200, rng=np.random.default_rng(13), control=True)
    assert res.failure_rate.value >= 0.5
    assert res.failure_rate.ci_low > 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)
    assert res.mean_divergence == 0.0


def test_repeat_result_is_strict_json_and_reproducible():
    kw = dict(d=5, n_t=50, n_s=80, eta=0.1, repetitions=20, delta=0.1)
    a = repeat_certificates(rng=np.random.default_rng(3), **kw)
    b = repeat_certificates(rng=np.random.default_rng(3), **kw)
    c = repeat_certificates(rng=np.random.default_rng(4), **kw)
    assert a == b and a.certificates != c.certificates
    d = json.loads(dumps_strict(a.to_dict()))
    assert d["repetitions"] == 20 and len(d["certificates"]) == 20 and "value" in d["failure_rate"]


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        (dict(delta=0.0), ValueError, "delta"),
        (dict(delta=1.0), ValueError, "delta"),
        (dict(n_draws=0, delta_mc=0.01), ValueError, "n_draws"),
        (dict(n_draws=10), ValueError, "delta_mc"),
        (dict(delta_mc=0.01), ValueError, "delta_mc"),
        (dict(n_draws=10, delta_mc=1.0), ValueError, "delta_mc"),
        (dict(eta=0.5), ValueError, "eta"),
        (dict(d=1), ValueError, "d"),
        (dict(repetitions=0), ValueError, "repetitions"),
        (dict(rng=1), TypeError, "rng"),
        (dict(posterior="all"), ValueError, "posterior"),
        (dict(w_star=np.zeros(4)), ValueError, "w_star"),
    ],
)
def test_repeat_certificates_guards(kwargs, exc, name):
    args = dict(d=4, n_t=20, n_s=20, eta=0.1, repetitions=2, rng=np.random.default_rng(0)) | kwargs
    with pytest.raises(exc, match=rf"^{name}: "):
        repeat_certificates(**args)


def test_oracle_function_guards():
    with pytest.raises(ValueError, match="^w: expected nonzero"):
        population_risk(np.zeros(3), np.ones(3), 0.1)
    with pytest.raises(ValueError, match="^s: expected"):
        gibbs_error(np.ones(3), 0.0, np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="^y: expected labels"):
        gibbs_error(np.ones(3), 1.0, np.ones((2, 3)), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="^x: expected shape"):
        gibbs_error(np.ones(3), 1.0, np.ones((2, 4)), np.ones(2))
    with pytest.raises(ValueError, match="^mean: expected dimension"):
        population_gibbs_risk(np.ones(1), 1.0, np.ones(1), 0.1)
    with pytest.raises(ValueError, match="^s: expected"):
        population_gibbs_risk(np.ones(3), -1.0, np.ones(3), 0.1)
    with pytest.raises(ValueError, match="^eta: expected"):
        population_risk(np.ones(3), np.ones(3), 0.7)
