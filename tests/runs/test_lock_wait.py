"""Lock waits are bounded and never silent (issue 26 item 7): a waiter names the holder's pid, says when
it is stopped, names the lock file, and gives up after ``timeout`` / ``$KDBOUNDS_LOCK_TIMEOUT`` seconds."""

from __future__ import annotations

import os
import signal
import time

import pytest

from kdbounds.runs.locking import LOCK_TIMEOUT_ENV, RunLockTimeout, holder_path, lock_path, run_lock


@pytest.fixture()
def stopped_holder(tmp_path):
    """A forked process that holds the lock of ``tmp_path/run`` and is then stopped (SIGSTOP)."""
    run = tmp_path / "run"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: hold the lock until killed
        try:
            os.close(r)
            with run_lock(run):
                os.write(w, b"x")
                time.sleep(120)
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"x"
    os.close(r)
    os.kill(pid, signal.SIGSTOP)
    yield run, pid
    os.kill(pid, signal.SIGKILL)
    os.kill(pid, signal.SIGCONT)
    os.waitpid(pid, 0)


def test_wait_names_a_stopped_holder_and_ends(stopped_holder, capsys):
    run, pid = stopped_holder
    t0 = time.monotonic()
    with pytest.raises(RunLockTimeout) as e:
        with run_lock(run, timeout=1.0, notice_after=0.2):
            pass
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert 0.9 < took < 5.0
    assert f"pid {pid}" in err and "stopped" in err and str(lock_path(run)) in err and "giving up after 1 s" in err
    assert err.count("\n") == 1  # one line, once
    assert f"pid {pid}" in str(e.value) and str(lock_path(run)) in str(e.value) and "--lock-timeout" in str(e.value)


def test_environment_bounds_the_default_wait(stopped_holder, monkeypatch):
    run, _ = stopped_holder
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, "0.3")
    t0 = time.monotonic()
    with pytest.raises(RunLockTimeout, match=LOCK_TIMEOUT_ENV):
        with run_lock(run, notice_after=None):
            pass
    assert time.monotonic() - t0 < 5.0


@pytest.mark.parametrize("value", ["-1", "inf", "soon", "nan"])
def test_bad_environment_value_is_named(tmp_path, monkeypatch, value):
    monkeypatch.setenv(LOCK_TIMEOUT_ENV, value)
    with pytest.raises(ValueError, match=LOCK_TIMEOUT_ENV):
        with run_lock(tmp_path / "run"):
            pass


def test_holder_record_is_written_and_removed(tmp_path):
    run = tmp_path / "run"
    with run_lock(run) as lp:
        assert f'"pid": {os.getpid()}' in holder_path(lp).read_text()
    assert not holder_path(lp).exists()
