"""PAC-Bayes certificates of distilled students (issue 12; theory.md §7) — thin CLI over
:mod:`kdbounds.studies.certify_students`.

    python experiments/certify_students.py --preset smoke --out /tmp/cert-smoke
    python experiments/certify_students.py --preset cpu --out results/certify-cpu --executor ray --workers 2
    python experiments/certify_students.py --preset cpu --seeds 0 --out OUT_SEED0   # one seed per process
    python experiments/certify_students.py --merge OUT_SEED0 OUT_SEED1 --out OUT    # then merge them
    python experiments/certify_students.py --preset scale --seeds 1 --split-seed 1 --out OUT1  # a new split too

Writes ``OUT/results.json`` (strict JSON, a list ``certificates``), ``OUT/certificates.csv`` and
``OUT/certificates.png``; trained models are cached under ``--cache-root`` (default ``OUT/../cache``, the one
layout of every study; a library call of ``run`` without ``cache_root`` still uses ``OUT/runs``).
Every training and every (seed, prior) certification is a run of one sweep (``--executor ray``
runs them in parallel; equal ``--threads`` give the same certificates as ``--executor local``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from kdbounds import _cli_types as T
from kdbounds.studies import _cli

STUDY = "kdbounds.studies.certify_students"  # imported after parsing (torch): a bad flag fails at once
OVERRIDES = {"split_seed": T.seed, "pbkd_alpha": T.nonneg_float}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.study_parser(__doc__, _cli.module_names(STUDY, "PRESETS"), "smoke")
    p.add_argument("--seeds", type=T.seed, nargs="+", default=None, help="override the preset's seeds")
    _cli.add_overrides(p, OVERRIDES)
    p.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                   help="merge finished runs (same preset, different seeds) into --out instead of running")
    a = p.parse_args(argv)
    if a.seeds is not None and len(set(a.seeds)) != len(a.seeds):
        p.error(f"argument --seeds: each seed once, got {' '.join(map(str, a.seeds))} (a repeated seed is the same run)")
    if a.merge and a.out is None:
        p.error("argument --merge: needs --out (the folder of the merged results)")
    for d in a.merge or ():
        if not (Path(d) / "results.json").is_file():
            p.error(f"argument --merge: {d} holds no results.json (give the --out folders of finished runs)")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    study = importlib.import_module(STUDY)
    if a.merge:
        res = study.merge_results(a.merge, a.out)
        print(f"merged {len(res.certificates)} certificates (seeds {res.config['seeds']}) -> {a.out}/results.json")
        return 0
    seeds = tuple(a.seeds) if a.seeds is not None else None
    cfg = _cli.config_from_args(study.PRESETS, a, tuple(OVERRIDES), seeds=seeds)
    return _cli.main(study, "certify_students", cfg, a, summary=_summary)


def _summary(res: Any) -> str:
    return f"{len(res.certificates)} certificates in {res.seconds:.0f} s"


if __name__ == "__main__":
    sys.exit(main())
