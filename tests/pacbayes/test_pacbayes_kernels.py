"""Gaussian kernels over network parameters: KL against torch.distributions and the numpy
``diag_gaussian_kl``, sampling statistics, frozen/shared buffers, parameter-space guards, and the
exactness of the local reparameterisation against explicit per-example weight draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from kdbounds.certificates import diag_gaussian_kl
from kdbounds.pacbayes.kernels import (
    GaussianKernel,
    check_compatible,
    draw_logits,
    kernel_kl,
    per_example_logits,
    supports_local_reparam,
)


class Tiny(nn.Module):
    def __init__(self, d: int = 6, h: int = 5, c: int = 3, bn: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, h)
        self.bn = nn.BatchNorm1d(h) if bn else nn.Identity()
        self.fc2 = nn.Linear(h, c)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def _model(seed: int, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return Tiny(**kw).double()


def _random_std(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: 0.05 + torch.rand(p.shape, generator=g, dtype=p.dtype) for n, p in model.named_parameters()}


def test_kl_matches_torch_distributions_and_numpy_split():
    q_model, p_model = _model(0), _model(1)
    Q = GaussianKernel.from_model(q_model, _random_std(q_model, 2))
    P = GaussianKernel.from_model(p_model, _random_std(p_model, 3))
    kl = kernel_kl(Q, P)
    ref = sum(float(kl_divergence(Normal(Q.mean[n], Q.std[n]), Normal(P.mean[n], P.std[n])).sum()) for n in Q.names)
    assert kl.total == pytest.approx(ref, rel=1e-10)
    flat = lambda d: np.concatenate([d[n].detach().numpy().ravel() for n in Q.names])  # noqa: E731
    g = diag_gaussian_kl(flat(Q.mean), flat(Q.std) ** 2, flat(P.mean), flat(P.std) ** 2)
    assert kl.mean_term == pytest.approx(g.mean_term, rel=1e-10)
    assert kl.variance_term == pytest.approx(g.variance_term, rel=1e-8, abs=1e-12)
    assert kl.dim == sum(p.numel() for p in q_model.parameters())


def test_kl_mean_term_alone_when_scales_equal():
    q_model, p_model = _model(0), _model(1)
    Q = GaussianKernel.from_model(q_model, 0.3)
    P = GaussianKernel.from_model(p_model, 0.3)
    kl = kernel_kl(Q, P)
    ref = sum(float(kl_divergence(Normal(Q.mean[n], Q.std[n]), Normal(P.mean[n], P.std[n])).sum()) for n in Q.names)
    assert kl.variance_term == pytest.approx(0.0, abs=1e-12)
    assert kl.mean_term == pytest.approx(ref, rel=1e-10)
    assert kernel_kl(Q, Q).total == pytest.approx(0.0, abs=1e-12)


def test_sampling_mean_and_variance_within_standard_errors():
    m = _model(0)
    std = _random_std(m, 5)
    K = GaussianKernel.from_model(m, std)
    M = 4000
    w = K.sample(M, torch.Generator().manual_seed(0))
    zs, ratios = [], []
    for n in K.names:
        s = K.std[n]
        zs.append(((w[n].mean(0) - K.mean[n]) / (s / math.sqrt(M))).ravel())
        ratios.append((w[n].var(0) / s.square()).ravel())
    z = torch.cat(zs)
    r = torch.cat(ratios)
    # z-scores ~ N(0,1): their mean square is ~1 and none is extreme; variance ratios ~ 1 ± sqrt(2/M)
    assert abs(float(z.square().mean()) - 1.0) < 5 * math.sqrt(2.0 / len(z))
    assert float(z.abs().max()) < 5.0
    assert abs(float(r.mean()) - 1.0) < 5 * math.sqrt(2.0 / (M * len(r)))
    assert float((r - 1).abs().max()) < 6 * math.sqrt(2.0 / M)


def test_subset_selection_freezes_the_rest():
    m = _model(0)
    K = GaussianKernel.from_model(m, 0.1, params="fc2.*")
    assert K.names == ("fc2.weight", "fc2.bias")
    assert set(K.frozen) == {"fc1.weight", "fc1.bias"}
    x = torch.randn(4, 6, dtype=torch.float64)
    w = K.sample(3)
    z = draw_logits(K, x, w)
    h = torch.relu(x @ m.fc1.weight.T + m.fc1.bias)
    for d in range(3):
        torch.testing.assert_close(z[d], h @ w["fc2.weight"][d].T + w["fc2.bias"][d])


def test_vmap_and_loop_agree():
    m = _model(0)
    K = GaussianKernel.from_model(m, 0.2)
    x = torch.randn(7, 6, dtype=torch.float64)
    w = K.sample(5, torch.Generator().manual_seed(1))
    torch.testing.assert_close(draw_logits(K, x, w, mode="vmap", batch_size=3),
                               draw_logits(K, x, w, mode="loop", batch_size=3))


def test_buffers_frozen_shared_and_mismatch_is_a_clear_error():
    a, b = _model(0, bn=True), _model(1, bn=True)
    with torch.no_grad():
        a.train()(torch.randn(32, 6, dtype=torch.float64))  # a's running statistics move, b's do not
    P = GaussianKernel.from_model(a, 0.1)
    Q = GaussianKernel.from_model(b, 0.1)
    with pytest.raises(ValueError, match=r"buffer 'bn.running_mean'|buffer 'bn.running_var'"):
        check_compatible(Q, P)
    with pytest.raises(ValueError, match="buffer"):
        kernel_kl(Q, P)
    Q2 = GaussianKernel.from_model(b, 0.1, frozen_from=P)
    check_compatible(Q2, P)
    for n in P.frozen:
        assert torch.equal(Q2.frozen[n], P.frozen[n])
    # evaluating draws neither updates the buffers nor leaves the model in eval mode
    before = {n: t.clone() for n, t in b.named_buffers()}
    b.train()
    draw_logits(Q2, torch.randn(16, 6, dtype=torch.float64), Q2.sample(2))
    assert b.training and b.bn.training
    for n, t in b.named_buffers():
        assert torch.equal(t, before[n])


def test_different_parameter_spaces_are_refused():
    P = GaussianKernel.from_model(_model(0), 0.1)
    Q_wide = GaussianKernel.from_model(_model(0, h=7), 0.1)
    with pytest.raises(ValueError, match="parameter space.*'fc1.weight' has shape"):
        kernel_kl(Q_wide, P)
    Q_sub = GaussianKernel.from_model(_model(0), 0.1, params="fc2.*")
    with pytest.raises(ValueError, match="parameter space: parameter names differ"):
        kernel_kl(Q_sub, P)
    with pytest.raises(TypeError, match="GaussianKernel"):
        check_compatible(P, object())


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scale_names_std(bad):
    with pytest.raises(ValueError, match=r"std\["):
        GaussianKernel.from_model(_model(0), bad)


def test_sample_count_validated():
    K = GaussianKernel.from_model(_model(0), 0.1)
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        K.sample(0)


def test_local_reparameterisation_has_the_exact_law_of_per_example_draws():
    """One Linear layer: under an independent weight per example the logit of x is
    N(μ_W x + μ_b, Σ σ_W² x² + σ_b²) — checked for the local and the explicit scheme."""
    torch.manual_seed(0)
    lin = nn.Linear(4, 2).double()
    std = {"weight": torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.2, 0.3]], dtype=torch.float64),
           "bias": torch.tensor([0.05, 0.2], dtype=torch.float64)}
    K = GaussianKernel.from_model(lin, std)
    assert supports_local_reparam(K, torch.zeros(2, 4, dtype=torch.float64))
    x0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    N = 20000
    xs = x0.expand(N, 4).contiguous()
    mu = lin.weight.detach() @ x0 + lin.bias.detach()
    var = std["weight"].square() @ x0.square() + std["bias"].square()
    for method in ("local", "explicit"):
        z = per_example_logits(K, xs, torch.Generator().manual_seed(1), method=method, chunk=4096)
        se_mean = (var / N).sqrt()
        assert bool(((z.mean(0) - mu).abs() < 5 * se_mean).all()), method
        assert bool(((z.var(0) / var - 1).abs() < 5 * math.sqrt(2.0 / N)).all()), method


def test_local_and_explicit_agree_on_a_two_layer_network():
    m = _model(0)
    K = GaussianKernel.from_model(m, 0.3)
    x = torch.randn(1, 6, dtype=torch.float64).expand(30000, 6).contiguous()
    zl = per_example_logits(K, x, torch.Generator().manual_seed(2), method="local")
    ze = per_example_logits(K, x, torch.Generator().manual_seed(3), method="explicit", chunk=5000)
    for k in range(zl.shape[1]):
        se = math.sqrt(float(zl[:, k].var() + ze[:, k].var()) / len(x))
        assert abs(float(zl[:, k].mean() - ze[:, k].mean())) < 5 * se
        assert float(zl[:, k].var() / ze[:, k].var()) == pytest.approx(1.0, abs=0.06)


def test_local_refused_for_convolutions():
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()).double()
    K = GaussianKernel.from_model(conv, 0.1)
    x = torch.randn(3, 1, 5, 5, dtype=torch.float64)
    assert not supports_local_reparam(K, x)
    with pytest.raises(ValueError, match="method='local'"):
        per_example_logits(K, x, method="local")
    assert per_example_logits(K, x, method="auto").shape == (3, 18)
