r"""The grid ledger: every grid of prior scales ever used for certificates on one ``D_S``, and the union paid.

A certificate whose prior scale is picked from a grid of ``J`` values pays ``ln J`` (delta -> delta/J): valid when the
grid is fixed *before* ``D_S`` is used. A grid changed after certificates on the same ``D_S`` were seen is
picked with ``D_S``: every value ever tried is a candidate, so the honest ``J`` is the size of the union of
all grids used on that ``D_S``. The ledger records them, in the run cache, per split:

* ``<cache_root>/grid_ledger/<cert_sha256>.json`` — keyed by the SHA-256 of ``D_S``'s indices
  (:meth:`kdbounds.certificates.split.DataSplit.to_dict`), so another split seed starts a fresh ledger;
* one entry per (study, grid name, values) the first time it is used; the file is rewritten atomically
  under a file lock (:func:`kdbounds.runs.locking.run_lock`), so concurrent studies on one cache
  record every grid;
* :func:`record_grids` returns, per grid name, the union of every grid recorded under that name
  (this study's and any other's), which the study passes to its certificates as ``n_grid``.

The grids themselves are fixed in each study's preset (``Config``), before any run; the ledger is the
record that they stayed fixed, or the price when they did not.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import atomic_write_json, read_json
from .locking import run_lock

__all__ = ["LEDGER_DIR", "ledger_path", "record_grids", "read_ledger"]

LEDGER_DIR = "grid_ledger"


def _key(split: Any) -> str:
    rec = split.to_dict() if hasattr(split, "to_dict") else dict(split)
    sha = rec.get("cert_sha256")
    if not sha:
        raise ValueError(f"split: expected a DataSplit (or its record) with 'cert_sha256', got keys {sorted(rec)}")
    return str(sha)


def ledger_path(cache_root: str | os.PathLike, split: Any) -> Path:
    """The ledger file of ``split``'s ``D_S`` under ``cache_root``.

    Args:
        cache_root: the run cache.
        split: a :class:`~kdbounds.certificates.split.DataSplit` or its record.

    Returns:
        ``<cache_root>/grid_ledger/<cert_sha256>.json`` (not created).
    """
    return Path(cache_root) / LEDGER_DIR / f"{_key(split)}.json"


def read_ledger(cache_root: str | os.PathLike, split: Any) -> list[dict[str, Any]]:
    """Every entry recorded for ``split``'s ``D_S`` (oldest first; empty when none).

    Args:
        cache_root: the run cache.
        split: a :class:`~kdbounds.certificates.split.DataSplit` or its record.

    Returns:
        The entries: ``study``, ``grid``, ``values``, ``time``.
    """
    p = ledger_path(cache_root, split)
    return list(read_json(p)["entries"]) if p.is_file() else []


def _canonical(values: Sequence[float]) -> list[float]:
    """Sorted distinct values, rounded to 12 significant digits (the same grid computed twice compares equal)."""
    out = sorted({float(f"{float(v):.12g}") for v in values})
    if not out or any(not v > 0 for v in out):
        raise ValueError(f"values: expected at least one positive grid value, got {list(values)!r}")
    return out


def record_grids(cache_root: str | os.PathLike, split: Any, grids: Mapping[str, Sequence[float]], *,
                 study: str) -> dict[str, tuple[float, ...]]:
    """Record ``grids`` as used on ``split``'s ``D_S`` and return, per name, the union of every grid recorded.

    Args:
        cache_root: the run cache (the ledger lives under it).
        split: the :class:`~kdbounds.certificates.split.DataSplit` (or its record) certified on.
        grids: ``{name: values}`` of this run (e.g. ``{"sigma_prior": cfg.scales}``).
        study: the study's name (recorded).

    Returns:
        ``{name: sorted union of every grid of that name recorded on this D_S}``; ``len`` of each is the ``J``
        its certificates must pay.

    Raises:
        ValueError: an empty grid or a non-positive value.
    """
    new = {name: _canonical(v) for name, v in grids.items()}
    path = ledger_path(cache_root, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(path):
        entries = read_ledger(cache_root, split)
        seen = {(e["study"], e["grid"], tuple(e["values"])) for e in entries}
        for name, vals in new.items():
            if (study, name, tuple(vals)) not in seen:
                entries.append({"study": study, "grid": name, "values": vals, "time": time.time()})
        rec = split.to_dict() if hasattr(split, "to_dict") else dict(split)
        atomic_write_json(path, {"split": rec, "entries": entries})
    return {name: tuple(sorted({v for e in entries if e["grid"] == name for v in e["values"]})) for name in new}
