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


#: sweep names as axis labels
SWEEP_LABELS = {"rank": "student rank r", "n": "training examples n", "tau_ratio": "noise ratio τ_S / τ_T",
                "lam_S": "student ridge λ_S"}

#: symlog's linear range; a zero curve is drawn inside the frame, on a labelled 0 line
_LINTHRESH = 1e-3


def _zero_visible(ax: Any) -> None:
    ax.set_ylim(-0.5 * _LINTHRESH, ax.get_ylim()[1])  # every term is >= 0
    ax.axhline(0.0, color="0.6", lw=0.8, zorder=0)


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
        ax.set_yscale("symlog", linthresh=_LINTHRESH)
        _zero_visible(ax)  # a term that is exactly 0 (R_r at full rank) is drawn inside the frame, not on it
    ax.set_xlabel(SWEEP_LABELS.get(sweep, sweep))
    ax.set_ylabel(f"KL terms (nats; linear below {_LINTHRESH:g})" if logy else "KL terms (nats)")
    ax.set_title("K = B + R_r + V")
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
    ax.errorbar(x, m, yerr=se, color="k", marker="o", ms=3, capsize=2, label="gen(S|D) − gen(T|D) (exact)")
    styles = (("theorem3b_upper", "Th.3B exact DV", "C0", "-"), ("theorem3b_lower", None, "C0", "-"),
              ("subgamma_upper", "sub-gamma", "C1", "--"), ("subgamma_lower", None, "C1", "--"),
              ("theorem1_bound", "Th.1 (σ = sd heuristic)", "C2", ":"))
    for key, label, color, ls in styles:
        xx, mm, _ = mean_by_x(rows, sweep, key)
        ax.plot(xx, mm, color=color, ls=ls, label=label)
    xx, mm, _ = mean_by_x(rows, sweep, "theorem1_bound")
    ax.plot(xx, -mm, color="C2", ls=":")
    _xaxis(ax, rows, sweep, logx)
    ax.set_yscale("symlog", linthresh=_LINTHRESH)
    ax.margins(y=0.08)  # no curve on the frame
    ax.axhline(0.0, color="0.6", lw=0.8, zorder=0)
    ax.set_xlabel(SWEEP_LABELS.get(sweep, sweep))
    ax.set_ylabel(f"gen(S|D) − gen(T|D) (linear below {_LINTHRESH:g})")
    ax.set_title("the bounds and the exact gap difference")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
