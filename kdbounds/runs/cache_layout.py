"""The one cache layout of kdbounds, and freeing it (``kdbounds-study --clean``).

Where things are cached (nothing else is written outside ``--out``):

* **run caches** — trained models (one folder per run, :mod:`kdbounds.runs.cache`), their lock files
  (:mod:`kdbounds.runs.locking`), a study's measurement records (``<name>-measurements/``), the prior-grid
  ledger (``grid_ledger/``) and untrained teachers (``teachers/``). A study writing to ``--out OUT`` uses
  ``--cache-root``, by default ``OUT/../cache`` (:func:`resolve_cache_root`): with the default output folder
  ``results/<study>/<preset>`` that is ``results/<study>/cache``, one per study, shared by its presets;
* **the teacher bank** — ``$KDBOUNDS_BANK``, else ``$KDBOUNDS_CACHE/bank``, else ``~/.cache/kdbounds/bank``
  (:func:`bank_root`): teachers shared by every study, expensive to retrain;
* **decoded data arrays** — ``$KDBOUNDS_CACHE/data`` (default ``~/.cache/kdbounds/data``, also where a
  downloaded CIFAR-10 goes; :func:`kdbounds.data.cifar_cache.cache_dir`): one ``.npz`` per data source and
  split, keyed by the source's path, size and modification time, so every new copy or location of the data
  adds one (184 MB for CIFAR-10) and none is ever reused again. :func:`clean_data_cache` (``--clean --data``)
  frees them and keeps everything else in that folder (a downloaded CIFAR-10 in particular).

:func:`clean` frees run caches: it lists each folder with its size and removes it (``dry_run``: lists only).
It never deletes a folder that does not look like a run cache (:func:`inspect_cache`: every entry must be one
of the kinds above, and there must be at least one), never one in use (a run's lock held by a running study),
and never the teacher bank unless asked (``bank=True``). Without explicit folders it looks for the default
layout under ``results/`` (:func:`default_caches`).

No torch: the command answers at once.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .grid_ledger import LEDGER_DIR

__all__ = ["resolve_cache_root", "bank_root", "CacheFolder", "inspect_cache", "default_caches", "CleanReport",
           "clean", "clean_data_cache", "format_bytes", "main"]

#: a decoded-array cache file of :mod:`kdbounds.data.cifar_cache` and its lock:
#: ``<dataset>-<split>-<source kind>-<20 hex digits>.npz``, ``<dataset>-<source kind>-<20 hex digits>.lock``
DECODED_ARRAYS = re.compile(r"^cifar(10|100)-((train|test)-)?[a-z_]+-[0-9a-f]{20}\.(npz|lock)$")
#: a run folder of the run cache: ``<method>-<arch>-<12 hex digits of the run id>``
RUN_FOLDER = re.compile(r"^[A-Za-z0-9_]+-[A-Za-z0-9_.]+-[0-9a-f]{12}$")
#: a lock file of :mod:`kdbounds.runs.locking` (``.<name>.lock``) and its holder record
LOCK_FILE = re.compile(r"^\..+\.lock(\.holder)?$")
#: the prior-grid ledger
LEDGER = LEDGER_DIR
#: untrained teachers (``teachers/untrained_<arch>*.pt``: nuisance_teacher, pid_transfer)
TEACHERS = "teachers"
#: a study's measurement records (``<study>-measurements/``: a store of the sweep runner)
MEASUREMENTS = "-measurements"


def resolve_cache_root(out_dir: str | os.PathLike, cache_root: str | os.PathLike | None) -> Path:
    """The run cache of a study writing to ``out_dir``.

    Args:
        out_dir: the study's output folder.
        cache_root: an explicit cache folder, or ``None``.

    Returns:
        ``cache_root`` when given, else ``out_dir/../cache`` (so the presets of one study share models).
    """
    return Path(cache_root) if cache_root is not None else Path(out_dir).parent / "cache"


def bank_root(root: str | os.PathLike | None = None) -> Path:
    """The teacher bank's folder: ``root``, else ``$KDBOUNDS_BANK``, else ``$KDBOUNDS_CACHE/bank``, else
    ``~/.cache/kdbounds/bank``.

    Args:
        root: an explicit folder (wins).

    Returns:
        The folder (not created).
    """
    if root is not None:
        return Path(root)
    if os.environ.get("KDBOUNDS_BANK"):
        return Path(os.environ["KDBOUNDS_BANK"])
    base = os.environ.get("KDBOUNDS_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "kdbounds") / "bank"


def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (links are not followed)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                continue
    return total


def _entry_kind(path: Path) -> str | None:
    """What a top-level entry of a run cache is (``run``, ``lock``, ``ledger``, ``teachers``, ``measurements``),
    or None for anything a kdbounds run cache does not hold."""
    name = path.name
    if path.is_symlink():
        return None
    if path.is_file():
        return "lock" if LOCK_FILE.match(name) else None
    if not path.is_dir():
        return None
    if RUN_FOLDER.match(name):
        return "run"
    if name == LEDGER and all(f.is_file() and (f.suffix == ".json" or LOCK_FILE.match(f.name))
                              for f in path.iterdir()):
        return "ledger"
    if name == TEACHERS and all(f.is_file() and (f.suffix == ".pt" or LOCK_FILE.match(f.name) or f.name.endswith(".tmp"))
                                for f in path.iterdir()):
        return "teachers"
    if name.endswith(MEASUREMENTS) and len(name) > len(MEASUREMENTS):
        return "measurements"
    return None


@dataclass(frozen=True)
class CacheFolder:
    """One folder as :func:`clean` sees it.

    Attributes:
        path: the folder.
        kind: ``"run cache"``, ``"teacher bank"``, or ``"not a cache"`` (refused).
        size: bytes under it.
        runs: run folders in it.
        unknown: entries a run cache does not hold (why it is refused; at most 5 named).
        reason: for a refused folder, the sentence that says why.
    """

    path: Path
    kind: str
    size: int
    runs: int
    unknown: tuple[str, ...] = ()
    reason: str = ""

    @property
    def is_cache(self) -> bool:
        """Whether the folder may be freed (a run cache, or the bank when asked).

        Returns:
            True for a run cache or the teacher bank.
        """
        return self.kind in ("run cache", "teacher bank")


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def inspect_cache(folder: str | os.PathLike) -> CacheFolder:
    """Whether ``folder`` looks like a kdbounds run cache (or the teacher bank), and its size.

    A run cache holds only run folders (``<method>-<arch>-<12 hex>``), lock files (``.<name>.lock``), the
    ledger ``grid_ledger/``, untrained teachers ``teachers/*.pt`` and measurement stores ``*-measurements/``,
    and at least one of them. Anything else (a file of yours, a folder of another kind) makes it "not a
    cache". The bank is the folder :func:`bank_root` names.

    Args:
        folder: the folder.

    Returns:
        Its :class:`CacheFolder`.
    """
    path = Path(folder).expanduser()
    if path.is_symlink() or not path.is_dir():
        why = "is a symbolic link" if path.is_symlink() else "is not a folder" if path.exists() else "does not exist"
        return CacheFolder(path, "not a cache", 0, 0, reason=f"{path} {why}")
    entries = sorted(path.iterdir())
    kinds = {e.name: _entry_kind(e) for e in entries}
    unknown = tuple(n for n, k in kinds.items() if k is None)
    runs = sum(1 for k in kinds.values() if k == "run")
    if unknown or not any(k in ("run", "ledger", "teachers", "measurements") for k in kinds.values()):
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        reason = (f"{path} does not look like a kdbounds run cache: "
                  + (f"it holds {shown}, which a run cache does not" if unknown else "it holds no runs"))
        return CacheFolder(path, "not a cache", _size(path), runs, unknown[:5], reason)
    kind = "teacher bank" if _same(path, bank_root()) else "run cache"
    return CacheFolder(path, kind, _size(path), runs)


def default_caches(results: str | os.PathLike = "results") -> list[Path]:
    """The run caches of the default layout under ``results``: every folder named ``cache`` in it (``results/<study>/cache``,
    the notebooks' ``results/notebooks/<study>/cache``, and ``results/cache``, the flagship's former default).

    Args:
        results: the results folder (default ``results`` in the working directory).

    Returns:
        The folders named ``cache`` under it (not yet checked: see :func:`inspect_cache`), sorted.
    """
    root = Path(results)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("cache") if p.is_dir() and not p.is_symlink())


def format_bytes(n: int) -> str:
    """``n`` bytes in words: ``512 B``, ``3.4 kB``, ``137.0 MB``, ``2.1 GB`` (powers of 1000).

    Args:
        n: a byte count.

    Returns:
        The text.
    """
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class CleanReport:
    """What :func:`clean` freed (or would free), what it kept and why.

    Attributes:
        freed: the caches removed (or, in a dry run, that would be).
        kept: ``(folder, why)`` for caches left alone: the bank without ``bank=True``, a cache in use.
        refused: folders that do not look like a cache (never touched).
        dry_run: nothing was removed.
    """

    freed: tuple[CacheFolder, ...] = ()
    kept: tuple[tuple[CacheFolder, str], ...] = ()
    refused: tuple[CacheFolder, ...] = ()
    dry_run: bool = False

    @property
    def bytes_freed(self) -> int:
        """Bytes freed (or that would be, in a dry run).

        Returns:
            The sum of the freed folders' sizes.
        """
        return sum(c.size for c in self.freed)

    def lines(self) -> list[str]:
        """The report as lines for the console.

        Returns:
            One line per folder, then the total.
        """
        verb = "would free" if self.dry_run else "freed"
        out = [f"{verb} {format_bytes(c.size):>9s}  {c.path}  ({c.kind}, {c.runs} run{'' if c.runs == 1 else 's'})"
               for c in self.freed]
        out += [f"kept       {format_bytes(c.size):>9s}  {c.path}  ({c.kind}: {why})" for c, why in self.kept]
        out += [f"refused               {c.reason}; nothing in it was touched" for c in self.refused]
        total = f"{verb} {format_bytes(self.bytes_freed)} in {len(self.freed)} cache folder(s)"
        if self.dry_run and self.freed:
            total += " (dry run: nothing removed; run again without --dry-run to remove them)"
        return out + [total]


def _locks_free(folder: Path) -> tuple[list[object], str]:
    """Take every run lock under ``folder`` without waiting: ``(held locks, "")``, or ``([], who holds one)``."""
    from filelock import FileLock, Timeout

    from .locking import lock_holder

    held: list[object] = []
    for lp in sorted(folder.rglob("*.lock")):
        if not lp.is_file():
            continue
        lock = FileLock(lp, timeout=-1, fallback_to_soft=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            for h in held:
                h.release()
            return [], f"in use: {lp.name} is held by {lock_holder(lp)}; clean it when that run has finished"
        held.append(lock)
    return held, ""


def clean(folders: Sequence[str | os.PathLike] | None = None, *, bank: bool = False, dry_run: bool = False,
          results: str | os.PathLike = "results") -> CleanReport:
    """Free run caches: each folder that looks like one (:func:`inspect_cache`) is removed whole.

    Args:
        folders: the caches to free; ``None``: :func:`default_caches` under ``results``.
        bank: also free the teacher bank (:func:`bank_root`) — and allow a given folder that is the bank.
        dry_run: list what would be freed, remove nothing.
        results: where the default caches are looked for.

    Returns:
        The :class:`CleanReport`. A folder that does not look like a run cache is in ``refused`` and untouched;
        one whose run is locked by a running process, or the bank without ``bank``, is in ``kept``.
    """
    paths = [Path(f).expanduser() for f in folders] if folders is not None else default_caches(results)
    if bank and not any(_same(p, bank_root()) for p in paths):
        paths.append(bank_root())
    freed: list[CacheFolder] = []
    kept: list[tuple[CacheFolder, str]] = []
    refused: list[CacheFolder] = []
    seen: set[Path] = set()
    for p in paths:
        key = p.resolve() if p.exists() else p
        if key in seen:
            continue
        seen.add(key)
        info = inspect_cache(p)
        if not info.is_cache:
            refused.append(info)
            continue
        if info.kind == "teacher bank" and not bank:
            kept.append((info, "the teacher bank is freed only with --bank"))
            continue
        held, busy = _locks_free(info.path)
        if busy:
            kept.append((info, busy))
            continue
        try:
            if not dry_run:
                shutil.rmtree(info.path)
        finally:
            for h in held:
                h.release()
        freed.append(info)
    return CleanReport(tuple(freed), tuple(kept), tuple(refused), dry_run)


def clean_data_cache(folder: str | os.PathLike | None = None, *, dry_run: bool = False) -> list[str]:
    """Free the decoded-array caches of the data loader; nothing else in their folder is touched.

    A file is removed only when its name is one the loader writes (:data:`DECODED_ARRAYS`); a downloaded
    CIFAR-10 or anything else there stays. A process reading a removed array keeps its open copy; the next
    ``load_cifar`` decodes the source again (seconds) and writes a fresh one.

    Args:
        folder: the cache folder; ``None``: :func:`kdbounds.data.cifar_cache.cache_dir`
            (``$KDBOUNDS_CACHE/data``, default ``~/.cache/kdbounds/data``).
        dry_run: list what would be freed, remove nothing.

    Returns:
        The report's lines: one per data source's arrays, then the total.
    """
    if folder is None:
        from ..data.cifar_cache import cache_dir

        folder = cache_dir()
    folder = Path(folder).expanduser()
    files = sorted(p for p in folder.iterdir() if p.is_file() and DECODED_ARRAYS.match(p.name)) \
        if folder.is_dir() else []
    size = sum(p.stat().st_size for p in files)
    if not dry_run:
        for p in files:
            p.unlink(missing_ok=True)
    verb = "would free" if dry_run else "freed"
    arrays = sum(p.suffix == ".npz" for p in files)
    return [f"{verb} {format_bytes(size):>9s}  {folder}  (decoded data arrays: {arrays} file(s), and "
            f"{len(files) - arrays} lock(s); anything else there kept)"]


def main(argv: Sequence[str] | None = None, prog: str = "kdbounds-study --clean",
         say: Callable[[str], None] = print) -> int:
    """``kdbounds-study --clean [--cache-root DIR ...] [--results DIR] [--bank] [--dry-run]``.

    Args:
        argv: the options after ``--clean``.
        prog: the command's name in messages.
        say: where the report's lines go.

    Returns:
        0; 2 when a folder given with ``--cache-root`` does not look like a run cache (it is not touched).
    """
    import argparse

    p = argparse.ArgumentParser(prog=prog, description=(
        "Free kdbounds run caches (trained models, measurement records): list each with its size and remove it. "
        "Without --cache-root: the default layout, every results/<study>/cache (and results/**/cache) under "
        "--results. A folder that does not look like a run cache is never touched, nor a cache a running study "
        "holds a lock in, nor the teacher bank without --bank."))
    p.add_argument("--cache-root", action="append", default=None, metavar="DIR",
                   help="a run cache to free (repeatable); default: the caches of the default layout")
    p.add_argument("--results", default="results", metavar="DIR",
                   help="where the default layout's caches are looked for (default ./results)")
    p.add_argument("--bank", action="store_true",
                   help=f"also free the teacher bank ({bank_root()}; $KDBOUNDS_BANK): its teachers are retrained "
                        "on next use")
    p.add_argument("--data", action="store_true",
                   help="also free the data loader's decoded arrays in $KDBOUNDS_CACHE/data (default "
                        "~/.cache/kdbounds/data; 184 MB per CIFAR-10 source; a downloaded CIFAR-10 there is kept): "
                        "they are decoded again on next use")
    p.add_argument("--dry-run", action="store_true", help="list what would be freed; remove nothing")
    a = p.parse_args(argv)
    if a.data:
        for line in clean_data_cache(dry_run=a.dry_run):
            say(line)
    report = clean(a.cache_root, bank=a.bank, dry_run=a.dry_run, results=a.results)
    if a.cache_root is None and not (report.freed or report.kept or report.refused):
        say(f"no run cache found under {a.results}/ (the default layout: {a.results}/<study>/cache); "
            f"name one with --cache-root DIR")
        return 0
    for line in report.lines():
        say(line)
    if a.cache_root is not None and report.refused:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m kdbounds.runs.cache_layout"))
