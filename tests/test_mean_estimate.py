"""The one mean estimator (``kdbounds._torch.mean_estimate``) and the estimators that call it.

Oracle: the textbook formulas ``mean = sum/n`` and ``stderr = sqrt(sum((x - mean)^2) / (n - 1)) / sqrt(n)`` in
Python's exact-rounding ``math.fsum`` (agreement to 1e-12 relative); the callers (every fidelity metric,
``checks.mean_estimate``, the kernel checks) must return the core's record bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from kdbounds._records import Estimate
from kdbounds._torch import mean_estimate
from kdbounds.checks import mean_estimate as checks_mean_estimate
from kdbounds.fidelity import agreement, agreement_by_teacher_correctness


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200))
def test_mean_and_stderr_against_the_formulas(xs):
    est = mean_estimate(torch.tensor(xs, dtype=torch.float64))
    n = len(xs)
    m = math.fsum(xs) / n
    assert est.n == n and est.value == pytest.approx(m, rel=1e-12, abs=1e-9)
    if n == 1:
        assert est.stderr == math.inf
    else:
        se = math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (n - 1)) / math.sqrt(n)
        assert est.stderr == pytest.approx(se, rel=1e-9, abs=1e-9)


def test_empty_input_is_refused_naming_the_argument():
    with pytest.raises(ValueError, match="^losses: expected at least one value"):
        mean_estimate(torch.zeros(0), "losses")
    with pytest.raises(ValueError, match="^x: expected at least one value"):
        checks_mean_estimate(torch.zeros(0))


def test_callers_return_the_core_record_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(37, generator=g, dtype=torch.float64)
    assert checks_mean_estimate(v) == mean_estimate(v)
    ps = torch.softmax(torch.randn(50, 4, generator=g), 1)
    pt = torch.softmax(torch.randn(50, 4, generator=g), 1)
    agree = (ps.argmax(1) == pt.argmax(1)).to(torch.float64)
    assert agreement(ps, pt) == mean_estimate(agree)
    y = pt.argmax(1)  # a teacher that is always right: the wrong subset is empty
    right, wrong = agreement_by_teacher_correctness(ps, pt, y)
    assert right == mean_estimate(agree)
    assert wrong.n == 0 and math.isnan(wrong.value) and math.isnan(wrong.stderr)
    assert isinstance(wrong, Estimate) and not wrong.defined


def test_non_finite_values_pass_into_the_record_but_checks_refuses_them():
    est = mean_estimate(torch.tensor([1.0, math.inf]))
    assert est.value == math.inf and est.n == 2
    with pytest.raises(ValueError, match="NaN or inf"):
        checks_mean_estimate(np.array([1.0, math.nan]))
