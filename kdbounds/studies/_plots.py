"""Tables and figures for the experiments (orchestration layer).

Figures are built as :class:`matplotlib.figure.Figure` objects directly, never through ``pyplot``: no
backend is selected or switched (a notebook kernel keeps its inline backend and shows every later
figure), nothing is registered with pyplot's figure manager (no figure leaks in long runs), and
``savefig`` renders with the Agg canvas matplotlib attaches for the file format.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes

__all__ = ["VERDICT_COLOURS", "CHECK_LABELS", "LOSS_LABELS", "QUANTITY_LABELS", "UNDEFINED", "plot_sharpness_vs_gap",
           "sharpness_vs_gap_figure", "plot_bound_vs_observed", "bound_vs_observed_figure", "format_table", "plt_figure",
           "save_figure", "binomial_interval"]

#: keyword arguments of ``pyplot.subplots`` that go to ``Figure.subplots`` (the rest go to ``Figure``)
_SUBPLOTS_KW = frozenset({"sharex", "sharey", "squeeze", "width_ratios", "height_ratios", "subplot_kw",
                          "gridspec_kw"})


def plt_figure(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """A new figure and its axes, like ``pyplot.subplots`` but without pyplot.

    The figure is a plain :class:`matplotlib.figure.Figure` (matplotlib imported on first use): the
    process's backend is left as it is, and the figure is not registered with pyplot.

    Args:
        nrows: rows of the grid of axes.
        ncols: columns of the grid of axes.
        **kwargs: the keywords of ``pyplot.subplots``: ``sharex``, ``sharey``, ``squeeze``,
            ``width_ratios``, ``height_ratios``, ``subplot_kw``, ``gridspec_kw`` go to
            ``Figure.subplots``, the others (``figsize``, ``dpi``, ``layout``, ...) to ``Figure``.

    Returns:
        ``(figure, axes)``: one ``Axes`` for a 1 x 1 grid, else an array of them (as ``pyplot.subplots``).
    """
    from matplotlib.figure import Figure

    sub = {k: v for k, v in kwargs.items() if k in _SUBPLOTS_KW}
    fig = Figure(**{k: v for k, v in kwargs.items() if k not in _SUBPLOTS_KW})
    return fig, fig.subplots(nrows, ncols, **sub)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 130) -> Path:
    """Save ``fig`` to ``path`` atomically (format from the suffix) and release it.

    A figure made by :func:`plt_figure` needs no closing; one made with ``pyplot`` (when pyplot is
    already imported) is closed, so that loops do not accumulate open figures. The backend is not touched.

    Args:
        fig: a matplotlib figure.
        path: the output file; its parent folder is created when missing.
        dpi: resolution.

    Returns:
        ``path`` as a ``Path``.
    """
    buf = io.BytesIO()
    path = Path(path)
    try:
        fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    finally:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:  # a pyplot-managed figure: drop it from pyplot's registry (a no-op otherwise)
            plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def binomial_interval(rate: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper–Pearson interval of a rate measured on ``n`` examples, each right or wrong (an accuracy, an agreement):
    scipy's exact binomial interval of ``round(rate * n)`` successes.

    Args:
        rate: the measured rate, a multiple of ``1/n``.
        n: the number of examples (>= 1).
        level: the confidence level.

    Returns:
        ``(low, high)``.
    """
    from scipy.stats import binomtest

    k = int(round(rate * n))
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


#: one colour per verdict, in every figure that draws verdicts (colour-blind-safe: Okabe–Ito)
VERDICT_COLOURS = {"holds": "#009E73", "violated": "#D55E00", "inconclusive": "#E69F00", "not_defined": "#999999"}

#: check names as they read in a figure
CHECK_LABELS = {"gibbs_classifier": "Gibbs classifier", "thm1_sigma_n": "Thm 1, σ²/n form",
                "thm1_product_proxy": "Thm 1, product-law proxy", "thm2_central": "Thm 2, central condition",
                "thm3a_radius": "Thm 3A, radius ρ₀", "thm3b_subgamma_quadratic": "Thm 3B, sub-gamma (quadratic)",
                "thm3b_subgamma_mc": "Thm 3B, sub-gamma (Monte Carlo)"}

