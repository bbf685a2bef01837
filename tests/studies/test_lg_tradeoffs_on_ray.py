"""experiments/linear_gaussian_tradeoffs.py on Ray (the session's local cluster) gives the local rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from study_helpers import needs_ray
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[2]


def _script():
    return load_file("experiments/linear_gaussian_tradeoffs.py")


@needs_ray
@pytest.mark.xdist_group("ray")
def test_quick_sweeps_on_ray_equal_local(tmp_path, ray_cluster):
    main = _script().main
    common = ["--preset", "smoke", "--no-progress", "--no-plots", "--threads", "1"]
    main([*common, "--out", str(tmp_path / "l")])
    main([*common, "--out", str(tmp_path / "r"), "--executor", "ray", "--workers", "2"])
    local, remote = (json.loads((tmp_path / c / "results.json").read_text()) for c in ("l", "r"))
    assert remote["rows"] == local["rows"]  # every float, in the same order
    assert json.loads((tmp_path / "r" / "config.json").read_text())["executor"] == "ray"


def test_executor_flags_are_checked_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _script().main(["--preset", "smoke", "--out", str(tmp_path / "x"), "--workers", "4"])
    assert e.value.code == 2 and "--workers" in capsys.readouterr().err
    assert not (tmp_path / "x" / "results.json").exists()
