"""PAC-Bayes certificates for distilled students (theory.md §7).

The mathematics here (``bounds``, ``oracle``) is numpy/scipy only: ``import kdbounds.certificates``
never loads torch. The torch side (Gaussian kernels over network parameters, splits, priors, the
certified-distillation trainer, ``certify``) lives in submodules imported explicitly, e.g.
``from kdbounds.pacbayes.certify import certify``.
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
    test_set_bound,
)
from .scales import scale_grid
from .split import DataSplit, indices_sha256, make_split

__all__ = [
    "CertificateBound",
    "DataSplit",
    "GaussianKL",
    "classic_bound",
    "compose_certificate",
    "diag_gaussian_kl",
    "grid_delta",
    "indices_sha256",
    "kl_bernoulli",
    "kl_inverse_lower",
    "kl_inverse_upper",
    "make_split",
    "mc_risk_upper",
    "pac_bayes_complexity",
    "pac_bayes_kl_bound",
    "pinsker_bound",
    "quadratic_bound",
    "scale_grid",
    "test_set_bound",
]
