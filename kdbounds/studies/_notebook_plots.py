"""The figures notebooks 02–05 draw, as :class:`matplotlib.figure.Figure` objects (never ``pyplot``), held to the
figure standards of the studies (:mod:`kdbounds.studies._plots`): an interval wherever the number has one, verdict
colours where verdicts are drawn, nothing below zero floored onto a log axis (a zero is said, not drawn), axes
fitted to the data, maths in the labels. ``tests/studies/test_figures.py`` checks them as objects.

Each function returns the figure and attaches what it drew (``kdbounds_*`` attributes) for those tests.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._plots import CHECK_LABELS, LOSS_LABELS, VERDICT_COLOURS, binomial_interval, plt_figure

__all__ = ["oracle_certificate_figure", "network_certificates_figure", "spectrum_figure", "verdict_counts_figure",
           "pid_curves_figure", "prior_posterior_certificate_figure"]

#: the colour of a certificate, of the truth it bounds, and of an empirical estimate, in every certificate figure
_CERT, _TRUE, _EMP = "C0", "C1", "C2"


def _positive(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float], list[float]]:
    """``(x, y)`` of the strictly positive, finite ``ys`` and the ``x`` of the zeros (drawable on no log axis)."""
    keep = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y) and y > 0]
    zeros = [x for x, y in zip(xs, ys) if y is not None and math.isfinite(y) and y == 0]
    return [k[0] for k in keep], [k[1] for k in keep], zeros


def _maths(text: str) -> str:
    """A name written in plain text with subscripts (``learnt on D_T``) as it reads in a figure (``$D_{T}$``)."""
    import re

    return re.sub(r"\b([A-Za-z])_([A-Za-z0-9]+)\b", r"$\1_{\2}$", text)


def _fit_unit_range(ax: Any, values: Sequence[float], top: float = 1.0) -> None:
    """A risk axis from 0 to a little above the largest value (at most ``top`` plus room for the legend)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    hi = max(vals) if vals else top
    ax.set_ylim(0.0, min(top, hi) * 1.18 if hi > 0 else 1.0)


def oracle_certificate_figure(rows_n: Sequence[Mapping[str, Any]], rows_sp: Sequence[Mapping[str, Any]],
                              rows_type: Mapping[str, Mapping[str, Any]], *, population: float, sigma_q: float,
                              sigma_p: float, delta: float) -> Any:
    """Notebook 02's exact-oracle figure: the certificate against ``n_S``, the KL split against ``σ_P``, and per
    prior type.

    Every number here is exact (closed-form Gibbs risks, no Monte Carlo): no interval is drawn because none exists.
    A KL term equal to 0 (the variance term at ``σ_P = σ_Q``) is marked on the axis with its value, not floored.

    Args:
        rows_n: per ``n_S``: ``n_s``, ``certificate``, ``population``, ``empirical``.
        rows_sp: per prior scale: ``sigma_p``, ``mean_term``, ``variance_term``, ``kl``, ``certificate``.
        rows_type: per prior type: ``certificate``.
        population: the exact population Gibbs risk of the posterior certified in the prior-type panel.
        sigma_q: the posterior's standard deviation.
        sigma_p: the prior standard deviation of the prior-type panel.
        delta: the certificate's δ.

    Returns:
        The figure; ``kdbounds_zero_terms`` lists ``(term, σ_P)`` of the zeros stated instead of drawn.
    """
    from matplotlib.ticker import NullFormatter

    fig, axes = plt_figure(1, 3, figsize=(15, 4.4))
    ax = axes[0]
    ns = [r["n_s"] for r in rows_n]
    ax.plot(ns, [r["certificate"] for r in rows_n], "-o", color=_CERT, label=f"certificate on $L(Q)$ ($\\delta$ = {delta:g})")
    ax.plot(ns, [r["population"] for r in rows_n], "-s", color=_TRUE, label="population Gibbs risk $L(Q)$ (exact)")
    ax.plot(ns, [r["empirical"] for r in rows_n], ":^", color=_EMP, label="empirical Gibbs risk on $D_S$ (exact)")
    ax.set_xscale("log")
    ax.set_xlabel("certification examples $n_S$")
    ax.set_ylabel("0–1 Gibbs risk")
    ax.set_title("the certificate against the size of $D_S$")
    _fit_unit_range(ax, [v for r in rows_n for v in (r["certificate"], r["population"], r["empirical"])])
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)

    ax = axes[1]
    sp = [r["sigma_p"] for r in rows_sp]
    zero_terms: list[tuple[str, float]] = []
    drawn: list[float] = []
    for key, label, style in (("mean_term", "mean term $\\frac{1}{2}\\sum (m_Q - m_P)^2/\\sigma_P^2$", "-o"),
                              ("variance_term", "variance term $\\frac{1}{2}\\sum \\varphi(\\sigma_Q^2/\\sigma_P^2)$", "-s"),
                              ("kl", "$\\mathrm{KL}(Q \\,\\|\\, P)$", "k--")):
        xs, ys, zeros = _positive(sp, [r[key] for r in rows_sp])
        ax.plot(xs, ys, style, label=label, ms=4)
        drawn += ys
        zero_terms += [(key, x) for x in zeros]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # labels on the decades only: they never overlap
    if drawn:
        ax.set_ylim(min(drawn) / 3, max(drawn) * 3)
    ax.axvline(sigma_q, color="0.5", lw=0.8, label="$\\sigma_P = \\sigma_Q$")
    for key, x in zero_terms:
        ax.annotate("variance term = 0" if key == "variance_term" else f"{key} = 0", (x, 0.0), xycoords=("data", "axes fraction"),
                    xytext=(2, 4), textcoords="offset points", fontsize=8, rotation=90, va="bottom", color="C1")
    ax.set_xlabel("prior standard deviation $\\sigma_P$")
    ax.set_ylabel("nats (log scale; a term equal to 0 is marked)")
    ax.set_title("the divergence split into its two terms")
    twin = ax.twinx()
    twin.plot(sp, [r["certificate"] for r in rows_sp], "-", color="C3", alpha=0.7, label="certificate (right axis)")
    twin.set_ylabel("certificate on $L(Q)$", color="C3")
    _fit_unit_range(twin, [r["certificate"] for r in rows_sp])
    twin.grid(False)
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)

    ax = axes[2]
    names = list(rows_type)
    pos = np.arange(len(names))
    certs = [rows_type[n]["certificate"] for n in names]
    ax.bar(pos, certs, 0.55, color=_CERT, label="certificate on $L(Q)$")
    ax.axhline(population, color=_TRUE, lw=1.5, label=f"population Gibbs risk of $Q$ = {population:.3f} (exact)")
    ax.set_xticks(pos)
    ax.set_xticklabels([_maths(n) for n in names], fontsize=8)
    ax.set_ylabel("0–1 Gibbs risk")
    ax.set_title(f"per prior type ($\\sigma_P$ = {sigma_p:g}, $\\sigma_Q$ = {sigma_q:g})")
    _fit_unit_range(ax, [*certs, population])
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    for a in axes:
        a.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.kdbounds_zero_terms = zero_terms
    return fig


