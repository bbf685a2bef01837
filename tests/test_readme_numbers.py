"""README's generated tables equal what their generators print from the committed results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_time_to_accuracy_table_matches_results():
    rep = _load(ROOT / "benchmarks" / "report_time_to_accuracy.py")
    readme = (ROOT / "README.md").read_text()
    inside = readme[readme.index(rep.BEGIN) + len(rep.BEGIN):readme.index(rep.END)].strip()
    assert inside == rep.table(json.loads(rep.RESULTS.read_text())), \
        "README's fast-recipe table is stale: run `python benchmarks/report_time_to_accuracy.py --write`"
