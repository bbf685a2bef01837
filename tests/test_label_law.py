"""A held-out set whose labels are not a sample of the training (or ``D_S``) label law is reported.

Notebook 05 once measured its held-out Gibbs risk on ``load_cifar(...)[:1000]`` of an image-folder
source, which is class-sorted: 1,000 airplanes. The posterior's risk on ``D_S`` (0.683) then looked
worse than its "held-out" risk (0.467). ``certify`` and ``evaluate_pair`` now warn on such a set; the
p-value of the χ² homogeneity test is checked against the two-proportion z-test (χ² = z² for a
2 × 2 table), an independent closed form.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kdbounds import GaussianKernel, certify, evaluate_pair, stratified_subset
from kdbounds._data import label_law_shift

MATCH = "not a sample of the same label law"


def _class_sorted(n_per_class: int = 100, k: int = 10) -> np.ndarray:
    return np.repeat(np.arange(k), n_per_class)  # what load_cifar returns for an image-folder source


def _z_test_p(a: np.ndarray, b: np.ndarray) -> float:
    n1, n2 = len(a), len(b)
    p1, p2 = a.mean(), b.mean()
    p = (a.sum() + b.sum()) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2))


@settings(max_examples=30, deadline=None)
@given(n1=st.integers(20, 300), n2=st.integers(20, 300), q1=st.floats(0.1, 0.9), q2=st.floats(0.1, 0.9))
def test_p_value_is_the_two_proportion_z_test(n1, n2, q1, q2):
    a = (np.arange(n1) < round(q1 * n1)).astype(np.int64)
    b = (np.arange(n2) < round(q2 * n2)).astype(np.int64)
    if a.min() == a.max() and b.min() == b.max() and a[0] == b[0]:
        return  # one class only: nothing to compare
    msg = label_law_shift(a, b, level=2.0)  # level above 1: always reported, so the p-value can be read
    p = float(re.search(r"p = ([0-9.e+-]+)\)", msg).group(1))
    assert p == pytest.approx(_z_test_p(a, b), rel=0.06, abs=1e-300)


def test_a_prefix_of_class_sorted_labels_is_reported_a_stratified_subset_is_not():
    labels = _class_sorted(1000)
    pool = np.random.default_rng(0).permutation(labels)[:2000]
    msg = label_law_shift(pool, labels[:1000])
    assert msg is not None and "stratified_subset" in msg and "[0, 0, 0" not in msg.split("differ")[0]
    assert label_law_shift(pool, labels[stratified_subset(labels, 100, seed=1)]) is None
    assert label_law_shift(pool, labels[np.random.default_rng(2).choice(len(labels), 1000, replace=False)]) is None
    assert label_law_shift(torch.as_tensor(pool), torch.as_tensor(labels[:1000])) is not None  # tensors too
    assert label_law_shift(pool.astype(float), labels[:1000].astype(float)) is None  # not class labels: silent


def test_random_samples_of_one_law_are_rarely_reported():
    """Its false-alarm rate is its level (1e-3): 0 of 200 random samples here."""
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 10, 1000)
    assert sum(label_law_shift(ref, rng.integers(0, 10, 300)) is not None for _ in range(200)) == 0


def _tiny_problem(sorted_test: bool):
    g = torch.Generator().manual_seed(0)
    k, d, n = 4, 5, 400
    w = torch.randn(d, k, generator=g, dtype=torch.float64)
    x = torch.randn(2 * n, d, generator=g, dtype=torch.float64)
    y = (x @ w).argmax(1)
    tr, te = (x[:n], y[:n]), (x[n:], y[n:])
    if sorted_test:  # the bug: a prefix of the held-out set after sorting it by class
        order = torch.argsort(te[1], stable=True)[: n // 2]
        te = (te[0][order], te[1][order])
    net = nn.Linear(d, k).double()
    return net, tr, te


@pytest.mark.parametrize("sorted_test", [True, False])
def test_certify_and_evaluate_pair_warn_on_a_class_sorted_prefix(sorted_test):
    net, tr, te = _tiny_problem(sorted_test)
    Q = GaussianKernel.from_model(net, 0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        certify(Q, Q, tr, test_data=te, n_draws=1)
        evaluate_pair(net, net, tr, te, kernel=False, n_boot=20)
    msgs = [str(w.message) for w in caught if MATCH in str(w.message)]
    if sorted_test:
        assert len(msgs) == 2
        assert msgs[0].startswith("test_data against data_s") and msgs[1].startswith("test against train")
    else:
        assert msgs == []
