"""Fault tests (issue 17): damaged checkpoints and cache files give one clear error naming the file and
the fix; a run killed with SIGKILL mid-epoch resumes bit-identically; two bit-identical teacher runs
write byte-identical ``model.pt`` (so their students get the same cache id); files are mode 0644;
resuming says so.

Oracles: an uninterrupted run of the same config (resume), a second run in another folder
(byte-stability), ``os.stat`` (modes), the file's own path (messages).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from kdbounds import train as cli
from kdbounds.distill import TrainConfig, train
from kdbounds.distill.checkpoint import MODEL_FORMAT, load_checkpoint_model, read_checkpoint
from kdbounds.runs.cache import load_cached, run_id

from bad_input_helpers import ROOT


def _data(n_train=32, n_test=16, seed=0):
    g = np.random.default_rng(seed)
    y = np.arange(n_train + n_test) % 4
    x = g.integers(0, 255, (n_train + n_test, 32, 32, 3)).astype(np.uint8)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _cfg(**kw):
    base = dict(arch="resnet8", epochs=1, batch_size=16, lr=0.05, schedule="constant", device="cpu", seed=3,
                eval_every=1)
    base.update(kw)
    return TrainConfig(**base)


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny finished teacher run (resnet8, 1 epoch, 32 images)."""
    out = tmp_path_factory.mktemp("teacher")
    r = train(_cfg(), out, data=_data(), progress=False)
    return r


# ---------------------------------------------------------------------------------------------
# damaged checkpoints
# ---------------------------------------------------------------------------------------------

def _damage(kind: str, good: bytes) -> bytes:
    if kind == "empty":
        return b""
    if kind == "truncated_half":
        return good[: len(good) // 2]
    if kind == "truncated_10_bytes":
        return good[:10]
    if kind == "garbage":
        return bytes(range(256)) * 4
    if kind == "json":
        return b'{"format": "kdbounds-model-v1"}'
    buf = io.BytesIO()
    if kind == "list":
        torch.save([1, 2, 3], buf)
    elif kind == "bare_state_dict":
        torch.save({"weight": torch.zeros(2)}, buf)
    elif kind == "format_without_state":
        torch.save({"format": MODEL_FORMAT, "arch": "resnet8"}, buf)
    elif kind == "wrong_weights":
        torch.save({"format": MODEL_FORMAT, "arch": "resnet8", "num_classes": 10,
                    "state_dict": {"conv1.weight": torch.zeros(1)}}, buf)
    return buf.getvalue()


DAMAGE = ["empty", "truncated_half", "truncated_10_bytes", "garbage", "json", "list", "bare_state_dict",
          "format_without_state", "wrong_weights"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_damaged_model_file_is_one_clear_error(trained, tmp_path, kind):
    bad = tmp_path / "model.pt"
    bad.write_bytes(_damage(kind, open(trained.paths["model"], "rb").read()))
    with pytest.raises(ValueError) as info:
        load_checkpoint_model(bad)
    msg = str(info.value)
    assert str(bad) in msg and "Traceback" not in msg
    assert "--no-resume" in msg or "model.pt written by" in msg


@pytest.mark.parametrize("kind", ["empty", "truncated_half", "garbage", "bare_state_dict", "wrong_weights"])
def test_damaged_checkpoint_on_resume_names_the_file_and_no_resume(trained, tmp_path, kind):
    out = tmp_path / "run"
    out.mkdir()
    good = open(trained.paths["checkpoint"], "rb").read()
    data = _damage(kind, good)
    if kind == "wrong_weights":  # a training checkpoint whose entries are damaged
        ck = torch.load(io.BytesIO(good), weights_only=True)
        ck["optimizers"] = []
        buf = io.BytesIO()
        torch.save(ck, buf)
        data = buf.getvalue()
    (out / "checkpoint.pt").write_bytes(data)
    with pytest.raises(ValueError) as info:
        train(_cfg(), out, data=_data(), progress=False)
    msg = str(info.value)
    assert str(out / "checkpoint.pt") in msg and "--no-resume" in msg
    r = train(_cfg(), out, data=_data(), progress=False, resume=False)  # the advertised fix works
    assert r.epochs_completed == 1


def _stop_after(n):
    def cb(info):
        if info.epoch == n:
            raise KeyboardInterrupt
    return cb


def test_missing_checkpoint_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize("kind", ["empty", "truncated_half", "garbage", "bare_state_dict"])
def test_distill_cli_with_damaged_teacher_exits_2_naming_it(trained, tmp_path, capsys, kind):
    bad = tmp_path / "teacher.pt"
    bad.write_bytes(_damage(kind, open(trained.paths["model"], "rb").read()))
    try:
        code = cli.main(["distill", "--arch", "resnet8", "--teacher", str(bad), "--out", str(tmp_path / "s")])
    except SystemExit as e:  # parse-time (the empty file)
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and "--teacher" in err and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()  # nothing was started


# ---------------------------------------------------------------------------------------------
# damaged cached results
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", ['{"config": {"epochs": 1}, "fin', "", "[1, 2]", '{"a": 1}',
                                     '{"config": {}, "final": {}, "history": [], "paths": {}, "epochs_completed": NaN}'],
                         ids=["truncated", "empty", "a list", "other record", "NaN constant"])
