r"""Minimum-mutual-information (MMI) PID of a jointly Gaussian (Y, T, S).

For jointly Gaussian blocks with covariance :math:`\Sigma`,

.. math::
    I(A;B) = \tfrac12\left[\log\det\Sigma_{A} + \log\det\Sigma_{B} - \log\det\Sigma_{AB}\right].

MMI PID (Barrett 2015): :math:`\mathrm{Red} = \min(I(Y;T), I(Y;S))`,
:math:`\mathrm{Uni}(T\setminus S) = I(Y;T) - \mathrm{Red}`,
:math:`\mathrm{Uni}(S\setminus T) = I(Y;S) - \mathrm{Red}`,
:math:`\mathrm{Syn} = I(Y;T,S) - I(Y;T) - I(Y;S) + \mathrm{Red}`.
For a scalar target Y (``dims[0] == 1``) this coincides with the BROJA PID (Barrett 2015); for a
vector target it is the MMI decomposition, not BROJA. All log-dets use Cholesky (float64).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._checks import check_int, check_square_matrix
from .broja import PIDResult, _check_units

__all__ = ["gaussian_mi", "gaussian_pid"]


def _logdet(a: np.ndarray, what: str) -> float:
    try:
        chol = np.linalg.cholesky(a)
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"cov: the {what} block is not positive definite; regularise the covariance") from exc
    return float(2.0 * np.sum(np.log(np.diag(chol))))


def _symmetric_cov(cov: Any) -> np.ndarray:
    c = check_square_matrix("cov", cov)
    if not np.allclose(c, c.T, rtol=1e-10, atol=1e-12):
        raise ValueError("cov must be symmetric; pass (cov + cov.T) / 2")
    return c


def _indices(name: str, idx: Any, n: int) -> list[int]:
    """A non-empty list of distinct integer indices into ``n`` coordinates."""
    if isinstance(idx, (str, bytes)) or not hasattr(idx, "__len__"):
        raise TypeError(f"{name}: expected a sequence of coordinate indices, got {type(idx).__name__}")
    out = [check_int(name, i, minimum=0, maximum=n - 1) for i in idx]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"{name}: expected a non-empty list of distinct indices into the {n} coordinates, got "
                         f"{list(idx)!r}")
    return out


def _validate_cov(cov: Any, dims: Sequence[int]) -> tuple[np.ndarray, tuple[int, int, int]]:
    c = _symmetric_cov(cov)
    if isinstance(dims, (str, bytes)) or not hasattr(dims, "__len__"):
        raise TypeError(f"dims: expected three block sizes (dy, dt, ds), got {type(dims).__name__} {dims!r}")
    if len(dims) != 3:
        raise ValueError(f"dims must be three positive block sizes (dy, dt, ds), got {dims!r}")
    d = tuple(check_int("dims", x, minimum=1) for x in dims)
    if sum(d) != c.shape[0]:
        raise ValueError(f"dims {d} sum to {sum(d)} but cov is {c.shape[0]}x{c.shape[0]}; dims must match cov")
    return c, d  # type: ignore[return-value]


def gaussian_mi(cov: Any, a: Sequence[int], b: Sequence[int]) -> float:
    r"""Mutual information of two blocks of a Gaussian vector (nats).

    .. math::
        I(X_a; X_b) = \tfrac12\bigl[\log\det\Sigma_{aa} + \log\det\Sigma_{bb}
        - \log\det\Sigma_{a\cup b,\,a\cup b}\bigr]

    Args:
        cov: the covariance :math:`\Sigma` of :math:`X`.
        a: indices of the first block.
        b: indices of the second block (disjoint from ``a``).

    Returns:
        :math:`I(X_a; X_b)` in nats.

    Raises:
        ValueError: ``cov`` not square, finite, symmetric or positive definite on the blocks; ``a`` or ``b``
            empty, out of range, with repeated indices, or overlapping.
        TypeError: indices that are not integers.
    """
    c = _symmetric_cov(cov)
    a = _indices("a", a, c.shape[0])
    b = _indices("b", b, c.shape[0])
    if set(a) & set(b):
        raise ValueError(f"b: expected indices disjoint from a's, got {sorted(set(a) & set(b))} in both")
    ab = a + b
    return 0.5 * (
        _logdet(c[np.ix_(a, a)], "first")
        + _logdet(c[np.ix_(b, b)], "second")
        - _logdet(c[np.ix_(ab, ab)], "joint")
    )


def gaussian_pid(cov: Any, dims: Sequence[int] = (1, 1, 1), *, units: str = "nats") -> PIDResult:
    r"""MMI PID of jointly Gaussian (Y, T, S) with covariance ``cov`` ordered [Y, T, S].

    Args:
        cov: (dy+dt+ds) square symmetric positive definite covariance matrix.
        dims: block sizes (dy, dt, ds).
        units: ``"nats"`` or ``"bits"``.

    Returns:
        :class:`~kdbounds.pid.broja.PIDResult` with ``solver="closed_form"`` (``mi_yts_q`` holds
        :math:`I(Y;T) + I(Y;S) - \mathrm{Red}`, the BROJA analogue).

    Raises:
        ValueError: ``cov`` not square, finite, symmetric or positive definite; ``dims`` not three sizes
            >= 1 that add up to its size; bad ``units``.
        TypeError: ``dims`` not a sequence of integers.
    """
    units = _check_units(units)
    c, (dy, dt, ds) = _validate_cov(cov, dims)
    y = list(range(dy))
    t = list(range(dy, dy + dt))
    s = list(range(dy + dt, dy + dt + ds))
    mi_yt = gaussian_mi(c, y, t)
    mi_ys = gaussian_mi(c, y, s)
    mi_yts = gaussian_mi(c, y, t + s)
    red = min(mi_yt, mi_ys)
    syn = mi_yts - mi_yt - mi_ys + red
    result = PIDResult(
        redundancy=red,
        unique_t=mi_yt - red,
        unique_s=mi_ys - red,
        synergy=syn,
        mi_yt=mi_yt,
        mi_ys=mi_ys,
        mi_yts=mi_yts,
        mi_yts_q=mi_yt + mi_ys - red,
        units="nats",
        status="optimal",
        solver="closed_form",
        solver_status="closed_form",
        chosen="closed_form",
        shape=(dy, dt, ds),
    )
    return result.in_units(units)

