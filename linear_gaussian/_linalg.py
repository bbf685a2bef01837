"""Validation and dense linear-algebra helpers shared by the linear-Gaussian modules (numpy/scipy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg as sla

__all__ = ["SYM_RTOL", "as_matrix", "check_scalar", "check_integer", "check_spd", "cholesky_factor", "check_choice",
           "as_rng", "readonly", "gram_chol", "gram", "chol_inverse"]

SYM_RTOL = 1e-8


def as_matrix(name: str, value: Any, shape: tuple[int | None, ...] | None = None, ndim: int = 2) -> np.ndarray:
    """Return ``value`` as a finite float64 array with ``ndim`` dims (and ``shape`` if given)."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers: {exc}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if shape is not None:
        for axis, (want, got) in enumerate(zip(shape, arr.shape)):
            if want is not None and want != got:
                raise ValueError(f"{name} has shape {arr.shape}, expected {tuple(shape)} (axis {axis} mismatched)")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; pass finite values")
    return arr


def check_scalar(name: str, value: Any, *, positive: bool = False, nonneg: bool = False) -> float:
    """A finite float, optionally > 0 or >= 0."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got a bool")
    if isinstance(value, (str, bytes)):  # float("0.1") would pass: a number read from text is the caller's to parse
        raise TypeError(f"{name} must be a real number, got the string {value!r}; pass float({value!r})")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    if positive and not x > 0:
        raise ValueError(f"{name} must be > 0, got {x}")
    if nonneg and x < 0:
        raise ValueError(f"{name} must be >= 0, got {x}")
    return x


def check_integer(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """An int in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    v = int(value)
    if low is not None and v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v}")
    return v


def check_spd(name: str, value: Any, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a symmetric positive-definite matrix; return ``(symmetrised matrix, lower Cholesky)``."""
    m = as_matrix(name, value)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"{name} must be square, got shape {m.shape}")
    if size is not None and m.shape[0] != size:
        raise ValueError(f"{name} has shape {m.shape}, expected ({size}, {size})")
    scale = float(np.max(np.abs(m))) if m.size else 0.0
    if scale == 0.0:
        raise ValueError(f"{name} is zero; a covariance must be positive definite")
    if np.max(np.abs(m - m.T)) > SYM_RTOL * scale:
        raise ValueError(f"{name} is not symmetric (max |C - C^T| > {SYM_RTOL:g} * max |C|); symmetrise it")
    m = 0.5 * (m + m.T)
    chol = cholesky_factor(name, m)
    return m, chol


def cholesky_factor(name: str, m: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor or a ``ValueError`` saying that ``name`` is not positive definite."""
    try:
        chol = sla.cholesky(m, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"{name} is not positive definite (Cholesky failed); it may be singular or too ill-conditioned "
            "for float64 (condition number near 1e16)"
        ) from None
    if not np.all(np.isfinite(chol)) or np.any(np.diag(chol) <= 0):
        raise ValueError(f"{name} is not positive definite (non-positive Cholesky pivot)")
    return chol


def check_choice(name: str, value: Any, valid: tuple[str, ...]) -> str:
    """A string option among ``valid`` (accepts Enum members with a ``.value``)."""
    v = getattr(value, "value", value)
    if not isinstance(v, str) or v not in valid:
        raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}")
    return v


def as_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


# ---------------------------------------------------------------------------------------------
# data



def gram_chol(X: np.ndarray, lam: float, name: str) -> np.ndarray:
    """Lower Cholesky factor of ``A_lam = X X^T + lam I``."""
    A = X @ X.T
    A[np.diag_indices_from(A)] += lam
    try:
        return cholesky_factor(name, A)
    except ValueError:
        raise ValueError(
            f"X X^T + {name} I is singular or numerically not positive definite (n < d or collinear inputs?); "
            f"use {name} > 0"
        ) from None


def gram(X: np.ndarray, lam: float) -> np.ndarray:
    A = X @ X.T
    A[np.diag_indices_from(A)] += lam
    return 0.5 * (A + A.T)


def chol_inverse(L: np.ndarray) -> np.ndarray:
    """``(L L^T)^{-1}`` from the Cholesky factor (symmetrised)."""
    inv = sla.cho_solve((L, True), np.eye(L.shape[0]), check_finite=False)
    return 0.5 * (inv + inv.T)


