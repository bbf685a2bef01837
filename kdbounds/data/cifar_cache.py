"""The decoded-array cache of CIFAR sources: ``.npz`` files keyed by the source's identity, written
atomically under an advisory lock so parallel workers decode a source once."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path

import numpy as np

from .._io import atomic_write_bytes

from .cifar_decode import _validate
from .cifar_sources import _CACHE_VERSION, CifarSource

# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """Directory of decoded-array caches: ``$KDBOUNDS_CACHE/data``, else ``~/.cache/kdbounds/data``.

    Returns:
        The cache directory (not created here).
    """
    base = os.environ.get("KDBOUNDS_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "kdbounds") / "data"


def _source_key(src: CifarSource) -> str:
    """Hash of the source identity: absolute path, size and mtime (of every file for folders)."""
    h = hashlib.sha1()
    h.update(f"{_CACHE_VERSION}|{src.name}|{src.kind}|{src.path.resolve()}".encode())
    if src.path.is_file():
        st = src.path.stat()
        h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        for dirpath, dirnames, filenames in os.walk(src.path):
            dirnames.sort()
            for f in sorted(filenames):
                st = os.stat(os.path.join(dirpath, f))
                rel = os.path.relpath(os.path.join(dirpath, f), src.path)
                h.update(f"|{rel}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _cache_path(src: CifarSource, split: str, key: str) -> Path:
    return cache_dir() / f"{src.name}-{split}-{src.kind}-{key}.npz"


def _content_sha256(x: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the decoded arrays (dtype, shape and bytes of images then labels)."""
    h = hashlib.sha256()
    for a in (x, y):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _atomic_write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write the arrays and, when they are ``images``/``labels``, their content hash (``sha256``)."""
    if "images" in arrays and "labels" in arrays:
        arrays["sha256"] = np.array(_content_sha256(arrays["images"], arrays["labels"]))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def _cache_lock(path: Path):
    """Exclusive advisory lock (POSIX ``flock``) so parallel test workers decode a source once.

    Best effort: without ``fcntl`` or a writable cache directory it does nothing.
    """
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+b")
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        f.close()  # closing releases the lock


def _read_cache(path: Path, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Cached ``(images, labels)`` or ``None`` if absent, unreadable, malformed or not matching its
    content hash (a well-formed file with other contents; then it is rebuilt from the source)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = np.ascontiguousarray(z["images"]), np.ascontiguousarray(z["labels"])
            stored = str(z["sha256"]) if "sha256" in z.files else None
        if stored != _content_sha256(x, y):
            return None
        _validate(name, str(path), x, y)
    except Exception:  # unreadable cache: rebuild from the (real) source
        return None
    return x, y


