# Over 500 lines on purpose: the trainer's named steps and the evaluation/data helpers they share (the exact-resume contract).
"""The trainer: teacher training and distillation with a pluggable method.

``train(cfg, out_dir, ...)`` writes into ``out_dir``:

* ``log.jsonl``     one JSON object per epoch (epoch, lr, train_loss/acc and the method's parts
  as ``train_<part>``, test_loss/acc, val_loss/acc when a validation split exists, times);
* ``checkpoint.pt`` the training state after the last completed epoch (atomic; exact resume);
* ``model.pt``      the final student (``load_checkpoint_model`` rebuilds it);
* ``config.json``, ``result.json``.

The reported result is the **last** epoch (never selected on test data). A NaN/inf training loss
raises :class:`TrainingDiverged`; the checkpoint of the last good epoch is kept.

Determinism: the student's initialisation comes from ``build_model(seed=init_seed or seed)``, the
data order and augmentation from the loader's own generator seeded with ``seed``; on CPU two runs
with the same config give bit-identical weights, and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._data import as_batches
from .._io import atomic_write_json
from .._torch import collect_logits, eval_mode, resolve_device
from ..models import build_model
from .checkpoint import (
    MODEL_FORMAT,
    TRAIN_FORMAT,
    _first_line,
    atomic_save,
    capture_rng,
    file_sha256,
    load_checkpoint_model,
    read_checkpoint,
    restore_rng,
)
from .config import TrainConfig
from .methods import DistillMethod, StepContext, TrainingDiverged, check_method_hparams, get_method, logits_of
from .recipes import Recipe, build_recipe, evaluate_tta

__all__ = [
    "ConfigMismatchError",
    "EpochInfo",
    "TrainResult",
    "TrainingDiverged",
    "evaluate",
    "load_checkpoint_model",
    "predict_logits",
    "prepare_data",
    "resolve_device",
    "train",
]

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
LOG = "log.jsonl"
TIMING_KEYS = frozenset({"train_time_s", "eval_time_s", "epoch_time_s"})  # wall-clock: log only, never model.pt
RESULT = "result.json"
CONFIG = "config.json"


class ConfigMismatchError(ValueError):
    """``out_dir`` holds a checkpoint of a different configuration."""


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`. ``final`` = metrics of the last epoch; ``history`` = every epoch."""

    config: dict[str, Any]
    final: dict[str, Any]
    history: tuple[dict[str, Any], ...]
    paths: dict[str, str]
    epochs_completed: int
    resumed_from_epoch: int | None = None
    wall_time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The record written as ``result.json``.

        Returns:
            Config, final metrics, history, paths, epochs completed, resume epoch and wall time.
        """
        return {"config": self.config, "final": self.final, "history": list(self.history),
                "paths": self.paths, "epochs_completed": self.epochs_completed,
                "resumed_from_epoch": self.resumed_from_epoch, "wall_time_s": self.wall_time_s}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str | os.PathLike | None = None) -> "TrainResult":
        """Inverse of :meth:`to_dict`; ``source`` (the file read) is named in the error.

        Args:
            d: the record.
            source: the file it was read from (for the message).

        Returns:
            The result.

        Raises:
            ValueError: ``d`` is not a result record (missing or malformed fields).
        """
        try:
            return cls(config=dict(d["config"]), final=dict(d["final"]),
                       history=tuple(dict(h) for h in d["history"]), paths=dict(d["paths"]),
                       epochs_completed=int(d["epochs_completed"]),
                       resumed_from_epoch=d.get("resumed_from_epoch"),
                       wall_time_s=float(d.get("wall_time_s") or 0.0))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            where = f"{source}: " if source is not None else ""
            raise ValueError(f"{where}not a training result record ({type(e).__name__}: {e}); delete "
                             f"the file (or its run folder) and run again") from None


@dataclass
class EpochInfo:
    """Passed to every callback after each epoch (after the checkpoint is written).

    ``epoch`` counts completed epochs (1-based); ``metrics`` is that epoch's log line.
    """

    epoch: int
    metrics: dict[str, Any]
    student: nn.Module
    teacher: nn.Module | None
    method: DistillMethod
    config: TrainConfig
    out_dir: Path


# ----------------------------------------------------------------------------- helpers

def _tensor_loader():
    try:
        from ..data import TensorLoader  # lazy: data layer owned by another module
    except ImportError as e:  # pragma: no cover - only while the data package is incomplete
        raise ImportError("kdbounds.data.TensorLoader is not available; the trainer needs it") from e
    return TensorLoader


def _as_images(x: Any, what: str) -> np.ndarray | Tensor:
    if isinstance(x, Tensor):
        ok = x.dtype == torch.uint8 and x.dim() == 4 and tuple(x.shape[1:]) == (32, 32, 3)
    else:
        x = np.asarray(x)
        ok = x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == (32, 32, 3)
    if not ok:
        raise ValueError(f"data: {what} must be uint8 images of shape N×32×32×3 (as returned by "
                         f"kdbounds.data.load_cifar); got dtype {x.dtype}, shape {tuple(x.shape)}")
    return x


def _as_labels(y: Any, n: int, num_classes: int, what: str) -> np.ndarray:
    y = y.cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"data: {what} must be {n} integer class labels; got dtype {y.dtype}, shape {y.shape}")
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"data: {what} out of range [0, {num_classes}) — wrong dataset in the config?")
    return y.astype(np.int64)


@dataclass
class PreparedData:
    """The arrays of one run: training (subset), test and optional validation images and labels."""

    train_x: Any
    train_y: np.ndarray
    test_x: Any
    test_y: np.ndarray
    val_x: Any = None
    val_y: np.ndarray | None = None


def prepare_data(cfg: TrainConfig, data: Sequence[Any] | None = None) -> PreparedData:
    """Arrays for a run: ``data`` = (train_x, train_y, test_x, test_y) or loaded with ``load_cifar``;
    then the validation split (``val_per_class``) and the stratified subset (``n_per_class``), both
    drawn with ``subset_seed`` (kdbounds.data.splits).

    Args:
        cfg: the training config (data set, root, subset sizes, seeds).
        data: ``(train_x, train_y, test_x, test_y)`` (uint8 ``N x 32 x 32 x 3`` images, int labels),
            or ``None`` to load CIFAR.

    Returns:
        The prepared arrays.

    Raises:
        ValueError: ``data`` is not such a 4-tuple, or its arrays are malformed.
    """
    if data is None:
        from ..data import load_cifar
        train_x, train_y = load_cifar(cfg.dataset, root=cfg.data_root, split="train")
        test_x, test_y = load_cifar(cfg.dataset, root=cfg.data_root, split="test")
    else:
        if not isinstance(data, (tuple, list)) or len(data) != 4:
            raise ValueError("data must be a tuple (train_x, train_y, test_x, test_y) of uint8 N×32×32×3 "
                             "images and int labels")
        train_x, train_y, test_x, test_y = data
    train_x = _as_images(train_x, "train_x")
    test_x = _as_images(test_x, "test_x")
    train_y = _as_labels(train_y, len(train_x), cfg.num_classes, "train_y")
    test_y = _as_labels(test_y, len(test_x), cfg.num_classes, "test_y")
    idx = np.arange(len(train_y))
    val_x = val_y = None
    if cfg.val_per_class:
        from ..data import train_val_split
        tr, va = train_val_split(train_y, cfg.val_per_class, seed=cfg.subset_seed)
        val_x, val_y = train_x[va], train_y[va]
        idx = tr
    if cfg.n_per_class is not None:
        from ..data import stratified_subset
        idx = idx[stratified_subset(train_y[idx], cfg.n_per_class, seed=cfg.subset_seed)]
    if len(idx) != len(train_y):
        train_x, train_y = train_x[idx], train_y[idx]
    return PreparedData(train_x, train_y, test_x, test_y, val_x, val_y)


def _make_loader(images, labels, cfg: TrainConfig, device: torch.device, train: bool,
                 batch_size: int | None = None, channels_last: bool = False,
                 options: Mapping[str, Any] | None = None):
    TensorLoader = _tensor_loader()
    return TensorLoader(images, labels, batch_size=batch_size or cfg.batch_size, shuffle=train,
                        augment=train and cfg.augment, device=device, seed=cfg.seed,
                        drop_last=train and cfg.drop_last, normalize=cfg.dataset,
                        channels_last=channels_last, **(options or {}))


def _prep_input(x: Tensor, channels_last: bool) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]],
             amp_dtype: torch.dtype | None = None, channels_last: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` over ``loader`` (eval mode, no grad; the model's
    previous train/eval mode is restored).

    Args:
        model: the network.
        loader: ``(inputs, labels)`` tensors, an iterable of such batches or a DataLoader.
        amp_dtype: autocast dtype, or ``None`` (full precision).
        channels_last: convert the inputs to channels-last memory format.

    Returns:
        ``(mean loss, accuracy)``.

    Raises:
        ValueError: the loader yielded no batches.
    """
    total, loss_sum, correct = 0, None, None
    with eval_mode(model):
        for x, y in as_batches(loader, "loader"):
            x = _prep_input(x, channels_last)
            if amp_dtype is not None:
                with torch.autocast(device_type=x.device.type, dtype=amp_dtype):
                    z = logits_of(model(x))
            else:
                z = logits_of(model(x))
            z = z.float()
            l = F.cross_entropy(z, y, reduction="sum")
            c = (z.argmax(1) == y).sum()
            loss_sum = l if loss_sum is None else loss_sum + l
            correct = c if correct is None else correct + c
            total += y.shape[0]
    if total == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    return float(loss_sum) / total, float(correct) / total


