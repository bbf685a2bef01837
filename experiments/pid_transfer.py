"""PID of distilled knowledge over training: Red(Y:T,S) and Uni(Y:T\\S) per epoch for KD, VID and
RID students under a trained and an untrained teacher (methods.md §3, issue 7).

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
The discretiser (PCA 10, k-means 10) is fitted on the first half of the held-out images and the
histogram uses the second half; the shuffled-label floor is recorded with every point.
Writes: curves.csv (one row per method × teacher × epoch), results.json, curves.png.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import warnings

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kdbounds.data import load_cifar, stratified_subset  # noqa: E402
from kdbounds.distill import TrainConfig, available_methods, train  # noqa: E402
from kdbounds.distill.controls import make_untrained_teacher  # noqa: E402
from kdbounds.studies.pid_transfer import PIDTracker  # noqa: E402
from kdbounds.studies.cache import train_cached  # noqa: E402

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(teacher_arch="resnet8", student_arch="resnet8", n_per_class=10, pid_per_class=40,
                  teacher_epochs=1, epochs=2, every=1, batch_size=32, device="cpu", n_boot=0, n_shuffle=2,
                  rid_q=2),
    "cpu": dict(teacher_arch="resnet20", student_arch="resnet8", n_per_class=100, pid_per_class=200,
                teacher_epochs=10, epochs=6, every=2, batch_size=64, device="cpu", n_boot=0, n_shuffle=3,
                rid_q=3),
    "gpu": dict(teacher_arch="wrn_40_2", student_arch="wrn_16_1", n_per_class=None, pid_per_class=1000,
                teacher_epochs=60, epochs=40, every=5, batch_size=128, device="auto", n_boot=10, n_shuffle=5,
                rid_q=10),
}


def method_kwargs(cfg: dict[str, Any], method: str) -> dict[str, Any]:
    """RID: cycle length q from the preset, r = 1/4, lam1 = 1, lam2 = 10, the shared lr schedule."""
    if method == "rid":
        return {"q": cfg["rid_q"], "r": 0.25, "lam1": 1.0, "lam2": 10.0, "lr_schedule": "config"}
    return {}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="smoke")
    p.add_argument("--out", default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--methods", default="kd,vid,rid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # solver accuracy is recorded per point (pid_status, duality_gap); keep the console readable
    warnings.filterwarnings("ignore", message="Solution may be inaccurate")
    warnings.filterwarnings("ignore", message="BROJA PID: solver")
    cfg = dict(PRESETS[args.preset])
    out = Path(args.out or f"results/pid_transfer/{args.preset}")
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    methods = [m for m in args.methods.split(",") if m]
    missing = [m for m in methods if m not in available_methods()]
    if missing:
        raise SystemExit(f"methods not registered: {missing}; available: {available_methods()}")

    tx, ty = load_cifar("cifar10", root=args.data_root, split="train")
    vx, vy = load_cifar("cifar10", root=args.data_root, split="test")
    idx = stratified_subset(vy, 2 * cfg["pid_per_class"], seed=0)
    rng = np.random.default_rng(0)
    idx = rng.permutation(idx)
    half = idx.size // 2
    fit_x, fit_y, ev_x, ev_y = vx[idx[:half]], vy[idx[:half]], vx[idx[half:]], vy[idx[half:]]
    data = (tx, ty, vx, vy)

    def base(arch: str, epochs: int, seed: int) -> TrainConfig:
        return TrainConfig(arch=arch, dataset="cifar10", epochs=epochs, batch_size=cfg["batch_size"],
                           seed=seed, n_per_class=cfg["n_per_class"], device=cfg["device"],
                           eval_every=max(epochs, 1))

    t_res = train_cached(base(cfg["teacher_arch"], cfg["teacher_epochs"], 1000), cache, data=data,
                         progress=not args.no_progress)
    teachers = {"trained": Path(t_res.paths["model"]),
                "untrained": make_untrained_teacher(cfg["teacher_arch"], 10, 1000,
                                                    cache / "teachers" / f"untrained_{cfg['teacher_arch']}.pt")}
    rows: list[dict[str, Any]] = []
    for kind, ckpt in teachers.items():
        for m in methods:
            tracker = PIDTracker(fit_x, fit_y, ev_x, ev_y, every=cfg["every"], n_boot=cfg["n_boot"],
                                 n_shuffle=cfg["n_shuffle"], seed=args.seed)
            c = replace(base(cfg["student_arch"], cfg["epochs"], args.seed), method=m, teacher_ckpt=str(ckpt),
                        method_kwargs=method_kwargs(cfg, m))
            # resume=False: a finished run would skip its callbacks and leave no curve
            res = train(c, out / "runs" / f"{m}-{kind}", callbacks=[tracker], data=data,
                        progress=not args.no_progress, resume=False)
            for r in tracker.records:
                rows.append({"teacher": kind, "method": m, **r,
                             "final_test_acc": float(res.final.get("test_acc", float("nan")))})
            print(f"{kind:9s} {m:4s} " + "  ".join(
                f"ep{r['epoch']}: Red={r['redundancy']:.3f} Uni={r['unique_t']:.3f}" for r in tracker.records),
                flush=True)
            write_outputs(out, args.preset, cfg, methods, rows)  # after every run: partial results survive
    plot(rows, out / "curves.png")
    print(f"wrote {out}/curves.csv, results.json, curves.png")
    return 0


def write_outputs(out: Path, preset: str, cfg: dict[str, Any], methods: list[str], rows: list[dict[str, Any]]) -> None:
    """curves.csv and results.json, each written to a temporary file and renamed (atomic)."""
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("teacher", "method", "epoch"), k))
    tmp = out / "curves.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out / "curves.csv")
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps({"preset": preset, "config": cfg, "methods": methods, "rows": rows}, indent=2,
                              default=str))
    tmp.replace(out / "results.json")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, kind in zip(axes, ("trained", "untrained")):
        for m in sorted({r["method"] for r in rows}):
            rr = sorted((r for r in rows if r["teacher"] == kind and r["method"] == m), key=lambda r: r["epoch"])
            if not rr:
                continue
            ep = [r["epoch"] for r in rr]
            line, = ax.plot(ep, [r["redundancy"] for r in rr], "-o", label=f"{m} Red")
            ax.plot(ep, [r["unique_t"] for r in rr], "--s", color=line.get_color(), label=f"{m} Uni(T\\S)")
            ax.plot(ep, [r["redundancy_shuffle_mean"] for r in rr], ":", color=line.get_color(), alpha=0.6)
        ax.set_title(f"{kind} teacher (dotted: shuffled-label Red)")
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("nats")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
