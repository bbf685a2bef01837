"""Figures of the linear-Gaussian sweeps (matplotlib; imported only on demand, never by
``linear_gaussian/__init__``).

The figures are plain :class:`matplotlib.figure.Figure` objects, made without ``pyplot``: the backend
of the process (a notebook's inline backend) is never switched, and ``savefig`` renders with Agg.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .sweeps import SWEEPS, mean_by_x

__all__ = ["plot_terms", "plot_bounds", "terms_grid_figure", "ratios_grid_figure", "frontier_figure", "SWEEP_LABELS"]


def _xaxis(ax: Any, rows: list[dict[str, Any]], sweep: str, logx: bool) -> None:
    if logx:
        ax.set_xscale("log")
        xs = sorted({r["x"] for r in rows if r["sweep"] == sweep})
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{x:g}" for x in xs], fontsize=7)
        ax.minorticks_off()


#: sweep names as axis labels
SWEEP_LABELS = {"rank": "student rank $r$", "n": "training examples $n$", "tau_ratio": "temperature ratio $\\tau_S / \\tau_T$",
                "lam_S": "student ridge $\\lambda_S$"}

#: the sweeps drawn on a logarithmic x axis (geometric grids)
LOG_SWEEPS = ("n", "tau_ratio", "lam_S")

#: the terms of K = B + R_r + V: (row key, label, marker style)
TERMS = (("total", "$K$", "k-o"), ("bias", "$B$ (bias)", "C0-s"), ("rank_bottleneck", "$R_r$ (rank bottleneck)", "C1-^"),
         ("variance", "$V$ (variance)", "C2-v"))

#: the tightness ratios, bound / exact gap difference: (row key, label, style)
RATIOS = (("ratio_theorem3b", "Th. 3B, exact DV", "C0-o"), ("ratio_subgamma", "sub-gamma relaxation", "C1--s"),
          ("ratio_theorem1", "Th. 1, $\\sigma$ = sd of the gap (heuristic)", "C2:^"),
          ("ratio_theorem3a", "Th. 3A, $\\rho$ = RMS radius (heuristic)", "C3-.v"))

#: symlog's linear range; a zero curve is drawn inside the frame, on a labelled 0 line
_LINTHRESH = 1e-3


def _zero_visible(ax: Any, top: float) -> None:
    """Every term is >= 0: the frame runs from just below 0 (a term equal to 0 is drawn inside it, on a grey 0 line)
    to a factor 3 above the largest value (no curve on the top frame)."""
    ax.set_ylim(-0.5 * _LINTHRESH, max(top, _LINTHRESH) * 3)
    ax.axhline(0.0, color="0.6", lw=0.8, zorder=0)


def _figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (5.5, 4)) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=nrows * ncols == 1)


def _draw_terms(ax: Any, rows: list[dict[str, Any]], sweep: str, logx: bool, logy: bool = True) -> None:
    """``K, B, R_r, V`` (mean over seeds ± SE) against one sweep, on ``ax``."""
    top = 0.0
    for key, label, style in TERMS:
        x, m, se = mean_by_x(rows, sweep, key)
        ax.errorbar(x, m, yerr=se, fmt=style, ms=4, capsize=2, label=label)
        top = max([top, *(m + se)[np.isfinite(m + se)]])
    _xaxis(ax, rows, sweep, logx)
    if logy:
        ax.set_yscale("symlog", linthresh=_LINTHRESH)
        _zero_visible(ax, top)  # a term that is exactly 0 (R_r at full rank) is drawn inside the frame, not on it
    ax.set_xlabel(SWEEP_LABELS.get(sweep, sweep))
    ax.set_ylabel(f"KL terms (nats; linear below {_LINTHRESH:g})" if logy else "KL terms (nats)")


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
    _draw_terms(ax, rows, sweep, logx, logy)
    ax.set_title("$K = B + R_r + V$")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _seeds(rows: list[dict[str, Any]]) -> int:
    return len({r["seed"] for r in rows})


def terms_grid_figure(rows: list[dict[str, Any]], sweeps: tuple[str, ...] = SWEEPS):
    """Figure: the terms of ``K = B + R_r + V`` (mean over seeds +- SE) against each sweep, one panel a sweep, the
    geometric grids (:data:`LOG_SWEEPS`) on a log x axis; symlog y, a term equal to 0 drawn inside the frame.

    Args:
        rows: rows from :func:`~linear_gaussian.sweeps.run_sweeps`.
        sweeps: the sweeps, one panel each (2 x 2 for four).

    Returns:
        A :class:`matplotlib.figure.Figure` (not registered with pyplot).
    """
    ncols = 2 if len(sweeps) > 1 else 1
    fig, axes = _figure((len(sweeps) + 1) // 2, ncols, figsize=(5.6 * ncols, 4.1 * ((len(sweeps) + 1) // 2)))
    for ax, sweep in zip(np.ravel(axes), sweeps):
        _draw_terms(ax, rows, sweep, sweep in LOG_SWEEPS)
        ax.set_title(f"against the {SWEEP_LABELS.get(sweep, sweep).split(' $')[0]}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"The terms of $K = B + R_r + V$ (mean ± SE over {_seeds(rows)} seed(s); "
                 f"symlog y, linear below {_LINTHRESH:g})")
    fig.tight_layout()
    return fig


def ratios_grid_figure(rows: list[dict[str, Any]], sweeps: tuple[str, ...] = SWEEPS):
    """Figure: each bound divided by the exact gap difference it bounds (mean over seeds +- SE; 1 = tight, below 1 a
    violation) against each sweep, one panel a sweep, log y fitted to the data and the line 1.

    Args:
        rows: rows from :func:`~linear_gaussian.sweeps.run_sweeps`.
        sweeps: the sweeps, one panel each.

    Returns:
        A :class:`matplotlib.figure.Figure` (not registered with pyplot).
    """
    ncols = 2 if len(sweeps) > 1 else 1
    fig, axes = _figure((len(sweeps) + 1) // 2, ncols, figsize=(5.6 * ncols, 4.1 * ((len(sweeps) + 1) // 2)))
    for ax, sweep in zip(np.ravel(axes), sweeps):
        lo, hi = [1.0], [1.0]
        for key, label, style in RATIOS:
            x, m, se = mean_by_x(rows, sweep, key)
            ax.errorbar(x, m, yerr=se, fmt=style, ms=4, capsize=2, label=label)
            ok = np.isfinite(m) & (m > 0)
            lo += list(np.where(m - se > 0, m - se, m)[ok])
            hi += list((m + se)[ok])
        ax.axhline(1.0, color="k", lw=0.8)
        _xaxis(ax, rows, sweep, sweep in LOG_SWEEPS)
        ax.set_yscale("log")
        ax.set_ylim(min(lo) / 1.6, max(hi) * 1.6)
        ax.set_xlabel(SWEEP_LABELS.get(sweep, sweep))
        ax.set_ylabel("bound / exact gap difference")
        ax.set_title(f"against the {SWEEP_LABELS.get(sweep, sweep).split(' $')[0]}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"Bound / exact |gen(S|D) − gen(T|D)| (mean ± SE over {_seeds(rows)} seed(s); 1 = tight)")
    fig.tight_layout()
    return fig


def frontier_figure(ks: Any, bounds: dict[str, Any], tilted: tuple[Any, Any],
                    distilled: dict[str, tuple[Any, Any]] | None = None):
    """Figure: every bound on ``gen(S|D) - gen(T|D)`` as a function of the divergence K for one teacher, the exact
    differences of the tilted students (which attain Theorem 3B) and of distilled students; symlog y, x and y fitted
    to the curves and points (nothing on the frame).

    Everything drawn is exact (closed forms): no interval exists to draw.

    Args:
        ks: the grid of K (nats, > 0).
        bounds: on ``ks``, ``theorem3b_upper``, ``theorem3b_lower``, ``subgamma_upper``, ``subgamma_lower``
            and ``theorem1_bound`` (the heuristic Theorem 1, drawn with both signs).
        tilted: ``(K, difference)`` of the tilted students.
        distilled: per sweep name, ``(K, difference)`` of distilled students (K > 0).

    Returns:
        A :class:`matplotlib.figure.Figure` (not registered with pyplot).
    """
    fig, ax = _figure(figsize=(8.4, 6.6))
    ks = np.asarray(ks, float)
    for key, label, style in (("theorem3b", "Th. 3B, exact DV (upper / lower)", "C0-"),
                              ("subgamma", "sub-gamma relaxation", "C1--")):
        ax.plot(ks, bounds[f"{key}_upper"], style, label=label)
        ax.plot(ks, bounds[f"{key}_lower"], style)
    th1 = np.asarray(bounds["theorem1_bound"], float)
    ax.plot(ks, th1, "C2:", label="Th. 1, $\\sigma$ = sd of the gap under $q_T$ (heuristic)")
    ax.plot(ks, -th1, "C2:")
    kt, dt = (np.asarray(v, float) for v in tilted)
    ax.plot(kt, dt, "k.", ms=7, label="tilted students $Q_\\lambda \\propto q_T\\, e^{\\lambda f}$ (exact)")
    markers = {"rank": "s", "tau_ratio": "^", "lam_S": "v", "n": "D"}
    for sweep, (k, dlt) in (distilled or {}).items():
        if len(k):
            ax.plot(k, dlt, markers.get(sweep, "o"), ls="none", mfc="none",
                    label=f"distilled students, {SWEEP_LABELS.get(sweep, sweep).split(' $')[0]} sweep (exact)")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=_LINTHRESH)
    ys = np.concatenate([np.ravel(bounds[k]) for k in ("theorem3b_upper", "theorem3b_lower", "subgamma_upper",
                                                        "subgamma_lower")] + [th1, -th1, dt]
                        + [np.asarray(d, float) for _, d in (distilled or {}).values()])
    ys = ys[np.isfinite(ys)]
    ax.set_ylim(min(ys.min(), -_LINTHRESH) * 3, max(ys.max(), _LINTHRESH) * 3)  # no curve on the frame
    ax.set_xlim(ks.min(), ks.max())
    ax.axhline(0.0, color="0.6", lw=0.8, zorder=0)
    ax.set_xlabel("distillation divergence $K = \\mathrm{KL}(q_S \\,\\|\\, q_T)$ (nats)")
    ax.set_ylabel(f"gen(S|D) − gen(T|D) (squared loss; linear below {_LINTHRESH:g})")
    ax.set_title("the bounds as functions of $K$ for one teacher, and exact gap differences")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def plot_bounds(rows: list[dict[str, Any]], sweep: str, logx: bool = False):
    """Figure: exact gap difference (mean over seeds, error bars +- SE) and the bounds (3B exact DV, sub-gamma, Th.1;
    mean over seeds, bands +- SE) vs ``sweep``.

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
        xx, mm, ss = mean_by_x(rows, sweep, key)
        ax.plot(xx, mm, color=color, ls=ls, label=label)
        ax.fill_between(xx, mm - ss, mm + ss, color=color, alpha=0.15, lw=0)  # ± SE over the seeds
    xx, mm, ss = mean_by_x(rows, sweep, "theorem1_bound")
    ax.plot(xx, -mm, color="C2", ls=":")
    ax.fill_between(xx, -mm - ss, -mm + ss, color="C2", alpha=0.15, lw=0)
    _xaxis(ax, rows, sweep, logx)
    ax.set_yscale("symlog", linthresh=_LINTHRESH)
    ax.margins(y=0.08)  # no curve on the frame
    ax.axhline(0.0, color="0.6", lw=0.8, zorder=0)
    ax.set_xlabel(SWEEP_LABELS.get(sweep, sweep))
    ax.set_ylabel(f"gen(S|D) − gen(T|D) (linear below {_LINTHRESH:g})")
    ax.set_title(f"the bounds and the exact gap difference (mean ± SE over {_seeds(rows)} seed(s))", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
