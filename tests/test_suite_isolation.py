"""The test suite keeps out of the user's caches: decoded (fake) data sets and teacher-bank runs written by tests
land in the session's own ``$KDBOUNDS_CACHE`` (tests/conftest.py), also for the subprocesses tests start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

USER_CACHE = Path.home() / ".cache" / "kdbounds"


def _outside_user_cache(p: Path) -> bool:
    return not p.resolve().is_relative_to(USER_CACHE.resolve())


def test_decoded_arrays_and_bank_go_to_the_suites_own_cache():
    from kdbounds.data.cifar_cache import cache_dir
    from kdbounds.runs.cache_layout import bank_root

    assert _outside_user_cache(cache_dir()) and _outside_user_cache(bank_root()), (cache_dir(), bank_root())


def test_subprocesses_inherit_the_suites_cache():
    code = "from kdbounds.data.cifar_cache import cache_dir; from kdbounds.runs.cache_layout import bank_root; " \
           "print(cache_dir()); print(bank_root())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}).stdout.split()
    assert all(_outside_user_cache(Path(p)) for p in out), out
