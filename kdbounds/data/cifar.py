"""CIFAR-10 / CIFAR-100 loading: one data root, every common on-disk layout, a decoded-array cache.

``load_cifar(name, root=None, split="train")`` returns ``(images, labels)`` with
``images`` a ``uint8`` array of shape ``(N, 32, 32, 3)`` (HWC, RGB) and ``labels`` an
``int64`` array of shape ``(N,)`` with values in ``[0, num_classes)``.

Accepted layouts inside a data root (searched in this order):

1. ``cifar-10-batches-py/`` (pickle batches ``data_batch_1..5`` and ``test_batch``) or
   ``cifar-100-python/`` (pickles ``train`` and ``test``, fine labels);
2. ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` (the official archives);
3. image folders ``<root>/<dataset>/{train,test}/<class>/*.{jpg,jpeg,png}`` where the folder
   name identifies the data set (``cifar10-jpg``, ``cifar-100-png``, ...);
4. tar archives (``.tar``, ``.tar.gz``, ``.tgz``) of such image folders (``cifar10-jpg.tar.gz``).

For image folders the label of a class is its rank among the class folder names in
alphabetical order (CIFAR-10's and CIFAR-100's official label orders are alphabetical);
all-numeric class folder names are ordered numerically. Files within a class are ordered by a
natural sort of their names.

Decoded arrays are cached as ``.npz`` in ``$KDBOUNDS_CACHE/data`` (default
``~/.cache/kdbounds/data``), keyed by the source's absolute path, size and modification time;
writes are atomic (temporary file + ``os.replace``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import re
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .._io import atomic_write_bytes

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "CIFAR_URLS",
    "CIFAR_MD5",
    "DATASETS",
    "SPLITS",
    "ChecksumError",
    "CorruptArchiveError",
    "DataNotFoundError",
    "CifarSource",
    "cache_dir",
    "candidate_roots",
    "download_cifar",
    "find_cifar",
    "load_cifar",
    "num_classes",
]

DATASETS = ("cifar10", "cifar100")
SPLITS = ("train", "test")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
_CACHE_VERSION = "1"

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

CIFAR_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}
CIFAR_MD5 = {
    "cifar10": "c58f30108f718f92721af3b95e74349a",
    "cifar100": "eb9058c3a382ffc7106e4002c42a8d85",
}
_ARCHIVE_NAME = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
_BATCH_DIR = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
_CLASSES = {"cifar10": CIFAR10_CLASSES, "cifar100": CIFAR100_CLASSES}

_LAYOUTS_HELP = (
    "Accepted layouts inside a data root:\n"
    "  cifar-10-batches-py/          (extracted cifar-10-python.tar.gz: data_batch_1..5, test_batch)\n"
    "  cifar-10-python.tar.gz        (official CIFAR-10 python archive)\n"
    "  cifar-100-python/             (extracted cifar-100-python.tar.gz: train, test)\n"
    "  cifar-100-python.tar.gz       (official CIFAR-100 python archive)\n"
    "  <name>/train/<class>/*.jpg    image folders (JPEG/PNG, also test/), <name> containing\n"
    "                                'cifar10' / 'cifar-10' (or 'cifar100' / 'cifar-100'), e.g. cifar10-jpg/\n"
    "  <name>.tar.gz / <name>.tar    a tar archive of such an image folder, e.g. cifar10-jpg.tar.gz\n"
    "Fix: set KDBOUNDS_DATA=/path/to/root (or pass root=...), or call with download=True "
    "(or kdbounds.data.download_cifar(name, root)) when a network is available."
)


class DataNotFoundError(FileNotFoundError):
    """No CIFAR data in any searched place (message lists places, layouts and the fix)."""


class CorruptArchiveError(ValueError):
    """A CIFAR source file exists but cannot be read (truncated, bad pickle, bad image...)."""


class ChecksumError(ValueError):
    """A downloaded file does not match its expected checksum (nothing is kept)."""


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name.lower().replace("-", "") not in DATASETS:
        raise ValueError(f"name={name!r} is not a known data set; valid names: {', '.join(DATASETS)}")
    return name.lower().replace("-", "")


def _check_split(split: object) -> str:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not valid; valid splits: {', '.join(SPLITS)}")
    return split  # type: ignore[return-value]


def num_classes(name: str) -> int:
    """Number of classes of ``name`` (10 for cifar10, 100 for cifar100)."""
    return _NUM_CLASSES[_check_name(name)]


# --------------------------------------------------------------------------------------------
# roots and source discovery
# --------------------------------------------------------------------------------------------

def candidate_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """Data roots searched, in order.

    An explicit ``root`` is the only place searched (no silent fallback). Otherwise:
    ``$KDBOUNDS_DATA``, ``~/.cache/kdbounds/data``, ``~/data``, ``./data``, ``/data``,
    ``../shared/data`` (the last three relative to the current directory where relative).
    """
    if root is not None:
        return [Path(root).expanduser()]
    places: list[Path] = []
    env = os.environ.get("KDBOUNDS_DATA")
    if env:
        places.append(Path(env).expanduser())
    home = Path.home()
    places += [
        home / ".cache" / "kdbounds" / "data",
        home / "data",
        Path.cwd() / "data",
        Path("/data"),
        Path.cwd().parent / "shared" / "data",
    ]
    out: list[Path] = []
    for p in places:
        if p not in out:
            out.append(p)
    return out


@dataclass(frozen=True)
class CifarSource:
    """A located CIFAR source: ``kind`` in {"batches_dir", "batches_tar", "image_dir", "image_tar"}."""

    name: str
    kind: str
    path: Path

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "path": str(self.path)}


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def _names_dataset(filename: str, name: str) -> bool:
    """True if ``filename`` names ``name`` (cifar10 must not match cifar100)."""
    n = _norm(filename)
    if name == "cifar10":
        return "cifar10" in n and "cifar100" not in n
    return "cifar100" in n


def _is_tar_name(p: Path) -> bool:
    s = p.name.lower()
    return s.endswith((".tar", ".tar.gz", ".tgz"))


def _is_image_dir(p: Path) -> bool:
    return (p / "train").is_dir() and (p / "test").is_dir()


def _sources_in(root: Path, name: str) -> list[CifarSource]:
    """All sources for ``name`` directly in ``root`` (or ``root`` itself), in preference order."""
    found: list[CifarSource] = []
    if root.is_file():
        if root.name == _ARCHIVE_NAME[name]:
            found.append(CifarSource(name, "batches_tar", root))
        elif _is_tar_name(root) and root.name not in _ARCHIVE_NAME.values():
            found.append(CifarSource(name, "image_tar", root))
        return found
    if not root.is_dir():
        return found
    # root is itself an extracted batches folder or an image folder
    if root.name == _BATCH_DIR[name]:
        found.append(CifarSource(name, "batches_dir", root))
    bdir = root / _BATCH_DIR[name]
    if bdir.is_dir():
        found.append(CifarSource(name, "batches_dir", bdir))
    arch = root / _ARCHIVE_NAME[name]
    if arch.is_file():
        found.append(CifarSource(name, "batches_tar", arch))
    if _is_image_dir(root) and _names_dataset(root.name, name):
        found.append(CifarSource(name, "image_dir", root))
    try:
        entries = sorted(root.iterdir())
    except OSError:
        entries = []
    for e in entries:
        if e.is_dir() and e.name != _BATCH_DIR[name] and _names_dataset(e.name, name) and _is_image_dir(e):
            found.append(CifarSource(name, "image_dir", e))
    for e in entries:
        if (e.is_file() and _is_tar_name(e) and e.name != _ARCHIVE_NAME[name]
                and not e.name.endswith("-python.tar.gz") and _names_dataset(e.name, name)):
            found.append(CifarSource(name, "image_tar", e))
    return found


def find_cifar(name: str, root: str | os.PathLike | None = None) -> CifarSource:
    """Locate ``name`` in the first root of :func:`candidate_roots` that holds it.

    Raises :class:`DataNotFoundError` listing every place searched, the accepted layouts and the fix.
    """
    name = _check_name(name)
    roots = candidate_roots(root)
    for r in roots:
        srcs = _sources_in(r, name)
        if srcs:
            return srcs[0]
    searched = "\n".join(f"  {p}{'' if p.exists() else '  (does not exist)'}" for p in roots)
    how = ("root=" + repr(str(root)) + " was given, so only it was searched.\n") if root is not None else ""
    raise DataNotFoundError(
        f"No {name} data found. Places searched:\n{searched}\n{how}{_LAYOUTS_HELP}"
    )


# --------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """Directory of decoded-array caches: ``$KDBOUNDS_CACHE/data``, else ``~/.cache/kdbounds/data``."""
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


def _atomic_write_npz(path: Path, **arrays: np.ndarray) -> None:
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
    """Cached ``(images, labels)`` or ``None`` if absent, unreadable or malformed (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = np.ascontiguousarray(z["images"]), np.ascontiguousarray(z["labels"])
        _validate(name, str(path), x, y)
    except Exception:  # unreadable cache: rebuild from the (real) source
        return None
    return x, y


# --------------------------------------------------------------------------------------------
# decoders
# --------------------------------------------------------------------------------------------

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only reconstructs numpy arrays and builtin containers (no arbitrary code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
        ("numpy", "dtype"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "object"),
        ("builtins", "object"),
    }

    def find_class(self, module: str, name: str):  # noqa: D401
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}")
        return super().find_class(module, name)


