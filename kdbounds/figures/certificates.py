"""Figures of PAC-Bayes certificates: the exact half-space oracle (certificate, truth and empirical risk against
n, the posterior scale and the prior type), certificates of trained networks with their divergence split, and one
student's certificate next to the prior-only bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .base import plt_figure

__all__ = ["oracle_certificate_figure", "network_certificates_figure", "prior_posterior_certificate_figure"]


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
    """The exact-oracle figure: the certificate against ``n_S``, the KL split against ``σ_P``, and per
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
    """The network figure: per (prior, student) certificate, the certified bound next to the held-out
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


def prior_posterior_certificate_figure(cert: Mapping[str, Any], baseline: Mapping[str, Any]) -> Any:
    """The certificate next to what it bounds: the posterior's held-out Gibbs risk with its interval (the
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
