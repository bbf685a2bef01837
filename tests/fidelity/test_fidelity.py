"""Tests for kdbounds.fidelity: per-pair metrics on hand-made distributions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from kdbounds.fidelity import (
    FidelityReport,
    MetricEstimate,
    activation_distance,
    agreement,
    agreement_by_teacher_correctness,
    cosine_similarity,
    disagreement,
    expected_calibration_error,
    fidelity_report,
    js_divergence,
    kl_divergence,
    softmax_probs,
)


def _random_probs(n, c, seed, sharp=2.0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(sharp * torch.randn(n, c, generator=g, dtype=torch.float64), 1)


def test_identical_distributions():
    p = _random_probs(20, 5, 0)
    assert agreement(p, p).value == 1.0
    assert agreement(p, p).stderr == 0.0
    assert disagreement(p, p).value == 0.0
    assert js_divergence(p, p).value == pytest.approx(0.0, abs=1e-14)
    assert activation_distance(p, p).value == pytest.approx(0.0, abs=1e-14)
    assert cosine_similarity(p, p).value == pytest.approx(1.0, abs=1e-12)
    assert kl_divergence(p, p).value == pytest.approx(0.0, abs=1e-14)


def test_disjoint_one_hot():
    ps = torch.eye(4, dtype=torch.float64)
    pt = torch.roll(ps, 1, dims=1)
    assert js_divergence(ps, pt).value == pytest.approx(math.log(2), rel=1e-12)
    assert activation_distance(ps, pt).value == pytest.approx(math.sqrt(2), rel=1e-12)
    assert cosine_similarity(ps, pt).value == pytest.approx(0.0, abs=1e-15)
    assert agreement(ps, pt).value == 0.0 and disagreement(ps, pt).value == 1.0
    with pytest.raises(ValueError, match="infinite"):
        kl_divergence(ps, pt)


def test_hand_made_values():
    ps = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], dtype=torch.float64)
    pt = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    # distance: both rows ‖(±0.5, ∓0.5, 0)‖ = √0.5
    d = activation_distance(ps, pt)
    assert d.value == pytest.approx(math.sqrt(0.5)) and d.stderr == pytest.approx(0.0, abs=1e-15) and d.n == 2
    # cosine: 0.5 / (1 · √0.5) = 1/√2 for both rows
    assert cosine_similarity(ps, pt).value == pytest.approx(1 / math.sqrt(2))
    # JS of (1,0) and (½,½): m = (¾, ¼); ½ ln(4/3) + ½[½ ln(2/3) + ½ ln 2]
    js = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    assert js_divergence(ps, pt).value == pytest.approx(js, rel=1e-12)
    # argmax ties: (½, ½) -> class 0, so both rows agree
    assert agreement(ps, pt).value == 1.0


def test_agreement_stderr_and_split():
    # 5 inputs, labels; teacher right on inputs 0,1,2 and wrong on 3,4
    pt = torch.eye(3, dtype=torch.float64)[[0, 1, 2, 0, 0]]
    ps = torch.eye(3, dtype=torch.float64)[[0, 1, 0, 0, 2]]
    y = torch.tensor([0, 1, 2, 1, 2])
    a = agreement(ps, pt)
    v = np.array([1, 1, 0, 1, 0], dtype=float)
    assert a.value == pytest.approx(0.6)
    assert a.stderr == pytest.approx(v.std(ddof=1) / math.sqrt(5))
    right, wrong = agreement_by_teacher_correctness(ps, pt, y)
    assert (right.value, right.n) == (pytest.approx(2 / 3), 3)
    assert (wrong.value, wrong.n) == (pytest.approx(0.5), 2)
    # teacher never wrong -> the wrong subset is empty, explicitly n = 0
    right, wrong = agreement_by_teacher_correctness(ps, pt, pt.argmax(1))
    assert wrong.n == 0 and not wrong.defined and right.n == 5


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), c=st.integers(2, 8), seed=st.integers(0, 10_000), sharp=st.floats(0.1, 8.0))
def test_js_matches_scipy_and_bounds(n, c, seed, sharp):
    ps, pt = _random_probs(n, c, seed, sharp), _random_probs(n, c, seed + 1, sharp)
    ref = np.mean([jensenshannon(a, b) ** 2 for a, b in zip(ps.numpy(), pt.numpy())])  # natural log
    js = js_divergence(ps, pt).value
    assert js == pytest.approx(ref, rel=1e-7, abs=1e-12)
    assert 0 <= js <= math.log(2)
    d = activation_distance(ps, pt).value
    assert 0 <= d <= math.sqrt(2) + 1e-12
    cos = cosine_similarity(ps, pt).value
    assert 0 <= cos <= 1 + 1e-12
    # symmetry of the symmetric metrics
    assert js_divergence(pt, ps).value == pytest.approx(js, rel=1e-12, abs=1e-15)


def _ece_loop(p, y, n_bins=15):
    """Independent ECE oracle: explicit loop over (lo, hi] bins."""
    conf = p.max(1)
    pred = p.argmax(1)
    ece = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        mask = (conf > lo) & (conf <= hi) if b > 0 else (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs((pred[mask] == y[mask]).mean() - conf[mask].mean())
    return ece


def test_ece_hand_made():
    p = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.62, 0.38], [0.58, 0.42]], dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1])
    # bin (13/15, 14/15]: acc ½, conf 0.9 -> 0.4·2/4; bin (9/15, 10/15]: acc 1, conf 0.62 -> 0.38/4;
    # bin (8/15, 9/15]: acc 0, conf 0.58 -> 0.58/4.  ECE = 0.2 + 0.095 + 0.145 = 0.44
    e = expected_calibration_error(p, y, n_boot=50)
    assert e.value == pytest.approx(0.44, abs=1e-12)
    assert e.n == 4 and e.stderr > 0
    # perfectly confident and right: 0
    assert expected_calibration_error(torch.eye(3, dtype=torch.float64), torch.arange(3)).value == pytest.approx(0.0)
    # always confident and always wrong: 1
    assert expected_calibration_error(torch.eye(3, dtype=torch.float64), torch.tensor([1, 2, 0])).value == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), c=st.integers(2, 6), seed=st.integers(0, 10_000), bins=st.integers(1, 20))
def test_ece_matches_loop(n, c, seed, bins):
    p = _random_probs(n, c, seed)
    y = torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))
    got = expected_calibration_error(p, y, bins, n_boot=0).value
    assert got == pytest.approx(_ece_loop(p.numpy(), y.numpy(), bins), abs=1e-12)


def test_ece_stderr_tracks_sampling_spread():
    """Bootstrap stderr of ECE ≈ the sd of ECE across independent samples from one law."""
    rng = np.random.default_rng(0)

    def sample(n):
        conf = rng.uniform(0.5, 1.0, n)
        correct = rng.uniform(size=n) < conf - 0.1  # miscalibrated by 0.1
        p = np.stack([conf, 1 - conf], 1)
        return torch.tensor(p), torch.tensor(np.where(correct, 0, 1))

    eces, ses = [], []
    for r in range(40):
        e = expected_calibration_error(*sample(400), n_boot=100, seed=r)
        eces.append(e.value)
        ses.append(e.stderr)
    assert np.mean(ses) == pytest.approx(np.std(eces, ddof=1), rel=0.35)


def test_report_from_logits():
    g = torch.Generator().manual_seed(5)
    zt = 3 * torch.randn(200, 10, generator=g)
    zs = zt + 2 * torch.randn(200, 10, generator=g)
    y = torch.randint(0, 10, (200,), generator=g)
    y[:120] = zt[:120].argmax(1)  # teacher right on at least 60%
    rep = fidelity_report(zs, zt, y, temperature=2.0)
    ps, pt = softmax_probs(zs, 2.0), softmax_probs(zt, 2.0)
    assert rep.js_divergence.value == pytest.approx(js_divergence(ps, pt).value)
    assert rep.kl_divergence.value == pytest.approx(kl_divergence(ps, pt).value, rel=1e-9)
    assert rep.agreement.value == agreement(zs.softmax(1).double(), zt.softmax(1).double()).value
    assert rep.teacher_accuracy.value == pytest.approx(float((zt.argmax(1) == y).double().mean()))
    right, wrong = agreement_by_teacher_correctness(ps, pt, y)
    assert rep.agreement_teacher_correct == right and rep.agreement_teacher_wrong == wrong
    # ECE is at temperature 1 by default
    assert rep.student_ece.value == pytest.approx(expected_calibration_error(softmax_probs(zs), y, n_boot=0).value)
    # a different temperature changes JS but not the argmax metrics
    rep1 = fidelity_report(zs, zt, y, temperature=1.0)
    assert rep1.agreement == rep.agreement and rep1.js_divergence.value != rep.js_divergence.value
    d = rep.to_dict()
    json.dumps(d, allow_nan=False)
    assert FidelityReport.from_dict(d).to_dict() == d
    assert "agreement" in str(rep)
    # no labels: label metrics are None
    bare = fidelity_report(zs, zt)
    assert bare.agreement_teacher_wrong is None and bare.student_ece is None
    json.dumps(bare.to_dict(), allow_nan=False)
    # probabilities accepted with probs=True
    rp = fidelity_report(softmax_probs(zs), softmax_probs(zt), y, probs=True)
    assert rp.js_divergence.value == pytest.approx(rep1.js_divergence.value)


def test_report_undefined_subset_serialises():
    z = torch.eye(3) * 5
    rep = fidelity_report(z, z, torch.arange(3))
    assert rep.agreement_teacher_wrong.n == 0
    d = rep.to_dict()
    assert d["agreement_teacher_wrong"] == {"value": None, "value_reason": "nan: no samples", "stderr": None,
                                            "stderr_reason": "nan: no samples", "n": 0}
    json.dumps(d, allow_nan=False)
    back = FidelityReport.from_dict(d)
    assert back.agreement_teacher_wrong.n == 0 and math.isnan(back.agreement_teacher_wrong.value)


def test_bad_inputs():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="softmax_probs"):
        agreement(z, z)  # logits where probabilities are expected
    with pytest.raises(ValueError, match="student has 3 classes but the teacher has 4"):
        js_divergence(torch.full((2, 3), 1 / 3), torch.full((2, 4), 0.25))
    with pytest.raises(ValueError, match="student has 3 classes but the teacher has 4"):
        fidelity_report(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="labels must lie in"):
        fidelity_report(z, z, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="vector of 4"):
        fidelity_report(z, z, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="empty"):
        fidelity_report(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="temperature"):
        fidelity_report(z, z, temperature=0.0)
    with pytest.raises(ValueError, match="NaN"):
        fidelity_report(torch.full((2, 3), float("nan")), torch.zeros(2, 3))
    assert MetricEstimate(0.5, math.inf, 1).defined
