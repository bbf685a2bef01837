"""``kdbounds.stats.clopper_pearson`` — the one exact binomial interval (the certificate oracle's failure rate and every
accuracy bar of :mod:`kdbounds.figures` use it).

Oracles: scipy's ``binomtest(k, n).proportion_ci(method="exact")`` (an independent implementation) on every k of
several n and levels; the coverage of the interval, computed exactly from the binomial law, is at least the level
(its defining property); bad arguments raise with the argument's name.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom, binomtest

from kdbounds.figures import binomial_interval
from kdbounds.stats import clopper_pearson


@pytest.mark.parametrize("n", [1, 2, 7, 50, 300])
@pytest.mark.parametrize("level", [0.8, 0.95, 0.99])
def test_equals_scipy_exact_interval(n, level):
    for k in range(n + 1):
        ref = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
        assert clopper_pearson(k, n, level) == pytest.approx((ref.low, ref.high), abs=1e-12), (k, n, level)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), p=st.floats(0.001, 0.999), level=st.sampled_from([0.9, 0.95]))
def test_coverage_is_at_least_the_level(n, p, level):
    ks = np.arange(n + 1)
    covered = [lo <= p <= hi for lo, hi in (clopper_pearson(int(k), n, level) for k in ks)]
    assert float(binom.pmf(ks, n, p)[covered].sum()) >= level - 1e-12


def test_figure_interval_is_the_same_interval():
    assert binomial_interval(0.85, 200) == clopper_pearson(170, 200)


@pytest.mark.parametrize("k, n, level, name", [(1, 0, 0.95, "n"), (3, 2, 0.95, "k"), (-1, 5, 0.95, "k"),
                                               (1.5, 5, 0.95, "k"), (1, 5, 1.0, "level"), (True, 5, 0.95, "k")])
def test_bad_arguments_name_themselves(k, n, level, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        clopper_pearson(k, n, level)
