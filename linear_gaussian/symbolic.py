r"""Symbolic (sympy) derivation of the Gaussian distillation divergence, theory.md §3.3-3.4.

The KL divergence is derived *from the densities*,

.. math::
    \mathrm{KL}(q \Vert p) = \int q(w) \log\frac{q(w)}{p(w)}\,dw,

with both log-densities written out from the multivariate normal density formula, and the integral
computed exactly by sympy after the change of variables ``w = mu_q + L z`` (``L`` a Cholesky factor
of the student covariance, so that ``q(w) dw = prod_i phi(z_i) dz``; this substitution is itself
verified symbolically).  The integrand is then a polynomial in ``z`` whose Gaussian moments are
integrated one variable at a time with ``sympy.integrate``.  The result is compared with the closed
form of theory.md §3.3 (matrix normals :math:`\mathcal{MN}(M, I_k, \Sigma)`, i.e.
:math:`\operatorname{vec} W \sim \mathcal N(\operatorname{vec} M, \Sigma \otimes I_k)` with column-stacking vec), and, for a 2x2 rank-1 example, with the decomposition
``K = B + R_r + V`` of §3.4.

Nothing here imports the numeric modules of ``linear_gaussian``: the closed forms are written
directly from theory.md so that they are an independent check of both.
Public functions return sympy expressions or a bool.
"""

from __future__ import annotations

import cmath
import random
from functools import lru_cache

import sympy as sp

__all__ = [
    "mvn_logpdf",
    "vec",
    "vec_matrix_normal",
    "gaussian_kl_from_densities",
    "matrix_normal_kl_closed_form",
    "phi",
    "kl_expressions",
    "check_closed_form",
    "decomposition_2x2",
    "check_decomposition_2x2",
]

HALF = sp.Rational(1, 2)


def mvn_logpdf(w: sp.Matrix, mean: sp.Matrix, cov: sp.Matrix) -> sp.Expr:
    r"""Log-density of a multivariate normal, as a sympy expression.

    .. math::
        \log \mathcal N(w; \mu, \Sigma) = -\tfrac12 (w - \mu)^\top \Sigma^{-1} (w - \mu)
        - \tfrac12 \log\det(2\pi\Sigma)

    Args:
        w: the point (column matrix).
        mean: :math:`\mu`.
        cov: :math:`\Sigma`.

    Returns:
        The log-density.
    """
    d = w - mean
    p = mean.shape[0]
    quad = (d.T * cov.inv() * d)[0, 0]
    return -HALF * quad - HALF * sp.log(cov.det()) - sp.Rational(p, 2) * sp.log(2 * sp.pi)


def vec(m: sp.Matrix) -> sp.Matrix:
    """Column-stacking vectorisation (theory.md §1).

    Args:
        m: a sympy matrix.

    Returns:
        The column matrix of ``m``'s columns stacked.
    """
    return sp.Matrix([m[i, j] for j in range(m.shape[1]) for i in range(m.shape[0])])


def vec_matrix_normal(mean: sp.Matrix, col_cov: sp.Matrix) -> tuple[sp.Matrix, sp.Matrix]:
    r""":math:`\mathcal{MN}(M, I_k, \Sigma)` (M is :math:`k \times d`) as a vector Gaussian :math:`(\operatorname{vec} M, \Sigma \otimes I_k)`.

    Args:
        mean: :math:`M`.
        col_cov: :math:`\Sigma`.

    Returns:
        ``(vec M, Sigma kron I_k)``.
    """
    k = mean.shape[0]
    return vec(mean), sp.kronecker_product(col_cov, sp.eye(k))


@lru_cache(maxsize=None)
def _std_normal_moment(power: int) -> sp.Expr:
    """``∫ z^power phi(z) dz`` by sympy integration of the standard normal density."""
    z = sp.Symbol("z", real=True)
    density = sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi)
    return sp.simplify(sp.integrate(z**power * density, (z, -sp.oo, sp.oo)))


