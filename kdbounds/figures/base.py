"""The figure conventions every figure of kdbounds follows: a plain :class:`matplotlib.figure.Figure` (never
``pyplot``: no backend is selected or switched, so a notebook kernel keeps its inline backend, and nothing is
registered with pyplot's figure manager, so long runs leak no figure), an atomic save, one colour per verdict
(Okabe–Ito, colour-blind-safe), the names of checks, losses and quantities as they read in a figure, and the exact
binomial interval drawn around every accuracy.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes

__all__ = ["VERDICT_COLOURS", "CHECK_LABELS", "LOSS_LABELS", "QUANTITY_LABELS", "plt_figure", "save_figure",
           "binomial_interval"]

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
    :func:`kdbounds.stats.clopper_pearson` of ``round(rate * n)`` successes.

    Args:
        rate: the measured rate, a multiple of ``1/n``.
        n: the number of examples (>= 1).
        level: the confidence level.

    Returns:
        ``(low, high)``.
    """
    from ..stats import clopper_pearson

    return clopper_pearson(int(round(rate * n)), int(n), level)


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
