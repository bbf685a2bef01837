"""PAC-Bayes certificate mathematics (theory.md §7): Bernoulli kl, its inverses, the bounds, the Gaussian KL.

Pure numpy/scipy; importing this module never loads torch.

The chained certificate of theory.md §7: with probability at least :math:`1-\\delta-\\delta'` over the
certification split :math:`D_S` (size :math:`n`) and the :math:`M` Monte Carlo weight draws,

.. math::

    L_\\mu(Q) \\le \\mathrm{kl}^{-1}\\!\\Big(\\mathrm{kl}^{-1}\\big(\\hat L_M, \\tfrac{\\ln(2/\\delta')}{M}\\big),
    \\ \\tfrac{K + \\ln(2\\sqrt{n}/(\\delta/J))}{n}\\Big), \\qquad K = \\mathrm{KL}(Q\\,\\|\\,P),

where :math:`J` is the size of the grid a prior scale was picked from (1 when it was fixed in advance).

References:
    M. Seeger (2002). PAC-Bayesian generalisation error bounds for Gaussian process classification. JMLR 3.
    A. Maurer (2004). A note on the PAC Bayesian theorem. arXiv:cs/0411099.
    J. Langford and R. Caruana (2001). (Not) bounding the true error. NIPS 14.
    M. Pérez-Ortiz, O. Rivasplata, J. Shawe-Taylor, Cs. Szepesvári (2021). Tighter risk certificates for
    neural networks. JMLR 22.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._checks import check_finite, check_int, check_nonnegative, check_open_unit, check_probability

__all__ = [
    "check_confidences",
    "kl_bernoulli",
    "kl_inverse_upper",
    "kl_inverse_lower",
    "pac_bayes_complexity",
    "pac_bayes_kl_bound",
    "mc_risk_upper",
    "test_set_bound",
    "pinsker_bound",
    "classic_bound",
    "quadratic_bound",
    "grid_delta",
    "GaussianKL",
    "diag_gaussian_kl",
    "CertificateBound",
    "compose_certificate",
]

_MAX_BISECTIONS = 70  # bisection on float bit patterns: 64 steps reach adjacent floats


# ----------------------------------------------------------------------------------------------- inputs
def _prob_array(name: str, value: Any) -> np.ndarray:
    """Float64 array with entries in [0, 1] (NaN refused), or a clear error naming ``name``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number or array of numbers in [0, 1], got {type(value).__name__}") from None
    bad = ~((arr >= 0.0) & (arr <= 1.0))  # also catches NaN
    if np.any(bad):
        first = arr[bad].ravel()[0]
        raise ValueError(f"{name}: expected values in [0, 1], got {first!r} ({int(bad.sum())} bad value(s))")
    return arr


