"""Fresh-process measurements shared by the benchmarks that compare glibc's default malloc with the tuned one
(allocator.py, curvature_phase.py): the child's environment and its one-line JSON answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from kdbounds.runs.allocator import ENV_VAR


def malloc_env(tuned: bool) -> dict[str, str]:
    """This process's environment for a child: ``tuned=False`` sets ``KDBOUNDS_MALLOC=default`` (nothing in the child
    may tune glibc's malloc), ``tuned=True`` removes it (the child tunes as kdbounds does by default)."""
    env = dict(os.environ)
    if tuned:
        env.pop(ENV_VAR, None)
    else:
        env[ENV_VAR] = "default"
    return env


def run_child(args: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
    """Run ``python <args>`` and return the JSON object on the last line of its standard output.

    Args:
        args: the script and its arguments (the interpreter is this one).
        env: the child's environment.
        what: a name for the child in the error.

    Returns:
        The parsed object.

    Raises:
        SystemExit: the child failed (with the end of its standard error) or printed no JSON line.
    """
    out = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the {what} child failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    lines = out.stdout.strip().splitlines()
    try:
        obj = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        obj = None
    if not isinstance(obj, dict):
        raise SystemExit(f"the {what} child printed no JSON object on its last line:\n{out.stdout[-2000:]}")
    return obj
