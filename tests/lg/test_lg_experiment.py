"""Smoke test of experiments/linear_gaussian_tradeoffs.py --quick (CSV, JSON with config + seeds, PNGs)."""

import csv
import importlib.util
import json
from pathlib import Path

import linear_gaussian.sweeps as rep

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("lg_tradeoffs", ROOT / "experiments" / "linear_gaussian_tradeoffs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_writes_outputs(tmp_path):
    out = tmp_path / "lg"
    summary = load_script().main(["--quick", "--out", str(out), "--no-progress"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["quick"] is True and cfg["config"]["seeds"] == [0]
    res = json.loads((out / "results.json").read_text())
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
    load_script().main(["--quick", "--out", str(out), "--no-progress", "--no-plots", "--seeds", "0", "1"])
    rows = json.loads((out / "results.json").read_text())["rows"]
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
