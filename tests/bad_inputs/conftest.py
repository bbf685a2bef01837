"""Fixture of the bad-input table: paths that are files where folders are expected."""

from __future__ import annotations

import pytest


@pytest.fixture
def paths(tmp_path):
    """Placeholders substituted in argv: @FILE (a regular file), @EMPTY (an empty file), @DIR (a
    folder), @UNDERFILE (a path below a file)."""
    f = tmp_path / "a_file.txt"
    f.write_text("not a folder")
    e = tmp_path / "empty.pt"
    e.write_bytes(b"")
    d = tmp_path / "a_dir"
    d.mkdir()
    return {"@FILE": str(f), "@EMPTY": str(e), "@DIR": str(d), "@UNDERFILE": str(f / "sub")}