@torch.no_grad()
def predict_logits(model: nn.Module, images: Any, batch_size: int = 500, dataset: str = "cifar10",
                   device: str | torch.device | None = None) -> Tensor:
    """Logits (float32, CPU, ``N × num_classes``) of ``model`` on uint8 N×32×32×3 ``images``,
    normalised as in training for ``dataset``; eval mode; device = the model's unless given.

    Args:
        model: the network.
        images: uint8 ``N x 32 x 32 x 3`` images.
        batch_size: images per forward.
        dataset: whose normalisation is applied (``"cifar10"``/``"cifar100"``).
        device: where to run (default: the model's device).

    Returns:
        The logits, float32 on the CPU.
    """
    images = _as_images(images, "images")
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    TensorLoader = _tensor_loader()
    loader = TensorLoader(images, np.zeros(len(images), dtype=np.int64), batch_size=batch_size,
                          shuffle=False, augment=False, device=dev, seed=0, drop_last=False,
                          normalize=dataset)
    if not len(images):
        return torch.zeros(0, getattr(model, "num_classes", 0))
    return collect_logits(model, loader)[0].float()


def _derived_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1, dtype=np.uint64)[0] >> 1)


@contextlib.contextmanager
def method_rng(seed: int) -> Iterator[None]:
    """The random stream a run's method is built under: the global torch RNG forked (the caller's stream is
    left untouched) and seeded from the run's init seed. :func:`train` builds every method in it, and
    :func:`kdbounds.runs.posterior_learning.learn_posterior` draws its noise seed in it, so both draw the
    same weight noise for the same seed.

    Args:
        seed: the run's init seed (``cfg.init_seed``, else ``cfg.seed``).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_derived_seed(seed, 1))
        yield


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_json(path, obj, sort_keys=True)


def _to_float(v: Any) -> float:
    return float(v.item()) if isinstance(v, Tensor) else float(v)


def _config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(a) | set(b))
    return [f"{k}: checkpoint {a.get(k)!r} vs now {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]


def _load_teacher(cfg: TrainConfig, teacher: nn.Module | None, device: torch.device,
                  channels_last: bool) -> nn.Module | None:
    if teacher is None and cfg.teacher_ckpt is not None:
        teacher = load_checkpoint_model(cfg.teacher_ckpt, map_location="cpu")
    if teacher is None:
        return None
    nc = getattr(teacher, "num_classes", None)
    if nc is not None and nc != cfg.num_classes:
        raise ValueError(f"teacher has num_classes={nc} but dataset {cfg.dataset!r} has {cfg.num_classes}")
    teacher = teacher.to(device)
    if channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


# ----------------------------------------------------------------------------- train

@dataclass
class _Run:
    """Everything one training run holds between its steps (built by :func:`_setup`)."""

    cfg: TrainConfig
    out: Path
    paths: dict[str, str]
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    teacher: nn.Module | None
    student: nn.Module
    method: DistillMethod
    optimizers: list[Any]
    schedulers: list[Any]
    train_loader: Any
    test_loader: Any
    val_loader: Any | None
    history: list[dict[str, Any]]
    start_epoch: int = 0
    resumed_from: int | None = None
    recipe: Recipe = dataclasses.field(default_factory=Recipe)


def _open_run(cfg: TrainConfig, out_dir: str | os.PathLike, resume: bool) -> tuple[Path, dict[str, str], dict | None]:
    """Step 1: the run folder, its file paths and the checkpoint to resume from (checked against ``cfg``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"out_dir": str(out), "checkpoint": str(out / CHECKPOINT), "model": str(out / MODEL),
             "log": str(out / LOG), "config": str(out / CONFIG), "result": str(out / RESULT)}
    ckpt = None
    if not resume:  # start over: drop the previous run's files so a later resume cannot pick them up
        for name in (CHECKPOINT, MODEL, RESULT):
            (out / name).unlink(missing_ok=True)
    if resume and (out / CHECKPOINT).is_file():
        ckpt = read_checkpoint(out / CHECKPOINT)
        if ckpt.get("format") != TRAIN_FORMAT:
            raise ValueError(f"{paths['checkpoint']} is not a training checkpoint")
        diff = _config_diff(ckpt["config"], cfg.to_dict())
        if diff:
            raise ConfigMismatchError(
                f"{out} holds a checkpoint of a different configuration ({'; '.join(diff)}). Use another "
                f"out_dir for this configuration, or resume=False (CLI: --no-resume) to start over there.")
    return out, paths, ckpt


