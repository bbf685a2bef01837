"""Functional transfer study: does the student learn the teacher's function, or is KD a regulariser?

Teacher -> students by KD, random-control distillation (RCD), SIDDO and student alone, over several
seeds; per student the fidelity metrics against the teacher on held-out test inputs
(:mod:`kdbounds.fidelity`), then KD vs each control with Welch's t / Mann–Whitney U, effect sizes and
Holm-adjusted p-values; a plot of agreement on teacher-correct vs teacher-wrong inputs (the "negative
asymmetric payoff" of methods.md §5).

Controls (methods.md §5):

* ``alone``  — the student architecture trained with cross-entropy from init seed s, no teacher;
* ``kd``     — the same init and data order as ``alone`` (seed s), Hinton KD from the teacher;
* ``rcd``    — the same, the teacher's distribution replaced by random noise (no teacher);
* ``siddo``  — same initialisation as the *teacher*, different data order, no teacher (when the
  student architecture equals the teacher's; otherwise same init as ``kd`` with a different data order).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_write_csv, atomic_write_json
from ..distill.checkpoint import load_checkpoint_model
from ..distill.config import TrainConfig
from ..distill.controls import siddo_config
from ..distill.trainer import predict_logits
from ..fidelity import compare_methods, fidelity_report
from ..runs.cache import resolve_cache_root
from ..runs.grid import DataSpec, load_data, test_subset, train_spec
from ..runs.sweep import RunSpec, run_sweep
from ._config import ConfigRecord
from ._provenance import with_provenance

__all__ = ["GROUPS", "Config", "PRESETS", "Result", "run", "write_results", "plot_agreement_split",
           "agreement_split_figure", "GROUP_LABELS", "summary",
           "teacher_config", "student_configs", "test_subset", "training_specs"]

GROUPS = ("kd", "rcd", "siddo", "alone")


@dataclass(frozen=True)
class Config(ConfigRecord):
    """Everything that determines a functional-transfer run."""

    preset: str
    teacher_arch: str
    student_arch: str
    n_per_class: int | None
    teacher_epochs: int
    student_epochs: int
    seeds: int
    n_test: int | None
    batch_size: int
    lr: float
    device: str = "cpu"
    data_root: str | None = None

    def __post_init__(self) -> None:
        if self.seeds < 2:
            raise ValueError(f"seeds: expected >= 2 (the seed-level tests need 2 per group), got {self.seeds}")
        for name in ("n_per_class", "teacher_epochs", "student_epochs"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"{name}: expected >= 1, got {v}")
        if self.n_test is not None and self.n_test < 10:
            raise ValueError(f"n_test: expected >= 10, got {self.n_test}")

    def params(self) -> dict[str, Any]:
        """The preset's numbers (without ``preset`` and ``data_root``), as recorded in ``config.json``."""
        d = self.to_dict()
        d.pop("preset")
        d.pop("data_root")
        return d


PRESETS: dict[str, Config] = {
    # a few seconds: wiring check for CI
    "smoke": Config(preset="smoke", teacher_arch="resnet8", student_arch="resnet8", n_per_class=10,
                    teacher_epochs=1, student_epochs=1, seeds=2, n_test=100, batch_size=64, lr=0.05, device="cpu"),
    # ~15 minutes on 2 CPU cores: self-distillation (same architecture: conditions that favour transfer)
    "cpu": Config(preset="cpu", teacher_arch="resnet8", student_arch="resnet8", n_per_class=300,
                  teacher_epochs=12, student_epochs=6, seeds=3, n_test=2000, batch_size=64, lr=0.05, device="cpu"),
    # GPU: 10 seeds, full CIFAR-10
    "gpu": Config(preset="gpu", teacher_arch="resnet56", student_arch="resnet20", n_per_class=None,
                  teacher_epochs=60, student_epochs=40, seeds=10, n_test=None, batch_size=128, lr=0.1,
                  device="auto"),
}


