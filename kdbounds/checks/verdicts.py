r"""Check records and verdicts with uncertainty (theory.md §6, "Verdicts carry uncertainty").

A *check* compares a bound with the quantity it bounds. Every check is one :class:`CheckRecord`
with a ``kind`` saying what it is worth:

* ``"certificate"``   a bound whose hypotheses hold, about the population (theory.md §7);
* ``"demonstration"`` a bound whose hypotheses hold exactly, about the sample at hand
  (the Gibbs-classifier check; the quadratic-model Theorem 3B);
* ``"conditional"``   a valid bound *if* a named assumption holds (``assumption`` names it);
* ``"proxy"``         not an instance of any theorem; kept only as a named heuristic.

and a ``verdict`` in ``{"holds", "violated", "inconclusive", "not_defined"}``.

**Construction of the verdicts.** A check speaks about a true value ``d`` (observed side) and a
bound ``B``; ``side`` says which inequality: ``"abs"`` (``|d| <= B``), ``"upper"`` (``d <= B``) or
``"lower"`` (``d >= B``). The observed side is estimated by ``d̂`` with standard error ``SE``
(normal approximation). Each check carries two complementary one-sided hypotheses,

* ``H_fail``: the bound fails (``|d| > B`` for ``"abs"``); rejecting it gives "holds";
* ``H_ok``: the bound holds (``|d| <= B``); rejecting it gives "violated";

with p-values (``t = (B - |d̂|)/SE``, ``Phi`` the standard normal CDF)

.. math::
    p_{\mathrm{holds}} = \Phi(-t), \qquad
    p_{\mathrm{violated}} = \Phi(t) + \Phi\bigl(t - 2B/\mathrm{SE}\bigr)\ \ (\text{"abs"}),
    \qquad p_{\mathrm{violated}} = \Phi(t)\ \ (\text{"upper"/"lower"}).

(For ``"abs"`` the second term is the chance that ``d̂`` leaves ``[-B, B]`` on the far side, the
worst case being ``d = +-B``; it is negligible unless ``B ≲ SE``.) All ``2N`` one-sided hypotheses of
the ``N`` stochastic checks of a run form one family, tested at family-wise level ``alpha`` by a
step-down Holm procedure (:func:`holm_reject`). Because the two hypotheses of a check are
complementary, exactly ``N`` of the ``2N`` are true, so Shaffer's (1986) logically restricted Holm
procedure is valid under any dependence: at step ``j`` the threshold is
``alpha / min(N, 2N - j + 1)`` instead of Holm's ``alpha / (2N - j + 1)`` (``method="shaffer"``, the
default; ``method="holm"`` is plain Holm over the ``2N``). A check whose ``H_fail`` is rejected
"holds"; whose ``H_ok`` is rejected is "violated"; otherwise "inconclusive".

In z terms: with the default method every threshold of the first ``N + 1`` steps equals ``alpha/N``
(and at most ``N`` p-values, one per check, can be below ``alpha/N``: a check's two cannot both be),
so the step-down reduces to one threshold for every check, ``z = Phi^-1(1 - alpha/N)`` (recorded as
``z``): a check "holds" iff ``B_holds >= |d̂| + z*SE`` (``B_holds = bound_holds``, or ``B``) and is
"violated" iff ``p_violated <= alpha/N`` (for ``"upper"``/``"lower"``: ``B < d̂ - z*SE``; for ``"abs"``
the far-side term makes it a hair stricter). With plain Holm the
threshold depends on the rank (``z`` is then ``None``).

Checks whose observed side is exact (``SE = 0``: the Gibbs-classifier check, quadratic-model
gaps) and whose bound is a number are decided exactly (``B >= |d̂|`` → "holds", ``method="exact"``)
and are not part of the family. A record with ``bound = None`` is "not_defined" (with a ``reason``).

**Bounds with estimated inputs** (``K̂``, ``||H||_F^2``, a Ritz value) are an interval
``[bound_holds, bound]`` (ordered by how favourable they are to "holds"), not a number: each
verdict is decided with the end of the interval that is *unfavourable* to it. "holds" is tested
against ``bound_holds`` (an increasing upper bound at the *lower* confidence limit of ``K``; a lower
bound such as Theorem 2's at the upper limit), "violated" against ``bound`` (the other limit: the
bound that is valid at the inputs' confidence level). A verdict is then wrong only when its test
errs or the inputs' interval misses (its level is recorded in ``inputs``). Without estimated inputs
``bound_holds`` is ``None`` and both verdicts use ``bound``.

**Small Monte Carlo samples.** A check whose ``SE`` comes from ``M`` i.i.d. draws (the kernel-gap
checks) passes ``dof = M - 1``: its p-values use Student's t with ``M - 1`` degrees of freedom instead
of the normal (the normal quantile at 16 draws makes the family-wise error 0.21 instead of 0.05,
tests/checks/test_verdicts.py), and its recorded ``z`` is the t critical value.

An exact observed side with an interval-valued bound (the quadratic-model Theorem 3B, whose
``||H||_F^2`` is estimated) is decided outside the family by the two limits alone: "holds" iff
``|d| <= bound_holds``, "violated" iff ``|d| > bound``, else "inconclusive" (``method="input_limits"``,
not ``"exact"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri, stdtr, stdtrit

from .._checks import check_choice, check_finite, check_finite_array, check_int, check_nonnegative, check_open_unit
from .._io import to_jsonable

__all__ = [
    "KINDS",
    "VERDICTS",
    "SIDES",
    "CheckRecord",
    "make_record",
    "not_defined",
    "one_sided_pvalues",
    "critical_value",
    "holm_reject",
    "holm_adjust",
    "assign_verdicts",
    "verdict_counts",
]

KINDS = ("certificate", "demonstration", "conditional", "proxy")
VERDICTS = ("holds", "violated", "inconclusive", "not_defined")
SIDES = ("abs", "upper", "lower")


@dataclass(frozen=True)
class CheckRecord:
    """One bound next to the quantity it bounds, with its kind and verdict.

    Attributes:
        name: check name (``"gibbs_classifier"``, ``"thm3b_subgamma_mc"``, ...).
        kind: one of :data:`KINDS`.
        verdict: one of :data:`VERDICTS`.
        loss: the loss the gaps are measured with (``"zero_one"``, ``"clipped_ce"``, ``"gibbs_zero_one"``).
        side: ``"abs"`` (``|d| <= bound``), ``"upper"`` (``d <= bound``) or ``"lower"`` (``d >= bound``).
        bound: the bound (``None`` when not defined); when it has estimated inputs, evaluated at
            their confidence limits that make it valid (``K`` at its upper limit for an upper bound):
            the end of its interval that "violated" is tested against.
        observed: the estimate ``d̂`` of the bounded quantity (signed; for ``"abs"`` the verdict uses
            ``|d̂|``), ``None`` when not defined.
        observed_se: its standard error (0 when exact given the sample).
        assumptions_met: True only when every hypothesis of the theorem holds for this instance.
        assumption: text naming the assumption(s) (conditional / proxy kinds) or the instance.
        reason: why the check is not defined (``not_defined``), else ``None``.
        inputs: every input of the bound (``K``, ``sigma``, ``v``, ``c_plus``, ...), numbers or text.
        p_holds, p_violated: one-sided p-values of ``H_fail`` / ``H_ok`` (``None`` when exact or
            not defined).
        alpha: the run's family-wise level the verdict was taken at.
        family_size: number of stochastic checks ``N`` in the family (1 before
            :func:`assign_verdicts`).
        method: multiplicity method (``"shaffer"``, ``"holm"``; ``"exact"`` for exact checks;
            ``"input_limits"`` for an exact observed side against a bound with estimated inputs).
        teacher, student: labels of the pair (for counts over independent teachers).
        z: the critical value ``Phi^-1(1 - alpha/N)`` of the verdict (default method; Student's t
            quantile with ``dof`` degrees of freedom when ``dof`` is set), else ``None``.
        bound_holds: the bound at the other confidence limits of its estimated inputs (the end of its
            interval unfavourable to "holds", which "holds" is tested against); ``None`` when the bound
            has no estimated input (then ``bound`` serves both verdicts).
        dof: degrees of freedom of the t distribution of ``(d̂ - d)/SE`` (``M - 1`` for ``M`` Monte
            Carlo draws); ``None``: normal.
    """

    name: str
    kind: str
    verdict: str
    loss: str
    side: str
    bound: float | None
    observed: float | None
    observed_se: float
    assumptions_met: bool
    assumption: str
    reason: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    p_holds: float | None = None
    p_violated: float | None = None
    alpha: float = 0.05
    family_size: int = 1
    method: str = "shaffer"
    teacher: str | None = None
    student: str | None = None
    z: float | None = None
    bound_holds: float | None = None
    dof: int | None = None

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, KINDS)
        check_choice("verdict", self.verdict, VERDICTS)
        check_choice("side", self.side, SIDES)

    @property
    def ratio(self) -> float | None:
        """``bound / |observed|`` (tightness), ``None`` when undefined or ``observed = 0``."""
        if self.bound is None or self.observed is None or self.observed == 0.0:
            return None
        return self.bound / abs(self.observed)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-able dict (non-finite numbers become ``None`` via :func:`kdbounds._io.to_jsonable`).

        Returns:
            Every field plus ``ratio``.
        """
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["inputs"] = dict(self.inputs)
        d["ratio"] = self.ratio
        return to_jsonable(d)


