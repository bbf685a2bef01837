"""Linear-Gaussian distillation trade-offs (theory.md §3-§4): sweeps over the student's rank r, the
sample size n, the temperature ratio tau_S/tau_T and the student ridge lam_S; writes the three terms
of K = B + R_r + V (R_r = Theta(n), B = O(1/n), V = O(1)) and every bound next to the exact gap
difference (tightness ratios) as CSV + JSON + PNG to --out (default results/linear_gaussian_tradeoffs/<preset>).
Thin CLI over kdbounds.studies.linear_gaussian_tradeoffs (also `kdbounds-study linear_gaussian_tradeoffs`).

    python experiments/linear_gaussian_tradeoffs.py --preset smoke      # CI, seconds (formerly --quick)
    python experiments/linear_gaussian_tradeoffs.py                     # cpu preset, the default (< 1 min)
    python experiments/linear_gaussian_tradeoffs.py --executor ray --workers 2

One run per (seed, sweep) on the sweep runner: --executor ray --workers N spreads them over Ray workers
(the same rows, docs/sweeps.md); the default runs them here, one after the other. Exact computation on
generated data: nothing is trained or cached (no --cache-root, --device, --seed or --data-root).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kdbounds import _cli_types as T
from kdbounds.studies import _cli

STUDY = "kdbounds.studies.linear_gaussian_tradeoffs"  # imported after parsing: a bad flag fails at once


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.study_parser(__doc__, _cli.module_names(STUDY, "PRESETS"), "cpu")
    _cli.add_deprecated_preset_flag(p, "--quick", "smoke")
    p.add_argument("--seeds", type=T.seed, nargs="+", default=None, help="override the preset's seeds")
    p.add_argument("--no-plots", action="store_true", help="write no figures")
    a = p.parse_args(argv)
    for flag in ("cache_root", "device", "seed", "data_root"):
        if getattr(a, flag) is not None:
            p.error(f"argument --{flag.replace('_', '-')}: this study trains nothing and reads no data set "
                    f"(exact computation on generated data); leave it out")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    study = importlib.import_module(STUDY)
    cfg = _cli.config_from_args(study.PRESETS, a, plots=False if a.no_plots else None)
    return _cli.main(study, "linear_gaussian_tradeoffs", cfg.with_seeds(tuple(a.seeds) if a.seeds else None), a)


if __name__ == "__main__":
    sys.exit(main())
