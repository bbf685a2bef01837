r"""Seed-level statistics: two groups of per-seed values compared (numpy/scipy, no torch).

:func:`compare_groups`: Welch's t-test, Mann–Whitney U, Cohen's d, Hedges' g, common-language effect
size, rank-biserial correlation and the Welch CI of the mean difference; :func:`holm_adjust`:
Holm–Bonferroni step-down adjusted p-values; :func:`mean_interval`: the mean of independent replicates
with its Student-t interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Sequence

import numpy as np

from ._io import with_reasons
from ._records import Estimate

__all__ = ["GroupComparison", "clopper_pearson", "compare_groups", "holm_adjust", "mean_interval"]


# --------------------------------------------------------------------------------------------
# Seed-level statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupComparison:
    r"""Group ``a`` vs group ``b`` (e.g. KD vs a control), one value per seed.

    With means :math:`\bar a, \bar b`, sample sds :math:`s_a, s_b` (``ddof=1``) and
    :math:`\nu = n_a + n_b - 2`:

    .. math::
        \mathrm{diff} &= \bar a - \bar b, \qquad
        \mathrm{se} = \sqrt{s_a^2/n_a + s_b^2/n_b}, \qquad t = \mathrm{diff}/\mathrm{se},\\
        \mathrm{df} &= \frac{\mathrm{se}^4}{(s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1)}, \qquad
        \mathrm{CI} = \mathrm{diff} \pm t_{\mathrm{df}}\,\mathrm{se},\\
        d &= \frac{\mathrm{diff}}{s_p}, \quad s_p^2 = \frac{(n_a-1)s_a^2 + (n_b-1)s_b^2}{\nu}, \qquad
        g = J d, \quad J = \frac{\Gamma(\nu/2)}{\sqrt{\nu/2}\,\Gamma((\nu-1)/2)},\\
        \mathrm{CLES} &= P(A > B) + \tfrac12 P(A = B) = \frac{U}{n_a n_b}, \qquad r = 2\,\mathrm{CLES} - 1,

    (Welch's t and df, Cohen's d, Hedges' g with the exact J, the common-language effect size and
    the rank-biserial correlation). Mann-Whitney ``U`` is the statistic of sample ``a`` (scipy).
    ``note`` explains degenerate cases (zero variance in both groups).
    """

    name_a: str
    name_b: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    ci: float
    welch_t: float
    welch_df: float
    welch_p: float
    mwu_u: float
    mwu_p: float
    cohens_d: float
    hedges_g: float
    cles: float
    rank_biserial: float
    metric: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The record as strict JSON: a non-finite statistic is ``null`` with a ``*_reason`` field.

        Returns:
            ``{field: value}``; e.g. ``welch_t = +inf`` (both groups constant and different) is
            written ``"welch_t": null, "welch_t_reason": "+inf: zero variance in both groups"``.
        """
        return with_reasons({f.name: getattr(self, f.name) for f in fields(self)}, why=self.note)

    def __str__(self) -> str:
        head = f"{self.metric}: " if self.metric else ""
        return (
            f"{head}{self.name_a} {self.mean_a:.4g}±{self.sd_a:.2g} (n={self.n_a}) vs {self.name_b} "
            f"{self.mean_b:.4g}±{self.sd_b:.2g} (n={self.n_b}); diff {self.diff:+.4g} "
            f"[{self.diff_ci_low:+.4g}, {self.diff_ci_high:+.4g}]; Welch t={self.welch_t:.3g} df={self.welch_df:.3g} "
            f"p={self.welch_p:.3g}; MWU U={self.mwu_u:g} p={self.mwu_p:.3g}; g={self.hedges_g:.3g}; "
            f"CLES={self.cles:.3g}" + (f" [{self.note}]" if self.note else "")
        )


