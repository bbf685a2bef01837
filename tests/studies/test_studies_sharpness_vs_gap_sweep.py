"""The flagship study on the sweep runner (fake CIFAR-10, a few seconds per study run).

Oracles: the local executor for the Ray executor (every number of results.json identical at equal
threads); the data subsets drawn directly with ``kdbounds.data.stratified_subset`` at the documented
seeds; the number of trainings and measurements counted independently of the runner and the caches
(a counting wrapper around the trainer and around ``measure_teacher_curvature`` in this process).
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from kdbounds.data import load_cifar, stratified_subset
from kdbounds.runs import cache as cache_mod
from kdbounds.studies import sharpness_vs_gap as ss
from kdbounds.runs import grid
from kdbounds.runs.grid import DataSpec, load_data
from study_helpers import needs_ray
from repo_files import load_file




@pytest.fixture(autouse=True)
def _private_caches(private_data_cache):
    ss._measurement_inputs.cache_clear()
    yield
    ss._measurement_inputs.cache_clear()


def tiny(fake_root: Path, **kw) -> ss.StudyConfig:
    """The smoke preset cut to the bone: 40 + 40 images, 3 teachers (the Kendall tests run), the
    teacher-free and one KD student each, a 10 + 10-image kernel sample, the fewest probes the upper
    limit allows."""
    base = dict(data_root=str(fake_root), n_per_class=4, test_per_class=4, extra_students=(), curvature_per_class=1,
                trace_matvecs=6,
                lanczos_matvecs=2, mc_draws=2, n_boot=20, n_perm=50, threads=1)
    return dataclasses.replace(ss.PRESETS["smoke"], **{**base, **kw})


def numbers(out: Path) -> dict:
    """Every number and verdict of results.json except times and run folder names (a distilled student's
    run id hashes its teacher's checkpoint file, whose bytes hold torch's random serialization id)."""
    res = json.loads((out / "results.json").read_text())
    res["rows"] = [{k: v for k, v in r.items() if k not in ("teacher_run", "student_run")} for r in res["rows"]]
    text = json.dumps({k: res[k] for k in ("rows", "reports", "checks", "curvature", "verdict_counts", "kendall")},
                      sort_keys=True)
    return json.loads(re.sub(r'"seconds": [-+0-9.eE]+', '"seconds": 0', text))


class Counting:
    """Wraps a function; records the first positional argument's name-like value per call."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __call__(self, *a, **kw):
        self.calls.append(Path(a[1]).name if len(a) > 1 and isinstance(a[1], (str, Path)) else len(self.calls))
        return self.real(*a, **kw)


# ------------------------------------------------------------------------------------------------
def test_data_spec_draws_the_documented_subsets_and_keeps_n_test(fake_root):
    xtr, ytr = load_cifar("cifar10", root=str(fake_root), split="train")
    xte, yte = load_cifar("cifar10", root=str(fake_root), split="test")
    got = load_data(DataSpec("cifar10", str(fake_root), n_per_class=4, test_per_class=3, subset_seed=7))
    i, j = stratified_subset(ytr, 4, seed=7), stratified_subset(yte, 3, seed=8)
    for a, b in zip(got, (xtr[i], ytr[i], xte[j], yte[j])):
        assert np.array_equal(a, b) and a.dtype == b.dtype
    # the study's description is its config's subsets
    cfg = tiny(fake_root, n_per_class=4, test_per_class=3, subset_seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(ss.prepare_data(cfg), got))
    # the n_test path (functional_transfer) is unchanged
    old = load_data(DataSpec("cifar10", str(fake_root), 50))
    ex, ey = grid.test_subset(xte, yte, 50)
    assert np.array_equal(old[0], xtr) and np.array_equal(old[2], ex) and np.array_equal(old[3], ey)
    with pytest.raises(ValueError, match="give one"):
        DataSpec("cifar10", None, 50, test_per_class=5)
    with pytest.raises(ValueError, match="n_per_class"):
        DataSpec("cifar10", None, n_per_class=0)
    with pytest.raises(ValueError, match="subset_seed"):
        DataSpec("cifar10", None, subset_seed=-1)


