"""kdbounds.runs.allocator: glibc's thresholds raised once per process, what it changes (page faults) and what it
must not change (the trained weights); refused arguments; the opt-out and the non-glibc path."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from kdbounds.runs import allocator

ROOT = Path(__file__).resolve().parents[2]
GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
needs_glibc = pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")

# allocate, touch and free a 64 MiB block 30 times; print the minor page faults of the last 20 (the heap settles
# in the first few: each aligned request is a little larger than the block freed before it) and the tuning
_FAULTS = """
import json, resource, sys
import torch
from kdbounds.runs import allocator
t = allocator.tune_cpu_allocator() if sys.argv[1] == "tune" else None
for i in range(30):
    if i == 10:
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    a = torch.empty(16 * 2**20)  # torch, not numpy: numpy asks the kernel for huge pages (few faults either way)
    a.fill_(1.0)
    del a
r1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"faults": r1 - r0, "applied": None if t is None else t.applied, "reason": None if t is None else t.reason,
                  "again_same": None if t is None else allocator.tune_cpu_allocator(2**21, 2**21) is t,
                  "state": None if allocator.allocator_tuning() is None else allocator.allocator_tuning().applied}))
"""


def _faults(mode: str, **env: str) -> dict:
    e = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    e.pop("KDBOUNDS_MALLOC", None) if "KDBOUNDS_MALLOC" not in env else None
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], env=e, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_glibc
def test_tuning_removes_the_page_faults_of_repeated_large_allocations():
    """Default glibc maps and zero-fills a 64 MiB block on every allocation (~16k faults each); tuned, the heap
    keeps it, so once the heap has settled, reusing it costs (almost) no fault."""
    default, tuned = _faults("plain"), _faults("tune")
    assert tuned["applied"] is True and tuned["reason"] == "" and tuned["state"] is True
    assert tuned["again_same"] is True  # once per process: a later call returns the first result
    assert default["faults"] > 20 * 10_000, default
    assert tuned["faults"] < 0.05 * default["faults"], (tuned, default)


@needs_glibc
def test_opt_out_by_environment_leaves_glibc_alone():
    off = _faults("tune", KDBOUNDS_MALLOC="default")
    assert off["applied"] is False and "KDBOUNDS_MALLOC=default" in off["reason"] and off["state"] is None
    assert off["faults"] > 20 * 10_000, off


def test_not_glibc_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(allocator, "_APPLIED", None)
    monkeypatch.setattr(allocator.platform, "system", lambda: "Darwin")
    t = allocator.tune_cpu_allocator()
    assert t.applied is False and "not Linux with glibc" in t.reason and t.mmap_threshold is None
    assert allocator.allocator_tuning() is None  # nothing applied, nothing remembered


@pytest.mark.parametrize("kwargs,err,words", [
    ({"mmap_threshold": 0}, ValueError, "mmap_threshold: expected an integer >= 1048576"),
    ({"mmap_threshold": 2**40}, ValueError, "mmap_threshold: expected an integer <= 2147483647"),
    ({"trim_threshold": 1.5e6}, TypeError, "trim_threshold: expected an integer"),
    ({"trim_threshold": True}, TypeError, "trim_threshold: expected an integer"),
])
def test_bad_thresholds_are_refused_by_name(kwargs, err, words):
    with pytest.raises(err, match=words.replace("(", r"\(")):
        allocator.tune_cpu_allocator(**kwargs)


@needs_glibc
def test_the_sweep_runner_tunes_each_process_that_runs_a_job(tmp_path):
    """A run of the sweep (local executor, fresh process) finds the tuning in force when its function starts."""
    code = ("from kdbounds.runs.sweep import RunSpec, run_sweep\n"
            "from kdbounds.runs.allocator import allocator_tuning\n"
            "r = run_sweep([RunSpec('a', allocator_tuning)], progress=False)\n"
            "print(r['a'].applied)\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True"


@needs_glibc
def test_training_gives_the_same_weights_with_and_without_the_tuning():
    """benchmarks/allocator.py trains the same network in a default and a tuned process and fails when the model
    files differ; here on a small synthetic run."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "allocator.py"), "--arch", "airbench_s",
                          "--n-per-class", "20", "--batch-size", "64", "--repeats", "1", "--threads", "1",
                          "--synthetic"], capture_output=True, text=True, check=False,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    rec = json.loads(out.stdout)
    assert rec["same_weights"] is True
    assert len({r["weights_sha256"] for m in ("default", "tuned") for r in rec["runs"][m]}) == 1


def test_the_training_cli_tunes_before_it_trains(monkeypatch, capsys):
    """kdbounds-train calls the tuning once it has its arguments (here a run refused later, at the method check)."""
    from kdbounds import train as cli

    calls = []
    monkeypatch.setattr(allocator, "tune_cpu_allocator", lambda *a, **k: calls.append(1))
    code = cli.main(["distill", "--arch", "resnet8", "--method", "kd"])  # needs --teacher: refused after parsing
    assert code == 2 and "needs --teacher CKPT" in capsys.readouterr().err
    assert calls == [1]