# ------------------------------------------------------------------------------------------------
# p-values and multiplicity
# ------------------------------------------------------------------------------------------------
def _check_dof(dof: int | None) -> int | None:
    if dof is None:
        return None
    return check_int("dof", dof, minimum=1, fix="M - 1 for M Monte Carlo draws, or None (normal quantiles)")


def _cdf(t: float, dof: int | None) -> float:
    """``Phi(t)``, or Student's t CDF with ``dof`` degrees of freedom."""
    return float(ndtr(t)) if dof is None else float(stdtr(dof, t))


def critical_value(level: float, dof: int | None = None) -> float:
    """The ``level`` quantile of the standard normal, or of Student's t with ``dof`` degrees of freedom.

    Args:
        level: in (0, 1).
        dof: degrees of freedom (``None``: normal).

    Returns:
        The quantile.
    """
    level = check_open_unit("level", level)
    return float(ndtri(level)) if _check_dof(dof) is None else float(stdtrit(dof, level))


def one_sided_pvalues(bound: float, observed: float, se: float, side: str,
                      dof: int | None = None) -> tuple[float, float]:
    r"""``(p_holds, p_violated)`` of the two complementary one-sided hypotheses of a check.

    .. math::
        t = \frac{B - \tilde d}{\mathrm{SE}},\quad
        \tilde d = |\hat d|\ (\text{abs}),\ \hat d\ (\text{upper}),\ -\hat d\ (\text{lower}, B \to -B),

    ``p_holds = F(-t)`` and ``p_violated = F(t)`` (plus ``F(t - 2B/SE)`` for ``"abs"``, the far side), with
    ``F = Phi`` or, when ``dof`` is given, Student's t CDF with ``dof`` degrees of freedom.

    Args:
        bound: ``B``.
        observed: ``d̂``.
        se: ``SE > 0``.
        side: one of :data:`SIDES`.
        dof: degrees of freedom (``M - 1`` for a mean of ``M`` draws); ``None``: normal.

    Returns:
        The two p-values, each in ``[0, 1]``.

    Raises:
        ValueError: ``se`` not a positive finite number, non-finite ``bound``/``observed``, bad side or dof.
        TypeError: ``bound``, ``observed`` or ``se`` not a number.
    """
    check_choice("side", side, SIDES)
    dof = _check_dof(dof)
    bound, observed, se = check_finite("bound", bound), check_finite("observed", observed), check_finite("se", se)
    if not se > 0:
        raise ValueError(f"se: expected a finite number > 0 (exact checks are decided without p-values), got {se!r}")
    if side == "abs":
        t = (bound - abs(observed)) / se
        far = _cdf(t - 2.0 * max(bound, 0.0) / se, dof) if bound >= 0 else 0.0
        return _cdf(-t, dof), min(1.0, _cdf(t, dof) + far)
    if side == "upper":
        t = (bound - observed) / se
    else:
        t = (observed - bound) / se
    return _cdf(-t, dof), _cdf(t, dof)


