"""The repository's scripts (experiments/, benchmarks/, docs/, notebooks/, tests/) as modules, for tests.

Scripts are not in a package, so tests load them from their files: ``load_file("experiments/certify_students.py")``.
One loader for the whole suite (``tests/`` is on ``sys.path`` through its ``conftest.py``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_file(path: str | Path, name: str | None = None) -> ModuleType:
    """Import the Python file ``path`` (relative to the repository root, or absolute) and return the module.

    The module is registered in ``sys.modules`` under ``name`` (default: ``_repo_<path with / as _>``) before it runs,
    so dataclasses and pickling defined in it can look their module up by name. Each call runs the file again.

    Args:
        path: the file, e.g. ``"experiments/sharpness_vs_gap.py"``.
        name: the module name to register (a fresh one per distinct path by default).

    Returns:
        The executed module.
    """
    file = Path(path)
    file = file if file.is_absolute() else ROOT / file
    if not file.is_file():
        raise FileNotFoundError(f"load_file: no file {file}")
    name = name or "_repo_" + "_".join(file.relative_to(ROOT).with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod
