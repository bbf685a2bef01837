"""The study command lines parse before importing the study (torch): a bad flag fails at once.

Oracles: ``sys.modules`` of a fresh process after the script refused its arguments (neither torch nor
the study module may be there); the imported study's own ``PRESETS``/``METHODS`` for the names read
from the source; argparse's exit codes; hand-written sources for each form the reader accepts or
must refuse (refusal = fall back to importing, checked with a throw-away module).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kdbounds.studies import _cli
from kdbounds.studies.__main__ import available_studies

ROOT = Path(__file__).resolve().parents[2]
SCRIPTED = ["functional_transfer", "sharpness_vs_gap", "nuisance_teacher", "pid_transfer"]


@pytest.mark.parametrize("name", available_studies())
def test_preset_names_read_from_source_match_the_imported_study(name):
    mod = f"kdbounds.studies.{name}"
    assert _cli.module_names(mod, "PRESETS") == tuple(importlib.import_module(mod).PRESETS)


@pytest.mark.parametrize("name", SCRIPTED)
def test_the_scripted_studies_are_read_without_import(name):
    """The fast path holds for every study whose script uses it (else a bad flag costs the torch import)."""
    tree = ast.parse((ROOT / "kdbounds" / "studies" / f"{name}.py").read_text())
    assert _cli._literal_names(tree, "PRESETS") is not None


def test_nuisance_methods_are_read_from_source():
    from kdbounds.studies import nuisance_teacher

    assert _cli.module_names("kdbounds.studies.nuisance_teacher", "METHODS") == nuisance_teacher.METHODS


READABLE = {
    "P = {'a': 1, 'b': f(2)}": ("a", "b"),
    "P: dict = {'x': 1}": ("x",),
    "P = ('u', 'v')": ("u", "v"),
    "S = {'s': {}, 'd': {}}\nP = {k: C(**kw) for k, kw in S.items()}": ("s", "d"),
    "S = {'s': 1}\nP = {k: C(k) for k in S}": ("s",),
}
REFUSED = [
    "P = make()",
    "P = {'a': 1}\nP['b'] = 2",
    "P = {'a': 1}\nP.update(b=2)",
    "P = {'a': 1}\nP = {'b': 1}",
    "P = {'a': 1}\nP |= {'b': 2}",
    "P = {1: 'a'}",
    "P = {**Q}",
    "S = {'s': 1}\nP = {k.upper(): 1 for k in S}",
    "S = {'s': 1}\nP = {k: 1 for k in S if k}",
    "P = {k: 1 for k in other()}",
    "Q = 1",
]


@pytest.mark.parametrize("src,expected", READABLE.items(), ids=list(READABLE))
def test_literal_forms_are_read(src, expected):
    assert _cli._literal_names(ast.parse(src), "P") == expected


@pytest.mark.parametrize("src", REFUSED)
def test_other_forms_are_refused(src):
    assert _cli._literal_names(ast.parse(src), "P") is None


def test_a_refused_form_falls_back_to_importing(tmp_path, monkeypatch):
    (tmp_path / "kd_lazy_probe.py").write_text("P = dict(zip(['b', 'a'], [1, 2]))\nP['c'] = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cli.module_names("kd_lazy_probe", "P") == ("b", "a", "c")
    with pytest.raises(ModuleNotFoundError, match="kd_lazy_nothing"):
        _cli.module_names("kd_lazy_nothing", "P")


PROBE = textwrap.dedent('''
    import json, runpy, sys
    name, argv = sys.argv[1], sys.argv[2:]
    sys.argv = [f"experiments/{name}.py", *argv]
    try:
        runpy.run_path(f"experiments/{name}.py", run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    print(json.dumps({"code": code, "torch": "torch" in sys.modules,
                      "study": [m for m in sys.modules if m.startswith("kdbounds.studies.")
                                and m.rsplit(".", 1)[1] in %r]}))
''' % (SCRIPTED,))

BAD = [("functional_transfer", ["--preset", "nope"], 2), ("functional_transfer", ["--seeds=0"], 2),
       ("functional_transfer", ["--help"], 0), ("sharpness_vs_gap", ["--preset", "nope"], 2),
       ("sharpness_vs_gap", ["--teacher-epochs=-1"], 2), ("nuisance_teacher", ["--preset", "nope"], 2),
       ("nuisance_teacher", ["--methods=kd,nope"], 2), ("nuisance_teacher", ["--help"], 0),
       ("pid_transfer", ["--preset", "nope"], 2), ("pid_transfer", ["--bogus"], 2)]


def _probe(code: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


@pytest.mark.parametrize("name,argv,code", BAD, ids=[f"{n} {' '.join(a)}" for n, a, _ in BAD])
def test_a_script_refuses_bad_flags_before_importing_torch(name, argv, code):
    res, err = _probe(PROBE, name, *argv)
    assert res["code"] == code, err
    assert not res["torch"] and not res["study"], res
    if code == 2:
        assert "error: argument" in err or "unrecognized arguments" in err


def test_kdbounds_study_by_name_refuses_a_bad_preset_before_importing_torch():
    code = ("import json, sys\nfrom kdbounds.studies.__main__ import main\n"
            "try:\n    main(['functional-transfer', '--preset', 'nope'])\n    c = 0\n"
            "except SystemExit as e:\n    c = e.code\n"
            "print(json.dumps({'code': c, 'torch': 'torch' in sys.modules}))")
    res, err = _probe(code)
    assert res == {"code": 2, "torch": False}, err
    assert "invalid choice: 'nope'" in err


def test_add_overrides_skips_a_shared_option_and_adds_the_others():
    p = _cli.study_parser("T.", {"a": None}, "a")
    _cli.add_overrides(p, {"threads": int, "epochs": int})  # --threads comes from the sweep options
    a = p.parse_args(["--threads", "3", "--epochs", "2"])
    assert (a.threads, a.epochs) == (3, 2)
    with pytest.raises(SystemExit):
        p.parse_args(["--epochs", "-1"])  # bare int became nonneg_int
    assert "_option_string_actions" not in (ROOT / "kdbounds" / "studies" / "_cli.py").read_text()


def test_a_preset_missing_from_the_study_is_a_clear_exit():
    import argparse

    with pytest.raises(SystemExit, match="--preset gone: the study has no such preset"):
        _cli.config_from_args({}, argparse.Namespace(preset="gone"))
