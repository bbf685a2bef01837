"""PID of distilled knowledge over training: Red(Y:T,S) and Uni(Y:T\\S) per epoch for KD, VID and
RID students under a trained and an untrained teacher (methods.md §3). The study is
kdbounds.studies.pid_transfer.

    python experiments/pid_transfer.py --preset smoke --out results/pid_transfer/smoke
    python experiments/pid_transfer.py --preset cpu   --out results/pid_transfer/cpu
    python experiments/pid_transfer.py --preset gpu   --out results/pid_transfer/gpu

Presets (real CIFAR-10 from KDBOUNDS_DATA / --data-root):
  smoke  resnet8 -> resnet8, 10 img/class, 1+2 epochs, PID on 200/200 images (< 2 min; CI)
  cpu    resnet20 -> resnet8, 100 img/class, teacher 10 epochs, students 6 epochs, PID every 2
         epochs on 1000 fit / 1000 eval test images (measured 28 min wall / 22.6 min CPU on 2
         cores shared with other jobs, load 4-10: over the 10-min target; halve epochs to meet it)
  gpu    wrn_40_2 -> wrn_16_1, full train set, teacher 60, students 40 epochs, PID every 5 epochs
         on 5000/5000 test images, 10 bootstrap resamples
Writes: curves.csv (one row per method x teacher x epoch), results.json, curves.png; the students'
training folders in runs/ and their published PID records in sweep/ (a restart re-trains only the
students that had not finished). `--executor ray --workers N` trains the students in parallel (the
same numbers as `--executor local` at equal `--threads`).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from kdbounds import _cli_types as T
from kdbounds.studies import _cli

STUDY = "kdbounds.studies.pid_transfer"  # imported after parsing (torch): a bad flag fails at once


def _methods() -> tuple[str, ...]:
    from kdbounds.distill import available_methods

    return tuple(available_methods())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.study_parser(__doc__, _cli.module_names(STUDY, "PRESETS"), "smoke")
    p.add_argument("--methods", type=T.name_list(_methods), default=None, help="comma-separated (default kd,vid,rid)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    study = importlib.import_module(STUDY)
    return _cli.main(study, "pid_transfer", _cli.config_from_args(study.PRESETS, a, methods=a.methods), a)


if __name__ == "__main__":
    sys.exit(main())
