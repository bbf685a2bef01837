"""float64 helpers shared by the closed-form Gaussian divergences (validation, Cholesky, log-det)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["as_f64", "cholesky", "logdet_chol"]


def as_f64(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, (list, tuple, float, int)):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a tensor or array of real numbers (a rectangular nested list at most), "
                            f"got {type(x).__name__}") from None
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}")
    x = x.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return x


def cholesky(a: torch.Tensor, name: str) -> torch.Tensor:
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(a.shape)}")
    if not torch.allclose(a, a.T, rtol=1e-8, atol=1e-10 * max(1.0, float(a.abs().max()))):
        raise ValueError(f"{name} must be symmetric")
    L, info = torch.linalg.cholesky_ex(0.5 * (a + a.T))
    if int(info) != 0:
        raise ValueError(
            f"{name} is not positive definite (Cholesky failed at column {int(info)}); "
            "increase the damping delta or regularise the matrix"
        )
    return L


def logdet_chol(L: torch.Tensor) -> float:
    return float(2.0 * torch.log(torch.diagonal(L)).sum())
