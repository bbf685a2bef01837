"""Nuisance-teacher experiment (RID paper, methods.md §3): does VID collapse under an untrained
teacher while RID degrades much less?

The study is kdbounds.studies.nuisance_teacher (its docstring has the design); this script is its
command line. Reported numbers are last-epoch test accuracies, spread over paired seeds.

    python experiments/nuisance_teacher.py --preset smoke --out results/nuisance_teacher/smoke
    python experiments/nuisance_teacher.py --preset cpu   --out results/nuisance_teacher/cpu
    python experiments/nuisance_teacher.py --preset gpu   --out results/nuisance_teacher/gpu
    python experiments/nuisance_teacher.py --preset scale --executor ray --workers 2 --threads 1

Presets (explicit options override them; the study's docstring lists what `cpu` changes and why):
  smoke  resnet8 -> resnet8, 10 images/class, 100 test images, 2 epochs, 1 seed (CI)
  cpu    WRN-40-2 -> WRN-16-1, the paper's recipe (no augmentation, SGD Nesterov, lr 0.05 x0.2 at
         1/2 and 2/3 of the epochs, VID = the RID paper's variant with weight 100 and clip 100, RID
         r=1/4 lam2=10) on 50 images/class (500), 1,000 test images, 12 epochs, batch 32, q=4,
         teacher 12 epochs, 3 seeds, exact teacher-output cache (50 min wall on a shared 2-core box)
  scale  the teacher bank's airbench94 (fast recipe, 10 epochs, all of CIFAR-10) -> airbench_s students with the
         paper's student recipe on 500 images/class, the whole test set, 20 epochs, 5 seeds; the untrained
         teacher with BatchNorm in eval and in train mode (<= 3 h on 2 cores, estimate in the study)
  gpu    WRN-40-2 -> WRN-16-1, full CIFAR-10, 300 epochs, batch 128, lr 0.05 x0.2 at 150/200,
         Nesterov, no augmentation, 3 seeds; RID q=30 r=1/4 lam1=1 lam2=10; VID weight 100 (GPU;
         formerly called paper, a name that still works)
  smoke-scale  the scale preset's miniature (CI)

Seeds can run as separate processes sharing one cache (`--seed k --seeds 1`); the cache locks each
run, so the shared teacher is trained once.  Or let the sweep runner run the grid in parallel:
`--executor ray --workers 3` (the same numbers as `--executor local` at equal `--threads`).

Writes to --out: results.csv (one row per run), summary.csv (mean/std/n per teacher x method),
results.json (config, rows, summary), claims.json (seed-level
tests of the published claim), accuracy.png (bar plot with the spread over seeds).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from kdbounds import _cli_types as T
from kdbounds.studies import _cli

STUDY = "kdbounds.studies.nuisance_teacher"  # imported after parsing (torch): a bad flag fails at once

OVERRIDES = {"teacher_arch": _cli.arch, "student_arch": _cli.arch, "n_per_class": T.train_per_class,
             "test_per_class": T.test_per_class, "teacher_epochs": T.positive_int, "epochs": T.positive_int,
             "batch_size": T.positive_int, "lr": T.positive_float, "seeds": T.positive_int,
             "rid_q": T.positive_int, "rid_r": T.positive_float, "lam2": T.nonneg_float,
             "vid_lam": T.nonneg_float, "lr_gamma": T.positive_float, "threads": T.threads,
             "schedule": T.schedule}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.study_parser(__doc__, _cli.module_names(STUDY, "PRESETS"), "cpu")
    _cli.add_overrides(p, OVERRIDES)
    methods = _cli.module_names(STUDY, "METHODS")
    p.add_argument("--methods", type=T.name_list(methods), default=None,
                   help=f"comma-separated subset of {','.join(methods)}")
    p.add_argument("--milestones", type=T.milestones, default=None, help="comma-separated epochs, or 'none'")
    return p.parse_args(argv)


def resolve(a: argparse.Namespace) -> Any:
    """The preset's config (the study's ``Config``) with the given options applied (SystemExit with a
    message when invalid). Imports the study."""
    study = importlib.import_module(STUDY)
    return _cli.config_from_args(study.PRESETS, a, OVERRIDES, methods=a.methods, milestones=a.milestones)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    config = resolve(a)
    return _cli.main(importlib.import_module(STUDY), "nuisance_teacher", config, a)


if __name__ == "__main__":
    sys.exit(main())
