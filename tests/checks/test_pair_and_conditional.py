"""evaluate_pair end to end on tiny models, the conditional/proxy records, the losses, strict JSON.

Oracles: ``torch.nn.functional.cross_entropy`` (clipped by hand) and ``torch.distributions.Categorical``
for the losses; ``kdbounds.divergence.predictive_divergence``-free KL sums via ``Categorical``; the
canonical formula values of theory.md §4 checked on hand-picked numbers.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.distributions import Categorical

from kdbounds._io import dumps_strict
from kdbounds._records import Estimate
from kdbounds.checks import (
    assign_verdicts,
    clipped_cross_entropy,
    evaluate_pair,
    gibbs_error,
    measure_teacher_curvature,
    product_law_proxy,
    theorem1_sigma_n,
    theorem2_central,
    zero_one_loss,
)


def strict_loads(text):
    return json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_losses_against_torch():
    g = torch.Generator().manual_seed(0)
    z = 6 * torch.randn(50, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (50,), generator=g)
    ce = nn.functional.cross_entropy(z, y, reduction="none")
    assert torch.allclose(clipped_cross_entropy(z, y, 0.01), torch.clamp(ce, max=math.log(100)))
    assert (ce > math.log(100)).any(), "test set-up: some examples must be clipped"
    assert torch.equal(zero_one_loss(z, y), (z.argmax(1) != y).double())
    assert torch.allclose(gibbs_error(z, y, 2.0), 1 - Categorical(logits=z / 2).probs[torch.arange(50), y])
    with pytest.raises(ValueError, match="p_min"):
        clipped_cross_entropy(z, y, 1.5)
    with pytest.raises(ValueError, match="labels"):
        zero_one_loss(z, torch.full((50,), 7))
    with pytest.raises(ValueError, match="NaN"):
        gibbs_error(torch.full((2, 3), math.nan), torch.zeros(2, dtype=torch.long))


def test_conditional_records_label_and_use_the_upper_k():
    diff = Estimate(0.03, 0.01, 400)
    k = Estimate(0.02, 0.005, 200, 0.012, 0.031, 0.95)
    r1 = theorem1_sigma_n(diff, k, 0.5, 200, loss="zero_one")
    assert r1.kind == "conditional" and not r1.assumptions_met and "σ²/n" in r1.assumption
    assert r1.bound == pytest.approx(math.sqrt(2 * 0.25 * 0.031 / 200))  # K at the upper limit
    r2 = theorem2_central(Estimate(0.1, 0.01, 400), Estimate(0.12, 0.01, 400), k, 0.5, 200, loss="zero_one")
    eta = 2 * 0.5 * 0.1 / (0.25 / 200)
    assert r2.side == "lower" and r2.bound == pytest.approx(0.5 * 0.1 - 0.031 / eta)
    assert r2.observed_se == 0.01 and r2.verdict == "holds"
    nd = theorem2_central(Estimate(-0.1, 0.01, 400), Estimate(0.12, 0.01, 400), k, 0.5, 200, loss="zero_one")
    assert nd.verdict == "not_defined" and "gen(T)" in nd.reason
    r3 = product_law_proxy(diff, k, 0.5, 200, loss="zero_one")
    assert r3.kind == "proxy" and r3.bound == pytest.approx(0.5 * math.sqrt(2 * 0.031))


def test_memoriser_example_breaks_the_sigma_n_form():
    """theory.md §4 Caution: K = ln 2, true difference 0.45, σ²/n form gives 0.013 → violated (conditional)."""
    r = theorem1_sigma_n(Estimate(0.45, 1e-4, 2000), Estimate(math.log(2), 0.0, 2000, math.log(2), math.log(2)),
                         0.5, 2000, loss="zero_one")
    assert r.bound == pytest.approx(0.0132, abs=2e-4) and r.verdict == "violated" and r.kind == "conditional"


@pytest.fixture(scope="module")
def pair_results(tiny_pair):
    teacher, student, train, test = tiny_pair
    curv = measure_teacher_curvature(teacher, train, test, trace_matvecs=64, lanczos_matvecs=20, batch_size=64)
    other = nn.Sequential(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    same = evaluate_pair(teacher, student, train, test, curvature=curv, kernel_std=0.1, mc_draws=8, n_boot=100,
                         teacher_label="t", student_label="same")
    cross = evaluate_pair(teacher, other, train, test, curvature=curv, n_boot=100, teacher_label="t",
                          student_label="cross")
    return same, cross, curv


def test_evaluate_pair_records(pair_results, tiny_pair):
    same, cross, _ = pair_results
    names = sorted((r.name, r.loss) for r in same.records)
    assert ("gibbs_classifier", "gibbs_zero_one") in names and ("thm3b_subgamma_mc", "clipped_ce") in names
    assert len(names) == len(set(names)) == 1 + 3 * 2 + 3
    g = same.record("gibbs_classifier")
    assert g.kind == "demonstration" and g.assumptions_met and g.verdict in ("holds", "violated")
    assert same.same_architecture and not cross.same_architecture
    for nm in ("thm3b_subgamma_mc", "thm3b_subgamma_quadratic", "thm3a_radius"):
        assert cross.record(nm).verdict == "not_defined" and cross.record(nm).bound is None
        assert same.record(nm).bound is not None
    assert cross.record("gibbs_classifier").bound is not None
    # K̂ on the training inputs against a Categorical KL computed here
    teacher, student, train, _ = tiny_pair
    with torch.no_grad():
        kl = Categorical(logits=student(train[0])).probs
        ref = float((kl * (torch.log_softmax(student(train[0]), 1) - torch.log_softmax(teacher(train[0]), 1)))
                    .sum(1).mean())
    assert same.divergence_train.value == pytest.approx(ref, rel=1e-9)
    # the paired gap difference equals the difference of the two gaps
    d = same.gap_difference["clipped_ce"].value
    assert d == pytest.approx(same.student_losses["clipped_ce"].gap.value - same.teacher_losses["clipped_ce"].gap.value)


def test_run_level_verdicts_and_strict_json(pair_results):
    same, cross, _ = pair_results
    strict_loads(dumps_strict(pair_results[2]))  # the teacher's curvature record
    recs = assign_verdicts(same.records + cross.records, 0.05)
    stochastic = [r for r in recs if r.method == "shaffer"]
    assert stochastic and all(r.family_size == len(stochastic) for r in stochastic)
    assert all(r.kind in ("certificate", "demonstration", "conditional", "proxy") for r in recs)
    for obj in (same, cross, list(recs)):
        strict_loads(dumps_strict(obj))


def test_pair_errors(tiny_pair):
    teacher, student, train, test = tiny_pair
    with pytest.raises(ValueError, match="curvature"):
        evaluate_pair(teacher, student, train, test)
    with pytest.raises(ValueError, match="losses"):
        evaluate_pair(teacher, student, train, test, kernel=False, losses=("mse",))
    with pytest.raises(TypeError, match="student"):
        evaluate_pair(teacher, "model", train, test, kernel=False)
    r = evaluate_pair(teacher, student, train, test, kernel=False, n_boot=50)
    assert r.record("thm3a_radius").reason.startswith("not requested")
    assert r.record("thm3a_radius").kind == "proxy" and r.record("thm3b_subgamma_quadratic").kind == "demonstration"
