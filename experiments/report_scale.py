"""README's numbers of the committed ``scale`` runs, generated from their results (never typed by hand).

    python experiments/report_scale.py certify_students            # print one study's block
    python experiments/report_scale.py sharpness_vs_gap --write    # replace that block between README's markers
    python experiments/report_scale.py --write                     # every block

The results each block reads (``REPORTS``):

* ``certify_students``: ``reports/certify_students-scale/results.json``, the merge of one run per seed, each its own
  split (``runs/seed-N``, written by ``python experiments/certify_students.py --preset scale --seeds N --split-seed N
  --out reports/certify_students-scale/runs/seed-N``), by ``python experiments/certify_students.py --merge
  reports/certify_students-scale/runs/seed-* --out reports/certify_students-scale``;
* ``sharpness_vs_gap``: ``reports/sharpness_vs_gap-scale/results.json.gz``, the ``results.json`` written by ``python
  experiments/sharpness_vs_gap.py --preset scale --executor ray --workers 2 --threads 1 --out
  reports/sharpness_vs_gap-scale``, compressed by ``gzip -9 -n`` (2.4 MB of JSON, 0.17 MB compressed);
* ``sharpness_vs_gap-cpu``: ``reports/sharpness_vs_gap-cpu/results.json.gz``, the default preset (``python
  experiments/sharpness_vs_gap.py --preset cpu --threads 1 --out reports/sharpness_vs_gap-cpu``), compressed the same
  way;
* ``certify_students-a0.01``: ``reports/certify_students-scale-a0.01/results.json``, the pre-registered runs with
  ``--pbkd-alpha 0.01`` (one per seed and split under ``runs/seed-N``), merged the same way;
* ``nuisance_teacher``: ``reports/nuisance_teacher-scale/results.json``, written by ``python
  experiments/nuisance_teacher.py --preset scale --executor ray --workers 2 --threads 1 --out
  reports/nuisance_teacher-scale`` (12 kB: not compressed).

``tests/test_readme_numbers.py`` fails when a README block differs from what this prints.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: ``{report: (results.json, the study's function that renders it, README's block name, the study)}``; a report
#: named after its study needs no fourth entry
REPORTS = {
    "certify_students": (ROOT / "reports" / "certify_students-scale" / "results.json", "readme_table",
                         "certify_students_scale"),
    "sharpness_vs_gap": (ROOT / "reports" / "sharpness_vs_gap-scale" / "results.json.gz", "readme_report",
                         "sharpness_vs_gap_scale"),
    "sharpness_vs_gap-cpu": (ROOT / "reports" / "sharpness_vs_gap-cpu" / "results.json.gz", "readme_report",
                             "sharpness_vs_gap_cpu", "sharpness_vs_gap"),
    "sharpness_vs_gap-gentle": (ROOT / "reports" / "sharpness_vs_gap-gentle" / "results.json.gz", "readme_report",
                                "sharpness_vs_gap_gentle", "sharpness_vs_gap"),
    "nuisance_teacher": (ROOT / "reports" / "nuisance_teacher-scale" / "results.json", "readme_report",
                         "nuisance_teacher_scale"),
    "certify_students-a0.01": (ROOT / "reports" / "certify_students-scale-a0.01" / "results.json", "readme_table",
                               "certify_students_scale_a001", "certify_students"),
}


def study_of(report: str) -> str:
    """The study module (``kdbounds.studies.<name>``) that renders ``report``.

    Args:
        report: a key of :data:`REPORTS`.

    Returns:
        The study's name.
    """
    entry = REPORTS[report]
    return entry[3] if len(entry) > 3 else report


def render(study: str, path: Path | None = None) -> str:
    """The block of report ``study``'s committed run (or of the ``results.json`` at ``path``).

    Args:
        study: a key of :data:`REPORTS` (a study's name, or a report of it such as ``sharpness_vs_gap-gentle``).
        path: another ``results.json`` of that study (default: the committed one).

    Returns:
        The markdown text.
    """
    from kdbounds.studies._results import read_results

    results, function = REPORTS[study][:2]
    module = importlib.import_module(f"kdbounds.studies.{study_of(study)}")
    return getattr(module, function)(read_results(path or results))


def main(argv: list[str] | None = None) -> int:
    """Print, or write into README (``--write``), the blocks.

    Args:
        argv: arguments.

    Returns:
        The exit code.
    """
    from kdbounds._io import replace_marked_block

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("studies", nargs="*", metavar="STUDY", help=f"one or more of {', '.join(REPORTS)} (default: all)")
    p.add_argument("--write", action="store_true", help="replace the blocks in README.md instead of printing them")
    a = p.parse_args(argv)
    unknown = [s for s in a.studies if s not in REPORTS]
    if unknown:
        p.error(f"STUDY: unknown {', '.join(unknown)}; expected one of {', '.join(REPORTS)}")
    for study in a.studies or list(REPORTS):
        text = render(study)
        if a.write:
            replace_marked_block(README, REPORTS[study][2], text)
        else:
            print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
