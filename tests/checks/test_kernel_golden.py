"""Golden values for Theorems 3A/3B on a tiny float64 MLP: every term recomputed independently.

Oracles: the gap function written here with ``torch.func.functional_call``; its gradient and dense
Hessian by ``torch.func.grad`` / ``torch.func.hessian``; eigenvalues by ``torch.linalg.eigvalsh``; the
kernel KL by ``torch.distributions.kl_divergence``; the variance proxy ``v`` and the kernel's loss
increase by large Monte Carlo over Gaussian draws of the quadratic model; the gaps under the kernels
by an independent Monte Carlo over weight draws.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal, kl_divergence

from kdbounds.checks import kernel_checks, measure_teacher_curvature
from kdbounds.checks.kernel_checks import kernel_gaps, student_in_teacher_space

P_MIN = 1e-3
S = 0.3  # kernel scale for the 3B checks: large enough that ½ s⁴‖H‖²_F is a large part of v


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def gap_fn(model: nn.Module, train, test):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]

    def mean_loss(theta, x, y):
        params = {n: t.view(s) for n, t, s in zip(names, torch.split(theta, sizes), shapes)}
        z = torch.func.functional_call(model, params, (x,))
        ce = nn.functional.cross_entropy(z, y, reduction="none")
        return torch.minimum(ce, torch.full_like(ce, math.log(1 / P_MIN))).mean()

    def f(theta):
        return mean_loss(theta, *test) - mean_loss(theta, *train)

    def l_train(theta):
        return mean_loss(theta, *train)

    return f, l_train


@pytest.fixture(scope="module")
def oracle(tiny_pair):
    teacher, student, train, test = tiny_pair
    f, l_train = gap_fn(teacher, train, test)
    w_t, w_s = flat(teacher), flat(student)
    b = torch.func.grad(f)(w_t)
    H = torch.func.hessian(f)(w_t)
    H_tr = torch.func.hessian(l_train)(w_t)
    return dict(f=f, w_t=w_t, w_s=w_s, b=b, H=0.5 * (H + H.T), H_tr=H_tr, p=w_t.numel())


@pytest.fixture(scope="module")
def curv(tiny_pair):
    teacher, _, train, test = tiny_pair
    # 31 parameters: Lanczos with 31 steps is exact; 800 probes make the Hutchinson terms tight
    return measure_teacher_curvature(teacher, train, test, p_min=P_MIN, trace_matvecs=800, lanczos_matvecs=31,
                                     batch_size=64, ucl_level=0.99, seed=0)


@pytest.fixture(scope="module")
def records(tiny_pair, curv):
    teacher, student, _, _ = tiny_pair
    recs = kernel_checks(curv, teacher, student, kernel_std=S, c_mode="ritz", mc_draws=400, seed=1)
    return {r.name: r for r in recs}


def mc_quadratic_variance(b, H, s, draws=400_000, seed=0):
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(draws, b.numel(), generator=g, dtype=torch.float64)
    q = s * eps @ b + 0.5 * s * s * torch.einsum("ij,jk,ik->i", eps, H, eps)
    return float(q.var()), float(q.var()) * math.sqrt(2.0 / draws) * 2  # generous SE (kurtosis)


def test_curvature_terms_match_dense(curv, oracle):
    assert curv.n_params == oracle["p"] == 31
    assert curv.grad_norm == pytest.approx(float(oracle["b"].norm()), rel=1e-9)
    ev = torch.linalg.eigvalsh(oracle["H"])
    assert curv.gap_eig_max == pytest.approx(float(ev[-1]), rel=1e-6, abs=1e-9)
    assert curv.gap_eig_min == pytest.approx(float(ev[0]), rel=1e-6, abs=1e-9)
    fro = float((oracle["H"] ** 2).sum())
    assert abs(curv.gap_frob_sq.value - fro) < 4 * curv.gap_frob_sq.stderr
    assert curv.gap_frob_sq.ci_high >= fro  # the upper limit covers the truth here
    assert abs(curv.gap_trace.value - float(torch.trace(oracle["H"]))) < 4 * curv.gap_trace.stderr


def test_training_trace_shares_the_gap_probes_exactly(tiny_pair, oracle):
    """``tr ∇²L_train`` is Hutchinson's mean over the gap's own probes (seed + 1), exact against the dense float64
    Hessian on those probes, and costs no product of its own: 2 (probes + Lanczos steps) products at most."""
    from kdbounds.curvature import make_generator, probe_vectors

    teacher, _, train, test = tiny_pair
    m, steps = 12, 6
    c = measure_teacher_curvature(teacher, train, test, p_min=P_MIN, trace_matvecs=m, lanczos_matvecs=steps,
                                  batch_size=64, ucl_level=0.9, frob_ucl="t", seed=5)
    Z = probe_vectors(oracle["p"], m, "rademacher", make_generator(6), torch.float64, "cpu")
    samples = torch.einsum("im,ij,jm->m", Z, oracle["H_tr"], Z)
    assert c.train_trace.value == pytest.approx(float(samples.mean()), rel=1e-9)
    assert c.train_trace.stderr == pytest.approx(float(samples.std() / math.sqrt(m)), rel=1e-9)
    gap_samples = torch.einsum("im,ij,jm->m", Z, oracle["H"], Z)
    assert c.gap_trace.value == pytest.approx(float(gap_samples.mean()), rel=1e-9)
    assert c.n_matvecs <= 2 * (m + steps)


def test_kernel_divergence_is_the_gaussian_kl(records, oracle):
    p = oracle["p"]
    kl = kl_divergence(MultivariateNormal(oracle["w_s"], S * S * torch.eye(p, dtype=torch.float64)),
                       MultivariateNormal(oracle["w_t"], S * S * torch.eye(p, dtype=torch.float64)))
    assert records["thm3b_subgamma_mc"].inputs["K"] == pytest.approx(float(kl), rel=1e-9)


def test_variance_proxy_against_monte_carlo(records, oracle):
    """v = Var of the quadratic model under N(w_T, s²I); the H part is a large share here, so a wrong ½ fails."""
    v_mc, se = mc_quadratic_variance(oracle["b"], oracle["H"], S)
    h_part = 0.5 * S ** 4 * float((oracle["H"] ** 2).sum())
    assert h_part > 0.3 * v_mc, "test set-up: the Hessian part must matter"
    v = records["thm3b_subgamma_mc"].inputs["v"]
    # v uses the upper confidence limit of ‖H‖²_F (worst-case variance, 800 probes, level 0.99): a little
    # above the MC variance (here +4 %), never far
    assert v_mc - 4 * se <= v <= v_mc * 1.05 + 4 * se


def test_subgamma_bound_golden(records, oracle):
    ev = torch.linalg.eigvalsh(oracle["H"])
    c_plus, c_minus = S * S * max(float(ev[-1]), 0.0), S * S * max(-float(ev[0]), 0.0)
    # Ritz value + residual: never below the true extreme eigenvalue, and close to it (Lanczos tol 1e-3)
    for key, true in (("c_plus", c_plus), ("c_minus", c_minus)):
        got = records["thm3b_subgamma_mc"].inputs[key]
        assert true * (1 - 1e-9) <= got <= true * (1 + 3e-3) + 1e-12
    v_mc, _ = mc_quadratic_variance(oracle["b"], oracle["H"], S)
    p = oracle["p"]
    K = float(kl_divergence(MultivariateNormal(oracle["w_s"], S * S * torch.eye(p, dtype=torch.float64)),
                            MultivariateNormal(oracle["w_t"], S * S * torch.eye(p, dtype=torch.float64))))
    expected = max(math.sqrt(2 * v_mc * K) + c_plus * K, math.sqrt(2 * v_mc * K) + c_minus * K)
    # v carries the (worst-case) upper limit of ‖H‖²_F: a few % above the Monte Carlo variance here
    assert records["thm3b_subgamma_mc"].bound == pytest.approx(expected, rel=0.04)
    assert records["thm3b_subgamma_quadratic"].bound == records["thm3b_subgamma_mc"].bound


def test_quadratic_model_gap_difference(records, oracle):
    """E_{N(w_S,s²I)} q − E_{N(w_T,s²I)} q of the quadratic model q, by paired Monte Carlo."""
    g = torch.Generator().manual_seed(3)
    eps = S * torch.randn(200_000, oracle["p"], generator=g, dtype=torch.float64)
    b, H, d = oracle["b"], oracle["H"], oracle["w_s"] - oracle["w_t"]

    def q(u):  # quadratic model of f around w_T, as a function of u = w − w_T (rows)
        return u @ b + 0.5 * torch.einsum("ij,jk,ik->i", u, H, u)

    diff = q(d + eps) - q(eps)
    mean, se = float(diff.mean()), float(diff.std() / math.sqrt(diff.numel()))
    assert abs(records["thm3b_subgamma_quadratic"].observed - mean) < 4 * se + 1e-12
    assert records["thm3b_subgamma_quadratic"].observed_se == 0.0


def test_monte_carlo_gap_difference(records, oracle):
    """The record's Monte Carlo gap difference against an independent Monte Carlo of f itself."""
    g = torch.Generator().manual_seed(11)
    f, w_t, w_s = oracle["f"], oracle["w_t"], oracle["w_s"]
    vals = []
    for _ in range(1500):
        e = S * torch.randn(oracle["p"], generator=g, dtype=torch.float64)
        vals.append(float(f(w_s + e) - f(w_t + e)))
    x = torch.tensor(vals)
    mean, se = float(x.mean()), float(x.std() / math.sqrt(x.numel()))
    r = records["thm3b_subgamma_mc"]
    assert abs(r.observed - mean) < 4 * math.hypot(se, r.observed_se)
    assert r.observed_se == pytest.approx(se * math.sqrt(1500 / 400), rel=0.25)


