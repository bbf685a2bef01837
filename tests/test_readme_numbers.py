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
