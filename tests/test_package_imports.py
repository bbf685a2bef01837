"""The top-level package is lazy: math-only modules never load torch, and every public name resolves."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(statement: str) -> set[str]:
    """Top-level names in ``sys.modules`` after running ``statement`` in a fresh interpreter."""
    code = f"{statement}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=ROOT)
    return set(out.stdout.split())


@pytest.mark.parametrize("statement", [
    "import kdbounds",
    "import kdbounds.bounds",
    "import kdbounds.pid",
    "import kdbounds.stats",
    "import kdbounds.certificates",
    "import kdbounds; kdbounds.certificates.kl_inverse_upper",
    "import kdbounds; kdbounds.bounds.subgaussian_bound",
    "from kdbounds import kl_inverse_upper, pac_bayes_kl_bound, diag_gaussian_kl",
    "from kdbounds import subgaussian_bound, broja_pid",
    "import kdbounds.studies",
])
def test_math_layer_does_not_load_torch(statement):
    loaded = _loaded_after(statement)
    assert "kdbounds" in loaded  # the statement did import the package
    assert "torch" not in loaded, f"{statement!r} loaded torch"
    assert "matplotlib" not in loaded, f"{statement!r} loaded matplotlib"


def test_torch_module_does_load_torch():
    # the check above can fail: a torch-backed name does pull torch in
    assert "torch" in _loaded_after("from kdbounds import hutchinson_trace")


def test_every_public_name_resolves():
    import kdbounds

    for name in kdbounds.__all__:
        assert getattr(kdbounds, name) is not None, name
    assert set(kdbounds.__all__) <= set(dir(kdbounds))


def test_unknown_name_is_an_attribute_error():
    import kdbounds

    with pytest.raises(AttributeError, match="no_such_name"):
        kdbounds.no_such_name  # noqa: B018


def test_reexport_is_the_module_object():
    import kdbounds
    from kdbounds import bounds

    assert kdbounds.subgaussian_bound is bounds.subgaussian_bound
    assert kdbounds.bounds is bounds


def _public_names(topic: str) -> set[str]:
    """The public names of a topic package: its ``__all__`` and, for certificates, its lazy names."""
    module = importlib.import_module(f"kdbounds.{topic}")
    return set(getattr(module, "__all__", ())) | set(getattr(module, "_LAZY", ()))


def test_every_topic_name_is_at_the_top_level():
    import kdbounds

    missing, different = [], []
    for topic in kdbounds._TOPICS:
        module = importlib.import_module(f"kdbounds.{topic}")
        for name in sorted(_public_names(topic)):
            if (topic, name) in kdbounds._NOT_AT_TOP:
                continue
            if name not in kdbounds._EXPORTS:
                missing.append(f"{topic}.{name}")
            elif getattr(kdbounds, name) is not getattr(module, name):
                different.append(f"{topic}.{name}")
    assert not missing, f"public names not importable from the top level (add them to kdbounds._EXPORTS): {missing}"
    assert not different, f"top-level names that are not the topic's object: {different}"


def test_every_package_is_an_attribute():
    import kdbounds

    packages = {p.parent.name for p in (ROOT / "kdbounds").glob("*/__init__.py") if not p.parent.name.startswith("_")}
    assert packages <= set(kdbounds._SUBMODULES), packages - set(kdbounds._SUBMODULES)
    assert set(kdbounds._TOPICS) <= set(kdbounds._SUBMODULES)


def test_the_certify_function_is_at_the_top_level():
    import kdbounds
    from kdbounds.pacbayes.certify import certify

    assert kdbounds.certify is certify and callable(kdbounds.certify)


# ---- every name the README and the guides document imports ----------------------------------------
DOCUMENTS = ("README.md", "docs/your_model.md", "docs/architecture.md", "docs/sweeps.md", "docs/theory.md",
             "docs/methods.md")
FROM_IMPORT = re.compile(r"from\s+(kdbounds(?:\.\w+)*)\s+import\s+(\([^)]*\)|[\w ,]+)")
DOTTED = re.compile(r"`(kdbounds(?:\.\w+)+)(?:\(\))?`")


def documented_names(text: str) -> set[str]:
    """Dotted names a document tells its reader to import: ``from kdbounds.x import a, b`` and
    `` `kdbounds.x.y` `` in inline code."""
    names = set(DOTTED.findall(text))
    for module, imported in FROM_IMPORT.findall(text):
        for item in imported.strip("()").split(","):
            item = item.split(" as ")[0].strip()
            if item:
                names.add(f"{module}.{item}")
    return names


def _resolve(dotted: str) -> object:
    """Import the longest importable module prefix of ``dotted`` and get the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_documented_name_imports():
    names = set()
    for doc in DOCUMENTS:
        path = ROOT / doc
        if path.exists():
            names |= documented_names(path.read_text(encoding="utf-8"))
    assert len(names) > 40  # the walk found the documented names
    broken = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (ImportError, AttributeError) as exc:
            broken.append(f"{name}: {exc}")
    assert not broken, f"names the documentation gives that do not import: {broken}"


def test_documented_names_parser():
    text = ("from kdbounds import a, b  # x\n`kdbounds.checks.CheckRecord` and `kdbounds.certify()`\n"
            "from kdbounds.curvature import (\n    HessianOperator,\n    top_eigenvalues,\n)\n")
    assert documented_names(text) == {"kdbounds.a", "kdbounds.b", "kdbounds.checks.CheckRecord", "kdbounds.certify",
                                      "kdbounds.curvature.HessianOperator", "kdbounds.curvature.top_eigenvalues"}
