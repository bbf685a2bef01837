r"""The flagship study (orchestration): teacher sharpness, distillation divergence and student gaps.

Teachers of one architecture are trained with different recipes (learning rate, batch size, weight
decay), which leave them at minima of different sharpness. From each teacher, students are distilled
(KD, RID, ...) on the same training set; the student trained alone (``"ce"``) is the teacher-free
baseline. For every teacher–student pair the study measures, on true labels and with the
conventions of :mod:`kdbounds.bound_checks`,

* the teacher's curvature (training-loss Hessian trace and top eigenvalue; gap-function gradient,
  trace, ``tr H²`` and extreme eigenvalues) on fixed subsets of the training and test sets,
* the predictive distillation divergence ``K̂`` on the training inputs (and held-out inputs),
* the gaps ``gen = L_test − L_train`` of teacher and student (clipped CE and 0–1 loss),
* Theorems 1, 2, 3A and 3B next to the observed ``|gen(S) − gen(T)|``,

and Kendall's τ (with its p-value) between teacher sharpness and student gap. All numbers are those
of the last training epoch; nothing is selected on the test set. Trained models are cached
(:func:`kdbounds.studies.cache.train_cached`), so a re-run only measures.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_write_csv, atomic_write_json, atomic_write_text
from .._torch import resolve_device
from ..bound_checks import TeacherCurvature, evaluate_pair, measure_curvature
from ..data import load_cifar, stratified_subset
from ..data.transforms import normalization, normalize_uint8
from ..distill import TrainConfig, load_checkpoint_model
from .cache import resolve_cache_root, train_cached
from .plots import format_table, plot_bound_vs_observed, plot_sharpness_vs_gap

__all__ = ["TeacherRecipe", "StudyConfig", "Config", "PRESETS", "preset", "run", "run_study", "StudyResult",
           "Result", "write_results", "write_plots", "summary", "kendall_table", "prepare_data", "flatten_record"]


@dataclass(frozen=True)
class TeacherRecipe:
    """How one teacher is trained: the knobs that move it to flatter or sharper minima."""

    name: str
    lr: float
    batch_size: int
    weight_decay: float = 5e-4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StudyConfig:
    """Everything that determines a study run (recorded in ``results.json``)."""

    preset: str
    teacher_arch: str
    student_arch: str
    teachers: tuple[TeacherRecipe, ...]
    methods: tuple[str, ...] = ("ce", "kd", "rid")
    n_per_class: int | None = 200
    test_per_class: int | None = 200
    teacher_epochs: int = 15
    student_epochs: int = 15
    student_lr: float = 0.05
    student_batch_size: int = 64
    schedule: str = "cosine"
    method_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    curvature_per_class: int = 25
    curvature_batch_size: int = 250
    trace_matvecs: int = 8
    lanczos_matvecs: int = 12
    curvature_params: str | None = None
    p_min: float = 1e-3
    temperature: float = 1.0
    loss_increase: float = 0.05
    seed: int = 0
    subset_seed: int = 0
    device: str = "auto"
    n_boot: int = 500
    data_root: str | None = None

    def __post_init__(self) -> None:
        if not self.teachers:
            raise ValueError("teachers must name at least one TeacherRecipe")
        if len({t.name for t in self.teachers}) != len(self.teachers):
            raise ValueError("teacher recipe names must be unique")
        if not self.methods:
            raise ValueError("methods must name at least one method (e.g. 'kd')")
        from ..distill import available_methods

        bad = [m for m in self.methods if m not in available_methods()]
        if bad:
            raise ValueError(f"unknown methods {bad}; valid: {sorted(available_methods())}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["teachers"] = [t.to_dict() for t in self.teachers]
        return d


_RECIPES_CPU = (
    TeacherRecipe("lr0.2-bs32", lr=0.2, batch_size=32),
    TeacherRecipe("lr0.05-bs64", lr=0.05, batch_size=64),
    TeacherRecipe("lr0.01-bs256", lr=0.01, batch_size=256),
    TeacherRecipe("lr0.05-bs64-wd0", lr=0.05, batch_size=64, weight_decay=0.0),
)

_PRESET_SETTINGS: dict[str, dict[str, Any]] = {
    # CI: tiny everything, one method, under a minute on 2 cores.
    "smoke": dict(teacher_arch="resnet8", student_arch="resnet8",
                  teachers=(TeacherRecipe("lr0.1-bs32", 0.1, 32), TeacherRecipe("lr0.02-bs64", 0.02, 64)),
                  methods=("ce", "kd"), n_per_class=10, test_per_class=10, teacher_epochs=1,
                  student_epochs=1, curvature_per_class=4, curvature_batch_size=40, trace_matvecs=2,
                  lanczos_matvecs=3, n_boot=50, device="cpu"),
    # Default: real CIFAR-10 subset on 2 CPU cores in about 10 minutes.
    "default": dict(teacher_arch="resnet14", student_arch="resnet8", teachers=_RECIPES_CPU,
                    methods=("ce", "kd", "rid"), n_per_class=200, test_per_class=200, teacher_epochs=12,
                    student_epochs=12, curvature_per_class=20, curvature_batch_size=200,
                    trace_matvecs=6, lanczos_matvecs=10, device="auto",
                    method_kwargs={"rid": {"q": 4, "r": 0.25}}),
    # Full size for a GPU.
    "paper": dict(teacher_arch="resnet56", student_arch="resnet20",
                  teachers=(TeacherRecipe("lr0.2-bs32", 0.2, 32), TeacherRecipe("lr0.1-bs64", 0.1, 64),
                            TeacherRecipe("lr0.05-bs128", 0.05, 128), TeacherRecipe("lr0.02-bs512", 0.02, 512),
                            TeacherRecipe("lr0.1-bs128-wd0", 0.1, 128, 0.0),
                            TeacherRecipe("lr0.1-bs128-wd5e-3", 0.1, 128, 5e-3)),
                  methods=("ce", "kd", "rid"), n_per_class=None, test_per_class=None, teacher_epochs=200,
                  student_epochs=200, student_batch_size=64, curvature_per_class=100,
                  curvature_batch_size=500, trace_matvecs=32, lanczos_matvecs=30, device="auto",
                  method_kwargs={"rid": {"q": 20, "r": 0.25}}),
}


Config = StudyConfig  # the common name every study exports

#: The named configurations: ``smoke`` (CI), ``default`` (2 CPU cores, ~10 min), ``paper`` (GPU).
PRESETS: dict[str, StudyConfig] = {name: StudyConfig(preset=name, **kw) for name, kw in _PRESET_SETTINGS.items()}


def preset(name: str, **overrides: Any) -> StudyConfig:
    """The :class:`StudyConfig` of a preset with overrides.

    Args:
        name: ``smoke``, ``default`` or ``paper``.
        **overrides: config fields to change; ``None`` values keep the preset's.

    Returns:
        The validated config.

    Raises:
        ValueError: unknown preset, or an override the config rejects.
    """
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return dataclasses.replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


# ------------------------------------------------------------------------------------------------
def prepare_data(cfg: StudyConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified training and test subsets (uint8 images, int64 labels) of CIFAR-10."""
    xtr, ytr = load_cifar("cifar10", root=cfg.data_root, split="train")
    xte, yte = load_cifar("cifar10", root=cfg.data_root, split="test")
    if cfg.n_per_class is not None:
        i = stratified_subset(ytr, cfg.n_per_class, seed=cfg.subset_seed)
        xtr, ytr = xtr[i], ytr[i]
    if cfg.test_per_class is not None:
        j = stratified_subset(yte, cfg.test_per_class, seed=cfg.subset_seed + 1)
        xte, yte = xte[j], yte[j]
    return xtr, ytr, xte, yte


