"""Golden-value tests of the VID, ITRD, RID and RCD losses on fixed small tensors.

Every expected value is computed here with numpy from the formulas in methods.md (or by hand),
independently of the torch code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdbounds.distill import get_method
from kdbounds.distill.controls import kd_kl_term, rcd_noise
from kdbounds.distill.itrd import itrd_correlation_loss, itrd_mi_loss
from kdbounds.distill.rid import rid_phase1_loss, rid_phase2_loss, rid_sigma
from kdbounds.distill.features import match_spatial
from kdbounds.distill.vid import vid_layer_loss
from kdbounds.models import FeatureOutput


def _t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=torch.float64)


# ------------------------------------------------------------------------------------- VID
def test_vid_layer_loss_hand_value():
    # one element: t=3, mu=1, sigma^2=2 -> 1/2 (4/2 + log 2)
    got = vid_layer_loss(_t([[3.0]]), _t([[1.0]]), _t([2.0]))
    assert float(got) == pytest.approx(0.5 * (2.0 + math.log(2.0)), abs=1e-12)


def test_vid_layer_loss_numpy():
    rng = np.random.default_rng(0)
    t, mu = rng.normal(size=(3, 4, 2, 5)), rng.normal(size=(3, 4, 2, 5))
    var = rng.uniform(0.5, 3.0, size=4)
    expected = np.mean(0.5 * ((t - mu) ** 2 / var[None, :, None, None]
                              + np.log(var)[None, :, None, None]))
    assert float(vid_layer_loss(_t(t), _t(mu), _t(var))) == pytest.approx(expected, rel=1e-12)


def test_match_spatial_pools_the_larger_map():
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=(2, 5, 2, 2))
    s2, t2 = match_spatial(_t(s), _t(t))
    expected = s.reshape(2, 3, 2, 2, 2, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(s2.numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(t2.numpy(), t)
    t3, s3 = match_spatial(_t(t), _t(s))  # order does not matter
    np.testing.assert_allclose(s3.numpy(), expected, rtol=1e-12)


def test_vid_method_loss_against_numpy(np_ref, tiny_net):
    torch.manual_seed(0)
    student, teacher = tiny_net((2, 3)), tiny_net((4, 5))
    m = get_method("vid")(student, teacher, 4, lam="0.7", ce_weight=1.3).double()
    assert [len(r.alpha) for r in m.regressors] == [4, 5]
    np.testing.assert_allclose(m.regressors[0].variance().detach().numpy(), 5.0, rtol=1e-6)
    rng = np.random.default_rng(2)
    ws = []
    for reg in m.regressors:
        wl = []
        for conv in (reg.mu[0], reg.mu[2], reg.mu[4]):
            w = rng.normal(size=tuple(conv.weight.shape))
            conv.weight.data = _t(w)
            wl.append(w)
        a = rng.normal(size=reg.alpha.shape)
        reg.alpha.data = _t(a)
        ws.append((wl, a))
    s_st = [rng.normal(size=(3, 2, 4, 4)), rng.normal(size=(3, 3, 2, 2))]
    t_st = [rng.normal(size=(3, 4, 2, 2)), rng.normal(size=(3, 5, 2, 2))]  # stage 0: t smaller
    z = rng.normal(size=(3, 4))
    y = np.array([0, 3, 1])
    s_out = FeatureOutput(_t(z), [_t(a) for a in s_st], _t(np.zeros((3, 3))))
    t_out = FeatureOutput(_t(np.zeros((3, 4))), [_t(a) for a in t_st], _t(np.zeros((3, 5))))
    loss, parts = m.loss(None, torch.tensor(y), s_out, t_out, 0)

    relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
    total = 0.0
    for (wl, a), s, t in zip(ws, s_st, t_st):
        if s.shape[-1] == 4:
            s = s.reshape(3, 2, 2, 2, 2, 2).mean(axis=(3, 5))
        mu = np_ref.conv1x1(wl[2], relu(np_ref.conv1x1(wl[1], relu(np_ref.conv1x1(wl[0], s)))))
        var = np.log1p(np.exp(a)) + 1e-5
        total += np.mean(0.5 * ((t - mu) ** 2 / var[None, :, None, None]
                                + np.log(var)[None, :, None, None]))
    expected = 1.3 * np_ref.ce(z, y) + 0.7 * total
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-10)
    assert float(parts["vid"]) == pytest.approx(total, rel=1e-10)


# ------------------------------------------------------------------------------------- ITRD
def test_itrd_correlation_hand_value():
    # e = [0, 1], t = [0, 2]: both standardise to [-1/sqrt2, 1/sqrt2] (N-1 std), c = 1/2,
    # L = log2 |1 - 1/2|^(2*1) = log2(1/4) = -2
    got = itrd_correlation_loss(_t([[0.0], [1.0]]), _t([[0.0], [2.0]]), alpha=1.0)
    assert float(got) == pytest.approx(-2.0, abs=1e-7)


def test_itrd_mi_hand_values():
    eye = _t([[1.0, 0.0], [0.0, 1.0]])
    same = _t([[1.0, 0.0], [1.0, 0.0]])
    # K_s = I, K_t = 11^T -> A_s = A_st = I/2 -> 0
    assert float(itrd_mi_loss(eye, same)) == pytest.approx(0.0, abs=1e-12)
    # K_s = 11^T -> ||A_s||^2 = 1; K_st = I -> ||A_st||^2 = 1/2
    assert float(itrd_mi_loss(same, eye)) == pytest.approx(0.5, abs=1e-12)


def _np_itrd(e, zt, alpha):
    n = e.shape[0]
    eh = (e - e.mean(0)) / (e.std(0, ddof=1) + 1e-8)
    th = (zt - zt.mean(0)) / (zt.std(0, ddof=1) + 1e-8)
    c = (eh * th).sum(0) / n
    corr = np.log2(np.sum(np.abs(1 - c) ** (2 * alpha)))
    en = e / np.linalg.norm(e, axis=1, keepdims=True)
    tn = zt / np.linalg.norm(zt, axis=1, keepdims=True)
    ks, kt = en @ en.T, tn @ tn.T
    kst = ks * kt
    a_s, a_st = ks / np.trace(ks), kst / np.trace(kst)
    return corr, np.sum(a_s ** 2) - np.sum(a_st ** 2)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 9), d=st.integers(1, 6),
       alpha=st.floats(1.0, 1.5))
def test_itrd_losses_match_numpy(seed, n, d, alpha):
    rng = np.random.default_rng(seed)
    e, zt = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    corr, mi = _np_itrd(e, zt, alpha)
    assert float(itrd_correlation_loss(_t(e), _t(zt), alpha)) == pytest.approx(corr, rel=1e-9,
                                                                               abs=1e-9)
    assert float(itrd_mi_loss(_t(e), _t(zt))) == pytest.approx(mi, rel=1e-9, abs=1e-12)


def test_itrd_method_total(np_ref, tiny_net):
    torch.manual_seed(0)
    student, teacher = tiny_net((2, 3)), tiny_net((4, 5))
    m = get_method("itrd")(student, teacher, 4, gamma=0.5, beta=2.0, lam_corr=2.0, lam_mi=1.0,
                           alpha=1.01).double()
    rng = np.random.default_rng(3)
    w = rng.normal(size=(5, 3))
    m.embed.weight.data = _t(w)
    zs, zt, z = rng.normal(size=(6, 3)), rng.normal(size=(6, 5)), rng.normal(size=(6, 4))
    y = np.array([0, 1, 2, 3, 0, 1])
    s_out = FeatureOutput(_t(z), [], _t(zs))
    t_out = FeatureOutput(_t(np.zeros((6, 4))), [], _t(zt))
    loss, _ = m.loss(None, torch.tensor(y), s_out, t_out, 0)
    corr, mi = _np_itrd(zs @ w.T, zt, 1.01)
    assert float(loss.detach()) == pytest.approx(0.5 * np_ref.ce(z, y) + 2.0 * (2.0 * corr + mi), rel=1e-6)


# ------------------------------------------------------------------------------------- RID
def test_rid_sigma_and_phase_losses_against_numpy(np_ref):
    rng = np.random.default_rng(4)
    a = [rng.normal(size=2), rng.normal(size=3)]
    d = [rng.normal(size=(2, 2, 3, 3)), rng.normal(size=(2, 3, 1, 1))]
    heads = [rng.normal(size=(2, 4)), rng.normal(size=(2, 4))]
    z = rng.normal(size=(2, 4))
    y = np.array([1, 2])
    sig = [np.log1p(np.exp(ai)) + 1e-3 for ai in a]
    np.testing.assert_allclose(rid_sigma(_t(a[0])).numpy(), sig[0], rtol=1e-12)
    sig_t = [rid_sigma(_t(ai)) for ai in a]
    b = lambda s: s[None, :, None, None]  # noqa: E731
    v1 = sum(np.mean(di ** 2 / b(si)) for di, si in zip(d, sig))
    ce_h = sum(np_ref.ce(h, y) for h in heads)
    l1, p1 = rid_phase1_loss([_t(h) for h in heads], torch.tensor(y), [_t(x) for x in d], sig_t,
                             warmup=False)
    assert float(l1) == pytest.approx(ce_h + v1, rel=1e-10)
    l1w, p1w = rid_phase1_loss([_t(h) for h in heads], torch.tensor(y), [_t(x) for x in d],
                               sig_t, warmup=True)
    assert float(l1w) == pytest.approx(ce_h, rel=1e-10) and float(p1w["v_term"]) == 0.0
    l2, _ = rid_phase2_loss(_t(z), torch.tensor(y), [_t(x) for x in d], sig_t, 1.5, 10.0)
    reg = sum(np.mean(b(si) ** 2 + di ** 2 / b(si)) for di, si in zip(d, sig))
    assert float(l2) == pytest.approx(1.5 * np_ref.ce(z, y) + 10.0 * reg, rel=1e-10)
    l2l, _ = rid_phase2_loss(_t(z), torch.tensor(y), [_t(x) for x in d], sig_t, 1.0, 2.0, "log")
    reg_l = sum(np.mean(np.log(b(si)) + di ** 2 / b(si)) for di, si in zip(d, sig))
    assert float(l2l) == pytest.approx(np_ref.ce(z, y) + 2.0 * reg_l, rel=1e-10)


def test_rid_phase2_hand_value():
    # a = 0 -> sigma = ln 2 + 1e-3; one element V = 2; logits equal -> CE = log 2
    s = math.log(2.0) + 1e-3
    l2, _ = rid_phase2_loss(_t([[0.0, 0.0]]), torch.tensor([1]), [_t([[[[2.0]]]])],
                            [rid_sigma(_t([0.0]))], lam1=1.0, lam2=10.0)
    assert float(l2) == pytest.approx(math.log(2.0) + 10.0 * (s * s + 4.0 / s), rel=1e-12)


# ------------------------------------------------------------------------------------- RCD
def test_kd_kl_term_numpy():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(4, 6))
    p = rng.dirichlet(np.ones(6), size=4)
    T = 3.0
    q = np.exp(z / T) / np.exp(z / T).sum(1, keepdims=True)
    expected = T * T * np.mean(np.sum(p * (np.log(p) - np.log(q)), 1))
    assert float(kd_kl_term(_t(z), _t(p), T)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("noise", ["gaussian", "dirichlet"])
def test_rcd_noise_rows_are_distributions_and_reproducible(noise):
    a = rcd_noise(64, 10, noise=noise, rng=np.random.default_rng([3, 7]), dtype=torch.float64)
    b = rcd_noise(64, 10, noise=noise, rng=np.random.default_rng([3, 7]), dtype=torch.float64)
    c = rcd_noise(64, 10, noise=noise, rng=np.random.default_rng([3, 8]), dtype=torch.float64)
    assert a.shape == (64, 10) and bool((a > 0).all())
    np.testing.assert_allclose(a.sum(1).numpy(), 1.0, rtol=1e-12)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rcd_noise_moments():
    # Dirichlet(1): E p_k = 1/K, Var p_k = (K-1)/(K^2 (K+1)); softmax of N(0,1): mean 1/K
    k = 5
    d = rcd_noise(20_000, k, noise="dirichlet", rng=np.random.default_rng(0),
                  dtype=torch.float64).numpy()
    np.testing.assert_allclose(d.mean(0), 1 / k, atol=0.005)
    np.testing.assert_allclose(d.var(0), (k - 1) / (k * k * (k + 1)), rtol=0.05)
    g = rcd_noise(20_000, k, noise="gaussian", rng=np.random.default_rng(0),
                  dtype=torch.float64).numpy()
    np.testing.assert_allclose(g.mean(0), 1 / k, atol=0.005)


def test_rcd_method_loss_uses_the_step_noise_and_advances(np_ref, tiny_net):
    student = tiny_net((2, 3))
    m = get_method("rcd")(student, None, 4, gamma="0.2", alpha=0.8, T=2.0, seed=11)
    assert m.requires_teacher is False
    rng = np.random.default_rng(6)
    z = rng.normal(size=(5, 4))
    y = np.array([0, 1, 2, 3, 0])
    m.train()
    loss, _ = m.loss(None, torch.tensor(y), torch.tensor(z, dtype=torch.float32), None, 0)
    p = np.random.default_rng([11, 0]).standard_normal((5, 4))
    p = np.exp(p - p.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = np.exp(z / 2) / np.exp(z / 2).sum(1, keepdims=True)
    expected = 0.2 * np_ref.ce(z, y) + 0.8 * 4.0 * np.mean(np.sum(p * (np.log(p) - np.log(q)), 1))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert int(m.step) == 1
    loss2, _ = m.loss(None, torch.tensor(y), torch.tensor(z, dtype=torch.float32), None, 0)
    assert float(loss2) != pytest.approx(float(loss), rel=1e-6)  # fresh noise at step 1
    # resume: a new method loaded from the state_dict draws the same noise as the original
    m2 = get_method("rcd")(student, None, 4, gamma="0.2", alpha=0.8, T=2.0, seed=11)
    m2.load_state_dict(m.state_dict())
    m2.train()
    a, _ = m.loss(None, torch.tensor(y), torch.tensor(z, dtype=torch.float32), None, 0)
    b, _ = m2.loss(None, torch.tensor(y), torch.tensor(z, dtype=torch.float32), None, 0)
    assert float(a) == float(b)
