"""The run cache's ids never move: the cache on disk (``$KDBOUNDS_CACHE``, ``~/.cache/kdbounds``) is keyed by them.

Oracle: ids computed by the code before the JSON hash was written once in ``kdbounds._io`` (commit af957a5, serialiser
``json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)``), pinned here as literals, with the training
code's fingerprint held fixed (it changes with every edit of ``kdbounds/distill``, and a changed trainer is meant to
move every id). A serialiser change that moves an id — other separators, unsorted keys, ``ensure_ascii`` off, floats
written another way — fails these tests; the property test checks the same against that serialiser, written out here,
over generated configs.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import kdbounds.runs.cache as cache
from kdbounds.distill import TrainConfig
from kdbounds.distill.fast_config import fast_config

BASE = dict(arch="resnet8", epochs=2, batch_size=16, lr=0.05, device="cpu", schedule="constant")
PINNED = {  # printed by the code at af957a5 (see the module docstring)
    "ce": "26bde3398714",
    "kd_T2": "ce709d63097d",
    "ce_data": "8df5b6dd4134",
    "fast": "07f34f17699a",
    "init": "2b949ec3c019",
    "pbb": "e6430922a9c7",
    "non_ascii": "bb632c668c21",
}


@pytest.fixture
def fixed_code(monkeypatch):
    monkeypatch.setattr(cache, "code_fingerprint", lambda packages=("data", "models", "distill"): "code-fixed")


def _cases(tmp_path):
    t = tmp_path / "t.pt"
    t.write_bytes(b"teacher-1")
    g = np.random.default_rng(0)
    data = (g.integers(0, 256, (8, 4, 4, 3), dtype=np.uint8), np.arange(8) % 10)
    return {
        "ce": (TrainConfig(**BASE), None, None),
        "kd_T2": (TrainConfig(**BASE, method="kd", method_kwargs={"T": 2.0}), t, None),
        "ce_data": (TrainConfig(**BASE), None, data),
        "fast": (fast_config("airbench_s", epochs=1, batch_size=100, seed=3, device="cpu"), None, None),
        "init": (TrainConfig(**BASE, init_ckpt=str(t), milestones=(1,), n_per_class=5), None, None),
        "pbb": (TrainConfig(**BASE, method="pbb", method_kwargs={"prior": str(t), "prior_sha256": "ab" * 32,
                                                                   "sigma_prior": 0.01}), None, data),
        "non_ascii": (TrainConfig(**BASE, data_root="/données/cifar"), None, None),  # written \u00e9: ensure_ascii
    }


def test_run_ids_are_the_ones_computed_before(tmp_path, fixed_code):
    got = {k: cache.run_id(cfg, t, d) for k, (cfg, t, d) in _cases(tmp_path).items()}
    assert got == PINNED


def _old_run_id(key: dict) -> str:
    blob = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


_floats = st.floats(min_value=1e-6, max_value=10.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(epochs=st.integers(1, 500), lr=_floats, wd=st.floats(0.0, 1e-2), seed=st.integers(0, 2**32 - 1),
       method=st.sampled_from(["ce", "kd"]), T=_floats, n_per_class=st.none() | st.integers(1, 5000),
       augment=st.booleans(), arch=st.sampled_from(["resnet8", "mlp256", "wrn_16_2", "ünïcode"]))
def test_run_id_equals_the_old_serialiser_on_any_config(epochs, lr, wd, seed, method, T, n_per_class, augment, arch):
    """Every field type a config holds (ints, floats of any digits, None, bools, non-ASCII strings, nested dicts)."""
    kw = {"T": T} if method == "kd" else {}
    cfg = TrainConfig(arch=arch, epochs=epochs, lr=lr, weight_decay=wd, seed=seed, method=method, method_kwargs=kw,
                      n_per_class=n_per_class, augment=augment, device="cpu")
    key = cache.run_key(cfg)
    key["teacher_sha256"] = "0" * 64 if method == "kd" else None  # a teacher's bytes enter as their hex digest
    assert cache.run_id(cfg, _key=key) == _old_run_id(key)
