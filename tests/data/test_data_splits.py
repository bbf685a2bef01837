"""Stratified subsets and train/validation splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdbounds.data import stratified_subset, train_val_split

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def labels_and_n(draw):
    k = draw(st.integers(1, 6))
    counts = draw(st.lists(st.integers(2, 12), min_size=k, max_size=k))
    y = np.repeat(np.arange(k) * 3, counts)  # non-contiguous class ids
    perm = np.random.default_rng(draw(st.integers(0, 10**6))).permutation(len(y))
    n = draw(st.integers(1, min(counts) - 1))
    return y[perm].astype(np.int64), n, draw(st.integers(0, 2**31 - 1))


@SETTINGS
@given(labels_and_n())
def test_stratified_subset_counts_determinism_nesting(data):
    y, n, seed = data
    idx = stratified_subset(y, n, seed)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)  # sorted, unique
    for c in np.unique(y):
        assert np.sum(y[idx] == c) == n
    np.testing.assert_array_equal(idx, stratified_subset(y, n, seed))
    bigger = stratified_subset(y, n + 1, seed)
    assert set(idx) <= set(bigger)


@SETTINGS
@given(labels_and_n())
def test_train_val_split_disjoint_covering_stratified(data):
    y, v, seed = data
    tr, va = train_val_split(y, v, seed)
    assert len(np.intersect1d(tr, va)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(len(y)))
    for c in np.unique(y):
        assert np.sum(y[va] == c) == v
        assert np.sum(y[tr] == c) == np.sum(y == c) - v
    tr2, va2 = train_val_split(y, v, seed)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)


def test_seed_matters_and_subset_is_random():
    y = np.repeat(np.arange(10), 100)
    a, b = stratified_subset(y, 10, 0), stratified_subset(y, 10, 1)
    assert not np.array_equal(a, b)
    # not simply the first n of each class
    assert not np.array_equal(a, np.concatenate([np.arange(10) + 100 * c for c in range(10)]))
    # across many seeds every index is picked about equally often (10% each)
    hits = np.zeros(len(y))
    for s in range(200):
        hits[stratified_subset(y, 10, s)] += 1
    assert abs(hits.mean() - 20) < 1e-9 and hits.min() > 5 and hits.max() < 40


def test_errors_are_clear():
    y = np.array([0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="n_per_class=3.*\\(1, 2\\)"):
        stratified_subset(y, 3, 0)
    with pytest.raises(ValueError, match="val_per_class=2"):
        train_val_split(y, 2, 0)
    with pytest.raises(ValueError, match="n_per_class: expected an integer >= 1"):
        stratified_subset(y, 0, 0)
    with pytest.raises(TypeError, match="integer dtype"):
        stratified_subset(y.astype(float), 1, 0)
    with pytest.raises(ValueError, match="1-D"):
        train_val_split(y[None, :], 1, 0)
    with pytest.raises(TypeError, match="n_per_class: expected an integer"):
        stratified_subset(y, 1.5, 0)
