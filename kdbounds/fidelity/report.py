"""One student–teacher pair's fidelity report, and KD-vs-controls comparisons over seeds.

:func:`fidelity_report` measures every metric of :mod:`kdbounds.fidelity.metrics` on one pair;
:func:`compare_methods` compares a reference method (KD) against controls (random-control
distillation, SIDDO, student alone) on every metric with :func:`kdbounds.stats.compare_groups` and
returns a :class:`TransferSummary` that prints as a table (Holm-adjusted p-values across all
comparisons are included). Nothing here prints or writes files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from .._checks import SEED_MAX, check_int, check_n_boot, check_positive
from ..stats import GroupComparison, compare_groups, holm_adjust
from .metrics import (
    MetricEstimate,
    accuracy,
    activation_distance,
    agreement,
    agreement_by_teacher_correctness,
    cosine_similarity,
    disagreement,
    expected_calibration_error,
    js_divergence,
    kl_divergence,
    softmax_probs,
)
from .._io import float_field, with_reasons
from .metrics import _TRUSTED, _labels, _mean_estimate, _pair, _tensor  # package-internal

__all__ = ["FidelityReport", "fidelity_report", "TransferSummary", "compare_methods", "DEFAULT_METRICS",
           "METRIC_RANGES"]


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FidelityReport:
    """All fidelity metrics of one student–teacher pair on one set of inputs.

    Label-dependent fields are ``None`` when no labels were given.
    """

    n: int
    n_classes: int
    temperature: float
    agreement: MetricEstimate
    disagreement: MetricEstimate
    activation_distance: MetricEstimate
    js_divergence: MetricEstimate
    cosine_similarity: MetricEstimate
    kl_divergence: MetricEstimate
    agreement_teacher_correct: MetricEstimate | None = None
    agreement_teacher_wrong: MetricEstimate | None = None
    student_accuracy: MetricEstimate | None = None
    teacher_accuracy: MetricEstimate | None = None
    student_ece: MetricEstimate | None = None
    teacher_ece: MetricEstimate | None = None

    @classmethod
    def metric_names(cls) -> tuple[str, ...]:
        """The names of the metric fields, in declaration order.

        Returns:
            Every field name but ``n``, ``n_classes`` and ``temperature``.
        """
        return tuple(f.name for f in fields(cls) if f.name not in ("n", "n_classes", "temperature"))

    def get(self, name: str) -> MetricEstimate | None:
        """One metric by name.

        Args:
            name: one of :meth:`metric_names`.

        Returns:
            The :class:`MetricEstimate`, or ``None`` when it was not computed (no labels).

        Raises:
            KeyError: unknown ``name`` (the message lists the known ones).
        """
        if name not in self.metric_names():
            raise KeyError(f"unknown metric {name!r}; known: {', '.join(self.metric_names())}")
        return getattr(self, name)

    def values(self) -> dict[str, float]:
        """Flat ``{metric: value}`` (NaN for undefined or missing metrics).

        Returns:
            ``{metric: value}`` for every metric name.
        """
        out = {}
        for name in self.metric_names():
            m = getattr(self, name)
            out[name] = m.value if m is not None else math.nan
        return out

    def to_dict(self) -> dict[str, Any]:
        """The report as strict JSON (the non-finite policy of :meth:`MetricEstimate.to_dict`).

        Returns:
            ``{"n", "n_classes", "temperature", metric: MetricEstimate dict or None, ...}``.
        """
        d: dict[str, Any] = {"n": self.n, "n_classes": self.n_classes, "temperature": self.temperature}
        for name in self.metric_names():
            m = getattr(self, name)
            d[name] = m.to_dict() if m is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FidelityReport":
        """The report written by :meth:`to_dict`.

        Args:
            d: a mapping from :meth:`to_dict` (e.g. read back from JSON).

        Returns:
            The :class:`FidelityReport`, infinities and NaNs restored.
        """
        kw: dict[str, Any] = {"n": int(d["n"]), "n_classes": int(d["n_classes"]), "temperature": float(d["temperature"])}
        for name in cls.metric_names():
            m = d.get(name)
            kw[name] = None if m is None else MetricEstimate.from_dict(m)
        return cls(**kw)

    def __str__(self) -> str:
        lines = [f"FidelityReport(n={self.n}, classes={self.n_classes}, T={self.temperature:g})"]
        for name in self.metric_names():
            m = getattr(self, name)
            if m is not None:
                lines.append(f"  {name:<26} {m}")
        return "\n".join(lines)


def fidelity_report(
    student_logits: Any,
    teacher_logits: Any,
    labels: Any = None,
    temperature: float = 1.0,
    *,
    probs: bool = False,
    ece_bins: int = 15,
    ece_temperature: float = 1.0,
    n_boot: int = 200,
    seed: int = 0,
) -> FidelityReport:
    """Every fidelity metric of one pair.

    Args:
        student_logits, teacher_logits: ``(n, classes)`` logits on the same held-out inputs (or
            probabilities with ``probs=True``; then the temperatures must be 1).
        labels: true class indices ``(n,)``; needed for the teacher-correct/wrong split, accuracy, ECE.
        temperature: softmax temperature for the similarity metrics (JS, distance, cosine, KL).
        probs: the first two arguments are probabilities (rows summing to 1), not logits.
        ece_bins, ece_temperature: ECE of each model at its own temperature (default 1: the model's
            calibration as deployed).
        n_boot, seed: bootstrap for the ECE standard errors (``n_boot`` 0 or >= 2; ``seed`` in
            [0, 2**32 - 2]); checked, like every argument, before any metric is computed.

    Returns:
        A :class:`FidelityReport`; the label metrics are ``None`` without ``labels``.

    Raises:
        ValueError: shapes or class counts that differ, empty inputs, NaN/inf, bad labels or
            temperatures, or ``probs=True`` with a temperature other than 1.
    """
    check_n_boot("n_boot", n_boot)
    check_int("seed", seed, minimum=0, maximum=SEED_MAX - 1)  # the teacher's ECE uses seed + 1
    check_int("ece_bins", ece_bins, minimum=1)
    check_positive("temperature", temperature)
    check_positive("ece_temperature", ece_temperature)
    if probs:
        if temperature != 1.0 or ece_temperature != 1.0:
            raise ValueError("probs=True takes probabilities as given; temperature and ece_temperature must be 1")
        ps, pt = _pair(student_logits, teacher_logits)
        ps_cal, pt_cal = ps, pt
        kl = kl_divergence(ps, pt)
    else:
        from kdbounds.divergence import divergence_from_logits

        zs, zt = _tensor(student_logits, "student_logits"), _tensor(teacher_logits, "teacher_logits")
        for z, nm in ((zs, "student_logits"), (zt, "teacher_logits")):
            if z.ndim != 2:
                raise ValueError(f"{nm} must have shape (n, classes), got {tuple(z.shape)}")
            if not bool(torch.isfinite(z).all()):
                raise ValueError(f"{nm}: expected finite logits, got {int((~torch.isfinite(z)).sum())} NaN/inf "
                                 f"value(s); check the model's outputs")
        if zs.shape[1] != zt.shape[1]:
            raise ValueError(f"class counts differ: the student has {zs.shape[1]} classes but the teacher has {zt.shape[1]}")
        if zs.shape[0] != zt.shape[0]:
            raise ValueError(f"example counts differ: student {zs.shape[0]}, teacher {zt.shape[0]}; evaluate both on the same inputs")
        if zs.shape[0] == 0:
            raise ValueError("no examples: the logits are empty")
        ps, pt = _pair(softmax_probs(zs, temperature), softmax_probs(zt, temperature))
        ps_cal, pt_cal = softmax_probs(zs, ece_temperature), softmax_probs(zt, ece_temperature)
        kl = _mean_estimate(divergence_from_logits(zs, zt, temperature))
    n, c = ps.shape
    y = _labels(labels, n, c) if labels is not None else None
    token = _TRUSTED.set(True)
    try:
        return _report(ps, pt, ps_cal, pt_cal, kl, y, float(temperature), ece_bins, n_boot, seed)
    finally:
        _TRUSTED.reset(token)


def _report(ps, pt, ps_cal, pt_cal, kl, labels, temperature, ece_bins, n_boot, seed) -> FidelityReport:
    n, c = ps.shape
    kw: dict[str, Any] = dict(
        n=int(n),
        n_classes=int(c),
        temperature=float(temperature),
        agreement=agreement(ps, pt),
        disagreement=disagreement(ps, pt),
        activation_distance=activation_distance(ps, pt),
        js_divergence=js_divergence(ps, pt),
        cosine_similarity=cosine_similarity(ps, pt),
        kl_divergence=kl,
    )
    if labels is not None:
        right, wrong = agreement_by_teacher_correctness(ps, pt, labels)
        kw.update(
            agreement_teacher_correct=right,
            agreement_teacher_wrong=wrong,
            student_accuracy=accuracy(ps_cal, labels),
            teacher_accuracy=accuracy(pt_cal, labels),
            student_ece=expected_calibration_error(ps_cal, labels, ece_bins, n_boot=n_boot, seed=seed),
            teacher_ece=expected_calibration_error(pt_cal, labels, ece_bins, n_boot=n_boot, seed=seed + 1),
        )
    return FidelityReport(**kw)



#: the values each metric can take (:mod:`kdbounds.fidelity.metrics`): a difference of two means lies in
#: ``[lo - hi, hi - lo]``; KL has no upper end
METRIC_RANGES: dict[str, tuple[float, float]] = {
    **{m: (0.0, 1.0) for m in ("agreement", "disagreement", "agreement_teacher_correct", "agreement_teacher_wrong",
                               "student_accuracy", "teacher_accuracy", "student_ece", "teacher_ece",
                               "cosine_similarity")},
    "activation_distance": (0.0, math.sqrt(2.0)), "js_divergence": (0.0, math.log(2.0)),
    "kl_divergence": (0.0, math.inf)}


def _shown_interval(metric: str, lo: float, hi: float) -> tuple[str, bool]:
    """``[lo, hi]`` as printed: cut to the range a difference of ``metric``'s means can take, with ``*`` on a cut end.

    Cutting to the parameter space keeps the interval's coverage (the difference lies in that range); the raw
    Welch bounds stay in :meth:`TransferSummary.rows` and ``to_dict``.
    """
    lo_m, hi_m = METRIC_RANGES.get(metric, (-math.inf, math.inf))
    span = hi_m - lo_m
    cut_lo, cut_hi = lo < -span, hi > span
    text = (f"[{max(lo, -span):+.4f}{'*' if cut_lo else ''}, {min(hi, span):+.4f}{'*' if cut_hi else ''}]")
    return text, cut_lo or cut_hi


DEFAULT_METRICS: tuple[str, ...] = (
    "agreement",
    "agreement_teacher_correct",
    "agreement_teacher_wrong",
    "activation_distance",
    "js_divergence",
    "cosine_similarity",
    "kl_divergence",
    "student_accuracy",
    "student_ece",
)


@dataclass(frozen=True)
class TransferSummary:
    """Reference method vs every other group on every metric (one :class:`GroupComparison` each).

    ``welch_p_holm`` / ``mwu_p_holm`` hold Holm-adjusted p-values over all comparisons of the summary,
    in the order of ``comparisons``. ``skipped`` lists ``(metric, reason)`` pairs that could not be
    compared (e.g. a metric undefined in too many seeds).
    """

    reference: str
    groups: tuple[str, ...]
    metrics: tuple[str, ...]
    comparisons: tuple[GroupComparison, ...]
    welch_p_holm: tuple[float, ...]
    mwu_p_holm: tuple[float, ...]
    group_stats: Mapping[str, Mapping[str, tuple[float, float, int]]] = field(default_factory=dict)
    skipped: tuple[tuple[str, str], ...] = ()

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per (metric, compared group): for CSV.

        Returns:
            Dicts with the metric, the two groups, their means and sds, the difference with its CI,
            Welch and Mann-Whitney results with Holm-adjusted p-values, and the effect sizes.
        """
        out = []
        for c, ph, pm in zip(self.comparisons, self.welch_p_holm, self.mwu_p_holm):
            out.append(
                {
                    "metric": c.metric,
                    "reference": c.name_a,
                    "group": c.name_b,
                    "n_reference": c.n_a,
                    "n_group": c.n_b,
                    "mean_reference": c.mean_a,
                    "sd_reference": c.sd_a,
                    "mean_group": c.mean_b,
                    "sd_group": c.sd_b,
                    "diff": c.diff,
                    "diff_ci_low": c.diff_ci_low,
                    "diff_ci_high": c.diff_ci_high,
                    "welch_t": c.welch_t,
                    "welch_df": c.welch_df,
                    "welch_p": c.welch_p,
                    "welch_p_holm": ph,
                    "mwu_u": c.mwu_u,
                    "mwu_p": c.mwu_p,
                    "mwu_p_holm": pm,
                    "cohens_d": c.cohens_d,
                    "hedges_g": c.hedges_g,
                    "cles": c.cles,
                    "rank_biserial": c.rank_biserial,
                    "note": c.note,
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """The summary as strict JSON; a non-finite statistic is ``null`` with a ``*_reason``.

        Returns:
            ``{"reference", "groups", "metrics", "group_stats", "comparisons", "skipped"}``.
        """
        return {
            "reference": self.reference,
            "groups": list(self.groups),
            "metrics": list(self.metrics),
            "group_stats": {
                m: {g: with_reasons({"mean": s[0], "sd": s[1], "n": s[2]}) for g, s in gs.items()}
                for m, gs in self.group_stats.items()
            },
            "comparisons": [with_reasons(r, why=str(r.get("note") or "")) for r in self.rows()],
            "skipped": [list(s) for s in self.skipped],
        }

    def __str__(self) -> str:
        ci = self.comparisons[0].ci if self.comparisons else 0.95
        header = [
            "metric", "vs", f"{self.reference} mean±sd", "control mean±sd",
            f"diff [{ci:.0%} CI]", "Welch p", "p(Holm)", "MWU p", "Hedges g", "CLES",
        ]
        body, cut = [], []
        for r in self.rows():
            interval, was_cut = _shown_interval(r["metric"], r["diff_ci_low"], r["diff_ci_high"])
            if was_cut:
                cut.append(r)
            body.append([
                r["metric"], r["group"],
                f"{r['mean_reference']:.4f}±{r['sd_reference']:.4f}",
                f"{r['mean_group']:.4f}±{r['sd_group']:.4f}",
                f"{r['diff']:+.4f} {interval}",
                f"{r['welch_p']:.3g}", f"{r['welch_p_holm']:.3g}", f"{r['mwu_p']:.3g}",
                f"{r['hedges_g']:+.2f}", f"{r['cles']:.2f}",
            ])
        widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
        fmt = lambda row: "  ".join(s.ljust(w) for s, w in zip(row, widths))  # noqa: E731
        lines = [f"Functional transfer: {self.reference} vs {', '.join(g for g in self.groups if g != self.reference)}",
                 fmt(header), "  ".join("-" * w for w in widths)]
        lines += [fmt(row) for row in body]
        if cut:
            seeds = sorted({r["n_reference"] for r in cut} | {r["n_group"] for r in cut})
            lines.append(f"(* cut to the range the difference can take, e.g. [-1, +1] for an agreement: the Welch t "
                         f"interval from {'/'.join(map(str, seeds))} seeds per group reaches beyond it, i.e. so few "
                         f"seeds say little about this difference; the raw bounds are in the CSV/JSON)")
        for m, why in self.skipped:
            lines.append(f"(skipped {m}: {why})")
        return "\n".join(lines)


def _metric_value(item: Any, metric: str, group: str, i: int) -> float:
    if isinstance(item, FidelityReport):
        m = item.get(metric)
        return m.value if m is not None else math.nan
    if isinstance(item, Mapping):
        if metric not in item:
            raise KeyError(f"results[{group!r}][{i}] has no metric {metric!r}; it has {', '.join(map(str, item))}")
        v = item[metric]
        if v is None:
            return math.nan
        if isinstance(v, MetricEstimate):
            return v.value
        if isinstance(v, Mapping):
            return float_field(v, "value")
        return float(v)
    raise TypeError(f"results[{group!r}][{i}] is a {type(item).__name__}; expected a FidelityReport or a dict")


def compare_methods(
    results: Mapping[str, Sequence[Any]],
    reference: str = "kd",
    metrics: Iterable[str] | None = None,
    *,
    ci: float = 0.95,
    alternative: str = "two-sided",
) -> TransferSummary:
    """Compare the ``reference`` method's seeds against every other group on each metric.

    Args:
        results: ``{group: [per-seed FidelityReport, or dict metric -> value / {"value": ...}]}``,
            e.g. ``{"kd": [...], "rcd": [...], "siddo": [...], "alone": [...]}``.
        reference: the group compared against all others.
        metrics: metric names; default :data:`DEFAULT_METRICS` present in the reference results.
            Seeds where a metric is undefined (NaN, e.g. no teacher errors) are dropped for that metric;
            a default metric left with < 2 seeds is listed in ``skipped``; an explicitly requested one raises.
        ci: level of the CIs of the differences, in (0, 1).
        alternative: ``"two-sided"``, ``"greater"`` or ``"less"`` (``"greater"``: reference larger).

    Returns:
        A :class:`TransferSummary`: per-group statistics, one :class:`~kdbounds.stats.GroupComparison`
        per metric and compared group, Holm-adjusted p-values over all comparisons, skipped metrics.

    Raises:
        ValueError: empty ``results``, unknown or lone ``reference``, fewer than 2 seeds in a group,
            or an explicitly requested metric that cannot be compared.
        TypeError: a group is not a list of reports or dicts.
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty dict {group name: list of per-seed reports}")
    if reference not in results:
        raise ValueError(f"reference group {reference!r} not in results (groups: {', '.join(results)})")
    others = [g for g in results if g != reference]
    if not others:
        raise ValueError(f"results holds only the reference group {reference!r}; add at least one control group")
    for g, items in results.items():
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise TypeError(f"results[{g!r}] must be a list of per-seed results, got {type(items).__name__}")
        if len(items) < 2:
            raise ValueError(
                f"group {g!r} has {len(items)} seed(s); the seed-level tests need at least 2 seeds per group"
            )
    explicit = metrics is not None
    if metrics is None:
        first = results[reference][0]
        if isinstance(first, FidelityReport):
            present = set(first.metric_names())
        elif isinstance(first, Mapping):
            present = set(first)
        else:
            raise TypeError(f"results[{reference!r}][0] is a {type(first).__name__}; expected a FidelityReport or a dict")
        metric_list = [m for m in DEFAULT_METRICS if m in present]
    else:
        metric_list = list(metrics)
    comps: list[GroupComparison] = []
    stats_: dict[str, dict[str, tuple[float, float, int]]] = {}
    skipped: list[tuple[str, str]] = []
    for metric in metric_list:
        vals = {}
        for g, items in results.items():
            v = np.array([_metric_value(it, metric, g, i) for i, it in enumerate(items)], dtype=np.float64)
            vals[g] = v[np.isfinite(v)]
        short = [g for g, v in vals.items() if v.size < 2]
        if short:
            why = "fewer than 2 seeds with a defined value in " + ", ".join(f"{g!r} ({vals[g].size})" for g in short)
            if explicit:
                raise ValueError(f"metric {metric!r}: {why}")
            skipped.append((metric, why))
            continue
        stats_[metric] = {g: (float(v.mean()), float(v.std(ddof=1)), int(v.size)) for g, v in vals.items()}
        for g in others:
            comps.append(compare_groups(vals[reference], vals[g], (reference, g), ci=ci, alternative=alternative, metric=metric))
    return TransferSummary(
        reference=reference,
        groups=tuple(results),
        metrics=tuple(m for m in metric_list if m in stats_),
        comparisons=tuple(comps),
        welch_p_holm=tuple(holm_adjust([c.welch_p for c in comps])),
        mwu_p_holm=tuple(holm_adjust([c.mwu_p for c in comps])),
        group_stats=stats_,
        skipped=tuple(skipped),
    )