def network_certificates_figure(certs: Sequence[Mapping[str, Any]]) -> Any:
    """Notebook 02's network figure: per (prior, student) certificate, the certified bound next to the held-out
    Gibbs error with its 95 % interval, and the KL split into its mean and variance terms (log scale; a term equal
    to 0 is written "0" where its bar would be).

    Args:
        certs: 0–1 certificate records of certify_students (``prior``, ``student``, ``risk_upper``,
            ``test_gibbs_risk``, ``test_gibbs_ci_low``/``_high``, ``mean_term``, ``variance_term``).

    Returns:
        The figure; ``kdbounds_zero_terms`` counts the terms written "0".
    """
    labels = [f"{c.get('prior')}\n{c.get('student')}" for c in certs]
    pos = np.arange(len(certs))
    fig, (a1, a2) = plt_figure(2, 1, figsize=(max(8.0, 0.75 * len(certs) + 5.0), 7.2), sharex=True)
    a1.bar(pos - 0.2, [c["risk_upper"] for c in certs], 0.4, color=_CERT, label="certified bound on $L(Q)$ (0–1 loss)")
    held = np.array([c.get("test_gibbs_risk") if c.get("test_gibbs_risk") is not None else np.nan for c in certs])
    lo = np.array([c.get("test_gibbs_ci_low") if c.get("test_gibbs_ci_low") is not None else np.nan for c in certs])
    hi = np.array([c.get("test_gibbs_ci_high") if c.get("test_gibbs_ci_high") is not None else np.nan for c in certs])
    err = np.vstack([np.where(np.isfinite(lo), held - lo, 0.0), np.where(np.isfinite(hi), hi - held, 0.0)])
    a1.bar(pos + 0.2, held, 0.4, yerr=err, capsize=3, color=_TRUE, label="held-out Gibbs error (95 % CI)")
    a1.axhline(0.9, color="k", ls="--", lw=0.8, label="trivial: 0.9 (a uniform guess)")
    a1.set_ylim(0, 1.02)
    a1.set_ylabel("0–1 risk")
    a1.set_title("certificate against the held-out error, per prior and student")
    a1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    zeros = 0
    tops: list[float] = []
    for i, (key, label) in enumerate((("mean_term", "KL mean term"), ("variance_term", "KL variance term"))):
        v = np.array([c.get(key) if c.get(key) is not None else np.nan for c in certs], dtype=float)
        off = -0.2 if i == 0 else 0.2
        a2.bar(pos + off, np.where(v > 0, v, np.nan), 0.4, color=f"C{2 + i}", label=label)
        tops += [float(x) for x in v if np.isfinite(x) and x > 0]
        for x, val in zip(pos, v):
            if val == 0:
                zeros += 1
                a2.annotate("0", (x + off, 0.0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                            fontsize=9, xytext=(0, 2), textcoords="offset points")
    a2.set_yscale("log")
    if tops:
        a2.set_ylim(min(tops) / 3, max(tops) * 5)
    a2.set_ylabel("nats (log scale; 0 written as 0)")
    a2.set_title("$\\mathrm{KL}(Q \\,\\|\\, P)$ = mean term + variance term")
    a2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    a2.set_xticks(pos)
    a2.set_xticklabels(labels, fontsize=8)
    for a in (a1, a2):
        a.grid(alpha=0.3, axis="y", which="both")
    fig.tight_layout()
    fig.kdbounds_zero_terms = zeros
    return fig


def spectrum_figure(grid: Sequence[float], density: Sequence[float], eigenvalues: Sequence[float],
                    residuals: Sequence[float], nodes: Sequence[float], weights: Sequence[float], *,
                    title: str = "", dynamic_range: float = 1e8) -> Any:
    """Notebook 03's Hessian spectrum: the SLQ density (log scale) with the top Lanczos eigenvalues and their
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
    """Notebook 03's verdict table as one bar per check (name and loss, with its kind): how many pairs got each
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


def pid_curves_figure(rows: Sequence[Mapping[str, Any]], methods: Sequence[str], *, teacher_acc: float | None = None,
                      acc_n: int | None = None) -> Any:
    """Notebook 04's curves: ``Red(Y:T,S)`` and ``Uni(Y:T\\S)`` per epoch and method with the shuffled-label floor
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


def prior_posterior_certificate_figure(cert: Mapping[str, Any], baseline: Mapping[str, Any]) -> Any:
    """Notebook 05's certificate next to what it bounds: the posterior's held-out Gibbs risk with its interval (the
    ``test_gibbs_risk`` estimate of :func:`kdbounds.certify`), the certificate of the prior alone (``Q = P``, a plain
    held-out bound: what the posterior has to beat) and the certificate of the posterior, each value written on its
    bar, the level at which a certificate is vacuous as a line.

    A certificate is a bound that holds with its stated probability, not an estimate: it carries no interval.

    Args:
        cert: the posterior's certificate (``Certificate.to_dict()``).
        baseline: the prior's certificate (``certify(prior, prior, ...)``, its ``to_dict()``).

    Returns:
        The figure; ``kdbounds_bars`` maps each bar's label to its height and ``kdbounds_interval`` is the held-out
        interval drawn (``None`` when ``cert`` has no held-out estimate: then its bar is left out and the figure says
        so).
    """
    held = cert.get("test_gibbs_risk")
    loss = "0–1" if cert.get("loss") == "zero_one" else "bounded cross-entropy"
    bars: dict[str, float] = {}
    if held is not None and held.get("value") is not None:
        bars[f"held-out Gibbs risk of $Q$\n({held['n']} test images)"] = float(held["value"])
    bars["certificate\nprior alone ($Q = P$)"] = float(baseline["risk_upper"])
    bars["certificate\nposterior $Q$"] = float(cert["risk_upper"])
    colours = {0: "0.6", 1: "tab:blue", 2: "tab:green"}
    first = 3 - len(bars)
    fig, ax = plt_figure(figsize=(7.2, 4.4))
    pos = np.arange(len(bars))
    heights = list(bars.values())
    ax.bar(pos, heights, 0.6, color=[colours[first + i] for i in range(len(bars))])
    interval = None
    tops = heights + [float(cert["trivial"])]
    if first == 0 and held.get("ci_low") is not None and held.get("ci_high") is not None:
        interval = (float(held["ci_low"]), float(held["ci_high"]))
        v = heights[0]
        ax.errorbar([0], [v], yerr=[[v - interval[0]], [interval[1] - v]], fmt="none", ecolor="k", capsize=6, lw=1.2)
        tops.append(interval[1])
    for x, h in zip(pos, heights):
        ax.annotate(f"{h:.3f}", (x, h), xytext=(10 if x == 0 and interval else 0, 3), textcoords="offset points",
                    ha="left" if x == 0 and interval else "center", va="bottom", fontsize=9)
    trivial = float(cert["trivial"])
    what = " (a uniform guess)" if cert.get("loss") == "zero_one" else ""
    ax.axhline(trivial, ls=":", c="0.3", lw=1, label=f"vacuous from {trivial:.2f}{what}")
    ax.set_xticks(pos, list(bars))
    ax.set_ylim(0, min(1.0, max(tops) * 1.12))
    ax.set_ylabel(f"{loss} risk of the Gibbs classifier")
    conf = {round(float(c["confidence"]), 3) for c in (cert, baseline)}
    said = f"{min(conf):.3f}" + (" each" if len(conf) == 1 else " (the lower of the two)")
    ax.set_title(f"population risk ≤ certificate, with probability ≥ {said}", fontsize=10)
    notes = []
    if interval is not None:
        notes.append(f"bar on the held-out risk: {100 * float(held.get('level') or 0.95):g} % interval")
    elif first == 0:
        notes.append("the held-out risk carries no interval")
    else:
        notes.append("no held-out estimate (certified without test data)")
    ax.text(0.0, -0.2, "; ".join(notes), transform=ax.transAxes, fontsize=8, color="0.3", va="top")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.kdbounds_bars = bars
    fig.kdbounds_interval = interval
    return fig
