"""``kdbounds.io``, the public face of the strict-JSON and hashing plumbing: the names are the plumbing's own
functions (one implementation), the module docstring's example runs as written, and the strictness holds."""

from __future__ import annotations

import json

import pytest

import kdbounds._io as private
import kdbounds.io as kio


def test_public_names_are_the_plumbing_functions():
    assert kio.__all__ and all(getattr(kio, n) is getattr(private, n) for n in kio.__all__)


def test_docstring_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    key = kio.json_sha256({"lr": 0.1, "epochs": 3})[:16]
    assert key == kio.json_sha256({"epochs": 3, "lr": 0.1})[:16]  # key order does not matter
    kio.atomic_write_json(f"results/{key}.json", {"accuracy": 0.91, "loss": float("nan")})
    assert kio.read_json(f"results/{key}.json") == {"accuracy": 0.91, "loss": None}
    assert "NaN" not in (tmp_path / "results" / f"{key}.json").read_text()


def test_strict_reader_names_the_damaged_file(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text('{"x": NaN}')
    with pytest.raises(kio.DamagedFileError, match="r.json"):
        kio.read_json(bad)
    assert json.loads('{"x": NaN}')["x"] != 0  # the standard library would have accepted it


def test_hashes_match_hashlib(tmp_path):
    import hashlib

    f = tmp_path / "f.bin"
    f.write_bytes(b"abc" * 1000)
    assert kio.file_sha256(f) == kio.bytes_sha256(b"abc" * 1000) == hashlib.sha256(b"abc" * 1000).hexdigest()
