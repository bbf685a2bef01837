"""Block Lanczos and batched-probe SLQ against dense float64 oracles (numpy.linalg.eigvalsh,
torch.func.hessian, direct Rayleigh quotients)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdbounds.curvature import (
    HessianOperator,
    MatrixOperator,
    make_generator,
    probe_vectors,
    spectral_density,
    top_eigenvalues,
)
from kdbounds.curvature.block_krylov import batched_lanczos

D64 = torch.float64


def sym_with_spectrum(eigs, seed: int) -> torch.Tensor:
    eigs = np.asarray(eigs, dtype=float)
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=D64))
    A = Q @ torch.diag(torch.as_tensor(eigs)) @ Q.T
    return (A + A.T) / 2


@settings(max_examples=40, deadline=None)
@given(n=st.integers(6, 50), k=st.integers(1, 3), b=st.integers(2, 5), seed=st.integers(0, 10_000),
       shift=st.floats(-5, 5), repeat=st.booleans())
def test_block_lanczos_against_eigvalsh(n, k, b, seed, shift, repeat):
    rng = np.random.default_rng(seed)
    eigs = rng.normal(size=n) + shift
    if repeat:  # a multiple top eigenvalue: single-vector Krylov spaces see only one copy
        eigs[np.argsort(eigs)[-2:]] = eigs.max()
    A = sym_with_spectrum(eigs, seed)
    exact = np.linalg.eigvalsh(A.numpy())
    op = MatrixOperator(A)
    r = top_eigenvalues(op, k, which="both", tol=1e-10, max_matvecs=n, seed=seed, block_size=b,
                        return_eigenvectors=True)
    assert r.block_size == min(b, n) and r.n_matvecs == op.num_matvecs <= n
    np.testing.assert_allclose(r.eigenvalues[:k], exact[::-1][:k], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(r.eigenvalues[k:], exact[:k], rtol=1e-6, atol=1e-6)
    for theta, res in zip(r.eigenvalues, r.residuals):  # residual bound holds for every pair
        assert np.min(np.abs(exact - theta)) <= res + 1e-9
    Y = r.eigenvectors  # residuals are the true ||A y - theta y|| of unit Ritz vectors
    R = A @ Y - Y * torch.as_tensor(r.eigenvalues)
    np.testing.assert_allclose(torch.linalg.vector_norm(R, dim=0).numpy(), r.residuals, atol=1e-8)
    np.testing.assert_allclose(torch.linalg.vector_norm(Y, dim=0).numpy(), 1.0, atol=1e-10)


def test_block_finds_a_multiple_eigenvalue_that_single_vector_lanczos_cannot():
    eigs = np.concatenate([[5.0, 5.0, 5.0], np.linspace(-1, 1, 97)])
    A = sym_with_spectrum(eigs, seed=3)
    # the Krylov space of one vector holds one copy of 5; further copies enter only through
    # rounding, late: a block of 3 needs fewer products
    single = top_eigenvalues(A, 3, tol=1e-8, max_matvecs=100, seed=0, block_size=1)
    block = top_eigenvalues(A, 3, tol=1e-8, max_matvecs=100, seed=0, block_size=3)
    assert block.converged and block.n_matvecs < single.n_matvecs
    np.testing.assert_allclose(block.eigenvalues, [5.0, 5.0, 5.0], rtol=1e-8)
    default = top_eigenvalues(A, 3, tol=1e-8, max_matvecs=100, seed=0)
    assert default.block_size == 1  # measured cheaper on ResNet Hessians (see docstring)


def test_block_counts_and_budget():
    eigs = np.concatenate([[100.0, 50.0, 30.0], np.linspace(-1, 1, 197)])
    A = sym_with_spectrum(eigs, seed=8)
    op = MatrixOperator(A)
    r = top_eigenvalues(op, 3, tol=1e-6, max_matvecs=11, seed=0, block_size=4)
    assert r.n_matvecs <= 11 and op.num_matvecs == r.n_matvecs
    assert len(r.history) == -(-r.n_matvecs // 4)
    r = top_eigenvalues(A, 3, tol=1e-8, max_matvecs=200, seed=0, block_size=4)
    assert r.converged and r.n_matvecs % 4 == 0
    np.testing.assert_allclose(r.eigenvalues, [100.0, 50.0, 30.0], rtol=1e-8)
    with pytest.raises(ValueError, match="block_size"):
        top_eigenvalues(A, 1, block_size=0)
    with pytest.raises(TypeError, match="block_size"):
        top_eigenvalues(A, 1, block_size=2.0)
    with pytest.raises(ValueError, match="block_size"):
        spectral_density(A, 2, 5, block_size=0)


def test_block_lanczos_on_a_cnn_hessian_against_dense():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(12, 3)).to(D64)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 2, 4, 4, generator=g, dtype=D64)
    y = torch.randint(0, 3, (9,), generator=g)
    params = {k: v.detach() for k, v in model.named_parameters()}
    names, shapes = list(params), [v.shape for v in params.values()]
    sizes = [v.numel() for v in params.values()]

    def f(flat):
        ps = {k: t.view(s) for k, t, s in zip(names, torch.split(flat, sizes), shapes)}
        return F.cross_entropy(torch.func.functional_call(model, ps, (x,)), y)

    H = torch.func.hessian(f)(torch.cat([v.reshape(-1) for v in params.values()]))
    exact = np.linalg.eigvalsh(H.numpy())
    op = HessianOperator(model, F.cross_entropy, [(x[:4], y[:4]), (x[4:], y[4:])])
    r = top_eigenvalues(op, 2, which="both", tol=1e-9, max_matvecs=op.shape[0], seed=1,
                        block_size=3)
    assert r.converged
    np.testing.assert_allclose(r.eigenvalues, [exact[-1], exact[-2], exact[0], exact[1]],
                               rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------------------------------------
# SLQ with several probes per block
# ------------------------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(n=st.integers(4, 30), p=st.integers(1, 5), m=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_batched_slq_quadrature_is_exact_for_linear_and_quadratic_moments(n, p, m, seed):
    rng = np.random.default_rng(seed)
    A = sym_with_spectrum(rng.normal(size=n) * 2, seed)
    sd = spectral_density(MatrixOperator(A), num_probes=p, num_steps=m, seed=seed, block_size=p)
    gen = make_generator(seed)
    V = torch.stack([probe_vectors(n, 1, "rademacher", gen, D64, torch.device("cpu"))[:, 0]
                     for _ in range(p)], dim=1)
    V = V / torch.linalg.vector_norm(V, dim=0)
    np.testing.assert_allclose(sd.weights.sum(axis=1), 1.0, atol=1e-10)
    # Gauss quadrature with m nodes integrates x and x^2 exactly (m >= 1 resp. m >= 2 or
    # an invariant subspace): oracle v^T A v and ||A v||^2 computed directly
    m1 = (sd.weights * sd.nodes).sum(axis=1)
    np.testing.assert_allclose(m1, ((A @ V) * V).sum(0).numpy(), rtol=1e-8, atol=1e-8)
    if min(m, n) >= 2:
        m2 = (sd.weights * sd.nodes ** 2).sum(axis=1)
        np.testing.assert_allclose(m2, ((A @ V) ** 2).sum(0).numpy(), rtol=1e-8, atol=1e-8)
    if m >= n:  # full Krylov space of a generic probe: nodes are the eigenvalues
        exact = np.linalg.eigvalsh(A.numpy())
        for j in range(p):
            used = sd.weights[j] > 1e-14
            assert np.min(np.abs(exact[:, None] - sd.nodes[j][used][None]), axis=0).max() < 1e-7


def test_batched_and_single_slq_agree_and_cost_the_same():
    A = sym_with_spectrum(np.linspace(-1, 4, 60), seed=12)
    one = spectral_density(MatrixOperator(A), num_probes=5, num_steps=15, seed=4, block_size=1)
    op = MatrixOperator(A)
    blk = spectral_density(op, num_probes=5, num_steps=15, seed=4, block_size=3)
    np.testing.assert_allclose(blk.nodes, one.nodes, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(blk.weights, one.weights, rtol=1e-7, atol=1e-9)
    assert blk.n_matvecs == one.n_matvecs == op.num_matvecs == 75


def test_batched_lanczos_handles_early_breakdown_per_probe():
    A = sym_with_spectrum([3.0] * 6 + [1.0] * 6, seed=9)  # two distinct eigenvalues
    e = torch.zeros(12, dtype=D64)
    Q = sym_with_spectrum([3.0] * 6 + [1.0] * 6, seed=9)
    V = torch.stack([torch.randn(12, generator=torch.Generator().manual_seed(1), dtype=D64),
                     torch.linalg.eigh(Q).eigenvectors[:, -1] + e], dim=1)
    runs = batched_lanczos(MatrixOperator(A), V, 10)
    assert [len(a) for a, _ in runs] == [2, 1]  # generic probe: 2 steps; eigenvector: 1
    np.testing.assert_allclose(runs[1][0], [3.0], rtol=1e-12)
