r"""Spectral density by stochastic Lanczos quadrature (SLQ; Ghorbani, Krishnan & Xiao 2019).

For a unit probe ``v`` (normalised Rademacher) and ``m`` Lanczos steps with
``T = U diag(theta) U^T``, Gauss quadrature gives
:math:`v^\top g(H) v \approx \sum_i U_{0i}^2\, g(\theta_i)`; averaging over probes estimates
:math:`\frac1n \operatorname{tr} g(H) = \int g\, d\mu` with :math:`\mu = \frac1n\sum_i\delta_{\lambda_i}`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import torch

from .eigen import lanczos
from .base import as_operator
from .results import SpectralDensity, gaussian_density
from .trace import _check_int, make_generator, probe_vectors

__all__ = ["spectral_density", "gaussian_density"]


def spectral_density(
    op: Any,
    num_probes: int = 4,
    num_steps: int = 40,
    *,
    seed: int | torch.Generator | None = None,
) -> SpectralDensity:
    """SLQ nodes and weights, ``num_probes`` independent Lanczos runs of ``num_steps`` steps.

    Costs ``num_probes * num_steps`` products (fewer if Lanczos meets an invariant subspace;
    such runs are padded with zero-weight nodes so arrays stay rectangular). Use
    :meth:`SpectralDensity.density` on :meth:`SpectralDensity.grid` for a Gaussian-broadened
    density and :meth:`SpectralDensity.trace` for the SLQ trace estimate.
    """
    op = as_operator(op)
    p = _check_int("num_probes", num_probes, 1)
    m = _check_int("num_steps", num_steps, 1)
    gen = make_generator(seed)
    n = op.shape[0]
    m = min(m, n)
    nodes = np.zeros((p, m))
    weights = np.zeros((p, m))
    used = 0
    for j in range(p):
        v0 = probe_vectors(n, 1, "rademacher", gen, op.dtype, op.device)[:, 0]
        a, b, Q = lanczos(op, m, v0=v0)
        used += len(a)
        if len(a) == 1:
            theta, U = a, np.ones((1, 1))
        else:
            theta, U = scipy.linalg.eigh_tridiagonal(a, b)
        nodes[j, : len(theta)] = theta
        nodes[j, len(theta):] = theta[-1]
        weights[j, : len(theta)] = U[0, :] ** 2
    return SpectralDensity(nodes, weights, n, used)
