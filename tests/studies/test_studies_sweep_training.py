"""Training grids on the sweep runner with the real run cache (runs/grid.py, runs/cache.py).

Oracles: the local executor for the Ray executor (identical numbers at equal threads); the number of
trainings counted independently of the runner and the cache (a counting wrapper around the trainer in
this process; marker files written by a training callback in other processes); a study run directly
in this process for the CLI.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kdbounds.distill import TrainConfig
from kdbounds.runs import cache as cache_mod
from kdbounds.studies import functional_transfer as ft
from kdbounds.runs.grid import DataSpec, load_data, train_spec
from kdbounds.runs.sweep import SweepError, run_sweep
from study_helpers import CountingTrain, needs_ray

ROOT = Path(__file__).resolve().parents[2]



pytestmark = pytest.mark.usefixtures("private_data_cache")


def smoke(fake_root: Path) -> ft.Config:
    return dataclasses.replace(ft.PRESETS["smoke"], data_root=str(fake_root))


def numbers(result: ft.Result) -> list[dict]:
    """Every per-run number except the wall time."""
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in result.per_run]


def test_interrupted_study_sweep_restarted_trains_nothing_twice(tmp_path, fake_root, monkeypatch):
    """Ctrl-C after 3 trainings of the 9-run grid; the restart trains the 6 others, each once."""
    cfg = smoke(fake_root)
    specs = ft.training_specs(cfg, tmp_path / "cache")
    assert [s.key for s in specs][:2] == ["teacher", "kd-seed1"] and len(specs) == 9
    first = CountingTrain(cache_mod.train, stop_at=3, error=KeyboardInterrupt("Ctrl-C between runs"))
    monkeypatch.setattr(cache_mod, "train", first)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(specs, progress=False)
    assert len(first.calls) == 3
    second = CountingTrain(cache_mod.train.real)
    monkeypatch.setattr(cache_mod, "train", second)
    out = run_sweep(specs, progress=False)
    assert len(second.calls) == 6 and not set(first.calls) & set(second.calls)
    assert len(set(first.calls) | set(second.calls)) == 9  # every run trained exactly once overall
    assert set(out) == {s.key for s in specs}
    # the KD students got the teacher run's checkpoint as their teacher
    assert all(out[k].config["teacher_ckpt"] == out["teacher"].paths["model"] for k in out if k.startswith("kd-"))
    third = CountingTrain(cache_mod.train.real)
    monkeypatch.setattr(cache_mod, "train", third)
    assert {k: v.final for k, v in run_sweep(specs, progress=False).items()} == {k: v.final for k, v in out.items()}
    assert third.calls == []


def test_a_failing_training_is_a_sweep_error_and_keeps_the_finished_runs(tmp_path, fake_root, monkeypatch):
    cfg = smoke(fake_root)
    specs = ft.training_specs(cfg, tmp_path / "cache")[:3]
    calls = []

    def broken(c, out, **kw):
        calls.append(out)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(c, out, **kw)

    real = cache_mod.train
    monkeypatch.setattr(cache_mod, "train", broken)
    with pytest.raises(SweepError, match="disk full") as ei:
        run_sweep(specs, progress=False)
    assert list(ei.value.results) == ["teacher"]


def test_train_spec_rejects_a_teacher_given_twice(tmp_path):
    cfg = TrainConfig(arch="resnet8", epochs=1, method="kd", teacher_ckpt=str(tmp_path / "t.pt"))
    with pytest.raises(ValueError, match="give one"):
        train_spec("kd", cfg, tmp_path, teacher="teacher")
    with pytest.raises(ValueError, match="n_test"):
        DataSpec("cifar10", None, 5)


_TWO_PROCESS_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    import numpy as np, torch
    torch.set_num_threads(1)
    from kdbounds.distill import TrainConfig
    from kdbounds.runs.cache import train_cached
    cache, markers, start = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    g = np.random.default_rng(0)
    x = g.integers(0, 256, (48, 32, 32, 3), dtype=np.uint8)
    y = np.arange(48) % 10
    cfg = TrainConfig(arch="resnet8", epochs=2, batch_size=16, lr=0.05, device="cpu", schedule="constant")
    def count(info):
        (markers / f"epoch{info.epoch}.{os.getpid()}").touch()
    while time.time() < start:
        time.sleep(0.01)
    r = train_cached(cfg, cache, data=(x[:32], y[:32], x[32:], y[32:]), callbacks=[count], progress=False)
    print(repr(r.final["train_loss"]))
""")


