"""Download of the official CIFAR python archives, checksum-verified, written atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path



from .cifar_sources import CIFAR_MD5, CIFAR_URLS, ChecksumError, _ARCHIVE_NAME, _check_name

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
