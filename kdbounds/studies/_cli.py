"""The command line shared by every study (``experiments/*.py`` are thin wrappers around it).

Common options: ``--preset``, ``--out``, ``--cache-root``, ``--device``, ``--seed``, ``--data-root``,
``--no-progress``; a study adds its own with :func:`add_overrides`. :func:`config_from_args` applies
the given options to the preset's frozen config (unset options keep the preset's value) and
:func:`main` runs the study and prints where it wrote.

**One preset vocabulary** (:data:`PRESET_VOCABULARY`): ``smoke`` (CI, under a minute), ``cpu`` (the default
main run on a 2-core CPU, minutes), ``scale`` (reviewer scale on this CPU, hours), ``gpu`` (GPU-sized), and
``smoke-<name>`` for the one-minute version of preset ``<name>``; a study offers the ones that make sense
for it. The old names (:data:`DEPRECATED_PRESETS`: ``default``, ``paper``) still work and print one line
naming the new name (:func:`canonical_preset`).

**One cache layout**: the run cache (trained models, measurement records) of a study writing to ``--out
OUT`` is ``--cache-root``, by default ``OUT/../cache`` (:func:`kdbounds.runs.cache_layout.resolve_cache_root`: with the default
``--out results/<study>/<preset>`` that is ``results/<study>/cache``, shared by the study's presets).
Decoded data arrays and the teacher bank live in the user cache ``$KDBOUNDS_CACHE`` (default
``~/.cache/kdbounds``: ``data/`` and ``bank/``). ``kdbounds-study --clean`` lists and frees run caches
(:mod:`kdbounds.runs.cache_layout`).

A study module imports torch at its top, which costs seconds. A script therefore parses its command
line first and imports the study after: :func:`module_names` reads the preset names (and any other
literal tuple of names, such as a study's ``METHODS``) from the study's source, without importing it,
so a typo such as ``--preset nope`` or ``--epochs -1`` is answered at once.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import errno
import importlib
import importlib.util
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import _cli_types as T
from .._interrupts import signals_end_the_run

__all__ = ["PRESET_VOCABULARY", "DEPRECATED_PRESETS", "canonical_preset", "add_deprecated_preset_flag",
           "study_parser", "module_names", "add_overrides", "add_execution_arguments", "config_from_args", "default_out",
           "check_output_paths", "execution_kwargs", "main", "user_data_dir", "with_data", "arch",
           "readme_block_main"]

COMMON = ("device", "seed", "data_root")

#: the preset names every study draws from (a study may also have ``smoke-<name>``, the one-minute version of
#: ``<name>``): ``smoke`` CI, under a minute; ``cpu`` the default main run on a 2-core CPU, minutes; ``scale``
#: reviewer scale on a CPU, hours; ``gpu`` GPU-sized
PRESET_VOCABULARY = ("smoke", "cpu", "scale", "gpu")

#: old preset names that still work, each with the name it has now (a study uses an alias only when it has the new
#: name and not the old one)
DEPRECATED_PRESETS = {"default": "cpu", "paper": "gpu"}


def canonical_preset(name: str, presets: Collection[str], flag: str = "--preset") -> str:
    """The preset's current name: ``name`` itself, or for a deprecated name (:data:`DEPRECATED_PRESETS`) the
    new one, saying so in one line on stderr.

    Args:
        name: the name given.
        presets: the study's ``PRESETS`` (or their names).
        flag: how the name was given, for the line (``--preset default``, ``--quick``).

    Returns:
        The name to look up (unchanged when it is a preset, or unknown: the caller's check names the valid ones).
    """
    if name in presets:
        return name
    new = DEPRECATED_PRESETS.get(name)
    if new is None or new not in presets:
        return name
    shown = f"{flag} {name}" if flag == "--preset" else flag
    print(f"{shown} is deprecated: that preset is now called {new!r} (the same settings); use --preset {new}",
          file=sys.stderr, flush=True)
    return new


class _DeprecatedPresetFlag(argparse.Action):
    """A flag that stands for ``--preset NAME`` (e.g. ``--quick``): sets the preset and says it is deprecated."""

    def __init__(self, option_strings: Sequence[str], dest: str, preset: str = "smoke", **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)
        self.preset = preset

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{option_string} is deprecated: use --preset {self.preset} (the same settings)", file=sys.stderr,
              flush=True)
        namespace.preset = self.preset


def add_deprecated_preset_flag(parser: argparse.ArgumentParser, flag: str, preset: str) -> None:
    """Keep an old flag that chose a preset (``--quick`` for ``--preset smoke``) working, with one line saying so.

    Args:
        parser: a :func:`study_parser`.
        flag: the old flag (``--quick``).
        preset: the preset it stands for.

    Raises:
        ValueError: ``preset`` is not one of the parser's presets.
    """
    choices = next(a.choices for a in parser._actions if a.dest == "preset")
    if preset not in choices:
        raise ValueError(f"preset: expected one of {sorted(choices)}, got {preset!r}")
    parser.add_argument(flag, action=_DeprecatedPresetFlag, preset=preset, dest="preset",
                        help=f"deprecated: the same as --preset {preset}")


def study_parser(doc: str, presets: Collection[str], default_preset: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the common study options; its help is the script's docstring.

    Args:
        doc: the script's module docstring (first paragraph: description; the rest: epilog).
        presets: the study's ``PRESETS``, or only their names (:func:`module_names` reads them without
            importing the study).
        default_preset: the preset used when ``--preset`` is not given.

    Returns:
        The parser (add study-specific options with :func:`add_overrides`).

    Raises:
        ValueError: ``default_preset`` is not one of ``presets``.
    """
    if default_preset not in presets:
        raise ValueError(f"default_preset: expected one of {sorted(presets)}, got {default_preset!r}")
    head, _, tail = doc.strip().partition("\n\n")
    p = argparse.ArgumentParser(description=head, epilog=tail or None,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    names = tuple(presets)
    old = [f"{o} = {n}" for o, n in DEPRECATED_PRESETS.items() if n in names and o not in names]
    p.add_argument("--preset", choices=sorted(names), default=default_preset,
                   type=lambda text: canonical_preset(text, names),
                   help=f"the study's size (default {default_preset})"
                        + (f"; deprecated names still accepted: {', '.join(old)}" if old else ""))
    p.add_argument("--out", type=T.writable_dir, default=None,
                   help="output folder (default results/<study>/<preset>)")
    p.add_argument("--cache-root", type=T.writable_dir, default=None,
                   help="run cache: trained models and measurements, reused by every later run (default "
                        "<out>/../cache, i.e. results/<study>/cache with the default --out, shared by the presets; "
                        "free it with kdbounds-study --clean)")
    p.add_argument("--device", type=T.device, default=None, help="auto, cpu or cuda[:k] (default: the preset's)")
    p.add_argument("--seed", type=T.seed, default=None, help=f"base seed in [0, {T.SEED_MAX}] (default: the preset's)")
    p.add_argument("--data-root", type=T.data_root, default=None,
                   help="CIFAR location (default $KDBOUNDS_DATA, then standard places)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_execution_arguments(p)
    return p


_SAFE = {int: T.nonneg_int, float: T.finite_float}


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every study shares for *where* it runs: the sweep runner's ``--executor``,
    ``--workers``, ``--address``, ``--threads``, ``--max-retries`` (docs/sweeps.md) and
    ``--no-download`` (never download CIFAR; fail with a message saying where to put it).

    Args:
        parser: the study's parser.
    """
    from ..runs.sweep import add_sweep_arguments

    add_sweep_arguments(parser)
    parser.add_argument("--no-download", action="store_true",
                        help="never download CIFAR-10; by default it is downloaded (checksum-verified) to "
                             "~/.cache/kdbounds/data when found nowhere")


def add_overrides(parser: argparse.ArgumentParser, fields: Mapping[str, type]) -> None:
    """Add ``--<field-name>`` options (``None`` by default, i.e. keep the preset's value).

    An option that the shared parser already has (``--threads``, intra-op threads per run) is not
    added again: its value, when given, is applied to the field of the same name. (argparse refuses a
    second option of the same name with ``ArgumentError``; that refusal is what detects it.)

    Args:
        parser: the study's parser.
        fields: config field name -> converter used to parse the option (prefer the checked
            converters of :mod:`kdbounds._cli_types`; a bare ``int`` becomes ``nonneg_int`` and a bare
            ``float`` ``finite_float``, so no negative count and no inf/nan gets through).
    """
    for name, typ in fields.items():
        typ = _SAFE.get(typ, typ)
        try:
            parser.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None,
                                help=f"override the preset's {name}")
        except argparse.ArgumentError:
            continue  # a shared option of the same name (e.g. --threads) sets this field too


def arch(text: str) -> str:
    """The ``--<...>-arch`` converter: a model name of the zoo (:func:`kdbounds.models.arch_name`, imported
    when the option is parsed).

    Args:
        text: the typed name.

    Returns:
        The zoo's name.

    Raises:
        argparse.ArgumentTypeError: not a model of the zoo.
    """
    from ..models.registry import arch_name

    return arch_name(text)


def module_names(module: str, name: str) -> tuple[str, ...]:
    """The names held by ``module.<name>`` (a study's ``PRESETS`` keys, its ``METHODS``), sorted as
    written, read from the module's source without importing it (no torch).

    The source is read with :mod:`ast` when ``name`` is bound once at the top level to a literal: a
    dict with string keys, a tuple/list of strings, or a dict comprehension over such a dict
    (``{k: Config(**kw) for k, kw in _SETTINGS.items()}``), and nothing at the top level changes it
    afterwards. Any other form falls back to importing the module, so the answer is always right;
    only the speed depends on the form.

    Args:
        module: a module's dotted name (``kdbounds.studies.functional_transfer``).
        name: a top-level name in it.

    Returns:
        The keys or items, in source order.

    Raises:
        ModuleNotFoundError: no such module.
        AttributeError: the module (imported, in the fall-back case) has no such name.
    """
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise ModuleNotFoundError(f"module: no module named {module!r}")
    found = None
    if spec.origin and spec.origin.endswith(".py"):
        try:
            with open(spec.origin, encoding="utf-8") as f:
                found = _literal_names(ast.parse(f.read()), name)
        except (OSError, SyntaxError, ValueError):
            found = None
    if found is not None:
        return found
    return tuple(getattr(importlib.import_module(module), name))


def _literal_names(tree: ast.Module, name: str, depth: int = 0) -> tuple[str, ...] | None:
    """The names of top-level ``name`` in ``tree`` when spelled as a literal (see :func:`module_names`)."""
    values = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        for t in targets:
            if isinstance(t, ast.Name) and t.id == name:
                values.append(getattr(node, "value", None) if not isinstance(node, ast.AugAssign) else None)
            elif any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(t)):
                return None  # PRESETS["x"] = ... or similar: changed after its definition
        if isinstance(node, ast.Expr) and any(isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                                              and n.value.id == name for n in ast.walk(node)):
            return None  # PRESETS.update(...) and the like
    if len(values) != 1 or values[0] is None:
        return None
    v = values[0]
    if isinstance(v, ast.Dict):
        keys = v.keys
    elif isinstance(v, (ast.Tuple, ast.List)):
        keys = v.elts
    elif isinstance(v, ast.DictComp) and depth == 0 and len(v.generators) == 1 and not v.generators[0].ifs:
        it = v.generators[0].iter
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and it.func.attr in ("items", "keys") \
                and not it.args:
            it = it.func.value
        tgt = v.generators[0].target
        first = tgt.elts[0] if isinstance(tgt, ast.Tuple) and tgt.elts else tgt
        if not (isinstance(it, ast.Name) and isinstance(first, ast.Name) and isinstance(v.key, ast.Name)
                and v.key.id == first.id):
            return None
        return _literal_names(tree, it.id, depth + 1)
    else:
        return None
    if not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in keys):
        return None
    return tuple(k.value for k in keys)


def config_from_args(presets: Mapping[str, Any], args: argparse.Namespace, names: Sequence[str] = (),
                     **converted: Any) -> Any:
    """The preset's config with every given option applied (``dataclasses.replace``).

    Args:
        presets: the study's ``PRESETS`` (frozen dataclass configs).
        args: parsed arguments (``args.preset`` names the preset).
        names: study-specific option names to apply when not ``None`` (besides ``device``, ``seed``,
            ``data_root``).
        **converted: values already converted by the caller (applied when not ``None``).

    Returns:
        The resolved config (its ``__post_init__`` validates it).

    Raises:
        SystemExit: an option names a field the study's config does not have (argparse-style message).
    """
    if args.preset not in presets:
        raise SystemExit(f"--preset {args.preset}: the study has no such preset; expected one of {sorted(presets)}")
    base = presets[args.preset]
    fields = {f.name for f in dataclasses.fields(base)}
    updates: dict[str, Any] = {}
    for name in (*COMMON, *names):
        v = getattr(args, name, None)
        if v is None:
            continue
        if name not in fields:
            raise SystemExit(f"--{name.replace('_', '-')}: this study has no {name!r} setting")
        updates[name] = v
    updates.update({k: v for k, v in converted.items() if v is not None})
    try:
        return dataclasses.replace(base, **updates)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"invalid options: {e}") from None


def default_out(study: str, preset: str) -> Path:
    """The default output folder.

    Args:
        study: the study's name.
        preset: the preset's name.

    Returns:
        ``results/<study>/<preset>`` (relative to the working directory).
    """
    return Path("results") / study / preset


def check_output_paths(out: str | Path, cache_root: str | Path | None = None) -> None:
    """Before any work: the output folder (and the cache root) can be written, else ``SystemExit``.

    Args:
        out: the output folder (created later by the study).
        cache_root: the trained-model cache root, or ``None``.

    Raises:
        SystemExit: a path is a file, or its folder cannot be created or written (names the flag).
    """
    for flag, path in (("--out", out), ("--cache-root", cache_root)):
        if path is None:
            continue
        try:
            T.writable_dir(str(path))
        except argparse.ArgumentTypeError as e:
            raise SystemExit(f"error: argument {flag}: {e}") from None


def main(study: ModuleType, name: str, config: Any, args: argparse.Namespace,
         summary: Callable[[Any], str] | None = None) -> int:
    """Run ``study.run(config, out, cache_root=..., progress=...)`` and print a summary.

    Args:
        study: the study module (``kdbounds.studies.<name>``).
        name: the study's name (folder under ``results/``).
        config: the resolved config.
        args: parsed arguments (``out``, ``cache_root``, ``no_progress``, the execution options).
        summary: text printed after the run (default: the study's ``summary`` if it has one).

    Returns:
        0 (the process exit status); 130 after Ctrl-C or SIGTERM (one line on stderr, no traceback:
        finished trainings stay in the run cache and the same command resumes).

    Raises:
        SystemExit: bad execution options, or no data (and no download) — before anything runs; a full
            disk, a file-size limit or a read-only folder while running (one line naming the file).
    """
    # absolute paths: runs on a cluster (--address) may execute in workers with another working directory
    out = (Path(args.out) if args.out else default_out(name, args.preset)).expanduser().resolve()
    from ..runs.cache_layout import resolve_cache_root

    cache_root = resolve_cache_root(out, Path(args.cache_root).expanduser() if args.cache_root else None).resolve()
    check_output_paths(out, cache_root)
    kwargs = execution_kwargs(study, name, args)
    from ..runs.allocator import tune_cpu_allocator

    tune_cpu_allocator()  # speed only, for the work done in this process too (kdbounds/runs/allocator.py)
    from ._provenance import note_start

    note_start()  # results.json names the commit this run began with, not one made while it ran
    try:
        with signals_end_the_run():  # Ctrl-C and SIGTERM: one line, from the data check (a download) on
            config = with_data(config, download=not getattr(args, "no_download", False),
                               progress=not args.no_progress)
            if getattr(config, "data_root", None) is not None:
                config = dataclasses.replace(config, data_root=str(Path(config.data_root).expanduser().resolve()))
            result = study.run(config, out, cache_root=cache_root, progress=not args.no_progress, **kwargs)
    except KeyboardInterrupt:
        print(f"\ninterrupted: every finished training, and the last finished epoch of one in progress, is kept in "
              f"the run cache ({cache_root or Path(out).parent / 'cache'}); run the same command again to resume",
              file=sys.stderr, flush=True)
        return 130
    except Exception as e:
        line = one_line_error(e, out)
        if line is None:  # a bug: keep the traceback
            raise
        raise SystemExit(f"error: {line}") from None
    summary = summary or getattr(study, "summary", None)
    if summary is not None:
        print(summary(result))
    print(f"wrote results to {out}")
    return 0


def _one_line_errors() -> tuple[type[BaseException], ...]:
    """Errors of the user's data, cluster, run lock or a damaged file while a study runs (their messages name
    the file or the flag and the fix)."""
    from .._io import DamagedFileError
    from ..data import CorruptArchiveError, DataNotFoundError
    from ..runs.locking import RunLockTimeout

    return CorruptArchiveError, DataNotFoundError, RunLockTimeout, ConnectionError, DamagedFileError


def one_line_error(e: BaseException, out: str | Path) -> str | None:
    """The one line that reports ``e``, an error of the user's data, cluster, lock, disk or a damaged file
    (``None`` for anything else: a bug, whose traceback is kept).

    A failed run of a sweep (``SweepError``) is reported by its cause when every cause is such an error.

    Args:
        e: the error a study raised.
        out: the output folder (named when a disk error names no file).

    Returns:
        The line (without ``error:``), or ``None``.
    """
    from ..runs.sweep import SweepError

    if isinstance(e, SweepError):
        lines = [one_line_error(c, out) for c in e.failures.values()]
        if not lines or any(line is None for line in lines):
            return None
        return (f"run {next(iter(e.failures))!r} failed: {lines[0]} ({len(e.results)} finished runs are kept in the "
                f"run cache)")
    if isinstance(e, _one_line_errors()):
        return str(e)
    if isinstance(e, OSError) and e.errno in _DISK_ERRNOS:
        return (f"{e.strerror} writing {e.filename or out}: free space, raise the limit (ulimit -f) or choose a "
                f"writable --out/--cache-root; run the same command again to resume")
    return None


_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT, errno.EACCES})


def execution_kwargs(study: ModuleType, name: str, args: argparse.Namespace) -> dict[str, Any]:
    """``{"sweep": run_sweep options}`` for a study whose ``run`` takes ``sweep=``; ``{}`` for one that
    does not yet, as long as the options ask for nothing but the default (local, one run at a time).

    Args:
        study: the study module.
        name: its name (for the message).
        args: parsed arguments with the options of :func:`add_execution_arguments`.

    Returns:
        Extra keyword arguments for ``study.run``.

    Raises:
        SystemExit: inconsistent options (``--workers 4`` with ``--executor local``), or a non-default
            executor for a study that does not use the sweep runner.
    """
    import inspect

    from ..runs.sweep import sweep_options

    if not hasattr(args, "executor"):
        return {}
    try:
        opts = sweep_options(args)
    except ValueError as e:
        raise SystemExit(f"invalid execution options: {e}") from None
    if "sweep" in inspect.signature(study.run).parameters:
        return {"sweep": opts}
    if opts["executor"] != "local" or opts["workers"] is not None or opts["address"] is not None:
        raise SystemExit(f"--executor {opts['executor']}: the study {name!r} does not run its trainings on the "
                         f"sweep runner yet (docs/sweeps.md lists those that do); run it with --executor local")
    return {}


def with_data(config: Any, download: bool = True, progress: bool = True) -> Any:
    """``config`` with a ``data_root`` where CIFAR-10 is found, downloading it first when needed.

    A config without ``data_root`` is returned unchanged. When the data is found (``data_root``, or
    the standard places of :func:`kdbounds.data.find_cifar`), nothing changes. Otherwise, unless
    ``download`` is False, the official archive is downloaded and checksum-verified into the given
    ``data_root`` or, when none was given, the user cache ``~/.cache/kdbounds/data`` (saying where),
    and the returned config points there.

    Args:
        config: the study's resolved config.
        download: allow the download.
        progress: show the download's progress.

    Returns:
        The config to run.

    Raises:
        SystemExit: the data is missing and ``download`` is False, or the download failed (no network,
            checksum mismatch): the message names ``--no-download``/the place to put the data.
    """
    if not dataclasses.is_dataclass(config) or "data_root" not in {f.name for f in dataclasses.fields(config)}:
        return config
    from ..data import DataNotFoundError, download_cifar, find_cifar

    name = getattr(config, "dataset", "cifar10")
    try:
        find_cifar(name, config.data_root)
        return config
    except DataNotFoundError as e:
        missing = e
    target = Path(config.data_root).expanduser() if config.data_root is not None else user_data_dir()
    put = (f"put the CIFAR-10 python archive (cifar-10-python.tar.gz, from "
           f"https://www.cs.toronto.edu/~kriz/cifar.html) or an extracted copy into {target}, "
           f"or point --data-root / KDBOUNDS_DATA at a folder that holds it")
    if not download:
        raise SystemExit(f"{missing}\n\n--no-download was given, so nothing is downloaded: {put}.")
    print(f"{name} not found in the standard places; downloading it to {target} "
          f"(checksum-verified; --no-download forbids this)", flush=True)
    try:
        download_cifar(name, target, progress=progress)
        find_cifar(name, str(target))
    except ConnectionError as e:
        raise SystemExit(f"{e}\n\nNo network? Download it elsewhere and {put}; --no-download skips the "
                         f"download attempt.") from None
    except (ValueError, OSError) as e:  # ChecksumError is a ValueError; a full disk an OSError
        raise SystemExit(f"downloading {name} to {target} failed: {e}\n\nRetry, or {put}.") from None
    print(f"{name} downloaded to {target}", flush=True)
    return dataclasses.replace(config, data_root=str(target))


def user_data_dir() -> Path:
    """Where a downloaded data set goes when no root is given: ``~/.cache/kdbounds/data`` (one of the
    places :func:`kdbounds.data.find_cifar` searches)."""
    return Path.home() / ".cache" / "kdbounds" / "data"


def readme_block_main(argv: Sequence[str] | None, description: str, render: Callable[[], str], page: Path,
                      block: str) -> int:
    """The command line of a README generator: print the block ``render()`` makes, or write it into ``page``.

    Args:
        argv: the arguments (``--write`` replaces the page's block ``block``; see
            :func:`kdbounds._io.replace_marked_block`).
        description: the ``--help`` text.
        render: makes the block from the committed results.
        page: the page (README.md).
        block: the block's name.

    Returns:
        The exit code.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--write", action="store_true", help=f"replace the block {block!r} of {page.name} instead of printing")
    a = p.parse_args(argv)
    text = render()
    if a.write:
        from .._io import replace_marked_block

        replace_marked_block(page, block, text)
    else:
        print(text)
    return 0