def test_damaged_cached_result_names_the_file(tmp_path, content):
    (tmp_path / "result.json").write_text(content)
    with pytest.raises(ValueError) as info:
        load_cached(tmp_path)
    assert str(tmp_path / "result.json") in str(info.value) and "delete" in str(info.value)


# ---------------------------------------------------------------------------------------------
# byte-stable artifacts, file modes, the resume message
# ---------------------------------------------------------------------------------------------

def test_two_identical_teacher_runs_write_byte_identical_model_files(trained, tmp_path):
    again = train(_cfg(), tmp_path / "again", data=_data(), progress=False)
    assert _sha(again.paths["model"]) == _sha(trained.paths["model"])
    stored = torch.load(again.paths["model"], weights_only=True)
    assert not any(k.endswith("_time_s") for k in stored["metrics"])  # timings live in log.jsonl
    assert "train_time_s" in json.loads(open(again.paths["log"]).readline())
    student = _cfg(method="kd")
    assert run_id(student, trained.paths["model"]) == run_id(student, again.paths["model"])


def test_written_files_are_mode_0644(trained):
    for name in ("model", "checkpoint", "result", "config"):
        assert os.stat(trained.paths[name]).st_mode & 0o777 == 0o644, name


def test_resuming_says_resumed_from_epoch(tmp_path, capsys):
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(epochs=2), tmp_path, data=_data(), progress=False, callbacks=[_stop_after(1)])
    capsys.readouterr()
    r = train(_cfg(epochs=2), tmp_path, data=_data(), progress=True)
    assert r.resumed_from_epoch == 1
    assert "resumed from epoch 1 of 2" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# kill -9 mid-epoch, then resume: bit-identical to an uninterrupted run
# ---------------------------------------------------------------------------------------------

_RUNNER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import torch
    from torch import nn
    from kdbounds.distill import DistillMethod, TrainConfig, register_method, train

    @register_method
    class KillMid(DistillMethod):
        name = "_test_kill_mid"
        requires_teacher = False
        defaults = {}
        calls = 0

        def loss(self, x, y, s_out, t_out, epoch):
            KillMid.calls += 1
            if os.environ.get("KILL_AT_EPOCH") == str(epoch) and KillMid.calls % 2 == 0:
                os.kill(os.getpid(), signal.SIGKILL)  # mid-epoch: the second batch of that epoch
            return nn.functional.cross_entropy(s_out, y), {}

    g = np.random.default_rng(0)
    x = g.integers(0, 255, (48, 32, 32, 3)).astype(np.uint8)
    y = np.arange(48) % 4
    cfg = TrainConfig(arch="resnet8", epochs=3, batch_size=16, lr=0.05, schedule="step", milestones=(2,),
                      device="cpu", seed=1, method="_test_kill_mid")
    torch.set_num_threads(1)
    train(cfg, sys.argv[1], data=(x[:32], y[:32], x[32:], y[32:]), progress=False)
""")


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, kill_resume_check):
    kill_resume_check(tmp_path, _RUNNER, n_epochs=3)  # killed mid-epoch 1 (0-based): the second epoch
