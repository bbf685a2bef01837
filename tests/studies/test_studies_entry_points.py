"""Console entry points (pyproject [project.scripts]) and ``kdbounds-study <name>``.

Oracles: pyproject.toml read with tomllib (the declared targets must import and be callable); the
file listing of kdbounds/studies for the discovered names; argparse's own help text for the options.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import pytest

from kdbounds.studies import __main__ as study_cli
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[2]


def test_declared_console_scripts_resolve_to_callables():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) >= {"kdbounds-train", "kdbounds-study"}
    for target in scripts.values():
        mod, _, fn = target.partition(":")
        assert callable(getattr(importlib.import_module(mod), fn))


def test_studies_are_discovered_from_the_files_without_plumbing():
    files = {p.stem for p in (ROOT / "kdbounds" / "studies").glob("*.py") if not p.stem.startswith("_")}
    assert study_cli.available_studies() == sorted(files)
    assert {"functional_transfer", "sharpness_vs_gap"} <= set(study_cli.available_studies())


def test_unknown_study_and_list(capsys):
    assert study_cli.main(["no_such_study"]) == 2
    assert "unknown study 'no_such_study'" in capsys.readouterr().err
    assert study_cli.main(["--list"]) == 0
    assert "functional_transfer" in capsys.readouterr().out.split()
    assert study_cli.main([]) == 2


@pytest.mark.parametrize("checkout", [True, False])
def test_study_by_name_has_the_study_and_execution_options(checkout, monkeypatch, capsys, tmp_path):
    if not checkout:  # an installed package: no experiments/ folder, the generic command line
        monkeypatch.setattr(study_cli, "_EXPERIMENTS", tmp_path)
    with pytest.raises(SystemExit) as ei:
        study_cli.main(["functional-transfer", "--help"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--preset", "--executor", "--workers", "--address", "--threads", "--no-download", "--seeds",
                "--teacher-epochs"):
        assert opt in out, opt


def test_every_experiment_script_has_the_execution_flags_and_a_study_threads_field_is_shared():
    """Each experiments/*.py built on the shared parser accepts the execution options; a study whose
    config has its own ``threads`` (nuisance_teacher) gets ``--threads`` once, applied to that field."""

    from kdbounds.studies import nuisance_teacher

    def load(name):
        return load_file(f"experiments/{name}.py")

    for name in ("sharpness_vs_gap", "nuisance_teacher", "functional_transfer", "pid_transfer", "certify_flatness"):
        a = load(name).parse_args(["--executor", "ray", "--workers", "2", "--threads", "2", "--no-download"])
        assert (a.executor, a.workers, a.threads, a.no_download) == ("ray", 2, 2, True), name
    nt = load("nuisance_teacher")
    assert nt.resolve(nt.parse_args(["--threads", "3"])).threads == 3
    assert nt.resolve(nt.parse_args([])).threads == nuisance_teacher.PRESETS["cpu"].threads


def test_an_old_preset_name_through_kdbounds_study_says_its_new_name(capsys):
    """``kdbounds-study sharpness_vs_gap --preset paper`` parses as ``gpu`` and says so in one line (then --help)."""
    with pytest.raises(SystemExit) as ei:
        study_cli.main(["sharpness-vs-gap", "--preset", "paper", "--help"])
    assert ei.value.code == 0
    err = capsys.readouterr().err
    assert err.splitlines() == ["--preset paper is deprecated: that preset is now called 'gpu' (the same settings); "
                                "use --preset gpu"]
