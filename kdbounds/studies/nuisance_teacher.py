"""Nuisance-teacher study (RID paper, methods.md §3): does VID collapse under an untrained teacher
while RID degrades much less?

Teachers: a trained one and an untrained one (same architecture, random init, never trained, saved
as a checkpoint like the trained one). Students, per seed: the student alone (``"ce"``), and KD, VID,
RID (and ITRD) from each teacher. The reported number is the LAST-epoch test accuracy; the spread is
over seeds (a seed fixes the student's initialisation and data order, so methods are compared on
paired seeds). Trained models are cached (:func:`kdbounds.studies.cache.train_cached`), so a re-run
only trains what is missing.

All presets: VID weight ``lam=100`` and gradient-norm clip 100 for VID/ITRD (RID clips at 100 in its
own step), as in the official nuisance-teacher script; KD ``gamma=0.1 alpha=0.9 T=4``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_csv, atomic_write_json
from ..data import load_cifar, stratified_subset
from ..distill import TrainConfig
from ..distill.controls import make_untrained_teacher
from .cache import resolve_cache_root, train_cached

__all__ = ["METHODS", "Config", "PRESETS", "Result", "run", "write_results", "plot_accuracy", "summary",
           "summarise", "base_config", "method_kwargs", "grad_clip"]

METHODS = ("ce", "kd", "vid", "rid", "itrd")


@dataclass(frozen=True)
class Config:
    """Everything that determines a nuisance-teacher run (recorded in ``results.json``)."""

    preset: str
    teacher_arch: str
    student_arch: str
    n_per_class: int | None
    test_per_class: int | None
    teacher_epochs: int
    epochs: int
    batch_size: int
    lr: float
    seeds: int
    methods: tuple[str, ...] = METHODS
    rid_q: int = 4
    rid_r: float = 0.25
    lam2: float = 10.0
    vid_lam: float = 100.0
    milestones: tuple[int, ...] | None = None
    lr_gamma: float = 0.2
    nesterov: bool = True
    device: str = "cpu"
    schedule: str = "step"
    threads: int | None = None
    data_root: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        if self.milestones is not None:  # () means "no milestones" (the option --milestones none)
            object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones) or None)
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods: unknown {bad}; choose from {','.join(METHODS)}")
        if self.seeds < 1:
            raise ValueError(f"seeds: expected >= 1, got {self.seeds}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, Config] = {
    # < 1 min; CI
    "smoke": Config(preset="smoke", teacher_arch="resnet8", student_arch="resnet8", n_per_class=10,
                    test_per_class=10, teacher_epochs=1, epochs=2, batch_size=32, lr=0.05, seeds=1,
                    rid_q=2, rid_r=0.25, lam2=10.0, vid_lam=100.0, milestones=None, lr_gamma=0.1,
                    nesterov=True, device="cpu", schedule="constant", threads=1),
    # about 15 min on 2 CPU cores
    "cpu": Config(preset="cpu", teacher_arch="resnet20", student_arch="resnet8", n_per_class=200,
                  test_per_class=200, teacher_epochs=20, epochs=16, batch_size=64, lr=0.05, seeds=2,
                  rid_q=4, rid_r=0.25, lam2=10.0, vid_lam=100.0, milestones=(8, 11), lr_gamma=0.2,
                  nesterov=True, device="cpu", schedule="step", threads=None),
    # WRN-40-2 -> WRN-16-1, full CIFAR-10, 300 epochs, lr 0.05 x0.2 at 150/200, Nesterov (GPU)
    "paper": Config(preset="paper", teacher_arch="wrn_40_2", student_arch="wrn_16_1", n_per_class=None,
                    test_per_class=None, teacher_epochs=200, epochs=300, batch_size=128, lr=0.05, seeds=3,
                    rid_q=30, rid_r=0.25, lam2=10.0, vid_lam=100.0, milestones=(150, 200), lr_gamma=0.2,
                    nesterov=True, device="auto", schedule="step", threads=None),
}


@dataclass(frozen=True)
class Result:
    """One row per student run, the per-(teacher, method) summary and the teachers' own accuracy."""

    config: dict[str, Any]
    rows: tuple[dict[str, Any], ...]
    summary: tuple[dict[str, Any], ...]
    teacher_test_acc: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "teacher_test_acc": self.teacher_test_acc, "rows": list(self.rows),
                "summary": list(self.summary)}