def _pvalues(pvalues: Sequence[float]) -> np.ndarray:
    """``pvalues`` as a flat float64 array of numbers in [0, 1] (``TypeError`` / ``ValueError`` naming it)."""
    p = check_finite_array("pvalues", pvalues).reshape(-1)
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"pvalues: expected numbers in [0, 1], got {p.tolist()!r}")
    return p


def _holm_order(p: np.ndarray) -> np.ndarray:
    return np.argsort(p, kind="stable")


def holm_reject(pvalues: Sequence[float], alpha: float, *, max_true: int | None = None) -> np.ndarray:
    r"""Holm's step-down procedure (optionally Shaffer's logical restriction).

    Sort ``p_(1) <= … <= p_(M)``; reject ``H_(1), …, H_(j)`` while

    .. math:: p_{(j)} \le \frac{\alpha}{\min(M - j + 1,\ \text{max\_true})},

    stopping at the first failure. ``max_true = None`` is Holm (1979); a ``max_true`` that bounds the
    number of true hypotheses given that ``j - 1`` were rejected falsely (e.g. ``N`` for ``N`` pairs of
    complementary hypotheses) is Shaffer's (1986) S1 procedure. Both control the family-wise error
    at ``alpha`` under any dependence.

    Args:
        pvalues: the ``M`` p-values.
        alpha: family-wise level in (0, 1).
        max_true: optional cap on the number of simultaneously true hypotheses (>= 1).

    Returns:
        Boolean array, ``True`` where rejected (input order).

    Raises:
        ValueError: a p-value outside [0, 1] or NaN, alpha outside (0, 1), ``max_true < 1``.
    """
    alpha = check_open_unit("alpha", alpha)
    p = _pvalues(pvalues)
    if max_true is not None:
        max_true = check_int("max_true", max_true, minimum=1, fix="or None (no bound on the true hypotheses)")
    m = p.size
    out = np.zeros(m, dtype=bool)
    for j, i in enumerate(_holm_order(p), start=1):
        k = m - j + 1
        if max_true is not None:
            k = min(k, max_true)
        if p[i] <= alpha / k:
            out[i] = True
        else:
            break
    return out


