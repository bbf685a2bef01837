"""Bound checks of teacher–student pairs: losses, curvature against dense Hessians, bound formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from kdbounds import bound_checks as bc


def _mlp(seed: int, d: int = 4, h: int = 5, k: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, k)).double()


def _data(seed: int, n: int, d: int = 4, k: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    return x, y


def test_clipped_cross_entropy_by_hand():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 30.0]], dtype=torch.float64)
    y = torch.tensor([0, 0])
    ce0 = -(2.0 - math.log(math.exp(2.0) + 2.0))
    cap = math.log(1 / 1e-3)
    got = bc.clipped_cross_entropy(logits, y, 1e-3, reduction="none")
    assert got[0].item() == pytest.approx(ce0, rel=1e-12)
    assert got[1].item() == pytest.approx(cap, rel=1e-12)  # CE ≈ 30 is clipped
    assert bc.loss_sigma("clipped_ce", 1e-3) == pytest.approx(cap / 2)
    assert bc.zero_one_loss(logits, y).tolist() == [0.0, 1.0]


def test_bad_inputs():
    with pytest.raises(ValueError, match="p_min"):
        bc.clipped_cross_entropy(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), p_min=0.0)
    with pytest.raises(ValueError, match="loss"):
        bc.per_example_losses(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), loss="hinge")
    with pytest.raises(ValueError, match="divergence"):
        bc.check_bounds(0.1, 0.2, -1.0, 1.0, 10)
    with pytest.raises(ValueError, match="n must"):
        bc.check_bounds(0.1, 0.2, 1.0, 1.0, 0)
    with pytest.raises(ValueError, match="loss_increase"):
        bc.kernel_std_from_loss_increase(1.0, 0.0)
    with pytest.raises(ValueError, match="trace"):
        bc.kernel_std_from_loss_increase(-1.0)


def test_check_bounds_formulas():
    K, sigma, n = 0.3, 2.0, 100
    checks = {c.name: c for c in bc.check_bounds(0.2, 0.5, K, sigma, n)}
    assert checks["thm1_per_sample"].bound == pytest.approx(math.sqrt(2 * sigma**2 * K / n))
    assert checks["thm1_product"].bound == pytest.approx(math.sqrt(2 * sigma**2 * K))
    assert checks["thm1_per_sample"].observed == pytest.approx(0.3)
    assert checks["thm1_per_sample"].holds is False  # 0.3 > 0.1549...
    assert checks["thm1_product"].holds is True
    # Theorem 2 with η = 2(1−c)gen(T)/σ_n²: c·gen_T − K/η
    sig_n2 = sigma**2 / n
    eta = 2 * 0.5 * 0.2 / sig_n2
    assert checks["thm2_central"].bound == pytest.approx(0.5 * 0.2 - K / eta)
    # K = 0 forces a zero Theorem 1 bound
    zero = {c.name: c for c in bc.check_bounds(0.2, 0.2, 0.0, sigma, n)}
    assert zero["thm1_per_sample"].bound == 0.0 and zero["thm1_per_sample"].holds
    # Theorem 2 with a non-positive teacher gap: reported as not evaluated, never silently dropped
    neg = {c.name: c for c in bc.check_bounds(-0.1, 0.2, K, sigma, n)}
    assert math.isnan(neg["thm2_central"].bound) and not neg["thm2_central"].holds
    assert "not evaluated" in neg["thm2_central"].assumptions


def test_measure_curvature_against_dense_hessian():
    torch.manual_seed(0)
    model = _mlp(1)
    train, test = _data(2, 40), _data(3, 30)
    p_min = 1e-3
    curv = bc.measure_curvature(model, train, test, p_min=p_min, batch_size=64, trace_matvecs=64,
                                lanczos_matvecs=50, seed=0)
    params = {k: v.detach() for k, v in model.named_parameters()}
    names = list(params)

    def flat_loss(flat, data):
        shapes = [params[k].shape for k in names]
        sizes = [params[k].numel() for k in names]
        chunks = torch.split(flat, sizes)
        p = {k: c.reshape(s) for k, c, s in zip(names, chunks, shapes)}
        out = torch.func.functional_call(model, p, (data[0],))
        return bc.clipped_cross_entropy(out, data[1], p_min)

    w = torch.cat([params[k].reshape(-1) for k in names])
    h_tr = torch.autograd.functional.hessian(lambda f: flat_loss(f, train), w)
    h_te = torch.autograd.functional.hessian(lambda f: flat_loss(f, test), w)
    g_tr = torch.autograd.functional.jacobian(lambda f: flat_loss(f, train), w)
    g_te = torch.autograd.functional.jacobian(lambda f: flat_loss(f, test), w)
    h_gap = h_te - h_tr
    eig_tr = np.linalg.eigvalsh(h_tr.numpy())
    eig_gap = np.linalg.eigvalsh(h_gap.numpy())
    assert curv.n_params == w.numel()
    assert curv.gap_grad_norm == pytest.approx(float(torch.linalg.vector_norm(g_te - g_tr)), rel=1e-8)
    assert curv.train_top_eig == pytest.approx(eig_tr[-1], rel=1e-6)
    assert curv.gap_eig_max == pytest.approx(eig_gap[-1], rel=1e-6)
    assert curv.gap_eig_min == pytest.approx(eig_gap[0], rel=1e-6)
    assert abs(curv.train_trace - float(torch.trace(h_tr))) <= 4 * curv.train_trace_se + 1e-12
    assert abs(curv.gap_trace - float(torch.trace(h_gap))) <= 4 * curv.gap_trace_se + 1e-12
    fro = float((h_gap**2).sum())
    assert abs(curv.gap_frob_sq - fro) <= 4 * curv.gap_frob_sq_se + 1e-12


def test_evaluate_pair_end_to_end():
    teacher, student = _mlp(1), _mlp(2)
    train, test = _data(4, 50), _data(5, 40)
    curv = bc.measure_curvature(teacher, train, test, trace_matvecs=8, lanczos_matvecs=10)
    rep = bc.evaluate_pair(teacher, student, train, test, curvature=curv, n_boot=100)
    names = {(c.name, c.loss) for c in rep.checks}
    assert ("thm3b_subgamma_upper", "clipped_ce") in names and ("thm1_per_sample", "zero_one") in names
    assert ("thm3a_radius", "zero_one") not in names  # curvature only for the differentiable loss
    for loss in bc.LOSSES:
        d = rep.student_losses[loss].gap - rep.teacher_losses[loss].gap
        assert rep.gap_difference[loss] == pytest.approx(d, abs=1e-12)
    for c in rep.checks:
        if c.side == "abs":
            assert c.holds == (c.observed <= c.bound)
        if c.side == "upper":
            assert c.holds == (c.observed <= c.bound)
    assert rep.divergence_train.value > 0
    d = rep.to_dict()
    assert d["curvature"]["n_params"] == curv.n_params


def test_evaluate_pair_class_mismatch_and_empty():
    teacher, student = _mlp(1, k=3), _mlp(2, k=4)
    train, test = _data(4, 10), _data(5, 10)
    with pytest.raises(ValueError, match="class counts differ"):
        bc.evaluate_pair(teacher, student, train, test)
    empty = (torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty"):
        bc.evaluate_pair(teacher, _mlp(3), empty, test)


def test_measure_curvature_parameter_subset_and_budget_errors():
    model = _mlp(1)
    train, test = _data(2, 20), _data(3, 20)
    curv = bc.measure_curvature(model, train, test, params="2.*", trace_matvecs=2, lanczos_matvecs=3)
    assert curv.n_params == 5 * 3 + 3  # the last Linear only
    with pytest.raises(ValueError, match="trace_matvecs"):
        bc.measure_curvature(model, train, test, trace_matvecs=1)
    with pytest.raises(ValueError):
        bc.measure_curvature(model, train, test, params="nothing*")
