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
natural sort of their names. So image-folder data come **class by class** (the official python
batches come shuffled): never take a prefix ``images[:n]`` as a sample, draw it with
:func:`kdbounds.data.stratified_subset` (``certify`` and ``evaluate_pair`` warn on a held-out set
whose labels are not distributed like the training labels).

Decoded arrays are cached as ``.npz`` in ``$KDBOUNDS_CACHE/data`` (default
``~/.cache/kdbounds/data``), keyed by the source's absolute path, size and modification time;
writes are atomic (temporary file + ``os.replace``).

Modules: :mod:`.cifar_sources` (names, errors, discovery), :mod:`.cifar_decode` (every layout ->
arrays), :mod:`.cifar_cache` (the ``.npz`` cache and its lock), :mod:`.cifar_download` (official
archives, checksum-verified); this module is the loader that ties them together.
"""

from __future__ import annotations

import os

import numpy as np

from .cifar_cache import _atomic_write_npz, _cache_lock, _cache_path, _read_cache, _source_key, cache_dir
from .cifar_decode import _decompress_all, _fast_tar_index, _iter_tar, decode_source  # noqa: F401 (tests use the tar readers)
from .cifar_download import _download_root, download_cifar
from .cifar_sources import (
    _ARCHIVE_NAME,  # noqa: F401 (used by tests)
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    CIFAR_MD5,
    CIFAR_URLS,
    DATASETS,
    SPLITS,
    ChecksumError,
    CifarSource,
    CorruptArchiveError,
    DataNotFoundError,
    _check_name,
    _check_split,
    candidate_roots,
    find_cifar,
    num_classes,
)

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

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: the only data root searched, or ``None`` for the standard places.
        split: ``"train"`` or ``"test"``.
        download: download the official archive when nothing is found.
        cache: read/write the decoded-array cache.

    Returns:
        ``(images, labels)``: ``uint8`` ``(N, 32, 32, 3)`` and ``int64`` ``(N,)``, in the source's order:
        class by class for image folders (take samples with ``stratified_subset``, never a prefix).

    Raises:
        ValueError: unknown ``name`` or ``split``.
        DataNotFoundError: nothing found and ``download`` is off (the message lists the places searched).
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


