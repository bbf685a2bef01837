"""Flagship: does a flatter teacher give a student that generalizes better, and which bounds hold?

Teachers trained with different recipes (learning rate, batch size, weight decay) -> students by KD,
RID and the student alone; per pair (kdbounds.checks): the Gibbs-classifier check (exact
demonstration), Theorems 1/2 with the sigma^2/n rate (conditional), the product-law proxy, Theorems
3A/3B under Gaussian kernels (same-architecture pairs only; "not_defined" otherwise). Every record has
a kind and a verdict (holds / violated / inconclusive / not_defined; one Holm family over the run);
Kendall's tau between teacher sharpness and student gap is tested at the teacher level.
Reported numbers are last-epoch; trained models and each teacher's measurements are cached in
--cache-root, so a re-run (or a restart after Ctrl-C) trains and measures only what is missing.
Runs go through the sweep runner: --executor ray --workers 2 trains and measures in parallel, with the
same numbers as --executor local at equal --threads (unset: torch's default locally, 1 per run on Ray).

    python experiments/sharpness_vs_gap.py                      # cpu preset, the default (~10 min, 2 idle CPU cores)
    python experiments/sharpness_vs_gap.py --preset smoke       # CI
    python experiments/sharpness_vs_gap.py --executor ray --workers 2 --threads 1   # 2 runs at once
    python experiments/sharpness_vs_gap.py --preset gpu         # full CIFAR-10, GPU
    python experiments/sharpness_vs_gap.py --preset scale --executor ray --workers 2 --threads 1   # <= 3 h, 2 cores
    python experiments/sharpness_vs_gap.py --preset scale --methods ce --from-teacher none --gentle-steps 1,3,10
        # the scale teachers with gentle students (each teacher moved by 1, 3, 10 full-batch gradient steps)

Presets: smoke (3 resnet8 teachers, resnet8 and resnet14 students, 10 images/class, 1 epoch), cpu, the
default (6 airbench_s teachers of 6 fast-recipe recipes on D_T = 5,000 training images -> on D_S = 1,000 others
airbench_s students by ce/kd/rid from scratch and kd started at the teacher; 1,000 test images), gpu (resnet56 -> resnet20 and resnet56, full CIFAR-10, 200 epochs, 6 recipes), scale (12 airbench_s
teachers of 6 fast-recipe recipes from the teacher bank on D_T = 45,000 images; on D_S = 5,000 images students from
scratch and started at their teacher; curvature and gaps on one kernel sample; <= 3 h on 2 cores, estimate in
the study), smoke-scale (its miniature, CI); the old names default and paper still work. Writes results.json,
results.csv, checks.csv, kendall.csv, tightness.csv, sharpness_vs_gap.png, bound_vs_observed.png and report.md
to --out (default results/sharpness_vs_gap/<preset>; run cache default <out>/../cache, i.e.
results/sharpness_vs_gap/cache; bank teachers in $KDBOUNDS_BANK or ~/.cache/kdbounds/bank).
The study itself is kdbounds.studies.sharpness_vs_gap.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kdbounds import _cli_types as T
from kdbounds.studies import _cli

STUDY = "kdbounds.studies.sharpness_vs_gap"  # imported after parsing (torch): a bad flag fails at once

# --threads is a shared option (intra-op threads per run); listed here, it also sets the config's threads
# (unset: torch's default on the local executor, 1 per run on Ray)
OVERRIDES = {"teacher_epochs": T.positive_int, "student_epochs": T.positive_int, "n_per_class": T.train_per_class,
             "threads": T.threads, "from_teacher_epochs": T.positive_int, "from_teacher_lr_scale": T.positive_float,
             "kernel_std": T.positive_float, "gentle_steps": T.positive_int_list, "gentle_lr": T.positive_float}


def _from_teacher(text: str) -> tuple[str, ...]:
    """``--from-teacher``: comma-separated methods of the students started at their teacher, or ``none``."""
    return () if text.strip().lower() == "none" else T.name_list(_methods)(text)


def _methods() -> tuple[str, ...]:
    from kdbounds.distill import available_methods

    return tuple(available_methods())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.study_parser(__doc__, _cli.module_names(STUDY, "PRESETS"), "cpu")
    p.add_argument("--methods", type=T.name_list(_methods), default=None, help="comma-separated, e.g. ce,kd,rid")
    p.add_argument("--from-teacher", type=_from_teacher, default=None,
                   help="methods of the students started at their teacher (needs the split of the scale presets), "
                        "comma-separated, or none")
    _cli.add_overrides(p, OVERRIDES)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    study = importlib.import_module(STUDY)
    cfg = _cli.config_from_args(study.PRESETS, a, OVERRIDES, methods=a.methods, from_teacher=a.from_teacher)
    return _cli.main(study, "sharpness_vs_gap", cfg, a)


if __name__ == "__main__":
    sys.exit(main())