def test_theorem_3a_golden(records, oracle):
    """ρ = s√p with p counted here; β = largest |eigenvalue| of the dense gap Hessian."""
    p = sum(t.numel() for t in oracle["w_t"].split(1))
    ev = torch.linalg.eigvalsh(oracle["H"])
    beta = float(ev.abs().max())
    g0 = float(oracle["b"].norm())
    rho = S * math.sqrt(p)
    K = float(((oracle["w_s"] - oracle["w_t"]) ** 2).sum()) / (2 * S * S)
    # K by the distribution library (independent of the line above)
    K2 = float(kl_divergence(MultivariateNormal(oracle["w_s"], S * S * torch.eye(p, dtype=torch.float64)),
                             MultivariateNormal(oracle["w_t"], S * S * torch.eye(p, dtype=torch.float64))))
    assert K == pytest.approx(K2, rel=1e-9)
    expected = (g0 * rho + 0.5 * beta * rho * rho) * math.sqrt(2 * K2)
    assert records["thm3a_radius"].bound == pytest.approx(expected, rel=1e-5)
    assert records["thm3a_radius"].inputs["rho"] == pytest.approx(rho, rel=1e-12)


def test_kernel_scale_from_loss_increase(tiny_pair, curv, oracle):
    """s from δ: under N(w_T, s²I) the quadratic model of L_train rises by δ (Monte Carlo)."""
    teacher, student, _, _ = tiny_pair
    delta = 0.02
    recs = {r.name: r for r in kernel_checks(curv, teacher, student, loss_increase=delta, mc_draws=4, seed=0)}
    s = recs["thm3b_subgamma_mc"].inputs["s"]
    g = torch.Generator().manual_seed(5)
    eps = s * torch.randn(200_000, oracle["p"], generator=g, dtype=torch.float64)
    rise = 0.5 * torch.einsum("ij,jk,ik->i", eps, oracle["H_tr"], eps)
    assert float(rise.mean()) == pytest.approx(delta, rel=0.06)


