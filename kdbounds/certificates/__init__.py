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

# ---------------------------------------------------------------------------------------------------
# Torch side (kernels, split, priors, certified trainer, certify): resolved lazily (PEP 562) so that
# ``import kdbounds.certificates`` never loads torch; ``kdbounds.certificates.certify`` etc. load it.
_LAZY = {
    "GaussianKernel": "kernels", "KernelKL": "kernels", "kernel_kl": "kernels", "check_compatible": "kernels",
    "DataSplit": "split", "make_split": "split",
    "PriorRun": "priors", "prior_run": "priors", "random_prior": "priors", "scale_grid": "priors",
    "posterior_from_run": "trainer", "prior_from_run": "trainer", "pac_bayes_objective": "trainer",
    "bounded_cross_entropy": "trainer",
    "Certificate": "certify", "select_scales": "certify", "ScaleChoice": "certify",
}


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
