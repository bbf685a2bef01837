"""Does a flatter teacher prior certify tighter students? (issue 12 item 6; theory.md §7) — thin CLI over
kdbounds.studies.certify_flatness.

Teachers of the student architecture (mlp256) trained on D_T with recipes that reach minima of different
sharpness, over seeds; per teacher its top Hessian eigenvalue and trace on D_T, its tolerance curve
(Gibbs risk on D_S of N(w_T, sigma^2 I)), and the PAC-Bayes certificate on D_S of the certified-distillation
posterior (pbkd) learnt from it at each prior scale of a grid of J values (the minimum is reported, paying
ln J); the scale-aware versions (relative flatness sum_l |W_l|^2 tr H_l, Petzka et al. 2021, and the relative
prior N(w_T, diag(s (|w_T| + eps rms))^2) with its tolerance curve and Q = P certificates); Kendall tau between
sharpness and certificate at the teacher level, Holm-adjusted across all tests.

    python experiments/certify_flatness.py --preset smoke --out /tmp/flat-smoke
    OMP_NUM_THREADS=1 python experiments/certify_flatness.py --preset cpu --out results/certify_flatness/cpu
    python experiments/certify_flatness.py --preset cpu --executor ray --workers 2

Presets: smoke (CI, under a minute), cpu (real CIFAR-10, n_S = 5,000, n_T = 10,000, 6 recipes x 3 seeds,
about 9 minutes on 2 cores with --executor ray --workers 2), gpu (full CIFAR-10, larger net). Trained models are cached under --cache-root
(default <out>/../cache). Writes results.json (strict JSON), teachers.csv, certificates.csv, flatness.png and
summary.txt.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kdbounds import _cli_types as T
from kdbounds.studies import _cli

STUDY = "kdbounds.studies.certify_flatness"  # imported after parsing (torch): a bad flag fails at once

OVERRIDES = {"n_s": T.split_size, "n_t": T.split_size, "test_n": T.test_size,
             "teacher_epochs": T.positive_int, "posterior_epochs": T.positive_int, "n_scales": T.positive_int,
             "n_draws": T.positive_int, "curvature_n": T.positive_int, "seeds": T.nonneg_int_list}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _cli.study_parser(__doc__, _cli.module_names(STUDY, "PRESETS"), "cpu")
    _cli.add_overrides(p, OVERRIDES)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    study = importlib.import_module(STUDY)
    return _cli.main(study, "certify_flatness", _cli.config_from_args(study.PRESETS, a, tuple(OVERRIDES)), a)


if __name__ == "__main__":
    sys.exit(main())
