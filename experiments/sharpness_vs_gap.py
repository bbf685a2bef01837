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
kendall.csv, sharpness_vs_gap.png, bound_vs_observed.png and report.md to --out.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kdbounds.studies.plots import format_table, plot_bound_vs_observed, plot_sharpness_vs_gap  # noqa: E402
from kdbounds.studies.sharpness_vs_gap import PRESETS, preset, run_study, write_results  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    doc = __doc__.split("\n\n")
    p = argparse.ArgumentParser(description=doc[0], epilog="\n\n".join(doc[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="default")
    p.add_argument("--out", default=None, help="output folder (default results/sharpness_vs_gap/<preset>)")
    p.add_argument("--cache-root", default=None, help="trained-model cache (default results/cache)")
    p.add_argument("--data-root", default=None, help="CIFAR-10 location (default $KDBOUNDS_DATA, then "
                                                     "standard places)")
    p.add_argument("--device", default=None, help="auto, cpu or cuda (default: the preset's)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--methods", default=None, help="comma-separated, e.g. ce,kd,rid")
    p.add_argument("--teacher-epochs", type=int, default=None)
    p.add_argument("--student-epochs", type=int, default=None)
    p.add_argument("--n-per-class", type=int, default=None, help="training images per class")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    cfg = preset(a.preset, data_root=a.data_root, device=a.device, seed=a.seed,
                 methods=tuple(a.methods.split(",")) if a.methods else None,
                 teacher_epochs=a.teacher_epochs, student_epochs=a.student_epochs, n_per_class=a.n_per_class)
    out = Path(a.out or ROOT / "results" / "sharpness_vs_gap" / a.preset)
    cache = Path(a.cache_root or ROOT / "results" / "cache")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    res = run_study(cfg, cache, progress=not a.no_progress)
    paths = write_results(res, out)
    plot_sharpness_vs_gap(res.rows, out / "sharpness_vs_gap.png", kendall=res.kendall)
    plot_bound_vs_observed(res.reports, out / "bound_vs_observed.png")
    cols = ["teacher", "method", "teacher_train_top_eig", "teacher_train_trace", "teacher_test_acc",
            "student_test_acc", "divergence_train", "teacher_gap_clipped_ce", "student_gap_clipped_ce",
            "gap_diff_clipped_ce", "bound_thm1_per_sample_clipped_ce", "bound_thm1_product_clipped_ce",
            "bound_thm3a_radius_clipped_ce", "bound_thm3b_subgamma_clipped_ce",
            "gap_diff_zero_one", "bound_thm1_per_sample_zero_one"]
    kcols = ["group", "sharpness", "gap", "n", "tau", "p_value", "note"]
    report = (f"# sharpness_vs_gap, preset {a.preset}\n\n{format_table(res.rows, cols)}\n\n"
              f"Kendall tau (teacher sharpness vs student gap)\n\n{format_table(res.kendall, kcols)}\n\n"
              f"Total time {res.seconds:.0f} s on {res.environment['device']}.\n")
    (out / "report.md").write_text(report)
    print(report)
    print("wrote", ", ".join(str(p) for p in paths.values()), "and figures in", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
