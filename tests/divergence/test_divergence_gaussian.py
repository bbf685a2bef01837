"""Gaussian predictive kernels (theory.md §3.3, §3.6): the torch closed form of
``kdbounds.divergence.gaussian_predictive_divergence`` against

* an independent numpy implementation of the §3.3 formula (explicit solves, written here),
* ``torch.distributions.kl_divergence`` on the vectorised law ``vec Y ~ N(vec M, C ⊗ I_k)``,
* the theory's worked cases (§3.7 cases 2–4, read as kernels with d → m),
* a Monte Carlo estimator ``mean(log q_S(Y_j) − log q_T(Y_j))``, ``Y_j ~ q_S``, within 4 standard errors,
* data processing: ``K_pred ≤ K_param`` for a linear-Gaussian model implemented as a torch module.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import MultivariateNormal, kl_divergence

from kdbounds.divergence import gaussian_predictive_divergence, laplace_divergence


class LinearGaussianPredictor(nn.Module):
    """Weight kernel ``W ~ MN(M, I_k, Σ)`` (k×d) and observation noise ν²; the predictive kernel at
    query inputs ``X_*`` (d×m) is ``MN(M X_*, I_k, X_*ᵀ Σ X_* + ν² I_m)`` (theory.md §3.6)."""

    def __init__(self, M: torch.Tensor, Sigma: torch.Tensor, nu2: float):
        super().__init__()
        self.M = nn.Parameter(M.clone(), requires_grad=False)
        self.register_buffer("Sigma", Sigma.clone())
        self.nu2 = float(nu2)

    def forward(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = X.shape[1]
        return self.M @ X, X.T @ self.Sigma @ X + self.nu2 * torch.eye(m, dtype=X.dtype)

    def sample(self, X: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
        mean, C = self(X)
        L = torch.linalg.cholesky(C)
        E = torch.randn(n, *mean.shape, generator=gen, dtype=X.dtype)
        return mean + E @ L.T  # rows iid, column covariance C


def kl_mn_numpy(Ms, Ss, Mt, St):
    """Independent oracle: theory.md §3.3 with explicit numpy solves/determinants."""
    Ms, Ss, Mt, St = (np.asarray(a, dtype=np.float64) for a in (Ms, Ss, Mt, St))
    k, d = Ms.shape
    D = Ms - Mt
    StinvSs = np.linalg.solve(St, Ss)
    mean = 0.5 * np.trace(D @ np.linalg.solve(St, D.T))
    sign, logdet = np.linalg.slogdet(StinvSs)
    assert sign > 0
    cov = 0.5 * k * (np.trace(StinvSs) - d - logdet)
    return mean, cov


def _spd(n, gen, scale=1.0):
    A = torch.randn(n, n, generator=gen, dtype=torch.float64)
    return scale * (A @ A.T / n + 0.3 * torch.eye(n, dtype=torch.float64))


def _pair(k, d, m, seed, nu2=0.5):
    g = torch.Generator().manual_seed(seed)
    teacher = LinearGaussianPredictor(torch.randn(k, d, generator=g, dtype=torch.float64), _spd(d, g), nu2)
    student = LinearGaussianPredictor(
        teacher.M.data + 0.5 * torch.randn(k, d, generator=g, dtype=torch.float64), _spd(d, g, 1.5), nu2
    )
    X = torch.randn(d, m, generator=g, dtype=torch.float64)
    return student, teacher, X, g


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 4), d=st.integers(1, 5), m=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_predictive_kl_matches_numpy_and_torch_distributions(k, d, m, seed):
    student, teacher, X, _ = _pair(k, d, m, seed)
    Ms, Cs = student(X)
    Mt, Ct = teacher(X)
    got = gaussian_predictive_divergence(Ms, Cs, Mt, Ct)
    mean_np, cov_np = kl_mn_numpy(Ms.numpy(), Cs.numpy(), Mt.numpy(), Ct.numpy())
    assert got.mean_term == pytest.approx(mean_np, rel=1e-8, abs=1e-10)
    assert got.cov_term == pytest.approx(cov_np, rel=1e-8, abs=1e-10)
    assert got.value == pytest.approx(mean_np + cov_np, rel=1e-8, abs=1e-10)
    # vec with column stacking: vec Y ~ N(vec M, C ⊗ I_k)
    Ik = torch.eye(k, dtype=torch.float64)
    qs = MultivariateNormal(Ms.T.reshape(-1), torch.kron(Cs, Ik))
    qt = MultivariateNormal(Mt.T.reshape(-1), torch.kron(Ct, Ik))
    assert got.value == pytest.approx(float(kl_divergence(qs, qt)), rel=1e-7, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 3), d=st.integers(1, 4), m=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_data_processing_pred_below_param(k, d, m, seed):
    """K_pred ≤ K_param (theory.md §2, §5 item 9): the predictive is a channel W ↦ W X_* + ν E."""
    student, teacher, X, _ = _pair(k, d, m, seed)
    k_pred = gaussian_predictive_divergence(*student(X), *teacher(X)).value
    # parameter-space kernels MN(M, I_k, Σ) are the predictive kernels at X_* = I_d without noise
    k_param = gaussian_predictive_divergence(student.M, student.Sigma, teacher.M, teacher.Sigma).value
    mean_np, cov_np = kl_mn_numpy(student.M.numpy(), student.Sigma.numpy(), teacher.M.numpy(), teacher.Sigma.numpy())
    assert k_param == pytest.approx(mean_np + cov_np, rel=1e-8)
    assert k_pred <= k_param * (1 + 1e-9) + 1e-12


@pytest.mark.parametrize(
    "Ms, Cs, expected",
    [
        (np.diag([3.0, 0.0]), np.eye(2), (0.5, 0.0)),  # §3.7 case 2: K = 0.5
        (np.diag([3.0, 0.0]), 2 * np.eye(2), (0.5, 2 * (1 - math.log(2)))),  # case 3: V = 0.6137056
        (np.diag([2.5, 0.0]), np.eye(2), (0.625, 0.0)),  # case 4: mean term 0.625
    ],
)
def test_worked_cases(Ms, Cs, expected):
    got = gaussian_predictive_divergence(Ms, Cs, np.diag([3.0, 1.0]), np.eye(2))
    assert got.mean_term == pytest.approx(expected[0], abs=1e-12)
    assert got.cov_term == pytest.approx(expected[1], abs=1e-12)
    assert got.k == 2 and got.m == 2


def test_identical_kernels_zero():
    student, teacher, X, _ = _pair(2, 3, 4, 0)
    mean, C = teacher(X)
    got = gaussian_predictive_divergence(mean, C, mean, C)
    assert got.value == pytest.approx(0.0, abs=1e-12)


def test_monte_carlo_estimator_agrees_with_closed_form():
    student, teacher, X, g = _pair(2, 3, 4, 7)
    Ms, Cs = student(X)
    Mt, Ct = teacher(X)
    closed = gaussian_predictive_divergence(Ms, Cs, Mt, Ct).value
    Ik = torch.eye(2, dtype=torch.float64)
    qs = MultivariateNormal(Ms.T.reshape(-1), torch.kron(Cs, Ik))
    qt = MultivariateNormal(Mt.T.reshape(-1), torch.kron(Ct, Ik))
    Y = student.sample(X, 20_000, g)  # (n, k, m)
    vecY = Y.transpose(1, 2).reshape(Y.shape[0], -1)
    lr = qs.log_prob(vecY) - qt.log_prob(vecY)
    est, se = float(lr.mean()), float(lr.std() / math.sqrt(len(lr)))
    assert abs(est - closed) < 4 * se, (est, closed, se)


def test_per_input_marginals_equal_laplace_diag():
    """With one query input (m = 1) and k = 1 the predictive kernel is a scalar Gaussian; the
    per-input KL equals the diagonal 'Laplace' closed form with precision 1/variance, τ = 1."""
    student, teacher, X, _ = _pair(1, 3, 5, 11)
    Ms, Cs = student(X)
    Mt, Ct = teacher(X)
    per_input = [gaussian_predictive_divergence(Ms[:, j], Cs[j : j + 1, j : j + 1], Mt[:, j], Ct[j : j + 1, j : j + 1]).value for j in range(5)]
    diag = laplace_divergence(Ms[0], Mt[0], 1 / torch.diagonal(Cs), 1 / torch.diagonal(Ct), tau=1.0, kind="diag")
    assert sum(per_input) == pytest.approx(diag.value, rel=1e-10)


def test_errors():
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_predictive_divergence(np.zeros((1, 2)), np.diag([1.0, -1.0]), np.zeros((1, 2)), np.eye(2))
    with pytest.raises(ValueError, match="column covariance"):
        gaussian_predictive_divergence(np.zeros((1, 2)), np.eye(3), np.zeros((1, 2)), np.eye(2))
    with pytest.raises(ValueError, match="equal shape"):
        gaussian_predictive_divergence(np.zeros((1, 2)), np.eye(2), np.zeros((2, 2)), np.eye(2))


def test_agrees_with_linear_gaussian_package():
    """Cross-check against helper A's numpy implementation (tests may import linear_gaussian)."""
    lgd = pytest.importorskip("linear_gaussian.divergence")
    lgm = pytest.importorskip("linear_gaussian.model")
    for seed in range(5):
        student, teacher, X, _ = _pair(3, 4, 5, seed, nu2=0.49)
        qs = lgm.MatrixNormal(student.M.numpy(), student.Sigma.numpy())
        qt = lgm.MatrixNormal(teacher.M.numpy(), teacher.Sigma.numpy())
        ref = lgd.predictive_kl(qs, qt, X.numpy(), 0.7)  # nu = 0.7, nu² = 0.49
        got = gaussian_predictive_divergence(*student(X), *teacher(X)).value
        assert got == pytest.approx(ref, rel=1e-8)
        assert gaussian_predictive_divergence(student.M, student.Sigma, teacher.M, teacher.Sigma).value == pytest.approx(
            lgd.kl_matrix_normal(qs, qt), rel=1e-8
        )
