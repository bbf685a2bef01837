"""README's fast-recipe table, generated from the committed benchmark results (never typed by hand).

    python benchmarks/report_time_to_accuracy.py            # print the table
    python benchmarks/report_time_to_accuracy.py --write    # replace the table between README's markers

``tests/test_readme_numbers.py`` fails when README's table differs from what this prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "time_to_accuracy" / "results.json"
BLOCK = "time_to_accuracy"  # README's generated block: <!-- time_to_accuracy:begin --> ... end
ORDER = ["airbench94-e3", "airbench94-e10", "airbench94-e14", "airbench_s-e10", "resnet8-standard-e15",
         "airbench94-e3-no_whiten", "airbench94-e3-no_lookahead", "airbench94-e3-no_label_smoothing",
         "airbench94-e3-random_flip"]


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def _whitening(r: dict) -> str:
    if r["recipe"] != "fast" or r["switches"].get("whiten") is False:
        return "–"
    return r.get("whitening") or "first 5,000 images (airplanes only: the bug fixed in c2d5c8b)"


def table(results: dict) -> str:
    """The markdown table of every recorded point, in README's order.

    Args:
        results: the parsed ``results.json``.

    Returns:
        The table (with a header line).
    """
    recs = results["records"]
    names = [n for n in ORDER if n in recs] + sorted(set(recs) - set(ORDER))
    lines = ["| run | network (params) | recipe | whitening fitted on | epochs | test acc. (network alone) | with TTA | "
             "wall | CPU-s | glibc malloc |", "|---|---|---|---|---|---|---|---|---|---|"]
    for n in names:
        r = recs[n]
        sw = ", ".join(f"{k}={v}" for k, v in r["switches"].items())
        recipe = r["recipe"] + (f" ({sw})" if sw else "")
        lines.append(f"| `{n}` | {r['arch']} ({r['params'] / 1e6:.2f} M) | {recipe} | {_whitening(r)} | {r['epochs']} | "
                     f"{_pct(r['test_accuracy'])} | {_pct(r['test_accuracy_tta'])} | {r['wall_s'] / 60:.1f} min | "
                     f"{r['cpu_s']:.0f} | {'tuned' if r.get('malloc_tuned') else 'default'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print, or write into README (``--write``), the table.

    Args:
        argv: arguments.

    Returns:
        The exit code.
    """
    from kdbounds.studies._cli import readme_block_main

    return readme_block_main(argv, __doc__.split("\n\n")[0], lambda: table(json.loads(RESULTS.read_text())), ROOT / "README.md", BLOCK)


if __name__ == "__main__":
    sys.exit(main())
