"""README's JPEG dose-response table, generated from the committed benchmark record (never typed by hand).

    python benchmarks/report_jpeg_dose_response.py            # print the block
    python benchmarks/report_jpeg_dose_response.py --write    # replace the block between README's markers

``tests/test_readme_numbers.py`` fails when README's block differs from what this prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "jpeg_dose_response" / "results.json"
BLOCK = "jpeg_dose_response"  # README's generated block: <!-- jpeg_dose_response:begin --> ... end


def mse_from_psnr(db: float) -> float:
    """Mean squared error (8-bit scale) of a PSNR: 255² · 10^(−PSNR/10)."""
    return 255.0 ** 2 * 10 ** (-db / 10)


def block(results: dict) -> str:
    """The markdown table of every point (the copy first, then by falling quality) and the proxy's lines.

    The extrapolation to the first encoding assumes the accuracy lost grows in proportion to the distortion (MSE)
    removed: cost ≈ Δacc(point) · MSE(proxy) / MSE(point), one figure per re-encoded point below the copy's quality.

    Args:
        results: the parsed ``results.json``.

    Returns:
        The block (markdown).
    """
    recs = list(results["records"].values())
    base = next((r for r in recs if r["quality"] is None), None)
    recs.sort(key=lambda r: -(r["quality"] or 101))
    lines = ["| point | training and test images | PSNR removed vs the copy | mean JPEG bytes | test acc. (network alone) "
             "| change vs the copy | with TTA | CPU-s |", "|---|---|---|---|---|---|---|---|"]
    for r in recs:
        what = "the copy as it is (libjpeg q75, 4:2:0)" if r["quality"] is None else \
            f"the copy encoded again at q{r['quality']}, 4:2:0"
        db = "–" if r["psnr_db_vs_copy"] is None else f"{r['psnr_db_vs_copy']:.1f} dB"
        size = "–" if r["mean_bytes"] is None else f"{r['mean_bytes']:.0f}"
        change = "–" if base is None or r is base else f"{100 * (r['test_accuracy'] - base['test_accuracy']):+.2f} points"
        tta = "–" if r["test_accuracy_tta"] is None else f"{100 * r['test_accuracy_tta']:.2f} %"
        lines.append(f"| `{r['point']}` | {what} | {db} | {size} | {100 * r['test_accuracy']:.2f} % | {change} | {tta} | "
                     f"{r['cpu_s']:.0f} |")
    arch = {(r["arch"], r["epochs"], r["seed"], r["threads"]) for r in recs}
    lines.append("")
    lines.append("Network, epochs, seed, threads: " + "; ".join(f"{a} {e} epochs, seed {s}, {t} thread(s)"
                                                               for a, e, s, t in sorted(arch)) + " (one seed per point).")
    proxy = results.get("first_encoding_proxy")
    if proxy is not None:
        lines.append("")
        lines.append(f"First-encoding proxy (`first_encoding_proxy`): one more q{proxy['quality']} 4:2:0 encoding of the "
                     f"copy shifted by {proxy['shift_px']} pixel(s), off JPEG's 8×8 grid ({proxy['n_images']:,} training "
                     f"images): **{proxy['psnr_db']:.1f} dB** removed (on the grid: "
                     + ("nothing" if proxy["psnr_db_on_grid"] is None else f"{proxy['psnr_db_on_grid']:.1f} dB") + ").")
        if base is not None:
            parts = []
            for r in recs:
                if r["quality"] is None or r["psnr_db_vs_copy"] is None or r["test_accuracy"] >= base["test_accuracy"]:
                    continue
                loss = base["test_accuracy"] - r["test_accuracy"]
                est = loss * mse_from_psnr(proxy["psnr_db"]) / mse_from_psnr(r["psnr_db_vs_copy"])
                parts.append(f"from `{r['point']}` {100 * est:.1f} points")
            if parts:
                lines.append(f"Extrapolated cost of the first encoding, if accuracy lost grows in proportion to the "
                             f"distortion removed (an assumption, not a measurement): {'; '.join(parts)}.")
    return "\n".join(lines)


def load() -> dict:
    """The committed record."""
    return json.loads(RESULTS.read_text())


def main(argv: list[str] | None = None) -> int:
    """Print, or write into README (``--write``), the block.

    Args:
        argv: arguments.

    Returns:
        The exit code.
    """
    from kdbounds.studies._cli import readme_block_main

    return readme_block_main(argv, __doc__.split("\n\n")[0], lambda: block(load()), ROOT / "README.md", BLOCK)


if __name__ == "__main__":
    sys.exit(main())
