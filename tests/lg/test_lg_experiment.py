"""Smoke test of experiments/linear_gaussian_tradeoffs.py --preset smoke (CSV, JSON with config + seeds, PNGs),
the study behind it (kdbounds.studies.linear_gaussian_tradeoffs, also ``kdbounds-study linear_gaussian_tradeoffs``)
and the deprecated ``--quick`` (the smoke preset, with one line saying so)."""

import csv
import json
from pathlib import Path

import linear_gaussian.sweeps as rep
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    return load_file("experiments/linear_gaussian_tradeoffs.py")


def test_smoke_run_writes_outputs(tmp_path):
    out = tmp_path / "lg"
    assert load_script().main(["--preset", "smoke", "--out", str(out), "--no-progress"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["preset"] == "smoke" and cfg["config"]["seeds"] == [0]
    res = json.loads((out / "results.json").read_text())
    summary = res["summary"]
    assert res["provenance"]["data"]["kind"] == "synthetic" and res["provenance"]["data"]["seeds"] == [0]
    assert res["summary"]["all_theorem3b_hold"] is True
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["sweep"] for r in rows} == set(rep.SWEEPS)
    for r in rows:
        assert abs(float(r["total"]) - (float(r["bias"]) + float(r["rank_bottleneck"]) + float(r["variance"]))) < 1e-9 * max(1, float(r["total"]))
    for sweep in rep.SWEEPS:
        assert (out / f"terms_vs_{sweep}.png").stat().st_size > 1000
        assert (out / f"bounds_vs_{sweep}.png").stat().st_size > 1000
    # the design claims of theory.md §3.4: R_r grows ~ n, B decays, V flat (ridges matched here)
    assert summary["slope_rank_bottleneck_vs_n"] > 0.7
    assert summary["slope_bias_vs_n"] < -0.4
    assert abs(summary["slope_variance_vs_n"]) < 0.05


def test_rank_sweep_monotone_bottleneck():
    cfg = rep.TradeoffConfig.quick()
    rows = [r for r in rep.run_sweeps(cfg, progress=False) if r["sweep"] == "rank"]
    R = [r["rank_bottleneck"] for r in sorted(rows, key=lambda r: r["x"])]
    assert all(a >= b for a, b in zip(R, R[1:])) and R[-1] == 0.0


def test_script_on_the_sweep_runner_gives_the_rows_of_run_sweeps(tmp_path):
    """One run per (seed, sweep) through the runner, concatenated in spec order: the same rows, in the
    same order, as the plain loop :func:`linear_gaussian.sweeps.run_sweeps` (the independent path)."""
    from kdbounds._io import to_jsonable

    out = tmp_path / "lg"
    load_script().main(["--preset", "smoke", "--out", str(out), "--no-progress", "--no-plots", "--seeds", "0", "1"])
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert not list(out.glob("*.png")), "--no-plots draws nothing"
    cfg = rep.TradeoffConfig(**{**rep.TradeoffConfig.quick().to_dict(), "seeds": (0, 1)})
    assert rows == json.loads(json.dumps(to_jsonable(rep.run_sweeps(cfg, progress=False))))
    assert json.loads((out / "config.json").read_text())["executor"] == "local"


def test_sweep_rows_refuses_unknown_sweeps_and_seeds():
    import pytest

    cfg = rep.TradeoffConfig.quick().to_dict()
    with pytest.raises(ValueError, match="sweep: expected one of"):
        rep.sweep_rows(cfg, "temperature", 0)
    with pytest.raises(ValueError, match="seed: expected one of"):
        rep.sweep_rows(cfg, "n", 7)


def test_quick_is_the_smoke_preset_and_says_so(capsys):
    """``--quick`` (the flag before the preset vocabulary) still works: it selects ``smoke`` and prints one line."""
    a = load_script().parse_args(["--quick"])
    assert a.preset == "smoke"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--quick is deprecated" in err and "--preset smoke" in err
    assert load_script().parse_args([]).preset == "cpu"


def test_the_study_is_a_kdbounds_study_name(tmp_path, monkeypatch):
    """``kdbounds-study linear_gaussian_tradeoffs`` runs the same script; its presets are the smoke/cpu vocabulary."""
    from kdbounds.studies import linear_gaussian_tradeoffs as study
    from kdbounds.studies.__main__ import available_studies, main

    assert "linear_gaussian_tradeoffs" in available_studies()
    assert tuple(study.PRESETS) == ("smoke", "cpu") and study.PRESETS["smoke"].tradeoff == rep.TradeoffConfig.quick()
    assert study.PRESETS["cpu"].tradeoff == rep.TradeoffConfig()
    out = tmp_path / "by-name"
    assert main(["linear-gaussian-tradeoffs", "--preset", "smoke", "--seeds", "1", "--no-plots", "--no-progress",
                 "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["seeds"] == [1]


def test_options_that_mean_nothing_here_are_refused(capsys):
    import pytest

    for flag in ("--cache-root=/tmp/x", "--device=cpu", "--seed=1"):
        with pytest.raises(SystemExit) as e:
            load_script().parse_args([flag])
        assert e.value.code == 2
        assert "trains nothing" in capsys.readouterr().err
