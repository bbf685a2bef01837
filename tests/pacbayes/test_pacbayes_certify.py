"""``certify`` on a linear classifier whose Gibbs risk is known exactly (theory.md §7's oracle):
the Monte Carlo estimate against the exact per-example Gibbs error Φ(−y mᵀx/(s‖x‖)), the coverage of
the per-example Monte Carlo upper limit (with a negative control that shows the check has power), the
certificate against an independent recomputation from the CERT-MATH functions, guards before any
evaluation, and strict JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from kdbounds._io import dumps_strict
from kdbounds.certificates import kl_inverse_upper, mc_risk_upper, pac_bayes_kl_bound
from kdbounds.pacbayes.certify import certify, select_scales
from kdbounds.pacbayes.kernels import GaussianKernel
from kdbounds.certificates.oracle import gibbs_error, sample_halfspace


class Halfspace(nn.Module):
    """Two-class logits (0, wᵀx): predicts class 1 iff wᵀx > 0."""

    def __init__(self, w: np.ndarray) -> None:
        super().__init__()
        self.lin = nn.Linear(len(w), 1, bias=False).double()
        with torch.no_grad():
            self.lin.weight.copy_(torch.as_tensor(w, dtype=torch.float64)[None])
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        z = self.lin(x)
        return torch.cat([torch.zeros_like(z), z], dim=-1)


def _problem(n=400, d=5, eta=0.1, seed=0, s=0.4):
    rng = np.random.default_rng(seed)
    w_star = rng.standard_normal(d)
    x, y_pm = sample_halfspace(n, w_star, eta, rng)
    m = w_star + 0.5 * rng.standard_normal(d)
    data = (torch.as_tensor(x, dtype=torch.float64), torch.as_tensor((y_pm > 0).astype(np.int64)))
    Q = GaussianKernel.from_model(Halfspace(m), s)
    P = GaussianKernel.from_model(Halfspace(np.zeros(d) + 0.1), 1.0)
    exact = gibbs_error(m, s, x, y_pm)
    return Q, P, data, exact, m


@pytest.mark.parametrize("draws, method", [("per_example", None), ("shared", None)])
def test_mc_risk_matches_the_exact_gibbs_error(draws, method):
    Q, P, data, exact, _ = _problem()
    M = 50 if draws == "per_example" else 400
    c = certify(Q, P, data, n_draws=M, draws=draws, seed=1, chunk=100)
    p = float(exact.mean())
    if draws == "per_example":  # independent Bernoulli(q_i): variance Σ q_i(1−q_i)/N²·M
        se = math.sqrt(float((exact * (1 - exact)).sum()) * M) / (M * len(exact))
    else:  # M i.i.d. draws of the whole-set risk: a loose upper bound of its SE
        se = math.sqrt(p * (1 - p) / M)
    assert abs(c.mc_risk - p) < 5 * se
    assert c.n_evaluations == (M * len(exact) if draws == "per_example" else M)


def test_explicit_and_local_per_example_schemes_both_match_the_oracle():
    from kdbounds.pacbayes.kernels import per_example_logits

    Q, _, (x, y), exact, _ = _problem(n=300)
    xs, ys = x.repeat(40, 1), y.repeat(40)
    for method in ("local", "explicit"):
        z = per_example_logits(Q, xs, torch.Generator().manual_seed(3), method=method, chunk=2000)
        err = (z.argmax(1) != ys).double().reshape(40, -1).mean(0).numpy()
        se = math.sqrt(float((exact * (1 - exact)).sum()) / 40) / len(exact)
        assert abs(err.mean() - exact.mean()) < 5 * se, method


def test_per_example_mc_upper_limit_covers_and_the_check_has_power():
    """Over R repetitions of the Monte Carlo step (fixed D_S, fresh draws), the upper limit
    kl⁻¹(L̂_N, ln(2/δ')/N) with N = M·n_S must fail (fall below the exact empirical Gibbs risk) in
    at most δ' + 3 binomial SEs; the same limit with N overstated tenfold fails visibly more often."""
    Q, P, data, exact, _ = _problem(n=60, s=1.0)
    target = float(exact.mean())
    R, dmc = 300, 0.2
    fails = over = 0
    for r in range(R):
        c = certify(Q, P, data, n_draws=1, delta_mc=dmc, seed=r)
        fails += c.mc_risk_upper < target
        over += float(kl_inverse_upper(c.mc_risk, math.log(2 / dmc) / (10 * c.n_evaluations))) < target
    se = math.sqrt(dmc * (1 - dmc) / R)
    assert fails / R <= dmc / 2 + 3 * se  # two-sided ln(2/δ') makes the one-sided rate ≈ δ'/2 at most
    assert over / R > fails / R + 0.15


def test_certificate_equals_an_independent_recomputation():
    Q, P, data, _, _ = _problem()
    c = certify(Q, P, data, n_draws=3, delta=0.05, delta_mc=0.02, n_grid=4, seed=0)
    ref_kl = sum(float(kl_divergence(Normal(Q.mean[n], Q.std[n]), Normal(P.mean[n], P.std[n])).sum())
                 for n in Q.names)
    assert c.divergence == pytest.approx(ref_kl, rel=1e-10)
    assert c.n_s == len(data[1]) == 400
    up = float(mc_risk_upper(c.mc_risk, 3 * 400, 0.02))
    assert c.mc_risk_upper == pytest.approx(up, rel=1e-10)
    assert c.risk_upper == pytest.approx(float(pac_bayes_kl_bound(up, ref_kl, 400, 0.05 / 4)), rel=1e-9)
    assert c.confidence == pytest.approx(0.93)
    assert c.trivial == 0.5 and c.vacuous == (c.risk_upper >= 0.5)


def test_bounded_ce_certificate_and_held_out_estimate():
    Q, P, data, _, _ = _problem()
    test = (data[0][:200], data[1][:200])
    c = certify(Q, P, data, loss="bounded_ce", n_draws=2, p_min=1e-2, test_data=test, test_draws=3)
    assert 0 <= c.mc_risk <= c.mc_risk_upper <= c.risk_upper <= 1
    assert c.trivial == pytest.approx(math.log(2) / math.log(100))
    t = c.test_gibbs_risk
    assert t["n"] == 200 and t["ci_low"] <= t["value"] <= t["ci_high"] and t["level"] == 0.95


def test_certificate_is_strict_json():
    Q, P, data, _, _ = _problem()
    c = certify(Q, P, data, test_data=data)
    d = json.loads(dumps_strict(c), parse_constant=lambda s: (_ for _ in ()).throw(ValueError(s)))
    for k in ("risk_upper", "mc_risk", "mc_risk_upper", "divergence", "mean_term", "variance_term", "n_s",
              "n_draws", "delta", "delta_mc", "n_grid", "kernel_dim", "vacuous", "test_gibbs_risk", "seed"):
        assert k in d
    with pytest.raises(Exception):
        c.risk_upper = 0.0  # frozen


@pytest.mark.parametrize("kw, exc, msg", [
    ({"delta": 0.0}, ValueError, r"delta: expected a number in \(0, 1\)"),
    ({"delta": 1.0}, ValueError, r"delta: expected a number in \(0, 1\)"),
    ({"delta_mc": 1.5}, ValueError, r"delta_mc: expected a number in \(0, 1\)"),
    ({"delta": 0.6, "delta_mc": 0.5}, ValueError, "delta_mc: expected delta \\+ delta_mc < 1"),
    ({"n_draws": 0}, ValueError, "n_draws: expected an integer >= 1"),
    ({"n_draws": 1.5}, TypeError, "n_draws: expected an integer"),
    ({"loss": "hinge"}, ValueError, "loss: expected one of"),
    ({"n_grid": 0}, ValueError, "n_grid"),
    ({"p_min": 0.0}, ValueError, "p_min"),
    ({"draws": "all"}, ValueError, "draws: expected one of"),
])
def test_guards_raise_before_any_evaluation(kw, exc, msg):
    Q, P, data, _, _ = _problem()
    Q.model.calls = 0
    with pytest.raises(exc, match=msg):
        certify(Q, P, data, **kw)
    assert Q.model.calls == 0


def test_mismatched_kernels_refused_before_evaluation():
    Q, _, data, _, _ = _problem()
    P_other = GaussianKernel.from_model(Halfspace(np.ones(6)), 1.0)
    Q.model.calls = 0
    with pytest.raises(ValueError, match="do not share a parameter space"):
        certify(Q, P_other, (torch.zeros(3, 5, dtype=torch.float64), torch.zeros(3, dtype=torch.int64)))
    assert Q.model.calls == 0
    with pytest.raises(ValueError, match="data_s"):
        certify(Q, Q, (data[0], data[1][:-1]))


def test_select_scales_searches_the_whole_grid():
    Q, P, data, _, m = _problem()
    ch = select_scales(Q.model, P.model, data, prior_scales=(0.5, 1.0, 2.0), posterior_scales=(0.1, 0.4),
                       n_s=400, n_draws=2)
    assert len(ch.table) == 6 and ch.sigma_prior in (0.5, 1.0, 2.0) and ch.sigma_posterior in (0.1, 0.4)
    assert ch.proxy_bound == min(r["proxy_bound"] for r in ch.table)
