"""Estimators on random symmetric matrices with known trace and spectrum (float64)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdbounds.curvature import (
    MatrixOperator,
    diagonal_estimate,
    frobenius_norm_sq,
    gaussian_density,
    hutchinson_trace,
    hutchpp_trace,
    lanczos,
    power_iteration,
    spectral_density,
    top_eigenvalues,
)

D64 = torch.float64




def sym_with_spectrum(eigs, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    eigs = np.asarray(eigs, dtype=float)
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=D64))
    A = Q @ torch.diag(torch.as_tensor(eigs)) @ Q.T
    return (A + A.T) / 2, np.sort(eigs)


def random_psd(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    B = torch.randn(n, n, generator=g, dtype=D64)
    return B @ B.T / n


# ------------------------------------------------------------------------------------------
# Hutchinson / Hutch++ / Frobenius / diagonal
# ------------------------------------------------------------------------------------------
def test_hutchinson_exact_on_diagonal_rademacher():
    A = torch.diag(torch.arange(1.0, 31.0, dtype=D64))
    r = hutchinson_trace(A, 5, seed=0)
    assert r.value == pytest.approx(465.0, abs=1e-10) and r.stderr == pytest.approx(0, abs=1e-10)
    assert r.n_matvecs == 5 and r.n_samples == 5 and r.method == "hutchinson"


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_unbiased_with_honest_stderr(distribution):
    A = random_psd(40, 1)
    true = float(torch.trace(A))
    # theoretical per-sample variance: Rademacher 2(||A||_F^2 - sum a_ii^2), Gaussian 2||A||_F^2
    fro = float((A * A).sum())
    var = 2 * (fro - float((torch.diag(A) ** 2).sum())) if distribution == "rademacher" else 2 * fro
    z = []
    for seed in range(40):
        r = hutchinson_trace(A, 50, distribution=distribution, seed=seed)
        z.append((r.value - true) / r.stderr)
        assert r.stderr == pytest.approx(math.sqrt(var / 50), rel=0.6)
    z = np.asarray(z)
    assert abs(z.mean()) < 4 / math.sqrt(len(z))  # unbiased
    assert 0.6 < z.std() < 1.5  # stderr is calibrated


def test_hutchinson_adaptive_stopping():
    A = random_psd(50, 2)
    r = hutchinson_trace(A, target_rel_se=0.02, min_matvecs=10, max_matvecs=2000, block_size=4,
                         seed=3)
    assert r.converged and r.n_matvecs >= 10
    assert r.stderr <= 0.02 * abs(r.value)
    assert abs(r.value - float(torch.trace(A))) < 5 * r.stderr
    r_cap = hutchinson_trace(A, target_rel_se=1e-6, max_matvecs=16, seed=3)
    assert not r_cap.converged and r_cap.n_matvecs == 16
    json.dumps(r.to_dict())


def test_hutchpp_exact_for_low_rank_and_better_than_hutchinson():
    A, _ = sym_with_spectrum([5.0, 3.0, 2.0] + [0.0] * 37, seed=4)
    r = hutchpp_trace(A, 12, seed=0)  # sketch of 4 >= rank 3: exact
    assert r.value == pytest.approx(10.0, abs=1e-9)
    # fast-decaying spectrum: Hutch++ error well below Hutchinson at equal budget
    B, _ = sym_with_spectrum(10.0 * 0.7 ** np.arange(60), seed=5)
    true = float(torch.trace(B))
    e_pp = np.mean([abs(hutchpp_trace(B, 30, seed=s).value - true) for s in range(20)])
    e_h = np.mean([abs(hutchinson_trace(B, 30, seed=s).value - true) for s in range(20)])
    assert e_pp < 0.3 * e_h
    r7 = hutchpp_trace(B, 7, seed=1)  # not a multiple of 3: 2 sketch + 3 Hutchinson probes
    assert r7.n_matvecs == 7 and r7.n_samples == 3


def test_frobenius_norm_sq():
    A, eigs = sym_with_spectrum(np.linspace(-2, 3, 30), seed=6)
    true = float((eigs ** 2).sum())
    r = frobenius_norm_sq(A, 400, seed=0)
    assert abs(r.value - true) < 4 * r.stderr
    assert r.stderr < 0.1 * true
    r2 = frobenius_norm_sq(A, target_rel_se=0.05, seed=1)
    assert r2.converged and r2.rel_stderr <= 0.05


def test_diagonal_estimate():
    D = torch.diag(torch.linspace(-1, 2, 20, dtype=D64))
    r = diagonal_estimate(D, 3, seed=0)
    torch.testing.assert_close(r.value, torch.diag(D))
    A = random_psd(25, 7)
    r = diagonal_estimate(A, 400, block_size=50, seed=1)
    z = (r.value - torch.diag(A)) / r.stderr
    assert float(z.abs().max()) < 5 and 0.5 < float(z.std()) < 1.6


# ------------------------------------------------------------------------------------------
# Lanczos / power iteration
# ------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(8, 60),
    k=st.integers(1, 3),
    seed=st.integers(0, 10_000),
    shift=st.floats(-5, 5),
)
def test_lanczos_against_eigvalsh(n, k, seed, shift):
    rng = np.random.default_rng(seed)
    eigs = rng.normal(size=n) + shift
    A, _ = sym_with_spectrum(eigs, seed)
    exact = np.linalg.eigvalsh(A.numpy())
    r = top_eigenvalues(A, k, which="both", tol=1e-10, max_matvecs=n, seed=seed)
    # converged Ritz values match the extreme eigenvalues
    np.testing.assert_allclose(r.eigenvalues[:k], exact[::-1][:k], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(r.eigenvalues[k:], exact[:k], rtol=1e-6, atol=1e-6)
    # residual bounds: every Ritz value lies within its residual of the spectrum
    for theta, res in zip(r.eigenvalues, r.residuals):
        assert np.min(np.abs(exact - theta)) <= res + 1e-9


def test_lanczos_converges_early_with_gap_and_counts_matvecs():
    eigs = np.concatenate([[100.0, 50.0], np.linspace(-1, 1, 398)])
    A, _ = sym_with_spectrum(eigs, seed=8)
    op = MatrixOperator(A)
    r = top_eigenvalues(op, 2, tol=1e-6, max_matvecs=200, seed=0, return_eigenvectors=True)
    assert r.converged and r.n_matvecs < 40 and op.num_matvecs == r.n_matvecs
    np.testing.assert_allclose(r.eigenvalues, [100.0, 50.0], rtol=1e-8)
    V = r.eigenvectors
    torch.testing.assert_close(A @ V, V * torch.as_tensor(r.eigenvalues), atol=1e-4, rtol=0)
    r_small = top_eigenvalues(op, 1, which="smallest", tol=1e-3, max_matvecs=100, seed=0)
    assert r_small.eigenvalues[0] < -0.95 and len(r_small.history) == r_small.n_matvecs


def test_lanczos_invariant_subspace_and_basis():
    A, _ = sym_with_spectrum([3.0] * 10 + [1.0] * 10, seed=9)  # two distinct eigenvalues
    r = top_eigenvalues(A, 1, which="both", max_matvecs=20, seed=0)
    assert r.converged and r.n_matvecs <= 3
    np.testing.assert_allclose(r.eigenvalues, [3.0, 1.0], rtol=1e-10)
    a, b, Q = lanczos(random_psd(30, 10), 15, seed=1)
    torch.testing.assert_close(Q @ Q.T, torch.eye(15, dtype=D64), atol=1e-12, rtol=0)
    T = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
    np.testing.assert_allclose((Q @ random_psd(30, 10) @ Q.T).numpy(), T, atol=1e-10)


def test_power_iteration_and_lanczos_cost():
    eigs = np.concatenate([[10.0], np.linspace(0, 9, 199)])  # gap ratio 0.9
    A, _ = sym_with_spectrum(eigs, seed=11)
    p = power_iteration(A, max_matvecs=500, tol=1e-9, seed=0)
    assert p.converged and p.value == pytest.approx(10.0, rel=1e-6)
    l = top_eigenvalues(A, 1, tol=1e-6, max_matvecs=200, seed=0)
    assert l.value == pytest.approx(10.0, rel=1e-9)
    assert l.n_matvecs < 0.5 * p.n_matvecs  # Krylov beats power iteration


# ------------------------------------------------------------------------------------------
# Spectral density (SLQ)
# ------------------------------------------------------------------------------------------
def test_slq_quadrature_moments_and_density():
    A, eigs = sym_with_spectrum(np.linspace(-1, 4, 50), seed=12)
    sd = spectral_density(A, num_probes=30, num_steps=12, seed=0)
    assert sd.nodes.shape == (30, 12) and sd.n_matvecs == 360
    np.testing.assert_allclose(sd.weights.sum(axis=1), 1.0, atol=1e-12)
    assert sd.nodes.min() >= eigs.min() - 1e-9 and sd.nodes.max() <= eigs.max() + 1e-9
    tr = sd.trace()
    assert abs(tr.value - eigs.sum()) < 4 * tr.stderr
    # Gauss quadrature is exact for low moments of the probe's measure: E tr(A^2)/n
    m2 = (sd.weights * sd.nodes ** 2).sum(axis=1).mean()
    assert m2 == pytest.approx((eigs ** 2).mean(), rel=0.15)
    grid = sd.grid(2000)
    dens = sd.density(grid, sigma=0.1)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-3)
    # density mass sits on the spectrum interval
    inside = (grid > -1.5) & (grid < 4.5)
    assert np.trapezoid(dens[inside], grid[inside]) > 0.99
    np.testing.assert_allclose(gaussian_density(sd.nodes, sd.weights, grid, 0.1), dens)


def test_slq_full_steps_recovers_spectrum():
    eigs = np.array([-2.0, 0.5, 1.0, 3.0, 7.0])
    A, _ = sym_with_spectrum(eigs, seed=13)
    sd = spectral_density(A, num_probes=2, num_steps=5, seed=0)
    np.testing.assert_allclose(np.sort(sd.nodes[0]), eigs, atol=1e-8)


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------
def test_budget_and_argument_errors():
    A = random_psd(10, 14)
    with pytest.raises(ValueError, match="num_matvecs"):
        hutchinson_trace(A, 1)
    with pytest.raises(ValueError, match="num_matvecs"):
        hutchinson_trace(A)
    with pytest.raises(ValueError, match="max_matvecs"):
        hutchinson_trace(A, target_rel_se=0.1, max_matvecs=5, min_matvecs=10)
    with pytest.raises(ValueError, match="min_matvecs"):
        hutchinson_trace(A, target_rel_se=0.1, min_matvecs=1)
    with pytest.raises(ValueError, match="target_rel_se"):
        hutchinson_trace(A, target_rel_se=-1.0)
    with pytest.raises(ValueError, match="distribution"):
        hutchinson_trace(A, 4, distribution="uniform")
    with pytest.raises(ValueError, match="num_matvecs"):
        hutchpp_trace(A, 2)
    with pytest.raises(ValueError, match="num_matvecs"):
        diagonal_estimate(A, 1)
    with pytest.raises(ValueError, match="num_matvecs"):
        frobenius_norm_sq(A, 1)
    with pytest.raises(ValueError, match="max_matvecs"):
        top_eigenvalues(A, 3, max_matvecs=2)
    with pytest.raises(ValueError, match="max_matvecs"):
        top_eigenvalues(A, 2, which="both", max_matvecs=3)
    with pytest.raises(ValueError, match="which"):
        top_eigenvalues(A, 1, which="middle")
    with pytest.raises(ValueError, match="max_matvecs"):
        power_iteration(A, max_matvecs=1)
    with pytest.raises(ValueError, match="num_probes"):
        spectral_density(A, 0, 5)
    with pytest.raises(TypeError, match="seed"):
        hutchinson_trace(A, 4, seed="x")
    with pytest.raises(TypeError, match="operator"):
        hutchinson_trace([[1.0]], 4)
    with pytest.raises(ValueError, match="symmetric"):
        MatrixOperator(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
