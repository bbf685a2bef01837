"""README's generated tables equal what their generators print from the committed results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdbounds._io import marked_block
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    return load_file(path)


def test_time_to_accuracy_table_matches_results():
    rep = _load(ROOT / "benchmarks" / "report_time_to_accuracy.py")
    inside = marked_block((ROOT / "README.md").read_text(), rep.BLOCK)
    assert inside == rep.table(json.loads(rep.RESULTS.read_text())), \
        "README's fast-recipe table is stale: run `python benchmarks/report_time_to_accuracy.py --write`"


@pytest.mark.parametrize("study", list(_load(ROOT / "experiments" / "report_scale.py").REPORTS))
def test_scale_blocks_match_results(study):
    rep = _load(ROOT / "experiments" / "report_scale.py")
    inside = marked_block((ROOT / "README.md").read_text(), rep.REPORTS[study][2])
    assert inside == rep.render(study), \
        f"README's {study} scale block is stale: run `python experiments/report_scale.py {study} --write`"


def test_report_scale_refuses_an_unknown_study(capsys):
    rep = _load(ROOT / "experiments" / "report_scale.py")
    with pytest.raises(SystemExit):
        rep.main(["sharpness"])
    assert "STUDY: unknown sharpness; expected one of certify_students, sharpness_vs_gap" in capsys.readouterr().err


@pytest.mark.parametrize("report,min_runs", [("certify_students", 2), ("certify_students-a0.01", 1)])
def test_certify_students_scale_results_are_the_merge_of_the_committed_runs(tmp_path, report, min_runs):
    """The committed scale results.json is exactly the merge of its per-seed runs (runs/seed-N), so no number in it
    (or in README's table) exists without the run that produced it."""
    from kdbounds.studies.certify_students import merge_results

    rep = _load(ROOT / "experiments" / "report_scale.py")
    results = rep.REPORTS[report][0]
    runs = sorted((results.parent / "runs").glob("seed-*"))
    assert len(runs) >= min_runs, runs
    merged = merge_results(runs, tmp_path).to_dict()
    committed = json.loads(results.read_text())
    for key in ("config", "certificates", "summary", "split", "teachers", "priors"):
        assert json.loads(json.dumps(merged[key])) == committed[key], key


def test_marked_blocks_are_found_and_replaced_in_place(tmp_path):
    from kdbounds._io import replace_marked_block

    page = tmp_path / "p.md"
    page.write_text("a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n")
    replace_marked_block(page, "t", "new | row")
    assert page.read_text() == "a\n<!-- t:begin -->\nnew | row\n<!-- t:end -->\nb\n"
    assert marked_block(page.read_text(), "t") == "new | row"
    with pytest.raises(ValueError, match="no block <!-- u:begin -->"):
        marked_block(page.read_text(), "u")


def test_default_budget_table_matches_results():
    rep = _load(ROOT / "benchmarks" / "report_default_budget.py")
    inside = marked_block((ROOT / "README.md").read_text(), rep.BLOCK)
    assert inside == rep.table(rep.load()), \
        "README's default-budget table is stale: run `python benchmarks/report_default_budget.py --write`"


def test_sharpness_scale_goal_line_names_every_teacher_below_85_percent():
    """The goal line is computed, not typed: a teacher at 0.8499 misses 85 %, one at exactly 0.85 reaches it, and a
    violated check is listed with its pair."""
    import copy

    from kdbounds.studies._results import read_results
    from kdbounds.studies.sharpness_vs_gap import readme_report

    rep = _load(ROOT / "experiments" / "report_scale.py")
    res = read_results(rep.REPORTS["sharpness_vs_gap"][0])
    teachers = list(dict.fromkeys(r["teacher"] for r in res["rows"]))
    edited = copy.deepcopy(res)
    for r in edited["rows"]:
        r["teacher_test_acc"] = {teachers[0]: 0.85, teachers[1]: 0.8499}.get(r["teacher"], 0.9)
    text = readme_report(edited)
    assert f"{len(teachers) - 1} of {len(teachers)} reach it; missed by `{teachers[1]}`." in text
    bad = [c for c in res["checks"] if c["verdict"] == "violated"]
    assert all(f"teacher `{c['teacher']}`, student `{c['student']}`" in readme_report(res) for c in bad)


def test_bound_anatomy_of_the_committed_flagship_run():
    """Oracle: the quadratic 3B records' own inputs. K = ‖Δ‖²/(2s²) and √(2vK) + c₊K = the recorded bound (to
    1e-9), so the linear floor ‖Δ‖·G₀/|observed| lies under every record's bound / observed; the anatomy's rows
    are those records, and the README row says "not excluded" exactly where a floor is ≤ 10."""
    import math

    from kdbounds.studies._results import read_results
    from kdbounds.studies.sharpness_vs_gap import bound_anatomy

    rep = _load(ROOT / "experiments" / "report_scale.py")
    res = read_results(rep.REPORTS["sharpness_vs_gap"][0])
    quad = [c for c in res["checks"] if c["name"] == "thm3b_subgamma_quadratic" and c["verdict"] != "not_defined"]
    assert quad
    for c in quad:
        i = c["inputs"]
        assert math.isclose(i["K"], i["gap_delta_norm"] ** 2 / (2 * i["s"] ** 2), rel_tol=1e-6)
        assert math.isclose(math.sqrt(2 * i["v"] * i["K"]) + i["c_plus"] * i["K"], c["bound"], rel_tol=1e-9)
        assert i["gap_delta_norm"] * i["G0"] / abs(c["observed"]) <= c["ratio"] * (1 + 1e-12)
    rows = bound_anatomy(res["checks"])
    assert sum(r["n_pairs"] for r in rows) == len(quad) and max(r["recomputed_rel_diff"] for r in rows) < 1e-9
    block = rep.render("sharpness_vs_gap")
    for r in rows:
        line = next(ln for ln in block.splitlines() if ln.startswith(f"| `{r['student']}` | {r['n_pairs']} | "))
        assert line.endswith("not excluded |") == (r["linear_floor_min"] <= 10)


def test_make_run_wall_time_is_the_recorded_one():
    """README's wall time of `make run` is the one /usr/bin/time recorded next to the committed default run."""
    import re

    rec = (ROOT / "reports" / "sharpness_vs_gap-cpu" / "make_run_time.txt").read_text()
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\d+):(\d+(?:\.\d+)?)", rec)
    assert m, "make_run_time.txt has no Elapsed line"
    total = round(int(m.group(1)) * 60 + float(m.group(2)))
    assert f"**{total // 60} min {total % 60} s**" in (ROOT / "README.md").read_text(), \
        "README's `make run` wall time differs from reports/sharpness_vs_gap-cpu/make_run_time.txt"