def _common(p: Config) -> dict[str, Any]:
    return dict(dataset="cifar10", batch_size=p.batch_size, lr=p.lr, schedule="cosine",
                n_per_class=p.n_per_class, device=p.device, data_root=p.data_root, eval_every=10**6)


def teacher_config(p: Config) -> TrainConfig:
    """The teacher's training recipe (seed 0, cross-entropy)."""
    return TrainConfig(arch=p.teacher_arch, epochs=p.teacher_epochs, seed=0, method="ce", **_common(p))


def student_configs(p: Config, teacher: TrainConfig, teacher_ckpt: str | None) -> dict[str, list[TrainConfig]]:
    """Per group, one config per seed s = 1..seeds (see the module docstring for the controls).

    ``teacher_ckpt=None`` leaves the KD students' teacher empty (the sweep fills it in from the
    teacher run)."""
    runs: dict[str, list[TrainConfig]] = {g: [] for g in GROUPS}
    for s in range(1, p.seeds + 1):
        alone = TrainConfig(arch=p.student_arch, epochs=p.student_epochs, seed=s, method="ce", **_common(p))
        runs["alone"].append(alone)
        runs["kd"].append(dataclasses.replace(alone, method="kd", teacher_ckpt=teacher_ckpt))
        runs["rcd"].append(dataclasses.replace(alone, method="rcd", method_kwargs={"seed": s}))
        if p.student_arch == p.teacher_arch:
            ref = dataclasses.replace(teacher, epochs=p.student_epochs)
            runs["siddo"].append(siddo_config(ref, data_seed=1000 + s))
        else:
            runs["siddo"].append(siddo_config(runs["kd"][-1], data_seed=1000 + s))
    return runs


@dataclass(frozen=True)
class Result:
    """Per-run fidelity rows, the full reports per group and the KD-vs-controls comparison."""

    preset: str
    teacher: dict[str, Any]
    per_run: tuple[dict[str, Any], ...]
    reports: dict[str, list[Any]]
    comparison: Any  # kdbounds.fidelity.TransferSummary
    wall_time_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "teacher": self.teacher,
                "reports": {g: [r.to_dict() for r in rs] for g, rs in self.reports.items()},
                "summary": self.comparison.to_dict(), "wall_time_s": self.wall_time_s}


def training_specs(config: Config, cache_root: str | os.PathLike, progress: bool = False) -> list[RunSpec]:
    """The study's training grid: the teacher (key ``"teacher"``), then ``"<group>-seed<s>"`` per
    group and seed; the KD students depend on the teacher run (its checkpoint is their teacher).

    Args:
        config: the study's config.
        cache_root: the run cache.
        progress: the trainer's progress inside each run.

    Returns:
        The :class:`~kdbounds.runs.sweep.RunSpec` list for :func:`~kdbounds.runs.sweep.run_sweep`.
    """
    data = DataSpec("cifar10", config.data_root, config.n_test)
    t_cfg = teacher_config(config)
    specs = [train_spec("teacher", t_cfg, cache_root, data, progress=progress)]
    for g, cfgs in student_configs(config, t_cfg, None).items():
        for cfg in cfgs:
            specs.append(train_spec(f"{g}-seed{cfg.seed}", cfg, cache_root, data,
                                    teacher="teacher" if cfg.method == "kd" else None, progress=progress))
    return specs


