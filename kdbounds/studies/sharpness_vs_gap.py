r"""The flagship study (orchestration): teacher sharpness, distillation divergence and student gaps.

Teachers of one architecture are trained with different recipes (learning rate, batch size, weight
decay), which leave them at minima of different sharpness. From each teacher, students are distilled
(KD, RID, ...) on the same training set; the student trained alone (``"ce"``) is the teacher-free
baseline. Students of the teacher's architecture (self-distillation, "born-again" students trained
from scratch) live on the teacher's parameter space, so Theorems 3A/3B are defined for them;
students of another architecture (``extra_students``) get ``not_defined`` for those checks.

Every pair is measured with :mod:`kdbounds.checks` (true labels, last training epoch, nothing selected
on the test set):

* the teacher's curvature once per teacher (:func:`kdbounds.checks.measure_teacher_curvature`) on a
  fixed kernel sample of the training and test sets, which is also where the kernel gaps are measured;
* :func:`kdbounds.checks.evaluate_pair`: the Gibbs-classifier check (exact demonstration), Theorems 1/2
  with the σ²/n rate (conditional), the product-law proxy, Theorems 3A/3B under Gaussian kernels;
* verdicts (holds / violated / inconclusive / not_defined) with one Holm/Shaffer family over the
  run's non-proxy checks (the proxies are a separate family, so they do not dilute it);
* verdict counts that say how many independent teachers they span;
* Kendall's τ between teacher sharpness (``tr ∇²L_train``) and the distilled students' gaps, tested
  at the teacher level (:func:`kdbounds.checks.permutation_kendall`: each teacher's students move
  together), Holm-adjusted across the reported tests.

Trained models are cached (:func:`kdbounds.studies.cache.train_cached`), so a re-run only measures.
The process CPU time of every phase is recorded (``timing``) so the run can be sized for 2 cores.
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
from ..checks import (
    CheckRecord,
    PairChecks,
    TeacherCurvature,
    assign_verdicts,
    evaluate_pair,
    kendall_tests,
    measure_teacher_curvature,
    permutation_kendall,
    verdict_counts,
)
from ..data import load_cifar, stratified_subset
from ..data.transforms import normalization, normalize_uint8
from ..distill import TrainConfig, load_checkpoint_model
from .cache import resolve_cache_root, train_cached
from .plots import format_table, plot_bound_vs_observed, plot_sharpness_vs_gap

__all__ = ["TeacherRecipe", "StudyConfig", "Config", "PRESETS", "preset", "run", "run_study", "StudyResult",
           "Result", "write_results", "write_plots", "summary", "kendall_table", "prepare_data", "flatten_record",
           "run_verdicts", "SHARPNESS", "KENDALL_GAPS"]

#: The teacher sharpness the Kendall tests use (Hutchinson ``tr ∇²L_train`` on the kernel sample).
SHARPNESS = "teacher_train_trace"
#: The student gaps the Kendall tests use.
KENDALL_GAPS = ("student_gap_clipped_ce", "student_gap_zero_one")


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
    """Everything that determines a study run (recorded in ``results.json``).

    Students: ``methods`` trained as ``student_arch`` (``"ce"`` = the teacher-free student, trained once),
    plus ``extra_students`` — ``(arch, method)`` pairs distilled from every teacher (e.g. another
    architecture, for which Theorems 3A/3B are not defined). A student of ``teacher_arch`` is a
    self-distillation ("born-again") student, trained from scratch like every other student.

    Curvature: ``curvature_per_class`` training and test images per class form the kernel sample
    (curvature and kernel gaps); ``trace_matvecs`` Rademacher probes (the upper limit of ``‖∇²f‖_F²``
    at ``ucl_level`` needs ``trace_matvecs > 2 z²``), ``lanczos_matvecs`` Lanczos steps, ``mc_draws``
    paired kernel draws per student. ``alpha`` is the run's family-wise level.
    """

    preset: str
    teacher_arch: str
    student_arch: str
    teachers: tuple[TeacherRecipe, ...]
    methods: tuple[str, ...] = ("ce", "kd", "rid")
    extra_students: tuple[tuple[str, str], ...] = ()
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
    trace_matvecs: int = 16
    lanczos_matvecs: int = 12
    ucl_level: float = 0.95
    mc_draws: int = 16
    curvature_params: str | None = None
    p_min: float = 1e-3
    temperature: float = 1.0
    loss_increase: float = 0.05
    alpha: float = 0.05
    seed: int = 0
    subset_seed: int = 0
    device: str = "auto"
    n_boot: int = 500
    n_perm: int = 20000
    data_root: str | None = None

    def __post_init__(self) -> None:
        if not self.teachers:
            raise ValueError("teachers must name at least one TeacherRecipe")
        if len({t.name for t in self.teachers}) != len(self.teachers):
            raise ValueError("teacher recipe names must be unique")
        if not self.methods:
            raise ValueError("methods must name at least one method (e.g. 'kd')")
        from ..distill import available_methods
        from ..models import available_models

        extra = tuple(tuple(e) for e in self.extra_students)
        if any(len(e) != 2 for e in extra):
            raise ValueError(f"extra_students: expected (arch, method) pairs, got {self.extra_students!r}")
        object.__setattr__(self, "extra_students", extra)
        bad = [m for m in (*self.methods, *(m for _, m in extra)) if m not in available_methods()]
        if bad:
            raise ValueError(f"unknown methods {bad}; valid: {sorted(available_methods())}")
        bad = [a for a in (self.teacher_arch, self.student_arch, *(a for a, _ in extra)) if a not in available_models()]
        if bad:
            raise ValueError(f"unknown architectures {bad}; valid: {available_models()}")
        labels = [lab for lab, _, _ in self.students()]
        if len(set(labels)) != len(labels):
            raise ValueError(f"extra_students repeat a student: {labels}")
        if not 0.0 < self.ucl_level < 1.0 or not 0.0 < self.alpha < 0.5:
            raise ValueError(f"ucl_level must be in (0, 1) and alpha in (0, 0.5), got {self.ucl_level}, {self.alpha}")
        z = float(__import__("scipy.stats", fromlist=["norm"]).norm.ppf(self.ucl_level))
        if self.trace_matvecs <= 2 * z * z:
            raise ValueError(f"trace_matvecs: the worst-case upper limit of ‖∇²f‖_F² at ucl_level={self.ucl_level} "
                             f"needs more than 2z² = {2 * z * z:.1f} probes, got {self.trace_matvecs}; raise "
                             "trace_matvecs or lower ucl_level")

    def students(self) -> tuple[tuple[str, str, str], ...]:
        """``(label, arch, method)`` of every student: ``methods`` as ``student_arch`` (label = method),
        then ``extra_students`` (label ``method@arch``)."""
        out = [(m, self.student_arch, m) for m in self.methods]
        out += [(f"{m}@{a}", a, m) for a, m in self.extra_students]
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["teachers"] = [t.to_dict() for t in self.teachers]
        d["extra_students"] = [list(e) for e in self.extra_students]
        return d


_RECIPES_CPU = (
    TeacherRecipe("lr0.2-bs32", lr=0.2, batch_size=32),
    TeacherRecipe("lr0.1-bs32-wd0", lr=0.1, batch_size=32, weight_decay=0.0),
    TeacherRecipe("lr0.05-bs64", lr=0.05, batch_size=64),
    TeacherRecipe("lr0.05-bs64-wd0", lr=0.05, batch_size=64, weight_decay=0.0),
    TeacherRecipe("lr0.02-bs128", lr=0.02, batch_size=128),
    TeacherRecipe("lr0.01-bs256", lr=0.01, batch_size=256),
)

_PRESET_SETTINGS: dict[str, dict[str, Any]] = {
    # CI: tiny everything; 3 teachers (so the teacher-level Kendall test runs), a self-distillation
    # student (kd, resnet8 -> resnet8) and a cross-architecture one (kd@resnet14: 3A/3B not defined).
    "smoke": dict(teacher_arch="resnet8", student_arch="resnet8",
                  teachers=(TeacherRecipe("lr0.1-bs32", 0.1, 32), TeacherRecipe("lr0.02-bs64", 0.02, 64),
                            TeacherRecipe("lr0.05-bs32-wd0", 0.05, 32, 0.0)),
                  methods=("ce", "kd"), extra_students=(("resnet14", "kd"),), n_per_class=10, test_per_class=10,
                  teacher_epochs=1, student_epochs=1, curvature_per_class=3, curvature_batch_size=60,
                  trace_matvecs=6, lanczos_matvecs=3, mc_draws=4, n_boot=50, n_perm=200, device="cpu"),
    # Default: 6 resnet8 teachers, self-distilled resnet8 students (kd, rid) and the teacher-free
    # student on a CIFAR-10 subset, sized for about 10 minutes on 2 idle CPU cores.
    "default": dict(teacher_arch="resnet8", student_arch="resnet8", teachers=_RECIPES_CPU,
                    methods=("ce", "kd", "rid"), n_per_class=100, test_per_class=100, teacher_epochs=12,
                    student_epochs=12, curvature_per_class=10, curvature_batch_size=200,
                    trace_matvecs=32, lanczos_matvecs=10, mc_draws=16, device="auto",
                    method_kwargs={"rid": {"q": 4, "r": 0.25}}),
    # Full size for a GPU.
    "paper": dict(teacher_arch="resnet56", student_arch="resnet20",
                  teachers=(TeacherRecipe("lr0.2-bs32", 0.2, 32), TeacherRecipe("lr0.1-bs64", 0.1, 64),
                            TeacherRecipe("lr0.05-bs128", 0.05, 128), TeacherRecipe("lr0.02-bs512", 0.02, 512),
                            TeacherRecipe("lr0.1-bs128-wd0", 0.1, 128, 0.0),
                            TeacherRecipe("lr0.1-bs128-wd5e-3", 0.1, 128, 5e-3)),
                  methods=("ce", "kd", "rid"), extra_students=(("resnet56", "kd"),), n_per_class=None,
                  test_per_class=None, teacher_epochs=200, student_epochs=200, student_batch_size=64,
                  curvature_per_class=100, curvature_batch_size=500, trace_matvecs=64, lanczos_matvecs=30,
                  mc_draws=32, device="auto", method_kwargs={"rid": {"q": 20, "r": 0.25}}),
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
    # eval_every = epochs: only the last epoch's test metrics are used (one evaluation pass, not one per epoch)
    return TrainConfig(arch=cfg.teacher_arch, epochs=cfg.teacher_epochs, batch_size=r.batch_size, lr=r.lr,
                       weight_decay=r.weight_decay, schedule=cfg.schedule, seed=cfg.seed, method="ce",
                       device=cfg.device, eval_every=cfg.teacher_epochs)


def _student_config(cfg: StudyConfig, method: str, arch: str | None = None) -> TrainConfig:
    return TrainConfig(arch=arch or cfg.student_arch, epochs=cfg.student_epochs, batch_size=cfg.student_batch_size,
                       lr=cfg.student_lr, schedule=cfg.schedule, seed=cfg.seed + 1, method=method,
                       method_kwargs=cfg.method_kwargs.get(method, {}), device=cfg.device,
                       nesterov=method == "rid", eval_every=cfg.student_epochs)


_CURVATURE_KEYS = ("n_params", "gap_at_teacher", "grad_norm", "gap_eig_max", "gap_eig_min", "n_matvecs")


def flatten_record(teacher: str, recipe: TeacherRecipe, method: str, t_res: Any, s_res: Any,
                   pair: PairChecks, records: Sequence[CheckRecord], curvature: TeacherCurvature | None = None,
                   *, student_arch: str | None = None) -> dict[str, Any]:
    """One CSV row: configs, last-epoch accuracies, teacher curvature, divergence, gaps, and per check
    ``bound_*``, ``observed_*``, ``se_*``, ``kind_*``, ``verdict_*`` (suffix ``<name>_<loss>``).

    Args:
        teacher: the teacher's recipe name. recipe: its recipe. method: the student's label.
        t_res, s_res: the training results (``final`` metrics). pair: the pair's measurements.
        records: the pair's records after the run-level verdicts. curvature: the teacher's curvature.
        student_arch: the student's architecture.

    Returns:
        A flat dict (numbers, strings, booleans, ``None``).
    """
    row: dict[str, Any] = {"teacher": teacher, "method": method, "student_arch": student_arch,
                           "same_architecture": pair.same_architecture, "teacher_lr": recipe.lr,
                           "teacher_batch_size": recipe.batch_size, "teacher_weight_decay": recipe.weight_decay,
                           "teacher_test_acc": t_res.final.get("test_acc"),
                           "teacher_train_acc": t_res.final.get("train_acc"),
                           "student_test_acc": s_res.final.get("test_acc"),
                           "student_train_acc": s_res.final.get("train_acc")}
    if curvature is not None:
        row["teacher_train_trace"] = curvature.train_trace.value
        row["teacher_train_trace_se"] = curvature.train_trace.stderr
        row["teacher_gap_trace"] = curvature.gap_trace.value
        row["teacher_gap_trace_se"] = curvature.gap_trace.stderr
        row["teacher_gap_frob_sq"] = curvature.gap_frob_sq.value
        row["teacher_gap_frob_sq_ucl"] = curvature.frob_sq_upper
        for k in _CURVATURE_KEYS:
            row[f"teacher_{k}"] = getattr(curvature, k)
    row["divergence_train"] = pair.divergence_train.value
    row["divergence_train_se"] = pair.divergence_train.stderr
    row["divergence_train_ci_high"] = pair.divergence_train.ci_high
    row["divergence_test"] = pair.divergence_test.value
    for loss, st in pair.teacher_losses.items():
        row[f"teacher_gap_{loss}"] = st.gap.value
        row[f"student_gap_{loss}"] = pair.student_losses[loss].gap.value
        row[f"student_gap_{loss}_se"] = pair.student_losses[loss].gap.stderr
        row[f"gap_diff_{loss}"] = pair.gap_difference[loss].value
        row[f"gap_diff_{loss}_se"] = pair.gap_difference[loss].stderr
    for r in records:
        key = f"{r.name}_{r.loss}"
        row[f"kind_{key}"] = r.kind
        row[f"bound_{key}"] = r.bound
        row[f"observed_{key}"] = r.observed
        row[f"se_{key}"] = r.observed_se
        row[f"verdict_{key}"] = r.verdict
    return row


def run_verdicts(records: Sequence[CheckRecord], alpha: float = 0.05) -> tuple[CheckRecord, ...]:
    """Run-level verdicts: one Holm/Shaffer family over every non-proxy check of the run, a second one
    over the proxies (so that named proxies do not dilute the family of the real checks).

    Args:
        records: every record of the run, in any order.
        alpha: family-wise level of each family.

    Returns:
        The records in the same order with ``verdict``, ``family_size``, ``method`` and ``z`` set.
    """
    out = list(records)
    for proxy in (False, True):
        idx = [i for i, r in enumerate(records) if (r.kind == "proxy") == proxy]
        for i, r in zip(idx, assign_verdicts([records[i] for i in idx], alpha=alpha)):
            out[i] = r
    return tuple(out)


def kendall_table(sharpness: dict[str, float], rows: Sequence[dict[str, Any]], *,
                  sharpness_name: str = SHARPNESS, gaps: Sequence[str] = KENDALL_GAPS,
                  statistics: Sequence[str] = ("teacher_mean", "pooled"), n_perm: int = 20000,
                  seed: int = 0) -> list[dict[str, Any]]:
    r"""Teacher-level Kendall tests between teacher sharpness and the distilled students' gaps
    (:func:`kdbounds.checks.permutation_kendall`: the permutation moves a teacher's students together),
    with Holm-adjusted p-values across all returned tests.

    .. math::
        \tau_b = \frac{n_c - n_d}{\sqrt{(n_0 - n_1)(n_0 - n_2)}}

    The teacher-free student (``"ce"``) does not depend on the teacher and is left out.

    Args:
        sharpness: ``{teacher: sharpness}``.
        rows: one dict per pair (``teacher``, ``method`` and the ``gaps`` keys).
        sharpness_name: recorded label of the sharpness.
        gaps: row keys of student gaps.
        statistics: ``"teacher_mean"`` and/or ``"pooled"``.
        n_perm: random permutations beyond 8 teachers. seed: their seed.

    Returns:
        One row per (gap, statistic): ``tau``, ``p_value``, ``p_holm``, ``n_teachers``, ``n_students``,
        ``min_attainable_p``, ``exact``, ``note`` (why undefined).
    """
    tests, out = [], []
    distilled = [r for r in rows if r["method"] != "ce"]
    for g in gaps:
        pairs = [(r["teacher"], r[g]) for r in distilled if r.get(g) is not None and math.isfinite(r[g])]
        for st in statistics:
            label = f"{sharpness_name} vs {g} ({st})"
            try:
                tests.append(permutation_kendall(sharpness, pairs, statistic=st, n_perm=n_perm, seed=seed,
                                                 label=label))
            except ValueError as e:
                out.append({"label": label, "sharpness": sharpness_name, "gap": g, "statistic": st,
                            "tau": None, "p_value": None, "p_holm": None,
                            "n_teachers": len({t for t, _ in pairs}), "n_students": len(pairs),
                            "min_attainable_p": None, "exact": None, "note": str(e)})
    for t in kendall_tests(tests):
        d = t.to_dict()
        sh, g = d["label"].split(" (")[0].split(" vs ")
        out.append({"label": d["label"], "sharpness": sh, "gap": g, "statistic": d["statistic"], "tau": d["tau"],
                    "p_value": d["p_value"], "p_holm": d["p_holm"], "n_teachers": d["n_teachers"],
                    "n_students": d["n_students"], "min_attainable_p": d["min_attainable_p"], "exact": d["exact"],
                    "note": d["note"]})
    return out


@dataclass(frozen=True)
class StudyResult:
    """Everything a run measured.

    Attributes:
        config: the config (dict). rows: one flat row per teacher–student pair. reports: per pair the
            :class:`kdbounds.checks.PairChecks` dict with its run-level records. checks: every record of the
            run (``kind``, ``verdict``, family size). curvature: per teacher. verdict_counts: by check name
            and by kind, with the teachers spanned. kendall: teacher-level tests. timing: process CPU
            seconds per phase and wall seconds. seconds: wall time. environment: torch, device, threads.
    """

    config: dict[str, Any]
    rows: tuple[dict[str, Any], ...]
    reports: tuple[dict[str, Any], ...]
    checks: tuple[dict[str, Any], ...]
    curvature: dict[str, dict[str, Any]]
    verdict_counts: dict[str, list[dict[str, Any]]]
    kendall: tuple[dict[str, Any], ...]
    timing: dict[str, float]
    seconds: float
    environment: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "rows": list(self.rows), "reports": list(self.reports),
                "checks": list(self.checks), "curvature": self.curvature, "verdict_counts": self.verdict_counts,
                "kendall": list(self.kendall), "timing": self.timing, "seconds": self.seconds,
                "environment": self.environment}


class _Clock:
    """Process CPU seconds (all threads) per phase."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}

    def add(self, phase: str, since: float) -> float:
        now = time.process_time()
        self.cpu[phase] = self.cpu.get(phase, 0.0) + now - since
        return now


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
    clock = _Clock()
    t = time.process_time()
    torch_threads = torch.get_num_threads()
    dev = resolve_device(cfg.device)
    data = prepare_data(cfg)
    xtr, ytr, xte, yte = data
    log(f"data: {len(ytr)} training and {len(yte)} test images (CIFAR-10), device {dev}, {torch_threads} threads")
    tr_t = (_normalised(xtr, dev), torch.from_numpy(ytr).to(dev))
    te_t = (_normalised(xte, dev), torch.from_numpy(yte).to(dev))
    ci = stratified_subset(ytr, min(cfg.curvature_per_class, int(np.bincount(ytr).min())), seed=cfg.seed)
    cj = stratified_subset(yte, min(cfg.curvature_per_class, int(np.bincount(yte).min())), seed=cfg.seed)
    kernel_train = (tr_t[0][ci], tr_t[1][ci])
    kernel_test = (te_t[0][cj], te_t[1][cj])
    t = clock.add("data", t)
    students = cfg.students()
    free: dict[str, Any] = {}  # teacher-free students, trained once
    for label, arch, method in students:
        if method == "ce":
            free[label] = train_cached(_student_config(cfg, "ce", arch), cache_root, data=data, progress=progress)
            log(f"student alone ({arch}): test acc {free[label].final.get('test_acc'):.4f}")
    t = clock.add("student_training", t)
    pairs: list[tuple[TeacherRecipe, str, str, Any, Any, PairChecks, TeacherCurvature]] = []
    curvatures: dict[str, dict[str, Any]] = {}
    for recipe in cfg.teachers:
        t_res = train_cached(_teacher_config(cfg, recipe), cache_root, data=data, progress=progress)
        t = clock.add("teacher_training", t)
        t_path = t_res.paths["model"]
        teacher = load_checkpoint_model(t_path, map_location=dev)
        log(f"teacher {recipe.name} ({cfg.teacher_arch}): test acc {t_res.final.get('test_acc'):.4f}; "
            "measuring curvature ...")
        curv = measure_teacher_curvature(teacher, kernel_train, kernel_test, p_min=cfg.p_min,
                                         batch_size=cfg.curvature_batch_size, trace_matvecs=cfg.trace_matvecs,
                                         lanczos_matvecs=cfg.lanczos_matvecs, ucl_level=cfg.ucl_level,
                                         seed=cfg.seed, params=cfg.curvature_params)
        t = clock.add("curvature", t)
        curvatures[recipe.name] = curv.to_dict()
        log(f"  tr ∇²L_train {curv.train_trace.value:.1f} ± {curv.train_trace.stderr:.1f}, G0 {curv.grad_norm:.3f}, "
            f"‖∇²f‖_F² ≤ {curv.frob_sq_upper:.3g} ({curv.n_matvecs} Hessian products)")
        for label, arch, method in students:
            if method == "ce":
                s_res = free[label]
            else:
                s_res = train_cached(_student_config(cfg, method, arch), cache_root, teacher_ckpt=t_path, data=data,
                                     progress=progress)
                t = clock.add("student_training", t)
            student = load_checkpoint_model(s_res.paths["model"], map_location=dev)
            pc = evaluate_pair(teacher, student, tr_t, te_t, curvature=curv, p_min=cfg.p_min,
                               temperature=cfg.temperature, loss_increase=cfg.loss_increase, mc_draws=cfg.mc_draws,
                               n_boot=cfg.n_boot, alpha=cfg.alpha, seed=cfg.seed, teacher_label=recipe.name,
                               student_label=label)
            t = clock.add("evaluation", t)
            pairs.append((recipe, label, arch, t_res, s_res, pc, curv))
            log(f"  {label}: student test acc {s_res.final.get('test_acc'):.4f}, K̂ {pc.divergence_train.value:.4f}, "
                f"gap diff (clipped CE) {pc.gap_difference['clipped_ce'].value:+.4f}")
    flat = [r for p in pairs for r in p[5].records]
    judged = run_verdicts(flat, alpha=cfg.alpha)
    rows, reports, k = [], [], 0
    for recipe, label, arch, t_res, s_res, pc, curv in pairs:
        recs = judged[k:k + len(pc.records)]
        k += len(pc.records)
        row = flatten_record(recipe.name, recipe, label, t_res, s_res, pc, recs, curv, student_arch=arch)
        row["teacher_run"] = Path(t_res.paths["out_dir"]).name
        row["student_run"] = Path(s_res.paths["out_dir"]).name
        rows.append(row)
        reports.append({"teacher": recipe.name, "method": label, "student_arch": arch,
                        **pc.to_dict(), "records": [r.to_dict() for r in recs]})
    counts = {"by_name": verdict_counts(judged, by="name"), "by_kind": verdict_counts(judged, by="kind")}
    sharp = {name: c["train_trace"]["value"] for name, c in curvatures.items()}
    kendall = kendall_table(sharp, rows, n_perm=cfg.n_perm, seed=cfg.seed)
    t = clock.add("statistics", t)
    env = {"torch": torch.__version__, "device": str(dev), "threads": torch_threads,
           "cuda": torch.cuda.get_device_name(0) if dev.type == "cuda" else None}
    timing = {f"{k}_cpu_s": v for k, v in clock.cpu.items()}
    timing["total_cpu_s"] = sum(clock.cpu.values())
    wall = time.perf_counter() - start
    timing["wall_s"] = wall
    return StudyResult(cfg.to_dict(), tuple(rows), tuple(reports), tuple(r.to_dict() for r in judged), curvatures,
                       counts, tuple(kendall), timing, wall, env)


Result = StudyResult


def write_results(result: StudyResult, out: str | os.PathLike) -> dict[str, Path]:
    """Write ``results.json`` (everything, strict JSON), ``results.csv`` (one row per pair),
    ``checks.csv`` (one row per check record) and ``kendall.csv``, each atomically.

    Args:
        result: a study result.
        out: the output folder (created when missing).

    Returns:
        The paths written, by kind (``json``, ``csv``, ``checks``, ``kendall``).
    """
    out = Path(out)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "checks": out / "checks.csv",
             "kendall": out / "kendall.csv"}
    atomic_write_json(paths["json"], result.to_dict())
    atomic_write_csv(paths["csv"], result.rows)
    atomic_write_csv(paths["checks"], [{k: v for k, v in c.items() if k != "inputs"} for c in result.checks])
    atomic_write_csv(paths["kendall"], result.kendall)
    return paths