def _nonneg_array(name: str, value: Any) -> np.ndarray:
    """Float64 array with finite entries >= 0, or a clear error naming ``name``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a number or array of finite numbers >= 0, got {type(value).__name__}") from None
    bad = ~(np.isfinite(arr) & (arr >= 0.0))
    if np.any(bad):
        first = arr[bad].ravel()[0]
        raise ValueError(f"{name}: expected finite values >= 0, got {first!r} ({int(bad.sum())} bad value(s))")
    return arr


def _out(arr: np.ndarray) -> float | np.ndarray:
    """A Python float for a 0-d result, else the array."""
    return float(arr) if arr.ndim == 0 else arr


# ------------------------------------------------------------------------------------------ Bernoulli kl
def _log(x: np.ndarray) -> np.ndarray:
    """ln x, through log1p(x - 1) above 1/2 (x - 1 is exact there), -inf at 0."""
    return np.where(x > 0.5, np.log1p(np.minimum(x, 1.0) - 1.0), np.log(x))


def _log_complement(x: np.ndarray) -> np.ndarray:
    """ln(1 - x), through log1p(-x) below 1/2 (keeps x < ε), -inf at 1."""
    return np.where(x < 0.5, np.log1p(-np.minimum(x, 0.5)), np.log(1.0 - x))


def _kl(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """kl(q||p) without cancellation near p = q.

    Near the diagonal (|p - q| < q/2 and < (1-q)/2), with t = p - q the linear terms of the two
    logarithms cancel exactly, leaving two nonnegative terms: kl = q g(t/q) + (1-q) g(-t/(1-q)),
    g(a) = a - ln(1+a) (accurate near a = 0). Elsewhere the plain formula with 0 ln 0 = 0, each
    logarithm taken through log1p where its argument is near 1 (so p below machine epsilon still counts
    in ln(1 - p)).
    """
    q, p = np.broadcast_arrays(np.asarray(q, dtype=np.float64), np.asarray(p, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(q == 0.0, 0.0, q * (_log(q) - _log(p)))
        t2 = np.where(q == 1.0, 0.0, (1.0 - q) * (_log_complement(q) - _log_complement(p)))
    out = np.array(t1 + t2, dtype=np.float64)
    t = p - q
    near = (np.abs(t) < 0.5 * q) & (np.abs(t) < 0.5 * (1.0 - q))
    if np.any(near):
        qn, tn = q[near], t[near]
        out[near] = qn * _phi_of_ratio(tn / qn) + (1.0 - qn) * _phi_of_ratio(-tn / (1.0 - qn))
    return out


def kl_bernoulli(q: Any, p: Any) -> float | np.ndarray:
    """Bernoulli relative entropy :math:`\\mathrm{kl}(q\\,\\|\\,p)`, vectorised with broadcasting.

    .. math::

        \\mathrm{kl}(q\\,\\|\\,p) = q \\ln\\frac{q}{p} + (1-q)\\ln\\frac{1-q}{1-p},

    with :math:`0 \\ln 0 = 0` and the value :math:`+\\infty` where :math:`p \\in \\{0, 1\\}` and :math:`q \\ne p`.

    Args:
        q: first Bernoulli parameter(s), in [0, 1].
        p: second Bernoulli parameter(s), in [0, 1].

    Returns:
        A float for scalar inputs, else an array of the broadcast shape.

    Raises:
        ValueError: an entry outside [0, 1] or NaN (the message names ``q`` or ``p``).
    """
    qa, pa = np.broadcast_arrays(_prob_array("q", q), _prob_array("p", p))
    return _out(_kl(qa, pa))


def _kl_inverse(q: Any, c: Any, upper: bool) -> float | np.ndarray:
    qa = _prob_array("q", q)
    ca = _nonneg_array("c", c)
    qa, ca = np.broadcast_arrays(qa, ca)
    qa = qa.astype(np.float64, copy=True) + 0.0  # -0.0 -> +0.0 (the bisection reads bit patterns)
    ca = ca.astype(np.float64, copy=True)
    # Bisection on the bit patterns of the floats (monotone for doubles >= 0), so the bracket reaches
    # adjacent floats in at most 64 steps whatever the magnitude of the answer.
    # invariant: kl(q || inner) <= c (inner starts at q, kl = 0); kl(q || outer) > c or outer is the end.
    inner = qa.view(np.int64).copy()
    outer = (np.ones_like(qa) if upper else np.zeros_like(qa)).view(np.int64).copy()
    for _ in range(_MAX_BISECTIONS):
        active = np.abs(outer - inner) > 1
        if not np.any(active):
            break
        mid = inner + (outer - inner) // 2
        ok = _kl(qa, mid.view(np.float64)) <= ca
        inner = np.where(active & ok, mid, inner)
        outer = np.where(active & ~ok, mid, outer)
    outer = outer.view(np.float64)
    # outer satisfies kl(q||outer) >= c (it is never inside the sublevel set): the conservative end,
    # unless the whole interval is inside (kl(q||end) <= c), in which case the end itself is the answer.
    res = outer.copy()
    end = 1.0 if upper else 0.0
    res = np.where(_kl(qa, np.full_like(qa, end)) <= ca, end, res)
    # exact cases: c = 0 -> q; q at the end -> the end; q at the other end has a closed form.
    if upper:
        res = np.where(qa == 0.0, -np.expm1(-ca), res)  # kl(0||p) = -ln(1-p)
    else:
        res = np.where(qa == 1.0, np.exp(-ca), res)  # kl(1||p) = -ln p
    res = np.where(ca == 0.0, qa, res)
    res = np.where(qa == end, end, res)
    return _out(res)


def kl_inverse_upper(q: Any, c: Any) -> float | np.ndarray:
    """Upper inverse of the Bernoulli kl: the largest :math:`p \\ge q` with :math:`\\mathrm{kl}(q\\|p) \\le c`.

    .. math::

        \\mathrm{kl}^{-1}(q, c) = \\sup\\{p \\in [q, 1] : \\mathrm{kl}(q\\,\\|\\,p) \\le c\\}.

    Vectorised bisection (on the floats' bit patterns) run to one ulp (the answer is the smallest float the bisection proved to lie
    outside the sublevel set, so it is never below the true supremum by more than rounding in kl); exact
    at :math:`c = 0` (returns q), :math:`q = 1` (returns 1) and :math:`q = 0` (returns
    :math:`1 - e^{-c}`). Inputs broadcast.

    Args:
        q: empirical risk(s) in [0, 1].
        c: complexity term(s), finite and >= 0.

    Returns:
        A float for scalar inputs, else an array of the broadcast shape, in [q, 1].

    Raises:
        ValueError: ``q`` outside [0, 1] or NaN; ``c`` negative, NaN or infinite.
    """
    return _kl_inverse(q, c, upper=True)


def kl_inverse_lower(q: Any, c: Any) -> float | np.ndarray:
    """Lower inverse of the Bernoulli kl: the smallest :math:`p \\le q` with :math:`\\mathrm{kl}(q\\|p) \\le c`.

    .. math::

        \\mathrm{kl}^{-1}_{\\mathrm{low}}(q, c) = \\inf\\{p \\in [0, q] : \\mathrm{kl}(q\\,\\|\\,p) \\le c\\}.

    Same algorithm as :func:`kl_inverse_upper`; exact at :math:`c = 0` (q), :math:`q = 0` (0) and
    :math:`q = 1` (:math:`e^{-c}`).

    Args:
        q: empirical risk(s) in [0, 1].
        c: complexity term(s), finite and >= 0.

    Returns:
        A float for scalar inputs, else an array of the broadcast shape, in [0, q].

    Raises:
        ValueError: ``q`` outside [0, 1] or NaN; ``c`` negative, NaN or infinite.
    """
    return _kl_inverse(q, c, upper=False)


# ------------------------------------------------------------------------------------------------ bounds
def check_confidences(delta: Any, delta_mc: Any) -> tuple[float, float]:
    r"""The two failure probabilities of a chained certificate: ``delta`` (PAC-Bayes step) and ``delta'`` (Monte
    Carlo step), each in ``(0, 1)``, with ``delta + delta' < 1`` (the certificate holds with probability
    ``1 - delta - delta'``). The one place this rule is checked.

    Args:
        delta: ``delta``.
        delta_mc: ``delta'``.

    Returns:
        ``(delta, delta')`` as floats.

    Raises:
        ValueError: either outside ``(0, 1)``, or ``delta + delta' >= 1`` (named ``delta_mc``).
    """
    d = check_open_unit("delta", delta)
    dmc = check_open_unit("delta_mc", delta_mc)
    if d + dmc >= 1.0:
        raise ValueError(f"delta_mc: expected delta + delta_mc < 1, got {d} + {dmc}")
    return d, dmc


def grid_delta(delta: float, n_grid: int) -> float:
    """Confidence level left to each member of a grid of J prior scales (union bound).

    .. math::

        \\delta_J = \\delta / J.

    A prior scale picked after seeing :math:`D_S` from J values fixed in advance is paid for by running
    every PAC-Bayes bound at :math:`\\delta/J` (theory.md §7; Pérez-Ortiz et al. 2021, §5).

    Args:
        delta: overall confidence parameter, in (0, 1).
        n_grid: J, the number of grid values (>= 1).

    Returns:
        :math:`\\delta/J`.

    Raises:
        ValueError: ``delta`` outside (0, 1) or ``n_grid`` < 1.
    """
    d = check_open_unit("delta", delta)
    j = check_int("n_grid", n_grid, minimum=1)
    return d / j


def pac_bayes_complexity(divergence: Any, n: int, delta: float) -> float | np.ndarray:
    """The right-hand side of the PAC-Bayes-kl inequality (Maurer 2004).

    .. math::

        c = \\frac{K + \\ln(2\\sqrt{n}/\\delta)}{n}.

    Args:
        divergence: K = KL(Q||P), finite and >= 0 (array-like allowed).
        n: number of examples the empirical risk averages (|D_S|), >= 1.
        delta: confidence parameter in (0, 1).

    Returns:
        c, a float for scalar ``divergence``, else an array.

    Raises:
        ValueError: ``divergence`` negative/NaN/inf, ``n`` < 1, ``delta`` outside (0, 1).
    """
    k = _nonneg_array("divergence", divergence)
    n = check_int("n", n, minimum=1)
    delta = check_open_unit("delta", delta)
    return _out((k + math.log(2.0 * math.sqrt(n) / delta)) / n)


def pac_bayes_kl_bound(empirical_risk: Any, divergence: Any, n: int, delta: float) -> float | np.ndarray:
    """PAC-Bayes-kl certified risk (Seeger 2002; Maurer 2004).

    For a loss in [0, 1], with probability at least :math:`1-\\delta` over an i.i.d. sample of size n,
    simultaneously for every posterior Q,

    .. math::

        L_\\mu(Q) \\le \\mathrm{kl}^{-1}\\Big(\\hat L_S(Q),\\ \\frac{\\mathrm{KL}(Q\\|P) + \\ln(2\\sqrt{n}/\\delta)}{n}\\Big).

    Args:
        empirical_risk: :math:`\\hat L_S(Q)` in [0, 1] (array-like allowed; broadcasts with ``divergence``).
        divergence: K = KL(Q||P), finite and >= 0.
        n: sample size |D_S| (not the full training set), >= 1.
        delta: confidence parameter in (0, 1) (already divided by J for a grid-picked prior scale).

    Returns:
        The certified risk, a float for scalar inputs.

    Raises:
        ValueError: an argument out of range (the message names it).
    """
    q = _prob_array("empirical_risk", empirical_risk)
    return kl_inverse_upper(q, pac_bayes_complexity(divergence, n, delta))


def mc_risk_upper(mc_risk: Any, n_draws: int, delta: float) -> float | np.ndarray:
    """Upper confidence limit on the empirical Gibbs risk from M weight draws (Langford & Caruana 2001).

    With probability at least :math:`1-\\delta'` over the M i.i.d. draws :math:`W_j \\sim Q` (each
    evaluated on the whole of :math:`D_S`),

    .. math::

        \\hat L_S(Q) \\le \\mathrm{kl}^{-1}\\Big(\\hat L_M,\\ \\frac{\\ln(2/\\delta')}{M}\\Big).

    Args:
        mc_risk: :math:`\\hat L_M`, the average loss over the draws, in [0, 1].
        n_draws: M >= 1.
        delta: :math:`\\delta'` in (0, 1).

    Returns:
        The upper limit, a float for scalar ``mc_risk``.

    Raises:
        ValueError: an argument out of range (the message names it).
    """
    q = _prob_array("mc_risk", mc_risk)
    m = check_int("n_draws", n_draws, minimum=1)
    d = check_open_unit("delta", delta)
    return kl_inverse_upper(q, math.log(2.0 / d) / m)


def test_set_bound(n_errors: int, n: int, delta: float) -> float:
    """Binomial test-set bound (Langford 2005): the exact upper confidence limit on one fixed classifier's risk.

    For a classifier chosen without the ``n`` held-out examples, the number of errors is
    :math:`\\mathrm{Bin}(n, L)`; with probability at least :math:`1-\\delta`,

    .. math::

        L \\le \\bar p = \\max\\{p : \\Pr_{k' \\sim \\mathrm{Bin}(n, p)}[k' \\le k] \\ge \\delta\\}
        = \\mathrm{Beta}^{-1}(1-\\delta;\\, k+1,\\, n-k) \\ \\ (k < n), \\qquad \\bar p = 1 \\ \\ (k = n),

    the one-sided Clopper–Pearson limit. It is never above the Chernoff form
    :math:`\\mathrm{kl}^{-1}(k/n, \\ln(1/\\delta)/n)`. This is what a plain held-out bound gives, with no
    PAC-Bayes step: the comparator of a certificate whose prior was learnt without ``D_S``.

    Args:
        n_errors: k, the errors on the held-out set (0 <= k <= n).
        n: the held-out set's size, >= 1.
        delta: :math:`\\delta` in (0, 1).

    Returns:
        The upper limit in [k/n, 1].

    Raises:
        ValueError: an argument out of range (the message names it).
    """
    from scipy.stats import beta

    n = check_int("n", n, minimum=1)
    k = check_int("n_errors", n_errors, minimum=0)
    if k > n:
        raise ValueError(f"n_errors: expected at most n = {n} errors, got {k}")
    d = check_open_unit("delta", delta)
    if k == n:
        return 1.0
    return float(max(k / n, beta.ppf(1.0 - d, k + 1, n - k)))


def pinsker_bound(empirical_risk: Any, complexity: Any) -> float | np.ndarray:
    """Pinsker relaxation of :math:`\\mathrm{kl}^{-1}(q, c)` (looser; for comparison only).

    Since :math:`\\mathrm{kl}(q\\|p) \\ge 2(p-q)^2`,

    .. math::

        \\mathrm{kl}^{-1}(q, c) \\le q + \\sqrt{c/2}.

    Not clipped to 1, so a vacuous relaxation shows as a value above 1.

    Args:
        empirical_risk: q in [0, 1].
        complexity: c, finite and >= 0.

    Returns:
        :math:`q + \\sqrt{c/2}` (float for scalar inputs).

    Raises:
        ValueError: an argument out of range (the message names it).
    """
    q = _prob_array("empirical_risk", empirical_risk)
    c = _nonneg_array("complexity", complexity)
    return _out(q + np.sqrt(c / 2.0))


def classic_bound(empirical_risk: Any, divergence: Any, n: int, delta: float) -> float | np.ndarray:
    """McAllester-style "classic" PAC-Bayes bound (PBB's ``fclassic``; Pérez-Ortiz et al. 2021, eq. 6).

    The Pinsker relaxation of :func:`pac_bayes_kl_bound`:

    .. math::

        L_\\mu(Q) \\le \\hat L_S(Q) + \\sqrt{\\frac{\\mathrm{KL}(Q\\|P) + \\ln(2\\sqrt{n}/\\delta)}{2n}}.

    Args:
        empirical_risk: :math:`\\hat L_S(Q)` in [0, 1].
        divergence: K >= 0, finite.
        n: |D_S| >= 1.
        delta: confidence parameter in (0, 1).

    Returns:
        The (unclipped) bound, a float for scalar inputs.

    Raises:
        ValueError: an argument out of range (the message names it).
    """
    return pinsker_bound(empirical_risk, pac_bayes_complexity(divergence, n, delta))


def quadratic_bound(empirical_risk: Any, complexity: Any) -> float | np.ndarray:
    """The "quad" relaxation of :math:`\\mathrm{kl}^{-1}(q, c)` (PBB's ``fquad``; Pérez-Ortiz et al. 2021).

    From :math:`\\mathrm{kl}(q\\|p) \\ge (p-q)^2/(2p)` for :math:`p \\ge q`,

    .. math::

        \\mathrm{kl}^{-1}(q, c) \\le \\Big(\\sqrt{q + c/2} + \\sqrt{c/2}\\Big)^2.

    Args:
        empirical_risk: q in [0, 1].
        complexity: c, finite and >= 0.

    Returns:
        The (unclipped) relaxation, a float for scalar inputs.

    Raises:
        ValueError: an argument out of range (the message names it).
    """
    q = _prob_array("empirical_risk", empirical_risk)
    c = _nonneg_array("complexity", complexity)
    return _out((np.sqrt(q + c / 2.0) + np.sqrt(c / 2.0)) ** 2)


# ------------------------------------------------------------------------------------- Gaussian KL
@dataclass(frozen=True)
class GaussianKL:
    """KL divergence between two diagonal Gaussians, split as in theory.md §7.

    Attributes:
        total: ``mean_term + variance_term``.
        mean_term: :math:`\\tfrac12\\sum_i (m_{Q,i} - m_{P,i})^2 / v_{P,i}`.
        variance_term: :math:`\\tfrac12\\sum_i \\varphi(v_{Q,i}/v_{P,i})`, :math:`\\varphi(x) = x - 1 - \\ln x`.
    """

    total: float
    mean_term: float
    variance_term: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict of the three floats."""
        return asdict(self)


_PHI_SERIES_CUTOFF = 0.1
_PHI_SERIES_TERMS = 24


def _phi_of_ratio(u: np.ndarray) -> np.ndarray:
    """:math:`\\varphi(1+u) = u - \\ln(1+u)`, accurate to a few ulps relative also near u = 0.

    For |u| < 0.1 the alternating series :math:`\\sum_{k\\ge2} (-1)^k u^k / k` (24 terms, truncation
    below 1e-20 relative); elsewhere ``u - log1p(u)`` (cancellation costs at most ~2ε/|u| relative).
    """
    with np.errstate(divide="ignore"):
        out = u - np.log1p(u)  # u = -1 -> +inf
    small = np.abs(u) < _PHI_SERIES_CUTOFF
    if np.any(small):
        us = u[small]
        acc = np.zeros_like(us)
        for k in range(_PHI_SERIES_TERMS + 1, 1, -1):  # Horner in u: sum_{k>=2} (-1)^k u^k / k
            acc = acc * us + ((-1.0) ** k) / k
        out[small] = acc * us * us
    return out


def _float_array(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor (torch itself is not imported)
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected an array of real numbers, got {type(value).__name__}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite entries, got {int(np.sum(~np.isfinite(arr)))} non-finite value(s)")
    return arr


def diag_gaussian_kl(mean_q: Any, var_q: Any, mean_p: Any, var_p: Any) -> GaussianKL:
    """:math:`\\mathrm{KL}(Q\\|P)` for :math:`Q = N(m_Q, \\mathrm{diag}\\, v_Q)`, :math:`P = N(m_P, \\mathrm{diag}\\, v_P)`.

    .. math::

        \\mathrm{KL}(Q\\|P) = \\underbrace{\\tfrac12 \\sum_i \\frac{(m_{Q,i}-m_{P,i})^2}{v_{P,i}}}_{\\text{mean term}}
        + \\underbrace{\\tfrac12 \\sum_i \\varphi\\big(v_{Q,i}/v_{P,i}\\big)}_{\\text{variance term}},
        \\qquad \\varphi(x) = x - 1 - \\ln x \\ge 0.

    Accumulated in float64 (numpy pairwise summation); :math:`\\varphi` is evaluated stably near
    :math:`x = 1` from :math:`u = (v_Q - v_P)/v_P`. Torch tensors (any device, with or without grad)
    are accepted and copied to float64 numpy arrays; the result carries no gradient.

    Args:
        mean_q: posterior mean, array-like of any shape.
        var_q: posterior variances: same shape as the means, or a scalar (isotropic).
        mean_p: prior mean, same shape as ``mean_q``.
        var_p: prior variances: same shape as the means, or a scalar.

    Returns:
        :class:`GaussianKL` with float ``total``, ``mean_term``, ``variance_term``.

    Raises:
        ValueError: means of different shapes, a variance array of another shape, non-finite entries,
            or a variance <= 0 (the message names the argument).
    """
    mq = _float_array("mean_q", mean_q)
    mp = _float_array("mean_p", mean_p)
    if mq.shape != mp.shape:
        raise ValueError(f"mean_p: expected the shape of mean_q {mq.shape}, got {mp.shape}")
    if mq.size == 0:
        raise ValueError("mean_q: expected at least one parameter, got an empty array")
    variances = []
    for name, v in (("var_q", var_q), ("var_p", var_p)):
        va = _float_array(name, v)
        if va.ndim != 0 and va.shape != mq.shape:
            raise ValueError(f"{name}: expected a scalar or the shape of the means {mq.shape}, got {va.shape}")
        if np.any(va <= 0):
            raise ValueError(f"{name}: expected variances > 0, got minimum {float(va.min())!r}")
        variances.append(np.broadcast_to(va, mq.shape))
    vq, vp = variances
    mean_term = 0.5 * float(np.sum((mq - mp) ** 2 / vp))
    u = (vq - vp) / vp
    variance_term = 0.5 * float(np.sum(_phi_of_ratio(np.array(u, dtype=np.float64))))
    if not (math.isfinite(mean_term) and math.isfinite(variance_term)):
        raise ValueError(
            "var_p: the KL overflowed float64 (mean or variance ratios too extreme); "
            f"got mean_term={mean_term!r}, variance_term={variance_term!r}"
        )
    return GaussianKL(total=mean_term + variance_term, mean_term=mean_term, variance_term=variance_term)


# -------------------------------------------------------------------------------------- certificate
@dataclass(frozen=True)
class CertificateBound:
    """The chained certificate of theory.md §7 with its inputs and relaxations.

    Holds with probability at least ``1 - delta - delta_mc`` (``confidence``).

    Attributes:
        mc_risk: :math:`\\hat L_M`, the Monte Carlo empirical Gibbs risk on D_S.
        n_draws: M, the number of weight draws.
        divergence: K = KL(Q||P).
        n: |D_S|.
        delta: delta of the PAC-Bayes step (before the grid correction).
        delta_mc: delta' of the Monte Carlo step.
        n_grid: J, the number of prior scales the prior was picked from.
        trivial: the risk of a trivial predictor (``vacuous`` compares against it).
        delta_pac: delta/J, the level the PAC-Bayes step is run at.
        n_grid_mc: J', the number of certificates a reported minimum is taken over (1: none).
        delta_mc_each: delta'/J', the level the Monte Carlo step is run at.
        mc_complexity: ln(2J'/delta')/M.
        complexity: (K + ln(2sqrtn/(delta/J)))/n.
        empirical_risk_upper: kl^-1(L_hat_M, ln(2J'/delta')/M).
        risk_upper: the certificate kl^-1(empirical_risk_upper, complexity).
        pinsker_risk_upper: both steps relaxed by Pinsker: L_hat_M + sqrt(ln(2J'/delta')/(2M)) + sqrt(complexity/2).
        classic_risk_upper: McAllester-style bound on the kl-certified empirical risk:
            empirical_risk_upper + sqrt(complexity/2).
        confidence: 1 - delta - delta' (for the minimum over the J' certificates too: each runs its Monte Carlo
            step at delta'/J').
        vacuous: ``risk_upper >= trivial``.
    """

    mc_risk: float
    n_draws: int
    divergence: float
    n: int
    delta: float
    delta_mc: float
    n_grid: int
    trivial: float
    delta_pac: float
    mc_complexity: float
    complexity: float
    empirical_risk_upper: float
    risk_upper: float
    pinsker_risk_upper: float
    classic_risk_upper: float
    confidence: float
    vacuous: bool
    n_grid_mc: int = 1
    delta_mc_each: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field."""
        return asdict(self)


def compose_certificate(
    mc_risk: float,
    n_draws: int,
    divergence: float,
    n: int,
    delta: float,
    delta_mc: float,
    n_grid: int = 1,
    trivial: float = 1.0,
    n_grid_mc: int = 1,
) -> CertificateBound:
    """The certificate of theory.md §7: Monte Carlo upper limit at delta'/J', then PAC-Bayes-kl at delta/J.

    With probability at least :math:`1-\\delta-\\delta'`,

    .. math::

        L_\\mu(Q) \\le \\mathrm{kl}^{-1}\\!\\Big(\\mathrm{kl}^{-1}\\big(\\hat L_M, \\tfrac{\\ln(2J'/\\delta')}{M}\\big),
        \\ \\tfrac{K + \\ln(2\\sqrt{n}\\,J/\\delta)}{n}\\Big)

    (Langford & Caruana 2001 for the inner step; Seeger 2002, Maurer 2004 for the outer one; the
    composition as in Pérez-Ortiz et al. 2021). ``J' = 1`` for a certificate reported on its own; each of
    ``J'`` certificates whose minimum is reported pays ``J'``, so the minimum holds at the same ``1 - delta - delta'``.

    Args:
        mc_risk: :math:`\\hat L_M` in [0, 1].
        n_draws: M >= 1.
        divergence: K = KL(Q||P), finite and >= 0.
        n: |D_S| >= 1 (the certification split, never the full training set).
        delta: delta in (0, 1).
        delta_mc: delta' in (0, 1); delta + delta' < 1.
        n_grid: J >= 1 (1 when the prior scale was fixed before D_S was used).
        trivial: the risk level at or above which the certificate is called vacuous, in (0, 1]
            (1.0 by default; 0.9 for a ten-class 0–1 loss).
        n_grid_mc: J' >= 1, the number of certificates (each with its own Monte Carlo draws) whose minimum
            is reported: each Monte Carlo step then runs at delta'/J', so the minimum holds with probability
            at least 1 - delta - delta' (union bound). 1 when this certificate is reported on its own (a prior
            scale selected on other draws needs no correction here).

    Returns:
        :class:`CertificateBound`.

    Raises:
        ValueError: an argument out of range, NaN or infinite (the message names it).
    """
    q = check_probability("mc_risk", mc_risk)
    m = check_int("n_draws", n_draws, minimum=1)
    k = check_nonnegative("divergence", divergence)
    n = check_int("n", n, minimum=1)
    d, dmc = check_confidences(delta, delta_mc)
    j = check_int("n_grid", n_grid, minimum=1)
    j_mc = check_int("n_grid_mc", n_grid_mc, minimum=1)
    triv = check_finite("trivial", trivial)
    if not 0.0 < triv <= 1.0:
        raise ValueError(f"trivial: expected a number in (0, 1], got {trivial!r}")
    d_pac = grid_delta(d, j)
    d_mc = grid_delta(dmc, j_mc)
    c_mc = math.log(2.0 / d_mc) / m
    c = float(pac_bayes_complexity(k, n, d_pac))
    emp_up = float(mc_risk_upper(q, m, d_mc))
    risk = float(kl_inverse_upper(emp_up, c))
    pinsker = q + math.sqrt(c_mc / 2.0) + math.sqrt(c / 2.0)
    classic = emp_up + math.sqrt(c / 2.0)
    return CertificateBound(
        mc_risk=q,
        n_draws=m,
        divergence=k,
        n=n,
        delta=d,
        delta_mc=dmc,
        n_grid=j,
        trivial=triv,
        delta_pac=d_pac,
        mc_complexity=c_mc,
        complexity=c,
        empirical_risk_upper=emp_up,
        risk_upper=risk,
        pinsker_risk_upper=pinsker,
        classic_risk_upper=classic,
        confidence=1.0 - d - dmc,
        vacuous=bool(risk >= triv),
        n_grid_mc=j_mc,
        delta_mc_each=d_mc,
    )
