"""Functional transfer: does the student learn the teacher's function, or is KD a regulariser?

Teacher -> students by KD, random-control distillation (RCD), SIDDO and student alone, over several
seeds; fidelity metrics against the teacher on held-out test inputs, then KD vs each control with
Welch's t / Mann-Whitney U, effect sizes and Holm-adjusted p-values; a plot of agreement on
teacher-correct vs teacher-wrong inputs. The study (with the controls' definitions) is
kdbounds.studies.functional_transfer.

    python experiments/functional_transfer.py --preset cpu --out results/functional_transfer/cpu

Presets: smoke (seconds, CI), cpu (~15 min on 2 cores, real CIFAR-10 subset), gpu (10 seeds, full
CIFAR-10). Trained models are cached under --cache-root (default <out>/../cache) and reused.
Writes config.json, per_run.csv, results.json, summary.csv and agreement_split.png.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kdbounds import _cli_types as T
from kdbounds.studies import _cli

STUDY = "kdbounds.studies.functional_transfer"  # imported after parsing (torch): a bad flag fails at once

OVERRIDES = {"seeds": T.positive_int, "n_per_class": T.train_per_class, "teacher_epochs": T.positive_int,
             "student_epochs": T.positive_int, "n_test": T.test_size}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.study_parser(__doc__, _cli.module_names(STUDY, "PRESETS"), "cpu")
    _cli.add_overrides(p, OVERRIDES)
    p.add_argument("--cache", dest="cache_root", type=T.writable_dir, help="alias of --cache-root")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    study = importlib.import_module(STUDY)
    return _cli.main(study, "functional_transfer", _cli.config_from_args(study.PRESETS, a, OVERRIDES), a)


if __name__ == "__main__":
    sys.exit(main())
