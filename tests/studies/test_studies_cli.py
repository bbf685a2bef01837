"""The shared study command line: preset lookup, overrides, clear errors."""

from __future__ import annotations

import pytest

from kdbounds.studies import _cli
from kdbounds.studies import sharpness_vs_gap as svg


def _parse(argv):
    p = _cli.study_parser("Title.\n\nMore text.", svg.PRESETS, "cpu")
    _cli.add_overrides(p, {"teacher_epochs": int})
    return p.parse_args(argv)


def test_unset_options_keep_the_preset():
    a = _parse(["--preset", "smoke"])
    assert _cli.config_from_args(svg.PRESETS, a, ["teacher_epochs"]) == svg.PRESETS["smoke"]
    assert _parse([]).preset == "cpu"


def test_options_override_the_preset():
    a = _parse(["--preset", "smoke", "--teacher-epochs", "3", "--seed", "7", "--device", "cpu"])
    cfg = _cli.config_from_args(svg.PRESETS, a, ["teacher_epochs"])
    assert (cfg.teacher_epochs, cfg.seed, cfg.device) == (3, 7, "cpu")
    assert cfg.student_epochs == svg.PRESETS["smoke"].student_epochs
    assert svg.PRESETS["smoke"].teacher_epochs == 1  # the preset itself is untouched (frozen)


def test_bad_values_exit_with_a_message():
    a = _parse(["--preset", "smoke"])
    with pytest.raises(SystemExit, match="unknown methods"):
        _cli.config_from_args(svg.PRESETS, a, methods=("nope",))
    with pytest.raises(SystemExit):
        _parse(["--preset", "huge"])


def test_option_the_study_lacks_is_rejected():
    a = _parse(["--preset", "smoke"])
    a.n_seeds_xyz = 3
    with pytest.raises(SystemExit, match="n_seeds_xyz"):
        _cli.config_from_args(svg.PRESETS, a, ["n_seeds_xyz"])


def test_default_preset_must_exist():
    with pytest.raises(ValueError, match="default_preset"):
        _cli.study_parser("x", svg.PRESETS, "huge")


@pytest.mark.parametrize("name", ["functional_transfer", "nuisance_teacher", "pid_transfer"])
def test_studies_on_the_sweep_runner_take_ray(name):
    """The studies ported to the sweep runner get the execution options as ``sweep=`` (no refusal)."""
    import importlib

    study = importlib.import_module(f"kdbounds.studies.{name}")
    args = _cli.study_parser("x", study.PRESETS, "smoke").parse_args(
        ["--executor", "ray", "--workers", "2", "--threads", "1"])
    assert _cli.execution_kwargs(study, name, args) == {
        "sweep": {"executor": "ray", "workers": 2, "address": None, "threads": 1, "max_retries": 2}}


def test_main_hands_the_study_absolute_paths(tmp_path, monkeypatch):
    """Runs on a cluster (``--address``) may start in another working directory: ``--out``,
    ``--cache-root`` and the data root reach the study as absolute paths."""
    import dataclasses
    import sys

    from kdbounds.studies import _cli
    from kdbounds.studies import functional_transfer as ft

    seen = {}

    def fake_run(config, out, *, cache_root=None, progress=True, sweep=None):
        seen.update(out=out, cache_root=cache_root, data_root=config.data_root)

    study = type(sys)("fake_study")
    study.run = fake_run
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    args = _cli.study_parser("fake", ft.PRESETS, "smoke").parse_args(
        ["--out", "o", "--cache-root", "c", "--data-root", "data"])
    monkeypatch.setattr(_cli, "with_data", lambda c, **kw: c)
    config = dataclasses.replace(ft.PRESETS["smoke"], data_root="data")
    _cli.main(study, "fake", config, args, summary=lambda r: "")
    assert seen == {"out": tmp_path / "o", "cache_root": tmp_path / "c", "data_root": str(tmp_path / "data")}


