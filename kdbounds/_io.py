"""Private file plumbing, written once: atomic writes, hashing, strict JSON.

Policy for non-finite numbers (one policy for the whole project): :func:`to_jsonable` turns
``nan``/``inf``/``-inf`` into ``None`` (JSON ``null``); a record that needs to say *why* a value is
missing carries its own ``*_reason`` field. :func:`dumps_strict` refuses anything that would make
invalid JSON (``allow_nan=False``), so a writer can never emit ``NaN`` or ``Infinity``.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "DamagedFileError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_write_csv",
    "dumps_strict",
    "file_sha256",
    "bytes_sha256",
    "arrays_sha256",
    "canonical_json",
    "json_sha256",
    "read_json",
    "to_jsonable",
    "with_reasons",
    "float_field",
    "marked_block",
    "replace_marked_block",
]


def to_jsonable(x: Any) -> Any:
    """Plain-Python, strictly JSON-serialisable copy of ``x``.

    Dataclasses (via ``to_dict()`` when they have one), mappings, sequences, numpy and torch scalars /
    arrays, enums and paths are converted recursively; non-finite floats become ``None``.
    """
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, enum.Enum):
        return to_jsonable(x.value)
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if hasattr(x, "to_dict") and callable(x.to_dict) and not isinstance(x, type):
        return to_jsonable(x.to_dict())
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, Mapping):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    mod = type(x).__module__.split(".")[0]
    if mod == "numpy":
        import numpy as np

        if isinstance(x, np.ndarray):
            return to_jsonable(x.tolist())
        if isinstance(x, np.generic):
            return to_jsonable(x.item())
    if mod == "torch":
        return to_jsonable(x.detach().cpu().tolist())
    if isinstance(x, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in x]
    raise TypeError(f"cannot write {type(x).__name__} as JSON; convert it to numbers/strings first")


def with_reasons(record: Mapping[str, Any], why: str = "") -> dict[str, Any]:
    """Copy of a flat ``record`` under the one non-finite policy, saying why each value is missing.

    Every non-finite float (or numpy float) ``record[k]`` becomes ``None`` and gains a field
    ``k + "_reason"``: ``"+inf"``, ``"-inf"`` or ``"nan"``, followed by ``": " + why`` when ``why`` is
    given. Other values are copied unchanged; :func:`float_field` reads the float back.

    Args:
        record: a flat mapping of field names to values.
        why: the cause shared by the record's non-finite values (e.g. ``"n = 1"``), or ``""``.

    Returns:
        A new dict, in the order of ``record``, with each ``*_reason`` right after its field.
    """
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, float) or (type(v).__module__ == "numpy" and "float" in type(v).__name__):
            v = float(v)
            if not math.isfinite(v):
                tag = "nan" if math.isnan(v) else ("+inf" if v > 0 else "-inf")
                out[k] = None
                out[f"{k}_reason"] = f"{tag}: {why}" if why else tag
                continue
        out[k] = v
    return out


def float_field(record: Mapping[str, Any], key: str) -> float:
    """The float ``record[key]`` written by :func:`with_reasons` (``null`` -> ``±inf`` or ``nan``).

    Args:
        record: a mapping read from JSON.
        key: the field to read.

    Returns:
        ``float(record[key])``; for ``None`` (or a missing key), ``+inf``/``-inf`` when
        ``record[key + "_reason"]`` starts with that tag, else ``nan``.
    """
    v = record.get(key)
    if v is not None:
        return float(v)
    reason = str(record.get(f"{key}_reason") or "")
    if reason.startswith("+inf"):
        return math.inf
    if reason.startswith("-inf"):
        return -math.inf
    return math.nan


def dumps_strict(obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """``json.dumps`` of :func:`to_jsonable(obj) <to_jsonable>` with ``allow_nan=False`` (strict JSON)."""
    return json.dumps(to_jsonable(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)


def canonical_json(obj: Any) -> str:
    """The one canonical JSON text of ``obj``, the form every JSON hash of the project is taken over.

    Keys sorted, no whitespace (``","`` and ``":"`` separators), non-ASCII escaped, strict (``obj`` goes
    through :func:`to_jsonable`, so non-finite floats are ``null`` and numpy/torch scalars, tuples, paths and
    dataclasses are plain JSON). For plain JSON data (str keys, finite floats) it is byte for byte
    ``json.dumps(obj, sort_keys=True, separators=(",", ":"))``, the serialiser the run cache's ids were first
    computed with, so those ids stay where they are (``tests/runs/test_run_ids_pinned.py``).

    Args:
        obj: anything :func:`to_jsonable` accepts.

    Returns:
        The JSON text.

    Raises:
        TypeError: a value that has no JSON form.
    """
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def json_sha256(obj: Any) -> str:
    """SHA-256 hex digest of :func:`canonical_json(obj) <canonical_json>` (UTF-8; the text is ASCII).

    Args:
        obj: anything :func:`to_jsonable` accepts.

    Returns:
        64 hex digits.

    Raises:
        TypeError: a value that has no JSON form.
    """
    return bytes_sha256(canonical_json(obj).encode())


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name!r}")


class DamagedFileError(ValueError):
    """A file that cannot be read back (not UTF-8, not strict JSON, unreadable); the message names it and the fix."""


def read_json(path: str | os.PathLike) -> Any:
    """Parse a strict JSON file (gzip-compressed when its name ends in ``.gz``, as committed large results are); an
    unreadable, truncated or non-strict file raises ``DamagedFileError`` (a ``ValueError``) naming the file and the fix."""
    p = Path(path)
    try:
        data = p.read_bytes()
        if p.suffix == ".gz":
            import gzip

            data = gzip.decompress(data)
        text = data.decode("utf-8")
    except OSError as e:  # gzip.BadGzipFile and EOFError of a truncated archive included (EOFError below)
        raise DamagedFileError(f"cannot read {p}: {e.strerror or e}") from None
    except EOFError:
        raise DamagedFileError(f"{p} is a truncated gzip file; it is damaged — delete it and write it again") from None
    except UnicodeDecodeError as e:
        raise DamagedFileError(f"{p} is not UTF-8 text (byte {e.start}: {e.reason}); it is damaged — "
                         f"delete it (or its run folder) and run again") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise DamagedFileError(f"{p} is not valid JSON ({e}); it may be truncated by a killed run — "
                         f"delete it (or its run folder) and run again") from None


def atomic_write_bytes(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, ``os.replace``.

    A reader never sees a half-written file; a killed writer leaves the old file (or none) behind.
    The parent folder is created when missing. An ``OSError`` of the write (a full disk, a file-size
    limit) is raised with ``path`` as its ``filename``, so the one line reporting it names the file.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            # a full disk or a file-size limit fails in write()/fsync(), which name no file: name it here
            raise OSError(e.errno, e.strerror or os.strerror(e.errno), str(p)) from e
        raise
    return p


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def marked_block(text: str, name: str) -> str:
    """The text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` (stripped): a generated block of a page.

    Args:
        text: the page (e.g. README.md).
        name: the block's name.

    Returns:
        The block.

    Raises:
        ValueError: the page lacks either marker (the message names them).
    """
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        raise ValueError(f"name: the page has no block {begin} ... {end}; add both markers where it goes")
    return text[text.index(begin) + len(begin):text.index(end)].strip()


def replace_marked_block(path: str | os.PathLike, name: str, block: str) -> Path:
    """Replace the block ``name`` of the page at ``path`` (see :func:`marked_block`) by ``block``, atomically.

    Args:
        path: the page.
        name: the block's name.
        block: the new text.

    Returns:
        ``path``.
    """
    text = Path(path).read_text(encoding="utf-8")
    marked_block(text, name)  # both markers present
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    i, j = text.index(begin) + len(begin), text.index(end)
    return atomic_write_text(path, text[:i] + "\n" + block.strip() + "\n" + text[j:])


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2,
                      sort_keys: bool = False) -> Path:
    """Strict JSON (:func:`dumps_strict`) written atomically; non-finite floats become ``null``."""
    return atomic_write_text(path, dumps_strict(obj, indent=indent, sort_keys=sort_keys) + "\n")


def atomic_write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]],
                     columns: Iterable[str] | None = None) -> Path:
    """CSV of ``rows`` (columns in first-seen order unless given), written atomically."""
    import csv
    import io

    cols: list[str] = list(columns) if columns is not None else []
    if columns is None:
        for r in rows:
            cols.extend(k for k in r if k not in cols)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in to_jsonable(dict(r)).items()})
    return atomic_write_text(path, buf.getvalue())


def bytes_sha256(data: bytes) -> str:
    """SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def arrays_sha256(arrays: Sequence[Any]) -> str:
    """SHA-256 hex digest over the dtype, shape and bytes of each array (numpy arrays or torch tensors, which
    are copied to the CPU), in order: the fingerprint of a data set (e.g. ``(x, y)``).

    Args:
        arrays: the arrays.

    Returns:
        64 hex digits.
    """
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        arr = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
