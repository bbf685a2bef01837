"""Run cache: ids from configs (+ teacher bytes, + data), reuse of finished runs, resume of partial ones."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from kdbounds.distill import TrainConfig
from kdbounds.runs.cache import load_cached, run_dir, run_id, train_cached




def _data(seed=0, n=32):
    g = np.random.default_rng(seed)
    x = g.integers(0, 256, (n + 16, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n + 16) % 10
    return x[:n], y[:n], x[n:], y[n:]


def _cfg(**kw):
    base = dict(arch="resnet8", epochs=2, batch_size=16, lr=0.05, device="cpu", schedule="constant")
    base.update(kw)
    return TrainConfig(**base)


def test_run_id_depends_on_what_matters(tmp_path):
    a = run_id(_cfg())
    assert a == run_id(_cfg()) and len(a) == 12
    assert a != run_id(_cfg(lr=0.1)) and a != run_id(_cfg(seed=1))
    # KD defaults completed: {} and explicit defaults are the same run; a changed T is not
    t = tmp_path / "t.pt"
    t.write_bytes(b"teacher-1")
    k0 = run_id(_cfg(method="kd"), teacher_ckpt=t)
    assert k0 == run_id(_cfg(method="kd", method_kwargs={"T": 4, "alpha": 0.9}), teacher_ckpt=t)
    assert k0 != run_id(_cfg(method="kd", method_kwargs={"T": 2}), teacher_ckpt=t)
    # teacher identity = bytes, not path
    t2 = tmp_path / "copy.pt"
    shutil.copy(t, t2)
    assert k0 == run_id(_cfg(method="kd"), teacher_ckpt=t2)
    t2.write_bytes(b"teacher-2")
    assert k0 != run_id(_cfg(method="kd"), teacher_ckpt=t2)
    # preloaded data is fingerprinted
    assert run_id(_cfg(), data=_data(0)) != run_id(_cfg(), data=_data(1))
    assert run_id(_cfg(), data=_data(0)) == run_id(_cfg(), data=_data(0))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_id(_cfg(method="kd"), teacher_ckpt=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        run_id(_cfg(method="kd", method_kwargs={"temp": 2}), teacher_ckpt=t)


def test_train_cached_reuses_finished_and_resumes_partial(tmp_path):
    data = _data()
    cfg = _cfg()
    r1 = train_cached(cfg, tmp_path, data=data, progress=False)
    d = run_dir(cfg, tmp_path, data=data)
    assert r1.paths["out_dir"] == str(d)
    meta = json.loads((d / "run.json").read_text())
    assert meta["run_id"] == d.name.rsplit("-", 1)[1]
    mtime = (d / "model.pt").stat().st_mtime_ns
    r2 = train_cached(cfg, tmp_path, data=data, progress=False)
    assert r2.final == r1.final and (d / "model.pt").stat().st_mtime_ns == mtime  # not retrained
    assert load_cached(d) is not None

    # partial run: interrupted after epoch 1 -> resumed, same final weights as r1
    other = tmp_path / "other"

    def stop(info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cached(cfg, other, data=data, progress=False, callbacks=[stop])
    assert load_cached(run_dir(cfg, other, data=data)) is None
    r3 = train_cached(cfg, other, data=data, progress=False)
    assert r3.resumed_from_epoch == 1
    a = torch.load(r1.paths["model"], weights_only=True)["state_dict"]
    b = torch.load(r3.paths["model"], weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_teacher_run_through_cache(tmp_path):
    data = _data()
    t = train_cached(_cfg(epochs=1), tmp_path, data=data, progress=False)
    s = train_cached(_cfg(epochs=1, method="kd"), tmp_path, teacher_ckpt=t.paths["model"], data=data,
                     progress=False)
    assert s.config["teacher_ckpt"] == t.paths["model"] and "train_kd" in s.final
    with pytest.raises(ValueError, match="differs from cfg.teacher_ckpt"):
        train_cached(_cfg(epochs=1, method="kd", teacher_ckpt=str(tmp_path / "x.pt")), tmp_path,
                     teacher_ckpt=t.paths["model"], data=data)


def test_run_key_includes_the_training_code_fingerprint(monkeypatch):
    from kdbounds.runs import cache as runs

    cfg = TrainConfig(arch="resnet8", epochs=1)
    k1 = runs.run_key(cfg)
    assert k1["code"] == runs.code_fingerprint() and len(k1["code"]) == 64
    monkeypatch.setattr(runs, "code_fingerprint", lambda: "0" * 64)
    assert runs.run_id(cfg) != runs.run_id(cfg, _key=k1)


def test_force_retrains_under_the_run_lock(tmp_path, monkeypatch):
    """force=True trains again (counted by a wrapper around the trainer) and waits for a lock held
    elsewhere instead of deleting files under another process's feet."""
    import threading
    import time

    from kdbounds.runs import cache as cache_mod
    from kdbounds.runs.locking import run_lock

    data, cfg = _data(), _cfg(epochs=1)
    first = train_cached(cfg, tmp_path, data=data, progress=False)
    calls = []
    real = cache_mod.train

    def counting(c, out, **kw):
        calls.append((time.monotonic(), kw["resume"]))
        return real(c, out, **kw)

    monkeypatch.setattr(cache_mod, "train", counting)
    assert train_cached(cfg, tmp_path, data=data, progress=False).final == first.final and calls == []
    folder = run_dir(cfg, tmp_path, data=data)
    released = []
    holding = threading.Event()

    def hold():
        with run_lock(folder):
            holding.set()
            time.sleep(1.0)
            released.append(time.monotonic())

    t = threading.Thread(target=hold)
    t.start()
    holding.wait(10)
    again = train_cached(cfg, tmp_path, data=data, progress=False, force=True)
    t.join()
    assert len(calls) == 1 and calls[0][1] is False  # trained once more, from scratch
    assert calls[0][0] >= released[0]  # only after the other holder let go
    assert again.final["train_loss"] == first.final["train_loss"]  # same config, same seed: same model