def _normalised(x: np.ndarray, device: torch.device) -> torch.Tensor:
    mean, std = normalization("cifar10")
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).to(device)
    return normalize_uint8(t, mean, std)


def _teacher_config(cfg: StudyConfig, r: TeacherRecipe) -> TrainConfig:
    return TrainConfig(arch=cfg.teacher_arch, epochs=cfg.teacher_epochs, batch_size=r.batch_size, lr=r.lr,
                       weight_decay=r.weight_decay, schedule=cfg.schedule, seed=cfg.seed, method="ce",
                       device=cfg.device)


def _student_config(cfg: StudyConfig, method: str) -> TrainConfig:
    return TrainConfig(arch=cfg.student_arch, epochs=cfg.student_epochs, batch_size=cfg.student_batch_size,
                       lr=cfg.student_lr, schedule=cfg.schedule, seed=cfg.seed + 1, method=method,
                       method_kwargs=cfg.method_kwargs.get(method, {}), device=cfg.device,
                       nesterov=method == "rid")


def flatten_record(teacher: str, recipe: TeacherRecipe, method: str, t_res: Any, s_res: Any,
                   report: Any) -> dict[str, Any]:
    """One CSV row: configs, last-epoch accuracies, curvature, divergence, gaps and every bound."""
    row: dict[str, Any] = {"teacher": teacher, "method": method, "teacher_lr": recipe.lr,
                           "teacher_batch_size": recipe.batch_size, "teacher_weight_decay": recipe.weight_decay,
                           "teacher_test_acc": t_res.final.get("test_acc"),
                           "teacher_train_acc": t_res.final.get("train_acc"),
                           "student_test_acc": s_res.final.get("test_acc"),
                           "student_train_acc": s_res.final.get("train_acc")}
    c: TeacherCurvature | None = report.curvature
    if c is not None:
        for k in ("train_trace", "train_trace_se", "train_top_eig", "gap_grad_norm", "gap_trace",
                  "gap_frob_sq", "gap_eig_max", "gap_eig_min", "n_params"):
            row[f"teacher_{k}"] = getattr(c, k)
    row["divergence_train"] = report.divergence_train.value
    row["divergence_train_se"] = report.divergence_train.stderr
    row["divergence_test"] = report.divergence_test.value
    for loss, st in report.teacher_losses.items():
        row[f"teacher_gap_{loss}"] = st.gap
        row[f"student_gap_{loss}"] = report.student_losses[loss].gap
        row[f"student_gap_{loss}_se"] = report.student_losses[loss].gap_se
        row[f"gap_diff_{loss}"] = report.gap_difference[loss]
        row[f"gap_diff_{loss}_se"] = report.gap_difference_se[loss]
    for chk in report.checks:
        key = f"{chk.name}_{chk.loss}"
        row[f"bound_{key}"] = chk.bound
        row[f"holds_{key}"] = chk.holds
        if chk.side in ("abs", "upper"):
            row[f"ratio_{key}"] = chk.ratio
    return row