def holm_adjust(pvalues: Sequence[float]) -> np.ndarray:
    r"""Holm-adjusted p-values ``p̃_(j) = max_{i <= j} min(1, (M - i + 1) p_(i))`` (input order).

    ``p̃_i <= alpha`` iff Holm at level ``alpha`` rejects ``H_i``.

    Args:
        pvalues: the ``M`` p-values.

    Returns:
        The adjusted p-values, in input order.

    Raises:
        ValueError: a p-value outside [0, 1] or NaN.
    """
    p = _pvalues(pvalues)
    m = p.size
    order = _holm_order(p)
    adj = np.empty(m)
    running = 0.0
    for j, i in enumerate(order, start=1):
        running = max(running, min(1.0, (m - j + 1) * p[i]))
        adj[i] = running
    return adj


# ------------------------------------------------------------------------------------------------
# building records
# ------------------------------------------------------------------------------------------------
def _holds(bound: float, observed: float, side: str) -> bool:
    if side == "abs":
        return abs(observed) <= bound
    if side == "upper":
        return observed <= bound
    return observed >= bound


def _exact_verdict(bound: float, bound_holds: float, observed: float, side: str) -> str:
    """Exact observed side: "holds" at the limit unfavourable to it, "violated" at the other."""
    if _holds(bound_holds, observed, side):
        return "holds"
    return "inconclusive" if _holds(bound, observed, side) else "violated"


def _check_bound_holds(name: str, bound: float, bound_holds: float | None, side: str) -> float | None:
    """``bound_holds`` must be finite and on the side of ``bound`` unfavourable to "holds"."""
    if bound_holds is None:
        return None
    try:
        bound_holds = check_finite("bound_holds", bound_holds)
    except ValueError:
        raise ValueError(f"{name}: bound_holds must be finite (or None), got {bound_holds!r}") from None
    wrong = bound_holds > bound if side != "lower" else bound_holds < bound
    if wrong:
        raise ValueError(f"{name}: bound_holds={bound_holds!r} is more favourable to 'holds' than bound={bound!r} "
                         f"(side {side!r}); pass the bound at the inputs' limit unfavourable to 'holds' (e.g. K at its "
                         "lower confidence limit for an upper bound) as bound_holds")
    return float(bound_holds)


