"""Functional transfer: does the student learn the teacher's function, or is KD a regulariser?

Teacher → students by KD, random-control distillation (RCD), SIDDO and student alone, over several
seeds; per student the fidelity metrics against the teacher on held-out test inputs
(kdbounds.fidelity), then KD vs each control with Welch's t / Mann–Whitney U, effect sizes and Holm-
adjusted p-values; a plot of agreement on teacher-correct vs teacher-wrong inputs (the "negative
asymmetric payoff" of methods.md §5 / seed 001).

Controls (methods.md §5):
* ``alone``  — the student architecture trained with cross-entropy from init seed s, no teacher;
* ``kd``     — the same init and data order as ``alone`` (seed s), Hinton KD from the teacher;
* ``rcd``    — the same, the teacher's distribution replaced by random noise (no teacher);
* ``siddo``  — same initialisation as the *teacher*, different data order, no teacher
  (when the student architecture equals the teacher's; otherwise same init as ``kd`` with a
  different data order): how similar a model gets to the teacher without seeing its outputs.

    python experiments/functional_transfer.py --preset cpu --out results/functional_transfer/cpu

Presets: ``smoke`` (seconds, CI), ``cpu`` (~15 min on 2 cores, real CIFAR-10 subset), ``gpu``
(10 seeds, full CIFAR-10). Trained models are cached (kdbounds.studies.cache.train_cached) under ``OUT/runs`` (or ``--cache``) and reused.
Writes ``config.json``, ``per_run.csv``, ``results.json``, ``summary.csv`` and ``agreement_split.png``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kdbounds.distill.checkpoint import load_checkpoint_model  # noqa: E402
from kdbounds.distill.config import TrainConfig  # noqa: E402
from kdbounds.distill.controls import siddo_config  # noqa: E402
from kdbounds.distill.trainer import predict_logits  # noqa: E402
from kdbounds.fidelity import compare_methods, fidelity_report  # noqa: E402
from kdbounds.studies.cache import train_cached  # noqa: E402

GROUPS = ("kd", "rcd", "siddo", "alone")

PRESETS: dict[str, dict[str, Any]] = {
    # a few seconds: wiring check for CI
    "smoke": dict(teacher_arch="resnet8", student_arch="resnet8", n_per_class=10, teacher_epochs=1,
                  student_epochs=1, seeds=2, n_test=100, batch_size=64, lr=0.05, device="cpu"),
    # ~15 minutes on 2 CPU cores: self-distillation (same architecture: conditions that favour transfer)
    "cpu": dict(teacher_arch="resnet8", student_arch="resnet8", n_per_class=300, teacher_epochs=12,
                student_epochs=6, seeds=3, n_test=2000, batch_size=64, lr=0.05, device="cpu"),
    # GPU: 10 seeds, full CIFAR-10
    "gpu": dict(teacher_arch="resnet56", student_arch="resnet20", n_per_class=None, teacher_epochs=60,
                student_epochs=40, seeds=10, n_test=None, batch_size=128, lr=0.1, device="auto"),
}


def teacher_config(p: dict[str, Any], data_root: str | None) -> TrainConfig:
    return TrainConfig(arch=p["teacher_arch"], epochs=p["teacher_epochs"], seed=0, method="ce", **_common(p, data_root))


def _common(p: dict[str, Any], data_root: str | None) -> dict[str, Any]:
    return dict(dataset="cifar10", batch_size=p["batch_size"], lr=p["lr"], schedule="cosine",
                n_per_class=p["n_per_class"], device=p["device"], data_root=data_root, eval_every=10**6)


def student_configs(p: dict[str, Any], teacher: TrainConfig, teacher_ckpt: str,
                    data_root: str | None) -> dict[str, list[TrainConfig]]:
    """Per group, one config per seed s = 1..seeds (see the module docstring for the controls)."""
    runs: dict[str, list[TrainConfig]] = {g: [] for g in GROUPS}
    for s in range(1, p["seeds"] + 1):
        alone = TrainConfig(arch=p["student_arch"], epochs=p["student_epochs"], seed=s, method="ce",
                            **_common(p, data_root))
        runs["alone"].append(alone)
        runs["kd"].append(dataclasses.replace(alone, method="kd", teacher_ckpt=teacher_ckpt))
        runs["rcd"].append(dataclasses.replace(alone, method="rcd", method_kwargs={"seed": s}))
        if p["student_arch"] == p["teacher_arch"]:
            ref = dataclasses.replace(teacher, epochs=p["student_epochs"])
            runs["siddo"].append(siddo_config(ref, data_seed=1000 + s))
        else:
            runs["siddo"].append(siddo_config(runs["kd"][-1], data_seed=1000 + s))
    return runs


def test_subset(test_x: np.ndarray, test_y: np.ndarray, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    if n is None or n >= len(test_y):
        return test_x, test_y
    from kdbounds.data import stratified_subset

    idx = stratified_subset(test_y, n // 10, seed=0)
    return test_x[idx], test_y[idx]


def plot_split(summary_stats: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    groups = [g for g in GROUPS if g in summary_stats]
    for i, g in enumerate(groups):
        for j, (key, colour, label) in enumerate(
            (("agreement_teacher_correct", "tab:green", "teacher correct"), ("agreement_teacher_wrong", "tab:red", "teacher wrong"))
        ):
            v = np.array([x for x in summary_stats[g][key] if math.isfinite(x)])
            xpos = i + (j - 0.5) * 0.3
            if v.size:
                ax.bar(xpos, v.mean(), width=0.28, color=colour, alpha=0.45, label=label if i == 0 else None)
                if v.size > 1:
                    ax.errorbar(xpos, v.mean(), yerr=v.std(ddof=1), color="k", capsize=3, lw=1)
                ax.scatter(np.full(v.size, xpos), v, color=colour, s=12, zorder=3)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("agreement with teacher (argmax)")
    ax.set_ylim(0, 1)
    ax.set_title("Agreement on teacher-correct vs teacher-wrong test inputs\n(bars: mean over seeds, ±1 sd; dots: seeds)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--out", default=None, help="output folder (default results/functional_transfer/<preset>)")
    ap.add_argument("--seeds", type=int, default=None, help="override the preset's number of seeds")
    for name in ("n_per_class", "teacher_epochs", "student_epochs", "n_test"):
        ap.add_argument("--" + name.replace("_", "-"), type=int, default=None, help=f"override the preset's {name}")
    ap.add_argument("--data-root", default=None, help="CIFAR-10 location (default: $KDBOUNDS_DATA / standard places)")
    ap.add_argument("--cache", default=None, help="run cache folder (default OUT/runs); finished runs are reused")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    p = dict(PRESETS[args.preset])
    if args.seeds is not None:
        if args.seeds < 2:
            ap.error("--seeds must be ≥ 2 (the seed-level tests need 2 per group)")
        p["seeds"] = args.seeds
    for name in ("n_per_class", "teacher_epochs", "student_epochs", "n_test"):
        if getattr(args, name) is not None:
            if getattr(args, name) < (10 if name == "n_test" else 1):
                ap.error(f"--{name.replace('_', '-')} must be ≥ {10 if name == 'n_test' else 1}")
            p[name] = getattr(args, name)
    out = Path(args.out or ROOT / "results" / "functional_transfer" / args.preset)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    from kdbounds.data import load_cifar

    train_x, train_y = load_cifar("cifar10", root=args.data_root, split="train")
    test_x, test_y = load_cifar("cifar10", root=args.data_root, split="test")
    # Every model is evaluated on the same held-out subset (also the trainer's test set, to keep it fast).
    ex, ey = test_subset(test_x, test_y, p["n_test"])
    data = (train_x, train_y, ex, ey)
    progress = not args.no_progress

    cache = Path(args.cache) if args.cache else out / "runs"
    teacher_cfg = teacher_config(p, args.data_root)
    t_res = train_cached(teacher_cfg, cache, data=data, progress=progress)
    teacher_ckpt = t_res.paths["model"]
    runs = student_configs(p, teacher_cfg, teacher_ckpt, args.data_root)
    (out / "config.json").write_text(json.dumps(
        {"preset": args.preset, "params": p, "teacher": teacher_cfg.to_dict(), "teacher_ckpt": teacher_ckpt,
         "runs": {g: [c.to_dict() for c in cs] for g, cs in runs.items()}}, indent=2, default=str))
    teacher = load_checkpoint_model(teacher_ckpt)
    zt = predict_logits(teacher, ex)
    print(f"teacher {teacher_cfg.arch}: test acc {t_res.final.get('test_acc', float('nan')):.4f} "
          f"(eval subset {len(ey)} images)", flush=True)

    reports: dict[str, list[Any]] = {g: [] for g in GROUPS}
    per_run: list[dict[str, Any]] = []
    for g in GROUPS:
        for cfg in runs[g]:
            res = train_cached(cfg, cache, data=data, progress=progress)
            student = load_checkpoint_model(res.paths["model"])
            rep = fidelity_report(predict_logits(student, ex), zt, torch.as_tensor(ey), n_boot=100, seed=cfg.seed)
            reports[g].append(rep)
            row = {"group": g, "seed": cfg.seed, "init_seed": cfg.init_seed if cfg.init_seed is not None else cfg.seed,
                   "wall_time_s": res.wall_time_s, **{k: v for k, v in rep.values().items()}}
            per_run.append(row)
            print(f"{g:<6} seed {cfg.seed:>4}: acc {rep.student_accuracy.value:.4f} agree {rep.agreement.value:.4f} "
                  f"(T right {rep.agreement_teacher_correct.value:.4f}, T wrong {rep.agreement_teacher_wrong.value:.4f}) "
                  f"JS {rep.js_divergence.value:.4f}", flush=True)

    summary = compare_methods(reports, reference="kd")
    print()
    print(summary)

    with open(out / "per_run.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(per_run[0]))
        w.writeheader()
        w.writerows(per_run)
    with open(out / "summary.csv", "w", newline="") as f:
        rows = summary.rows()
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    results = {
        "preset": args.preset,
        "teacher": {"config": teacher_cfg.to_dict(), "test_acc": t_res.final.get("test_acc"),
                    "eval_acc": float((zt.argmax(1).numpy() == ey).mean()), "n_eval": int(len(ey))},
        "reports": {g: [r.to_dict() for r in rs] for g, rs in reports.items()},
        "summary": summary.to_dict(),
        "wall_time_s": time.perf_counter() - t0,
    }
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, allow_nan=False))
    tmp.replace(out / "results.json")
    stats = {g: {k: [r.values()[k] for r in reports[g]] for k in ("agreement_teacher_correct", "agreement_teacher_wrong")}
             for g in GROUPS}
    plot_split(stats, out / "agreement_split.png")
    print(f"\nwrote {out}/results.json, per_run.csv, summary.csv, agreement_split.png "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
