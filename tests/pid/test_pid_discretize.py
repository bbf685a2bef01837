"""Representations -> joint law -> PID on synthetic features with known structure."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kdbounds.pid import fit_discretizer, joint_counts, kmeans, pid_of_representations


def blobs(rng, y, k, dim=16, sep=4.0, noise=1.0):
    centres = rng.standard_normal((k, dim)) * sep
    return centres[y] + noise * rng.standard_normal((y.size, dim))


def test_kmeans_recovers_separated_blobs():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    x = np.eye(4)[y] * 10 + 0.1 * rng.standard_normal((200, 4))
    c = kmeans(x, 4, rng=np.random.default_rng(1))
    lab = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
    # each true blob maps to exactly one cluster
    assert all(np.unique(lab[y == j]).size == 1 for j in range(4))
    assert np.unique(lab).size == 4


def test_discretizer_fit_on_train_applies_to_eval():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 3, 4, 4))
    d = fit_discretizer(x[:200], n_components=5, n_clusters=6, seed=0)
    lab = d.transform(x[200:])
    assert lab.shape == (100,) and lab.min() >= 0 and lab.max() < 6
    # same seed -> same discretiser
    d2 = fit_discretizer(x[:200], n_components=5, n_clusters=6, seed=0)
    np.testing.assert_array_equal(d2.transform(x[200:]), lab)
    with pytest.raises(ValueError, match="features per row"):
        d.transform(rng.standard_normal((5, 7)))


def test_joint_counts():
    c = joint_counts([0, 1, 1], [2, 0, 0], [1, 1, 1], n_classes=2, n_t=3, n_s=2)
    assert c.shape == (2, 3, 2) and c[0, 2, 1] == 1 and c[1, 0, 1] == 2 and c.sum() == 3
    with pytest.raises(ValueError, match=r"^y: expected labels in \[0, 1\], got a maximum of 5"):
        joint_counts([0, 5], [0, 0], [0, 0], n_classes=2, n_t=1, n_s=1)
    with pytest.raises(ValueError, match="equal lengths"):
        joint_counts([0], [0, 0], [0, 0], n_classes=2, n_t=1, n_s=1)


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(42)
    k, n_tr, n_ev = 5, 1500, 1500
    y = rng.integers(0, k, n_tr + n_ev)
    t = blobs(rng, y, k)  # teacher carries Y
    s = rng.standard_normal((y.size, 16))  # student is noise
    return k, y, t, s, n_tr


def test_teacher_unique_when_student_is_noise(synthetic):
    k, y, t, s, n = synthetic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = pid_of_representations(t[:n], s[:n], y[:n], t[n:], s[n:], y[n:], n_components=5, n_clusters=5,
                                   seed=0, n_boot=4, n_shuffle=4)
    h_y = np.log(k)
    assert r.pid.unique_t > 0.8 * h_y
    # Red is bounded by I(Y;S), itself only plug-in bias here (~ (k-1)(c-1)/(2n) = 0.005 nats)
    assert r.pid.redundancy < 0.03
    assert r.pid.mi_ys < 0.03
    # basic bootstrap interval (reflected, so it need not contain the plug-in value)
    assert r.ci_low["unique_t"] < r.ci_high["unique_t"] and r.boot_se["unique_t"] > 0
    assert abs(0.5 * (r.ci_low["unique_t"] + r.ci_high["unique_t"]) - r.pid.unique_t) < 0.2
    assert np.isfinite(list(r.flat().values())).all()
    assert "pid" in r.to_dict()


def test_shuffled_labels_give_near_zero(synthetic):
    k, y, t, s, n = synthetic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = pid_of_representations(t[:n], s[:n], y[:n], t[n:], s[n:], y[n:], n_components=5, n_clusters=5,
                                   seed=1, n_boot=0, n_shuffle=5)
    # under shuffled labels every atom is plug-in bias only; the whole I(Y;T,S) bias is about
    # (k-1)(c*c-1)/(2n) = 4*24/3000 = 0.03 nats
    for a in ("redundancy", "unique_t", "unique_s", "synergy"):
        assert 0 <= r.shuffle_mean[a] < 0.06
    assert r.corrected["unique_t"] > 0.8 * np.log(k) - 0.06
    # the student-permutation null keeps I(Y;T) and kills Red
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r2 = pid_of_representations(t[:n], s[:n], y[:n], t[n:], s[n:], y[n:], n_components=5, n_clusters=5,
                                    seed=1, n_boot=0, n_shuffle=3, shuffle="student")
    assert r2.shuffle_mean["redundancy"] < 0.03
    assert r2.shuffle_mean["unique_t"] > 0.8 * np.log(k)


def test_shared_information_is_redundant():
    rng = np.random.default_rng(7)
    k, n = 4, 1200
    y = rng.integers(0, k, 2 * n)
    t = blobs(rng, y, k)
    s = t @ rng.standard_normal((16, 16)) + 0.1 * rng.standard_normal((2 * n, 16))  # S a copy of T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = pid_of_representations(t[:n], s[:n], y[:n], t[n:], s[n:], y[n:], n_components=4, n_clusters=4,
                                   seed=0, n_boot=0, n_shuffle=0)
    assert r.pid.redundancy > 0.8 * np.log(k)
    assert r.pid.unique_t < 0.1 and r.pid.unique_s < 0.1


def test_bad_inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3))
    y = rng.integers(0, 2, 20)
    with pytest.raises(ValueError, match="lengths differ"):
        pid_of_representations(x, x[:10], y, x, x, y)
    with pytest.raises(ValueError, match="NaN"):
        pid_of_representations(x * np.nan, x, y, x, x, y)
    with pytest.raises(ValueError, match="shuffle"):
        pid_of_representations(x, x, y, x, x, y, shuffle="both")
