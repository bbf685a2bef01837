r"""The grid of prior scales :math:`\sigma_P`, fixed before ``D_S`` is used (theory.md §7).

A certificate whose :math:`\sigma_P` is picked from a grid of ``J`` values pays for the choice with a
union bound: its PAC-Bayes step runs at confidence ``delta / J`` (``n_grid = J``).
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int, check_positive

__all__ = ["scale_grid"]


def scale_grid(low: float, high: float, n: int) -> tuple[float, ...]:
    r"""``n`` log-spaced prior scales from ``low`` to ``high`` (inclusive), fixed before ``D_S`` is used.

    .. math:: \sigma_j = \mathrm{low}\cdot(\mathrm{high}/\mathrm{low})^{j/(n-1)},\quad j = 0..n-1

    A certificate whose :math:`\sigma_P` is picked from this grid must be run with ``n_grid = n``.

    Args:
        low: the smallest scale, > 0.
        high: the largest scale, > ``low`` (equal to ``low`` when ``n == 1``).
        n: the number of scales ``J``, >= 1.

    Returns:
        The ``n`` scales, increasing.

    Raises:
        ValueError: a non-positive bound, ``n < 1``, ``high <= low`` (or ``high != low`` for one point).
    """
    low = check_positive("low", low)
    high = check_positive("high", high)
    n = check_int("n", n, minimum=1)
    if n == 1:
        if low != high:
            raise ValueError(f"high: a one-point grid needs low == high, got {low} and {high}")
        return (low,)
    if high <= low:
        raise ValueError(f"high: expected > low={low}, got {high}")
    return tuple(float(v) for v in np.geomspace(low, high, n))
