"""Strict JSON and content hashes, for your own scripts and notebooks: the helpers the studies write their results
and key their caches with (public names; the implementation lives in the private plumbing module).

* :func:`dumps_strict`, :func:`atomic_write_json`: JSON with ``allow_nan=False`` (a non-finite float becomes
  ``null``; numpy and torch scalars, tuples, paths and dataclasses become plain JSON), written atomically (a killed
  process leaves the old file or the new one, never half of one).
* :func:`read_json`: a strict reader (``.gz`` files too); a damaged file raises :class:`DamagedFileError`, a
  ``ValueError`` naming the file and the fix.
* :func:`json_sha256` (over the canonical JSON text: sorted keys, no whitespace), :func:`bytes_sha256`,
  :func:`file_sha256`, :func:`arrays_sha256` (dtype, shape and bytes of each array): keys for caches of computed
  results, e.g. ``json_sha256({"config": cfg.to_dict(), "code": code_fingerprint()})[:16]``.

Example::

    from kdbounds.io import atomic_write_json, json_sha256, read_json

    key = json_sha256({"lr": 0.1, "epochs": 3})[:16]
    atomic_write_json(f"results/{key}.json", {"accuracy": 0.91, "loss": float("nan")})  # nan -> null
    read_json(f"results/{key}.json")["loss"]  # None
"""

from __future__ import annotations

from ._io import (DamagedFileError, arrays_sha256, atomic_write_json, bytes_sha256, canonical_json, dumps_strict,
                  file_sha256, json_sha256, read_json, to_jsonable)

__all__ = ["DamagedFileError", "arrays_sha256", "atomic_write_json", "bytes_sha256", "canonical_json", "dumps_strict",
           "file_sha256", "json_sha256", "read_json", "to_jsonable"]
