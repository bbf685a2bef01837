"""Notebook 3 reads the checks of a ``results.json`` generically (it is written against the
``kdbounds.checks.CheckRecord`` schema while the study still writes the legacy ``bound_checks`` one).

Its pure helper cell (the one defining ``read_checks``) is taken from the jupytext source and run on
records produced by the real producers — :func:`kdbounds.checks.make_record`, ``not_defined`` and
``assign_verdicts`` for the new schema, :func:`kdbounds.bound_checks.check_bounds` for the legacy one —
after a strict-JSON round trip, as the notebook sees them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("jupytext", reason="notebook tools missing: pip install -e '.[test]'")

from kdbounds._io import dumps_strict  # noqa: E402
from repo_files import load_file

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "notebooks" / "03_sharpness_and_gap.py"


def _helpers() -> dict:
    build = load_file("notebooks/build.py", "kdbounds_notebooks_build_readers")
    cells = [c.source for c in build.read_source(SOURCE).cells if c.cell_type == "code" and "def read_checks" in c.source]
    assert len(cells) == 1, "exactly one helper cell defines read_checks"
    ns: dict = {"math": math}
    exec(compile(cells[0], str(SOURCE), "exec"), ns)  # noqa: S102 - the notebook's own cell
    return ns


def _roundtrip(obj):
    return json.loads(dumps_strict(obj))


def test_reads_checkrecords_and_keeps_the_final_verdicts():
    from kdbounds.checks import assign_verdicts, make_record, not_defined

    ns = _helpers()
    pre = [make_record("thm1_sigma_n", "conditional", loss="clipped_ce", side="abs", bound=0.10, observed=0.02,
                       observed_se=0.01, assumptions_met=False, assumption="σ²/n", teacher="t1", student="kd"),
           make_record("thm1_sigma_n", "conditional", loss="zero_one", side="abs", bound=0.03, observed=0.025,
                       observed_se=0.02, assumptions_met=False, assumption="σ²/n", teacher="t1", student="kd"),
           make_record("gibbs_classifier", "demonstration", loss="gibbs_zero_one", side="abs", bound=0.01,
                       observed=0.05, observed_se=0.0, assumptions_met=True, assumption="exact", teacher="t1",
                       student="kd"),
           not_defined("thm3b_subgamma_mc", "conditional", loss="clipped_ce", side="abs",
                       reason="cross-architecture pair", teacher="t1", student="kd")]
    final = assign_verdicts(pre, alpha=0.05)
    # a plausible layout: per-pair copies (family of one) and the run-wide list with the final verdicts
    results = _roundtrip({"reports": [{"teacher": "t1", "method": "kd", "records": [r.to_dict() for r in pre]}],
                          "records": [r.to_dict() for r in final]})
    got = {(c["name"], c["loss"]): c for c in ns["read_checks"](results)}
    assert len(got) == len(pre), "each check once, although stored twice"
    for r in final:
        c = got[(r.name, r.loss)]
        assert c["pair"] == "t1 → kd"
        assert (c["kind"], c["verdict"]) == (r.kind, r.verdict)
        assert c["family_size"] == r.family_size
        if r.bound is None:
            assert math.isnan(c["bound"]) and c["reason"] == "cross-architecture pair"
        else:
            assert (c["bound"], c["observed"], c["se"]) == (r.bound, r.observed, r.observed_se)
    assert got[("gibbs_classifier", "gibbs_zero_one")]["verdict"] == "violated"  # exact: 0.05 > 0.01
    assert got[("thm1_sigma_n", "clipped_ce")]["z"] == pytest.approx(final[0].z)


def _legacy_record(name, bound, observed, holds):
    """A record in the schema of the removed ``kdbounds.bound_checks.BoundCheck`` (results of older runs)."""
    return {"name": name, "loss": "clipped_ce", "side": "abs", "bound": bound, "observed": observed,
            "observed_se": 0.05, "ratio": (bound / observed) if bound is not None else None, "holds": holds,
            "assumptions_met": False, "assumptions": "predictive K-hat", "params": {}}


def test_reads_legacy_bound_checks_as_unclassified_point_comparisons():
    ns = _helpers()
    legacy = [_legacy_record("thm1_per_sample", 0.2, 0.31, False),
              _legacy_record("thm1_product", 2.0, 0.31, True),
              _legacy_record("thm2_central", None, 0.31, False)]  # no positive teacher gap: null bound
    results = _roundtrip({"reports": [{"teacher": "t2", "method": "rid", "checks": legacy}],
                          "rows": [{"teacher": "t2", "method": "rid", "bound_thm1_per_sample_clipped_ce": 0.2}]})
    got = ns["read_checks"](results)
    assert len(got) == len(legacy)
    for c, b in zip(got, legacy):
        assert c["kind"] == "unclassified" and c["pair"] == "t2 → rid"
        if b["bound"] is None:
            assert c["verdict"] == "not_defined"
        else:
            assert c["verdict"] == ("holds (point)" if b["holds"] else "violated (point)")
    assert any(c["verdict"] == "violated (point)" for c in got)


def test_missing_fields_degrade_instead_of_raising():
    ns = _helpers()
    got = ns["read_checks"]({"x": [{"name": "bare", "bound": 1.0}], "y": [{"name": "no bound here"}]})
    assert len(got) == 1
    c = got[0]
    assert (c["kind"], c["verdict"], c["pair"], c["loss"]) == ("unclassified", "unknown", "? → ?", "—")
    assert math.isnan(c["se"]) and math.isnan(c["observed"])
    assert ns["fmt"](None) == ns["fmt"](float("nan")) == "—"