def test_without_cache_root_every_study_gets_the_one_default(tmp_path, monkeypatch):
    """No ``--cache-root``: the study is handed ``<out>/../cache`` (the one documented layout), whatever its own
    default for library calls."""
    import sys

    from kdbounds.studies import functional_transfer as ft

    seen = {}
    study = type(sys)("fake_study")
    study.run = lambda config, out, *, cache_root=None, progress=True, sweep=None: seen.update(cache=cache_root)
    monkeypatch.setattr(_cli, "with_data", lambda c, **kw: c)
    args = _cli.study_parser("fake", ft.PRESETS, "smoke").parse_args(["--out", str(tmp_path / "r" / "smoke")])
    _cli.main(study, "fake", ft.PRESETS["smoke"], args, summary=lambda r: "")
    assert seen["cache"] == tmp_path / "r" / "cache"
    monkeypatch.chdir(tmp_path)
    args = _cli.study_parser("fake", ft.PRESETS, "smoke").parse_args([])
    _cli.main(study, "fake", ft.PRESETS["smoke"], args, summary=lambda r: "")
    assert seen["cache"] == tmp_path / "results" / "fake" / "cache"


# ---- one preset vocabulary ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", __import__("kdbounds.studies.__main__", fromlist=["x"]).available_studies())
def test_every_preset_name_is_from_the_vocabulary(name):
    """smoke / cpu / scale / gpu, or smoke-<one of them>; every study has smoke (CI) and cpu (the default)."""
    names = _cli.module_names(f"kdbounds.studies.{name}", "PRESETS")
    allowed = set(_cli.PRESET_VOCABULARY) | {f"smoke-{v}" for v in _cli.PRESET_VOCABULARY if v != "smoke"}
    assert set(names) <= allowed, f"{name}: {sorted(set(names) - allowed)} not in the preset vocabulary"
    assert {"smoke", "cpu"} <= set(names), name


@pytest.mark.parametrize("study,old,new", [("sharpness_vs_gap", "default", "cpu"), ("sharpness_vs_gap", "paper", "gpu"),
                                           ("nuisance_teacher", "paper", "gpu")])
def test_an_old_preset_name_still_works_and_says_its_new_name(capsys, study, old, new):
    import importlib

    presets = importlib.import_module(f"kdbounds.studies.{study}").PRESETS
    assert old not in presets and new in presets
    p = _cli.study_parser("T.", presets, "cpu")
    assert p.parse_args(["--preset", old]).preset == new
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--preset {old} is deprecated" in err and f"--preset {new}" in err
    assert p.parse_args(["--preset", new]).preset == new and capsys.readouterr().err == "", "the new name is quiet"
    assert f"{old} = {new}" in p.format_help(), "--help lists the old names"


def test_an_alias_never_shadows_a_preset_and_unknown_names_still_fail(capsys):
    assert _cli.canonical_preset("default", {"default": 1, "cpu": 2}) == "default"  # a study's own name wins
    assert _cli.canonical_preset("paper", {"smoke": 1}) == "paper"  # no gpu preset: no alias, the caller refuses
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        _parse(["--preset", "paperr"])
    assert "invalid choice: 'paperr'" in capsys.readouterr().err


def test_sharpness_preset_function_takes_the_old_names(capsys):
    assert svg.preset("default") == svg.PRESETS["cpu"]
    assert "'cpu'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="preset must be one of"):
        svg.preset("nope")


def test_a_deprecated_flag_sets_its_preset(capsys):
    p = _cli.study_parser("T.", svg.PRESETS, "cpu")
    _cli.add_deprecated_preset_flag(p, "--quick", "smoke")
    assert p.parse_args(["--quick"]).preset == "smoke"
    assert "--quick is deprecated: use --preset smoke" in capsys.readouterr().err
    with pytest.raises(ValueError, match="preset: expected one of"):
        _cli.add_deprecated_preset_flag(p, "--huge", "huge")
