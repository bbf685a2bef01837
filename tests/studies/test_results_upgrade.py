"""Old results read under today's names (kdbounds.studies._results): the KD temperature ``kd_T`` -> ``T``.

Oracles: the committed ``reports/certify_students-scale/results.json`` (written with ``kd_T``), whose upgraded config
must build today's :class:`~kdbounds.studies.certify_students.Config` field for field; and a merge of a run written
under the old name with one written under the new name, which must be one configuration.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from kdbounds._io import atomic_write_json
from kdbounds.studies import certify_flatness as cf
from kdbounds.studies import certify_students as cs
from kdbounds.studies._results import RENAMED, read_results, upgrade_config

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "reports" / "certify_students-scale" / "runs" / "seed-0" / "results.json"  # a run written before the rename


def test_upgrade_renames_in_place_and_leaves_new_configs_alone():
    old = {"a": 1, "kd_T": 2.0, "z": [1]}
    up = upgrade_config(old)
    assert up == {"a": 1, "T": 2.0, "z": [1]} and list(up) == ["a", "T", "z"]  # same place: same key order
    assert old == {"a": 1, "kd_T": 2.0, "z": [1]}  # not modified
    assert upgrade_config(up) == up
    with pytest.raises(ValueError, match="holds both 'kd_T' and its new name 'T'"):
        upgrade_config({"kd_T": 4.0, "T": 4.0})
    with pytest.raises(TypeError, match="config: expected the mapping"):
        upgrade_config([("kd_T", 4.0)])


def test_no_study_config_still_has_an_old_name():
    for study in (cs, cf):
        names = {f.name for f in dataclasses.fields(study.Config)}
        assert not names & set(RENAMED), study.__name__
        assert names >= {"T"}, study.__name__


def test_the_committed_scale_run_reads_back_as_todays_config():
    raw = json.loads(COMMITTED.read_text())
    assert "kd_T" in raw["config"]  # written before the rename: the case this upgrade exists for
    cfg = read_results(COMMITTED)["config"]
    tuples = {f.name for f in dataclasses.fields(cs.Config) if "tuple" in str(f.type)}
    rebuilt = cs.Config(**{k: tuple(v) if k in tuples else v for k, v in cfg.items()})  # every key a field today
    assert rebuilt.T == raw["config"]["kd_T"] and json.loads(json.dumps(rebuilt.to_dict())) == cfg


def test_merge_of_an_old_and_a_new_run_is_one_configuration(tmp_path):
    new = cs.PRESETS["smoke"].to_dict()
    old = {("kd_T" if k == "T" else k): v for k, v in new.items()}  # as the code before the rename wrote it
    for seed, cfg in ((0, old), (1, new)):
        rows = [{"seed": seed, "prior": "learnt", "student": "pbb", "loss": "zero_one", "risk_upper": 0.6,
                 "test_gibbs_risk": 0.5, "gap": 0.1, "n_s": 500, "mean_term": 1.0, "variance_term": 0.5}]
        atomic_write_json(tmp_path / str(seed) / "results.json",
                          {"config": {**cfg, "seeds": [seed]}, "certificates": rows, "priors": [], "students": [],
                           "split": {}, "summary": {}, "seconds": 1.0, "environment": {}})
    res = cs.merge_results([tmp_path / "0", tmp_path / "1"], tmp_path / "m")
    assert res.config["seeds"] == [0, 1] and "kd_T" not in res.config and res.config["T"] == new["T"]
    merged = json.loads((tmp_path / "m" / "results.json").read_text())["config"]
    assert "kd_T" not in merged and merged["T"] == new["T"]
    atomic_write_json(tmp_path / "2" / "results.json",  # an old run at another temperature is another configuration
                      {"config": {**old, "kd_T": 2.0, "seeds": [2]}, "certificates": [], "priors": [],
                       "students": [], "split": {}, "summary": {}, "seconds": 1.0, "environment": {}})
    with pytest.raises(ValueError, match="another configuration"):
        cs.merge_results([tmp_path / "1", tmp_path / "2"], tmp_path / "m2")
