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

from .base import as_operator
from .block_krylov import batched_lanczos
from .eigen import lanczos
from .results import SpectralDensity, gaussian_density
from .trace import _check_int, make_generator, probe_vectors

__all__ = ["spectral_density", "gaussian_density"]


def spectral_density(
    op: Any,
    num_probes: int = 4,
    num_steps: int = 40,
    *,
    seed: int | torch.Generator | None = None,
    block_size: int | None = None,
) -> SpectralDensity:
    r"""SLQ nodes and weights, ``num_probes`` independent Lanczos runs of ``num_steps`` steps.

    .. math::
        \frac1n \operatorname{tr} g(H) \approx \frac1P \sum_{j=1}^P \sum_i
        \big(U^{(j)}_{0i}\big)^2 g\big(\theta^{(j)}_i\big)

    Costs ``num_probes * num_steps`` products (fewer if Lanczos meets an invariant subspace;
    such runs are padded with zero-weight nodes so arrays stay rectangular). Use
    :meth:`SpectralDensity.density` on :meth:`SpectralDensity.grid` for a Gaussian-broadened
    density and :meth:`SpectralDensity.trace` for the SLQ trace estimate.

    Args:
        op: symmetric operator (or square tensor/array).
        num_probes: independent Rademacher probes ``P``.
        num_steps: Lanczos steps per probe.
        seed: probe seed. The probes are drawn one after another from one generator, so the
            result does not depend on ``block_size`` (up to rounding).
        block_size: probes advanced together, one ``op.matmat`` of ``block_size`` columns per
            Lanczos step (:func:`kdbounds.curvature.block_krylov.batched_lanczos`); ``1`` runs
            the probes one at a time. Default ``min(num_probes, 4)``: the same number of
            products, each cheaper in a block; the Krylov bases take
            ``block_size * num_steps * n`` numbers of memory.

    Returns:
        :class:`SpectralDensity`.

    Raises:
        ValueError / TypeError: non-positive or non-integer ``num_probes``, ``num_steps``,
        ``block_size``.
    """
    op = as_operator(op)
    p = _check_int("num_probes", num_probes, 1)
    m = _check_int("num_steps", num_steps, 1)
    b = min(_check_int("block_size", block_size, 1), p) if block_size is not None else min(p, 4)
    gen = make_generator(seed)
    n = op.shape[0]
    m = min(m, n)
    nodes = np.zeros((p, m))
    weights = np.zeros((p, m))
    used = 0
    for start in range(0, p, b):
        cols = [probe_vectors(n, 1, "rademacher", gen, op.dtype, op.device)[:, 0]
                for _ in range(min(b, p - start))]
        if len(cols) == 1:
            a, bb, _ = lanczos(op, m, v0=cols[0])
            runs = [(a, bb)]
        else:
            runs = batched_lanczos(op, torch.stack(cols, dim=1), m)
        for r, (a, bb) in enumerate(runs):
            j = start + r
            used += len(a)
            if len(a) == 1:
                theta, U = a, np.ones((1, 1))
            else:
                theta, U = scipy.linalg.eigh_tridiagonal(a, bb)
            nodes[j, : len(theta)] = theta
            nodes[j, len(theta):] = theta[-1]
            weights[j, : len(theta)] = U[0, :] ** 2
    return SpectralDensity(nodes, weights, n, used)
