"""Priors (a)-(d): the random prior is the seeded initialisation; trained priors see D_T only
(their run's data fingerprint is D_T's); (c) refuses a teacher of another architecture; the scale grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kdbounds.certificates.scales import scale_grid
from kdbounds.runs.priors import PRIOR_KINDS, prior_run, random_prior
from kdbounds.distill import TrainConfig
from kdbounds.models import build_model
try:  # the run cache moves to kdbounds.runs.cache (layout issue)
    from kdbounds.runs.cache import data_fingerprint
except ImportError:
    from kdbounds.runs import data_fingerprint


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n) % 10
    return x, y, x[:20], y[:20]


def _recipe():
    return TrainConfig(arch="mlp256", epochs=1, batch_size=20, lr=0.01, device="cpu", augment=False,
                       schedule="constant")


def test_random_prior_is_the_seeded_initialisation():
    a, b, c = random_prior("mlp256", 3), random_prior("mlp256", 3), random_prior("mlp256", 4)
    ref = build_model("mlp256", seed=3)
    for (n, p), q, r, s in zip(a.named_parameters(), b.parameters(), c.parameters(), ref.parameters()):
        assert torch.equal(p, q) and torch.equal(p, s)
        assert not torch.equal(p, r)
    pr = prior_run("random", student_arch="mlp256", init_seed=3)
    assert pr.spec == "random:3" and pr.run is None


def test_trained_priors_see_only_d_t(tmp_path):
    d_t = _data()
    learnt = prior_run("learnt", student_arch="mlp256", data_t=d_t, cache_root=tmp_path, recipe=_recipe(),
                       progress=False)
    run = json.loads((tmp_path / learnt.run.paths["out_dir"].split("/")[-1] / "run.json").read_text())
    assert run["key"]["data"] == data_fingerprint(d_t)
    assert learnt.spec == learnt.run.paths["model"] and learnt.run.config["method"] == "ce"
    teacher = prior_run("learnt", student_arch="mlp512x2", data_t=d_t, cache_root=tmp_path, recipe=_recipe(),
                        progress=False).run
    dist = prior_run("distilled", student_arch="mlp256", data_t=d_t, cache_root=tmp_path, recipe=_recipe(),
                     teacher=teacher, progress=False)
    assert dist.run.config["method"] == "kd" and dist.run.config["arch"] == "mlp256"
    run = json.loads((tmp_path / dist.run.paths["out_dir"].split("/")[-1] / "run.json").read_text())
    assert run["key"]["data"] == data_fingerprint(d_t) and run["key"]["teacher_sha256"] is not None
    with pytest.raises(ValueError, match="teacher of the student's architecture 'mlp256', got 'mlp512x2'"):
        prior_run("teacher", student_arch="mlp256", teacher=teacher)
    same = prior_run("teacher", student_arch="mlp256", teacher=learnt.run)
    assert same.spec == learnt.spec  # (b) and (c) coincide when the teacher is (b)'s run


def test_prior_kind_and_inputs_validated(tmp_path):
    with pytest.raises(ValueError, match="kind: expected one of"):
        prior_run("posterior", student_arch="mlp256")
    with pytest.raises(ValueError, match="data_t, cache_root and recipe are required"):
        prior_run("learnt", student_arch="mlp256")
    assert PRIOR_KINDS == ("random", "learnt", "teacher", "distilled")


def test_scale_grid_is_log_spaced_with_fixed_endpoints():
    g = scale_grid(1e-3, 1e-1, 5)
    assert len(g) == 5 and g[0] == pytest.approx(1e-3) and g[-1] == pytest.approx(1e-1)
    ratios = np.array(g[1:]) / np.array(g[:-1])
    assert np.allclose(ratios, ratios[0]) and ratios[0] == pytest.approx(10 ** 0.5)
    assert scale_grid(0.01, 0.01, 1) == (0.01,)
    with pytest.raises(ValueError, match="high: expected > low"):
        scale_grid(0.1, 0.01, 3)
    with pytest.raises(ValueError, match="low: expected a finite number > 0"):
        scale_grid(0.0, 0.01, 3)


def test_buffer_free_nets():
    """The certificate networks have no buffers (so any two share their frozen part) and the counted
    parameters of their documented layer sizes."""
    from kdbounds.models import count_parameters

    for name, widths in (("mlp256", (256,)), ("mlp512x2", (512, 512))):
        m = build_model(name, seed=0)
        assert list(m.named_buffers()) == []
        dims = (768, *widths, 10)
        assert count_parameters(m) == sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
        out = m(torch.zeros(2, 3, 32, 32), return_features=True)
        assert out.logits.shape == (2, 10) and out.pooled.shape == (2, widths[-1])
        assert [s.shape[1] for s in out.stages] == list(widths)
