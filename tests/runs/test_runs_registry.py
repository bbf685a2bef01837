"""The certificate networks (mlp256, mlp512x2) and methods (pbb, pbkd) are first-class: a fresh
interpreter — the command line, a Ray worker — knows them with no set-up, and the run cache's code
fingerprint covers the files that define them.

Oracles: a fresh subprocess (no state shared with the test process) for the registry; an independent
``build_model("mlp256", seed)`` for the random prior a command-line pbb run started from; a copy of
the package with one line of code added for the fingerprint.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[2]


def _python(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           "KDBOUNDS_CACHE": str(tmp_path / "kdcache")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)


def _fake_cifar(root: Path) -> Path:
    return load_file("tests/studies/fake_cifar.py").write_fake_cifar10(root, per_class_train=5, per_class_test=2)


def test_fresh_interpreter_lists_the_certificate_nets_and_methods(tmp_path):
    p = _python(["-m", "kdbounds.train", "--list-models", "--list-methods"], tmp_path)
    assert p.returncode == 0, p.stderr
    words = p.stdout.split()
    for name in ("mlp256", "mlp512x2", "pbb", "pbkd"):
        assert name in words, (name, p.stdout)


def test_command_line_pbb_without_prior_says_what_it_needs_before_loading_data(tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    p = _python(["-m", "kdbounds.train", "distill", "--method", "pbb", "--arch", "mlp256", "--data-root", str(empty),
                 "--epochs", "1", "--out", str(tmp_path / "o")], tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    for text in ("prior: required", "n_bound=|D_S|", "--method-arg prior=random:0"):
        assert text in p.stderr, (text, p.stderr)
    assert "CIFAR" not in p.stderr  # stopped before looking for data
    p = _python(["-m", "kdbounds.train", "distill", "--method", "pbb", "--arch", "mlp256", "--data-root", str(empty),
                 "--method-arg", "prior=random:0", "--epochs", "1", "--out", str(tmp_path / "o")], tmp_path)
    assert p.returncode == 2 and "n_bound: expected |D_S|" in p.stderr, p.stderr


def test_tiny_pbb_run_from_the_command_line_starts_at_the_named_random_prior(tmp_path):
    from kdbounds.runs.posteriors import posterior_from_run, prior_from_run
    from kdbounds.models import build_model

    data = _fake_cifar(tmp_path / "cifar")
    out = tmp_path / "pbb"
    p = _python(["-m", "kdbounds.train", "distill", "--method", "pbb", "--arch", "mlp256", "--data-root", str(data),
                 "--method-arg", "prior=random:7", "--method-arg", "n_bound=50", "--method-arg", "sigma_prior=0.01",
                 "--epochs", "1", "--batch-size", "25", "--lr", "0.01", "--no-augment", "--device", "cpu",
                 "--no-progress", "--out", str(out)], tmp_path)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    P = prior_from_run(out)
    ref = dict(build_model("mlp256", seed=7).named_parameters())
    assert set(P.names) == set(ref)
    for n in P.names:
        assert torch.equal(P.mean[n], ref[n].detach()), n
    Q = posterior_from_run(out)
    assert Q.names == P.names
    assert any(not torch.equal(Q.mean[n], P.mean[n]) for n in Q.names)  # one epoch moved the posterior


def _fingerprint_of(tmp_path: Path):
    """``code_fingerprint`` of a copy of the training packages under ``tmp_path`` (its ``root`` argument)."""
    from kdbounds.runs import cache

    pkg = tmp_path / "kdbounds"
    for sub in ("data", "models", "distill"):
        shutil.copytree(ROOT / "kdbounds" / sub, pkg / sub, ignore=shutil.ignore_patterns("__pycache__"))
    fp = functools.partial(cache.code_fingerprint, root=pkg)
    assert fp() == cache.code_fingerprint()  # the copy is faithful
    return fp


@pytest.mark.parametrize("path", ["models/mlp.py", "models/registry.py", "distill/pbb.py"])
def test_code_fingerprint_covers_the_certificate_nets_and_methods(tmp_path, path):
    fp = _fingerprint_of(tmp_path)
    base = fp()
    f = tmp_path / "kdbounds" / path
    original = f.read_bytes()
    f.write_bytes(original + b"\n_ONE_MORE_NAME = 1\n")  # code (a comment would keep it: test_code_fingerprint.py)
    assert fp() != base
    f.write_bytes(original)
    assert fp() == base
