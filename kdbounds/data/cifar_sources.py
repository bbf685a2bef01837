"""CIFAR names, constants and errors, and discovery of a data source in the data roots (no decoding)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .._checks import check_choice

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
    return check_choice("split", split, SPLITS)


def num_classes(name: str) -> int:
    """Number of classes of ``name`` (10 for cifar10, 100 for cifar100).

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.

    Returns:
        The class count.
    """
    return _NUM_CLASSES[_check_name(name)]


# --------------------------------------------------------------------------------------------
# roots and source discovery
# --------------------------------------------------------------------------------------------

def candidate_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """Data roots searched, in order.

    An explicit ``root`` is the only place searched (no silent fallback). Otherwise:
    ``$KDBOUNDS_DATA``, ``~/.cache/kdbounds/data``, ``~/data``, ``./data``, ``/data``,
    ``../shared/data`` (the last three relative to the current directory where relative).

    Args:
        root: an explicit data root, or ``None``.

    Returns:
        The roots to search, in order.
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
        """The source as plain JSON values.

        Returns:
            ``{"name", "kind", "path"}`` with the path as a string.
        """
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

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: the only root searched, or ``None`` for the standard places.

    Returns:
        The located :class:`CifarSource`.

    Raises:
        DataNotFoundError: nothing found; the message lists every place searched, the accepted
            layouts and the fix.
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