def _setup(cfg: TrainConfig, method_cls: type, out: Path, paths: dict[str, str], teacher: nn.Module | None,
           data: Sequence[Any] | None, teacher_cache: bool = False) -> _Run:
    """Step 2: device, teacher, data loaders, student, method, optimisers and schedulers (in this order:
    the order fixes the random streams, so it is part of the exact-resume contract). With
    ``teacher_cache`` the frozen teacher is wrapped, after the method is built, in a
    :class:`~kdbounds.distill.teacher_cache.CachedTeacher` (exact; no augmentation only)."""
    device = resolve_device(cfg.device)
    on_cuda = device.type == "cuda"
    amp_dtype = torch.bfloat16 if (cfg.amp and on_cuda) else None
    channels_last = cfg.channels_last  # CPU too: 23–28 % less CPU per epoch (benchmarks/train_cpu_profile.py)

    if method_cls.requires_teacher and teacher is None and cfg.teacher_ckpt is None:
        raise ValueError(f"method {cfg.method!r} needs a teacher: set teacher_ckpt (CLI --teacher CKPT) "
                         f"or pass teacher=")
    teacher = _load_teacher(cfg, teacher, device, channels_last)

    recipe = build_recipe(cfg)
    prepared = prepare_data(cfg, data)
    train_loader = _make_loader(prepared.train_x, prepared.train_y, cfg, device, train=True,
                                channels_last=channels_last, options=recipe.loader_options())
    test_loader = _make_loader(prepared.test_x, prepared.test_y, cfg, device, train=False,
                               batch_size=max(cfg.batch_size, 500), channels_last=channels_last)
    val_loader = None
    if prepared.val_x is not None:
        val_loader = _make_loader(prepared.val_x, prepared.val_y, cfg, device, train=False,
                                  batch_size=max(cfg.batch_size, 500), channels_last=channels_last)

    student = build_model(cfg.arch, num_classes=cfg.num_classes,
                          seed=cfg.init_seed if cfg.init_seed is not None else cfg.seed)
    if cfg.init_ckpt is not None:
        _init_from_checkpoint(student, cfg)
    student = student.to(device)
    if channels_last:
        student = student.to(memory_format=torch.channels_last)
    recipe.prepare_student(student, prepared.train_x, cfg)
    # methods build their own modules (regressors, filters) with PyTorch's default initialisers,
    # which draw from the global RNG: build under a forked RNG seeded from the run's init seed so the
    # run is reproducible and the caller's RNG stream is left untouched
    with method_rng(cfg.init_seed if cfg.init_seed is not None else cfg.seed):
        method = method_cls(student, teacher, cfg.num_classes, **cfg.method_kwargs)
    method = method.to(device)
    if teacher_cache and teacher is not None:
        from .teacher_cache import CachedTeacher

        teacher = CachedTeacher(teacher)
    optimizers = recipe.optimizers(method, student, cfg)
    schedulers = recipe.schedulers(method, optimizers, cfg)
    return _Run(cfg, out, paths, device, amp_dtype, channels_last, teacher, student, method, optimizers,
                schedulers, train_loader, test_loader, val_loader, history=[], recipe=recipe)


