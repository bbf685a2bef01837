"""``measure_teacher_curvature``: parameter subsets and argument errors (moved from the removed
tests/test_bound_checks.py). Oracle: the parameter count of the selected layer, counted by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdbounds.checks import measure_teacher_curvature


def _mlp(seed: int, d: int = 4, h: int = 5, k: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, k)).double()


def _data(seed: int, n: int, d: int = 4, k: int = 3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, k, (n,), generator=g)


def test_parameter_subset_and_budget_errors():
    model = _mlp(1)
    train, test = _data(2, 20), _data(3, 20)
    curv = measure_teacher_curvature(model, train, test, params="2.*", trace_matvecs=8, lanczos_matvecs=3,
                                     ucl_level=0.95)
    assert curv.n_params == 5 * 3 + 3  # the last Linear only
    with pytest.raises(ValueError, match="trace_matvecs"):
        measure_teacher_curvature(model, train, test, trace_matvecs=1)
    with pytest.raises(ValueError):
        measure_teacher_curvature(model, train, test, params="nothing*")