def test_sweep_specs_graph_and_picklable_arguments(tmp_path, fake_root):
    cfg = dataclasses.replace(tiny(fake_root), extra_students=(("resnet14", "kd"),))
    specs = ss.sweep_specs(cfg, tmp_path)
    keys = [s.key for s in specs]
    names = [t.name for t in cfg.teachers]
    assert keys[0] == "alone-ce" and len(keys) == 1 + 4 * len(names)
    for n in names:
        m = next(s for s in specs if s.key == f"measure-{n}")
        assert set(m.deps) == {f"teacher-{n}", "alone-ce", f"kd-{n}", f"kd@resnet14-{n}"}
        assert m.fn is ss.measure_teacher and [lab for lab, _, _ in m.kwargs["students"]] == ["ce", "kd", "kd@resnet14"]
        assert next(s for s in specs if s.key == f"kd-{n}").deps == (f"teacher-{n}",)
    for s in specs:
        pickle.loads(pickle.dumps(s.kwargs))  # what a Ray worker receives
    with pytest.raises(ValueError, match="threads"):
        tiny(fake_root, threads=0)
    assert ss.sweep_threads(tiny(fake_root, threads=None), {"executor": "local", "threads": 1}) is None
    assert ss.sweep_threads(tiny(fake_root, threads=None), {"executor": "ray"}) == 1
    assert ss.sweep_threads(tiny(fake_root, threads=3), {"executor": "ray", "threads": 1}) == 3


@pytest.mark.slow
def test_restarted_study_trains_and_measures_nothing_and_remeasures_on_change(tmp_path, fake_root, monkeypatch):
    """First run: 7 trainings (3 teachers, 3 KD students, the teacher-free one) and 3 measurements.
    The same study again: none of either, the same numbers. A student's model file rewritten behind the
    cache's back: rebuilt from its checkpoint (its SHA-256 no longer matches), byte-identical, so nothing is
    measured again. A measurement setting changed: 3 measurements, no training."""
    cfg = tiny(fake_root)
    trains = Counting(cache_mod.train)
    curv = Counting(ss.measure_teacher_curvature)
    monkeypatch.setattr(cache_mod, "train", trains)
    monkeypatch.setattr(ss, "measure_teacher_curvature", curv)
    kw = dict(cache_root=tmp_path / "cache", progress=False, log=lambda s: None)
    first = ss.run(cfg, tmp_path / "a", **kw)
    assert len(trains.calls) == 7 and len(set(trains.calls)) == 7 and len(curv.calls) == 3
    assert len(first.rows) == 6
    second = ss.run(cfg, tmp_path / "b", **kw)
    assert len(trains.calls) == 7 and len(curv.calls) == 3
    assert numbers(tmp_path / "b") == numbers(tmp_path / "a")
    assert second.timing["curvature_cpu_s"] == 0.0 and second.timing["teacher_training_cpu_s"] < 0.5
    # one student's model file rewritten behind the cache's back (same weights, new bytes): the file no longer
    # matches the SHA-256 its run recorded, so the cache does not trust it and rebuilds it from the run's
    # checkpoint (one trainer call, no epoch trained); the measurements keyed on the file follow it
    import torch

    row = next(r for r in first.rows if r["method"] == "kd")
    model = tmp_path / "cache" / row["student_run"] / "model.pt"
    torch.save(torch.load(model, weights_only=True), model)
    ss.run(cfg, tmp_path / "d", **kw)
    assert len(trains.calls) == 8 and trains.calls[-1] == row["student_run"]
    assert numbers(tmp_path / "d") == numbers(tmp_path / "a")
    n_curv = len(curv.calls)
    assert n_curv == 3, n_curv  # the rebuilt file is byte-identical to the first: nothing to measure again
    ss.run(dataclasses.replace(cfg, mc_draws=3), tmp_path / "c", **kw)
    assert len(trains.calls) == 8 and len(curv.calls) == n_curv + 3
    timing = first.timing
    assert set(timing) >= {f"{p}_cpu_s" for p in ss._TIMING_ORDER} | {"total_cpu_s", "wall_s", "sweep_wall_s"}
    assert timing["total_cpu_s"] == pytest.approx(sum(timing[f"{p}_cpu_s"] for p in ss._TIMING_ORDER))
    assert timing["curvature_cpu_s"] > 0 and timing["teacher_training_cpu_s"] > 0


@needs_ray
@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_tiny_study_on_ray_equals_local(tmp_path, fake_root, ray_cluster):
    """The whole grid (7 trainings, 3 measurement runs) through Ray with 2 workers and locally, both at
    1 thread per run, each from its own empty cache: every number of results.json is identical. Run
    again on Ray, it rewrites no file of the cache (no training) and measures nothing."""
    cfg = tiny(fake_root)
    logs: list[str] = []
    ss.run(cfg, tmp_path / "l" / "out", cache_root=tmp_path / "l" / "cache", progress=False, log=lambda s: None,
           sweep={"executor": "local", "threads": 1})
    remote = ss.run(cfg, tmp_path / "r" / "out", cache_root=tmp_path / "r" / "cache", progress=False,
                    log=logs.append, sweep={"executor": "ray", "workers": 2, "threads": 1})
    assert numbers(tmp_path / "r" / "out") == numbers(tmp_path / "l" / "out")
    runs = [[r["teacher_run"] for r in json.loads((tmp_path / d / "out" / "results.json").read_text())["rows"]]
            for d in ("l", "r")]
    assert runs[0] == runs[1]  # the same teacher runs (ids: config, data, code)
    assert remote.environment["executor"] == "ray" and remote.environment["threads"] == 1
    assert remote.timing["curvature_cpu_s"] > 0 and remote.timing["student_training_cpu_s"] > 0  # from the workers
    assert sum(line.startswith("teacher ") for line in logs) == 3 and any("K̂" in line for line in logs)
    # restarted on Ray: no model file written again, every measurement loaded from its store
    cache = tmp_path / "r" / "cache"
    stamps = {f: f.stat().st_mtime_ns for f in cache.rglob("*") if f.is_file()}
    again = ss.run(cfg, tmp_path / "r" / "out2", cache_root=cache, progress=False, log=logs.append,
                   sweep={"executor": "ray", "workers": 2, "threads": 1})
    assert {f: f.stat().st_mtime_ns for f in stamps} == stamps
    assert again.timing["curvature_cpu_s"] == 0.0 and sum("measurements reused" in line for line in logs) == 3
    assert numbers(tmp_path / "r" / "out2") == numbers(tmp_path / "r" / "out")


