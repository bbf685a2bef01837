"""benchmarks/jpeg_dose_response.py: the re-encoding it trains on, its PSNR, and its refusals of bad arguments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from repo_files import load_file

ROOT = Path(__file__).resolve().parents[1]
J = load_file("benchmarks/jpeg_dose_response.py")


def _smooth_images(n: int = 6) -> np.ndarray:
    """Natural-ish images: smooth colour gradients plus a little noise (JPEG's regime, unlike white noise)."""
    g = np.random.default_rng(0)
    u, v = np.meshgrid(np.linspace(0, 1, 32), np.linspace(0, 1, 32))
    out = []
    for _ in range(n):
        a = g.uniform(0, 255, (3, 3))
        img = np.stack([a[c, 0] * u + a[c, 1] * v + a[c, 2] * u * v for c in range(3)], -1) / 2
        out.append(np.clip(img + g.normal(0, 4, img.shape), 0, 255))
    return np.asarray(out, dtype=np.uint8)


def test_stronger_encoding_removes_more_and_weighs_less():
    x = _smooth_images()
    hi, bytes_hi = J.reencode(x, 95)
    lo, bytes_lo = J.reencode(x, 20)
    assert hi.shape == lo.shape == x.shape and hi.dtype == np.uint8
    assert J.psnr(hi, x) > J.psnr(lo, x) + 3 and bytes_lo < bytes_hi


def _as_the_copy_was_made(images: np.ndarray) -> np.ndarray:
    """libjpeg quality 75, 4:2:0 (what benchmarks/jpeg_settings.py found in every file of the copy), decoded."""
    import io

    from PIL import Image

    out, size = [], 0
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=75, subsampling=2)
        size += buf.tell()
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return np.asarray(out), size / len(images)


def test_encoding_at_the_copys_settings_is_idempotent():
    """Re-encoding the copy at its own settings changes (almost) nothing — so the re-encoding uses the copy's
    subsampling and tables, and the copy's own point is 'as-is'."""
    copy, copy_bytes = _as_the_copy_was_made(_smooth_images())
    again, again_bytes = J.reencode(copy, 75)
    assert J.psnr(again, copy) > 45
    assert again_bytes == pytest.approx(copy_bytes, rel=0.03), (again_bytes, copy_bytes)  # 4:4:4 would weigh more


def test_the_first_encoding_proxy_moves_the_copy_off_the_block_grid():
    """On the grid a q75 encoding of the copy removes (almost) nothing; shifted one pixel it removes a measurable
    amount, less than a much stronger encoding would (fails if the shift is not applied, or applied to one side)."""
    copy, _ = _as_the_copy_was_made(_smooth_images(8))
    rec = J.first_encoding_proxy(copy, n=8)
    assert rec["n_images"] == 8 and rec["quality"] == 75 and rec["shift_px"] == 1
    assert rec["psnr_db_on_grid"] is None or rec["psnr_db_on_grid"] > 45
    assert 20 < rec["psnr_db"] < 45
    assert rec["psnr_db"] > J.first_encoding_proxy(copy, quality=10, n=8)["psnr_db"] + 2
    with pytest.raises(ValueError, match="shift must be 1 .. 7"):
        J.first_encoding_proxy(copy, shift=8)


def test_psnr_against_a_hand_computed_value():
    a = np.zeros((1, 2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0, 0] = 10  # MSE = 100 / 12
    assert J.psnr(b, a) == pytest.approx(10 * np.log10(255 ** 2 / (100 / 12)))
    assert J.psnr(a, a) == float("inf")


@pytest.mark.parametrize("args,words", [
    (["--qualities", "90,x"], "--qualities: expected comma-separated integers"),
    (["--qualities", "0,50"], "--qualities: each must be 1 .. 100"),
    (["--qualities", "", "--no-as-is"], "--qualities: nothing to run"),
    (["--epochs", "0"], "--epochs: expected an integer >= 1"),
])
def test_bad_arguments_are_refused_before_any_work(args, words, capsys):
    with pytest.raises(SystemExit):
        J.main(args)
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("script, flag, out_flag", [("jpeg_dose_response.py", "--data", "--out"),
                                                    ("time_to_accuracy.py", "--data-root", "--out"),
                                                    ("allocator.py", "--data", "--json")])
def test_missing_cifar_is_one_clear_error_before_any_work(script, flag, out_flag, tmp_path):
    """A folder without CIFAR-10: exit 2 naming the flag and the fix, no traceback (fails without the early check)."""
    import subprocess
    import sys

    target = tmp_path / "out" / ("results.json" if out_flag == "--json" else "")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), flag, str(tmp_path), out_flag,
                          str(target)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert f"{flag}: CIFAR-10 not found" in out.stderr and "KDBOUNDS_DATA" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "out" / "results.json").exists()
