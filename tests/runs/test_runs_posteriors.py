"""Certified distillation (methods ``pbb``/``pbkd`` on the project's trainer): the objectives against
CERT-MATH's numpy relaxations and kl⁻¹, the bounded CE against a direct computation, the learnt
posterior starts at the prior and its divergence matches torch.distributions, exact resume, seeds
that matter, and argument guards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch.distributions import Normal, kl_divergence

from kdbounds.certificates import kl_inverse_upper, pac_bayes_complexity, pinsker_bound, quadratic_bound
from kdbounds.pacbayes.kernels import kernel_kl
from kdbounds._torch import bounded_cross_entropy
from kdbounds.distill.pbb import pac_bayes_objective
from kdbounds.runs.posteriors import posterior_from_run, prior_from_run
from kdbounds.distill import TrainConfig, train
from kdbounds.distill.checkpoint import read_checkpoint


@given(emp=st.floats(0.0, 1.0), kl=st.floats(0.0, 1e4), n=st.integers(1, 100000),
       delta=st.floats(1e-4, 0.5))
@settings(max_examples=80)
def test_objectives_match_numpy_relaxations_and_bound_kl_inverse(emp, kl, n, delta):
    c = float(pac_bayes_complexity(kl, n, delta))
    e, k = torch.tensor(emp, dtype=torch.float64), torch.tensor(kl, dtype=torch.float64)
    fq = float(pac_bayes_objective(e, k, n, delta, "fquad"))
    fc = float(pac_bayes_objective(e, k, n, delta, "fclassic"))
    assert fq == pytest.approx(float(quadratic_bound(emp, c)), rel=1e-9, abs=1e-12)
    assert fc == pytest.approx(float(pinsker_bound(emp, c)), rel=1e-9, abs=1e-12)
    kinv = float(kl_inverse_upper(emp, c))
    assert fq >= kinv - 1e-9 and fc >= kinv - 1e-9


def test_bounded_cross_entropy_direct():
    torch.manual_seed(0)
    z = torch.randn(50, 10, dtype=torch.float64) * 6
    y = torch.randint(0, 10, (50,))
    p_min = 1e-3
    p = np.exp(z.numpy()) / np.exp(z.numpy()).sum(1, keepdims=True)
    want = np.minimum(-np.log(p[np.arange(50), y.numpy()]), math.log(1 / p_min)) / math.log(1 / p_min)
    got = bounded_cross_entropy(z, y, p_min).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert got.max() <= 1.0 and (got == 1.0).any()
    with pytest.raises(ValueError, match="p_min"):
        bounded_cross_entropy(z, y, 0.0)
    with pytest.raises(ValueError, match="objective"):
        pac_bayes_objective(torch.tensor(0.1), torch.tensor(1.0), 10, 0.05, "mcallester")


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n) % 10
    return x, y, x[:20], y[:20]


def _cfg(epochs=2, seed=0, **kw):
    mk = {"prior": "random:5", "sigma_prior": 0.02, "n_bound": 30, "delta": 0.05}
    mk.update(kw)
    return TrainConfig(arch="mlp256", epochs=epochs, batch_size=20, lr=0.005, weight_decay=0.0, device="cpu",
                       augment=False, schedule="constant", seed=seed, method="pbb", method_kwargs=mk)


def test_posterior_starts_at_prior_and_divergence_matches_torch_distributions(tmp_path):
    from kdbounds.models import build_model

    res = train(_cfg(), tmp_path / "r", data=_data(), progress=False)
    Q, P = posterior_from_run(res), prior_from_run(res)
    init = build_model("mlp256", seed=5)
    for n, p in init.named_parameters():
        assert torch.equal(P.mean[n], p.detach())          # the prior is the random init (seed 5)
        assert not torch.equal(Q.mean[n], p.detach())      # the posterior moved
    kl = kernel_kl(Q, P)
    ref = sum(float(kl_divergence(Normal(Q.mean[n].double(), Q.std[n].double()),
                                  Normal(P.mean[n].double(), P.std[n].double())).sum()) for n in Q.names)
    assert kl.total == pytest.approx(ref, rel=1e-6)
    assert kl.total > 0


def test_training_kl_equals_the_kernel_kl():
    """The differentiable KL the objective uses equals kernel_kl of the kernels it defines."""
    from kdbounds.pacbayes.kernels import GaussianKernel
    from kdbounds.distill.pbb import PBBMethod
    from kdbounds.distill.pbb import param_key as _key
    from kdbounds.models import build_model

    student = build_model("mlp256", seed=0)
    m = PBBMethod(student, None, 10, prior="random:5", sigma_prior=0.02, n_bound=100)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in student.named_parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=g))
            m.rho[_key(n)].add_(0.3 * torch.randn(p.shape, generator=g))
    Q = GaussianKernel.from_model(student, {n: m.sigma(n).detach() for n in m.names})
    P = GaussianKernel.from_model(build_model("mlp256", seed=5), 0.02)
    assert float(m.kl(student).detach()) == pytest.approx(kernel_kl(Q, P).total, rel=1e-4)


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    full = train(_cfg(epochs=3), tmp_path / "full", data=_data(), progress=False)

    def stop(info):
        if info.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(epochs=3), tmp_path / "cut", data=_data(), callbacks=[stop], progress=False)
    resumed = train(_cfg(epochs=3), tmp_path / "cut", data=_data(), progress=False)
    assert resumed.resumed_from_epoch == 1
    a, b = read_checkpoint(tmp_path / "full" / "checkpoint.pt"), read_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["method"]:
        assert torch.equal(a["method"][k], b["method"][k]), k
    assert full.final["train_loss"] == resumed.final["train_loss"]


def test_seeds_matter(tmp_path):
    a = train(_cfg(epochs=1, seed=0), tmp_path / "a", data=_data(), progress=False)
    b = train(_cfg(epochs=1, seed=1), tmp_path / "b", data=_data(), progress=False)
    ca, cb = read_checkpoint(tmp_path / "a" / "checkpoint.pt"), read_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert int(ca["method"]["noise_seed"]) != int(cb["method"]["noise_seed"])
    assert not torch.equal(ca["model"]["classifier.weight"], cb["model"]["classifier.weight"])
    assert a.final["train_loss"] != b.final["train_loss"]


@pytest.mark.parametrize("kw, msg", [
    ({"n_bound": 0}, "n_bound: expected \\|D_S\\|"),
    ({"delta": 1.0}, "delta: expected a number in \\(0, 1\\)"),
    ({"sigma_prior": 0.0}, "sigma_prior"),
    ({"prior": ""}, "prior: required"),
    ({"prior": "random:x"}, "integer seed"),
    ({"prior": "/nonexistent/model.pt"}, "does not exist"),
])
def test_guards(tmp_path, kw, msg):
    with pytest.raises(ValueError, match=msg):
        train(_cfg(epochs=1, **kw), tmp_path / "g", data=_data(), progress=False)


def test_pbkd_needs_a_teacher_and_uses_it(tmp_path):
    with pytest.raises(ValueError, match="needs a teacher"):
        train(_cfg(epochs=1).replace(method="pbkd"), tmp_path / "k0", data=_data(), progress=False)
    t = train(TrainConfig(arch="mlp256", epochs=1, batch_size=20, lr=0.05, device="cpu", augment=False),
              tmp_path / "t", data=_data(), progress=False)
    res = train(_cfg(epochs=1).replace(method="pbkd", method_kwargs={**_cfg().method_kwargs, "alpha": 1.0},
                                      teacher_ckpt=t.paths["model"]), tmp_path / "k", data=_data(), progress=False)
    assert res.final["train_kd"] > 0
    assert res.final["train_loss"] == pytest.approx(res.final["train_bound"] + res.final["train_kd"], rel=1e-5)