#: losses as they read in a figure
LOSS_LABELS = {"clipped_ce": "clipped CE", "zero_one": "0–1", "gibbs_zero_one": "Gibbs 0–1", "ce": "CE"}

#: row keys of the sharpness-vs-gap table as axis labels (maths, not code names)
QUANTITY_LABELS = {"teacher_train_top_eig": "teacher λ_max(H) on the training loss",
                   "teacher_train_trace": "teacher tr H on the training loss",
                   "teacher_gap_trace": "teacher tr(H_test − H_train)",
                   "teacher_gap_frob_sq": "teacher ‖H_test − H_train‖²_F",
                   "student_gap_clipped_ce": "student gap gen(S), clipped CE",
                   "student_gap_zero_one": "student gap gen(S), 0–1 loss"}


def _label(key: str) -> str:
    return QUANTITY_LABELS.get(key, key.replace("_", " "))


def _se(row: dict[str, Any], key: str) -> float:
    v = row.get(f"{key}_se")
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else 0.0


def sharpness_vs_gap_figure(rows: Sequence[dict[str, Any]], *, sharpness: str = "teacher_train_top_eig",
                            gaps: Sequence[str] = ("student_gap_clipped_ce", "student_gap_zero_one"),
                            kendall: Sequence[dict[str, Any]] = ()) -> Any:
    """The figure of :func:`plot_sharpness_vs_gap` (a :class:`matplotlib.figure.Figure`, not saved).

    Every number with a standard error in ``rows`` (``<key>_se``: the Hutchinson trace's, the gaps')
    is drawn with its 95 % interval (± 1.96 SE).

    Args:
        rows: one dict per teacher–student pair (the study's ``results.csv`` rows).
        sharpness: the row key on the x axis.
        gaps: the row keys on the y axes, one panel each.
        kendall: rows of the Kendall table (optional).

    Returns:
        The figure.
    """
    fig, axes = plt_figure(1, len(gaps), figsize=(6.0 * len(gaps), 4.6), squeeze=False)
    methods = sorted({r["method"] for r in rows})
    for ax, g in zip(axes[0], gaps):
        for m in methods:
            rs = [r for r in rows if r["method"] == m and r.get(sharpness) is not None and r.get(g) is not None]
            if rs:
                ax.errorbar([r[sharpness] for r in rs], [r[g] for r in rs], xerr=[1.96 * _se(r, sharpness) for r in rs],
                            yerr=[1.96 * _se(r, g) for r in rs], fmt="o", ms=6, alpha=0.85, capsize=2, elinewidth=0.8,
                            label=f"student: {_student_words(m)}")
        tg = g.replace("student_", "teacher_")
        seen = {}
        for r in rows:
            if r.get(sharpness) is not None and r.get(tg) is not None:
                seen[r["teacher"]] = (r[sharpness], r[tg], _se(r, sharpness))
        if seen:
            v = list(seen.values())
            ax.errorbar([a[0] for a in v], [a[1] for a in v], xerr=[1.96 * a[2] for a in v], fmt="x", c="k", ms=7,
                        capsize=2, elinewidth=0.8, label="teacher itself")
        ax.axhline(0.0, c="0.5", lw=0.8, zorder=0)
        title = _label(g)
        headline = "recipe_mean" if any(k.get("level") == "recipe" for k in kendall) else "teacher_mean"
        for k in kendall:
            if k.get("statistic") == headline and k["sharpness"] == sharpness and k["gap"] == g \
                    and k.get("tau") is not None:
                unit = "recipe" if headline == "recipe_mean" else "teacher"
                if not math.isfinite(k["tau"]) or k.get("p_holm") is None:  # e.g. a constant gap: τ undefined
                    title += f"\n{unit}-level Kendall τ undefined ({k.get('note') or 'no test'})"
                    continue
                n = k.get("n_recipes") if unit == "recipe" else k["n_teachers"]
                groups = {k2.get("students") for k2 in kendall}
                who = "" if len(groups) < 2 else {"distilled": "distilled from scratch: ",
                                                  "from-teacher": "started at the teacher: "}.get(
                    k.get("students"), f"students {k.get('students')}: ")
                title += f"\n{who}{unit}-level Kendall τ = {k['tau']:+.2f}, Holm p = {k['p_holm']:.3f} ({n} {unit}s)"
        ax.set_title(title, fontsize=8.5)
        ax.set_xlabel(_label(sharpness) + " (± 1.96 SE)" if any(_se(r, sharpness) for r in rows) else _label(sharpness))
        ax.set_ylabel("gap = test loss − training loss (± 1.96 SE)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.045 * (1 + (len(labels) - 1) // 3), 1, 1))
    return fig


def _student_words(method: str) -> str:
    """A student's label in words: ``"kd-from-teacher"`` -> "KD, started at the teacher", ``"ce"`` -> "CE alone"."""
    base, started = (method[: -len("-from-teacher")], True) if method.endswith("-from-teacher") else (method, False)
    name = base.upper()
    if started:
        return f"{name}, started at the teacher"
    return f"{name} alone (no teacher)" if base == "ce" else f"{name}, from scratch"


def plot_sharpness_vs_gap(rows: Sequence[dict[str, Any]], path: str | os.PathLike, *,
                          sharpness: str = "teacher_train_top_eig",
                          gaps: Sequence[str] = ("student_gap_clipped_ce", "student_gap_zero_one"),
                          kendall: Sequence[dict[str, Any]] = ()) -> Path:
    """Scatter of teacher sharpness against the student's gap, one colour per method, one panel per loss;
    the teachers' own gaps are drawn as black crosses; 95 % intervals where a number has a standard error.
    The recipe-level Kendall τ (the recipes' mean sharpness against the mean gap of their distilled students,
    Holm-adjusted p) in the titles when given; a table without levels (older results) shows its teacher-level τ.

    Args:
        rows: one dict per teacher–student pair (the study's ``results.csv`` rows).
        path: the image file written (atomically).
        sharpness: the row key on the x axis.
        gaps: the row keys on the y axes, one panel each.
        kendall: rows of the Kendall table (optional; ``level``, ``statistic``, ``sharpness``, ``gap``, ``tau``,
            ``p_holm``, ``n_recipes``, ``n_teachers``).

    Returns:
        ``path``.
    """
    return save_figure(sharpness_vs_gap_figure(rows, sharpness=sharpness, gaps=gaps, kendall=kendall), path)


def _checks(rep: dict[str, Any]) -> list[dict[str, Any]]:
    return rep.get("records", rep.get("checks", []))


def _observed_interval(c: dict[str, Any]) -> tuple[float, float, float]:
    """``|d̂|`` and the interval the verdict was decided on, ``|d̂| ± z·SE`` (z = 1.96 when not recorded)."""
    x = abs(float(c["observed"]))
    se = c.get("observed_se") or 0.0
    z = c.get("z") if isinstance(c.get("z"), (int, float)) else 1.96
    return x, x - z * se, x + z * se


def bound_vs_observed_figure(reports: Sequence[dict[str, Any]]) -> Any:
    """The figure of :func:`plot_bound_vs_observed` (a :class:`matplotlib.figure.Figure`, not saved).

    Args:
        reports: the pair reports (``PairChecks.to_dict()`` with ``records``; older reports with ``checks``).

    Returns:
        The figure; its ``kdbounds_points`` attribute lists, per drawn point, ``(check, loss, verdict,
        x, y)`` and ``kdbounds_zero`` the number of checks with an observed value of exactly 0 (not drawable
        on a log axis, stated in the figure).
    """
    fig, ax = plt_figure(figsize=(8.6, 5.2))
    kinds = {(c["name"], c["loss"]): c.get("kind", "") for rep in reports for c in _checks(rep)}
    names = sorted({(c["name"], c["loss"]) for rep in reports for c in _checks(rep)
                    if c["side"] == "abs" and c.get("verdict") != "not_defined"})
    xs_all, ys_all, points, zero = [], [], [], 0
    markers = "osD^v<>ph*"
    for i, (name, loss) in enumerate(names):
        recs = [c for rep in reports for c in _checks(rep) if c["name"] == name and c["loss"] == loss
                and c.get("verdict") != "not_defined" and c.get("observed") is not None and c.get("bound") is not None
                and math.isfinite(c["bound"]) and c["bound"] > 0]
        zero += sum(1 for c in recs if c["observed"] == 0)
        recs = [c for c in recs if c["observed"] != 0]
        if not recs:
            continue
        marker = markers[i % len(markers)]
        for c in recs:
            x, lo, hi = _observed_interval(c)
            colour = VERDICT_COLOURS.get(c.get("verdict"), "#999999")
            left = x - lo if lo > 0 else x * (1 - 1e-9)  # the interval reaches 0: the bar runs to the frame
            ax.errorbar([x], [c["bound"]], xerr=[[left], [hi - x]], fmt=marker, ms=6, mfc=colour, mec="k", mew=0.5,
                        ecolor=colour, elinewidth=1, capsize=0, alpha=0.9)
            points.append((name, loss, c.get("verdict"), x, c["bound"]))
            xs_all += [x, hi] + ([lo] if lo > 0 else [])
            ys_all.append(c["bound"])
        ax.scatter([], [], marker=marker, facecolor="white", edgecolor="k",
                   label=f"{CHECK_LABELS.get(name, name)}, {LOSS_LABELS.get(loss, loss)} ({kinds[(name, loss)]})")
    if xs_all:
        lo_x, hi_x = min(xs_all) / 2, max(xs_all) * 2
        lo_y, hi_y = min(ys_all) / 2, max(ys_all) * 2
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo_x, hi_x)
        ax.set_ylim(lo_y, hi_y)
        d = [max(lo_x, lo_y), min(hi_x, hi_y)]
        if d[0] < d[1]:
            ax.plot(d, d, "k--", lw=1, label="bound = |observed| (below: violated)")
    for v in ("holds", "inconclusive", "violated"):
        ax.scatter([], [], marker="s", color=VERDICT_COLOURS[v], label=f"verdict: {v}")
    note = "bars: |d̂| ± z·SE, the interval each verdict is decided on (a bar that runs to the left frame holds 0)"
    if zero:
        note += f"\n{zero} check(s) with observed value exactly 0 are not drawn (log axis)"
    ax.text(0.0, -0.13, note, transform=ax.transAxes, fontsize=8, va="top", color="0.3")
    ax.set_xlabel("observed |gen(S) − gen(T)|")
    ax.set_ylabel("bound on |gen(S) − gen(T)|")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.kdbounds_points = points
    fig.kdbounds_zero = zero
    return fig