def _jpeg_record(q, acc, db=None, nbytes=None):
    return {"point": "as-is" if q is None else f"q{q}", "quality": q, "arch": "airbench_s", "epochs": 10, "seed": 0,
            "test_accuracy": acc, "test_accuracy_tta": acc + 0.01, "psnr_db_vs_copy": db, "mean_bytes": nbytes,
            "cpu_s": 100.0, "threads": 1}


def test_jpeg_dose_response_block_extrapolates_in_proportion_to_the_distortion():
    """By hand: the copy at 85 %, q50 at 83 % having removed 29 dB, the proxy 31 dB: the first encoding's cost is
    2 points · 10^(−3.1) / 10^(−2.9) = 1.26 points; points that did not lose accuracy give no figure."""
    rep = _load(ROOT / "benchmarks" / "report_jpeg_dose_response.py")
    res = {"records": {"a": _jpeg_record(50, 0.83, 29.0, 855), "b": _jpeg_record(None, 0.85),
                       "c": _jpeg_record(90, 0.851, 42.0, 1056)},
           "first_encoding_proxy": {"quality": 75, "shift_px": 1, "n_images": 2000, "seed": 0, "psnr_db": 31.0,
                                    "psnr_db_on_grid": None}}
    text = rep.block(res)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [r.split("|")[1].strip() for r in rows] == ["`as-is`", "`q90`", "`q50`"]
    assert "-2.00 points" in rows[2] and "+0.10 points" in rows[1]
    assert "from `q50` 1.3 points" in text and "from `q90`" not in text
    assert "**31.0 dB** removed (on the grid: nothing)" in text


def test_jpeg_dose_response_table_matches_results():
    rep = _load(ROOT / "benchmarks" / "report_jpeg_dose_response.py")
    if not rep.RESULTS.exists():
        pytest.fail("benchmarks/results/jpeg_dose_response/results.json is missing: run the benchmark")
    inside = marked_block((ROOT / "README.md").read_text(), rep.BLOCK)
    assert inside == rep.block(rep.load()), \
        "README's JPEG dose-response block is stale: run `python benchmarks/report_jpeg_dose_response.py --write`"
