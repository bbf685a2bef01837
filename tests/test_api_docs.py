"""``make docs``: the API reference builds from the docstrings with no warning (warnings are errors), and
documents the public names (issue 24). pdoc comes with the ``docs`` extra, which ``make test`` installs."""

from __future__ import annotations

from pathlib import Path

import pytest
from repo_files import load_file

pytest.importorskip("pdoc", reason="pdoc missing: pip install -e '.[docs]' (make test installs it)")

ROOT = Path(__file__).resolve().parents[1]


def _build_module():
    return load_file("docs/build_api.py", "kdbounds_docs_build_api")


def test_the_api_reference_builds_without_warnings(tmp_path):
    pages = _build_module().build(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in pages}
    assert {"index.html", "kdbounds.html", "kdbounds/checks.html", "kdbounds/certificates.html",
            "linear_gaussian.html"} <= names
    checks = (tmp_path / "kdbounds" / "checks.html").read_text(encoding="utf-8")
    assert "evaluate_pair" in checks and "assign_verdicts" in checks
    assert "_private" not in names


def test_a_warning_fails_the_build(tmp_path, monkeypatch):
    import warnings

    import pdoc

    build = _build_module()
    monkeypatch.setattr(pdoc, "pdoc", lambda *a, **k: warnings.warn("Error parsing docstring of x"))
    with pytest.raises(RuntimeError, match="warnings are errors"):
        build.build(tmp_path)
