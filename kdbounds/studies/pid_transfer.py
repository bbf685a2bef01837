"""PID transfer study: Red(Y:T,S) and Uni(Y:T\\S) per epoch for KD, VID and RID students under a
trained and an untrained teacher (methods.md §3), and the trainer hook that measures them.

The study (:data:`PRESETS`, :func:`run`): a teacher is trained (cached) and an untrained one of the same
architecture is saved; each student is trained with a :class:`PIDTracker` callback. The discretiser
(PCA 10, k-means 10) is fitted on the first half of held-out images and the histogram uses the second
half; the shuffled-label floor is recorded with every point. The teacher and the students (training and
PID, :func:`student_run`) are one sweep (:func:`training_specs` through
:func:`kdbounds.runs.sweep.run_sweep`): in this process by default, or on Ray
(``--executor ray --workers N``); at equal ``--threads`` the numbers are identical.

The hook:

``PIDTracker`` is a callback for :func:`kdbounds.distill.train` (``callbacks=[tracker]``). Every
``every`` epochs it extracts features of the teacher and the student on a fixed "train" image set
(to fit the discretiser) and a held-out "eval" set (to histogram), and records the BROJA PID of
(Y, T-cluster, S-cluster) via :func:`kdbounds.pid.pid_of_representations`:
Red(Y:T,S) = transferred knowledge, Uni(Y:T\\S) = knowledge still to distil (methods.md §3).

Features: ``model(x, return_features=True)`` → ``FeatureOutput``; ``layer="last"`` takes the deepest
stage map (flattened), ``"pooled"`` the penultimate vector, an int ``k`` the k-th stage. Models are
run in eval mode under ``torch.no_grad`` (BatchNorm running statistics; the previous mode is
restored). Images are uint8 N×32×32×3, normalised as in training (``dataset``).
Nothing is written or printed here; ``records`` holds one flat dict per measured epoch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .._io import atomic_write_csv, atomic_write_json
from .._torch import eval_mode
from ..pid import RepresentationPID, pid_of_representations
from ..runs import grid
from ..runs.sweep import RunSpec, SweepError, run_sweep
from ._config import ConfigRecord
from ._provenance import with_provenance

__all__ = ["PIDTracker", "extract_features", "Config", "PRESETS", "Result", "run", "write_results",
           "plot_curves", "curves_figure", "summary", "method_kwargs", "data_spec", "pid_sets", "student_run", "training_specs",
           "untrained_teacher_path", "TEACHER_KINDS"]


@torch.no_grad()
def extract_features(
    model: nn.Module,
    images: Any,
    *,
    layer: str | int = "last",
    batch_size: int = 500,
    dataset: str = "cifar10",
) -> np.ndarray:
    """Features of ``model`` at ``layer`` (eval mode, no grad, the model's flags restored).

    Args:
        model: a model with the feature API (``model(x, return_features=True)``).
        images: uint8 ``N×32×32×3`` images.
        layer: ``"last"`` (deepest stage map), ``"pooled"`` (penultimate vector) or a stage index.
        batch_size: images per forward pass.
        dataset: the normalisation to apply.

    Returns:
        float64 array, one flattened row per image.

    Raises:
        ValueError: ``layer`` is none of the above.
    """
    from ..data import TensorLoader

    if isinstance(images, torch.Tensor):
        images = images.cpu().numpy()
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"images must be uint8 N×32×32×3 (kdbounds.data.load_cifar); got {images.dtype} {images.shape}")
    dev = next(model.parameters()).device
    loader = TensorLoader(images, np.zeros(len(images), dtype=np.int64), batch_size=batch_size, shuffle=False,
                          augment=False, device=dev, seed=0, drop_last=False, normalize=dataset)
    out = []
    with eval_mode(model):
        for x, _ in loader:
            f = model(x, return_features=True)
            if layer == "last":
                z = f.stages[-1]
            elif layer == "pooled":
                z = f.pooled
            elif isinstance(layer, int):
                z = f.stages[layer]
            else:
                raise ValueError(f"layer must be 'last', 'pooled' or a stage index, got {layer!r}")
            out.append(z.float().reshape(z.shape[0], -1).cpu().numpy().astype(np.float64))
    return np.concatenate(out, axis=0)


class PIDTracker:
    """Callback recording Red / Uni / Syn of (Y; teacher, student) features every ``every`` epochs.

    Args:
        x_fit, y_fit: images/labels on which PCA + k-means are fitted (e.g. a training subset).
        x_eval, y_eval: held-out images/labels that are histogrammed.
        every: measure when ``epoch % every == 0``.
        layer: ``"last"`` (deepest stage), ``"pooled"`` or a stage index.
        n_components, n_clusters, n_boot, n_shuffle, seed: see :func:`pid_of_representations`.
        cache_teacher: compute teacher features once (the teacher is frozen during distillation).
        dataset: normalisation of the images (as the trainer's ``cfg.dataset``).
        on_record: optional ``f(record)`` called after each measurement (e.g. for logging).
    """

    def __init__(
        self,
        x_fit: Any,
        y_fit: Any,
        x_eval: Any,
        y_eval: Any,
        *,
        every: int = 1,
        layer: str | int = "last",
        n_components: int = 10,
        n_clusters: int = 10,
        n_boot: int = 0,
        n_shuffle: int = 3,
        seed: int = 0,
        cache_teacher: bool = True,
        dataset: str = "cifar10",
        batch_size: int = 500,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        **pid_kwargs: Any,
    ) -> None:
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.x_fit, self.x_eval = x_fit, x_eval
        self.y_fit = np.asarray(y_fit).astype(np.int64)
        self.y_eval = np.asarray(y_eval).astype(np.int64)
        self.every = int(every)
        self.layer = layer
        self.kw = dict(n_components=n_components, n_clusters=n_clusters, n_boot=n_boot, n_shuffle=n_shuffle,
                       seed=seed, **pid_kwargs)
        self.cache_teacher = cache_teacher
        self.dataset = dataset
        self.batch_size = batch_size
        self.on_record = on_record
        self._teacher_feats: tuple[np.ndarray, np.ndarray] | None = None
        self.records: list[dict[str, Any]] = []
        self.results: list[RepresentationPID] = []

    def _features(self, model: nn.Module) -> tuple[np.ndarray, np.ndarray]:
        kw = dict(layer=self.layer, batch_size=self.batch_size, dataset=self.dataset)
        return extract_features(model, self.x_fit, **kw), extract_features(model, self.x_eval, **kw)

    def measure(self, student: nn.Module, teacher: nn.Module, epoch: int) -> dict[str, Any]:
        """Measure now (also usable outside the trainer, e.g. at epoch 0)."""
        if teacher is None:
            raise ValueError("PIDTracker needs a teacher (the run has none: method 'ce' without teacher?)")
        if self._teacher_feats is None or not self.cache_teacher:
            self._teacher_feats = self._features(teacher)
        t_fit, t_eval = self._teacher_feats
        s_fit, s_eval = self._features(student)
        res = pid_of_representations(t_fit, s_fit, self.y_fit, t_eval, s_eval, self.y_eval, **self.kw)
        row = {"epoch": int(epoch), **res.flat(), "pid_status": res.pid.status, "duality_gap": res.pid.duality_gap}
        self.records.append(row)
        self.results.append(res)
        if self.on_record is not None:
            self.on_record(row)
        return row

    def __call__(self, info: Any) -> None:
        if info.epoch % self.every:
            return
        self.measure(info.student, info.teacher, info.epoch)


# ------------------------------------------------------------------------------------------ the study
@dataclass(frozen=True)
class Config(ConfigRecord):
    """Everything that determines a PID-transfer run."""

    preset: str
    teacher_arch: str
    student_arch: str
    n_per_class: int | None
    pid_per_class: int
    teacher_epochs: int
    epochs: int
    every: int
    batch_size: int
    device: str
    n_boot: int
    n_shuffle: int
    rid_q: int
    methods: tuple[str, ...] = ("kd", "vid", "rid")
    seed: int = 0
    data_root: str | None = None

    def __post_init__(self) -> None:
        from ..distill import available_methods

        object.__setattr__(self, "methods", tuple(self.methods))
        missing = [m for m in self.methods if m not in available_methods()]
        if missing or not self.methods:
            raise ValueError(f"methods: not registered {missing}; available: {available_methods()}")


PRESETS: dict[str, Config] = {
    # resnet8 -> resnet8, 10 img/class, 1+2 epochs, PID on 200/200 images (< 2 min; CI)
    "smoke": Config(preset="smoke", teacher_arch="resnet8", student_arch="resnet8", n_per_class=10, pid_per_class=40,
                    teacher_epochs=1, epochs=2, every=1, batch_size=32, device="cpu", n_boot=0, n_shuffle=2,
                    rid_q=2),
    # resnet20 -> resnet8, 100 img/class, PID every 2 epochs on 1000 fit / 1000 eval test images
    "cpu": Config(preset="cpu", teacher_arch="resnet20", student_arch="resnet8", n_per_class=100, pid_per_class=200,
                  teacher_epochs=10, epochs=6, every=2, batch_size=64, device="cpu", n_boot=0, n_shuffle=3,
                  rid_q=3),
    # wrn_40_2 -> wrn_16_1, full train set, PID every 5 epochs on 5000/5000 test images
    "gpu": Config(preset="gpu", teacher_arch="wrn_40_2", student_arch="wrn_16_1", n_per_class=None,
                  pid_per_class=1000, teacher_epochs=60, epochs=40, every=5, batch_size=128, device="auto",
                  n_boot=10, n_shuffle=5, rid_q=10),
}


def method_kwargs(cfg: Config, method: str) -> dict[str, Any]:
    """RID: cycle length q from the preset, r = 1/4, lam1 = 1, lam2 = 10, the shared lr schedule."""
    if method == "rid":
        return {"q": cfg.rid_q, "r": 0.25, "lam1": 1.0, "lam2": 10.0, "lr_schedule": "config"}
    return {}


@dataclass(frozen=True)
class Result:
    """One row per (teacher, method, measured epoch)."""

    preset: str
    config: dict[str, Any]
    methods: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "config": self.config, "methods": list(self.methods), "rows": list(self.rows)}


def _base(cfg: Config, arch: str, epochs: int, seed: int) -> Any:
    from ..distill import TrainConfig

    return TrainConfig(arch=arch, dataset="cifar10", epochs=epochs, batch_size=cfg.batch_size, seed=seed,
                       n_per_class=cfg.n_per_class, device=cfg.device, eval_every=max(epochs, 1))


def data_spec(config: Config) -> grid.DataSpec:
    """The arrays every run trains on: the CIFAR-10 train split and the whole test split."""
    return grid.DataSpec("cifar10", config.data_root, None)


def pid_sets(test_x: np.ndarray, test_y: np.ndarray,
             per_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The PID images: ``2 * per_class`` test images per class (stratified, seed 0), shuffled (seed 0),
    the first half to fit the discretiser, the second half to histogram.

    Args:
        test_x, test_y: the test split.
        per_class: images per class in each half, on average.

    Returns:
        ``(fit_x, fit_y, eval_x, eval_y)``.
    """
    from ..data import stratified_subset

    idx = np.random.default_rng(0).permutation(stratified_subset(test_y, 2 * per_class, seed=0))
    half = idx.size // 2
    return test_x[idx[:half]], test_y[idx[:half]], test_x[idx[half:]], test_y[idx[half:]]


def _student_config(config: Config, method: str, teacher_ckpt: str | None) -> Any:
    return dataclasses.replace(_base(config, config.student_arch, config.epochs, config.seed), method=method,
                               teacher_ckpt=teacher_ckpt, method_kwargs=method_kwargs(config, method))


def _code() -> str:
    """Fingerprint of the code behind a student's numbers: the trainer's packages, ``kdbounds.pid`` and
    this module (so a published student run is not reused after any of them changed)."""
    from ..runs.cache import code_fingerprint

    h = hashlib.sha256(code_fingerprint().encode())
    h.update(code_fingerprint(("pid",)).encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def student_run(config: Mapping[str, Any], out_dir: str, data: grid.DataSpec, pid_per_class: int,
                tracker: Mapping[str, Any], code: str, teacher: str | None = None, progress: bool = False,
                deps: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train one student from scratch with a :class:`PIDTracker` and return its PID records (a sweep run).

    The student is trained into ``out_dir`` with ``resume=False`` (a finished training would skip its
    callbacks and leave no curve); data and PID images come from ``data`` (:func:`pid_sets`), loaded
    once per process. Solver-accuracy warnings are silenced (each point records ``pid_status`` and
    ``duality_gap``).

    Args:
        config: the student's ``TrainConfig.to_dict()`` (``teacher_ckpt`` empty when ``teacher`` is given).
        out_dir: the training folder.
        data: the arrays (see :func:`data_spec`).
        pid_per_class: see :func:`pid_sets`.
        tracker: keyword arguments of :class:`PIDTracker` (``every``, ``n_boot``, ``n_shuffle``, ``seed``).
        code: the code fingerprint (part of the run's spec fingerprint: a published result is reused
            only with the same code).
        teacher: key of the teacher run among ``deps`` (``None``: ``config`` names the teacher file).
        progress: the trainer's progress.
        deps: results of the dependencies, filled in by the sweep runner.

    Returns:
        ``{"records": [one dict per measured epoch], "final_test_acc": float}``.
    """
    from ..distill import train

    cfg = grid.worker_config(config, teacher, deps)
    arrays = grid.load_data(data)
    fit_x, fit_y, ev_x, ev_y = pid_sets(arrays[2], arrays[3], pid_per_class)
    tr = PIDTracker(fit_x, fit_y, ev_x, ev_y, **tracker)
    with warnings.catch_warnings():
        # solver accuracy is recorded per point (pid_status, duality_gap); keep the console readable
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        warnings.filterwarnings("ignore", message="BROJA PID: solver")
        res = train(cfg, out_dir, callbacks=[tr], data=arrays, progress=progress, resume=False)
    return {"records": tr.records, "final_test_acc": float(res.final.get("test_acc", float("nan")))}


#: the students' teachers: the trained one (a run of the sweep) and an untrained one (a saved initialisation)
TEACHER_KINDS = ("trained", "untrained")


def untrained_teacher_path(config: Config, cache_root: str | os.PathLike) -> Path:
    """Where the untrained teacher's model file lives in the run cache (written by :func:`run`)."""
    return Path(cache_root) / "teachers" / f"untrained_{config.teacher_arch}.pt"


def training_specs(config: Config, out_dir: str | os.PathLike, cache_root: str | os.PathLike,
                   progress: bool = False) -> list[RunSpec]:
    """The study's sweep: the trained teacher (key ``"teacher"``, through the run cache), then per
    teacher kind (``trained``, ``untrained``) and method a :func:`student_run` ``"<method>-<kind>"``
    training into ``out_dir/runs/<method>-<kind>``; the trained teacher's students depend on it.

    The untrained teacher's file (in ``cache_root/teachers``) is written by :func:`run` before the sweep.

    Args:
        config: the study config.
        out_dir: the study's output folder.
        cache_root: the run cache.
        progress: the trainer's progress inside each run.

    Returns:
        The :class:`~kdbounds.runs.sweep.RunSpec` list for :func:`~kdbounds.runs.sweep.run_sweep`.
    """
    data = data_spec(config)
    specs = [grid.train_spec("teacher", _base(config, config.teacher_arch, config.teacher_epochs, 1000), cache_root,
                             data, progress=progress)]
    tracker = {"every": config.every, "n_boot": config.n_boot, "n_shuffle": config.n_shuffle, "seed": config.seed}
    code = _code()
    untrained = str(untrained_teacher_path(config, cache_root))
    for kind in TEACHER_KINDS:
        for m in config.methods:
            trained = kind == "trained"
            c = _student_config(config, m, None if trained else untrained)
            specs.append(RunSpec(f"{m}-{kind}", student_run,
                                 {"config": c.to_dict(), "out_dir": str(Path(out_dir) / "runs" / f"{m}-{kind}"),
                                  "data": data, "pid_per_class": config.pid_per_class, "tracker": tracker,
                                  "code": code, "teacher": "teacher" if trained else None, "progress": progress},
                                 deps=("teacher",) if trained else ()))
    return specs


def _rows(config: Config, done: Mapping[str, Any], log: Callable[[str], None]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for kind in TEACHER_KINDS:
        for m in config.methods:
            if f"{m}-{kind}" not in done:
                continue
            res = done[f"{m}-{kind}"]
            for r in res["records"]:
                rows.append({"teacher": kind, "method": m, **r, "final_test_acc": res["final_test_acc"]})
            log(f"{kind:9s} {m:4s} " + "  ".join(
                f"ep{r['epoch']}: Red={r['redundancy']:.3f} Uni={r['unique_t']:.3f}" for r in res["records"]))
    return rows


def run(config: Config, out_dir: str | os.PathLike, *, cache_root: str | os.PathLike | None = None,
        progress: bool = True, log: Callable[[str], None] = print,
        sweep: Mapping[str, Any] | None = None) -> Result:
    """Train the students with a :class:`PIDTracker` and write ``curves.csv``, ``results.json``, ``curves.png``.

    The teacher and the students are one sweep (:func:`training_specs`): each student is trained from
    scratch into ``out_dir/runs`` with its PID measured per epoch, in the process that runs it (here,
    or a Ray worker with ``sweep={"executor": "ray", "workers": 2}``; at equal ``threads`` the numbers
    are the same). Finished student runs are published in ``out_dir/sweep``: a study interrupted and
    started again (same options, same code) re-trains only the students that had not finished, and
    when a run fails the outputs are written from the finished ones before the error is raised.

    Args:
        config: e.g. ``PRESETS["smoke"]``.
        out_dir: output folder (created when missing).
        cache_root: cache of the trained teacher (default ``out_dir/../cache``).
        progress: progress over runs (and, with the local executor, over each run's epochs).
        log: where result lines go.
        sweep: keyword arguments of :func:`~kdbounds.runs.sweep.run_sweep` (``executor``,
            ``workers``, ``address``, ``threads``, ``max_retries``, ``gpus_per_run``); default local,
            one thread per run.

    Returns:
        The :class:`Result`.

    Raises:
        kdbounds.runs.sweep.SweepError: a run failed (the finished ones are written and published).
    """
    from ..distill.controls import make_untrained_teacher
    from ..runs.cache import resolve_cache_root

    out = Path(out_dir)
    cache = resolve_cache_root(out, cache_root)
    sweep = dict(sweep or {})
    _, _, test_x, test_y = grid.load_data(data_spec(config))
    pid_sets(test_x, test_y, config.pid_per_class)  # a pid_per_class the test split cannot give fails here
    make_untrained_teacher(config.teacher_arch, 10, 1000, untrained_teacher_path(config, cache))
    local = sweep.get("executor", "local") == "local"
    specs = training_specs(config, out, cache, progress=progress and local)
    try:
        done = run_sweep(specs, progress=progress, desc="pid_transfer", out_dir=out / "sweep", **sweep)
    except SweepError as e:
        write_results(Result(config.preset, config.to_dict(), config.methods, tuple(_rows(config, e.results, log))),
                      out)
        raise
    result = Result(config.preset, config.to_dict(), config.methods, tuple(_rows(config, done, log)))
    write_results(result, out)
    plot_curves(result, out / "curves.png")
    return result


def write_results(result: Result, out: str | os.PathLike) -> dict[str, Path]:
    """``curves.csv`` (teacher, method, epoch first) and ``results.json`` (strict JSON), each atomically."""
    out = Path(out)
    keys = sorted({k for r in result.rows for k in r}, key=lambda k: (k not in ("teacher", "method", "epoch"), k))
    return {"csv": atomic_write_csv(out / "curves.csv", result.rows, columns=keys),
            "json": atomic_write_json(out / "results.json", with_provenance(result.to_dict()))}


def plot_curves(result: Result, path: str | os.PathLike) -> Path:
    """Write :func:`curves_figure` of the result's rows to ``path`` (atomically).

    Args:
        result: the study's result.
        path: the PNG written.

    Returns:
        ``path``.
    """
    from ..figures import save_figure

    return save_figure(curves_figure(result.rows), path, dpi=120)


def curves_figure(rows: Any) -> Any:
    r"""``Red(Y:T,S)`` (solid) and ``Uni(Y:T\S)`` (dashed) against the epoch, one panel per teacher, with the
    bootstrap 95 % interval of each point where the rows carry one (a vertical bar) and the shuffled-label floor of
    ``Red`` (dotted, mean ± 2 sd over the shuffles as a band: the estimator's value with no dependence).

    Args:
        rows: the study's rows (``teacher``, ``method``, ``epoch``, ``redundancy``, ``unique_t``, optional
            ``*_ci_low``/``*_ci_high``, ``redundancy_shuffle_mean``/``_sd``).

    Returns:
        The figure; ``kdbounds_intervals`` counts the intervals drawn.
    """
    from matplotlib.ticker import MaxNLocator

    from ..figures import plt_figure

    fig, axes = plt_figure(1, 2, figsize=(11, 4.4), sharey=True)
    drawn = 0
    for ax, kind in zip(axes, ("trained", "untrained")):
        for i, m in enumerate(sorted({r["method"] for r in rows})):
            rr = sorted((r for r in rows if r["teacher"] == kind and r["method"] == m), key=lambda r: r["epoch"])
            if not rr:
                continue
            ep = np.array([r["epoch"] for r in rr], float)
            colour = f"C{i}"
            for atom, style, name in (("redundancy", "-o", "Red"), ("unique_t", "--s", "Uni")):
                y = np.array([r[atom] for r in rr], float)
                ax.plot(ep, y, style, color=colour, ms=4, label=f"{m} $\\mathrm{{{name}}}$")
                lo = np.array([r.get(f"{atom}_ci_low", np.nan) for r in rr], float)
                hi = np.array([r.get(f"{atom}_ci_high", np.nan) for r in rr], float)
                has = np.isfinite(lo) & np.isfinite(hi)
                if has.any():
                    ax.vlines(ep[has] + (0.05 if atom == "unique_t" else 0.0), lo[has], hi[has], color=colour, lw=1.4,
                              alpha=0.8)
                    drawn += int(has.sum())
            floor = np.array([r["redundancy_shuffle_mean"] for r in rr], float)
            sd = np.array([r.get("redundancy_shuffle_sd", np.nan) for r in rr], float)
            ax.plot(ep, floor, ":", color=colour, alpha=0.7)
            if np.isfinite(sd).all():
                ax.fill_between(ep, floor - 2 * sd, floor + 2 * sd, color=colour, alpha=0.12, lw=0)
        ax.set_title(f"{kind} teacher (dotted: shuffled-label floor ± 2 sd; bars: bootstrap 95 %)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("nats")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.kdbounds_intervals = drawn
    return fig


def summary(result: Result) -> str:
    """One line per (teacher, method): Red and Uni at the last measured epoch."""
    lines = []
    for kind in ("trained", "untrained"):
        for m in result.methods:
            rr = [r for r in result.rows if r["teacher"] == kind and r["method"] == m]
            if rr:
                r = max(rr, key=lambda r: r["epoch"])
                lines.append(f"{kind:9s} {m:4s} epoch {r['epoch']}: Red={r['redundancy']:.3f} Uni={r['unique_t']:.3f}")
    return "\n".join(lines)
