"""``kdbounds-study <name> [options]`` (also ``python -m kdbounds.studies <name> ...``): run a study by name.

A study is any public module of :mod:`kdbounds.studies` (found by listing the package; only the chosen
one is imported); the private modules (``_cli``, ``_tables``, ``__main__``, …) are not studies. In a source checkout
the options are exactly those of
``experiments/<name>.py`` (its ``main`` is called); in an installed package without ``experiments/``,
a generic command line is built from the study's ``PRESETS``: the common options plus one
``--<field>`` per plain (int/float/str) field of its ``Config``.

    kdbounds-study --list
    kdbounds-study functional_transfer --preset smoke --executor ray --workers 2
    kdbounds-study --clean --dry-run          # what the run caches under results/ hold; without --dry-run: free them
    kdbounds-study --clean --data             # also the decoded data arrays in ~/.cache/kdbounds/data

Presets share one vocabulary (``smoke``, ``cpu`` (the default), ``scale``, ``gpu``; see
:mod:`kdbounds.studies._cli`); the old names ``default`` and ``paper`` still work and say their new name.
``--clean`` is :func:`kdbounds.runs.cache_layout.main` (``kdbounds-study --clean --help``).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["available_studies", "main"]

_EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def available_studies() -> list[str]:
    """Names of the study modules present in this installation (without importing them).

    Returns:
        The public modules of :mod:`kdbounds.studies`, sorted.
    """
    from . import __path__ as pkg_path

    return sorted(m.name for m in pkgutil.iter_modules(pkg_path)
                  if not m.name.startswith("_") and not m.ispkg)


def _generic_main(study: ModuleType, name: str, argv: Sequence[str]) -> int:
    from . import _cli

    presets = study.PRESETS
    default = "cpu" if "cpu" in presets else next(iter(presets))
    parser = _cli.study_parser(study.__doc__ or name, presets, default)
    parser.prog = f"kdbounds-study {name}"
    base = presets[default]
    hints = typing.get_type_hints(type(base))
    fields: dict[str, type] = {}
    for f in dataclasses.fields(base):
        t = hints.get(f.name)
        args = [a for a in typing.get_args(t) if a is not type(None)]
        plain = t if t in (int, float, str) else (args[0] if len(args) == 1 and args[0] in (int, float, str) else None)
        if plain is not None and f.name not in (*_cli.COMMON, "preset"):
            fields[f.name] = plain
    _cli.add_overrides(parser, fields)
    args = parser.parse_args(list(argv))
    return _cli.main(study, name, _cli.config_from_args(presets, args, tuple(fields)), args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kdbounds-study``.

    Args:
        argv: ``[name, *options]`` (default ``sys.argv[1:]``); ``--list`` prints the studies; ``--clean
            [options]`` frees run caches (:func:`kdbounds.runs.cache_layout.main`).

    Returns:
        The process exit status (130 after Ctrl-C or SIGTERM, with one line on stderr).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available_studies()
    usage = (f"usage: kdbounds-study {{{','.join(names)}}} [options]   (kdbounds-study <name> --help)\n"
             f"       kdbounds-study --list | --clean [--cache-root DIR] [--bank] [--data] [--dry-run]")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage + "\n\n" + (__doc__ or "").split("\n\n")[0])
        return 0 if argv else 2
    if argv[0] == "--list":
        print("\n".join(names))
        return 0
    if argv[0] == "--clean":
        from ..runs.cache_layout import main as clean_main

        return clean_main(argv[1:])
    name, rest = argv[0].replace("-", "_"), argv[1:]
    if name not in names:
        print(f"kdbounds-study: unknown study {argv[0]!r}; expected one of {', '.join(names)}\n{usage}",
              file=sys.stderr)
        return 2
    from .._interrupts import signals_end_the_run

    try:  # the study's own line once it runs (_cli.main); this one while it is imported and parsed
        with signals_end_the_run():
            script = _EXPERIMENTS / f"{name}.py"
            if script.is_file():
                spec = importlib.util.spec_from_file_location(f"_kdbounds_experiment_{name}", script)
                mod = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(mod)
                return int(mod.main(rest) or 0)
            return _generic_main(importlib.import_module(f"kdbounds.studies.{name}"), name, rest)
    except KeyboardInterrupt:
        print(f"\ninterrupted: kdbounds-study {name} stopped (finished trainings stay in the run cache); run the "
              f"same command again to resume", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