def run(config: Config, out_dir: str | os.PathLike, *, cache_root: str | os.PathLike | None = None,
        progress: bool = True, log: Callable[[str], None] = print,
        sweep: Mapping[str, Any] | None = None) -> Result:
    """Train (or reuse) the teacher and every student, measure fidelity, compare, write to ``out_dir``.

    The trainings are one sweep (:func:`training_specs` through
    :func:`~kdbounds.runs.sweep.run_sweep`): in this process by default, or on Ray with
    ``sweep={"executor": "ray", "workers": 2}``; at equal ``threads`` both give the same numbers.
    The fidelity measurements then run here, in the order of the groups.

    Writes ``config.json``, ``per_run.csv``, ``summary.csv``, ``results.json`` and ``agreement_split.png``.

    Args:
        config: e.g. ``PRESETS["cpu"]``.
        out_dir: output folder (created when missing).
        cache_root: run cache (default ``out_dir/../cache``); finished runs are reused.
        progress: progress over runs (and, with the local executor, over each run's epochs).
        log: where result lines go.
        sweep: keyword arguments of :func:`~kdbounds.runs.sweep.run_sweep` (``executor``,
            ``workers``, ``address``, ``threads``, ``max_retries``, ``gpus_per_run``); default local,
            one thread per run.

    Returns:
        The :class:`Result`.

    Raises:
        kdbounds.runs.sweep.SweepError: a training run failed (finished runs stay in the cache).
    """
    out = Path(out_dir)
    cache = resolve_cache_root(out, cache_root)
    sweep = dict(sweep or {})
    t0 = time.perf_counter()
    local = sweep.get("executor", "local") == "local"
    specs = training_specs(config, cache, progress=progress and local)
    trained = run_sweep(specs, progress=progress, desc="functional_transfer", **sweep)
    _, _, ex, ey = load_data(specs[0].kwargs["data"])
    t_cfg = teacher_config(config)
    t_res = trained["teacher"]
    teacher_ckpt = t_res.paths["model"]
    runs = student_configs(config, t_cfg, teacher_ckpt)
    atomic_write_json(out / "config.json", {
        "preset": config.preset, "params": config.params(), "teacher": t_cfg.to_dict(), "teacher_ckpt": teacher_ckpt,
        "runs": {g: [c.to_dict() for c in cs] for g, cs in runs.items()}})
    zt = predict_logits(load_checkpoint_model(teacher_ckpt), ex)
    log(f"teacher {t_cfg.arch}: test acc {t_res.final.get('test_acc', float('nan')):.4f} "
        f"(eval subset {len(ey)} images)")
    reports: dict[str, list[Any]] = {g: [] for g in GROUPS}
    per_run: list[dict[str, Any]] = []
    for g in GROUPS:
        for cfg in runs[g]:
            res = trained[f"{g}-seed{cfg.seed}"]
            student = load_checkpoint_model(res.paths["model"])
            rep = fidelity_report(predict_logits(student, ex), zt, torch.as_tensor(ey), n_boot=100, seed=cfg.seed)
            reports[g].append(rep)
            per_run.append({"group": g, "seed": cfg.seed,
                            "init_seed": cfg.init_seed if cfg.init_seed is not None else cfg.seed,
                            "wall_time_s": res.wall_time_s, **rep.values()})
            log(f"{g:<6} seed {cfg.seed:>4}: acc {rep.student_accuracy.value:.4f} agree {rep.agreement.value:.4f} "
                f"(T right {rep.agreement_teacher_correct.value:.4f}, T wrong {rep.agreement_teacher_wrong.value:.4f}) "
                f"JS {rep.js_divergence.value:.4f}")
    teacher = {"config": t_cfg.to_dict(), "test_acc": t_res.final.get("test_acc"),
               "eval_acc": float((zt.argmax(1).numpy() == ey).mean()), "n_eval": int(len(ey))}
    result = Result(config.preset, teacher, tuple(per_run), reports, compare_methods(reports, reference="kd"),
                    time.perf_counter() - t0)
    write_results(result, out)
    plot_agreement_split(result, out / "agreement_split.png")
    return result


def write_results(result: Result, out: str | os.PathLike) -> dict[str, Path]:
    """``per_run.csv``, ``summary.csv`` and ``results.json`` (strict JSON), each atomically."""
    out = Path(out)
    return {"per_run": atomic_write_csv(out / "per_run.csv", result.per_run),
            "summary": atomic_write_csv(out / "summary.csv", result.comparison.rows()),
            "json": atomic_write_json(out / "results.json", with_provenance(result.to_dict()))}


#: the groups as they read in a figure (methods.md §5)
GROUP_LABELS = {"kd": "KD", "rcd": "random-control\ndistillation", "siddo": "SIDDO\n(no teacher)",
                "alone": "student alone"}