def gaussian_kl_from_densities(
    mean_q: sp.Matrix, chol_q: sp.Matrix, mean_p: sp.Matrix, cov_p: sp.Matrix, *, verify_substitution: bool = True
) -> sp.Expr:
    r""":math:`\mathrm{KL}(\mathcal N(\mu_q, L L^\top) \Vert \mathcal N(\mu_p, \Sigma_p)) = \int q \log(q/p)` derived from the densities.

    Steps: write :math:`\log q - \log p` with :func:`mvn_logpdf`, substitute :math:`w = \mu_q + L z`;
    check :math:`q(\mu_q + L z) \det L = \prod_i \phi(z_i)` (the density of z is standard normal);
    expand the log-ratio as a polynomial in z and integrate each monomial against :math:`\phi` exactly.

    Args:
        mean_q: :math:`\mu_q`.
        chol_q: :math:`L`, a lower-triangular factor of the student covariance with positive
            diagonal (symbols declared positive).
        mean_p: :math:`\mu_p`.
        cov_p: :math:`\Sigma_p`.
        verify_substitution: check the change of variables symbolically.

    Returns:
        An unsimplified sympy expression.

    Raises:
        ValueError: dimensions that do not match, or ``chol_q`` not lower triangular.
        AssertionError: the change of variables did not give a standard normal.
    """
    p = mean_q.shape[0]
    if chol_q.shape != (p, p) or cov_p.shape != (p, p) or mean_p.shape[0] != p:
        raise ValueError("mean_q, chol_q, mean_p, cov_p must have matching dimensions")
    if any(not sp.sympify(chol_q[i, j]).is_zero for i in range(p) for j in range(i + 1, p)):
        raise ValueError("chol_q must be lower triangular")
    zs = sp.symbols(f"z0:{p}", real=True)
    z = sp.Matrix(zs)
    w = mean_q + chol_q * z
    cov_q = chol_q * chol_q.T
    if verify_substitution:
        # q(w(z)) |det L| must equal the standard normal density of z
        log_q_z = mvn_logpdf(w, mean_q, cov_q) + sp.log(chol_q.det())
        log_std = sum(-(zi**2) / 2 for zi in zs) - sp.Rational(p, 2) * sp.log(2 * sp.pi)
        resid = sp.simplify(sp.expand_log(log_q_z - log_std, force=True))
        if resid != 0 and not (resid.has(sp.Float) and not resid.free_symbols - set(zs)
                               and all(abs(complex(sp.N(resid.subs({zi: v for zi in zs})))) < 1e-9
                                       for v in (0, 1, -2))):
            # exact inputs must give exactly 0; float inputs may leave rounding residue
            raise AssertionError("change of variables w = mean_q + L z did not give a standard normal")
    ratio = sp.expand(sp.expand_log(mvn_logpdf(w, mean_q, cov_q) - mvn_logpdf(w, mean_p, cov_p), force=True))
    poly = sp.Poly(ratio, *zs)
    total = sp.Integer(0)
    for powers, coeff in poly.terms():
        moment = sp.Integer(1)
        for e in powers:
            moment *= _std_normal_moment(int(e))
        total += coeff * moment
    return total


def phi(x: sp.Expr) -> sp.Expr:
    r""":math:`\varphi(x) = x - 1 - \log x` (theory.md §1).

    Args:
        x: a sympy expression.

    Returns:
        :math:`\varphi(x)`.
    """
    return x - 1 - sp.log(x)


def matrix_normal_kl_closed_form(m_s: sp.Matrix, sigma_s: sp.Matrix, m_t: sp.Matrix, sigma_t: sp.Matrix) -> sp.Expr:
    r"""Closed form of theory.md §3.3.

    .. math::
        K = \tfrac12 \operatorname{tr}(\Delta \Sigma_T^{-1} \Delta^\top)
        + \tfrac k2 \bigl[\operatorname{tr}(\Sigma_T^{-1}\Sigma_S) - d - \log\det(\Sigma_T^{-1}\Sigma_S)\bigr],
        \qquad \Delta = M_S - M_T.

    Args:
        m_s: :math:`M_S` (:math:`k \times d`).
        sigma_s: :math:`\Sigma_S`.
        m_t: :math:`M_T`.
        sigma_t: :math:`\Sigma_T`.

    Returns:
        :math:`K` as a sympy expression.
    """
    k, d = m_t.shape
    delta = m_s - m_t
    st_inv = sigma_t.inv()
    prod = st_inv * sigma_s
    return HALF * (delta * st_inv * delta.T).trace() + sp.Rational(k, 2) * (
        prod.trace() - d - sp.log(prod.det())
    )


def _numeric_witness(expr: sp.Expr, trials: int = 3) -> bool:
    """True if ``expr`` is visibly nonzero at a point (positive symbols in [1, 2], other real
    symbols in [-0.3, 0.3], which keeps the small symbolic covariances positive definite)."""
    rng = random.Random(0)
    syms = sorted(expr.free_symbols, key=lambda x: x.name)
    for _ in range(trials):
        point = {x: sp.Rational(rng.randint(100, 200), 100) if x.is_positive
                 else sp.Rational(rng.randint(-30, 30), 100) for x in syms}
        try:
            val = complex(sp.N(expr.subs(point), 30))
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if cmath.isfinite(val) and abs(val) > 1e-12:
            return True
    return False


