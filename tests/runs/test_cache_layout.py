"""The one cache layout and ``kdbounds-study --clean`` (issue 24 item 7): run caches are listed with their sizes
and freed; a folder that does not look like a run cache, a cache a running study holds a lock in, and the teacher
bank (unless asked) are never touched.

Oracles: caches written by the real producers (``train_cached``, ``record_grids``, ``make_untrained_teacher``, the
sweep runner's ``ResultStore`` under the flagship's ``measurement_store``, ``run_lock``); sizes summed with
``os.walk`` here; files outside the caches (and inside refused folders) checked byte for byte afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from kdbounds.runs import cache_layout as cl
from repo_files import load_file


def _du(path: Path) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(path) for f in fs)


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory):
    """A run cache as the studies leave it: a trained run with its lock, the grid ledger, an untrained teacher and
    a measurement store (each written by its real producer)."""
    from kdbounds.distill import TrainConfig
    from kdbounds.distill.controls import make_untrained_teacher
    from kdbounds.runs.cache import train_cached
    from kdbounds.runs.grid_ledger import record_grids
    from kdbounds.runs.sweep import ResultStore
    from kdbounds.studies.sharpness_vs_gap import measurement_store

    root = tmp_path_factory.mktemp("made") / "cache"
    g = np.random.default_rng(0)
    x = g.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    y = np.arange(24) % 10
    cfg = TrainConfig(arch="resnet8", epochs=1, batch_size=8, lr=0.05, device="cpu", schedule="constant")
    train_cached(cfg, root, data=(x[:16], y[:16], x[16:], y[16:]), progress=False)
    record_grids(root, {"cert_sha256": "ab" * 32}, {"sigma_prior": (0.01, 0.1)}, study="test")
    make_untrained_teacher("resnet8", 10, 1000, root / "teachers" / "untrained_resnet8.pt")
    ResultStore(measurement_store(root)).save("measure-t0", {"x": 1}, {"note": "test"})
    return root


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, symlinks=True)
    return dst


def test_a_real_cache_is_recognised_listed_and_freed(real_cache, tmp_path):
    cache = _copy(real_cache, tmp_path / "results" / "study" / "cache")
    info = cl.inspect_cache(cache)
    assert info.kind == "run cache" and info.runs == 1 and info.size == _du(cache) > 0
    dry = cl.clean([cache], dry_run=True)
    assert [c.path for c in dry.freed] == [cache] and dry.bytes_freed == _du(cache) and cache.is_dir()
    assert "would free" in dry.lines()[0] and cl.format_bytes(info.size) in dry.lines()[0]
    done = cl.clean([cache])
    assert [c.path for c in done.freed] == [cache] and not cache.exists()
    assert (tmp_path / "results" / "study").is_dir(), "only the cache folder goes"


@pytest.mark.parametrize("planted", ["notes.txt", "my_experiment", "bank", "link"])
def test_a_folder_that_is_not_a_cache_is_refused_and_untouched(real_cache, tmp_path, planted):
    """One entry a run cache does not hold (a file, an unknown folder, the bank inside ~/.cache/kdbounds, a link)
    and nothing in the folder is removed."""
    folder = _copy(real_cache, tmp_path / "mixed")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    target = folder / planted
    if planted == "link":
        target.symlink_to(outside)
    elif planted.endswith(".txt"):
        target.write_text("mine")
    else:
        target.mkdir()
        (target / "x").write_text("mine")
    before = {p: p.read_bytes() if p.is_file() and not p.is_symlink() else None for p in folder.rglob("*")}
    report = cl.clean([folder])
    assert not report.freed and [c.path for c in report.refused] == [folder]
    assert planted in report.refused[0].reason and "does not look like a kdbounds run cache" in report.refused[0].reason
    assert {p: p.read_bytes() if p.is_file() and not p.is_symlink() else None for p in folder.rglob("*")} == before
    assert outside.read_text() == "keep me"


def test_empty_missing_and_file_paths_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    report = cl.clean([tmp_path / "empty", tmp_path / "file", tmp_path / "nope"])
    assert not report.freed and len(report.refused) == 3
    reasons = " | ".join(c.reason for c in report.refused)
    assert "holds no runs" in reasons and "is not a folder" in reasons and "does not exist" in reasons
    assert (tmp_path / "empty").is_dir() and (tmp_path / "file").read_text() == "x"


def test_links_inside_a_run_are_removed_not_followed(real_cache, tmp_path):
    cache = _copy(real_cache, tmp_path / "cache")
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.bin").write_bytes(b"123")
    run = next(p for p in cache.iterdir() if cl.RUN_FOLDER.match(p.name))
    (run / "link").symlink_to(outside, target_is_directory=True)
    assert cl.clean([cache]).freed and not cache.exists()
    assert (outside / "data.bin").read_bytes() == b"123"


def test_the_bank_is_freed_only_when_asked(real_cache, tmp_path, monkeypatch):
    bank = _copy(real_cache, tmp_path / "bank")
    monkeypatch.setenv("KDBOUNDS_BANK", str(bank))
    monkeypatch.chdir(tmp_path)
    _copy(real_cache, tmp_path / "results" / "s" / "cache")
    report = cl.clean()  # the default layout: results/**/cache, never the bank
    assert [c.path for c in report.freed] == [Path("results/s/cache")] and bank.is_dir()
    report = cl.clean([bank])  # named, but without bank=True
    assert not report.freed and report.kept[0][0].kind == "teacher bank" and "--bank" in report.kept[0][1]
    assert bank.is_dir()
    report = cl.clean([], bank=True)
    assert [c.kind for c in report.freed] == ["teacher bank"] and not bank.exists()


def test_a_cache_in_use_is_kept(real_cache, tmp_path):
    from kdbounds.runs.locking import run_lock

    cache = _copy(real_cache, tmp_path / "cache")
    run = next(p for p in cache.iterdir() if cl.RUN_FOLDER.match(p.name))
    with run_lock(run, timeout=0):
        report = cl.clean([cache])
    assert not report.freed and "in use" in report.kept[0][1] and cache.is_dir() and run.is_dir()
    assert cl.clean([cache]).freed and not cache.exists(), "once the run is finished the cache can go"


def test_the_default_layout_and_the_command(real_cache, tmp_path, monkeypatch, capsys):
    from kdbounds.studies.__main__ import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KDBOUNDS_BANK", str(tmp_path / "bank"))
    a = _copy(real_cache, tmp_path / "results" / "a" / "cache")
    b = _copy(real_cache, tmp_path / "results" / "notebooks" / "b" / "cache")
    other = tmp_path / "results" / "c" / "cache"
    other.mkdir(parents=True)
    (other / "readme.md").write_text("not ours")
    assert cl.default_caches() == [Path("results/a/cache"), Path("results/c/cache"), Path("results/notebooks/b/cache")]
    assert main(["--clean", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("would free") == 3 and "refused" in out and "results/c/cache" in out
    assert cl.format_bytes(_du(a) + _du(b)) in out.splitlines()[-1] and a.is_dir() and b.is_dir()
    assert main(["--clean", "--cache-root", str(other)]) == 2, "a named folder that is not a cache: exit 2"
    assert (other / "readme.md").read_text() == "not ours"
    capsys.readouterr()
    assert main(["--clean"]) == 0
    assert not a.exists() and not b.exists() and other.is_dir()


def test_format_bytes():
    assert [cl.format_bytes(n) for n in (0, 999, 1000, 137_000_000, 2_100_000_000)] == [
        "0 B", "999 B", "1.0 kB", "137.0 MB", "2.1 GB"]


def test_the_command_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom kdbounds.studies.__main__ import main\nmain(['--clean', '--dry-run', '--results', "
            "'/nonexistent'])\nprint('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "False", r.stderr


def _write_fake_cifar10(root: Path) -> Path:
    return load_file("tests/studies/fake_cifar.py").write_fake_cifar10(root, per_class_train=2, per_class_test=2)


def test_the_data_cache_is_freed_only_with_data_and_nothing_else_there(tmp_path, monkeypatch, capsys):
    from kdbounds.data import load_cifar
    from kdbounds.studies.__main__ import main

    monkeypatch.setenv("KDBOUNDS_CACHE", str(tmp_path / "kc"))
    root = tmp_path / "cifar"
    _write_fake_cifar10(root)
    x, _ = load_cifar("cifar10", root=root, split="train")  # the loader writes its decoded arrays (oracle: their names)
    data = tmp_path / "kc" / "data"
    written = sorted(p.name for p in data.iterdir())
    assert any(n.endswith(".npz") for n in written) and all(cl.DECODED_ARRAYS.match(n) for n in written), written
    (data / "cifar-10-python.tar.gz").write_bytes(b"a downloaded archive")  # a download kept there: never touched
    (data / "cifar-10-batches-py").mkdir()
    (data / "notes-0123456789abcdef0123.npz").write_bytes(b"not the loader's")
    monkeypatch.chdir(tmp_path)
    assert main(["--clean", "--dry-run"]) == 0 and all((data / n).exists() for n in written)  # without --data
    assert "decoded data arrays" not in capsys.readouterr().out
    assert main(["--clean", "--data", "--dry-run"]) == 0 and all((data / n).exists() for n in written)
    assert "would free" in capsys.readouterr().out
    assert main(["--clean", "--data"]) == 0
    out = capsys.readouterr().out
    assert f"decoded data arrays: {sum(n.endswith('.npz') for n in written)} file(s)" in out, out
    assert sorted(p.name for p in data.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz",
                                                      "notes-0123456789abcdef0123.npz"]
    assert np.array_equal(load_cifar("cifar10", root=root, split="train")[0], x)  # decoded again on next use
