"""Nuisance-teacher experiment (RID paper, methods.md §3): does VID collapse under an untrained
teacher while RID degrades much less?

Teachers: a trained one and an untrained one (same architecture, random init, never trained,
saved as a checkpoint like the trained one). Students, per seed: the student alone ("ce"), and
KD, VID, RID (and ITRD) from each teacher. The reported number is the LAST-epoch test accuracy;
the spread is over seeds (a seed fixes the student's initialisation and data order, so methods
are compared on paired seeds). Trained models are cached (kdbounds.studies.cache.train_cached), so a
re-run only trains what is missing.

    python experiments/nuisance_teacher.py --preset smoke --out results/nuisance_teacher/smoke
    python experiments/nuisance_teacher.py --preset cpu   --out results/nuisance_teacher/cpu
    python experiments/nuisance_teacher.py --preset paper --out results/nuisance_teacher/paper

Presets (explicit options override them):
  smoke  resnet8 -> resnet8, 10 images/class, 100 test images, 2 epochs, 1 seed (< 1 min; CI)
  cpu    resnet20 -> resnet8, 200 images/class, 2000 test images, 16 epochs, 2 seeds
         (about 15 min on 2 CPU cores)
  paper  WRN-40-2 -> WRN-16-1, full CIFAR-10, 300 epochs, batch 128, lr 0.05 x0.2 at 150/200,
         Nesterov, 3 seeds; RID q=30 r=1/4 lam1=1 lam2=10 (GPU)
All presets: VID weight lam=100 and gradient-norm clip 100 for VID/ITRD (RID clips at 100 in
its own step), as in the official nuisance-teacher script; KD gamma=0.1 alpha=0.9 T=4.

Writes to --out: results.csv (one row per run), summary.csv (mean/std/n per teacher x method),
results.json (config, rows, summary), accuracy.png (bar plot with the spread over seeds).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kdbounds.data import load_cifar, stratified_subset  # noqa: E402
from kdbounds.distill import TrainConfig  # noqa: E402
from kdbounds.distill.controls import make_untrained_teacher  # noqa: E402
from kdbounds.studies.cache import train_cached  # noqa: E402

METHODS = ("ce", "kd", "vid", "rid", "itrd")

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(teacher_arch="resnet8", student_arch="resnet8", n_per_class=10,
                  test_per_class=10, teacher_epochs=1, epochs=2, batch_size=32, lr=0.05,
                  seeds=1, methods="ce,kd,vid,rid,itrd", rid_q=2, rid_r=0.25, lam2=10.0, vid_lam=100.0,
                  milestones=None, lr_gamma=0.1, nesterov=True, device="cpu",
                  schedule="constant", threads=1),
    "cpu": dict(teacher_arch="resnet20", student_arch="resnet8", n_per_class=200,
                test_per_class=200, teacher_epochs=20, epochs=16, batch_size=64, lr=0.05,
                seeds=2, methods="ce,kd,vid,rid,itrd", rid_q=4, rid_r=0.25, lam2=10.0, vid_lam=100.0,
                milestones="8,11", lr_gamma=0.2, nesterov=True, device="cpu",
                schedule="step", threads=None),
    "paper": dict(teacher_arch="wrn_40_2", student_arch="wrn_16_1", n_per_class=None,
                  test_per_class=None, teacher_epochs=200, epochs=300, batch_size=128, lr=0.05,
                  seeds=3, methods="ce,kd,vid,rid,itrd", rid_q=30, rid_r=0.25, lam2=10.0, vid_lam=100.0,
                  milestones="150,200", lr_gamma=0.2, nesterov=True, device="auto",
                  schedule="step", threads=None),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    p.add_argument("--out", default=None, help="output folder (default results/nuisance_teacher/"
                                                "<preset>)")
    p.add_argument("--cache-root", default=None,
                   help="run cache (default: <out>/../cache); trained models are reused")
    p.add_argument("--data-root", default=None, help="CIFAR-10 location (default "
                                                     "$KDBOUNDS_DATA, then standard places)")
    for name, typ in (("teacher_arch", str), ("student_arch", str), ("n_per_class", int),
                      ("test_per_class", int), ("teacher_epochs", int), ("epochs", int),
                      ("batch_size", int), ("lr", float), ("seeds", int), ("methods", str),
                      ("rid_q", int), ("rid_r", float), ("lam2", float), ("vid_lam", float),
                      ("milestones", str),
                      ("lr_gamma", float), ("threads", int),
                      ("device", str), ("schedule", str)):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=typ, default=None)
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return p.parse_args(argv)


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Preset values overridden by explicit options; validated."""
    cfg = dict(PRESETS[args.preset])
    for k in cfg:
        v = getattr(args, k, None)
        if v is not None:
            cfg[k] = v
    methods = [m.strip() for m in str(cfg["methods"]).split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise SystemExit(f"--methods: unknown {bad}; choose from {','.join(METHODS)}")
    cfg["methods"] = methods
    if cfg["seeds"] < 1:
        raise SystemExit("--seeds must be >= 1")
    ms = cfg["milestones"]
    cfg["milestones"] = (None if ms in (None, "", "none") else
                         tuple(int(m) for m in str(ms).split(",")))
    cfg["preset"] = args.preset
    return cfg


def load_data(cfg: dict[str, Any], data_root: str | None):
    """(train_x, train_y, test_x, test_y); test optionally a stratified subset (seed 0)."""
    tx, ty = load_cifar("cifar10", root=data_root, split="train")
    vx, vy = load_cifar("cifar10", root=data_root, split="test")
    if cfg["test_per_class"]:
        idx = stratified_subset(vy, cfg["test_per_class"], seed=0)
        vx, vy = vx[idx], vy[idx]
    return tx, ty, vx, vy


def base_config(cfg: dict[str, Any], arch: str, epochs: int, seed: int,
                teacher: bool = False) -> TrainConfig:
    """Shared recipe. Students use the preset's schedule (paper: x0.2 at 150/200 of 300);
    the teacher uses the default step fractions (0.625/0.75/0.875 of its epochs, x0.1)."""
    return TrainConfig(arch=arch, dataset="cifar10", epochs=epochs, batch_size=cfg["batch_size"],
                       lr=cfg["lr"], nesterov=cfg["nesterov"], schedule=cfg["schedule"],
                       milestones=None if teacher else cfg["milestones"],
                       lr_gamma=0.1 if teacher else cfg["lr_gamma"], seed=seed,
                       n_per_class=cfg["n_per_class"], device=cfg["device"],
                       eval_every=max(epochs, 1))


def method_kwargs(cfg: dict[str, Any], method: str) -> dict[str, Any]:
    """RID: the preset's q, r, lam2 and the SAME lr schedule as every other student
    (lr_schedule="config"; in the cpu/paper presets that schedule is the paper's).
    VID: weight lam = vid_lam (100 in the official nuisance-teacher script, alpha=[1, 100])."""
    if method == "rid":
        return {"q": cfg["rid_q"], "r": cfg["rid_r"], "lam1": 1.0, "lam2": cfg["lam2"],
                "lr_schedule": "config"}
    if method == "vid":
        return {"lam": cfg["vid_lam"]}
    return {}


def grad_clip(method: str) -> float | None:
    """Gradient-norm clip 100 for the feature methods (official script: VID and RID), none for
    the others (RID clips inside its own step, hyper-parameter grad_clip=100)."""
    return 100.0 if method in ("vid", "itrd") else None


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """mean, sample std (ddof=1; 0 for one seed), n and standard error per (teacher, method)."""
    groups: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        groups.setdefault((r["teacher"], r["method"]), []).append(r["test_acc"])
    out = []
    for (t, m), accs in groups.items():
        a = np.asarray(accs, dtype=float)
        sd = float(a.std(ddof=1)) if len(a) > 1 else 0.0
        out.append({"teacher": t, "method": m, "mean_test_acc": float(a.mean()), "std": sd,
                    "se": sd / math.sqrt(len(a)), "n": len(a)})
    return out


def write_outputs(out: Path, cfg: dict[str, Any], rows, summary, teacher_acc) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0]))
        w.writeheader()
        w.writerows(summary)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps({"config": {k: v for k, v in cfg.items()},
                               "teacher_test_acc": teacher_acc, "rows": rows,
                               "summary": summary}, indent=2, default=str))
    tmp.replace(out / "results.json")
    plot(out / "accuracy.png", cfg, summary, teacher_acc)


