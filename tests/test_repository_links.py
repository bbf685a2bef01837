"""Every link and citation in the repository points inside it (issue 24).

Three rules over every text file of the tree (sources, docs, notebooks and their outputs, configs):

1. nothing names a document outside the repository (``../shared/docs``, ``shared/seeds``, any
   ``../shared/...`` or ``/work/shared/...`` path) — except the data location ``shared/data``, where
   development machines and CI keep real CIFAR-10 (Makefile, README's data section, the loaders);
2. every "theory.md §N" / "methods.md §N" citation names a section that exists in ``docs/theory.md`` /
   ``docs/methods.md``;
3. every relative Markdown link in a ``.md`` file resolves to a file or folder of the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {
    ".git", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", ".hypothesis", "results", "build",
    "site", ".venv", "venv", "node_modules", "api",
}
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".toml", ".cfg", ".txt", ".yml", ".yaml", ".sh", ".rst", ".json"}
TEXT_NAMES = {"Makefile", "run"}
THIS = Path(__file__).resolve()

# ``../shared/<x>`` or ``/work/shared/<x>`` with x anything but ``data``; ``shared/docs``; ``shared/seeds``.
OUTSIDE = re.compile(r"(?:\.\./|/work/)shared(?!/data\b)|\bshared/(?:docs|seeds)\b")
CITATION = re.compile(r"\b(theory|methods)\.md[`*]*\)?,?\s*§\s*(\d+(?:\.\d+)?)")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{2,3}\s+(\d+(?:\.\d+)?)\.?\s", re.MULTILINE)


def _text_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts[:-1]):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES) and path != THIS:
            files.append(path)
    return files


def _sections(doc: str) -> set[str]:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    return set(HEADING.findall(text))


def outside_references(text: str) -> list[str]:
    """The lines of ``text`` that point outside the repository (rule 1)."""
    return [line.strip() for line in text.splitlines() if OUTSIDE.search(line)]


def dangling_citations(text: str, sections: dict[str, set[str]]) -> list[str]:
    """Citations "theory.md §N" / "methods.md §N" whose section does not exist (rule 2)."""
    return [f"{doc}.md §{sec}" for doc, sec in CITATION.findall(text) if sec not in sections[doc]]


def test_the_theory_and_methods_are_in_the_repository():
    theory, methods = _sections("theory.md"), _sections("methods.md")
    assert {"1", "2", "3", "3.1", "3.7", "4", "5", "6", "7", "8"} <= theory
    assert {str(i) for i in range(1, 9)} <= methods


def test_nothing_points_outside_the_repository():
    bad = {}
    for path in _text_files():
        hits = outside_references(path.read_text(encoding="utf-8", errors="replace"))
        if hits:
            bad[str(path.relative_to(ROOT))] = hits[:3]
    assert not bad, f"references outside the repository (cite docs/theory.md or docs/methods.md instead): {bad}"


def test_every_section_citation_exists():
    sections = {"theory": _sections("theory.md"), "methods": _sections("methods.md")}
    bad = {}
    for path in _text_files():
        hits = dangling_citations(path.read_text(encoding="utf-8", errors="replace"), sections)
        if hits:
            bad[str(path.relative_to(ROOT))] = sorted(set(hits))
    assert not bad, f"citations of sections that docs/theory.md / docs/methods.md do not have: {bad}"


def test_every_relative_markdown_link_resolves():
    bad = []
    for path in _text_files():
        if path.suffix != ".md":
            continue
        for target in MD_LINK.findall(path.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            if not (path.parent / target.split("#")[0]).exists():
                bad.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not bad, f"Markdown links to files that do not exist: {bad}"


@pytest.mark.parametrize("line, flagged", [
    ("theory in `../shared/docs/theory.md`", True),
    ("see shared/seeds/004.txt", True),
    ("the archive in /work/shared/other/x.tar", True),
    ("KDBOUNDS_DATA ?= $(abspath ../shared/data)", False),
    ("KDBOUNDS_DATA=/work/shared/data python x.py", False),
    ("theory in docs/theory.md §7", False),
])
def test_outside_pattern(line, flagged):
    assert bool(outside_references(line)) is flagged


def test_citation_pattern():
    sections = {"theory": {"4", "3.3"}, "methods": {"3"}}
    text = "(theory.md §4) and theory.md §3.3, methods.md §3; but theory.md §9 and `docs/theory.md` §3.9"
    assert dangling_citations(text, sections) == ["theory.md §9", "theory.md §3.9"]