def test_cli_passes_the_executor_and_threads_to_the_flagship(tmp_path, monkeypatch):
    """``--executor ray --workers 2 --threads 2`` reaches ``run`` as ``sweep=`` and ``config.threads``
    (the CLI no longer refuses ray for the flagship); without ``--threads`` the config keeps ``None``."""
    mod = load_file("experiments/sharpness_vs_gap.py")
    seen = {}

    def fake_run(config, out, *, cache_root=None, progress=True, log=print, sweep=None):
        seen.update(config=config, sweep=sweep)
        return None

    monkeypatch.setattr(ss, "run", fake_run)
    monkeypatch.setattr(ss, "summary", lambda r: "")
    monkeypatch.setattr("kdbounds.studies._cli.with_data", lambda c, **kw: c)
    assert mod.main(["--preset", "smoke", "--executor", "ray", "--workers", "2", "--threads", "2",
                     "--out", str(tmp_path / "o")]) == 0
    assert seen["sweep"]["executor"] == "ray" and seen["sweep"]["workers"] == 2
    assert seen["config"].threads == 2 and ss.sweep_threads(seen["config"], seen["sweep"]) == 2
    assert mod.main(["--preset", "smoke", "--out", str(tmp_path / "o")]) == 0
    assert seen["config"].threads is None and ss.sweep_threads(seen["config"], seen["sweep"]) is None


def test_measurement_run_alone_is_small_picklable_and_cached(tmp_path, fake_root):
    """One teacher's grid run by hand: the measurement result pickles (what a Ray worker sends back),
    its dict is strict JSON, and the second call loads it from the store (reused, no curvature CPU)."""
    from kdbounds._io import dumps_strict
    from kdbounds.runs.sweep import run_sweep

    cfg = tiny(fake_root, teachers=ss.PRESETS["smoke"].teachers[:1], methods=("kd",))
    specs = ss.sweep_specs(cfg, tmp_path / "cache")
    assert [s.key for s in specs] == ["teacher-lr0.1-bs32", "kd-lr0.1-bs32", "measure-lr0.1-bs32"]
    first = run_sweep(specs, progress=False, threads=1)["measure-lr0.1-bs32"]
    blob = pickle.dumps(first)
    assert len(blob) < 200_000 and b"torch" not in blob  # records, no tensors or models
    again = pickle.loads(blob)
    assert again.curvature.to_dict() == first.curvature.to_dict() and not first.reused
    dumps_strict(first.to_dict())
    second = run_sweep(specs, progress=False, threads=1)["measure-lr0.1-bs32"]
    assert second.reused and "curvature" not in second.cpu
    assert [p.to_dict() for p in second.pairs] == [p.to_dict() for p in first.pairs]


def test_per_teacher_lines_come_while_the_sweep_runs(tmp_path, fake_root, monkeypatch):
    """A user watching a long run sees each teacher's result when its measurement run is in, not all at
    the end: the first teacher's lines are logged before the last training starts (local executor: the
    runs go teacher by teacher)."""
    cfg = tiny(fake_root)
    trains = Counting(cache_mod.train)
    monkeypatch.setattr(cache_mod, "train", trains)
    lines: list[tuple[str, int]] = []
    ss.run(cfg, tmp_path / "a", cache_root=tmp_path / "cache", progress=False,
           log=lambda s: lines.append((s, len(trains.calls))))
    teacher_lines = [(s, n) for s, n in lines if s.startswith("teacher ")]
    assert [s.split()[1] for s, _ in teacher_lines] == [r.name for r in cfg.teachers]
    assert teacher_lines[0][1] < len(trains.calls) == 7
    assert sum(s.startswith("student alone") for s, _ in lines) == 1
    assert sum(s.strip().startswith("kd:") for s, _ in lines) == len(cfg.teachers)
