"""Flagship: does a flatter teacher give a student that generalizes better, and do the bounds hold?

Teachers trained with different recipes (learning rate, batch size, weight decay) -> students by KD,
RID and the student alone; per pair: teacher sharpness (Hessian trace, top eigenvalue, gap Hessian),
the predictive distillation divergence, the gaps on true labels, every bound of theory.md §4 next to
the observed |gen(S) - gen(T)|, and Kendall's tau between teacher sharpness and student gap.
Reported numbers are last-epoch; trained models are cached in --cache-root, so re-runs only measure.

    python experiments/sharpness_vs_gap.py                      # default preset (~10 min, 2 CPU cores)
    python experiments/sharpness_vs_gap.py --preset smoke       # < 1 min (CI)
    python experiments/sharpness_vs_gap.py --preset paper       # full CIFAR-10, GPU

Presets: smoke (resnet8 -> resnet8, 10 images/class, 1 epoch), default (resnet14 -> resnet8,
200 images/class, 2000 test images, 12 epochs, 4 teacher recipes, methods ce/kd/rid), paper
(resnet56 -> resnet20, full CIFAR-10, 200 epochs, 6 recipes). Writes results.json, results.csv,
kendall.csv, sharpness_vs_gap.png, bound_vs_observed.png and report.md to --out
(default results/sharpness_vs_gap/<preset>; cache default results/cache).
The study itself is kdbounds.studies.sharpness_vs_gap.
"""
from __future__ import annotations

import argparse
import sys

from kdbounds import _cli_types as T
from kdbounds.studies import _cli
from kdbounds.studies import sharpness_vs_gap as study

OVERRIDES = {"teacher_epochs": T.positive_int, "student_epochs": T.positive_int, "n_per_class": T.positive_int}


def _methods() -> tuple[str, ...]:
    from kdbounds.distill import available_methods

    return tuple(available_methods())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.study_parser(__doc__, study.PRESETS, "default")
    p.add_argument("--methods", type=T.name_list(_methods()), default=None, help="comma-separated, e.g. ce,kd,rid")
    _cli.add_overrides(p, OVERRIDES)
    p.set_defaults(cache_root="results/cache")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    cfg = _cli.config_from_args(study.PRESETS, a, OVERRIDES, methods=a.methods)
    return _cli.main(study, "sharpness_vs_gap", cfg, a)


if __name__ == "__main__":
    sys.exit(main())
