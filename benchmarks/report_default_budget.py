"""README's table of what the flagship's cpu preset can buy its teachers, generated from the committed benchmark output.

    python benchmarks/report_default_budget.py            # print the table
    python benchmarks/report_default_budget.py --write    # replace the table between README's markers

The output of ``python benchmarks/sharpness_default_budget.py --threads 2 > benchmarks/results/sharpness_default_budget.jsonl``
(one strict-JSON line per point); ``tests/test_readme_numbers.py`` fails when README's table differs from what this prints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sharpness_default_budget.jsonl"
BLOCK = "sharpness_default_budget"  # README's generated block
TEACHERS = 6  # the cpu preset's teachers (6 recipes x 1 seed)


def load(path: Path = RESULTS) -> list[dict]:
    """The benchmark's records, one per line (strict JSON).

    Args:
        path: the ``.jsonl`` file.

    Returns:
        The records in file order.
    """
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def table(records: list[dict]) -> str:
    """The markdown table: test accuracy against CPU time per teacher and for the preset's six teachers.

    Args:
        records: :func:`load`'s records.

    Returns:
        The table (with a header line).
    """
    lines = [f"| point | network | recipe | training images | epochs | test acc. (1,000 images) | with TTA | CPU-s per "
             f"teacher | CPU-s for {TEACHERS} teachers |", "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        tta = "–" if r.get("test_accuracy_tta") is None else f"{r['test_accuracy_tta']:.3f}"
        lines.append(f"| `{r['name']}` | {r['arch']} | {r['recipe']} | {r['n_train']:,} | {r['epochs']} | "
                     f"{r['test_accuracy']:.3f} | {tta} | {r['cpu_s']:.0f} | {TEACHERS * r['cpu_s']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    from kdbounds.studies._cli import readme_block_main

    sys.exit(readme_block_main(None, __doc__.split("\n\n")[0], lambda: table(load()), ROOT / "README.md", BLOCK))
