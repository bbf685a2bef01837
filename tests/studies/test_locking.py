"""Per-run lock and atomic publication.

Oracles: execution counts from marker files written by the computation (independent of the lock code);
real OS processes (subprocess) contending for the lock, one of them SIGKILLed while holding it.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kdbounds.runs.locking import (RunLockTimeout, compute_once, is_published, lock_path, publish,
                                      read_published, run_lock)

ROOT = Path(__file__).resolve().parents[2]

_WORKER = """
import os, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from kdbounds.runs.locking import compute_once
run, markers, go = Path({run!r}), Path({markers!r}), Path({go!r})
while not go.exists():
    time.sleep(0.01)
def compute():
    (markers / f"exec.{{os.getpid()}}").touch()
    time.sleep({work})
    return {{"value": 42.5, "by": os.getpid()}}
def waited(lock):
    (markers / f"waited.{{os.getpid()}}").touch()
result, computed = compute_once(run, compute, on_wait=waited)
print(result["by"], computed)
"""


def _spawn(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_two_processes_asking_for_one_run_compute_it_once(tmp_path):
    run, markers, go = tmp_path / "cache" / "kd-resnet-abc", tmp_path / "markers", tmp_path / "go"
    markers.mkdir()
    code = _WORKER.format(root=str(ROOT), run=str(run), markers=str(markers), go=str(go), work=1.5)
    procs = [_spawn(code) for _ in range(2)]
    time.sleep(0.5)  # both interpreters are up and polling for "go"
    go.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len(list(markers.glob("exec.*"))) == 1  # computed once
    assert len(list(markers.glob("waited.*"))) == 1  # the other one waited for the lock, then reused
    by = {o[0].split()[0] for o in outs}
    assert len(by) == 1  # both got the same published result
    assert sorted(o[0].split()[1] for o in outs) == ["False", "True"]
    assert read_published(run) == {"value": 42.5, "by": int(by.pop())}


_HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
from kdbounds.runs.locking import run_lock
with run_lock({run!r}):
    print("held", flush=True)
    time.sleep(120)
"""


def _hold(tmp_path: Path, run: Path) -> subprocess.Popen:
    p = _spawn(_HOLDER.format(root=str(ROOT), run=str(run)))
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_killed_holder_releases_the_lock_and_the_run_is_computed_by_the_next(tmp_path):
    run = tmp_path / "run"
    holder = _hold(tmp_path, run)
    try:
        with pytest.raises(RunLockTimeout, match=rf"locked by pid {holder.pid} on host"):
            with run_lock(run, timeout=0):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        t0 = time.monotonic()
        calls = []
        result, computed = compute_once(run, lambda: calls.append(1) or {"x": 1}, timeout=10)
        assert time.monotonic() - t0 < 5  # the OS released the lock at once: no stale lock
        assert computed and calls == [1] and result == {"x": 1} and is_published(run)
    finally:
        holder.kill()
        holder.communicate()


def test_timeout_names_the_run_and_waiting_is_reported(tmp_path):
    run = tmp_path / "run"
    holder = _hold(tmp_path, run)
    try:
        waited = []
        t0 = time.monotonic()
        with pytest.raises(RunLockTimeout, match=rf"still locked after 0.3 s by pid {holder.pid} on host .*--lock-timeout"):
            with run_lock(run, timeout=0.3, on_wait=waited.append):
                pass
        assert 0.25 <= time.monotonic() - t0 < 5
        assert waited == [lock_path(run)]
    finally:
        holder.kill()
        holder.communicate()


def test_deleting_the_run_folder_does_not_break_the_lock(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"x")
    holder = _hold(tmp_path, run)
    try:
        shutil.rmtree(run)  # e.g. force=True retrains from scratch while someone holds the lock
        assert lock_path(run).exists() and lock_path(run).parent == run.parent
        with pytest.raises(RunLockTimeout):
            with run_lock(run, timeout=0):
                pass
    finally:
        holder.kill()
        holder.communicate()


def test_threads_of_one_process_compute_once(tmp_path):
    run = tmp_path / "run"
    calls: list[int] = []
    results = []

    def compute():
        calls.append(threading.get_ident())
        time.sleep(0.3)
        return {"n": 7}

    ths = [threading.Thread(target=lambda: results.append(compute_once(run, compute))) for _ in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(30)
    assert len(calls) == 1
    assert sorted(c for _, c in results) == [False, False, False, True]
    assert all(r == {"n": 7} for r, _ in results)


def test_publish_is_strict_json_and_marks_the_run_finished(tmp_path):
    run = tmp_path / "a" / "run"
    assert not is_published(run) and read_published(run) is None
    p = publish(run, {"loss": math.nan, "acc": 0.5})
    assert p == run / "result.json" and is_published(run)
    assert "NaN" not in p.read_text()
    assert read_published(run) == {"loss": None, "acc": 0.5}
    assert [f.name for f in run.iterdir()] == ["result.json"]  # no temporary left behind
    (run / "result.json").write_text('{"loss": 1.0,')  # a truncated file is an error naming it
    with pytest.raises(ValueError, match="result.json is not valid JSON"):
        read_published(run)


def test_a_failing_computation_publishes_nothing_and_releases_the_lock(tmp_path):
    run = tmp_path / "run"

    def boom():
        raise RuntimeError("diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        compute_once(run, boom)
    assert not is_published(run)
    with run_lock(run, timeout=0):  # free again
        pass


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="^timeout: expected a finite number >= 0, got -1; seconds, or None"):
        with run_lock(tmp_path / "r", timeout=-1):
            pass
    with pytest.raises(ValueError, match="run_dir: expected a folder path with a name"):
        lock_path("/")
