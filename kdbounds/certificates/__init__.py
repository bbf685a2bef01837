"""PAC-Bayes certificates for distilled students (theory.md §7).

The mathematics here (``bounds``, ``oracle``) is numpy/scipy only: ``import kdbounds.certificates``
never loads torch. The torch side (Gaussian kernels over network parameters, splits, priors, the
certified-distillation trainer, ``certify``) lives in submodules imported explicitly, e.g.
``from kdbounds.certificates.certify import certify``.
"""

from .bounds import (
    CertificateBound,
    GaussianKL,
    classic_bound,
    compose_certificate,
    diag_gaussian_kl,
    grid_delta,
    kl_bernoulli,
    kl_inverse_lower,
    kl_inverse_upper,
    mc_risk_upper,
    pac_bayes_complexity,
    pac_bayes_kl_bound,
    pinsker_bound,
    quadratic_bound,
)

__all__ = [
    "CertificateBound",
    "GaussianKL",
    "classic_bound",
    "compose_certificate",
    "diag_gaussian_kl",
    "grid_delta",
    "kl_bernoulli",
    "kl_inverse_lower",
    "kl_inverse_upper",
    "mc_risk_upper",
    "pac_bayes_complexity",
    "pac_bayes_kl_bound",
    "pinsker_bound",
    "quadratic_bound",
]