def make_record(name: str, kind: str, *, loss: str, side: str, bound: float, observed: float,
                observed_se: float, assumptions_met: bool, assumption: str,
                inputs: Mapping[str, Any] | None = None, alpha: float = 0.05,
                teacher: str | None = None, student: str | None = None, bound_holds: float | None = None,
                dof: int | None = None) -> CheckRecord:
    """A defined check with its stand-alone verdict (family of one; see :func:`assign_verdicts`).

    Args:
        name: the check's name.
        kind: its kind (``"demonstration"``, ``"conditional"``, ``"proxy"``, ...).
        loss: the loss it is about.
        side: one of :data:`SIDES`.
        bound: the bound ``B`` (at the inputs' confidence limits that make it valid; "violated" is tested
            against it).
        observed: the observed value.
        observed_se: its standard error (0: exact, decided without p-values).
        assumptions_met: whether the theorem's assumptions hold here.
        assumption: the assumption, in words.
        inputs: the numbers the bound was computed from.
        alpha: the level.
        teacher, student: pair labels.
        bound_holds: the bound at the inputs' other confidence limits, unfavourable to "holds" ("holds"
            is tested against it; ``<= bound`` for ``"abs"``/``"upper"``, ``>= bound`` for ``"lower"``);
            ``None`` when the bound has no estimated input.
        dof: degrees of freedom of the t distribution of the observed side (``M - 1`` for ``M`` draws);
            ``None``: normal.

    Returns:
        The :class:`CheckRecord`: exact verdict when ``observed_se == 0`` and the bound is a number
        (``method="exact"``); decided by the bound's two limits when ``observed_se == 0`` and
        ``bound_holds`` is given (``method="input_limits"``); else from its p-values.

    Raises:
        ValueError: non-finite bound/observed, negative or non-finite SE, ``bound_holds`` on the wrong
            side of ``bound``, a bad ``dof``, ``side``, ``kind`` or ``alpha``.
        TypeError: ``bound``, ``observed`` or ``observed_se`` not a number.
    """
    alpha = check_open_unit("alpha", alpha)
    dof = _check_dof(dof)
    check_choice("side", side, SIDES)
    try:
        bound, observed = check_finite("bound", bound), check_finite("observed", observed)
    except ValueError as e:
        raise ValueError(f"{name}: {e} (use not_defined for a check without a number)") from None
    observed_se = check_nonnegative("observed_se", observed_se)
    b_holds = _check_bound_holds(name, bound, bound_holds, side)
    rec = CheckRecord(name=name, kind=kind, verdict="inconclusive", loss=loss, side=side, bound=float(bound),
                      observed=float(observed), observed_se=float(observed_se),
                      assumptions_met=bool(assumptions_met), assumption=assumption, reason=None,
                      inputs=dict(inputs or {}), alpha=alpha, teacher=teacher, student=student,
                      bound_holds=b_holds, dof=dof)
    if observed_se == 0.0:
        verdict = _exact_verdict(bound, bound if b_holds is None else b_holds, observed, side)
        return dataclasses.replace(rec, verdict=verdict, method="exact" if b_holds is None else "input_limits",
                                   family_size=0)
    ph, _ = one_sided_pvalues(bound if b_holds is None else b_holds, observed, observed_se, side, dof)
    _, pv = one_sided_pvalues(bound, observed, observed_se, side, dof)
    rec = dataclasses.replace(rec, p_holds=ph, p_violated=pv)
    return assign_verdicts([rec], alpha)[0]