def plot_bound_vs_observed(reports: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Each bound on |gen(S) − gen(T)| against the observed value, log–log, with the line y = x (points
    below it are violations): each point coloured by its verdict, with the interval ``|d̂| ± z·SE`` the
    verdict was decided on, axes fitted to the points.

    Args:
        reports: the pair reports (``PairChecks.to_dict()`` with ``records``; older reports with ``checks``).
            Records that are not defined or have no number are skipped; an observed value of exactly 0 is
            counted in the figure's note.
        path: the image file written (atomically).

    Returns:
        ``path``.
    """
    return save_figure(bound_vs_observed_figure(reports), path)


#: what a table shows for a value that is not defined (``None``, NaN): never "None" or "nan"
UNDEFINED = "—"


def format_number(v: Any, spec: str = ".3f") -> str:
    """``format(v, spec)`` for a finite number, :data:`UNDEFINED` ("—") for anything else (``None``, NaN, inf):
    the one number cell of the generated README tables.

    Args:
        v: the value.
        spec: its format.

    Returns:
        The text.
    """
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else UNDEFINED


def format_table(rows: Sequence[dict[str, Any]], cols: Sequence[str], floatfmt: str = ".4g") -> str:
    """A GitHub-markdown table of ``cols`` from ``rows``.

    Args:
        rows: dicts (missing keys print empty).
        cols: the columns, in order.
        floatfmt: format of float cells.

    Returns:
        The table as text; a value that is not defined (``None``, NaN) is shown as :data:`UNDEFINED` ("—"; the
        caller says why, e.g. in a ``note`` column), never as "None" or "nan".
    """
    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return UNDEFINED
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)