def kendall_table(rows: Sequence[dict[str, Any]], sharpness: Sequence[str] = ("teacher_train_top_eig",
                  "teacher_train_trace"), gaps: Sequence[str] = ("student_gap_clipped_ce",
                  "student_gap_zero_one")) -> list[dict[str, Any]]:
    r"""Kendall's τ (scipy, with its two-sided p-value) between teacher sharpness and student gap,
    per method and pooled over methods that use the teacher.

    .. math::
        \tau_b = \frac{n_c - n_d}{\sqrt{(n_0 - n_1)(n_0 - n_2)}}

    (concordant minus discordant pairs, tie-corrected); undefined (NaN, with a ``note``) for fewer than
    3 pairs or a constant side.

    Args:
        rows: one dict per teacher–student pair.
        sharpness: row keys of teacher sharpness.
        gaps: row keys of student gaps.

    Returns:
        One row per (group, sharpness, gap): ``n``, ``tau``, ``p_value``, ``note``.
    """
    from scipy.stats import kendalltau

    out = []
    methods = sorted({r["method"] for r in rows})
    groups = [(m, [r for r in rows if r["method"] == m]) for m in methods]
    groups.append(("distilled (pooled)", [r for r in rows if r["method"] != "ce"]))
    for name, rs in groups:
        for s in sharpness:
            for g in gaps:
                xs = [r.get(s) for r in rs]
                ys = [r.get(g) for r in rs]
                ok = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
                if len(ok) < 3:
                    out.append({"group": name, "sharpness": s, "gap": g, "n": len(ok), "tau": math.nan,
                                "p_value": math.nan, "note": "fewer than 3 pairs"})
                    continue
                if len({y for _, y in ok}) == 1 or len({x for x, _ in ok}) == 1:
                    out.append({"group": name, "sharpness": s, "gap": g, "n": len(ok), "tau": math.nan,
                                "p_value": math.nan, "note": "one side is constant (e.g. the teacher-free "
                                "student alone): τ undefined"})
                    continue
                res = kendalltau([x for x, _ in ok], [y for _, y in ok])
                out.append({"group": name, "sharpness": s, "gap": g, "n": len(ok),
                            "tau": float(res.statistic), "p_value": float(res.pvalue), "note": ""})
    return out