def _init_from_checkpoint(student: nn.Module, cfg: TrainConfig) -> None:
    """Copy the weights (and BatchNorm statistics) of the model file ``cfg.init_ckpt`` into ``student``."""
    source = load_checkpoint_model(cfg.init_ckpt, map_location="cpu")
    if getattr(source, "arch", None) != getattr(student, "arch", None) or \
            getattr(source, "num_classes", None) != cfg.num_classes:
        raise ValueError(f"init_ckpt {cfg.init_ckpt!r} holds a {getattr(source, 'arch', '?')} with "
                         f"{getattr(source, 'num_classes', '?')} classes; the student is a {cfg.arch} with "
                         f"{cfg.num_classes}: a student can only start from a network of its own architecture")
    student.load_state_dict(source.state_dict())


def _resume(run: _Run, ckpt: dict | None) -> None:
    """Step 3: restore model, method, optimisers, schedulers, loader and RNG state from ``ckpt``; rewrite
    the log so it mirrors the checkpoint's history (drops lines of an epoch that was cut off)."""
    if ckpt is not None:
        try:
            run.student.load_state_dict(ckpt["model"])
            run.method.load_state_dict(ckpt["method"])
            run.recipe.load_state_dict(ckpt.get("recipe", {}))
            if len(ckpt["optimizers"]) != len(run.optimizers) or len(ckpt["schedulers"]) != len(run.schedulers):
                raise ValueError("optimiser/scheduler count differs from method "
                                 f"{run.cfg.method!r}; was the method's code changed?")
            for o, s in zip(run.optimizers, ckpt["optimizers"]):
                o.load_state_dict(s)
            for sch, s in zip(run.schedulers, ckpt["schedulers"]):
                sch.load_state_dict(s)
            run.train_loader.load_state_dict(ckpt["loader"])
            restore_rng(ckpt["rng"])
            run.history = [dict(h) for h in ckpt["history"]]
            run.start_epoch = run.resumed_from = int(ckpt["epoch"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
            what = f"missing entry {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {_first_line(e)}"
            raise ValueError(f"checkpoint {run.paths['checkpoint']!r} cannot be resumed ({what}); re-run with "
                             f"--no-resume (train(..., resume=False)) or delete the file to start over") from None
    with open(run.out / LOG, "w") as f:
        for h in run.history:
            f.write(json.dumps(h) + "\n")
    _write_json(run.out / CONFIG, run.cfg.to_dict())


def _train_epoch(run: _Run, epoch: int, inner: Any) -> dict[str, float]:
    """Step 4: one pass over the training loader; the mean of every part the method returns, as
    ``train_<part>``. Raises :class:`TrainingDiverged` on a non-finite training loss."""
    cfg, method, student = run.cfg, run.method, run.student
    steps_per_epoch = len(run.train_loader)
    total_steps = cfg.epochs * steps_per_epoch
    run.train_loader.set_epoch(epoch)  # the epoch's order/augmentation depend only on (seed, epoch)
    method.on_epoch_start(epoch, student, run.teacher)
    student.train()
    method.train()
    sums: dict[str, Any] = {}
    n_seen = 0
    ctx = StepContext(device=run.device, amp_dtype=run.amp_dtype, grad_clip=cfg.grad_clip, epoch=epoch,
                      steps_per_epoch=steps_per_epoch, cfg=cfg)
    for i, (x, y) in enumerate(run.train_loader):
        ctx.batch_index, ctx.global_step = i, epoch * steps_per_epoch + i
        run.recipe.before_step(student, run.optimizers, epoch, ctx.global_step, total_steps)
        parts = method.training_step(x, y, student, run.teacher, run.optimizers, epoch, ctx)
        run.recipe.after_step(student, ctx.global_step, total_steps)
        if i == 0 and (not isinstance(parts, Mapping) or "loss" not in parts):
            raise TypeError(f"method {cfg.method!r}: training_step must return a dict with at least "
                            f"'loss' (and 'acc'); got {type(parts).__name__} "
                            f"{sorted(parts) if isinstance(parts, Mapping) else ''}")
        bs = y.shape[0]
        n_seen += bs
        for k, v in parts.items():
            v = v.detach() if isinstance(v, Tensor) else v
            sums[k] = v * bs if k not in sums else sums[k] + v * bs
        if i % 25 == 24 and not math.isfinite(_to_float(sums["loss"])):
            break
        if inner is not None:
            inner.update(1)
    if n_seen == 0:
        raise ValueError("the training loader yielded no batches (batch_size larger than the data "
                         "with drop_last=True?)")
    metrics = {f"train_{k}": _to_float(v) / n_seen for k, v in sums.items()}
    if not math.isfinite(metrics.get("train_loss", float("nan"))):
        raise TrainingDiverged(
            f"training diverged in epoch {epoch + 1}/{cfg.epochs}: the training loss is "
            f"{metrics.get('train_loss')} (method {cfg.method!r}, lr {cfg.lr}). The checkpoint of the "
            f"last good epoch ({epoch}) is kept in {run.out}. Lower the learning rate or set grad_clip.")
    return metrics


def _evaluate_epoch(run: _Run, line: dict[str, Any], last: bool = False) -> None:
    """Step 5: test (and validation) loss and accuracy into the epoch's log ``line``; after the ``last``
    epoch also the test accuracy with the recipe's test-time augmentation (``test_acc_tta``, if any)."""
    te0 = time.perf_counter()
    line["test_loss"], line["test_acc"] = evaluate(run.student, run.test_loader, run.amp_dtype, run.channels_last)
    if last and run.recipe.tta_level() > 0:
        line["test_acc_tta"] = evaluate_tta(run.student, run.test_loader, run.recipe.tta_level())
    if run.val_loader is not None:
        line["val_loss"], line["val_acc"] = evaluate(run.student, run.val_loader, run.amp_dtype, run.channels_last)
    line["eval_time_s"] = time.perf_counter() - te0


def _save_checkpoint(run: _Run, epoch: int, line: dict[str, Any]) -> None:
    """Step 6: the full training state after ``epoch`` (atomic), then the epoch's log line."""
    atomic_save({
        "format": TRAIN_FORMAT, "epoch": epoch + 1, "arch": run.student.arch,
        "num_classes": run.cfg.num_classes, "config": run.cfg.to_dict(),
        "model": run.student.state_dict(), "method": run.method.state_dict(), "recipe": run.recipe.state_dict(),
        "optimizers": [o.state_dict() for o in run.optimizers],
        "schedulers": [s.state_dict() for s in run.schedulers],
        "loader": run.train_loader.state_dict(), "rng": capture_rng(), "history": run.history,
    }, run.out / CHECKPOINT)
    with open(run.out / LOG, "a") as f:
        f.write(json.dumps(line) + "\n")


def _finish(run: _Run, t_start: float) -> TrainResult:
    """Step 7: the final model file (when new epochs were trained) and ``result.json``."""
    cfg, out = run.cfg, run.out
    final = dict(run.history[-1]) if run.history else {}
    if not (out / MODEL).is_file() or run.start_epoch < cfg.epochs:
        teacher_hash = file_sha256(cfg.teacher_ckpt) if cfg.teacher_ckpt and Path(cfg.teacher_ckpt).is_file() else None
        # no wall-clock field: two bit-identical runs write byte-identical model files (timings stay in the log)
        metrics = {k: v for k, v in final.items() if k not in TIMING_KEYS}
        atomic_save({"format": MODEL_FORMAT, "arch": run.student.arch, "num_classes": cfg.num_classes,
                     "state_dict": {k: v.detach().cpu() for k, v in run.student.state_dict().items()},
                     "config": cfg.to_dict(), "metrics": metrics, "teacher_sha256": teacher_hash},
                    out / MODEL)
    result = TrainResult(config=cfg.to_dict(), final=final, history=tuple(run.history), paths=run.paths,
                         epochs_completed=len(run.history), resumed_from_epoch=run.resumed_from,
                         wall_time_s=time.perf_counter() - t_start)
    _write_json(out / RESULT, result.to_dict())
    return result


def train(cfg: TrainConfig, out_dir: str | os.PathLike, teacher: nn.Module | None = None,
          data: Sequence[Any] | None = None, callbacks: Sequence[Callable[[EpochInfo], None]] = (),
          progress: bool = True, resume: bool = True, teacher_cache: bool = False) -> TrainResult:
    """Train ``cfg.arch`` with method ``cfg.method`` for ``cfg.epochs`` epochs; see module docstring.

    The steps: :func:`_open_run` (folder, checkpoint), :func:`_setup` (device, teacher, data, model,
    method, optimisers), :func:`_resume`, then per epoch :func:`_train_epoch`, :func:`_evaluate_epoch`
    (every ``eval_every`` epochs and the last), :func:`_save_checkpoint` and the callbacks; finally
    :func:`_finish` (model file, ``result.json``).

    Args:
        cfg: the run's :class:`TrainConfig`.
        out_dir: folder for checkpoint, log, model and result files (created).
        teacher: a teacher model, frozen **in place** (moved to the device, eval mode,
            ``requires_grad=False``); else loaded from ``cfg.teacher_ckpt``; required when the
            method has ``requires_teacher``. Note that ``cfg.teacher_ckpt`` (not the object) is what
            the run cache hashes, so pass a checkpoint path for cached runs.
        data: optional preloaded ``(train_x, train_y, test_x, test_y)`` (uint8 N×32×32×3, int labels);
            default: ``load_cifar(cfg.dataset, cfg.data_root)``. Subset/val split are applied to it.
        callbacks: ``f(EpochInfo)`` called after each epoch's checkpoint; an exception stops the run
            (the checkpoint stays, so a later call resumes).
        progress: progress per epoch (bars on a terminal, one line per epoch otherwise; see
            :mod:`kdbounds._progress`).
        resume: continue from ``out_dir/checkpoint.pt`` when present (its config must equal ``cfg``,
            else :class:`ConfigMismatchError`); ``False`` starts over and overwrites.
        teacher_cache: remember the frozen teacher's outputs per input image
            (:class:`~kdbounds.distill.teacher_cache.CachedTeacher`): the same losses and gradients,
            one teacher forward per distinct image instead of one per image and epoch. Needs
            ``cfg.augment=False`` (with augmentation nearly every view is new and the cache only
            grows). Not part of the run's identity (it does not change the result).

    Returns:
        The :class:`TrainResult` (last-epoch metrics, history, file paths).

    Raises:
        TypeError: ``cfg`` is not a :class:`TrainConfig`.
        ConfigMismatchError: ``out_dir`` holds a checkpoint of another configuration.
        ValueError: the method needs a teacher and none is given, the checkpoint is unusable, or
            ``teacher_cache`` is asked for with ``cfg.augment=True``.
        TrainingDiverged: the training loss became non-finite (the last good checkpoint is kept).
    """
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig; got {type(cfg).__name__}")
    if teacher_cache and cfg.augment:
        raise ValueError("teacher_cache=True needs cfg.augment=False: with augmentation almost every "
                         "input is new, so the cache would only grow; drop teacher_cache or augmentation")
    t_start = time.perf_counter()
    method_cls = get_method(cfg.method)
    # the method's hyper-parameters, checked before the run folder, the teacher or any data is touched
    check_method_hparams(cfg.method, cfg.method_kwargs)
    out, paths, ckpt = _open_run(cfg, out_dir, resume)
    run = _setup(cfg, method_cls, out, paths, teacher, data, teacher_cache)
    _resume(run, ckpt)

    from .._progress import progress_bar, progress_mode

    bar = None
    if progress and run.resumed_from is not None:
        print(f"resumed from epoch {run.resumed_from} of {cfg.epochs} ({paths['checkpoint']})", file=sys.stderr, flush=True)
    if progress and run.start_epoch < cfg.epochs:
        # a bar per run and per epoch on a terminal; in a log (not a terminal) one line per epoch
        bar = progress_bar(desc=f"{cfg.method}:{cfg.arch}", total=cfg.epochs, unit="ep", initial=run.start_epoch)
    batches = bar is not None and progress_mode() == "bar"
    try:
        for epoch in range(run.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            inner = progress_bar(desc=f"epoch {epoch + 1}", total=len(run.train_loader), unit="batch",
                                 leave=False) if batches else None
            try:
                metrics = _train_epoch(run, epoch, inner)
            finally:
                if inner is not None:
                    inner.close()
            lrs = [o.param_groups[0]["lr"] for o in run.optimizers]
            for s in run.schedulers:
                s.step()
            line: dict[str, Any] = {"epoch": epoch + 1, "lr": lrs[0]}
            if len(lrs) > 1:
                line["lrs"] = lrs
            line.update(metrics)
            line["train_time_s"] = time.perf_counter() - t0
            if epoch + 1 == cfg.epochs or (epoch + 1) % cfg.eval_every == 0:
                _evaluate_epoch(run, line, last=epoch + 1 == cfg.epochs)
            line["epoch_time_s"] = time.perf_counter() - t0
            run.history.append(line)
            _save_checkpoint(run, epoch, line)
            if bar is not None:
                post = [f"loss={line['train_loss']:.3f}"]
                if "train_acc" in line:
                    post.append(f"acc={line['train_acc']:.3f}")
                if "test_acc" in line:
                    post.append(f"test={line['test_acc']:.3f}")
                bar.set_postfix_str(", ".join(post))
                bar.update(1)
            info = EpochInfo(epoch + 1, line, run.student, run.teacher, run.method, cfg, out)
            for cb in callbacks:
                cb(info)
    finally:
        if bar is not None:
            bar.close()
    return _finish(run, t_start)