def _is_zero(expr: sp.Expr) -> bool:
    """Symbolic zero test: a cheap numeric witness of non-zeroness first, then ``simplify``."""
    if _numeric_witness(expr):
        return False
    e = sp.expand_log(sp.expand(expr), force=True)
    if sp.simplify(e) == 0:
        return True
    return sp.simplify(sp.together(sp.expand(e))) == 0


def _lower_cholesky_symbols(d: int, prefix: str) -> sp.Matrix:
    return sp.Matrix(
        d,
        d,
        lambda i, j: sp.Symbol(f"{prefix}{i}{j}", positive=True)
        if i == j
        else (sp.Symbol(f"{prefix}{i}{j}", real=True) if i > j else sp.Integer(0)),
    )


def kl_expressions(k: int, d: int, *, diagonal: bool = False) -> tuple[sp.Expr, sp.Expr]:
    r"""``(derived, closed)``: :math:`\mathrm{KL}(q_S \Vert q_T)` from the densities of :math:`\operatorname{vec} W` and by §3.3.

    Student :math:`\mathcal{MN}(M_S, I_k, L L^\top)` with a general symbolic lower-triangular
    :math:`L` (or diagonal), teacher :math:`\mathcal{MN}(M_T, I_k, \Sigma_T)` with a general symmetric
    symbolic :math:`\Sigma_T` (or diagonal), all means symbolic (symbols ``ms{i}{j}``, ``mt{i}{j}``,
    ``ls{i}{j}``, ``st{i}{j}``). :math:`kd \le 4` keeps it to a few seconds.

    Args:
        k: number of outputs.
        d: input dimension.
        diagonal: use diagonal :math:`L` and :math:`\Sigma_T`.

    Returns:
        ``(derived, closed)`` sympy expressions.

    Raises:
        TypeError: ``k`` or ``d`` not ints.
        ValueError: ``k`` or ``d`` below 1.
    """
    if isinstance(k, bool) or isinstance(d, bool) or not isinstance(k, int) or not isinstance(d, int):
        raise TypeError("k and d must be ints")
    if k < 1 or d < 1:
        raise ValueError("k and d must be >= 1")
    m_s = sp.Matrix(k, d, lambda i, j: sp.Symbol(f"ms{i}{j}", real=True))
    m_t = sp.Matrix(k, d, lambda i, j: sp.Symbol(f"mt{i}{j}", real=True))
    if diagonal:
        l_s = sp.diag(*[sp.Symbol(f"ls{i}{i}", positive=True) for i in range(d)])
        sigma_t = sp.diag(*[sp.Symbol(f"st{i}{i}", positive=True) for i in range(d)])
    else:
        l_s = _lower_cholesky_symbols(d, "ls")
        sigma_t = sp.Matrix(
            d,
            d,
            lambda i, j: sp.Symbol(f"st{min(i, j)}{max(i, j)}", positive=True if i == j else None, real=True),
        )
    sigma_s = l_s * l_s.T
    mean_q, chol_q = vec(m_s), sp.kronecker_product(l_s, sp.eye(k))
    mean_p, cov_p = vec_matrix_normal(m_t, sigma_t)
    derived = gaussian_kl_from_densities(mean_q, chol_q, mean_p, cov_p)
    closed = matrix_normal_kl_closed_form(m_s, sigma_s, m_t, sigma_t)
    return derived, closed


def check_closed_form(k: int, d: int, *, diagonal: bool = False) -> bool:
    """Whether the KL derived from the densities equals the closed form of theory.md §3.3.

    Args:
        k: number of outputs.
        d: input dimension.
        diagonal: as in :func:`kl_expressions`.

    Returns:
        True iff the two expressions are equal.
    """
    derived, closed = kl_expressions(k, d, diagonal=diagonal)
    return _is_zero(derived - closed)


