"""What the notebooks import from kdbounds: public modules, so that a reader can copy any cell into their own code.

Oracle: the syntax tree of each jupytext source (``notebooks/NN_*.py``), every ``import``/``from ... import`` at any
depth. Notebook 05 (the guide to a user's own model) imports public modules only; notebooks 02–04 also use the
private strict-JSON and hashing helpers of ``kdbounds._io`` for their own result caches (listed here, so a new
private import fails the test). Checked on a planted private import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
#: private kdbounds modules a notebook may import, and why (the notebooks' own caches of computed results)
ALLOWED_PRIVATE = {"kdbounds._io": "strict JSON and SHA-256 of the notebooks' own result caches"}
#: notebooks that must import public modules only
PUBLIC_ONLY = {"05_your_own_model"}


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
    if path.stem in PUBLIC_ONLY:
        assert not private, f"{path.name} is the public-API guide but imports {sorted(private)}"
    assert private <= set(ALLOWED_PRIVATE), (f"{path.name} imports private modules {sorted(private - set(ALLOWED_PRIVATE))}; "
                                              "use the public ones (e.g. kdbounds.figures)")
    for m in kdbounds_imports(path.read_text()):
        __import__(m)  # every imported module exists (a renamed module fails here, not in a notebook run)


def test_there_are_notebooks():
    assert len(SOURCES) >= 5 and {p.stem for p in SOURCES} >= PUBLIC_ONLY
