"""Fixtures shared by the study tests: a fake CIFAR-10, a private decoded-data cache, and one local Ray
cluster per pytest worker.

``make test`` runs ``pytest -n 2 --dist loadgroup``: every test marked ``xdist_group("ray")`` runs on
the same worker, so the whole suite starts one 2-CPU cluster (a few seconds) instead of one per module.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A local Ray cluster (2 CPUs); workers import this folder's toy module and the worktree's
    ``kdbounds``, decode data into a private cache and use one OpenMP thread."""
    ray = pytest.importorskip("ray")
    pythonpath = os.pathsep.join(p for p in (str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1",
           "KDBOUNDS_CACHE": str(tmp_path_factory.mktemp("ray-kdcache"))}
    t0 = time.perf_counter()
    from kdbounds.runs.sweep import RAY_LOCAL_SYSTEM_CONFIG

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env},
             _system_config=RAY_LOCAL_SYSTEM_CONFIG)
    print(f"ray cluster started in {time.perf_counter() - t0:.1f} s")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    """A small fake CIFAR-10 in the official archive format (one per test module)."""
    from fake_cifar import write_fake_cifar10

    return write_fake_cifar10(tmp_path_factory.mktemp("fakecifar"))


@pytest.fixture
def private_data_cache(tmp_path, monkeypatch):
    """Decoded arrays in the test's own cache, and the per-process data loader of the sweep grids
    emptied before and after (a module asks for it with ``pytestmark = usefixtures(...)``)."""
    from kdbounds.runs.grid import load_data

    monkeypatch.setenv("KDBOUNDS_CACHE", str(tmp_path / "kdcache"))
    load_data.cache_clear()
    yield tmp_path / "kdcache"
    load_data.cache_clear()
