"""Figures of the sharpness-vs-gap study and of check records: the student gap against the teacher's sharpness,
every bound against its observed value with the interval its verdict was decided on, verdict counts per check, and
a Hessian spectrum (SLQ density with the top Lanczos eigenvalues).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import CHECK_LABELS, LOSS_LABELS, QUANTITY_LABELS, VERDICT_COLOURS, plt_figure, save_figure

__all__ = ["sharpness_vs_gap_figure", "plot_sharpness_vs_gap", "bound_vs_observed_figure", "plot_bound_vs_observed",
           "verdict_counts_figure", "spectrum_figure"]


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


def _observed_interval(c: Mapping[str, Any]) -> tuple[float, float, float]:
    """``|d̂|`` and the interval the verdict was decided on, ``|d̂| ± z·SE`` (z = 1.96 when not recorded)."""
    x = abs(float(c["observed"]))
    se = c.get("observed_se") or 0.0
    z = c.get("z") if isinstance(c.get("z"), (int, float)) else 1.96
    return x, x - z * se, x + z * se


def bound_vs_observed_figure(checks: Sequence[Mapping[str, Any]]) -> Any:
    """The figure of :func:`plot_bound_vs_observed` (a :class:`matplotlib.figure.Figure`, not saved).

    Args:
        checks: check records (``CheckRecord.to_dict()``: ``name``, ``loss``, ``kind``, ``side``, ``verdict``,
            ``bound``, ``observed``, ``observed_se``, ``z``), e.g. a study's ``results["checks"]``.

    Returns:
        The figure; its ``kdbounds_points`` attribute lists, per drawn point, ``(check, loss, verdict,
        x, y)`` and ``kdbounds_zero`` the number of checks with an observed value of exactly 0 (not drawable
        on a log axis, stated in the figure).
    """
    fig, ax = plt_figure(figsize=(8.6, 5.2))
    kinds = {(c["name"], c["loss"]): c.get("kind", "") for c in checks}
    names = sorted({(c["name"], c["loss"]) for c in checks
                    if c["side"] == "abs" and c.get("verdict") != "not_defined"})
    xs_all, ys_all, points, zero = [], [], [], 0
    markers = "osD^v<>ph*"
    for i, (name, loss) in enumerate(names):
        recs = [c for c in checks if c["name"] == name and c["loss"] == loss
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


def plot_bound_vs_observed(checks: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Each bound on |gen(S) − gen(T)| against the observed value, log–log, with the line y = x (points
    below it are violations): each point coloured by its verdict, with the interval ``|d̂| ± z·SE`` the
    verdict was decided on, axes fitted to the points.

    Args:
        checks: check records, as for :func:`bound_vs_observed_figure`. Records that are not defined or have no number are skipped; an observed value of exactly 0 is
            counted in the figure's note.
        path: the image file written (atomically).

    Returns:
        ``path``.
    """
    return save_figure(bound_vs_observed_figure(checks), path)