def write_plots(result: StudyResult, out: str | os.PathLike) -> dict[str, Path]:
    """``sharpness_vs_gap.png`` and ``bound_vs_observed.png`` in ``out``."""
    out = Path(out)
    return {"sharpness_vs_gap": plot_sharpness_vs_gap(result.rows, out / "sharpness_vs_gap.png",
                                                      sharpness=SHARPNESS, kendall=result.kendall),
            "bound_vs_observed": plot_bound_vs_observed(result.reports, out / "bound_vs_observed.png")}


_REPORT_COLUMNS = ("teacher", "method", "same_architecture", "teacher_train_trace", "teacher_train_trace_se",
                   "teacher_test_acc", "student_test_acc", "divergence_train", "teacher_gap_clipped_ce",
                   "student_gap_clipped_ce", "gap_diff_clipped_ce", "gap_diff_clipped_ce_se",
                   "verdict_gibbs_classifier_gibbs_zero_one", "verdict_thm1_sigma_n_clipped_ce",
                   "verdict_thm3b_subgamma_quadratic_clipped_ce", "verdict_thm3b_subgamma_mc_clipped_ce")
_COUNT_COLUMNS = ("name", "n_checks", "n_pairs", "n_teachers", "holds", "holds_teachers", "violated",
                  "violated_teachers", "inconclusive", "not_defined")
