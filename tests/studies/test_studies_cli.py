"""The shared study command line: preset lookup, overrides, clear errors."""

from __future__ import annotations

import pytest

from kdbounds.studies import _cli
from kdbounds.studies import sharpness_vs_gap as svg


def _parse(argv):
    p = _cli.study_parser("Title.\n\nMore text.", svg.PRESETS, "default")
    _cli.add_overrides(p, {"teacher_epochs": int})
    return p.parse_args(argv)


def test_unset_options_keep_the_preset():
    a = _parse(["--preset", "smoke"])
    assert _cli.config_from_args(svg.PRESETS, a, ["teacher_epochs"]) == svg.PRESETS["smoke"]
    assert _parse([]).preset == "default"


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
