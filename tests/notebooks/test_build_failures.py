"""``notebooks/build.py`` never hangs and checks its options first (issue 26 items 2 and 8): a kernel that
cannot start ends the command with one line; a missing ``--workdir``, an unwritable ``--out`` and
``--timeout 0`` are refused at parse time, before any kernel starts."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("nbclient", reason="notebook tools missing: pip install -e '.[test]'")

REPO = Path(__file__).resolve().parents[2]


def _build():
    """``notebooks/build.py`` as the module ``build`` (the way the subprocess below imports it)."""
    if str(REPO / "notebooks") not in sys.path:
        sys.path.insert(0, str(REPO / "notebooks"))
    return importlib.import_module("build")


@pytest.mark.parametrize("argv,flag", [
    (["--workdir", "/nonexistent/kdbounds-wd"], "--workdir"),
    (["--timeout", "0"], "--timeout"),
    (["--timeout", "-5"], "--timeout"),
    (["--timeout", "soon"], "--timeout"),
    (["--out", "@UNDERFILE"], "--out"),
])
def test_bad_option_refused_before_any_kernel(argv, flag, tmp_path, capsys, monkeypatch):
    build = _build()
    f = tmp_path / "file"
    f.write_text("x")
    argv = [str(f / "sub") if a == "@UNDERFILE" else a for a in argv]
    monkeypatch.setattr(build, "execute_notebook", lambda *a, **k: pytest.fail("a notebook ran"))
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e:
        build.main(["--smoke", "01", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and flag in err and "Traceback" not in err
    assert time.perf_counter() - t0 < 0.5


def test_kernel_start_failure_ends_with_one_line(tmp_path):
    """The kernel's interpreter does not exist: the command ends (no hang) with one line, exit 1."""
    code = ("import sys; sys.path.insert(0, 'notebooks'); import build; sys.executable = '/nonexistent/python'; "
            f"raise SystemExit(build.main(['--smoke', '01', '--out', {str(tmp_path)!r}]))")
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0
    assert "error building 01_" in p.stderr and "/nonexistent/python" in p.stderr
    assert time.monotonic() - t0 < 240
