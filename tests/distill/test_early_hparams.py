"""Every distillation method's hyper-parameters are checked before the run folder, the teacher or any
data is touched: by ``train`` itself, by the sweep's worker-side config fill-in and spec builder, and
by ``DistillMethod.check_hparams`` — the same parse the method's ``__init__`` uses.

Oracle: a training whose data root does not exist and whose teacher file does not exist: if the
hyper-parameter were checked after loading, the error would be about the data or the teacher."""

from __future__ import annotations

import pytest

from kdbounds.distill import TrainConfig, train
from kdbounds.distill.methods import available_methods, check_method_hparams, get_method

BAD = {
    "kd": ({"T": 0.0}, "T"),
    "vid": ({"eps": 0.0}, "eps"),
    "vid_rid": ({"hidden_mult": 0}, "hidden_mult"),
    "rid": ({"lam1": 0.0, "lam2": 0.0}, "lam1"),
    "itrd": ({"alpha": 0.0}, "alpha"),
    "rcd": ({"T": -1.0}, "T"),
    "pbb": ({"n_bound": 0}, "n_bound"),
}


@pytest.mark.parametrize("method", sorted(BAD))
def test_train_refuses_a_bad_hparam_before_the_teacher_or_data(tmp_path, method):
    kw, name = BAD[method]
    cfg = TrainConfig(arch="resnet8", epochs=1, method=method, method_kwargs=kw,
                      teacher_ckpt=str(tmp_path / "no_teacher.pt"), data_root=str(tmp_path / "no_data"))
    with pytest.raises(ValueError, match=name):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # nothing written: refused before the run folder


@pytest.mark.parametrize("method", sorted(BAD))
def test_check_method_hparams_names_the_argument(method):
    kw, name = BAD[method]
    with pytest.raises(ValueError, match=name):
        check_method_hparams(method, kw)


def test_every_method_accepts_its_defaults_early():
    for m in available_methods():
        cls = get_method(m)
        if m in ("pbb", "pbkd"):  # prior and n_bound are required
            check_method_hparams(m, {"prior": "random:0", "n_bound": 100})
        else:
            assert check_method_hparams(m, {}) == dict(cls.defaults)


def test_sweep_spec_refuses_a_bad_hparam_before_the_sweep(tmp_path):
    from kdbounds.runs.grid import train_spec, worker_config

    cfg = TrainConfig(arch="resnet8", epochs=1, method="kd", method_kwargs={"T": 0.0})
    with pytest.raises(ValueError, match="T"):
        train_spec("s", cfg, tmp_path)
    with pytest.raises(ValueError, match="T"):
        worker_config(cfg.to_dict())


def test_worker_config_checks_after_filling_in_the_prior(tmp_path):
    """A pbkd posterior whose prior comes from a dependency is complete only after the fill-in."""
    from types import SimpleNamespace

    from kdbounds.runs.grid import worker_config

    model = tmp_path / "model.pt"
    model.write_bytes(b"not read here")
    dep = SimpleNamespace(paths={"model": str(model)})
    cfg = TrainConfig(arch="mlp256", epochs=1, method="pbkd", method_kwargs={"n_bound": 100})
    out = worker_config(cfg.to_dict(), "t", {"t": dep}, prior="t")
    assert out.method_kwargs["prior"] == str(model) and out.teacher_ckpt == str(model)
    with pytest.raises(ValueError, match="prior"):
        worker_config(cfg.to_dict(), "t", {"t": dep})  # no prior filled in: refused