def _seed_values(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor (without importing torch)
        x = x.detach().cpu().numpy()
    try:
        v = np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise TypeError(f"group {name!r} must be a sequence of numbers (one per seed): {e}") from None
    if not np.all(np.isfinite(v)):
        raise ValueError(f"group {name!r} contains NaN or infinite values; drop the undefined seeds first")
    if v.size < 2:
        raise ValueError(
            f"group {name!r} has {v.size} seed(s); the seed-level tests (Welch's t, Mann–Whitney U) need "
            "at least 2 seeds per group — run more seeds"
        )
    return v


def _hedges_j(dof: float) -> float:
    from scipy.special import gammaln

    return math.exp(gammaln(dof / 2) - gammaln((dof - 1) / 2)) / math.sqrt(dof / 2)


def compare_groups(
    a: Any,
    b: Any,
    names: Sequence[str] = ("a", "b"),
    *,
    ci: float = 0.95,
    alternative: str = "two-sided",
    metric: str = "",
) -> GroupComparison:
    r"""Compare per-seed values of two groups (Welch's t, Mann–Whitney U, effect sizes, CI of the difference).

    ``alternative`` applies to both tests (``"greater"``: group a larger); the CI of the difference
    is always two-sided at level ``ci``. Formulas: see :class:`GroupComparison`; the Welch statistic is

    .. math::
        t = \frac{\bar a - \bar b}{\sqrt{s_a^2/n_a + s_b^2/n_b}}, \qquad
        \nu = \frac{(s_a^2/n_a + s_b^2/n_b)^2}{\frac{(s_a^2/n_a)^2}{n_a - 1} + \frac{(s_b^2/n_b)^2}{n_b - 1}}.

    Args:
        a: per-seed values of the first group (sequence, numpy array or tensor).
        b: per-seed values of the second group.
        names: the two groups' names (used in messages and the record).
        ci: level of the confidence interval of ``mean_a - mean_b``, in (0, 1).
        alternative: ``"two-sided"``, ``"greater"`` or ``"less"``.
        metric: the metric's name, recorded in the result.

    Returns:
        A :class:`GroupComparison` (means, sds, difference with its CI, both tests, effect sizes).

    Raises:
        ValueError: fewer than 2 seeds in a group (the message names the group), NaN values, bad ``ci``.
    """
    from scipy import stats

    if len(names) != 2:
        raise ValueError(f"names must hold the two group names, got {names!r}")
    na_, nb_ = str(names[0]), str(names[1])
    if not (0.0 < float(ci) < 1.0):
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    va, vb = _seed_values(a, na_), _seed_values(b, nb_)
    n_a, n_b = va.size, vb.size
    ma, mb = float(va.mean()), float(vb.mean())
    sa, sb = float(va.std(ddof=1)), float(vb.std(ddof=1))
    diff = ma - mb
    qa, qb = sa * sa / n_a, sb * sb / n_b
    se = math.sqrt(qa + qb)
    note = ""
    if se > 0:
        df = (qa + qb) ** 2 / (qa * qa / (n_a - 1) + qb * qb / (n_b - 1))
        t = diff / se
        # Same as scipy.stats.ttest_ind(equal_var=False) (tested), without its cancellation warnings.
        if alternative == "two-sided":
            p = float(2.0 * stats.t.sf(abs(t), df))
        elif alternative == "greater":
            p = float(stats.t.sf(t, df))
        else:
            p = float(stats.t.cdf(t, df))
        tq = float(stats.t.ppf(0.5 + ci / 2, df))
        lo, hi = diff - tq * se, diff + tq * se
    else:
        # Both groups constant: the t statistic is 0/0 or ±∞; report the limit explicitly.
        df = float(n_a + n_b - 2)
        note = "zero variance in both groups"
        if diff == 0:
            t, p = 0.0, 1.0
        else:
            t = math.copysign(math.inf, diff)
            p = 0.0 if alternative == "two-sided" or (alternative == "greater") == (diff > 0) else 1.0
        lo = hi = diff
    mw = stats.mannwhitneyu(va, vb, alternative=alternative, method="auto")
    u = float(mw.statistic)
    pooled = math.sqrt(((n_a - 1) * sa * sa + (n_b - 1) * sb * sb) / (n_a + n_b - 2))
    if pooled > 0:
        d = diff / pooled
    else:
        d = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    dof = n_a + n_b - 2
    g = d * _hedges_j(dof) if dof > 1 else d
    cles = u / (n_a * n_b)
    return GroupComparison(
        name_a=na_, name_b=nb_, n_a=n_a, n_b=n_b, mean_a=ma, mean_b=mb, sd_a=sa, sd_b=sb,
        diff=diff, diff_ci_low=float(lo), diff_ci_high=float(hi), ci=float(ci),
        welch_t=float(t), welch_df=float(df), welch_p=p, mwu_u=u, mwu_p=float(mw.pvalue),
        cohens_d=float(d), hedges_g=float(g), cles=float(cles), rank_biserial=float(2 * cles - 1),
        metric=metric, note=note,
    )


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    r"""Holm–Bonferroni step-down adjusted p-values, in the input order.

    .. math::
        \tilde p_{(i)} = \max_{j \le i} \min\bigl(1, (m - j + 1)\, p_{(j)}\bigr)

    with :math:`p_{(1)} \le \dots \le p_{(m)}` the sorted p-values.

    Args:
        pvalues: the m raw p-values, each in [0, 1] or NaN (a test that could not be computed: it
            stays NaN and still counts in m, which keeps the adjustment conservative).

    Returns:
        The adjusted p-values (``[]`` for no input).

    Raises:
        ValueError: a p-value outside [0, 1] (or infinite), or ``pvalues`` not one-dimensional.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues: expected a sequence of p-values, got shape {p.shape}")
    bad = np.flatnonzero(~np.isnan(p) & ((p < 0) | (p > 1)))
    if bad.size:
        raise ValueError(f"pvalues[{int(bad[0])}]: expected a p-value in [0, 1] (or NaN), got {p[bad[0]]!r}")
    m = p.size
    if m == 0:
        return []
    nan = np.isnan(p)
    order = np.argsort(np.where(nan, np.inf, p), kind="stable")
    adj = np.full(m, np.nan)
    running = 0.0
    for rank, i in enumerate(order):
        if nan[i]:
            continue
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()




def mean_interval(values: Sequence[float], level: float = 0.95, name: str = "values") -> Estimate:
    r"""The mean of independent replicates with its two-sided Student-t interval.

    .. math::
        \bar x \pm t_{(1 + \ell)/2,\; n - 1}\, s / \sqrt n, \qquad s^2 = \tfrac{1}{n-1} \sum_i (x_i - \bar x)^2

    Exact coverage ``level`` when the replicates are i.i.d. normal; the unit must be what is independent
    (a seed that redraws its split, its networks and its Monte Carlo draws — not seeds sharing one split).

    Args:
        values: one finite value per independent replicate.
        level: the interval's confidence level in (0, 1).
        name: the argument's name in error messages.

    Returns:
        :class:`~kdbounds._records.Estimate` with ``value`` the mean, ``stderr`` = :math:`s/\sqrt n` and the interval;
        with one replicate ``stderr`` is ``inf`` and the interval ``None`` (nothing to estimate it from).

    Raises:
        ValueError: no value, a non-finite value, or ``level`` outside (0, 1).
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name}: expected a non-empty sequence of numbers, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: expected finite values, got {x.tolist()}")
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level: expected a confidence level in (0, 1), got {level!r}")
    n, m = int(x.size), float(x.mean())
    if n < 2:
        return Estimate(m, math.inf, n)
    se = float(x.std(ddof=1) / math.sqrt(n))
    h = float(stats.t.ppf(0.5 + float(level) / 2.0, n - 1)) * se
    return Estimate(m, se, n, m - h, m + h, float(level))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    r"""The exact (Clopper–Pearson) two-sided interval of a binomial rate: ``k`` successes in ``n`` trials.

    .. math::
        \big[\,B_{\alpha/2}(k,\, n-k+1),\; B_{1-\alpha/2}(k+1,\, n-k)\,\big],\qquad \alpha = 1 - \ell,

    with :math:`B_q(a, b)` the ``q``-quantile of the Beta law (the lower end 0 when ``k = 0``, the upper 1 when
    ``k = n``). Coverage at least ``level`` for every true rate.

    Args:
        k: successes, ``0 <= k <= n``.
        n: trials, ``>= 1``.
        level: the confidence level in (0, 1).

    Returns:
        ``(low, high)``.

    Raises:
        ValueError: ``n < 1``, ``k`` outside ``[0, n]`` or ``level`` outside (0, 1).
    """
    from scipy.stats import beta

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected an integer number of trials >= 1, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"k: expected an integer number of successes in [0, n={n}], got {k!r}")
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level: expected a confidence level in (0, 1), got {level!r}")
    a = 1.0 - float(level)
    lo = 0.0 if k == 0 else float(beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi
