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

__all__ = ["plot_sharpness_vs_gap", "plot_bound_vs_observed", "format_table", "plt_figure", "save_figure"]

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


def plot_sharpness_vs_gap(rows: Sequence[dict[str, Any]], path: str | os.PathLike, *,
                          sharpness: str = "teacher_train_top_eig",
                          gaps: Sequence[str] = ("student_gap_clipped_ce", "student_gap_zero_one"),
                          kendall: Sequence[dict[str, Any]] = ()) -> Path:
    """Scatter of teacher sharpness against the student's gap, one colour per method, one panel per loss;
    the teachers' own gaps are drawn as black crosses. The recipe-level Kendall τ (the recipes' mean sharpness
    against the mean gap of their distilled students, Holm-adjusted p) in the titles when given; a table
    without levels (older results) shows its teacher-level τ.

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
    fig, axes = plt_figure(1, len(gaps), figsize=(5.2 * len(gaps), 4.2), squeeze=False)
    methods = sorted({r["method"] for r in rows})
    for ax, g in zip(axes[0], gaps):
        for m in methods:
            rs = [r for r in rows if r["method"] == m and r.get(sharpness) is not None]
            ax.scatter([r[sharpness] for r in rs], [r[g] for r in rs], label=f"student: {m}", s=40, alpha=0.8)
        tg = g.replace("student_", "teacher_")
        seen = {}
        for r in rows:
            if r.get(sharpness) is not None and tg in r:
                seen[r["teacher"]] = (r[sharpness], r[tg])
        if seen:
            ax.scatter([v[0] for v in seen.values()], [v[1] for v in seen.values()], marker="x", c="k",
                       label="teacher itself")
        title = g.replace("student_gap_", "student gap, ")
        headline = "recipe_mean" if any(k.get("level") == "recipe" for k in kendall) else "teacher_mean"
        for k in kendall:
            if k.get("statistic") == headline and k["sharpness"] == sharpness and k["gap"] == g \
                    and k.get("tau") is not None:
                unit = "recipe" if headline == "recipe_mean" else "teacher"
                if not math.isfinite(k["tau"]) or k.get("p_holm") is None:  # e.g. a constant gap: τ undefined
                    title += f"\n{unit}-level Kendall τ undefined ({k.get('note') or 'no test'})"
                    continue
                n = k.get("n_recipes") if unit == "recipe" else k["n_teachers"]
                title += f"\n{unit}-level Kendall τ = {k['tau']:.2f} (Holm p = {k['p_holm']:.3f}, {n} {unit}s)"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(sharpness.replace("teacher_", "teacher ").replace("_", " "))
        ax.set_ylabel("generalization gap (test − train)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    out = save_figure(fig, path)
    return out


def plot_bound_vs_observed(reports: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Each bound on |gen(S) − gen(T)| against the observed value, log–log,
    with the line y = x: points below the line are violations.

    Args:
        reports: the pair reports (``PairChecks.to_dict()`` with ``records``; older reports with ``checks``).
            Records that are not defined or have no number are skipped.
        path: the image file written (atomically).

    Returns:
        ``path``.
    """
    fig, ax = plt_figure(figsize=(6.2, 5.2))
    def checks(rep: dict[str, Any]) -> list[dict[str, Any]]:
        return rep.get("records", rep.get("checks", []))

    kinds = {(c["name"], c["loss"]): c.get("kind", "") for rep in reports for c in checks(rep)}
    names = sorted({(c["name"], c["loss"]) for rep in reports for c in checks(rep)
                    if c["side"] == "abs" and c.get("verdict") != "not_defined"})
    lo, hi = math.inf, 0.0
    markers = "osD^v<>ph*"
    for i, (name, loss) in enumerate(names):
        xs, ys = [], []
        for rep in reports:
            for c in checks(rep):
                if c["name"] == name and c["loss"] == loss and c["observed"] is not None and c["bound"] is not None:
                    x, y = abs(c["observed"]), c["bound"]
                    if x > 0 and y > 0 and math.isfinite(y):
                        xs.append(x)
                        ys.append(y)
        if xs:
            ax.scatter(xs, ys, label=f"{name} ({loss}; {kinds[(name, loss)]})".replace("; )", ")"), marker=markers[i % len(markers)], s=36, alpha=0.8)
            lo, hi = min(lo, *xs, *ys), max(hi, *xs, *ys)
    if hi > 0:
        ax.plot([lo / 2, hi * 2], [lo / 2, hi * 2], "k--", lw=1, label="y = x (below: violated)")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("observed |gen(S) − gen(T)|")
    ax.set_ylabel("bound")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = save_figure(fig, path)
    return out


def format_table(rows: Sequence[dict[str, Any]], cols: Sequence[str], floatfmt: str = ".4g") -> str:
    """A GitHub-markdown table of ``cols`` from ``rows``.

    Args:
        rows: dicts (missing keys print empty).
        cols: the columns, in order.
        floatfmt: format of float cells.

    Returns:
        The table as text.
    """
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines)
