"""Shared helpers of the bad-input table (issue 17): load the experiment scripts, run a parser and
return its stderr, substitute path placeholders."""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=None)
def script(name: str):
    """The module ``experiments/<name>.py`` (imported once, not run)."""
    path = ROOT / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_exp_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


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
