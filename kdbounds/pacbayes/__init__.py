"""PAC-Bayes certificates measured on networks (measurement layer, torch; theory.md §7).

A Gaussian kernel over a network's parameters (:class:`~kdbounds.pacbayes.kernels.GaussianKernel`), the
closed-form divergence ``KL(Q || P)`` of two kernels, Monte Carlo draws of the Gibbs classifier, and
:func:`~kdbounds.pacbayes.certify.certify`, which feeds them to the numpy certificate of
:mod:`kdbounds.certificates` (the math layer). Training a prior or reading a learnt ``pbb``/``pbkd``
posterior back is training glue: :mod:`kdbounds.runs.priors`, :mod:`kdbounds.runs.posteriors`.
"""

from .certify import DRAW_SCHEMES, LOSSES, Certificate, ScaleChoice, certify, gibbs_losses, select_scales
from .kernels import DRAW_MODES, GaussianKernel, KernelKL, check_compatible, draw_logits, kernel_kl, per_example_logits

__all__ = ["Certificate", "DRAW_MODES", "DRAW_SCHEMES", "GaussianKernel", "KernelKL", "LOSSES", "ScaleChoice",
           "certify", "check_compatible", "draw_logits", "gibbs_losses", "kernel_kl", "per_example_logits",
           "select_scales"]
