"""README's table of the committed ``scale`` run of certify_students, generated from its results (never typed by hand).

    python experiments/report_certify_students.py            # print the table
    python experiments/report_certify_students.py --write    # replace the table between README's markers

The results it reads: ``reports/certify_students-scale/results.json``, the merge of one run per seed, each its own
split (``runs/seed-N``, written by ``python experiments/certify_students.py --preset scale --seeds N --split-seed N
--out reports/certify_students-scale/runs/seed-N``), by
``python experiments/certify_students.py --merge reports/certify_students-scale/runs/seed-* --out reports/certify_students-scale``.
``tests/test_readme_numbers.py`` fails when README's table differs from what this prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "reports" / "certify_students-scale" / "results.json"
BLOCK = "certify_students_scale"  # README's generated block: <!-- certify_students_scale:begin --> ... end


def render(path: Path = RESULTS) -> str:
    """The table of the run at ``path``.

    Args:
        path: a ``results.json`` of certify_students.

    Returns:
        The markdown table.
    """
    from kdbounds.studies._results import read_results
    from kdbounds.studies.certify_students import readme_table

    return readme_table(read_results(path))


def main(argv: list[str] | None = None) -> int:
    """Print, or write into README (``--write``), the table.

    Args:
        argv: arguments.

    Returns:
        The exit code.
    """
    from kdbounds.studies._cli import readme_block_main

    return readme_block_main(argv, __doc__.split("\n\n")[0], render, ROOT / "README.md", BLOCK)


if __name__ == "__main__":
    sys.exit(main())