def decomposition_2x2() -> dict[str, sp.Expr]:
    r"""The §3.4 terms for a 2x2 rank-1 example, all symbolic.

    Teacher :math:`M_T = \operatorname{diag}(a\sqrt{\sigma_1}, b\sqrt{\sigma_2})`,
    :math:`\Sigma_T = \operatorname{diag}(\sigma_1, \sigma_2)` with :math:`a = b + \delta`
    (:math:`b, \delta > 0`, so :math:`a > b > 0` are the whitened singular values :math:`s_1, s_2` of
    :math:`M_T \Sigma_T^{-1/2} = \operatorname{diag}(a, b)`); student
    :math:`M_S = \operatorname{diag}(c\sqrt{\sigma_1}, 0)` (rank 1, c real),
    :math:`\Sigma_S = \operatorname{diag}(u_1, u_2)`; :math:`k = d = 2`, :math:`r = 1`.

    Returns:
        ``K`` (derived from the densities), ``K_closed`` (the closed form),
        ``R`` :math:`= \tfrac12 \sum_{i>1} s_i^2` (from the eigenvalues of
        :math:`M_T \Sigma_T^{-1} M_T^\top`), ``V`` :math:`= \tfrac k2 \sum_i \varphi(\mu_i)`
        (:math:`\mu_i` the eigenvalues of :math:`\Sigma_T^{-1}\Sigma_S`), ``mean_term``
        :math:`= \tfrac12 \lVert (M_S - M_T)\Sigma_T^{-1/2}\rVert_F^2` and ``B = mean_term - R``.
    """
    b, delta, c = sp.Symbol("b", positive=True), sp.Symbol("delta", positive=True), sp.Symbol("c", real=True)
    s1, s2 = sp.symbols("sigma1 sigma2", positive=True)
    u1, u2 = sp.symbols("u1 u2", positive=True)
    a = b + delta
    sigma_t = sp.diag(s1, s2)
    sigma_t_inv_half = sp.diag(1 / sp.sqrt(s1), 1 / sp.sqrt(s2))
    m_t = sp.diag(a * sp.sqrt(s1), b * sp.sqrt(s2))
    m_s = sp.diag(c * sp.sqrt(s1), 0)
    sigma_s = sp.diag(u1, u2)
    k = m_t.shape[0]
    # rank bottleneck from the eigenvalues s_i^2 of M_T Σ_T^{-1} M_T^T, sorted descending
    s_sq = sorted(
        (ev for ev, mult in (m_t * sigma_t.inv() * m_t.T).eigenvals().items() for _ in range(mult)),
        key=lambda e: float(e.subs({b: 1, delta: 1, s1: 1, s2: 1})),
        reverse=True,
    )
    # the sort uses one numeric point; a > b for every admissible point since delta > 0
    assert sp.simplify(s_sq[0] - s_sq[1] - (a**2 - b**2)) == 0
    r = 1
    rank_term = HALF * sum(s_sq[r:])
    mus = [ev for ev, mult in (sigma_t.inv() * sigma_s).eigenvals().items() for _ in range(mult)]
    variance = sp.Rational(k, 2) * sum(phi(mu) for mu in mus)
    mean_term = HALF * ((m_s - m_t) * sigma_t_inv_half * ((m_s - m_t) * sigma_t_inv_half).T).trace()
    bias = mean_term - rank_term
    chol_s = sp.diag(sp.sqrt(u1), sp.sqrt(u2))
    mean_q, chol_q = vec(m_s), sp.kronecker_product(chol_s, sp.eye(k))
    mean_p, cov_p = vec_matrix_normal(m_t, sigma_t)
    derived = gaussian_kl_from_densities(mean_q, chol_q, mean_p, cov_p)
    return {
        "K": derived,
        "K_closed": matrix_normal_kl_closed_form(m_s, sigma_s, m_t, sigma_t),
        "B": bias,
        "R": rank_term,
        "V": variance,
        "mean_term": mean_term,
        "a": a,
        "b": b,
        "c": c,
    }


def check_decomposition_2x2() -> bool:
    r"""Check the §3.4 decomposition on :func:`decomposition_2x2`.

    .. math::
        K_{\text{densities}} = K_{\text{closed}} = B + R + V, \quad R = b^2/2, \quad
        B = (c - a)^2/2 \ge 0, \quad V = \sum_i \varphi(u_i/\sigma_i)

    (:math:`k = 2`; :math:`B = 0` exactly at the KL-optimal truncation :math:`c = a`).

    Returns:
        True iff every identity holds symbolically.
    """
    t = decomposition_2x2()
    a, b, c = t["a"], t["b"], t["c"]
    s1, s2 = sp.symbols("sigma1 sigma2", positive=True)
    u1, u2 = sp.symbols("u1 u2", positive=True)
    checks = [
        _is_zero(t["K"] - t["K_closed"]),
        _is_zero(t["K"] - (t["B"] + t["R"] + t["V"])),
        _is_zero(t["R"] - b**2 / 2),
        _is_zero(t["B"] - (c - a) ** 2 / 2),
        _is_zero(t["V"] - (phi(u1 / s1) + phi(u2 / s2))),
    ]
    return all(checks)
