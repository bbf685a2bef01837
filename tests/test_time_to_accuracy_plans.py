"""The time-to-accuracy benchmark's plans build valid training configurations, and the points that claim to
train the same network as another point do (only the test evaluation schedule differs)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    return load_file("benchmarks/time_to_accuracy.py")


BENCH = _bench()
POINTS = {pt[0]: pt for plan in BENCH.PLANS.values() for pt in plan}


def _cfg(name: str):
    _, arch, recipe, epochs, batch, extra = POINTS[name]
    return BENCH._config(arch, recipe, epochs, batch, extra, None)


@pytest.mark.parametrize("name", sorted(POINTS))
def test_every_point_builds_its_config(name):
    cfg = _cfg(name)
    assert cfg.epochs == POINTS[name][3] and cfg.batch_size == POINTS[name][4]
    assert "eval_every" not in (cfg.recipe_kwargs or {})


def test_final_eval_point_trains_exactly_the_e16_network():
    """Same seed and every training field as ``airbench_s-e16``: the same weights, scored once at the end."""
    final, every_epoch = _cfg("airbench_s-e16-final-eval"), _cfg("airbench_s-e16")
    assert final.eval_every == 16 and every_epoch.eval_every == 1
    assert dataclasses.replace(final, eval_every=1) == every_epoch


def test_malloc_point_trains_exactly_the_final_eval_network():
    """``airbench_s-e16-malloc`` differs from ``airbench_s-e16-final-eval`` only in the process's malloc settings."""
    assert _cfg("airbench_s-e16-malloc") == _cfg("airbench_s-e16-final-eval")
