"""Figures of kdbounds' measurements, public: the studies save them, the notebooks draw them, and a user's own
results (check records, certificates, PID curves, a Hessian spectrum) go into them the same way.

Every function returns a plain :class:`matplotlib.figure.Figure` built without ``pyplot`` (a notebook keeps its
inline backend; long runs leak no figure) and attaches what it drew as ``kdbounds_*`` attributes, which the tests
read. The standards they keep: an interval wherever the number has one (a verdict's ``|d̂| ± z·SE``, an accuracy's
exact binomial interval, a trace's standard error), one colour per verdict (:data:`VERDICT_COLOURS`), a zero said
and not floored onto a log axis, axes fitted to the data, maths in the labels.

=====================================  ===========================================================================
:func:`plt_figure`, :func:`save_figure`  a figure and its axes without pyplot; an atomic save
:func:`sharpness_vs_gap_figure`         student gap against the teacher's sharpness (± 1.96 SE), Kendall's τ
:func:`bound_vs_observed_figure`        each bound against ``|d̂|`` with the interval its verdict was decided on
:func:`verdict_counts_figure`           verdicts per check over the pairs
:func:`spectrum_figure`                 SLQ density with the top Lanczos eigenvalues and their residuals
:func:`oracle_certificate_figure`       the exact half-space oracle: certificate, truth and empirical risk
:func:`network_certificates_figure`     certificates of trained networks with their divergence split
:func:`prior_posterior_certificate_figure`  one student's certificate next to the prior-only bound
:func:`pid_curves_figure`               ``Red(Y:T,S)`` and ``Uni(Y:T\\S)`` per epoch, with the accuracy
=====================================  ===========================================================================
"""

from __future__ import annotations

from .base import (CHECK_LABELS, LOSS_LABELS, QUANTITY_LABELS, VERDICT_COLOURS, binomial_interval, plt_figure,
                   save_figure)
from .certificates import network_certificates_figure, oracle_certificate_figure, prior_posterior_certificate_figure
from .checks import (bound_vs_observed_figure, plot_bound_vs_observed, plot_sharpness_vs_gap, sharpness_vs_gap_figure,
                     spectrum_figure, verdict_counts_figure)
from .pid import pid_curves_figure

__all__ = ["VERDICT_COLOURS", "CHECK_LABELS", "LOSS_LABELS", "QUANTITY_LABELS", "plt_figure", "save_figure",
           "binomial_interval", "sharpness_vs_gap_figure", "plot_sharpness_vs_gap", "bound_vs_observed_figure",
           "plot_bound_vs_observed", "verdict_counts_figure", "spectrum_figure", "oracle_certificate_figure",
           "network_certificates_figure", "prior_posterior_certificate_figure", "pid_curves_figure"]
