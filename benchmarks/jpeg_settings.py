"""How the JPEG copy of CIFAR-10 was compressed: the libjpeg quality and the chroma subsampling of its files.

Issue 27's open question is why airbench94's recipe reaches 89.9 % here against the published 94 %; the prime suspect
is the data (``../shared/data/cifar10-jpg.tar.gz``: about 900 bytes per 32x32 image). This reads the quantisation
tables and sampling factors of a sample of its files (Pillow, no decoding of pixels) and names the libjpeg quality
whose standard tables they are::

    python benchmarks/jpeg_settings.py [PATH.tar.gz] [--every 50] [--json OUT]

libjpeg's tables at quality q (Independent JPEG Group, ``jcparam.c``): the scale is ``5000 / q`` below 50 and
``200 - 2 q`` from 50, each entry ``clip(floor((base * scale + 50) / 100), 1, 255)`` of the standard tables of the
JPEG standard's Annex K (K.1 luminance, K.2 chrominance). Subsampling is Pillow's code: 0 = 4:4:4, 1 = 4:2:2,
2 = 4:2:0 (chroma at half the resolution both ways: a 16x16 colour image for a 32x32 picture).
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

#: Annex K.1 / K.2 of the JPEG standard (ITU-T T.81), natural (row-major) order
LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
CHROMA = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
          47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32))
SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def scaled_table(base: Sequence[int], quality: int) -> tuple[int, ...]:
    r"""libjpeg's table at ``quality``: :math:`s = 5000/q` for :math:`q < 50`, else :math:`200 - 2q`;
    :math:`t_i = \mathrm{clip}(\lfloor (b_i s + 50)/100 \rfloor, 1, 255)`.

    Args:
        base: a standard table (:data:`LUMA`, :data:`CHROMA`).
        quality: 1 .. 100.

    Returns:
        The 64 entries.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality: expected 1 .. 100, got {quality}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(min(255, max(1, (b * scale + 50) // 100)) for b in base)


def libjpeg_quality(tables: dict[int, Sequence[int]]) -> int | None:
    """The quality whose standard tables are ``tables`` (Pillow's ``Image.quantization``), or ``None`` when no
    quality gives both (custom tables).

    Args:
        tables: ``{0: luminance, 1: chrominance}`` (64 entries each, natural order); a grey image has only 0.

    Returns:
        The quality, the highest one when several match (high qualities round to the same tables).
    """
    bases = (LUMA, CHROMA)
    hits = [q for q in range(100, 0, -1)
            if all(tuple(tables[i]) == scaled_table(bases[i], q) for i in tables if i < 2)]
    return hits[0] if hits else None


def settings_of(data: bytes) -> tuple[int | None, str]:
    """(quality, subsampling) of one JPEG file's bytes.

    Args:
        data: the file.

    Returns:
        :func:`libjpeg_quality` and the subsampling as ``"4:2:0"`` etc.
    """
    from PIL import Image, JpegImagePlugin

    with Image.open(io.BytesIO(data)) as im:
        if im.format != "JPEG":
            raise ValueError(f"not a JPEG file (Pillow reads {im.format})")
        return libjpeg_quality(im.quantization), SUBSAMPLING.get(JpegImagePlugin.get_sampling(im), "other")


def survey(path: str | Path, every: int = 50) -> dict:
    """Every ``every``-th ``.jpg`` member of the archive at ``path``: counts of (quality, subsampling) and bytes.

    Args:
        path: a ``.tar`` / ``.tar.gz`` of JPEG files.
        every: the sampling step.

    Returns:
        ``{"files": n, "settings": {"q75 4:2:0": n, ...}, "mean_bytes": b, "archive": name}``.
    """
    if every < 1:
        raise ValueError(f"every: expected >= 1, got {every}")
    counts: collections.Counter[str] = collections.Counter()
    sizes = []
    with tarfile.open(path) as tar:
        jpgs = (m for m in tar if m.isfile() and m.name.lower().endswith((".jpg", ".jpeg")))
        for k, member in enumerate(jpgs):
            if k % every:
                continue
            data = tar.extractfile(member).read()
            q, sub = settings_of(data)
            counts[f"q{q if q is not None else '?'} {sub}"] += 1
            sizes.append(len(data))
    if not sizes:
        raise ValueError(f"path: no .jpg files in {path}")
    return {"archive": Path(path).name, "files": len(sizes), "every": every, "settings": dict(counts),
            "mean_bytes": sum(sizes) / len(sizes)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parents[1]
    p.add_argument("path", nargs="?", default=str(root.parent / "shared" / "data" / "cifar10-jpg.tar.gz"),
                   help="a .tar/.tar.gz of JPEG files (default: ../shared/data/cifar10-jpg.tar.gz)")
    p.add_argument("--every", type=int, default=50, help="read every N-th file (default 50: 1,200 of 60,000)")
    p.add_argument("--json", help="also write the survey here (strict JSON)")
    a = p.parse_args(argv)
    if not Path(a.path).is_file():
        p.error(f"path: no file {a.path}; pass the archive of JPEG files")
    out = survey(a.path, a.every)
    text = json.dumps(out, indent=1, allow_nan=False)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
