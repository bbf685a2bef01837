"""Figure of the partial information decomposition of transferred knowledge over a distillation run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import binomial_interval, plt_figure

__all__ = ["pid_curves_figure"]


def pid_curves_figure(rows: Sequence[Mapping[str, Any]], methods: Sequence[str], *, teacher_acc: float | None = None,
                      acc_n: int | None = None) -> Any:
    """The PID curves: ``Red(Y:T,S)`` and ``Uni(Y:T\\S)`` per epoch and method with the shuffled-label floor
    (mean ± 2 sd over the shuffles, the estimator's value with no dependence), a bootstrap 95 % interval where the
    rows carry one (a vertical bar beside the point: the basic bootstrap of :func:`kdbounds.pid.pid_of_representations`
    corrects the plug-in bias, so its interval need not contain the plug-in point), and the students' test accuracy with its exact binomial 95 % interval (``acc_n`` images).

    Args:
        rows: one row per (method, epoch) of :class:`kdbounds.studies.pid_transfer.PIDTracker` records with
            ``method``, ``epoch`` and ``test_acc``.
        methods: the methods, in the order of their colours.
        teacher_acc: the teacher's test accuracy (a line), or None.
        acc_n: the number of test images the accuracies were measured on (their intervals), or None.

    Returns:
        The figure; ``kdbounds_intervals`` counts the intervals drawn per panel.
    """
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt_figure(1, 3, figsize=(15, 4.4))
    drawn = {"redundancy": 0, "unique_t": 0, "accuracy": 0}
    panels = (("redundancy", axes[0], "$\\mathrm{Red}(Y{:}\\,T, S)$ (nats)", "transferred: redundancy"),
              ("unique_t", axes[1], "$\\mathrm{Uni}(Y{:}\\,T \\setminus S)$ (nats)", "left in the teacher: unique information"))
    for i, m in enumerate(methods):
        rr = sorted((r for r in rows if r["method"] == m), key=lambda r: r["epoch"])
        if not rr:
            continue
        ep = np.array([r["epoch"] for r in rr], float)
        colour = f"C{i}"
        for j, (atom, ax, _, _) in enumerate(panels):
            y = np.array([r[atom] for r in rr], float)
            lo = np.array([r.get(f"{atom}_ci_low", np.nan) for r in rr], float)
            hi = np.array([r.get(f"{atom}_ci_high", np.nan) for r in rr], float)
            has = np.isfinite(lo) & np.isfinite(hi)
            ax.plot(ep, y, "-o", color=colour, ms=4, label=m.upper() if m in ("kd", "vid", "rid") else m)
            if has.any():  # a basic-bootstrap interval corrects the plug-in bias: it need not contain the point
                shift = 0.06 * (i - (len(methods) - 1) / 2)  # side by side at one epoch
                ax.vlines(ep[has] + shift, lo[has], hi[has], color=colour, lw=1.6, alpha=0.8,
                          label="basic-bootstrap 95 % interval (bias-corrected)" if i == 0 else None)
            drawn[atom] += int(has.sum())
            floor = np.array([r[f"{atom}_shuffle_mean"] for r in rr], float)
            sd = np.array([r.get(f"{atom}_shuffle_sd", 0.0) or 0.0 for r in rr], float)
            ax.plot(ep, floor, ":", color=colour, alpha=0.8)
            ax.fill_between(ep, floor - 2 * sd, floor + 2 * sd, color=colour, alpha=0.08, lw=0)
        acc = np.array([r["test_acc"] if r.get("test_acc") is not None else np.nan for r in rr], float)
        if acc_n:
            ci = np.array([binomial_interval(a, acc_n) if np.isfinite(a) else (np.nan, np.nan) for a in acc])
            yerr = np.vstack([acc - ci[:, 0], ci[:, 1] - acc])
            drawn["accuracy"] += int(np.isfinite(ci).all(axis=1).sum())
        else:
            yerr = None
        axes[2].errorbar(ep, acc, yerr=yerr, fmt="-^", color=colour, ms=4, capsize=2,
                         label=f"student ({m.upper() if m in ('kd', 'vid', 'rid') else m})")
    if teacher_acc is not None:
        axes[2].axhline(teacher_acc, color="k", lw=1, label=f"teacher ({teacher_acc:.3f})")
    for atom, ax, ylabel, title in panels:
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.plot([], [], ":", color="0.4", label="shuffled labels (mean ± 2 sd)")
    axes[2].set_ylabel("test accuracy" + (f" (95 % CI, {acc_n} images)" if acc_n else ""))
    axes[2].set_title("student test accuracy")
    for ax in axes:
        ax.set_xlabel("student training epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
        ax.margins(y=0.1)
    fig.tight_layout()
    fig.kdbounds_intervals = drawn
    return fig
