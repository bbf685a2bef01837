"""The top-level package is lazy: math-only modules never load torch, and every public name resolves."""

from __future__ import annotations

import os
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