def test_two_processes_starting_the_same_cached_run_train_it_once(tmp_path):
    import time

    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "KDBOUNDS_PROGRESS": "off"}
    start = time.time() + 8.0  # both processes have imported torch by then (2 loaded cores)
    procs = [subprocess.Popen([sys.executable, "-c", _TWO_PROCESS_SCRIPT, str(tmp_path / "cache"), str(markers),
                               str(start)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    epochs = sorted(f.name for f in markers.iterdir())
    pids = {n.split(".")[1] for n in epochs}
    assert len(pids) == 1 and [n.split(".")[0] for n in epochs] == ["epoch1", "epoch2"]  # one process trained
    assert outs[0][0] == outs[1][0]  # and both got its result
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 1


def test_cli_execution_flags_reach_the_study_and_others_refuse_ray(tmp_path, monkeypatch, capsys):
    from kdbounds.studies import _cli

    seen = {}

    def fake_run(config, out, *, cache_root=None, progress=True, sweep=None):
        seen["sweep"] = sweep
        return None

    study = type(sys)("fake_study")
    study.run = fake_run
    args = _cli.study_parser("fake\n\nmore", ft.PRESETS, "smoke").parse_args(
        ["--executor", "ray", "--workers", "2", "--threads", "1", "--out", str(tmp_path)])
    monkeypatch.setattr(_cli, "with_data", lambda c, **kw: c)
    _cli.main(study, "fake", ft.PRESETS["smoke"], args, summary=lambda r: "")
    assert seen["sweep"] == {"executor": "ray", "workers": 2, "address": None, "threads": 1, "max_retries": 2}

    def old_run(config, out, *, cache_root=None, progress=True):
        raise AssertionError("must not run")

    study.run = old_run
    with pytest.raises(SystemExit, match="does not run its trainings on the sweep runner"):
        _cli.main(study, "fake", ft.PRESETS["smoke"], args)
    with pytest.raises(SystemExit):  # refused when the command line is parsed, before any study is imported
        _cli.study_parser("fake", ft.PRESETS, "smoke").parse_args(["--workers", "3"])
    assert "local executor runs one run at a time" in capsys.readouterr().err
    default = _cli.study_parser("fake", ft.PRESETS, "smoke").parse_args(["--out", str(tmp_path)])
    assert _cli.execution_kwargs(study, "fake", default) == {}


@needs_ray
@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_functional_transfer_smoke_on_ray_equals_local(tmp_path, fake_root, ray_cluster):
    """The whole smoke grid (9 trainings, 1 teacher + 8 students) through Ray and locally: the same
    numbers (every fidelity value of every run), each in its own run cache."""
    cfg = smoke(fake_root)
    local = ft.run(cfg, tmp_path / "l" / "out", cache_root=tmp_path / "l" / "cache", progress=False,
                   log=lambda s: None, sweep={"executor": "local", "threads": 1})
    remote = ft.run(cfg, tmp_path / "r" / "out", cache_root=tmp_path / "r" / "cache", progress=False,
                    log=lambda s: None, sweep={"executor": "ray", "workers": 2, "threads": 1})
    assert numbers(remote) == numbers(local)
    assert remote.teacher == local.teacher
    runs = {c: sorted(p.name for p in (tmp_path / c / "cache").iterdir() if p.is_dir()) for c in ("l", "r")}
    assert len(runs["r"]) == 9
    # the same run ids: the teacher file's bytes (hashed into its students' ids) do not depend on the
    # process that wrote it, so a cache filled by Ray is reused locally and vice versa
    assert runs["r"] == runs["l"]


@needs_ray
@pytest.mark.xdist_group("ray")
def test_ray_training_worker_killed_mid_run_resumes_from_its_checkpoint(tmp_path, fake_root, ray_cluster):
    """SIGKILL to the Ray worker after the teacher's first epoch: Ray retries the run, the retry
    resumes from the checkpoint (epoch 2 only), and the result equals an uninterrupted run's."""
    cfg = dataclasses.replace(smoke(fake_root), teacher_epochs=2)
    spec = ft.training_specs(cfg, tmp_path / "cache")[0]
    victim = dataclasses.replace(spec, fn=_kill_after_first_epoch)
    out = run_sweep([victim], executor="ray", workers=1, threads=1, max_retries=2, progress=False)
    r = out["teacher"]
    assert r.epochs_completed == 2 and r.resumed_from_epoch == 1
    ref = run_sweep([dataclasses.replace(spec, kwargs={**spec.kwargs, "cache_root": str(tmp_path / "ref")})],
                    progress=False)["teacher"]
    assert r.final["train_loss"] == ref.final["train_loss"] and r.final["test_acc"] == ref.final["test_acc"]


def _kill_after_first_epoch(config, cache_root, data=None, teacher=None, progress=False, deps=None):
    """train_run, except that the first attempt SIGKILLs its own process after epoch 1."""
    import signal

    from kdbounds.distill.config import TrainConfig
    from kdbounds.runs.cache import train_cached

    flag = Path(cache_root) / "killed-once"

    def kill(info):
        if info.epoch == 1 and not flag.exists():
            flag.parent.mkdir(parents=True, exist_ok=True)
            flag.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    return train_cached(TrainConfig.from_dict(config), cache_root, data=load_data(data), callbacks=[kill],
                        progress=False)
