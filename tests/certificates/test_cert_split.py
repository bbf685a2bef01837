"""The D_T / D_S split: disjoint, stratified, seeded, recorded; overlapping splits are refused."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kdbounds.certificates.split import DataSplit, indices_sha256, make_split


def _labels(n=1000, k=10, seed=0):
    return np.random.default_rng(seed).integers(0, k, n)


@given(n_s=st.integers(1, 400), n_t=st.integers(1, 500), seed=st.integers(0, 2**31))
@settings(max_examples=40)
def test_split_is_disjoint_sized_and_in_range(n_s, n_t, seed):
    y = _labels()
    s = make_split(y, n_s, n_t=n_t, seed=seed)
    assert s.n_s == n_s and s.n_t == n_t
    assert np.intersect1d(s.teacher, s.cert).size == 0
    assert s.teacher.min() >= 0 and max(s.teacher.max(), s.cert.max()) < len(y)


def test_split_is_stratified():
    y = np.repeat(np.arange(10), 500)
    s = make_split(y, 1000, seed=3)
    assert np.all(np.bincount(y[s.cert], minlength=10) == 100)
    assert np.all(np.bincount(y[s.teacher], minlength=10) == 400)


def test_seed_reproduces_and_different_seeds_differ():
    y = _labels()
    a, b, c = make_split(y, 200, seed=1), make_split(y, 200, seed=1), make_split(y, 200, seed=2)
    assert np.array_equal(a.cert, b.cert) and np.array_equal(a.teacher, b.teacher)
    assert not np.array_equal(a.cert, c.cert)


def test_record_names_seed_sizes_and_hashes():
    y = _labels()
    s = make_split(y, 100, n_t=300, seed=7)
    r = s.to_dict()
    assert r["seed"] == 7 and r["n_s"] == 100 and r["n_t"] == 300 and r["n_total"] == 1000
    # independent recomputation of the hash: sorted indices as little-endian int64
    want = hashlib.sha256(np.sort(s.cert).astype("<i8").tobytes()).hexdigest()
    assert r["cert_sha256"] == want == indices_sha256(s.cert[::-1])
    assert r["teacher_sha256"] != r["cert_sha256"]


def test_overlapping_split_is_refused():
    with pytest.raises(ValueError, match="teacher and cert overlap in 1 example"):
        DataSplit(teacher=np.array([0, 1, 2]), cert=np.array([2, 3]), n_total=10)


@pytest.mark.parametrize("kw, msg", [
    (dict(teacher=np.array([0, 0]), cert=np.array([3]), n_total=10), "teacher: indices must be distinct"),
    (dict(teacher=np.array([0]), cert=np.array([10]), n_total=10), r"cert: indices must lie in \[0, n_total=10\)"),
    (dict(teacher=np.array([], dtype=int), cert=np.array([1]), n_total=10), "teacher: expected at least one"),
])
def test_bad_index_sets(kw, msg):
    with pytest.raises(ValueError, match=msg):
        DataSplit(**kw)


def test_sizes_validated():
    y = _labels(100)
    with pytest.raises(ValueError, match="n_t: n_s \\+ n_t = 120 exceeds"):
        make_split(y, 60, n_t=60)
    with pytest.raises(ValueError, match="n_s: expected an integer >= 1"):
        make_split(y, 0)
    with pytest.raises(ValueError, match="labels"):
        make_split(np.zeros((3, 3), dtype=int), 1)


def test_the_math_layer_loads_no_torch():
    """Every public name of kdbounds.certificates (bounds, oracle, split, scale grid) resolves without torch."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = ("import sys, kdbounds.certificates as c; [getattr(c, n) for n in c.__all__]; "
            "import kdbounds.certificates.oracle; assert 'torch' not in sys.modules, 'torch loaded'; "
            "print(c.make_split.__name__, c.scale_grid.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["make_split", "scale_grid"]