def load_data(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y); test optionally a stratified subset (seed 0)."""
    tx, ty = load_cifar("cifar10", root=cfg.data_root, split="train")
    vx, vy = load_cifar("cifar10", root=cfg.data_root, split="test")
    if cfg.test_per_class:
        idx = stratified_subset(vy, cfg.test_per_class, seed=0)
        vx, vy = vx[idx], vy[idx]
    return tx, ty, vx, vy


def base_config(cfg: Config, arch: str, epochs: int, seed: int, teacher: bool = False) -> TrainConfig:
    """Shared recipe. Students use the preset's schedule (paper: x0.2 at 150/200 of 300);
    the teacher uses the default step fractions (0.625/0.75/0.875 of its epochs, x0.1)."""
    return TrainConfig(arch=arch, dataset="cifar10", epochs=epochs, batch_size=cfg.batch_size,
                       lr=cfg.lr, nesterov=cfg.nesterov, schedule=cfg.schedule,
                       milestones=None if teacher else cfg.milestones,
                       lr_gamma=0.1 if teacher else cfg.lr_gamma, seed=seed,
                       n_per_class=cfg.n_per_class, device=cfg.device, eval_every=max(epochs, 1))


def method_kwargs(cfg: Config, method: str) -> dict[str, Any]:
    """RID: the preset's q, r, lam2 and the SAME lr schedule as every other student
    (``lr_schedule="config"``; in the cpu/paper presets that schedule is the paper's).
    VID: weight ``lam = vid_lam`` (100 in the official nuisance-teacher script, alpha=[1, 100])."""
    if method == "rid":
        return {"q": cfg.rid_q, "r": cfg.rid_r, "lam1": 1.0, "lam2": cfg.lam2, "lr_schedule": "config"}
    if method == "vid":
        return {"lam": cfg.vid_lam}
    return {}


def grad_clip(method: str) -> float | None:
    """Gradient-norm clip 100 for the feature methods (official script: VID and ITRD), none for
    the others (RID clips inside its own step, hyper-parameter ``grad_clip=100``)."""
    return 100.0 if method in ("vid", "itrd") else None


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r"""Mean, sample std (ddof=1; 0 for one seed), n and standard error per (teacher, method).

    .. math::
        \mathrm{se} = s / \sqrt{n}, \qquad s^2 = \tfrac{1}{n-1}\sum_i (a_i - \bar a)^2.
    """
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


def checkpoint_accuracy(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy of a saved model (used for the untrained teacher)."""
    from ..distill.checkpoint import load_checkpoint_model
    from ..distill.trainer import predict_logits

    logits = predict_logits(load_checkpoint_model(path), images)
    return float((logits.argmax(1).numpy() == labels).mean())


def run(config: Config, out_dir: str | os.PathLike, *, cache_root: str | os.PathLike | None = None,
        progress: bool = True, log: Callable[[str], None] = print) -> Result:
    """Train (or reuse) both teachers and every student, then write the results to ``out_dir``.

    Writes ``results.csv`` (one row per run), ``summary.csv`` (mean/std/n per teacher x method),
    ``results.json`` (config, rows, summary) and ``accuracy.png``.

    Args:
        config: e.g. ``PRESETS["cpu"]``.
        out_dir: output folder (created when missing).
        cache_root: run cache (default ``out_dir/../cache``); trained models are reused.
        progress: show progress bars.
        log: where progress lines go.

    Returns:
        The :class:`Result`.
    """
    out = Path(out_dir)
    cache = resolve_cache_root(out, cache_root)
    if config.threads:
        # intra-op threads of this process (smoke: 1; on a busy 2-core machine more threads
        # spin-wait: the smoke preset took 2 min of CPU with the default instead of 7 s)
        import torch

        torch.set_num_threads(int(config.threads))
    data = load_data(config)
    # teachers: trained (cached) and untrained (same architecture, seed-fixed random init)
    t_res = train_cached(base_config(config, config.teacher_arch, config.teacher_epochs, seed=1000, teacher=True),
                         cache, data=data, progress=progress)
    teachers = {"trained": Path(t_res.paths["model"]),
                "untrained": make_untrained_teacher(config.teacher_arch, 10, 1000,
                                                    cache / "teachers" / f"untrained_{config.teacher_arch}_s1000.pt")}
    teacher_acc = {"trained": t_res.final.get("test_acc"),
                   "untrained": checkpoint_accuracy(teachers["untrained"], data[2], data[3])}
    rows: list[dict[str, Any]] = []
    for seed in range(config.seeds):
        for m in config.methods:
            for kind in (["none"] if m == "ce" else ["trained", "untrained"]):
                c = dataclasses.replace(base_config(config, config.student_arch, config.epochs, seed),
                                        method=m, method_kwargs=method_kwargs(config, m), grad_clip=grad_clip(m))
                res = train_cached(c, cache, teacher_ckpt=None if m == "ce" else teachers[kind],
                                   data=data, progress=progress)
                rows.append({"teacher": kind, "method": m, "seed": seed,
                             "test_acc": float(res.final["test_acc"]),
                             "train_acc": float(res.final.get("train_acc", float("nan"))),
                             "run_dir": res.paths["out_dir"]})
    result = Result(config.to_dict(), tuple(rows), tuple(summarise(rows)), teacher_acc)
    write_results(result, out)
    plot_accuracy(result, out / "accuracy.png")
    return result


def write_results(result: Result, out: str | os.PathLike) -> dict[str, Path]:
    """``results.csv``, ``summary.csv`` and ``results.json`` (strict JSON), each atomically."""
    out = Path(out)
    return {"csv": atomic_write_csv(out / "results.csv", result.rows),
            "summary": atomic_write_csv(out / "summary.csv", result.summary),
            "json": atomic_write_json(out / "results.json", result.to_dict())}


def plot_accuracy(result: Result, path: str | os.PathLike) -> Path:
    """Bar plot of the final test accuracy per teacher x method (mean ± sd over seeds)."""
    from .plots import plt_figure, save_figure

    cfg = result.config
    methods = [m for m in cfg["methods"] if m != "ce"]
    by = {(s["teacher"], s["method"]): s for s in result.summary}
    fig, ax = plt_figure(figsize=(1.6 + 1.3 * len(methods), 3.6))
    xs = np.arange(len(methods))
    for k, (kind, color) in enumerate((("trained", "tab:blue"), ("untrained", "tab:red"))):
        vals = [by.get((kind, m)) for m in methods]
        ax.bar(xs + (k - 0.5) * 0.38, [v["mean_test_acc"] if v else np.nan for v in vals], 0.38,
               yerr=[v["std"] if v else 0 for v in vals], capsize=3, color=color, label=f"{kind} teacher")
    ce = by.get(("none", "ce"))
    if ce:
        ax.axhline(ce["mean_test_acc"], color="k", ls="--", lw=1, label=f"student alone {ce['mean_test_acc']:.3f}")
    trained = result.teacher_test_acc.get("trained")
    if trained is not None:
        ax.axhline(trained, color="tab:blue", ls=":", lw=1, label=f"trained teacher {trained:.3f}")
    ax.set_xticks(xs, [m.upper() for m in methods])
    ax.set_ylabel("final test accuracy")
    ax.set_title(f"{cfg['teacher_arch']} -> {cfg['student_arch']}, CIFAR-10 ({cfg['preset']}; "
                 f"bars: mean ± sd over {cfg['seeds']} seed(s))", fontsize=8)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return save_figure(fig, path)


def summary(result: Result) -> str:
    """Markdown table of the summary (and the teachers' own accuracy)."""
    lines = ["| teacher | method | test acc (mean) | sd | n |", "|---|---|---|---|---|"]
    for s in sorted(result.summary, key=lambda s: (s["teacher"] != "none", s["teacher"], s["method"])):
        lines.append(f"| {s['teacher']} | {s['method']} | {s['mean_test_acc']:.4f} | {s['std']:.4f} | {s['n']} |")
    for k, v in result.teacher_test_acc.items():
        if v is not None:
            lines.append(f"| ({k} teacher itself) | - | {v:.4f} | - | 1 |")
    return "\n".join(lines)
