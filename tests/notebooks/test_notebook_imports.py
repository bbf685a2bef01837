"""What the notebooks import from kdbounds: public modules, so that a reader can copy any cell into their own code.

Oracle: the syntax tree of each jupytext source (``notebooks/NN_*.py``), every ``import``/``from ... import`` at any
depth. Every notebook imports public modules only (their own result caches use ``kdbounds.io``, the public face of
the strict-JSON and hashing plumbing). Checked on a planted private import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def kdbounds_imports(source: str) -> set[str]:
    """Every kdbounds module a source imports (``from kdbounds.x import y`` counts as ``kdbounds.x``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "kdbounds"}
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "kdbounds":
            found.add(node.module)
    return found


def private_imports(source: str) -> set[str]:
    """The imported kdbounds modules with a private component (``_name``)."""
    return {m for m in kdbounds_imports(source) if any(p.startswith("_") for p in m.split("."))}


def test_the_checker_sees_a_planted_private_import():
    src = "import os\nfrom kdbounds.studies._tables import format_table\nimport kdbounds._torch as kt\nfrom kdbounds import x\n"
    assert private_imports(src) == {"kdbounds.studies._tables", "kdbounds._torch"}
    assert "kdbounds" in kdbounds_imports(src)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_notebooks_import_public_kdbounds_modules(path):
    private = private_imports(path.read_text())
    assert not private, (f"{path.name} imports private modules {sorted(private)}; use the public ones "
                         "(e.g. kdbounds.io for strict JSON and hashes, kdbounds.figures for figures)")
    for m in kdbounds_imports(path.read_text()):
        __import__(m)  # every imported module exists (a renamed module fails here, not in a notebook run)


def test_there_are_notebooks():
    assert len(SOURCES) >= 5 and any(p.stem == "05_your_own_model" for p in SOURCES)
