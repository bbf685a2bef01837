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
