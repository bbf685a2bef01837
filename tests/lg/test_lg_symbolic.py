"""linear_gaussian.symbolic: the Gaussian KL derived from the densities vs theory.md §3.3-3.4."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from linear_gaussian.symbolic import (
    HALF,
    _is_zero,
    check_closed_form,
    check_decomposition_2x2,
    decomposition_2x2,
    kl_expressions,
    gaussian_kl_from_densities,
    matrix_normal_kl_closed_form,
    vec,
    vec_matrix_normal,
)


@pytest.mark.parametrize("k,d,diagonal", [(1, 2, False), (2, 1, False), (2, 2, True), (2, 2, False), (1, 3, True)])
def test_closed_form_equals_kl_derived_from_densities(k, d, diagonal):
    assert check_closed_form(k, d, diagonal=diagonal)


def test_decomposition_identity_2x2():
    assert check_decomposition_2x2()


def _numeric_kl(mq, cq, mp, cp):
    """Textbook vector-Gaussian KL with numpy (independent of sympy)."""
    p = len(mq)
    cpi = np.linalg.inv(cp)
    dd = mq - mp
    return 0.5 * (np.trace(cpi @ cq) + dd @ cpi @ dd - p + np.linalg.slogdet(cp)[1] - np.linalg.slogdet(cq)[1])


def test_density_derivation_numerically_and_by_monte_carlo():
    rng = np.random.default_rng(7)
    p = 2
    l_num = np.array([[1.3, 0.0], [0.4, 0.7]])
    sp_num = np.array([[2.0, 0.3], [0.3, 0.5]])
    mq_num, mp_num = rng.standard_normal(p), rng.standard_normal(p)
    derived = gaussian_kl_from_densities(
        sp.Matrix(mq_num), sp.Matrix(l_num), sp.Matrix(mp_num), sp.Matrix(sp_num)
    )
    val = float(sp.N(derived))
    cq = l_num @ l_num.T
    assert val == pytest.approx(_numeric_kl(mq_num, cq, mp_num, sp_num), rel=1e-10)
    # Monte Carlo of E_q log(q/p) with float64 sampling
    n = 200_000
    w = mq_num + rng.standard_normal((n, p)) @ l_num.T

    def logpdf(x, m, c):
        ci = np.linalg.inv(c)
        dx = x - m
        return -0.5 * np.einsum("ij,jk,ik->i", dx, ci, dx) - 0.5 * np.linalg.slogdet(2 * np.pi * c)[1]

    lr = logpdf(w, mq_num, cq) - logpdf(w, mp_num, sp_num)
    assert abs(lr.mean() - val) < 4 * lr.std() / math.sqrt(n)


def test_negative_controls_are_detected():
    """The check can fail: wrong multiplicity, wrong direction or the wrong vec convention."""
    k, d = 2, 2
    m_s = sp.Matrix(k, d, lambda i, j: sp.Symbol(f"ms{i}{j}", real=True))
    m_t = sp.Matrix(k, d, lambda i, j: sp.Symbol(f"mt{i}{j}", real=True))
    s = sp.Matrix([[sp.Symbol("s00", positive=True), sp.Symbol("s01", real=True)],
                   [sp.Symbol("s01", real=True), sp.Symbol("s11", positive=True)]])
    l_s = sp.diag(sp.Symbol("l0", positive=True), sp.Symbol("l1", positive=True))
    sigma_s = l_s * l_s.T
    mean_p, cov_p = vec_matrix_normal(m_t, s)
    derived = gaussian_kl_from_densities(vec(m_s), sp.kronecker_product(l_s, sp.eye(k)), mean_p, cov_p)
    closed = matrix_normal_kl_closed_form(m_s, sigma_s, m_t, s)
    assert _is_zero(derived - closed)
    # (i) covariance term with multiplicity 1 instead of k
    delta = m_s - m_t
    wrong_k = HALF * (delta * s.inv() * delta.T).trace() + HALF * (
        (s.inv() * sigma_s).trace() - d - sp.log((s.inv() * sigma_s).det()))
    assert not _is_zero(derived - wrong_k)
    # (ii) reversed direction KL(q_T || q_S) is a different function
    assert not _is_zero(derived - matrix_normal_kl_closed_form(m_t, s, m_s, sigma_s))
    # (iii) row-stacking convention (I_k ⊗ Σ with column-stacked means) gives a different KL
    derived_wrong = gaussian_kl_from_densities(
        vec(m_s), sp.kronecker_product(l_s, sp.eye(k)), mean_p, sp.kronecker_product(sp.eye(k), s)
    )
    assert not _is_zero(derived_wrong - closed)


def test_worked_cases_of_theory_3_7():
    t = decomposition_2x2()
    b, delta, c = sp.Symbol("b", positive=True), sp.Symbol("delta", positive=True), sp.Symbol("c", real=True)
    s1, s2, u1, u2 = sp.symbols("sigma1 sigma2 u1 u2", positive=True)
    base = {b: 1, delta: 2, s1: 1, s2: 1}  # M_T = diag(3, 1), Sigma_T = I
    # case 2: M_S = diag(3, 0), Sigma_S = I: K = R_1 = 0.5, B = V = 0
    case2 = {**base, c: 3, u1: 1, u2: 1}
    assert float(t["K"].subs(case2)) == pytest.approx(0.5)
    assert float(t["R"].subs(case2)) == pytest.approx(0.5)
    assert float(t["B"].subs(case2)) == pytest.approx(0.0, abs=1e-15)
    assert float(t["V"].subs(case2)) == pytest.approx(0.0, abs=1e-15)
    # case 3: Sigma_S = 2I: V = 2(1 - ln 2), K = 1.1137056
    case3 = {**base, c: 3, u1: 2, u2: 2}
    assert float(t["V"].subs(case3)) == pytest.approx(2 * (1 - math.log(2)))
    assert float(t["K"].subs(case3)) == pytest.approx(1.1137056, abs=1e-7)
    # case 4: M_S = diag(2.5, 0): mean term 0.625, R_1 = 0.5, B = 0.125, K = 0.625
    case4 = {**base, c: sp.Rational(5, 2), u1: 1, u2: 1}
    assert float(t["mean_term"].subs(case4)) == pytest.approx(0.625)
    assert float(t["B"].subs(case4)) == pytest.approx(0.125)
    assert float(t["K"].subs(case4)) == pytest.approx(0.625)


def test_bad_input():
    with pytest.raises(ValueError, match="matching"):
        gaussian_kl_from_densities(sp.Matrix([0, 0]), sp.eye(3), sp.Matrix([0, 0]), sp.eye(2))
    with pytest.raises(ValueError, match="lower triangular"):
        gaussian_kl_from_densities(sp.Matrix([0, 0]), sp.Matrix([[1, 1], [0, 1]]), sp.Matrix([0, 0]), sp.eye(2))
    with pytest.raises(ValueError, match="k and d"):
        check_closed_form(0, 2)


def test_kl_expressions_k2_d1_is_the_scalar_formula():
    derived, closed = kl_expressions(2, 1)
    ms0, ms1, mt0, mt1 = sp.symbols("ms00 ms10 mt00 mt10", real=True)
    l, s = sp.Symbol("ls00", positive=True), sp.Symbol("st00", positive=True)
    # two independent 1-D Gaussians N(ms_i, l^2) vs N(mt_i, s): sum of the textbook 1-D KLs
    one_d = lambda m1, m2: sp.log(sp.sqrt(s) / l) + (l**2 + (m1 - m2) ** 2) / (2 * s) - HALF
    assert _is_zero(derived - (one_d(ms0, mt0) + one_d(ms1, mt1)))
    assert _is_zero(closed - derived)
    with pytest.raises(TypeError):
        kl_expressions(1.5, 2)
