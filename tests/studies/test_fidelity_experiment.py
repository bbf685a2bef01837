"""Smoke run of experiments/functional_transfer.py on real CIFAR-10 (slow, needs the data)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.realdata
def test_functional_transfer_smoke(tmp_path):
    data = pytest.importorskip("kdbounds.data")
    try:
        data.find_cifar("cifar10", None)
    except data.DataNotFoundError:
        pytest.skip("real CIFAR-10 not found (set KDBOUNDS_DATA)")
    mod = load_file("experiments/functional_transfer.py")
    assert mod.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["reports"]) == {"kd", "rcd", "siddo", "alone"}
    assert all(len(v) == 2 for v in res["reports"].values())
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert {r["group"] for r in rows} == {"rcd", "siddo", "alone"}
    assert (tmp_path / "agreement_split.png").stat().st_size > 1000
    # cached re-run: same numbers
    first = (tmp_path / "per_run.csv").read_text().splitlines()
    assert mod.main(["--preset", "smoke", "--out", str(tmp_path), "--no-progress"]) == 0
    second = (tmp_path / "per_run.csv").read_text().splitlines()
    strip = lambda lines: [",".join(l.split(",")[:3] + l.split(",")[4:]) for l in lines]  # drop wall time
    assert strip(first) == strip(second)
