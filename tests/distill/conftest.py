"""Shared numpy references of the distillation-loss tests (written once, used by several files)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest


def _np_ce(z: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of logits ``z`` (n, c) against labels ``y``, by a stable log-sum-exp."""
    m = z.max(1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(1))
    return float(np.mean(lse - z[np.arange(len(y)), y]))


def _np_conv1x1(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A 1x1 convolution (weights ``(out, in, 1, 1)``) of an NCHW batch, as an einsum."""
    return np.einsum("oc,nchw->nohw", w[:, :, 0, 0], x)


@pytest.fixture(scope="session")  # stateless functions: also usable under hypothesis @given
def np_ref():
    """Numpy references: ``np_ref.ce(z, y)`` (mean cross-entropy), ``np_ref.conv1x1(w, x)``."""
    return SimpleNamespace(ce=_np_ce, conv1x1=_np_conv1x1)
