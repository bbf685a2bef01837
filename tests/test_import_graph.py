"""The module graph of kdbounds and linear_gaussian (every import, also those inside functions) has no
cycle, and every import goes down the layer table of docs/architecture.md:

    plumbing -> math -> {measurement || training} -> runs -> studies -> scripts
    plumbing -> math -> figures -> studies

(a module may import its own layer and the layers below it; measurement and training never import
each other; no study imports another; every kdbounds module has a layer). linear_gaussian never
imports kdbounds at module level, and inside functions only the math layer. The checker is tested on
a planted upward import, a planted sideways import and a planted study-to-study import."""

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


#: the layer table of docs/architecture.md: first component(s) of a module's name -> its layer
LAYERS: dict[str, str] = {
    **{f"kdbounds.{m}": "plumbing" for m in ("_io", "io", "_checks", "_cli_types", "_records", "_torch", "_progress",
                                             "_params", "_data", "_interrupts")},
    **{f"kdbounds.{m}": "math" for m in ("bounds", "pid", "stats", "certificates")},
    "linear_gaussian": "math",
    **{f"kdbounds.{m}": "measurement" for m in ("curvature", "divergence", "fidelity", "checks", "pacbayes")},
    **{f"kdbounds.{m}": "training" for m in ("data", "models", "distill")},
    **{f"kdbounds.{m}": "runs" for m in ("runs", "train")},
    "kdbounds.figures": "figures",
    "kdbounds.studies": "studies",
}
#: layer -> the layers it may import (its own included); measurement and training are side by side; the figures
#: (matplotlib, no torch) draw plain records on top of the math layer (its intervals), imported by the studies
ALLOWED: dict[str, set[str]] = {
    "plumbing": {"plumbing"},
    "figures": {"plumbing", "math", "figures"},
    "math": {"plumbing", "math"},
    "measurement": {"plumbing", "math", "measurement"},
    "training": {"plumbing", "math", "training"},
    "runs": {"plumbing", "math", "measurement", "training", "runs"},
    "studies": {"plumbing", "math", "measurement", "training", "runs", "figures", "studies"},
}
#: the modules of kdbounds.studies that are not studies (the command line, the report tables, provenance)
STUDY_PLUMBING = {"kdbounds.studies", "kdbounds.studies._cli", "kdbounds.studies._tables", "kdbounds.studies._config",
                  "kdbounds.studies._provenance", "kdbounds.studies._results",
                  "kdbounds.studies.__main__"}


def layer_of(mod: str) -> str | None:
    """The layer of a module (the longest matching prefix in :data:`LAYERS`); None for the ``kdbounds``
    package itself (its ``__init__`` re-exports lazily, by name) or a module of no layer."""
    parts = mod.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in LAYERS:
            return LAYERS[".".join(parts[:i])]
    return None


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    """Every import that breaks the layer table, as readable lines (empty: the graph is clean)."""
    bad: list[str] = []
    for mod, deps in sorted(edges.items()):
        if mod == "kdbounds":
            continue  # the package's __init__: lazy re-exports by name (tests/test_package_imports.py)
        src = layer_of(mod)
        if src is None:
            bad.append(f"{mod}: in no layer (add it to LAYERS and docs/architecture.md)")
            continue
        for d in sorted(deps):
            if d == "kdbounds":
                continue  # importing a submodule imports the (lazy) package first anyway
            dst = layer_of(d)
            if dst is None:
                bad.append(f"{mod} ({src}) imports {d}, which is in no layer")
            elif dst not in ALLOWED[src]:
                bad.append(f"{mod} ({src}) imports {d} ({dst}): {dst} is not below {src}")
            elif (src == dst == "studies" and mod not in STUDY_PLUMBING and d not in STUDY_PLUMBING):
                bad.append(f"{mod} imports {d}: a study imports another study")
    return bad


def test_layer_checker_fails_on_planted_imports():
    clean = {"kdbounds.bounds": {"kdbounds._checks"}, "kdbounds.studies.a": {"kdbounds.runs.cache"}}
    assert layer_violations(clean) == []
    planted = {
        "kdbounds.certificates.bounds": {"kdbounds.runs.cache"},  # upward: math -> runs
        "kdbounds.distill.pbb": {"kdbounds.curvature.hessian"},  # sideways: training -> measurement
        "kdbounds.studies.a": {"kdbounds.studies.b"},  # a study imports a study
        "kdbounds.newpkg": set(),  # a module of no layer
    }
    got = layer_violations(planted)
    assert len(got) == 4, got
    assert any("math" in g and "runs" in g for g in got)
    assert any("a study imports another study" in g for g in got)


def test_layers():
    """The whole graph, imports inside functions included: nothing goes up or sideways."""
    bad = layer_violations(import_edges())
    assert not bad, "imports against docs/architecture.md's layers:\n" + "\n".join(bad)


def test_linear_gaussian_imports_no_kdbounds_at_module_level():
    for mod, deps in import_edges(top_level_only=True).items():
        if mod.startswith("linear_gaussian"):
            assert not any(d.startswith("kdbounds") for d in deps), (mod, deps)


def test_no_test_folder_shadows_a_package():
    # under plain `pytest` (rootdir on sys.path), tests/<name>/ without __init__.py is a namespace package
    # that hides an installed package of the same name (tests/linear_gaussian/ did: hence tests/lg/)
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir()}
    assert not folders & set(PACKAGES)
