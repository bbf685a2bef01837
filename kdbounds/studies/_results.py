"""A study's ``results.json`` read back under today's names: the one place a renamed config key is upgraded.

A results file keeps the names of the code that wrote it (the runs under ``reports/`` are committed and never
rewritten). Code that reads one back — to compare the configs of runs before merging them
(:func:`kdbounds.studies.certify_students.merge_results`), to render a report from it
(``experiments/report_scale.py``) — reads it with :func:`read_results`, or passes its ``config``
through :func:`upgrade_config`, and so sees one name per field whichever version wrote it.

Renamed so far (:data:`RENAMED`): ``kd_T`` -> ``T``, the KD temperature of ``certify_students`` and
``certify_flatness`` (issue 22: the KD temperature is ``T`` everywhere a user types it, the name of the
``kd``/``pbkd`` hyper-parameter). A rename of a config field adds its pair there.
"""

from __future__ import annotations

import os
from types import MappingProxyType
from typing import Any, Mapping

from .._io import read_json

__all__ = ["RENAMED", "upgrade_config", "read_results"]

#: old config key -> today's key
RENAMED: Mapping[str, str] = MappingProxyType({"kd_T": "T"})


def upgrade_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A results config with every old key (:data:`RENAMED`) under its new name, in the same place.

    Args:
        config: the ``config`` of a ``results.json`` (any version); not modified.

    Returns:
        A new dict: the same keys and values, old keys renamed (a config already under today's names comes
        back equal).

    Raises:
        TypeError: ``config`` is not a mapping.
        ValueError: it holds an old key and its new name both (written by no version: a hand-edited file).
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config: expected the mapping of a results.json's 'config', got {type(config).__name__}")
    both = sorted(old for old, new in RENAMED.items() if old in config and new in config)
    if both:
        raise ValueError(f"config: holds both {both[0]!r} and its new name {RENAMED[both[0]]!r}; keep one "
                         f"({RENAMED[both[0]]!r})")
    return {RENAMED.get(k, k): v for k, v in config.items()}


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """A study's ``results.json`` with its ``config`` upgraded (:func:`upgrade_config`).

    Args:
        path: the file.

    Returns:
        The parsed results (strict JSON); ``config``, where there is one, under today's names.

    Raises:
        ValueError: the file cannot be read or is not strict JSON (the message names it and the fix), or its
            config holds an old key and its new name both.
    """
    res = read_json(path)
    if isinstance(res, dict) and isinstance(res.get("config"), Mapping):
        res["config"] = upgrade_config(res["config"])
    return res
