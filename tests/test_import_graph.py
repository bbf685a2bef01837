"""The module graph of kdbounds and linear_gaussian (every import, also those inside functions) has no
cycle, the math layer imports no torch at module level, and linear_gaussian never imports kdbounds
at module level."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kdbounds", "linear_gaussian")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = mod.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_edges(top_level_only: bool = False) -> dict[str, set[str]]:
    """module -> the project modules it imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        for node in nodes:
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, path.name == "__init__.py", node)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                while t and t not in mods:  # a name inside a module -> that module
                    t = t.rpartition(".")[0]
                if t and t != mod and not mod.startswith(t + "."):  # a package's own __init__ is not a cycle
                    edges[mod].add(t)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(u: str) -> list[str] | None:
        state[u] = 1
        stack.append(u)
        for v in sorted(edges.get(u, ())):
            if state.get(v) == 1:
                return stack[stack.index(v):] + [v]
            if v not in state and (c := visit(v)):
                return c
        stack.pop()
        state[u] = 2
        return None

    for u in sorted(edges):
        if u not in state and (c := visit(u)):
            return c
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_graph_sees_relative_and_lazy_imports():
    e = import_edges()
    assert "kdbounds.runs.cache" in e["kdbounds.studies.sharpness_vs_gap"]  # from .cache import ...
    assert "kdbounds.distill.trainer" in e["kdbounds.studies.functional_transfer"]


def test_no_import_cycle():
    cycle = find_cycle(import_edges())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layers():
    top = import_edges(top_level_only=True)
    for mod, deps in top.items():
        if mod.startswith("linear_gaussian"):
            assert not any(d.startswith("kdbounds") for d in deps), (mod, deps)
        if mod.split(".")[:2] in (["kdbounds", "bounds"], ["kdbounds", "pid"], ["kdbounds", "stats"]):
            bad = [d for d in deps if d.startswith("kdbounds.") and d.split(".")[1] not in
                   ("bounds", "pid", "stats", "_io", "_checks", "_records")]
            assert not bad, f"math-layer module {mod} imports {bad}"


def test_no_test_folder_shadows_a_package():
    # under plain `pytest` (rootdir on sys.path), tests/<name>/ without __init__.py is a namespace package
    # that hides an installed package of the same name (tests/linear_gaussian/ did: hence tests/lg/)
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir()}
    assert not folders & set(PACKAGES)