def spectrum_figure(grid: Sequence[float], density: Sequence[float], eigenvalues: Sequence[float],
                    residuals: Sequence[float], nodes: Sequence[float], weights: Sequence[float], *,
                    title: str = "", dynamic_range: float = 1e8) -> Any:
    """The Hessian spectrum: the SLQ density (log scale) with the top Lanczos eigenvalues and their
    residual intervals, and the quadrature nodes with their weights.

    The density is drawn where it is within ``dynamic_range`` of its peak (below that it is numerically zero and is
    not floored onto the axis; the figure says so); a node of weight 0 is counted, not drawn.

    Args:
        grid: eigenvalue grid of the density.
        density: the SLQ density on ``grid``.
        eigenvalues: top eigenvalues (Lanczos).
        residuals: their residual bounds (each true eigenvalue lies within its residual of the Ritz value).
        nodes: the SLQ nodes (Ritz values), all runs.
        weights: their quadrature weights.
        title: the left panel's title.
        dynamic_range: the density range drawn below its peak.

    Returns:
        The figure; ``kdbounds_hidden_nodes`` counts the nodes of weight 0.
    """
    g, d = np.asarray(grid, float), np.asarray(density, float)
    peak = float(np.nanmax(d)) if d.size else 1.0
    keep = d > peak / dynamic_range
    fig, (a1, a2) = plt_figure(1, 2, figsize=(13, 4.4))
    a1.plot(g, np.where(keep, d, np.nan), color="C0", label="SLQ density")  # a gap where it is numerically 0
    a1.set_yscale("log")
    a1.set_ylim(peak / dynamic_range, peak * 3)
    for i, (v, r) in enumerate(zip(eigenvalues, residuals)):
        a1.axvspan(v - r, v + r, color="C3", alpha=0.25, lw=0)
        a1.axvline(v, color="C3", lw=0.8, ls="--", label="top Lanczos eigenvalues ± residual" if i == 0 else None)
    a1.set_xlabel("eigenvalue $\\lambda$ of $\\nabla^2 L_{\\mathrm{train}}$ (clipped CE)")
    a1.set_ylabel("density (log scale)")
    a1.set_title(title or "Hessian spectrum")
    a1.text(0.0, -0.16, f"density drawn down to $10^{{{-round(math.log10(dynamic_range))}}}$ × its peak (below: "
            "numerically 0, not drawn)",
            transform=a1.transAxes, fontsize=8, color="0.3", va="top")
    a1.legend(fontsize=8)
    n, w = np.asarray(nodes, float).ravel(), np.asarray(weights, float).ravel()
    pos = w > 0
    a2.scatter(n[pos], w[pos], s=12, color="C0", label="SLQ nodes (Ritz values) and weights")
    a2.set_yscale("log")
    if pos.any():
        a2.set_ylim(w[pos].min() / 3, min(1.5, w[pos].max() * 3))
    hidden = int((~pos).sum())
    a2.set_xlabel("Ritz value $\\theta$")
    a2.set_ylabel("quadrature weight (share of the spectral mass)")
    a2.set_title("where the spectral mass sits")
    if hidden:
        a2.text(0.0, -0.16, f"{hidden} node(s) of weight 0 not drawn (log axis)", transform=a2.transAxes,
                fontsize=8, color="0.3", va="top")
    a2.legend(fontsize=8)
    for a in (a1, a2):
        a.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.kdbounds_hidden_nodes = hidden
    return fig


def verdict_counts_figure(checks: Sequence[Mapping[str, Any]]) -> Any:
    """The verdict table as one bar per check (name and loss, with its kind): how many pairs got each
    verdict, in the verdict colours of every figure. Compact whatever the number of pairs.

    Args:
        checks: check records (``name``, ``loss``, ``kind``, ``verdict``).

    Returns:
        The figure; ``kdbounds_counts`` maps ``(name, loss)`` to its verdict counts.
    """
    from matplotlib.ticker import MaxNLocator

    keys = sorted({(c["name"], c["loss"]) for c in checks})
    kinds = {(c["name"], c["loss"]): c.get("kind", "") for c in checks}
    counts = {k: Counter(c["verdict"] for c in checks if (c["name"], c["loss"]) == k) for k in keys}
    order = [v for v in ("holds", "inconclusive", "violated", "not_defined") if any(v in cn for cn in counts.values())]
    order += sorted({v for cn in counts.values() for v in cn} - set(order))
    fig, ax = plt_figure(figsize=(9.5, 0.42 * len(keys) + 1.6))
    left = np.zeros(len(keys))
    for v in order:
        n = np.array([counts[k].get(v, 0) for k in keys], dtype=float)
        ax.barh(np.arange(len(keys)), n, left=left, color=VERDICT_COLOURS.get(v, "#999999"), label=v.replace("_", " "),
                edgecolor="white", lw=0.5)
        left += n
    ax.set_yticks(np.arange(len(keys)))
    ax.set_yticklabels([f"{CHECK_LABELS.get(n, n)}, {LOSS_LABELS.get(loss, loss)} ({kinds[(n, loss)]})"
                        for n, loss in keys], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(left.max() if left.size else 1, 1) * 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("teacher–student pairs")
    ax.set_title("verdict of each check over the pairs (Holm-corrected, one family per run)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="verdict", title_fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.kdbounds_counts = {k: dict(cn) for k, cn in counts.items()}
    return fig
