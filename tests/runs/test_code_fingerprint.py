"""The run cache's code fingerprint hashes what the training code does, not how its files are written.

Oracles: edits whose meaning is known by construction — a comment, a docstring, blank lines or a whole file
rewritten by ``ast.unparse`` (no comments, another layout, same syntax tree) leave the code's behaviour as it
was; one changed token (a default value, an operator, a name, a string that is not a docstring) changes it;
so does a file that moves (its relative path is hashed). Each is applied to a copy of the training packages
through ``code_fingerprint(root=...)``, never to the installed package.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from kdbounds.runs.cache import code_fingerprint, code_meaning

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("data", "models", "distill")


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    pkg = tmp_path / "kdbounds"
    for sub in PACKAGES:
        shutil.copytree(ROOT / "kdbounds" / sub, pkg / sub, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_fingerprint(root=pkg) == code_fingerprint()  # the copy is faithful
    return pkg


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) >= 1, old
    path.write_text(text.replace(old, new, 1))


def test_docstring_comment_and_layout_edits_keep_the_fingerprint(copy):
    base = code_fingerprint(root=copy)
    kd = copy / "distill" / "kd.py"
    text = kd.read_text()
    tree = ast.parse(text)
    module_doc = ast.get_docstring(tree, clean=False)
    func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and ast.get_docstring(n))
    _edit(kd, module_doc, "A rewritten module docstring.\n\nWith a second paragraph.")
    _edit(kd, ast.get_docstring(func, clean=False), "Rewritten.")
    _edit(kd, "\nfrom typing", "\n# a new comment\n\n\nfrom typing")
    (copy / "models" / "mlp.py").write_text((copy / "models" / "mlp.py").read_text() + "\n# trailing comment\n")
    assert code_fingerprint(root=copy) == base


def test_every_training_file_rewritten_without_comments_keeps_the_fingerprint(copy):
    base = code_fingerprint(root=copy)
    for f in sorted(copy.rglob("*.py")):
        f.write_text(ast.unparse(ast.parse(f.read_text())) + "\n")  # no comments, other quotes and line breaks
    assert code_fingerprint(root=copy) == base


@pytest.mark.parametrize("path,old,new", [
    ("distill/kd.py", '"T": 4.0', '"T": 4.5'),              # a default value
    ("distill/kd.py", 'gamma"] * ce', 'gamma"] / ce'),          # an operator
    ("models/resnet.py", "def forward", "def forward_"),     # a name
    ("distill/methods.py", 'name = "ce"', 'name = "cee"'),   # a string that is not a docstring
])
def test_a_one_token_code_edit_changes_the_fingerprint(copy, path, old, new):
    base = code_fingerprint(root=copy)
    _edit(copy / path, old, new)
    assert code_fingerprint(root=copy) != base


def test_a_moved_file_changes_the_fingerprint(copy):
    base = code_fingerprint(root=copy)
    (copy / "distill" / "kd.py").rename(copy / "distill" / "kd2.py")
    assert code_fingerprint(root=copy) != base


def test_code_meaning_on_small_sources():
    same = ['def f(x):\n    "doc"\n    return x + 1\n',
            "def f(x):  # comment\n    return (x\n            + 1)\n",
            "def f(x):\n    '''other doc'''\n    'an attribute docstring'\n    return x + 1\n"]
    assert len({code_meaning(s) for s in same}) == 1
    assert code_meaning('def f():\n    "only a docstring"\n') == code_meaning("def f():\n    pass\n")
    assert code_meaning("x = 1\n") != code_meaning("x = 2\n")
    assert code_meaning('x = "a"\n') != code_meaning('x = "b"\n')
    assert code_meaning("if a:\n    b()\nelse:\n    c()\n") != code_meaning("if a:\n    b()\n")
    with pytest.raises(SyntaxError):
        code_meaning("def (:\n", "broken.py")
