"""What every study's ``results.json`` records about where it came from (one helper for every study).

:func:`provenance` gives the kdbounds version, the git commit of the source checkout (with a ``dirty``
flag; ``None`` outside a git checkout or without git), the data source (data set, layout, path) and
the SHA-256 of that source (the archive file itself; for a folder, a digest of its files' relative
paths and contents), so that a result can be matched to the code and the bytes it was computed from.
:func:`with_provenance` adds it to a results payload under ``"provenance"``. :func:`note_start` (called by the
study command line before any work) pins the commit to the one a run began with.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any, Mapping

__all__ = ["provenance", "with_provenance", "git_commit", "source_sha256", "note_start"]

_REPO = Path(__file__).resolve().parents[2]
_START: dict[str, Any] = {}  # {"git": ...} once note_start() has run in this process


def git_commit(repo: str | os.PathLike = _REPO) -> dict[str, Any] | None:
    """``{"commit": 40 hex digits, "dirty": bool}`` of the checkout at ``repo``, or None (no git, no checkout).

    Args:
        repo: a folder inside the checkout (default: the one kdbounds is imported from).

    Returns:
        The commit and whether tracked files differ from it, or None.
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty} if len(commit) == 40 else None


def note_start() -> None:
    """Remember the checkout's commit now, at the start of a study (once per process; later calls keep the first).

    The provenance of a result written afterwards then names the code the run *began* with (``git``), and, when the
    checkout has moved on while the run went (a commit, an edit), also the state at writing (``git_at_write``) — a run
    of hours must not be credited to a commit made while it ran. Called by the study command line before any work.
    """
    if "git" not in _START:
        _START["git"] = git_commit()


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    p = Path(path)
    h = hashlib.sha256()
    if p.is_file():
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(f.relative_to(p).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def source_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a data source: the file's bytes, or for a folder a digest of every file's relative path
    and SHA-256 in sorted order (cached per path, size and modification time within a process).

    Args:
        path: an archive file or a folder.

    Returns:
        64 hex digits.
    """
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def provenance(data_root: str | os.PathLike | None = None, dataset: str = "cifar10") -> dict[str, Any]:
    """The version, commit and data source of a study run.

    Args:
        data_root: the root the study read its data from (``None``: the standard places, as the loader).
        dataset: ``"cifar10"`` or ``"cifar100"``.

    Returns:
        ``{"kdbounds_version", "git", "data"}``; ``data`` is ``{"name", "kind", "path", "sha256"}``, or
        ``{"name", "error"}`` when the data set is not found (a result is never refused for this).
    """
    from ..data import DataNotFoundError, find_cifar

    try:
        src = find_cifar(dataset, data_root)
        data: dict[str, Any] = {**src.to_dict(), "sha256": source_sha256(src.path)}
    except DataNotFoundError as e:
        data = {"name": dataset, "error": str(e).splitlines()[0]}
    return _record(data)


def _record(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{"kdbounds_version", "git"[, "git_at_write"], "data"}`` for the data record ``data``."""
    import kdbounds

    return {"kdbounds_version": kdbounds.__version__, **_git_record(), "data": dict(data)}


def _git_record() -> dict[str, Any]:
    """``{"git": ...}``: the commit at :func:`note_start` when it ran, else now; plus ``git_at_write`` if they differ."""
    now = git_commit()
    if "git" not in _START:
        return {"git": now}
    start = _START["git"]
    return {"git": start} if start == now else {"git": start, "git_at_write": now}


def with_provenance(payload: Mapping[str, Any], data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``payload`` with ``"provenance"`` added, read from its ``config`` (``data_root``, ``dataset``).

    Args:
        payload: a study result's ``to_dict()``.
        data: the data source's record when it is not a data set on disk (a study on generated data says
            what generated it, e.g. ``{"name": "linear-Gaussian", "kind": "synthetic", "seeds": [0, 1]}``);
            ``None``: the data set the config names, found as the loader finds it.

    Returns:
        A new dict: the payload and its provenance.
    """
    if data is not None:
        return {**payload, "provenance": _record(data)}
    cfg = payload.get("config") or {}
    cfg = cfg if isinstance(cfg, Mapping) else {}
    return {**payload, "provenance": provenance(cfg.get("data_root"), cfg.get("dataset") or "cifar10")}