def test_frobenius_mode_is_conservative(tiny_pair, curv, oracle):
    teacher, student, _, _ = tiny_pair
    recs = {r.name: r for r in kernel_checks(curv, teacher, student, kernel_std=S, mc_draws=4, seed=0)}
    ev = torch.linalg.eigvalsh(oracle["H"])
    r = recs["thm3b_subgamma_quadratic"]
    assert r.kind == "demonstration" and r.assumptions_met
    assert r.inputs["c_plus"] >= S * S * float(ev.abs().max())
    assert r.inputs["c_plus"] == pytest.approx(S * S * float(oracle["H"].norm()), rel=0.05)
    assert recs["thm3b_subgamma_mc"].kind == "conditional" and not recs["thm3b_subgamma_mc"].assumptions_met
    assert recs["thm3a_radius"].kind == "proxy"


def test_batchnorm_student_moved_to_teacher_coordinates():
    """A BN student re-expressed with the teacher's running statistics computes the same function."""
    torch.manual_seed(0)

    def net():
        return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2)).double()

    t, s = net(), net()
    for m, shift in ((t, 0.0), (s, 1.0)):
        m.train()
        for _ in range(5):
            m(torch.randn(64, 3, dtype=torch.float64) * (1 + shift) + shift)
    t.eval(), s.eval()
    params, reason = student_in_teacher_space(s, t)
    assert reason is None
    x = torch.randn(20, 3, dtype=torch.float64)
    buffers = dict(t.named_buffers())
    out = torch.func.functional_call(s, {**params, **buffers}, (x,))
    assert torch.allclose(out, s(x), atol=1e-10)
    assert not torch.allclose(s(x), torch.func.functional_call(s, {**dict(s.named_parameters()), **buffers}, (x,)))