def plot(path: Path, cfg, summary, teacher_acc) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in cfg["methods"] if m != "ce"]
    by = {(s["teacher"], s["method"]): s for s in summary}
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(methods), 3.6))
    xs = np.arange(len(methods))
    for k, (kind, color) in enumerate((("trained", "tab:blue"), ("untrained", "tab:red"))):
        vals = [by.get((kind, m)) for m in methods]
        ax.bar(xs + (k - 0.5) * 0.38, [v["mean_test_acc"] if v else np.nan for v in vals], 0.38,
               yerr=[v["std"] if v else 0 for v in vals], capsize=3, color=color,
               label=f"{kind} teacher")
    ce = by.get(("none", "ce"))
    if ce:
        ax.axhline(ce["mean_test_acc"], color="k", ls="--", lw=1,
                   label=f"student alone {ce['mean_test_acc']:.3f}")
    if teacher_acc.get("trained") is not None:
        ax.axhline(teacher_acc["trained"], color="tab:blue", ls=":", lw=1,
                   label=f"trained teacher {teacher_acc['trained']:.3f}")
    ax.set_xticks(xs, [m.upper() for m in methods])
    ax.set_ylabel("final test accuracy")
    ax.set_title(f"{cfg['teacher_arch']} -> {cfg['student_arch']}, CIFAR-10 ({cfg['preset']}; "
                 f"bars: mean ± sd over {cfg['seeds']} seed(s))", fontsize=8)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def markdown_table(summary, teacher_acc) -> str:
    lines = ["| teacher | method | test acc (mean) | sd | n |", "|---|---|---|---|---|"]
    for s in sorted(summary, key=lambda s: (s["teacher"] != "none", s["teacher"], s["method"])):
        lines.append(f"| {s['teacher']} | {s['method']} | {s['mean_test_acc']:.4f} | "
                     f"{s['std']:.4f} | {s['n']} |")
    for k, v in teacher_acc.items():
        if v is not None:
            lines.append(f"| ({k} teacher itself) | - | {v:.4f} | - | 1 |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = resolve(args)
    out = Path(args.out or f"results/nuisance_teacher/{cfg['preset']}")
    cache = Path(args.cache_root) if args.cache_root else out.parent / "cache"
    progress = not args.no_progress
    if cfg["threads"]:
        # intra-op threads of this process (smoke: 1; on a busy 2-core machine more threads
        # spin-wait: the smoke preset took 2 min of CPU with the default instead of 7 s)
        import torch
        torch.set_num_threads(int(cfg["threads"]))
    data = load_data(cfg, args.data_root)

    # teachers: trained (cached) and untrained (same architecture, seed-fixed random init)
    t_cfg = base_config(cfg, cfg["teacher_arch"], cfg["teacher_epochs"], seed=1000, teacher=True)
    t_res = train_cached(t_cfg, cache, data=data, progress=progress)
    teachers = {"trained": Path(t_res.paths["model"])}
    teachers["untrained"] = make_untrained_teacher(cfg["teacher_arch"], 10, 1000,
                                                   cache / "teachers" /
                                                   f"untrained_{cfg['teacher_arch']}_s1000.pt")
    teacher_acc = {"trained": t_res.final.get("test_acc"),
                   "untrained": checkpoint_accuracy(teachers["untrained"], data[2], data[3])}

    rows: list[dict[str, Any]] = []
    for seed in range(cfg["seeds"]):
        for m in cfg["methods"]:
            for kind in (["none"] if m == "ce" else ["trained", "untrained"]):
                c = replace(base_config(cfg, cfg["student_arch"], cfg["epochs"], seed),
                            method=m, method_kwargs=method_kwargs(cfg, m), grad_clip=grad_clip(m))
                res = train_cached(c, cache, teacher_ckpt=None if m == "ce" else teachers[kind],
                                   data=data, progress=progress)
                rows.append({"teacher": kind, "method": m, "seed": seed,
                             "test_acc": float(res.final["test_acc"]),
                             "train_acc": float(res.final.get("train_acc", float("nan"))),
                             "run_dir": res.paths["out_dir"]})
    summary = summarise(rows)
    write_outputs(out, cfg, rows, summary, teacher_acc)
    print(markdown_table(summary, teacher_acc))
    print(f"wrote {out}/results.csv, summary.csv, results.json, accuracy.png")
    return 0


def checkpoint_accuracy(path: Path, images: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy of a saved model (used for the untrained teacher)."""
    from kdbounds.distill.checkpoint import load_checkpoint_model
    from kdbounds.distill.trainer import predict_logits

    model = load_checkpoint_model(path)
    logits = predict_logits(model, images)
    return float((logits.argmax(1).numpy() == labels).mean())


if __name__ == "__main__":
    raise SystemExit(main())
