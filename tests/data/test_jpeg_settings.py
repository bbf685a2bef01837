"""``benchmarks/jpeg_settings.py`` names the libjpeg quality and chroma subsampling of a JPEG file.

Oracle: Pillow's encoder (libjpeg) writing random images at a chosen ``quality`` and ``subsampling``; the survey
reads them back from a tar archive built here.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[2]
js = load_file("benchmarks/jpeg_settings.py")


def _jpeg(quality: int, subsampling: int, seed: int = 0) -> bytes:
    x = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


@pytest.mark.parametrize("quality", [10, 49, 50, 75, 90])
@pytest.mark.parametrize("subsampling, name", [(0, "4:4:4"), (2, "4:2:0")])
def test_settings_are_what_the_encoder_was_given(quality, subsampling, name):
    assert js.settings_of(_jpeg(quality, subsampling)) == (quality, name)


def test_custom_tables_have_no_quality_and_a_png_is_refused():
    assert js.libjpeg_quality({0: [1] * 64, 1: [2] * 64}) is None
    assert js.libjpeg_quality({0: js.scaled_table(js.LUMA, 75), 1: js.scaled_table(js.CHROMA, 60)}) is None
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    with pytest.raises(ValueError, match="not a JPEG"):
        js.settings_of(buf.getvalue())
    with pytest.raises(ValueError, match="quality"):
        js.scaled_table(js.LUMA, 0)


def test_survey_counts_the_archive(tmp_path):
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for k, (q, s) in enumerate([(75, 2)] * 3 + [(90, 0)]):
            data = _jpeg(q, s, seed=k)
            info = tarfile.TarInfo(f"d/train/c/{k:04d}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = js.survey(path, every=1)
    assert out["files"] == 4 and out["settings"] == {"q75 4:2:0": 3, "q90 4:4:4": 1}
    assert js.survey(path, every=2)["files"] == 2
    with pytest.raises(ValueError, match="every"):
        js.survey(path, every=0)
