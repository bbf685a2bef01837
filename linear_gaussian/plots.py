"""Figures of the linear-Gaussian sweeps (matplotlib; imported only on demand, never by
``linear_gaussian/__init__``).

The figures are plain :class:`matplotlib.figure.Figure` objects, made without ``pyplot``: the backend
of the process (a notebook's inline backend) is never switched, and ``savefig`` renders with Agg.
"""

from __future__ import annotations

from typing import Any

from .sweeps import mean_by_x

__all__ = ["plot_terms", "plot_bounds"]


def _xaxis(ax: Any, rows: list[dict[str, Any]], sweep: str, logx: bool) -> None:
    if logx:
        ax.set_xscale("log")
        xs = sorted({r["x"] for r in rows if r["sweep"] == sweep})
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:g}" for x in xs], fontsize=7)
        ax.minorticks_off()


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4))
    return fig, fig.subplots()


def plot_terms(rows: list[dict[str, Any]], sweep: str, logx: bool = False, logy: bool = True):
    """Figure: total, bias, rank bottleneck, variance (mean over seeds, +- SE) against ``sweep``.

    Args:
        rows: rows from :func:`~linear_gaussian.sweeps.run_sweeps`.
        sweep: the sweep to plot (its x on the horizontal axis).
        logx: logarithmic x axis.
        logy: logarithmic y axis.

    Returns:
        A :class:`matplotlib.figure.Figure` (not registered with pyplot; save it with ``fig.savefig``).
    """
    fig, ax = _figure()
    for key, label in (("total", "K"), ("bias", "B"), ("rank_bottleneck", "R_r"), ("variance", "V")):
        x, m, se = mean_by_x(rows, sweep, key)
        ax.errorbar(x, m, yerr=se, marker="o", ms=3, capsize=2, label=label)
    _xaxis(ax, rows, sweep, logx)
    if logy:
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_ylim(bottom=0.0)
    ax.set_xlabel(sweep)
    ax.set_ylabel("nats")
    ax.set_title(f"K = B + R_r + V vs {sweep}")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_bounds(rows: list[dict[str, Any]], sweep: str, logx: bool = False):
    """Figure: exact gap difference and the bounds (3B exact DV, sub-gamma, Th.1, Th.3A) vs ``sweep``.

    Args:
        rows: rows from :func:`~linear_gaussian.sweeps.run_sweeps`.
        sweep: the sweep to plot.
        logx: logarithmic x axis.

    Returns:
        A :class:`matplotlib.figure.Figure` (not registered with pyplot; save it with ``fig.savefig``).
    """
    fig, ax = _figure()
    x, m, se = mean_by_x(rows, sweep, "gap_difference")
    ax.errorbar(x, m, yerr=se, color="k", marker="o", ms=3, capsize=2, label="gen(S|D) - gen(T|D) (exact)")
    styles = (("theorem3b_upper", "Th.3B exact DV", "C0", "-"), ("theorem3b_lower", None, "C0", "-"),
              ("subgamma_upper", "sub-gamma", "C1", "--"), ("subgamma_lower", None, "C1", "--"),
              ("theorem1_bound", "Th.1 (sigma = sd heuristic)", "C2", ":"))
    for key, label, color, ls in styles:
        xx, mm, _ = mean_by_x(rows, sweep, key)
        ax.plot(xx, mm, color=color, ls=ls, label=label)
    xx, mm, _ = mean_by_x(rows, sweep, "theorem1_bound")
    ax.plot(xx, -mm, color="C2", ls=":")
    _xaxis(ax, rows, sweep, logx)
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_xlabel(sweep)
    ax.set_ylabel("gap difference")
    ax.set_title(f"bounds vs exact gap difference ({sweep})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
