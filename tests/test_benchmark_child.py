"""benchmarks/_child.py: the fresh-process plumbing of the malloc comparisons (allocator.py, curvature_phase.py)."""

from __future__ import annotations

import pytest
from repo_files import load_file

from kdbounds.runs.allocator import ENV_VAR

C = load_file("benchmarks/_child.py")


def test_malloc_env_sets_or_clears_the_opt_out(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "something")
    assert C.malloc_env(False)[ENV_VAR] == "default"
    assert ENV_VAR not in C.malloc_env(True)
    monkeypatch.delenv(ENV_VAR)
    assert C.malloc_env(False)[ENV_VAR] == "default"


def test_the_child_sees_the_environment_and_answers_on_its_last_line():
    code = "import json, os; print('progress'); print(json.dumps({'m': os.environ.get('KDBOUNDS_MALLOC')}))"
    assert C.run_child(["-c", code], C.malloc_env(False), "probe") == {"m": "default"}
    assert C.run_child(["-c", code], C.malloc_env(True), "probe") == {"m": None}


@pytest.mark.parametrize("code, says", [("import sys; sys.stderr.write('boom'); sys.exit(3)", "exit 3"),
                                        ("print(5)", "no JSON object"), ("pass", "no JSON object")])
def test_a_failed_or_silent_child_is_named(code, says):
    with pytest.raises(SystemExit, match=f"the probe child.*{says}") as e:
        C.run_child(["-c", code], C.malloc_env(True), "probe")
    if "exit" in says:
        assert "boom" in str(e.value)
