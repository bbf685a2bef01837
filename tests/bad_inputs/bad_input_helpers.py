"""Shared helpers of the bad-input table (issue 17): load the experiment scripts, run a parser and
return its stderr, substitute path placeholders."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=None)
def script(name: str):
    """The module ``experiments/<name>.py`` (imported once, not run)."""
    return load_file(f"experiments/{name}.py", f"_exp_{name}")


def parse_error(capsys, parse, argv):
    """Run ``parse(argv)``; it must stop with argparse's exit code 2. Returns stderr."""
    with pytest.raises(SystemExit) as e:
        parse(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, f"exit code {e.value.code}, stderr: {err}"
    assert "Traceback" not in err
    return err


def subst(argv, paths):
    return [paths.get(a, a) for a in argv]


# ---------------------------------------------------------------------------------------------
# how fast a refusal is, independently of how busy the machine is
# ---------------------------------------------------------------------------------------------
#: CPU seconds this process may spend before a refusal. CPU time, not wall time: on the shared CI and
#: development machines (2 cores, several test sessions and a training at once) the wall time of the same
#: refusal varied by 10x while its CPU time did not; starting the work the check should precede (loading
#: or evaluating the data, a Hessian product, a k-means) costs CPU, so it still shows here.
CPU_LIMIT_S = 0.5
#: wall seconds: a refusal that waits (a lock, a network, a child process) spends no CPU; this catches it
WALL_LIMIT_S = 10.0


def refusal(thunk, exc, repeats: int = 3):
    """Call ``thunk`` ``repeats`` times; each call must raise ``exc``.

    Returns:
        ``(info, cpu)``: pytest's ``ExceptionInfo`` of the last call and the least CPU time (process
        time, every thread) one call took; the first call may pay one-off imports, the least of three
        does not. Asserts that no call took more than :data:`WALL_LIMIT_S` wall seconds.
    """
    import time

    cpu = float("inf")
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        with pytest.raises(exc) as info:
            thunk()
        wall = time.perf_counter() - w0
        cpu = min(cpu, time.process_time() - c0)
        assert wall < WALL_LIMIT_S, f"the refusal took {wall:.1f} s of wall time (waiting on something?)"
    return info, cpu


def names_argument(text: str, name: str) -> bool:
    """Whether ``text`` names the argument ``name`` as a word of its own (``train`` is not named by
    ``training``, nor ``tau`` by ``tau_T``); names of one or two characters are matched with their case
    (``A``, not the article ``a``: write ``"a:"`` for an argument called ``a``)."""
    import re

    flags = 0 if len(name.rstrip(":")) <= 2 else re.IGNORECASE
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w])", text, flags) is not None
