"""Plain Shannon quantities of discrete joint laws (numpy, nats, 0·log 0 = 0)."""

from __future__ import annotations

import numpy as np

LN2 = float(np.log(2.0))


def entropy(p: np.ndarray) -> float:
    r"""Shannon entropy :math:`H(p) = -\sum_i p_i \log p_i` in nats (any shape, summed over all cells)."""
    flat = np.asarray(p, dtype=np.float64).ravel()
    pos = flat[flat > 0]
    return float(-np.sum(pos * np.log(pos)))


def mutual_information_yx(p: np.ndarray) -> float:
    r""":math:`I(Y;X) = H(Y) + H(X) - H(Y,X)` for a 2-D array indexed [y, x] (nats)."""
    p = np.asarray(p, dtype=np.float64)
    return entropy(p.sum(axis=1)) + entropy(p.sum(axis=0)) - entropy(p)


def mi_terms(p: np.ndarray) -> tuple[float, float, float]:
    r"""Return :math:`(I(Y;T), I(Y;S), I(Y;T,S))` for a joint law indexed [y, t, s] (nats)."""
    p = np.asarray(p, dtype=np.float64)
    mi_yt = mutual_information_yx(p.sum(axis=2))
    mi_ys = mutual_information_yx(p.sum(axis=1))
    mi_yts = mutual_information_yx(p.reshape(p.shape[0], -1))
    return mi_yt, mi_ys, mi_yts


def conditional_mi_yt_given_s(p: np.ndarray) -> float:
    r""":math:`I(Y;T|S) = H(Y,S) + H(T,S) - H(Y,T,S) - H(S)` for a law indexed [y, t, s] (nats)."""
    p = np.asarray(p, dtype=np.float64)
    return (
        entropy(p.sum(axis=1))
        + entropy(p.sum(axis=0))
        - entropy(p)
        - entropy(p.sum(axis=(0, 1)))
    )