def _unpickle(data: bytes) -> dict:
    obj = _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"expected a dict, got {type(obj).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _batch_arrays(d: dict, name: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(images NHWC uint8, labels int64) from one unpickled batch dict (rows are R,G,B planes)."""
    label_key = "labels" if name == "cifar10" else "fine_labels"
    if "data" not in d or label_key not in d:
        raise CorruptArchiveError(f"{what}: batch lacks keys 'data'/'{label_key}' (has {sorted(d)})")
    data = np.asarray(d["data"])
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise CorruptArchiveError(f"{what}: data has shape {data.shape}, labels {labels.shape}; "
                                  "expected (N, 3072) and (N,)")
    imgs = data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(imgs), labels


def _batch_files(name: str, split: str) -> list[str]:
    if name == "cifar10":
        return [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    return [split]


def _decode_batches(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _load_batches_dir(src: CifarSource) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for split in SPLITS:
        parts = []
        for fn in _batch_files(src.name, split):
            fp = src.path / fn
            if not fp.is_file():
                raise CorruptArchiveError(f"{src.path}: missing batch file {fn!r} "
                                          f"(expected {_batch_files(src.name, split)}); re-extract the archive")
            try:
                d = _unpickle(fp.read_bytes())
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                    IndexError, KeyError) as e:
                raise CorruptArchiveError(f"{fp}: cannot unpickle CIFAR batch ({type(e).__name__}: {e}); "
                                          "the file is corrupt, re-extract or re-download it") from e
            parts.append(_batch_arrays(d, src.name, str(fp)))
        out[split] = _decode_batches(parts)
    return out


_TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


_IN_MEMORY_LIMIT = 2 << 30  # archives up to 2 GiB are decompressed in memory (much faster than tarfile streaming)


def _decompress_all(path: Path) -> bytes:
    """Whole archive, decompressed (gzip / bzip2 / xz by magic number, else raw tar)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        import gzip

        return gzip.decompress(raw)
    if raw[:3] == b"BZh":
        import bz2

        return bz2.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        import lzma

        return lzma.decompress(raw)
    return raw


_ZERO_BLOCK = bytes(512)
_PLAIN_TYPES = (b"0", b"\0", b"7")  # regular files
_SKIP_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, directories, fifos


def _fast_tar_index(data: bytes) -> list[tuple[str, int, int]] | None:
    """``(name, data offset, size)`` of the regular files of an uncompressed ustar / GNU tar.

    A minimal header walk (name at 0..100, size (octal) at 124..136, type at 156, POSIX prefix at
    345..500), ~10x faster than :mod:`tarfile` on 60k tiny members. Header checksums are verified
    (vectorised). Returns ``None`` (caller falls back to :mod:`tarfile`) on anything it does not handle:
    pax / GNU long-name headers, sparse files, base-256 sizes, a missing end-of-archive marker.
    """
    out: list[tuple[str, int, int]] = []
    headers: list[int] = []
    stored: list[int] = []
    off, n = 0, len(data)
    while True:
        if off + 512 > n:
            return None
        hdr = data[off:off + 512]
        if hdr == _ZERO_BLOCK:
            break
        typ = hdr[156:157]
        try:
            size = int(hdr[124:136].rstrip(b"\0 ").strip() or b"0", 8)
            stored.append(int(hdr[148:156].rstrip(b"\0 ").strip() or b"0", 8))
        except ValueError:
            return None
        name = hdr[:100].split(b"\0", 1)[0]
        if hdr[257:263] == b"ustar\0":
            prefix = hdr[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        if typ in _PLAIN_TYPES:
            if off + 512 + size > n:
                raise EOFError(f"member {name!r} extends past the end of the archive")
            out.append((name.decode("utf-8", "surrogateescape"), off + 512, size))
        elif typ not in _SKIP_TYPES:
            return None
        headers.append(off)
        off += 512 + -(-size // 512) * 512
    if headers:
        arr = np.frombuffer(data, dtype=np.uint8, count=(n // 512) * 512).reshape(-1, 512)
        blocks = arr[np.asarray(headers, dtype=np.int64) // 512]  # headers are 512-aligned
        sums = blocks.sum(1, dtype=np.int64) - blocks[:, 148:156].sum(1, dtype=np.int64) + 8 * 32
        if not np.array_equal(sums, np.asarray(stored, dtype=np.int64)):
            bad = headers[int(np.flatnonzero(sums != np.asarray(stored))[0])]
            raise tarfile.ReadError(f"bad header checksum at byte {bad}")
    return out


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member name, content)`` for every regular file of a (compressed) tar archive.

    Read errors (truncated or corrupt compression, bad tar headers) become
    :class:`CorruptArchiveError` naming the file.
    """
    try:
        if path.stat().st_size <= _IN_MEMORY_LIMIT:
            data = _decompress_all(path)
            buf = memoryview(data)
            index = _fast_tar_index(data)
            if index is not None:
                for name, start, size in index:
                    yield name, bytes(buf[start:start + size])
                return
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
                for m in tf:
                    if m.isfile():
                        if m.offset_data + m.size > len(data):
                            raise EOFError(f"member {m.name!r} extends past the end of the archive")
                        yield m.name, bytes(buf[m.offset_data:m.offset_data + m.size])
        else:  # pragma: no cover - only for very large archives
            with tarfile.open(path, mode="r|*") as tf:
                for m in tf:
                    if m.isfile():
                        yield m.name, tf.extractfile(m).read()  # type: ignore[union-attr]
    except _TAR_ERRORS as e:
        raise CorruptArchiveError(f"{path}: cannot read archive ({type(e).__name__}: {e}); the file is "
                                  "truncated or corrupt — delete it and download/copy it again") from e


def _load_batches_tar(src: CifarSource) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    wanted = {fn: split for split in SPLITS for fn in _batch_files(src.name, split)}
    got: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for mname, content in _iter_tar(src.path):
        base = mname.rsplit("/", 1)[-1]
        if base in wanted and base not in got:
            what = f"{src.path}::{mname}"
            try:
                d = _unpickle(content)
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                    IndexError, KeyError) as e:
                raise CorruptArchiveError(f"{what}: cannot unpickle CIFAR batch ({type(e).__name__}: {e}); "
                                          "the archive is corrupt — delete it and download it again") from e
            got[base] = _batch_arrays(d, src.name, what)
    missing = [fn for fn in wanted if fn not in got]
    if missing:
        raise CorruptArchiveError(f"{src.path}: archive lacks batch files {missing}; it is incomplete or not "
                                  f"the official {_ARCHIVE_NAME[src.name]}")
    return {split: _decode_batches([got[fn] for fn in _batch_files(src.name, split)]) for split in SPLITS}


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def _class_order(class_names: Iterable[str]) -> list[str]:
    names = sorted(set(class_names))
    if names and all(n.isdigit() for n in names):
        return sorted(names, key=int)
    return names