def not_defined(name: str, kind: str, *, loss: str, side: str, reason: str, assumption: str = "",
                inputs: Mapping[str, Any] | None = None, alpha: float = 0.05,
                teacher: str | None = None, student: str | None = None) -> CheckRecord:
    """A check that has no number here (e.g. Theorem 3B across architectures), with its ``reason``.

    Args:
        name: the check's name.
        kind: its kind.
        loss: the loss it is about.
        side: one of :data:`SIDES`.
        reason: why it has no number (required).
        assumption: the assumption, in words.
        inputs: numbers worth recording.
        alpha: the level.
        teacher, student: pair labels.

    Returns:
        The :class:`CheckRecord` with verdict ``"not_defined"``.

    Raises:
        ValueError: empty ``reason``.
    """
    if not reason:
        raise ValueError(f"{name}: a not_defined check needs a reason")
    return CheckRecord(name=name, kind=kind, verdict="not_defined", loss=loss, side=side, bound=None,
                       observed=None, observed_se=0.0, assumptions_met=False, assumption=assumption,
                       reason=reason, inputs=dict(inputs or {}), alpha=check_open_unit("alpha", alpha),
                       family_size=0, method="none", teacher=teacher, student=student)


def assign_verdicts(records: Sequence[CheckRecord], alpha: float = 0.05, *,
                    method: str = "shaffer") -> tuple[CheckRecord, ...]:
    """Family-wise verdicts over all checks of a run (see the module docstring).

    Args:
        records: every check of the run (any order; exact and not_defined ones pass through).
        alpha: family-wise error level in (0, 1).
        method: ``"shaffer"`` (Holm restricted to at most ``N`` true hypotheses; default) or ``"holm"``.

    Returns:
        The records in the same order with ``verdict``, ``alpha``, ``family_size`` and ``method`` set.

    Raises:
        TypeError: ``records`` is not a sequence of :class:`CheckRecord` (one record alone included).
        ValueError: ``alpha`` outside (0, 1), an unknown ``method``.
        RuntimeError: both complementary hypotheses of a check rejected (impossible at ``alpha < 1/2``).
    """
    alpha = check_open_unit("alpha", alpha)
    method = check_choice("method", method, ("shaffer", "holm"))
    if isinstance(records, CheckRecord) or not isinstance(records, Sequence):
        raise TypeError(f"records: expected a list of CheckRecord, got {type(records).__name__}; pass [record] for "
                        f"one record")
    bad = [i for i, r in enumerate(records) if not isinstance(r, CheckRecord)]
    if bad:
        raise TypeError(f"records: entry {bad[0]} is a {type(records[bad[0]]).__name__}, expected a CheckRecord "
                        f"(make_record / not_defined)")
    stochastic = [i for i, r in enumerate(records) if r.verdict != "not_defined" and r.p_holds is not None]
    n = len(stochastic)
    out = list(records)
    if n == 0:
        return tuple(out)
    p = np.array([records[i].p_holds for i in stochastic] + [records[i].p_violated for i in stochastic])
    rej = holm_reject(p, alpha, max_true=n if method == "shaffer" else None)
    for k, i in enumerate(stochastic):
        r = records[i]
        if rej[k] and rej[n + k]:  # impossible for complementary hypotheses at alpha < 1/2 ... but say so
            raise RuntimeError(f"{r.name}: both complementary hypotheses rejected; alpha too large")
        verdict = "holds" if rej[k] else ("violated" if rej[n + k] else "inconclusive")
        z = critical_value(1.0 - alpha / n, r.dof) if method == "shaffer" else None
        out[i] = dataclasses.replace(r, verdict=verdict, alpha=alpha, family_size=n, method=method, z=z)
    return tuple(out)


def verdict_counts(records: Sequence[CheckRecord], by: str = "name") -> list[dict[str, Any]]:
    """Counts of verdicts grouped by ``by`` (a record field, e.g. ``"name"`` or ``"kind"``), with the
    number of pairs and of distinct (independent) teachers each count spans.

    Args:
        records: the check records.
        by: the record field grouped by.

    Returns:
        One row per group: counts per verdict, checks, pairs and teachers.
    """
    groups: dict[Any, list[CheckRecord]] = {}
    for r in records:
        groups.setdefault(getattr(r, by), []).append(r)
    rows = []
    for key, rs in groups.items():
        row: dict[str, Any] = {by: key, "n_checks": len(rs),
                               "n_teachers": len({r.teacher for r in rs if r.teacher is not None}),
                               "n_pairs": len({(r.teacher, r.student) for r in rs})}
        for v in VERDICTS:
            row[v] = sum(r.verdict == v for r in rs)
            row[f"{v}_teachers"] = len({r.teacher for r in rs if r.verdict == v and r.teacher is not None})
        rows.append(row)
    return rows
