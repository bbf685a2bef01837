"""Frozen result records of the curvature estimators (each with ``.to_dict()`` for JSON)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "TraceEstimate",
    "DiagonalEstimate",
    "EigenEstimate",
    "PowerIterationResult",
    "SpectralDensity",
    "GradientNorm",
]


def _jsonable(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().tolist()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, (tuple, list)):
        return [_jsonable(v) for v in x]
    return x


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python (JSON-serialisable) dict of the fields; tensors become lists."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class TraceEstimate(_ToDict):
    """Stochastic estimate of a scalar (trace, ``tr(H^2)``...) with its standard error.

    Attributes:
        value: the estimate.
        stderr: standard error (sample std / sqrt(#samples) of the random part; ``inf`` when
            fewer than two random samples exist).
        n_matvecs: operator products used.
        n_samples: random probe samples averaged.
        converged: whether ``target_rel_se`` was reached (``True`` when no target was set).
        target_rel_se: requested relative standard error, or ``None``.
        method: ``"hutchinson"``, ``"hutch++"`` or ``"frobenius"``.
        distribution: probe law, ``"rademacher"`` or ``"gaussian"``.
        samples: the per-probe samples (random part only).
    """

    value: float
    stderr: float
    n_matvecs: int
    n_samples: int
    converged: bool
    target_rel_se: float | None
    method: str
    distribution: str
    samples: tuple[float, ...] = field(repr=False, default=())

    @property
    def rel_stderr(self) -> float:
        """``stderr / |value|`` (``inf`` if value is 0)."""
        return self.stderr / abs(self.value) if self.value != 0 else math.inf


@dataclass(frozen=True)
class DiagonalEstimate(_ToDict):
    """Hutchinson diagonal estimate ``mean_i z_i * (H z_i)`` with per-coordinate standard errors."""

    value: torch.Tensor
    stderr: torch.Tensor
    n_matvecs: int
    n_samples: int
    distribution: str


@dataclass(frozen=True)
class EigenEstimate(_ToDict):
    """Extreme eigenvalues by Lanczos with full reorthogonalisation.

    Attributes:
        eigenvalues: Ritz values, largest first for ``which="largest"``, smallest first for
            ``"smallest"``; for ``"both"`` the ``k`` largest (descending) then the ``k``
            smallest (ascending).
        residuals: Ritz residual norms ``|beta_m s_{m,i}| = ||H y_i - theta_i y_i||`` (unit ``y_i``);
            each eigenvalue error is at most its residual.
        n_matvecs: operator products used (= Lanczos steps).
        converged: every wanted residual ``<= tol * |theta_i|``.
        which: ``"largest"``, ``"smallest"`` or ``"both"``.
        history: largest (for ``"smallest"``: smallest) Ritz value after each step (a step is
            one product for ``block_size=1``, one block of ``block_size`` products otherwise).
        eigenvectors: ``(n, len(eigenvalues))`` Ritz vectors if requested, else ``None``.
        block_size: products per Lanczos step (1: single-vector Lanczos; > 1: block Lanczos).
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    n_matvecs: int
    converged: bool
    which: str
    history: tuple[float, ...] = field(repr=False, default=())
    eigenvectors: torch.Tensor | None = field(repr=False, default=None)
    block_size: int = 1

    @property
    def value(self) -> float:
        """The first eigenvalue (the largest for ``which="largest"``/``"both"``)."""
        return float(self.eigenvalues[0])

    @property
    def stderr(self) -> float:
        """Error bound of ``value`` (its Ritz residual; deterministic, not a sampling error)."""
        return float(self.residuals[0])


@dataclass(frozen=True)
class PowerIterationResult(_ToDict):
    """Dominant (largest-magnitude) eigenvalue by power iteration.

    Attributes:
        value: Rayleigh quotient ``v^T H v`` of the last unit iterate.
        residual: ``||H v - value v||`` (an error bound on ``value``).
        n_matvecs: products used.
        converged: relative change of the Rayleigh quotient fell below ``tol``.
        history: Rayleigh quotient after each product.
        eigenvector: last unit iterate.
    """

    value: float
    residual: float
    n_matvecs: int
    converged: bool
    history: tuple[float, ...] = field(repr=False, default=())
    eigenvector: torch.Tensor | None = field(repr=False, default=None)

    @property
    def stderr(self) -> float:
        """The residual, standing in for a standard error (power iteration has no sampling error)."""
        return self.residual


@dataclass(frozen=True)
class SpectralDensity(_ToDict):
    r"""Stochastic Lanczos quadrature of the spectral measure :math:`\frac1n\sum_i \delta_{\lambda_i}`.

    For probe ``j`` the Lanczos tridiagonal ``T_j = U diag(nodes_j) U^T`` gives Gauss quadrature
    nodes ``nodes[j]`` and weights ``weights[j] = U[0, :]^2`` (summing to 1), so that
    ``v^T g(H) v ~ sum_i weights[j, i] g(nodes[j, i])`` for the unit probe ``v``.

    Attributes:
        nodes, weights: arrays ``(num_probes, num_steps)``.
        dim: operator size ``n``.
        n_matvecs: products used.
    """

    nodes: np.ndarray
    weights: np.ndarray
    dim: int
    n_matvecs: int

    def density(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        r"""Gaussian-broadened density on ``grid``:
        :math:`\phi(t) = \frac{1}{P}\sum_j \sum_i w_{ji}\, \mathcal N(t; \theta_{ji}, \sigma^2)`.

        Integrates to ~1 over a grid covering the spectrum.

        Args:
            grid: points where the density is evaluated.
            sigma: Gaussian width (default: 1 % of the node range).

        Returns:
            The density at each grid point.

        Raises:
            ValueError: ``sigma`` is not positive.
        """
        grid = np.asarray(grid, dtype=float)
        if sigma is None:
            lo, hi = float(self.nodes.min()), float(self.nodes.max())
            sigma = max(0.01 * (hi - lo), 1e-12 * max(abs(lo), abs(hi), 1.0))
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        return gaussian_density(self.nodes, self.weights, grid, sigma)

    def grid(self, num: int = 1000, pad: float = 0.05) -> np.ndarray:
        """Evenly spaced grid covering all nodes, padded by ``pad`` of the range on each side.

        Args:
            num: number of points.
            pad: padding on each side, as a fraction of the node range.

        Returns:
            The grid (``num`` points, ascending).
        """
        lo, hi = float(self.nodes.min()), float(self.nodes.max())
        width = hi - lo if hi > lo else max(abs(hi), 1.0)
        return np.linspace(lo - pad * width, hi + pad * width, int(num))

    def trace(self) -> TraceEstimate:
        """Trace estimate ``n * mean_j sum_i w_ji theta_ji`` (SLQ with normalised probes).

        Returns:
            :class:`TraceEstimate` (standard error over the probes; infinite for one probe).
        """
        s = self.dim * (self.weights * self.nodes).sum(axis=1)
        m = len(s)
        se = float(s.std(ddof=1) / math.sqrt(m)) if m > 1 else math.inf
        return TraceEstimate(float(s.mean()), se, self.n_matvecs, m, True, None, "slq",
                             "rademacher", tuple(float(v) for v in s))


def gaussian_density(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray,
                     sigma: float) -> np.ndarray:
    r"""Average over probes of :math:`\sum_i w_i \mathcal N(t; \theta_i, \sigma^2)` on ``grid``.

    Args:
        nodes: Ritz values, shape ``(P, m)`` (or ``(m,)`` for one probe).
        weights: their quadrature weights, same shape.
        grid: points where the density is evaluated.
        sigma: Gaussian width (``> 0``).

    Returns:
        The density at each grid point.
    """
    nodes = np.atleast_2d(np.asarray(nodes, dtype=float))
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    grid = np.asarray(grid, dtype=float)
    d = (grid[None, None, :] - nodes[:, :, None]) / sigma
    k = np.exp(-0.5 * d * d) / (sigma * math.sqrt(2 * math.pi))
    return (weights[:, :, None] * k).sum(axis=1).mean(axis=0)


@dataclass(frozen=True)
class GradientNorm(_ToDict):
    """Euclidean norm of the full-data gradient (exact up to rounding: ``stderr = 0``)."""

    value: float
    stderr: float
    n_examples: int