@dataclass(frozen=True)
class StudyResult:
    """Everything a run measured: one row per teacher-student pair, the pair reports, Kendall's τ."""

    config: dict[str, Any]
    rows: tuple[dict[str, Any], ...]
    reports: tuple[dict[str, Any], ...]
    kendall: tuple[dict[str, Any], ...]
    seconds: float
    environment: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "rows": list(self.rows), "reports": list(self.reports),
                "kendall": list(self.kendall), "seconds": self.seconds, "environment": self.environment}


def run_study(cfg: StudyConfig, cache_root: str | os.PathLike, *, progress: bool = True,
              log: Callable[[str], None] = print) -> StudyResult:
    """Train (or reuse) every teacher and student of ``cfg`` and measure every pair (writes nothing but
    the run cache; :func:`run` also writes the results).

    Args:
        cfg: the study's configuration.
        cache_root: the run cache folder.
        progress: show progress bars.
        log: where progress lines go.

    Returns:
        The :class:`StudyResult`.
    """
    start = time.perf_counter()
    torch_threads = torch.get_num_threads()
    dev = resolve_device(cfg.device)
    data = prepare_data(cfg)
    xtr, ytr, xte, yte = data
    log(f"data: {len(ytr)} training and {len(yte)} test images (CIFAR-10), device {dev}")
    tr_t = (_normalised(xtr, dev), torch.from_numpy(ytr).to(dev))
    te_t = (_normalised(xte, dev), torch.from_numpy(yte).to(dev))
    ci = stratified_subset(ytr, min(cfg.curvature_per_class, int(np.bincount(ytr).min())), seed=cfg.seed)
    cj = stratified_subset(yte, min(cfg.curvature_per_class, int(np.bincount(yte).min())), seed=cfg.seed)
    curv_train = (tr_t[0][ci], tr_t[1][ci])
    curv_test = (te_t[0][cj], te_t[1][cj])
    rows, reports = [], []
    ce_res = None
    if "ce" in cfg.methods:
        ce_res = train_cached(_student_config(cfg, "ce"), cache_root, data=data, progress=progress)
        log(f"student alone ({cfg.student_arch}): test acc {ce_res.final.get('test_acc'):.4f}")
    for recipe in cfg.teachers:
        t_res = train_cached(_teacher_config(cfg, recipe), cache_root, data=data, progress=progress)
        t_path = t_res.paths["model"]
        teacher = load_checkpoint_model(t_path, map_location=dev)
        log(f"teacher {recipe.name} ({cfg.teacher_arch}): test acc {t_res.final.get('test_acc'):.4f}; "
            "measuring curvature ...")
        curv = measure_curvature(teacher, curv_train, curv_test, p_min=cfg.p_min,
                                 batch_size=cfg.curvature_batch_size, trace_matvecs=cfg.trace_matvecs,
                                 lanczos_matvecs=cfg.lanczos_matvecs, seed=cfg.seed,
                                 params=cfg.curvature_params)
        log(f"  top eigenvalue {curv.train_top_eig:.3f}, trace {curv.train_trace:.1f} ± {curv.train_trace_se:.1f}, "
            f"G0 {curv.gap_grad_norm:.3f} ({curv.n_matvecs} Hessian products, {curv.seconds:.0f} s)")
        for method in cfg.methods:
            if method == "ce":
                s_res = ce_res
            else:
                s_res = train_cached(_student_config(cfg, method), cache_root, teacher_ckpt=t_path, data=data,
                                     progress=progress)
            student = load_checkpoint_model(s_res.paths["model"], map_location=dev)
            rep = evaluate_pair(teacher, student, tr_t, te_t, curvature=curv, p_min=cfg.p_min,
                                temperature=cfg.temperature, loss_increase=cfg.loss_increase,
                                n_boot=cfg.n_boot, seed=cfg.seed)
            row = flatten_record(recipe.name, recipe, method, t_res, s_res, rep)
            row["teacher_run"] = Path(t_res.paths["out_dir"]).name
            row["student_run"] = Path(s_res.paths["out_dir"]).name
            rows.append(row)
            reports.append({"teacher": recipe.name, "method": method, **rep.to_dict()})
            log(f"  {method}: student test acc {row['student_test_acc']:.4f}, K̂ {rep.divergence_train.value:.4f}, "
                f"gap diff (clipped CE) {rep.gap_difference['clipped_ce']:+.4f}")
    env = {"torch": torch.__version__, "device": str(dev), "threads": torch_threads,
           "cuda": torch.cuda.get_device_name(0) if dev.type == "cuda" else None}
    return StudyResult(cfg.to_dict(), tuple(rows), tuple(reports), tuple(kendall_table(rows)),
                       time.perf_counter() - start, env)