_KIND_COLUMNS = ("kind",) + _COUNT_COLUMNS[1:]
_KENDALL_COLUMNS = ("sharpness", "gap", "statistic", "n_teachers", "n_students", "tau", "p_value", "p_holm",
                    "min_attainable_p", "note")
_TIMING_ORDER = ("data", "teacher_training", "student_training", "curvature", "evaluation", "statistics")


def summary(result: StudyResult) -> str:
    """The markdown report: per-pair table, verdict counts (with the teachers they span), the
    teacher-level Kendall tests and the CPU time per phase."""
    kinds = {c["name"]: c["kind"] for c in result.checks}
    by_name = [dict(r, name=f"{r['name']} ({kinds.get(r['name'], '?')})") for r in result.verdict_counts["by_name"]]
    tm = result.timing
    timing = [{"phase": p, "cpu_s": tm.get(f"{p}_cpu_s", 0.0)} for p in _TIMING_ORDER]
    timing.append({"phase": "total", "cpu_s": tm.get("total_cpu_s", 0.0)})
    return (f"# sharpness_vs_gap, preset {result.config['preset']}\n\n"
            f"{format_table(result.rows, _REPORT_COLUMNS)}\n\n"
            "## Verdicts (one Holm/Shaffer family over the non-proxy checks, one over the proxies)\n\n"
            f"{format_table(by_name, _COUNT_COLUMNS)}\n\n{format_table(result.verdict_counts['by_kind'], _KIND_COLUMNS)}\n\n"
            "## Kendall τ at the teacher level (permutations keep each teacher's students together; Holm across "
            f"the tests)\n\n{format_table(result.kendall, _KENDALL_COLUMNS)}\n\n"
            f"## Time\n\n{format_table(timing, ('phase', 'cpu_s'))}\n\n"
            f"Wall {result.seconds:.0f} s on {result.environment['device']} "
            f"({result.environment['threads']} threads).\n")


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
