"""The run cache is a folder (issue 26 item 1): moving or copying it retrains nothing, a copy never reads
the original's files, a damaged reused model is detected, named and rebuilt, a damaged record is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kdbounds.distill import TrainConfig
from kdbounds.runs import cache as cache_mod
from kdbounds._io import file_sha256
from kdbounds.runs.cache import RUN_META, load_cached, run_damage, run_dir, run_id, run_key, train_cached


def _data(n=32):
    g = np.random.default_rng(0)
    x = g.integers(0, 256, (n + 16, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n + 16) % 10
    return x[:n], y[:n], x[n:], y[n:]


def _cfg(**kw):
    base = dict(arch="resnet8", epochs=1, batch_size=16, lr=0.05, device="cpu", schedule="constant")
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture()
def trained(tmp_path):
    """A cache ``A/cache`` with a teacher and its KD student; the train calls are counted afterwards."""
    data, root = _data(), tmp_path / "A" / "cache"
    t = train_cached(_cfg(), root, data=data, progress=False)
    s = train_cached(_cfg(method="kd"), root, teacher_ckpt=t.paths["model"], data=data, progress=False)
    return tmp_path, data, t, s


def _count_trainings(monkeypatch):
    calls = []
    real = cache_mod.train

    def counting(cfg, out, **kw):
        calls.append(out)
        return real(cfg, out, **kw)

    monkeypatch.setattr(cache_mod, "train", counting)
    return calls


def _again(root, data):
    t = train_cached(_cfg(), root, data=data, progress=False)
    s = train_cached(_cfg(method="kd"), root, teacher_ckpt=t.paths["model"], data=data, progress=False)
    return t, s


def test_moved_cache_retrains_nothing_and_names_the_new_place(trained, monkeypatch):
    tmp, data, t0, s0 = trained
    shutil.move(str(tmp / "A"), str(tmp / "B"))
    calls = _count_trainings(monkeypatch)
    t, s = _again(tmp / "B" / "cache", data)
    assert calls == []
    assert s.final == s0.final and t.final == t0.final
    for r in (t, s):
        assert all(str(tmp / "B") in v for v in r.paths.values()), r.paths
        assert Path(r.paths["out_dir"]).parent == tmp / "B" / "cache" and Path(r.paths["model"]).is_file()


def test_copied_cache_reads_its_own_files_and_rebuilds_a_truncated_teacher(trained, monkeypatch, capsys):
    tmp, data, t0, s0 = trained
    shutil.copytree(tmp / "A", tmp / "C")
    model = run_dir(_cfg(), tmp / "C" / "cache", data=data) / "model.pt"
    good = model.read_bytes()
    model.write_bytes(good[: len(good) // 2])  # the copy's teacher is truncated; the original is intact
    assert list(run_damage(model.parent)) == ["model.pt"] and load_cached(model.parent) is None
    calls = _count_trainings(monkeypatch)
    t, s = _again(tmp / "C" / "cache", data)
    err = capsys.readouterr().err
    assert str(model) in err and "rebuilding it from the run's checkpoint" in err
    assert model.read_bytes() == good  # rebuilt bit-identically from the checkpoint, not from the original
    assert calls == [model.parent]  # only the teacher's run was opened (to rebuild its file); the student reused
    assert t.paths["model"] == str(model) and s.final == s0.final


def test_damaged_model_without_checkpoint_is_retrained(trained, monkeypatch, capsys):
    tmp, data, t0, _ = trained
    folder = run_dir(_cfg(), tmp / "A" / "cache", data=data)
    (folder / "checkpoint.pt").unlink()
    (folder / "model.pt").write_bytes(b"junk")
    t = train_cached(_cfg(), tmp / "A" / "cache", data=data, progress=False)
    assert "retraining the run" in capsys.readouterr().err
    assert t.final["test_acc"] == t0.final["test_acc"] and run_damage(folder) == {}


def test_partial_student_resumes_after_the_cache_moved(tmp_path):
    data, a = _data(), tmp_path / "A"
    t = train_cached(_cfg(), a, data=data, progress=False)

    def stop(info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_cached(_cfg(method="kd", epochs=2), a, teacher_ckpt=t.paths["model"], data=data, progress=False,
                     callbacks=[stop])
    shutil.move(str(a), str(tmp_path / "B"))
    t = train_cached(_cfg(), tmp_path / "B", data=data, progress=False)
    s = train_cached(_cfg(method="kd", epochs=2), tmp_path / "B", teacher_ckpt=t.paths["model"], data=data,
                     progress=False)
    assert s.resumed_from_epoch == 1 and s.epochs_completed == 2


def test_failed_start_leaves_no_junk_folder(tmp_path):
    bad = tmp_path / "teacher.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="teacher.pt"):
        train_cached(_cfg(method="kd"), tmp_path / "cache", teacher_ckpt=bad, data=_data(), progress=False)
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")] == []


@pytest.mark.parametrize("name", ["result.json", RUN_META])
def test_non_utf8_record_is_named(trained, name):
    tmp, data, _, _ = trained
    folder = run_dir(_cfg(), tmp / "A" / "cache", data=data)
    (folder / name).write_bytes(b'{"config": "\xff\xfe"}')
    with pytest.raises(ValueError, match=name.replace(".", r"\.") + ".*not UTF-8.*delete it"):
        load_cached(folder)
    assert json.loads((folder / ("result.json" if name == RUN_META else RUN_META)).read_text())


def test_damaged_checkpoint_means_retraining(trained, capsys):
    tmp, data, t0, _ = trained
    folder = run_dir(_cfg(), tmp / "A" / "cache", data=data)
    ck = folder / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:100])
    assert list(run_damage(folder)) == ["checkpoint.pt"] and load_cached(folder) is None
    t = train_cached(_cfg(), tmp / "A" / "cache", data=data, progress=False)
    err = capsys.readouterr().err
    assert str(ck) in err and "retraining the run" in err
    assert t.final["test_acc"] == t0.final["test_acc"] and run_damage(folder) == {}


def _pbb(prior):
    return _cfg(method="pbb", method_kwargs={"prior": str(prior), "prior_sha256": file_sha256(prior), "n_bound": 16})


def test_pinned_prior_enters_the_id_by_its_bytes(trained, monkeypatch):
    tmp, data, t0, _ = trained
    prior = Path(t0.paths["model"])
    copy = tmp / "elsewhere.pt"
    shutil.copy(prior, copy)
    assert run_id(_pbb(prior), data=data) == run_id(_pbb(copy), data=data)
    # a run cached under the earlier, path-based id is still found (nothing retrained)
    first = train_cached(_pbb(prior), tmp / "A" / "cache", data=data, progress=False)
    legacy = run_id(_pbb(prior), _key=run_key(_pbb(prior), data=data, _prior_path=True))
    new = Path(first.paths["out_dir"])
    new.rename(new.with_name(f"pbb-resnet8-{legacy}"))
    calls = _count_trainings(monkeypatch)
    again = train_cached(_pbb(prior), tmp / "A" / "cache", data=data, progress=False)
    assert calls == [] and again.final == first.final and again.paths["out_dir"].endswith(legacy)