def test_cross_architecture_not_defined(tiny_pair, curv):
    teacher, _, _, _ = tiny_pair
    other = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    recs = kernel_checks(curv, teacher, other)
    assert [r.verdict for r in recs] == ["not_defined"] * 3
    assert all(r.bound is None and "architecture" in r.reason for r in recs)


@pytest.mark.parametrize("scale", [0.02, 0.1, 0.4])
def test_quadratic_instance_obeys_exact_dv_and_subgamma(tiny_pair, curv, oracle, scale):
    """For the quadratic model Theorem 3B is exact: true difference ≤ exact DV bound (dense spectrum,
    kdbounds.bounds.gaussian_quadratic_bound) ≤ the record's sub-gamma bound, for students at several distances."""
    import copy

    from kdbounds.bounds import gaussian_quadratic_bound

    teacher, _, _, _ = tiny_pair
    g = torch.Generator().manual_seed(int(scale * 100))
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64))
    recs = {r.name: r for r in kernel_checks(curv, teacher, student, kernel_std=S, mc_draws=2, seed=0)}
    r = recs["thm3b_subgamma_quadratic"]
    d = flat(student) - oracle["w_t"]
    true = float(oracle["b"] @ d + 0.5 * d @ oracle["H"] @ d)
    p = oracle["p"]
    dv = gaussian_quadratic_bound(r.inputs["K"], grad=oracle["b"].numpy(), hessian=oracle["H"].numpy(),
                                  cov=(S * S * torch.eye(p, dtype=torch.float64)).numpy())
    assert r.observed == pytest.approx(true, rel=1e-8, abs=1e-12)
    assert dv.lower - 1e-12 <= true <= dv.upper + 1e-12
    assert max(dv.upper, -dv.lower) <= r.bound * (1 + 1e-9)
    assert r.verdict == "holds"
