"""README's generated tables equal what their generators print from the committed results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from kdbounds._io import marked_block

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_time_to_accuracy_table_matches_results():
    rep = _load(ROOT / "benchmarks" / "report_time_to_accuracy.py")
    inside = marked_block((ROOT / "README.md").read_text(), rep.BLOCK)
    assert inside == rep.table(json.loads(rep.RESULTS.read_text())), \
        "README's fast-recipe table is stale: run `python benchmarks/report_time_to_accuracy.py --write`"


def test_certify_students_scale_table_matches_results():
    rep = _load(ROOT / "experiments" / "report_certify_students.py")
    inside = marked_block((ROOT / "README.md").read_text(), rep.BLOCK)
    assert inside == rep.render(), \
        "README's certify_students scale table is stale: run `python experiments/report_certify_students.py --write`"


def test_certify_students_scale_results_are_the_merge_of_the_committed_runs(tmp_path):
    """The committed scale results.json is exactly the merge of its per-seed runs (runs/seed-N), so no number in it
    (or in README's table) exists without the run that produced it."""
    from kdbounds.studies.certify_students import merge_results

    rep = _load(ROOT / "experiments" / "report_certify_students.py")
    runs = sorted((rep.RESULTS.parent / "runs").glob("seed-*"))
    assert len(runs) >= 2, runs
    merged = merge_results(runs, tmp_path).to_dict()
    committed = json.loads(rep.RESULTS.read_text())
    for key in ("config", "certificates", "summary", "split", "teachers", "priors"):
        assert json.loads(json.dumps(merged[key])) == committed[key], key


def test_marked_blocks_are_found_and_replaced_in_place(tmp_path):
    from kdbounds._io import replace_marked_block

    page = tmp_path / "p.md"
    page.write_text("a\n<!-- t:begin -->\nold\n<!-- t:end -->\nb\n")
    replace_marked_block(page, "t", "new | row")
    assert page.read_text() == "a\n<!-- t:begin -->\nnew | row\n<!-- t:end -->\nb\n"
    assert marked_block(page.read_text(), "t") == "new | row"
    import pytest

    with pytest.raises(ValueError, match="no block <!-- u:begin -->"):
        marked_block(page.read_text(), "u")


def test_default_budget_table_matches_results():
    rep = _load(ROOT / "benchmarks" / "report_default_budget.py")
    inside = marked_block((ROOT / "README.md").read_text(), rep.BLOCK)
    assert inside == rep.table(rep.load()), \
        "README's default-budget table is stale: run `python benchmarks/report_default_budget.py --write`"
