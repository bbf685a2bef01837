"""Every study has the common shape; configs are frozen and reject bad values with a message naming the field."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from kdbounds.studies import certify_flatness, functional_transfer, nuisance_teacher, pid_transfer, sharpness_vs_gap

STUDIES = (sharpness_vs_gap, nuisance_teacher, functional_transfer, pid_transfer, certify_flatness)


@pytest.mark.parametrize("study", STUDIES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_common_shape(study):
    assert dataclasses.is_dataclass(study.Config) and study.Config.__dataclass_params__.frozen
    assert study.PRESETS and all(isinstance(c, study.Config) for c in study.PRESETS.values())
    assert all(c.preset == name for name, c in study.PRESETS.items())
    params = inspect.signature(study.run).parameters
    assert list(params)[:2] == ["config", "out_dir"]
    assert params["cache_root"].kind is inspect.Parameter.KEYWORD_ONLY and params["cache_root"].default is None
    assert params["progress"].default is True
    assert callable(study.write_results) and callable(study.summary)
    for cfg in study.PRESETS.values():
        d = cfg.to_dict()
        assert d["preset"] == cfg.preset and "device" in d


def test_functional_transfer_rejects_bad_values():
    cfg = functional_transfer.PRESETS["smoke"]
    with pytest.raises(ValueError, match="seeds"):
        dataclasses.replace(cfg, seeds=1)
    with pytest.raises(ValueError, match="n_test"):
        dataclasses.replace(cfg, n_test=5)
    with pytest.raises(ValueError, match="student_epochs"):
        dataclasses.replace(cfg, student_epochs=0)
    assert cfg.params() == {k: v for k, v in cfg.to_dict().items() if k not in ("preset", "data_root")}


def test_pid_transfer_rejects_unknown_methods():
    with pytest.raises(ValueError, match="methods"):
        dataclasses.replace(pid_transfer.PRESETS["smoke"], methods=("kd", "nope"))
    assert pid_transfer.method_kwargs(pid_transfer.PRESETS["cpu"], "rid")["q"] == 3
    assert pid_transfer.method_kwargs(pid_transfer.PRESETS["cpu"], "kd") == {}
