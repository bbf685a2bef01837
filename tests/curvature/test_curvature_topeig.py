"""Top eigenvalue: the start vector (``start="random" | "gradient"``) and the stopping rule
(``stop="residual" | "change"``) of ``top_eigenvalues`` / ``power_iteration``, against known spectra
(float64) and a dense float64 Hessian."""

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
    power_iteration,
    probe_vectors,
    start_vector,
    top_eigenvalues,
)

D64 = torch.float64


class GradMatrix(MatrixOperator):
    """A known symmetric matrix with a chosen 'gradient' (what start='gradient' reads)."""

    def __init__(self, A: torch.Tensor, g: torch.Tensor) -> None:
        super().__init__(A)
        self._g = g

    def gradient(self) -> torch.Tensor:
        return self._g


def spectrum_matrix(eigs, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``Q diag(eigs) Q^T`` and ``Q`` (eigenvectors as columns, in the order of ``eigs``)."""
    eigs = torch.as_tensor(np.asarray(eigs, dtype=float))
    Q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=torch.Generator().manual_seed(seed),
                                       dtype=D64))
    A = Q @ torch.diag(eigs) @ Q.T
    return (A + A.T) / 2, Q


def first_within(history, lam: float, rtol: float) -> int | None:
    """Products after which the history stays within ``rtol`` of ``lam`` (benchmarks' first_reach)."""
    n = None
    for i, v in enumerate(history):
        if abs(v - lam) <= rtol * abs(lam):
            n = i + 1 if n is None else n
        else:
            n = None
    return n


# a spectrum with a small gap at the top (lambda_2 / lambda_1 = 0.9) and a bulk below (n = 1500)
EIGS = np.concatenate([[10.0, 9.0, 8.5, 8.0], np.linspace(0.0, 8.0, 1496)])


def test_start_vector_is_normalised_gradient_plus_the_seeded_probe():
    A, Q = spectrum_matrix(EIGS[:50], seed=1)
    g = 3.0 * Q[:, 0] + torch.randn(50, generator=torch.Generator().manual_seed(2), dtype=D64)
    op = GradMatrix(A, g)
    z = probe_vectors(50, 1, "rademacher", make_generator(7), D64, op.device)[:, 0]
    torch.testing.assert_close(start_vector(op, "gradient", make_generator(7)), g / g.norm() + z / z.norm())
    torch.testing.assert_close(start_vector(op, "random", make_generator(7)), z)
    # the default start is unchanged: the Rademacher probe of the seed, bit for bit
    r_default = top_eigenvalues(op, 1, tol=1e-8, max_matvecs=30, seed=7)
    r_v0 = top_eigenvalues(op, 1, tol=1e-8, max_matvecs=30, v0=z)
    assert r_default.history == r_v0.history
    # a zero gradient leaves the random start
    torch.testing.assert_close(start_vector(GradMatrix(A, torch.zeros(50, dtype=D64)), "gradient",
                                            make_generator(7)), z)


def test_gradient_start_is_cheaper_and_seed_robust_on_an_aligned_gradient():
    A, Q = spectrum_matrix(EIGS, seed=3)
    lam = 10.0
    # a gradient with overlap ~0.3 on the top eigenvector, the rest on the next three and the bulk
    # (measured: Lanczos 10-11 products from random starts, 8 from every gradient start; power
    # iteration 25-33 and 23-24)
    rng = torch.Generator().manual_seed(4)
    g = 0.3 * Q[:, 0] + 0.3 * Q[:, 1:4].sum(1) + 0.02 * torch.randn(1500, generator=rng, dtype=D64)
    op = GradMatrix(A, g)
    costs = {}
    for start in ("random", "gradient"):
        costs[start] = [first_within(top_eigenvalues(op, 1, tol=1e-10, max_matvecs=80, seed=s,
                                                     start=start).history, lam, 1e-3) for s in range(5)]
        costs[f"power_{start}"] = [first_within(power_iteration(op, max_matvecs=300, tol=1e-14, seed=s,
                                                                start=start).history, lam, 1e-3)
                                   for s in range(5)]
    assert None not in sum(costs.values(), [])
    assert max(costs["gradient"]) < np.median(costs["random"])  # worst gradient start < median random
    assert max(costs["gradient"]) - min(costs["gradient"]) <= 1  # hardly any seed dependence
    assert max(costs["power_gradient"]) <= np.median(costs["power_random"])
    assert max(costs["gradient"]) <= 0.5 * np.median(costs["power_random"])


def test_gradient_orthogonal_to_the_top_eigenvector_still_finds_it():
    # g spans an invariant subspace without u1: a start of g alone would stop at eigenvalue 7
    A, Q = spectrum_matrix(EIGS[:200], seed=5)
    op = GradMatrix(A, Q[:, 1] + Q[:, 2])
    for seed in range(3):
        r = top_eigenvalues(op, 1, tol=1e-8, max_matvecs=100, seed=seed, start="gradient")
        assert r.converged and r.value == pytest.approx(10.0, rel=1e-8)
        p = power_iteration(op, max_matvecs=400, tol=1e-12, seed=seed, start="gradient")
        assert p.value == pytest.approx(10.0, rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(5, 40), seed=st.integers(0, 10_000), shift=st.floats(-3, 3),
       start=st.sampled_from(["random", "gradient"]), steps=st.integers(2, 12))
def test_lanczos_dominates_power_from_the_same_start(n, seed, shift, start, steps):
    # after t products the Lanczos Ritz maximum is the largest Rayleigh quotient on the Krylov space
    # K_t, which holds power iteration's t-th iterate: Lanczos >= power at every step
    rng = np.random.default_rng(seed)
    A, _ = spectrum_matrix(rng.normal(size=n) + shift, seed)
    op = GradMatrix(A, torch.as_tensor(rng.normal(size=n)))
    lz = top_eigenvalues(op, 1, tol=1e-14, max_matvecs=min(steps, n), seed=seed, start=start)
    pw = power_iteration(op, max_matvecs=max(2, min(steps, n)), tol=1e-300, seed=seed, start=start)
    m = min(len(lz.history), len(pw.history))
    assert np.all(np.asarray(lz.history[:m]) >= np.asarray(pw.history[:m]) - 1e-9 * (1 + abs(lz.value)))
    assert lz.value <= np.linalg.eigvalsh(A.numpy())[-1] + 1e-9


@pytest.mark.parametrize("start", ["random", "gradient"])
def test_change_rule_stops_at_the_first_small_change(start):
    A, Q = spectrum_matrix(EIGS[:300], seed=6)
    op = GradMatrix(A, Q[:, 0] + 0.5 * Q[:, 5])
    tol = 1e-3
    full = top_eigenvalues(op, 1, tol=1e-12, max_matvecs=100, seed=0, start=start)
    h = full.history
    expect = next(i + 1 for i in range(1, len(h)) if abs(h[i] - h[i - 1]) <= tol * abs(h[i]))
    ch = top_eigenvalues(op, 1, tol=tol, max_matvecs=100, seed=0, start=start, stop="change")
    assert ch.converged and ch.n_matvecs == expect and ch.history == h[:expect]
    res = top_eigenvalues(op, 1, tol=tol, max_matvecs=100, seed=0, start=start)
    assert res.converged and res.residuals[0] <= tol * res.value
    assert ch.n_matvecs <= res.n_matvecs  # the residual rule is the stricter one here
    # the reported residual stays the bound whichever rule stopped the run
    assert abs(ch.value - 10.0) <= ch.residuals[0] + 1e-12


def test_change_rule_in_block_lanczos_and_for_k_eigenvalues():
    A, _ = spectrum_matrix(EIGS[:300], seed=7)
    r = top_eigenvalues(A, 2, tol=1e-6, max_matvecs=150, seed=0, stop="change", block_size=3)
    assert r.converged and r.n_matvecs % 3 == 0
    np.testing.assert_allclose(r.eigenvalues, [10.0, 9.0], rtol=1e-4)
    r1 = top_eigenvalues(A, 2, tol=1e-6, max_matvecs=150, seed=0, stop="change")
    assert r1.converged and r1.n_matvecs >= 3  # needs two steps with k values to compare
    np.testing.assert_allclose(r1.eigenvalues, [10.0, 9.0], rtol=1e-4)


def small_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                        nn.Linear(3 * 4 * 4, 4)).double()
    with torch.no_grad():
        net.train()
        net(torch.randn(16, 2, 4, 4, dtype=D64))
    return net.eval()


def test_gradient_start_on_a_network_against_the_dense_float64_hessian():
    net = small_net()
    x = torch.randn(24, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=D64)
    y = torch.randint(0, 4, (24,), generator=torch.Generator().manual_seed(2))
    op = HessianOperator(net, F.cross_entropy, [(x, y)])
    H = op.to_dense()
    eigs = torch.linalg.eigvalsh(H)
    for which, want in (("largest", eigs[-2:].flip(0)), ("smallest", eigs[:2])):
        r = top_eigenvalues(op, 2, which=which, tol=1e-10, max_matvecs=op.shape[0], seed=0, start="gradient")
        assert r.converged
        np.testing.assert_allclose(r.eigenvalues, want.numpy(), rtol=1e-8, atol=1e-10)
    p = power_iteration(op, max_matvecs=2000, tol=1e-13, seed=0, start="gradient")
    dominant = float(eigs[torch.argmax(eigs.abs())])
    assert p.value == pytest.approx(dominant, rel=1e-6)


def test_bad_start_and_stop():
    A, _ = spectrum_matrix(EIGS[:20], seed=8)
    with pytest.raises(ValueError, match="start"):
        top_eigenvalues(A, 1, start="gradients")
    with pytest.raises(ValueError, match="stop"):
        top_eigenvalues(A, 1, stop="relative")
    with pytest.raises(ValueError, match="gradient\\(\\)"):
        top_eigenvalues(MatrixOperator(A), 1, start="gradient")
    with pytest.raises(ValueError, match="gradient\\(\\)"):
        power_iteration(A, start="gradient")
    with pytest.raises(ValueError, match="finite"):
        top_eigenvalues(GradMatrix(A, torch.full((20,), float("nan"), dtype=D64)), 1, start="gradient")
    with pytest.raises(ValueError, match="shape"):
        top_eigenvalues(GradMatrix(A, torch.ones(3, dtype=D64)), 1, start="gradient")
