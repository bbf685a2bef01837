"""Every study's ``results.json`` carries its provenance: kdbounds version, git commit, data source and
its SHA-256. Oracles: the checksum published for the shared archive (its README), ``hashlib`` on the
bytes of a file written here, git's own ``rev-parse`` run here."""

from __future__ import annotations

import ast
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

import kdbounds
from kdbounds.studies import _provenance as prov
from kdbounds.studies.__main__ import available_studies

ROOT = Path(__file__).resolve().parents[2]
SHARED_SHA = "075d700ab8e106bb94f0f1a54a7019bcd14947df90f91a0134a4ef325c97ffe5"  # /work/shared/data/README.md


def test_source_sha256_of_a_file_and_a_folder(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 3_000_001)
    assert prov.source_sha256(f) == hashlib.sha256(b"x" * 3_000_001).hexdigest()
    d = tmp_path / "d"
    (d / "s").mkdir(parents=True)
    (d / "s" / "1.jpg").write_bytes(b"one")
    (d / "2.jpg").write_bytes(b"two")
    first = prov.source_sha256(d)
    (d / "2.jpg").write_bytes(b"tw0")
    os.utime(d, ns=(1, 1))  # a new key even where the folder's mtime did not move
    assert prov.source_sha256(d) != first, "a changed byte changes the folder's digest"


def test_git_commit_is_the_checkout_head_or_none(tmp_path):
    got = prov.git_commit(ROOT)
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        assert got is None
        return
    assert got["commit"] == head and isinstance(got["dirty"], bool)
    assert prov.git_commit(tmp_path) is None, "outside a checkout: None, not an error"


def test_provenance_names_the_version_and_the_data(tmp_path):
    missing = prov.provenance(tmp_path)
    assert missing["kdbounds_version"] == kdbounds.__version__
    assert missing["data"]["name"] == "cifar10" and "error" in missing["data"]
    payload = prov.with_provenance({"config": {"data_root": str(tmp_path)}, "rows": [1]})
    assert payload["rows"] == [1] and payload["provenance"]["data"] == missing["data"]
    shared = Path(os.environ.get("KDBOUNDS_DATA", "/nonexistent")) / "cifar10-jpg.tar.gz"
    if not shared.is_file():
        pytest.skip("the shared CIFAR-10 archive is not here (set KDBOUNDS_DATA)")
    data = prov.provenance(shared.parent)["data"]
    assert data["kind"] == "image_tar" and data["sha256"] == SHARED_SHA


STUDIES = available_studies()  # every study, linear_gaussian_tradeoffs included


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_writes_results_json_through_with_provenance(name):
    """Each ``atomic_write_json`` of a study's results payload is wrapped in ``with_provenance``."""
    tree = ast.parse((ROOT / "kdbounds" / "studies" / f"{name}.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "atomic_write_json"]
    results = [c for c in calls if "results.json" in ast.unparse(c.args[0]) or "'json'" in ast.unparse(c.args[0])]
    assert results, f"{name}: no results.json write found"
    for c in results:
        assert isinstance(c.args[1], ast.Call) and getattr(c.args[1].func, "id", None) == "with_provenance", \
            f"{name}: {ast.unparse(c)}"


def test_generated_data_is_named_instead_of_looked_up():
    payload = prov.with_provenance({"config": {}, "rows": []}, data={"name": "linear-Gaussian", "kind": "synthetic"})
    assert payload["provenance"]["data"] == {"name": "linear-Gaussian", "kind": "synthetic"}
    assert payload["provenance"]["kdbounds_version"] == kdbounds.__version__


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env=env).stdout.strip()


def test_a_run_is_credited_to_the_commit_it_began_with(tmp_path, monkeypatch):
    """note_start() pins ``git`` to the commit at the start; a commit made while the run went appears only as
    ``git_at_write`` (fails when provenance reads the commit at writing time only, as it did before)."""
    try:
        _git(tmp_path, "init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git not available")
    (tmp_path / "f").write_text("1")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "commit", "-qm", "one")
    first = _git(tmp_path, "rev-parse", "HEAD")
    monkeypatch.setattr(prov, "_REPO", tmp_path)
    monkeypatch.setattr(prov.git_commit, "__defaults__", (tmp_path,))
    monkeypatch.setattr(prov, "_START", {})
    assert prov.with_provenance({}, data={"name": "x"})["provenance"]["git"]["commit"] == first  # no start noted
    prov.note_start()
    (tmp_path / "f").write_text("2")
    _git(tmp_path, "commit", "-qam", "two")
    second = _git(tmp_path, "rev-parse", "HEAD")
    rec = prov.with_provenance({}, data={"name": "x"})["provenance"]
    assert rec["git"] == {"commit": first, "dirty": False}
    assert rec["git_at_write"] == {"commit": second, "dirty": False}
    prov.note_start()  # a second call keeps the first
    assert prov.with_provenance({}, data={"name": "x"})["provenance"]["git"]["commit"] == first
    monkeypatch.setattr(prov, "_START", {})
    prov.note_start()
    assert "git_at_write" not in prov.with_provenance({}, data={"name": "x"})["provenance"]


def test_the_study_command_line_notes_the_start_before_the_study_runs(monkeypatch, tmp_path):
    """_cli.main calls note_start() before study.run (fails without the call)."""
    import argparse
    import types

    from kdbounds.studies import _cli

    monkeypatch.setattr(prov, "_START", {})
    seen = {}

    def run(config, out, **kw):
        seen["noted"] = "git" in prov._START
        return None

    study = types.SimpleNamespace(run=run, summary=None)
    monkeypatch.setattr(_cli, "with_data", lambda c, **kw: c)
    monkeypatch.setattr(_cli, "execution_kwargs", lambda *a: {})
    args = argparse.Namespace(out=str(tmp_path / "out"), cache_root=None, preset="smoke", no_progress=True)
    assert _cli.main(study, "x", types.SimpleNamespace(), args, summary=lambda r: "") == 0
    assert seen == {"noted": True}
