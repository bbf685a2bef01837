"""The Makefile's install logic (issue 24): ``make run`` installs only what the main job needs and skips
pip when nothing changed; the test stack comes only with ``make test``; ``PY`` picks the interpreter.

Run on a copy of the Makefile and pyproject.toml in a temporary folder with a fake interpreter that
logs every ``-m pip`` call (and runs nothing else), so no package is installed and no study runs.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    log = tmp_path / "pip.log"
    fake = tmp_path / "fakepy"
    fake.write_text(f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then shift 2; echo "$*" >> {log}; exit 0; fi
if [ "$1" = "-c" ]; then exec {sys.executable} "$@"; fi
echo "run $*" >> {tmp_path / "run.log"}
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def _make(project: Path, target: str) -> list[str]:
    log = project / "pip.log"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    subprocess.run(["make", "-s", target, f"PY={project / 'fakepy'}"], cwd=project, check=True, env=env,
                   capture_output=True, text=True)
    return log.read_text().splitlines() if log.exists() else []


def test_run_installs_the_main_job_only_and_once(project):
    first = _make(project, "run")
    assert any("torch==2.13.0" in line for line in first)
    assert any(line.endswith("-e .") for line in first)
    assert not any("test" in line or "docs" in line for line in first), first  # no test stack for `make run`
    assert (project / "run.log").read_text().startswith("run experiments/sharpness_vs_gap.py")
    assert _make(project, "run") == []  # nothing changed: no pip at all
    time.sleep(1.1)  # make compares modification times (1 s resolution on some file systems)
    (project / "pyproject.toml").touch()
    assert _make(project, "run") != []  # pyproject.toml changed: install again


def test_the_test_stack_comes_with_make_test(project):
    _make(project, "run")
    calls = _make(project, "test")
    assert calls == ['install --disable-pip-version-check -e .[test,docs]'], calls
    assert _make(project, "test") == []