#: the two halves of the test set, by the teacher's answer: (metric, label, short label, colour)
_SPLIT = (("agreement_teacher_correct", "teacher right ($\\hat y_T = y$)", "on teacher-right inputs", "tab:green"),
          ("agreement_teacher_wrong", "teacher wrong ($\\hat y_T \\neq y$)", "on teacher-wrong inputs", "tab:red"))


def _clip_interval(lo: float, hi: float, span: float) -> tuple[float, float, int]:
    """``[lo, hi]`` cut to ``[-span, span]``, the range a difference of two rates in [0, 1] can take (no coverage is
    lost), and how many ends were cut."""
    return max(lo, -span), min(hi, span), int(lo < -span) + int(hi > span)


def agreement_split_figure(result: Result) -> Any:
    """The figure of :func:`plot_agreement_split` (a :class:`matplotlib.figure.Figure`, not saved).

    Left: per group, the agreement with the teacher's predicted class on the test inputs the teacher gets right
    and on those it gets wrong; a bar is the mean over seeds with whiskers ± 1 sd over seeds, a dot is one seed with
    the exact binomial (Clopper–Pearson) 95 % interval of its rate on its ``n`` inputs. Right: the tested comparison,
    KD minus each control in mean agreement, with the Welch 95 % interval over seeds of
    :func:`kdbounds.fidelity.compare_methods` (drawn cut to [−1, 1], the range of a difference of two rates; a cut
    end is marked) and its Holm-adjusted p-value.

    Args:
        result: the study's :class:`Result` (its per-seed reports and its comparison).

    Returns:
        The figure; ``kdbounds_seed_intervals`` lists ``(group, metric, low, high)`` per seed interval drawn,
        ``kdbounds_differences`` ``(group, metric, diff, low, high)`` per difference drawn (uncut interval), and
        ``kdbounds_cut`` the number of interval ends cut at ±1.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from ..figures import binomial_interval, plt_figure

    groups = [g for g in GROUPS if result.reports.get(g)]
    fig, (ax, ax_d) = plt_figure(1, 2, figsize=(12.5, 4.8), width_ratios=(1.35, 1.0))
    seed_intervals: list[tuple[str, str, float, float]] = []
    width = 0.36
    for i, g in enumerate(groups):
        for j, (key, _, _, colour) in enumerate(_SPLIT):
            est = [r.get(key) for r in result.reports[g]]
            est = [e for e in est if e is not None and e.n > 0 and math.isfinite(e.value)]
            if not est:
                continue
            v = np.array([e.value for e in est])
            xpos = i + (j - 0.5) * width
            sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
            ax.bar(xpos, v.mean(), width=width * 0.92, color=colour, alpha=0.35, edgecolor=colour)
            if v.size > 1:  # the spread over seeds, at the bar's right; the seeds on its left
                ax.errorbar(xpos + 0.3 * width, v.mean(), yerr=sd, fmt="_", color="k", ms=8, capsize=4, lw=1.2)
            offsets = np.linspace(-0.36, 0.08, v.size) * width if v.size > 1 else np.full(1, -0.14 * width)
            for dx, e in zip(offsets, est):
                lo, hi = binomial_interval(e.value, e.n)
                ax.errorbar(xpos + dx, e.value, yerr=[[e.value - lo], [hi - e.value]], fmt="o", ms=3.5, color=colour,
                            mec="k", mew=0.4, elinewidth=0.9, capsize=0)
                seed_intervals.append((g, key, lo, hi))
    ax.set_xticks(range(len(groups)), [GROUP_LABELS.get(g, g) for g in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylim(0, 1.04)  # a rate of 1 inside the frame
    ax.set_ylabel("agreement with the teacher $\\Pr[\\hat y_S = \\hat y_T]$")
    ax.set_title("agreement on the test inputs the teacher gets right / wrong")
    handles = [Patch(facecolor=c, alpha=0.35, edgecolor=c, label=lab) for _, lab, _, c in _SPLIT]
    handles += [Line2D([], [], color="k", lw=1.2, label="bar: mean over seeds, whiskers ± 1 sd"),
                Line2D([], [], color="0.3", marker="o", ms=3.5, lw=0.9,
                       label="dot: one seed, exact binomial 95 % interval")]
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)

    comps = {(c.metric, c.name_b): (c, p) for c, p in zip(result.comparison.comparisons, result.comparison.welch_p_holm)}
    controls = [g for g in groups if g != result.comparison.reference]
    differences: list[tuple[str, str, float, float, float]] = []
    cut, xs_d = 0, [0.0]
    for j, (key, _, _, colour) in enumerate(_SPLIT):
        for i, g in enumerate(controls):
            c, p = comps.get((key, g), (None, None))
            if c is None or not math.isfinite(c.diff):
                continue
            ypos = i + (j - 0.5) * 0.3
            if math.isfinite(c.diff_ci_low) and math.isfinite(c.diff_ci_high):
                lo, hi, n_cut = _clip_interval(c.diff_ci_low, c.diff_ci_high, 1.0)
                cut += n_cut
                xs_d += [lo, hi]
                ax_d.errorbar(c.diff, ypos, xerr=[[c.diff - lo], [hi - c.diff]], fmt="o", color=colour, ms=5,
                              capsize=3, elinewidth=1.2)
                for end, was_cut in ((lo, c.diff_ci_low < -1.0), (hi, c.diff_ci_high > 1.0)):
                    if was_cut:
                        ax_d.plot(end, ypos, marker="<" if end < 0 else ">", color=colour, ms=7)
            else:
                ax_d.plot(c.diff, ypos, "o", color=colour, ms=5)
            xs_d.append(c.diff)
            differences.append((g, key, c.diff, c.diff_ci_low, c.diff_ci_high))
            if p is not None and math.isfinite(p):
                ax_d.annotate(f"Holm p = {p:.2g}", (1.0, ypos), xycoords=("axes fraction", "data"), xytext=(4, 0),
                              textcoords="offset points", fontsize=7, va="center", color=colour)
    ax_d.axvline(0.0, color="k", lw=0.8)
    ax_d.set_yticks(range(len(controls)), [GROUP_LABELS.get(g, g) for g in controls])
    ax_d.set_ylim(len(controls) - 0.5, -0.5)
    pad = 0.08 * max(max(xs_d) - min(xs_d), 0.05)
    ax_d.set_xlim(max(min(xs_d) - pad, -1.05), min(max(xs_d) + pad, 1.05))  # fitted to the intervals and 0
    ref = GROUP_LABELS.get(result.comparison.reference, result.comparison.reference)
    level = result.comparison.comparisons[0].ci if result.comparison.comparisons else 0.95
    ax_d.set_xlabel(f"{ref} − control, mean agreement over seeds")
    ax_d.set_title(f"{ref} against each control (Welch {100 * level:g} % interval over seeds)")
    handles = [Line2D([], [], color=c, marker="o", ms=5, label=short) for _, _, short, c in _SPLIT]
    if cut:
        handles.append(Line2D([], [], color="0.3", marker=">", ls="none", label="interval cut at ±1 (few seeds)"))
    ax_d.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    for a in (ax, ax_d):
        a.grid(alpha=0.3, axis="y" if a is ax else "x")
    fig.tight_layout()
    fig.kdbounds_seed_intervals = seed_intervals
    fig.kdbounds_differences = differences
    fig.kdbounds_cut = cut
    return fig


def plot_agreement_split(result: Result, path: str | os.PathLike) -> Path:
    """Agreement with the teacher on teacher-correct vs teacher-wrong inputs, per group, with every interval the
    study has (:func:`agreement_split_figure`), written atomically.

    Args:
        result: the study's result.
        path: the image file.

    Returns:
        ``path``.
    """
    from ..figures import save_figure

    return save_figure(agreement_split_figure(result), path)


def summary(result: Result) -> str:
    """The KD-vs-controls comparison as text."""
    return f"\n{result.comparison}\n\n(wall time {result.wall_time_s:.0f} s)"