def _decode_image(data: bytes, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise CorruptArchiveError(f"{what}: cannot decode image ({type(e).__name__}: {e})") from e
    if arr.shape != (32, 32, 3):
        raise CorruptArchiveError(f"{what}: image has shape {arr.shape}, CIFAR images are 32x32 RGB")
    return arr


def _assemble_images(name: str, where: str,
                     items: dict[str, list[tuple[str, str, np.ndarray]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """items[split] = [(class, filename, HWC array)] -> ordered arrays and labels per split."""
    for split in SPLITS:
        if not items.get(split):
            raise CorruptArchiveError(f"{where}: no images under {split}/<class>/ (need both train/ and test/)")
    classes = _class_order(c for split in SPLITS for c, _, _ in items[split])
    k = _NUM_CLASSES[name]
    if len(classes) != k:
        raise CorruptArchiveError(f"{where}: found {len(classes)} class folders {classes[:12]}..., "
                                  f"{name} has {k} classes")
    for split in SPLITS:
        present = sorted({c for c, _, _ in items[split]})
        if len(present) != k:
            missing = sorted(set(classes) - set(present))
            raise CorruptArchiveError(f"{where}: split {split!r} lacks class folders {missing}")
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for split in SPLITS:
        rows = sorted(items[split], key=lambda t: (index[t[0]], _natural_key(t[1])))
        imgs = np.stack([r[2] for r in rows]).astype(np.uint8, copy=False)
        labels = np.fromiter((index[r[0]] for r in rows), dtype=np.int64, count=len(rows))
        out[split] = (imgs, labels)
    return out


def _parse_image_member(relpath: str) -> tuple[str, str, str, str] | None:
    """``.../<split>/<class>/<file>.jpg`` -> (prefix, split, class, file); None if not an image member."""
    parts = [p for p in relpath.replace("\\", "/").split("/") if p not in ("", ".")]
    if len(parts) < 3 or not parts[-1].lower().endswith(IMAGE_EXTS):
        return None
    if parts[-1].startswith("._") or "__MACOSX" in parts:
        return None
    split, cls, fn = parts[-3], parts[-2], parts[-1]
    if split not in SPLITS:
        return None
    return "/".join(parts[:-3]), split, cls, fn


def _load_image_tar(src: CifarSource) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    items: dict[str, list[tuple[str, str, np.ndarray]]] = {s: [] for s in SPLITS}
    prefixes: set[str] = set()
    for mname, content in _iter_tar(src.path):
        parsed = _parse_image_member(mname)
        if parsed is None:
            continue
        prefix, split, cls, fn = parsed
        prefixes.add(prefix)
        items[split].append((cls, fn, _decode_image(content, f"{src.path}::{mname}")))
    if len(prefixes) > 1:
        raise CorruptArchiveError(f"{src.path}: holds several image data sets {sorted(prefixes)}; keep one per archive")
    return _assemble_images(src.name, str(src.path), items)


def _load_image_dir(src: CifarSource) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    items: dict[str, list[tuple[str, str, np.ndarray]]] = {s: [] for s in SPLITS}
    for split in SPLITS:
        sdir = src.path / split
        for cdir in sorted(p for p in sdir.iterdir() if p.is_dir()):
            for f in sorted(cdir.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTS and not f.name.startswith("._"):
                    items[split].append((cdir.name, f.name, _decode_image(f.read_bytes(), str(f))))
    return _assemble_images(src.name, str(src.path), items)


_DECODERS = {
    "batches_dir": _load_batches_dir,
    "batches_tar": _load_batches_tar,
    "image_dir": _load_image_dir,
    "image_tar": _load_image_tar,
}


def _validate(name: str, where: str, imgs: np.ndarray, labels: np.ndarray) -> None:
    k = _NUM_CLASSES[name]
    if imgs.dtype != np.uint8 or imgs.ndim != 4 or imgs.shape[1:] != (32, 32, 3):
        raise CorruptArchiveError(f"{where}: decoded images have dtype {imgs.dtype}, shape {imgs.shape}")
    if labels.shape != (imgs.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() >= k)):
        raise CorruptArchiveError(f"{where}: labels out of range [0, {k}) or misaligned with images "
                                  f"(is this really {name}?)")


def decode_source(src: CifarSource) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode both splits of ``src`` (no cache): {split: (images uint8 NHWC, labels int64)}."""
    out = _DECODERS[src.kind](src)
    for split, (x, y) in out.items():
        _validate(src.name, f"{src.path} [{split}]", x, y)
    return out


# --------------------------------------------------------------------------------------------
# public loader
# --------------------------------------------------------------------------------------------

def load_cifar(name: str, root: str | os.PathLike | None = None, split: str = "train",
               download: bool = False, cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load a CIFAR split as ``(images, labels)``.

    ``images``: ``uint8`` array ``(N, 32, 32, 3)`` (RGB, HWC); ``labels``: ``int64`` ``(N,)``.
    ``name`` in {"cifar10", "cifar100"}; ``split`` in {"train", "test"}. Root resolution: ``root``
    (only it), else ``$KDBOUNDS_DATA`` then standard places (:func:`candidate_roots`). With
    ``download=True`` and nothing found, the official python archive is downloaded (checksum-verified)
    into ``root`` / ``$KDBOUNDS_DATA`` / ``~/.cache/kdbounds/data``. With ``cache=True`` decoded arrays
    are read from / written to :func:`cache_dir` (both splits are cached on the first decode).
    """
    name = _check_name(name)
    split = _check_split(split)
    try:
        src = find_cifar(name, root)
    except DataNotFoundError:
        if not download:
            raise
        download_cifar(name, _download_root(root))
        src = find_cifar(name, _download_root(root))
    if not cache:
        return decode_source(src)[split]
    key = _source_key(src)
    hit = _read_cache(_cache_path(src, split, key), src.name)
    if hit is not None:
        return hit
    with _cache_lock(cache_dir() / f"{src.name}-{src.kind}-{key}.lock"):
        hit = _read_cache(_cache_path(src, split, key), src.name)  # another process may have decoded meanwhile
        if hit is not None:
            return hit
        decoded = decode_source(src)
        for s, (x, y) in decoded.items():
            try:
                _atomic_write_npz(_cache_path(src, s, key), images=x, labels=y)
            except OSError:
                pass  # an unwritable cache only costs time; the data returned is the decoded data
    return decoded[split]


# --------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------

def _download_root(root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("KDBOUNDS_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "kdbounds" / "data"


def download_cifar(name: str, root: str | os.PathLike | None = None, url: str | None = None,
                   sha256: str | None = None, md5: str | None = None, timeout: float = 60.0,
                   progress: bool = False) -> Path:
    """Download the python archive of ``name`` into ``root`` and verify it; return its path.

    The file is streamed to a temporary file in ``root``, its digest checked (``sha256`` if given,
    else ``md5`` if given, else the official MD5 in :data:`CIFAR_MD5`), and only then renamed
    atomically to ``root/cifar-10-python.tar.gz`` (or ``cifar-100-python.tar.gz``). On a mismatch
    the temporary file is removed and :class:`ChecksumError` is raised. If the target already exists
    and verifies, nothing is downloaded.
    """
    name = _check_name(name)
    dest_dir = _download_root(root)
    url = url or CIFAR_URLS[name]
    if sha256 is not None:
        algo, expected = "sha256", sha256.lower()
    else:
        algo, expected = "md5", (md5 or CIFAR_MD5[name]).lower()
    dest = dest_dir / _ARCHIVE_NAME[name]
    if dest.is_file() and _file_digest(dest, algo) == expected:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest_dir)
    h = _hasher(algo)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as r:
                    total = int(r.headers.get("Content-Length") or 0) or None
                    bar = _progress(total, progress, dest.name)
                    while True:
                        chunk = r.read(1 << 20)
                        if not chunk:
                            break
                        f.write(chunk)
                        h.update(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                    if bar is not None:
                        bar.close()
            except (urllib.error.URLError, OSError, ValueError) as e:
                raise ConnectionError(f"download of {name} from {url} failed ({type(e).__name__}: {e}); "
                                      f"without a network, copy {dest.name} into {dest_dir} or set "
                                      "KDBOUNDS_DATA to a root that holds CIFAR") from e
        got = h.hexdigest()
        if got != expected:
            raise ChecksumError(f"download of {name} from {url}: {algo} {got} does not match the expected "
                                f"{expected}; the file was discarded (nothing written to {dest}). "
                                "Retry, or check the URL / checksum you passed.")
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return dest


def _hasher(algo: str):
    return hashlib.new(algo, usedforsecurity=False)  # integrity check, not security (works under FIPS)


def _file_digest(path: Path, algo: str) -> str:
    h = _hasher(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _progress(total: int | None, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, desc=desc)
