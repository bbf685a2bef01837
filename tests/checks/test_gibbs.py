"""The Gibbs-classifier check against simulation and against its tight case.

Oracles: labels drawn from the product laws (many repetitions) for the expected gaps; the KL of the
product laws from ``torch.distributions.Categorical``; the exponentially tilted student, for which the
Donsker–Varadhan inequality is nearly an equality, so a bound that is too small *or* too large fails.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from kdbounds.checks import gibbs_bound, gibbs_classifier


def simulate_gaps(logits_tr, y_tr, logits_te, y_te, reps, gen):
    """Empirical 0–1 gaps of Gibbs predictors: labels drawn from softmax(z) on every input, `reps` times."""
    p_tr, p_te = torch.softmax(logits_tr, 1), torch.softmax(logits_te, 1)
    d_tr = torch.multinomial(p_tr, reps, replacement=True, generator=gen)  # (n, reps)
    d_te = torch.multinomial(p_te, reps, replacement=True, generator=gen)
    err_tr = (d_tr != y_tr[:, None]).double().mean(0)
    err_te = (d_te != y_te[:, None]).double().mean(0)
    return err_te - err_tr


def random_case(seed, n=30, m=20, k=4, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    z = lambda r: scale * torch.randn(r, k, generator=g, dtype=torch.float64)  # noqa: E731
    ytr = torch.randint(0, k, (n,), generator=g)
    yte = torch.randint(0, k, (m,), generator=g)
    return z(n), z(n), ytr, z(m), z(m), yte, g


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expected_gaps_and_bound_by_simulation(seed):
    s_tr, t_tr, ytr, s_te, t_te, yte, g = random_case(seed)
    rec = gibbs_classifier(s_tr, t_tr, ytr, s_te, t_te, yte)
    reps = 40_000
    gs = simulate_gaps(s_tr, ytr, s_te, yte, reps, g)
    gt = simulate_gaps(t_tr, ytr, t_te, yte, reps, g)
    diff = float(gs.mean() - gt.mean())
    se = math.sqrt(float(gs.var() + gt.var()) / reps)
    assert abs(rec.observed - diff) < 4.5 * se
    assert rec.inputs["gibbs_gap_student"] == pytest.approx(float(gs.mean()), abs=4.5 * float(gs.std()) / reps ** 0.5)
    # the KL between the product laws, by the distributions library
    kl = sum(float(kl_divergence(Categorical(logits=a), Categorical(logits=b)).sum())
             for a, b in ((s_tr, t_tr), (s_te, t_te)))
    assert rec.inputs["K_product"] == pytest.approx(kl, rel=1e-9)
    # the inequality itself on the simulated gaps
    assert abs(diff) <= rec.bound + 4.5 * se
    assert rec.kind == "demonstration" and rec.assumptions_met and rec.verdict == "holds"
    assert rec.observed_se == 0.0 and rec.method == "exact"


def test_hoeffding_variance_proxy_by_simulation():
    """log E exp(λ(g − Eg)) ≤ λ² σ²/2 with σ² = (1/n + 1/m)/4, on simulated teacher gaps (p = ½: worst case)."""
    n, m = 12, 8
    z0 = torch.zeros
    y_tr, y_te = torch.zeros(n, dtype=torch.long), torch.zeros(m, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    g = simulate_gaps(z0(n, 2, dtype=torch.float64), y_tr, z0(m, 2, dtype=torch.float64), y_te, 400_000, gen)
    sigma2 = 0.25 * (1 / n + 1 / m)
    for lam in (1.0, 4.0, 10.0):
        psi = math.log(float(torch.exp(lam * (g - g.mean())).mean()))
        assert psi <= lam * lam * sigma2 / 2 * 1.02
    # and the proxy is attained for p = ½: the variance equals σ²
    assert float(g.var()) == pytest.approx(sigma2, rel=0.01)


@pytest.mark.parametrize("n,m", [(10, 10), (25, 7)])
def test_bound_is_tight_for_the_tilted_student(n, m):
    """Teacher p = ½ everywhere (binary); student = the Gibbs tilt Q ∝ P·exp(λ g) (a product law).

    For small λ, E_Q g − E_P g ≈ λσ² and K ≈ λ²σ²/2, so bound/observed → 1 from above: a bound too
    small by any factor is violated, one too large by √2 is far from 1.
    """
    lam = 0.2
    a_tr, a_te = -1.0 / n, 1.0 / m  # g = Σ a_i 1[ŷ_i ≠ y_i]
    y_tr, y_te = torch.zeros(n, dtype=torch.long), torch.zeros(m, dtype=torch.long)

    def tilted(rows, a):
        # logit of the wrong class (1) raised by λ a: q(ŷ≠y) ∝ ½ e^{λ a}
        z = torch.zeros(rows, 2, dtype=torch.float64)
        z[:, 1] = lam * a
        return z

    t_tr, t_te = torch.zeros(n, 2, dtype=torch.float64), torch.zeros(m, 2, dtype=torch.float64)
    rec = gibbs_classifier(tilted(n, a_tr), t_tr, y_tr, tilted(m, a_te), t_te, y_te)
    ratio = rec.bound / abs(rec.observed)
    assert 1.0 <= ratio <= 1.01
    assert rec.verdict == "holds"


def test_bound_errors_and_zero():
    assert gibbs_bound(5, 7, 0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="n"):
        gibbs_bound(0, 3, 0.1, 0.1)
    with pytest.raises(ValueError, match="k_test"):
        gibbs_bound(3, 3, 0.1, -1.0)
    s_tr, t_tr, ytr, s_te, t_te, yte, _ = random_case(0)
    with pytest.raises(ValueError, match="classes"):
        gibbs_classifier(s_tr, t_tr[:, :3], ytr, s_te, t_te, yte)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(2, 5), st.floats(0.1, 8.0), st.integers(0, 10_000))
def test_gibbs_inequality_property(n, m, k, scale, seed):
    """|E_S g − E_T g| ≤ bound for any logits (Donsker–Varadhan + Hoeffding): an exact theorem."""
    g = torch.Generator().manual_seed(seed)
    z = lambda r: scale * torch.randn(r, k, generator=g, dtype=torch.float64)  # noqa: E731
    ytr, yte = torch.randint(0, k, (n,), generator=g), torch.randint(0, k, (m,), generator=g)
    rec = gibbs_classifier(z(n), z(n), ytr, z(m), z(m), yte)
    assert abs(rec.observed) <= rec.bound + 1e-12
