"""A study's command line ends every interruption with one line (issue 26 items 2, 7, 8): Ctrl-C and
SIGTERM give exit status 130 and a line saying how to resume; a full disk or a file-size limit names the
file; never a traceback."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import time
import types

import pytest

from kdbounds.studies import _cli


def _study(run):
    return types.SimpleNamespace(run=run, __name__="fake_study")


def _args(tmp_path):
    return argparse.Namespace(out=str(tmp_path / "out"), cache_root=None, no_progress=True, preset="smoke")


def test_sigterm_ends_the_run_with_one_line(tmp_path, capsys):
    def run(config, out, **kw):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler must interrupt this
        raise AssertionError("not interrupted")

    before = signal.getsignal(signal.SIGTERM)
    t0 = time.monotonic()
    assert _cli.main(_study(run), "fake", object(), _args(tmp_path)) == 130
    assert time.monotonic() - t0 < 10
    err = capsys.readouterr().err.strip()
    assert err.startswith("interrupted") and "run the same command again" in err and "\n" not in err
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is restored


def test_ctrl_c_ends_the_run_with_one_line(tmp_path, capsys):
    def run(config, out, **kw):
        raise KeyboardInterrupt

    assert _cli.main(_study(run), "fake", object(), _args(tmp_path)) == 130
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "No space left"), (errno.EFBIG, "File too large"),
                                        (errno.EROFS, "Read-only")])
def test_disk_errors_name_the_file(tmp_path, code, words):
    def run(config, out, **kw):
        raise OSError(code, os.strerror(code), str(tmp_path / "cache" / "run" / "model.pt"))

    with pytest.raises(SystemExit) as e:
        _cli.main(_study(run), "fake", object(), _args(tmp_path))
    msg = str(e.value)
    assert words in msg and "model.pt" in msg and "\n" not in msg


def test_other_errors_are_not_swallowed(tmp_path):
    def run(config, out, **kw):
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(OSError):
        _cli.main(_study(run), "fake", object(), _args(tmp_path))


@pytest.mark.parametrize("make", [
    lambda: __import__("kdbounds.data", fromlist=["x"]).CorruptArchiveError("/d/cifar-10-python.tar.gz: cannot read archive"),
    lambda: __import__("kdbounds.runs.locking", fromlist=["x"]).RunLockTimeout("run 'r' still locked after 5 s by pid 1"),
    lambda: ConnectionError("address 127.0.0.1:1: no Ray cluster answers there"),
], ids=["corrupt archive", "lock timeout", "unreachable cluster"])
def test_data_lock_and_cluster_errors_are_one_line(tmp_path, make):
    err = make()

    def run(config, out, **kw):
        raise err

    with pytest.raises(SystemExit) as e:
        _cli.main(_study(run), "fake", object(), _args(tmp_path))
    assert str(e.value) == f"error: {err}"


def _sweep_study(specs):
    """A study whose run is a sweep of ``specs`` (the way every study trains: a failed run is a SweepError)."""
    from kdbounds.runs.sweep import run_sweep

    def run(config, out, **kw):
        return run_sweep(specs, progress=False, threads=None)

    return _study(run)


def test_a_damaged_file_read_in_a_sweep_is_one_line_naming_it(tmp_path):
    """Issue 26 item 5: a cached result.json with non-UTF-8 bytes, read by a run of the sweep, ended the study
    with a SweepError traceback; now one line naming the file (oracle: the file's own path)."""
    from kdbounds._io import read_json
    from kdbounds.runs.sweep import RunSpec

    bad = tmp_path / "cache" / "run" / "result.json"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\xff\xfe{bad")
    study = _sweep_study([RunSpec("teacher", read_json, {"path": str(bad)})])
    with pytest.raises(SystemExit) as e:
        _cli.main(study, "fake", object(), _args(tmp_path))
    msg = str(e.value)
    assert str(bad) in msg and "'teacher'" in msg and "not UTF-8" in msg and "\n" not in msg


def test_a_bug_in_a_sweep_keeps_its_traceback(tmp_path):
    from kdbounds.runs.sweep import RunSpec, SweepError

    study = _sweep_study([RunSpec("teacher", os.path.getsize, {"filename": str(tmp_path / "missing")})])
    with pytest.raises(SweepError):
        _cli.main(study, "fake", object(), _args(tmp_path))


def test_a_file_size_limit_in_a_sweep_ends_with_one_line_naming_the_file(tmp_path):
    """Issue 26 item 7 under a real limit (``ulimit -f``: RLIMIT_FSIZE in a child process): the write of a run
    of the sweep fails with EFBIG, which names no file; the study ends with one line naming it, exit status 1,
    no traceback (before: a SweepError traceback ending in "OSError: [Errno 27] File too large")."""
    import subprocess
    import sys
    import textwrap

    target = tmp_path / "cache" / "run" / "model.pt"
    code = textwrap.dedent(f"""
        import argparse, resource, types
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        from kdbounds._io import atomic_write_bytes
        from kdbounds.runs.sweep import RunSpec, run_sweep
        from kdbounds.studies import _cli
        spec = RunSpec("teacher", atomic_write_bytes, {{"path": {str(target)!r}, "data": b"x" * 100000}})
        study = types.SimpleNamespace(run=lambda c, o, **k: run_sweep([spec], progress=False, threads=None))
        args = argparse.Namespace(out={str(tmp_path / 'out')!r}, cache_root=None, no_progress=True, preset="smoke")
        _cli.main(study, "fake", object(), args)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "File too large" in lines[0] and str(target) in lines[0], p.stderr
    assert not target.exists() and not list(target.parent.glob("*.tmp")), "a partial file was left behind"


SLOW_JOB = '''
import time
from pathlib import Path


def wait(seconds, marker):
    Path(marker).write_text("started")
    time.sleep(seconds)
    return seconds
'''


def test_sigterm_during_a_ray_sweep_ends_with_one_line(tmp_path):
    """Issue 26 item 4: ``ray.init`` replaced SIGTERM's handler, so SIGTERM during a sweep on a local Ray cluster
    printed a C++ stack dump ("*** SIGTERM received ***") and aborted (exit status 134). Now the command's own
    handler is kept: exit status 130, one line, no traceback, Ray shut down (oracle: the child's exit status and
    stderr)."""
    pytest.importorskip("ray")
    import subprocess
    import sys
    import textwrap

    from kdbounds.studies._cli import __file__ as cli_file

    root = os.path.dirname(os.path.dirname(os.path.dirname(cli_file)))
    (tmp_path / "slow_job.py").write_text(SLOW_JOB)
    marker = tmp_path / "started"
    code = textwrap.dedent(f"""
        import argparse, sys, types
        import slow_job
        from kdbounds.runs.sweep import RunSpec, run_sweep
        from kdbounds.studies import _cli
        spec = RunSpec("slow", slow_job.wait, {{"seconds": 600, "marker": {str(marker)!r}}})
        study = types.SimpleNamespace(run=lambda c, o, **k: run_sweep([spec], executor="ray", workers=1, threads=1,
                                                                       progress=False))
        args = argparse.Namespace(out={str(tmp_path / 'out')!r}, cache_root=None, no_progress=True, preset="smoke")
        sys.exit(_cli.main(study, "fake", object(), args))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, str(tmp_path)]), "OMP_NUM_THREADS": "1",
           "RAY_DEDUP_LOGS": "0"}
    p = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        t0 = time.monotonic()
        while not marker.exists():
            assert p.poll() is None, p.communicate()[1]
            assert time.monotonic() - t0 < 300, "the Ray worker did not start in 300 s"
            time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        t1 = time.monotonic()
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130, err
    assert "Traceback" not in err and "SIGTERM received" not in err, err
    assert err.strip().splitlines()[-1].startswith("interrupted:"), err
    assert time.monotonic() - t1 < 120