Result = StudyResult


def write_results(result: StudyResult, out: str | os.PathLike) -> dict[str, Path]:
    """Write ``results.json`` (everything, strict JSON), ``results.csv`` (one row per pair) and
    ``kendall.csv``, each atomically.

    Args:
        result: a study result.
        out: the output folder (created when missing).

    Returns:
        The paths written, by kind (``json``, ``csv``, ``kendall``).
    """
    out = Path(out)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "kendall": out / "kendall.csv"}
    atomic_write_json(paths["json"], result.to_dict())
    atomic_write_csv(paths["csv"], result.rows)
    atomic_write_csv(paths["kendall"], result.kendall)
    return paths


def write_plots(result: StudyResult, out: str | os.PathLike) -> dict[str, Path]:
    """``sharpness_vs_gap.png`` and ``bound_vs_observed.png`` in ``out``."""
    out = Path(out)
    return {"sharpness_vs_gap": plot_sharpness_vs_gap(result.rows, out / "sharpness_vs_gap.png",
                                                      kendall=result.kendall),
            "bound_vs_observed": plot_bound_vs_observed(result.reports, out / "bound_vs_observed.png")}


_REPORT_COLUMNS = ("teacher", "method", "teacher_train_top_eig", "teacher_train_trace", "teacher_test_acc",
                   "student_test_acc", "divergence_train", "teacher_gap_clipped_ce", "student_gap_clipped_ce",
                   "gap_diff_clipped_ce", "bound_thm1_per_sample_clipped_ce", "bound_thm1_product_clipped_ce",
                   "bound_thm3a_radius_clipped_ce", "bound_thm3b_subgamma_clipped_ce",
                   "gap_diff_zero_one", "bound_thm1_per_sample_zero_one")
_KENDALL_COLUMNS = ("group", "sharpness", "gap", "n", "tau", "p_value", "note")


def summary(result: StudyResult) -> str:
    """The markdown report: the per-pair table, Kendall's τ and the run time."""
    return (f"# sharpness_vs_gap, preset {result.config['preset']}\n\n"
            f"{format_table(result.rows, _REPORT_COLUMNS)}\n\n"
            f"Kendall tau (teacher sharpness vs student gap)\n\n{format_table(result.kendall, _KENDALL_COLUMNS)}\n\n"
            f"Total time {result.seconds:.0f} s on {result.environment['device']}.\n")


def run(config: StudyConfig, out_dir: str | os.PathLike, *, cache_root: str | os.PathLike | None = None,
        progress: bool = True, log: Callable[[str], None] = print) -> StudyResult:
    """Run the study and write everything to ``out_dir``.

    Writes ``config.json``, ``results.json``, ``results.csv``, ``kendall.csv``, the two figures and
    ``report.md``.

    Args:
        config: the study's configuration (e.g. ``PRESETS["smoke"]``).
        out_dir: output folder (created when missing).
        cache_root: trained-model cache (default ``out_dir/../cache``).
        progress: show progress bars.
        log: where progress lines go.

    Returns:
        The :class:`StudyResult`.
    """
    out = Path(out_dir)
    cache = resolve_cache_root(out, cache_root)
    atomic_write_json(out / "config.json", config.to_dict())
    result = run_study(config, cache, progress=progress, log=log)
    write_results(result, out)
    write_plots(result, out)
    atomic_write_text(out / "report.md", summary(result))
    return result
