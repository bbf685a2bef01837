"""Coverage of the upper confidence limit of ‖H‖_F² by simulation (Rademacher Hutchinson probes).

Oracle: the exact ‖H‖_F² of a dense matrix with an outlier eigenvalue (as trained networks have), and
repeated independent probe sets; the limit must cover the truth in at least a ``level`` fraction.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdbounds.checks import frobenius_upper_limit


def spiked(p=100, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(p, p))
    u = rng.normal(size=p)
    u /= np.linalg.norm(u)
    return 0.05 * (a + a.T) / 2 + 30 * np.outer(u, u), rng


@pytest.mark.parametrize("m", [16, 32])
def test_worst_case_limit_covers_a_spiked_hessian(m):
    H, rng = spiked()
    F = float((H ** 2).sum())
    reps, level = 1500, 0.95
    cover_wc = cover_t = 0
    for _ in range(reps):
        Z = rng.choice([-1.0, 1.0], size=(H.shape[0], m))
        x = torch.from_numpy(((H @ Z) ** 2).sum(0))
        cover_wc += frobenius_upper_limit(x, level, "worst_case").ci_high >= F
        cover_t += frobenius_upper_limit(x, level, "t").ci_high >= F
    mc = math.sqrt(level * (1 - level) / reps)
    assert cover_wc / reps >= level - 3 * mc
    # the textbook t-limit under-covers here: the reason it is not the default
    assert cover_t / reps < level - 3 * mc


def test_too_few_probes_is_a_clear_error():
    with pytest.raises(ValueError, match="trace_matvecs"):
        frobenius_upper_limit(torch.ones(8), 0.99, "worst_case")
    assert frobenius_upper_limit(torch.ones(8), 0.99, "t").ci_high == pytest.approx(1.0)
