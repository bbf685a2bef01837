"""Training grids on the sweep runner: the pieces any study uses to train its models through
:func:`kdbounds.runs.sweep.run_sweep` (locally or on Ray) and the run cache.

A study describes each training run by a :class:`~kdbounds.distill.TrainConfig` and, for students,
the key of the run that trains their teacher; :func:`train_spec` turns that into a
:class:`~kdbounds.runs.sweep.RunSpec` whose function, :func:`train_run`, is module-level (so a Ray
worker imports it by name) and whose arguments are small and picklable:

* the config as a dict (``TrainConfig.to_dict()``), with ``teacher_ckpt`` left empty: the teacher's
  checkpoint path is filled in by the worker from the teacher run's result (``deps``), so a student
  can be scheduled before its teacher exists;
* a :class:`DataSpec` — a *description* of the arrays (data set, root, stratified training and test
  subsets), not the arrays:
  each process loads them once (:func:`load_data`, a per-process cache, itself backed by the on-disk
  ``.npz`` cache of :mod:`kdbounds.data`), so nothing of the size of CIFAR is pickled per run.

Training goes through :func:`kdbounds.runs.cache.train_cached`, which is safe under concurrency:
a run finished by anyone is reused, a run being trained elsewhere is waited for, an interrupted run
resumes from its checkpoint. The sweep therefore needs no result store of its own (``out_dir=None``);
restarting an interrupted study trains nothing twice.

Adopting the runner in a study (see docs/sweeps.md): build the list of :func:`train_spec`, call
``run_sweep(specs, **sweep)`` where ``sweep`` comes from the ``sweep=`` argument of the study's
``run`` (the CLI's ``--executor/--workers/--address/--threads``), and read each key's
:class:`~kdbounds.distill.trainer.TrainResult` from the returned dict.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from .._checks import check_int, check_seed
from .sweep import RunSpec

__all__ = ["DataSpec", "TeacherRecipe", "Timed", "load_data", "test_subset", "train_run", "train_spec", "train_timed",
           "worker_config"]


@dataclass(frozen=True)
class DataSpec:
    """Which arrays a training run uses: ``(train_x, train_y, test_x, test_y)`` of ``name``.

    Attributes:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: data root (``None``: the standard places of :func:`kdbounds.data.find_cifar`).
        n_test: a stratified subset of ``n_test`` test images (``n_test // classes`` per class, seed 0)
            used as the trainer's test set; ``None`` keeps the whole test split.
        n_per_class: a stratified training subset of ``n_per_class`` images per class
            (:func:`kdbounds.data.stratified_subset` with seed ``subset_seed``); ``None``: the whole split.
        test_per_class: a stratified test subset of ``test_per_class`` images per class (seed
            ``subset_seed + 1``); ``None``: the whole split (or ``n_test``; give at most one of the two).
        subset_seed: seed of the two per-class subsets.
    """

    name: str = "cifar10"
    root: str | None = None
    n_test: int | None = None
    n_per_class: int | None = None
    test_per_class: int | None = None
    subset_seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in ("cifar10", "cifar100"):
            raise ValueError(f"DataSpec.name: expected 'cifar10' or 'cifar100', got {self.name!r}")
        if self.root is not None and not isinstance(self.root, str):
            object.__setattr__(self, "root", os.fspath(self.root))
        for f, low in (("n_test", 10), ("n_per_class", 1), ("test_per_class", 1)):
            v = getattr(self, f)
            if v is not None:
                object.__setattr__(self, f, check_int(f"DataSpec.{f}", v, minimum=low, fix="or None (all)"))
        object.__setattr__(self, "subset_seed", check_seed("DataSpec.subset_seed", self.subset_seed))
        if self.n_test is not None and self.test_per_class is not None:
            raise ValueError(f"DataSpec: n_test={self.n_test} and test_per_class={self.test_per_class} both cut "
                             "the test split; give one")


def test_subset(test_x: np.ndarray, test_y: np.ndarray, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A stratified subset of ``n`` test images (``n // classes`` per class, seed 0); all when ``n`` is None.

    Args:
        test_x, test_y: the test split.
        n: subset size, or ``None``.

    Returns:
        ``(x, y)`` of the subset (the inputs themselves when ``n`` is None or not smaller).
    """
    if n is None or n >= len(test_y):
        return test_x, test_y
    from ..data import stratified_subset

    k = int(np.max(test_y)) + 1
    idx = stratified_subset(test_y, n // k, seed=0)
    return test_x[idx], test_y[idx]


@functools.lru_cache(maxsize=4)
def load_data(spec: DataSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_x, train_y, test_x, test_y)`` described by ``spec``, loaded once per process.

    The arrays are shared by every caller in the process: do not modify them in place.

    Args:
        spec: the description.

    Returns:
        uint8 images ``(N, 32, 32, 3)`` and int64 labels, cut by ``spec.n_per_class`` (training) and
        ``spec.n_test`` or ``spec.test_per_class`` (test).

    Raises:
        kdbounds.data.DataNotFoundError: the data set is not found (the message lists where it looked).
        ValueError: a class has fewer images than ``n_per_class``/``test_per_class`` asks for.
    """
    from ..data import load_cifar, stratified_subset

    train_x, train_y = load_cifar(spec.name, root=spec.root, split="train")
    test_x, test_y = load_cifar(spec.name, root=spec.root, split="test")
    if spec.n_per_class is not None:
        i = stratified_subset(train_y, spec.n_per_class, seed=spec.subset_seed)
        train_x, train_y = train_x[i], train_y[i]
    if spec.test_per_class is not None:
        j = stratified_subset(test_y, spec.test_per_class, seed=spec.subset_seed + 1)
        return train_x, train_y, test_x[j], test_y[j]
    ex, ey = test_subset(test_x, test_y, spec.n_test)
    return train_x, train_y, ex, ey


def worker_config(config: Mapping[str, Any], teacher: str | None = None, deps: Mapping[str, Any] | None = None,
                  prior: str | None = None, init: str | None = None) -> Any:
    """The run's :class:`~kdbounds.distill.TrainConfig`, with the paths of its teacher, prior and start filled in.

    The one place where a worker turns a spec's config dict and the keys of its dependencies into a
    config (every training run of every study goes through it): ``teacher_ckpt`` becomes the model
    file of the run ``deps[teacher]``; for ``pbb``/``pbkd``, ``method_kwargs["prior"]`` becomes the
    model file of ``deps[prior]``, pinned by its SHA-256 (``prior_sha256``); ``init_ckpt`` (a student
    started from a network's weights) becomes the model file of ``deps[init]``. So a student can be
    scheduled before its teacher, prior or starting network exists.

    Args:
        config: ``TrainConfig.to_dict()`` of the run (``teacher_ckpt`` empty when ``teacher`` is given).
        teacher: key of the dependency whose result's ``paths["model"]`` is the teacher checkpoint
            (``None``: no teacher filled in).
        deps: results of the dependencies, filled in by the sweep runner.
        prior: key of the dependency whose model file is the ``pbb``/``pbkd`` prior (``None``: none).
        init: key of the dependency whose model file the run starts from (``init_ckpt``; ``None``: a fresh
            initialisation, or the config's own ``init_ckpt``).

    Returns:
        The config.

    Raises:
        ValueError: ``teacher``, ``prior`` or ``init`` is given but not among ``deps``, or a hyper-parameter
            the method refuses (:func:`~kdbounds.distill.methods.check_method_hparams`).
    """
    from .._io import file_sha256
    from ..distill.config import TrainConfig
    from ..distill.methods import check_method_hparams

    deps = deps or {}
    for name, key in (("teacher", teacher), ("prior", prior), ("init", init)):
        if key is not None and key not in deps:
            raise ValueError(f"{name}={key!r}: not among the run's dependencies {sorted(deps)}")
    cfg = TrainConfig.from_dict(dict(config))
    if teacher is not None:
        cfg = cfg.replace(teacher_ckpt=deps[teacher].paths["model"])
    if prior is not None:
        path = deps[prior].paths["model"]
        cfg = cfg.replace(method_kwargs={**cfg.method_kwargs, "prior": path, "prior_sha256": file_sha256(path)})
    if init is not None:
        cfg = cfg.replace(init_ckpt=deps[init].paths["model"])
    check_method_hparams(cfg.method, cfg.method_kwargs)  # complete now; before the worker loads any data
    return cfg


def train_run(config: Mapping[str, Any], cache_root: str, data: DataSpec | None = None,
              teacher: str | None = None, progress: bool = False,
              deps: Mapping[str, Any] | None = None, teacher_cache: bool = False) -> Any:
    """Train one configuration through the run cache (the function of a :func:`train_spec` run).

    Args:
        config: ``TrainConfig.to_dict()`` of the run.
        cache_root: the run cache folder (shared by every worker).
        data: the arrays to train on (``None``: the trainer loads ``config``'s data set itself).
        teacher: key of the dependency whose result's ``paths["model"]`` is the teacher checkpoint.
        progress: the trainer's progress (one line per epoch when not on a terminal).
        deps: results of the dependencies, filled in by the sweep runner.
        teacher_cache: the trainer's exact teacher-output cache (not part of the run id).

    Returns:
        The :class:`~kdbounds.distill.trainer.TrainResult` (reused when the run was finished).

    Raises:
        ValueError: ``teacher`` is given but not among ``deps``.
    """
    from .cache import train_cached

    cfg = worker_config(config, teacher, deps)
    arrays = load_data(data) if data is not None else None
    return train_cached(cfg, cache_root, data=arrays, progress=progress, teacher_cache=teacher_cache)


def train_spec(key: str, cfg: Any, cache_root: str | os.PathLike, data: DataSpec | None = None,
               teacher: str | None = None, progress: bool = False, teacher_cache: bool = False) -> RunSpec:
    """The :class:`RunSpec` that trains ``cfg`` via :func:`train_run`.

    Args:
        key: the run's key in the sweep.
        cfg: a :class:`~kdbounds.distill.TrainConfig`; its ``teacher_ckpt`` must be ``None`` when
            ``teacher`` is given (the path comes from the teacher run).
        cache_root: the run cache folder.
        data: the arrays' description (see :class:`DataSpec`).
        teacher: key of the run that trains this run's teacher (becomes a dependency).
        progress: the trainer's progress inside the run.
        teacher_cache: the trainer's exact teacher-output cache (:func:`train_run`).

    Returns:
        The spec.

    Raises:
        ValueError: ``cfg`` already names a teacher checkpoint and ``teacher`` is given.
    """
    from ..distill.methods import check_method_hparams

    check_method_hparams(cfg.method, cfg.method_kwargs)  # a bad hyper-parameter fails before the sweep starts
    d = cfg.to_dict()
    if teacher is not None and d.get("teacher_ckpt") is not None:
        raise ValueError(f"run {key!r}: cfg.teacher_ckpt={d['teacher_ckpt']!r} and teacher={teacher!r}; "
                         f"give one (teacher= fills the path in from the teacher run)")
    kwargs: dict[str, Any] = {"config": d, "cache_root": os.fspath(cache_root), "data": data,
                              "teacher": teacher, "progress": progress}
    if teacher_cache:  # only when on: the specs (and fingerprints) of studies without it stay as they were
        kwargs["teacher_cache"] = True
    return RunSpec(key, train_run, kwargs, deps=(teacher,) if teacher is not None else ())


@dataclass(frozen=True)
class TeacherRecipe:
    """How one teacher is trained: the knobs that move it to flatter or sharper minima.

    Attributes:
        name: the recipe's label (also in run keys), e.g. ``"lr0.1-bs32"``.
        lr: the learning rate.
        batch_size: the batch size.
        weight_decay: the weight decay.
        label_smoothing: the teacher's label smoothing (``None``: the training recipe's own, e.g. 0 for the
            standard recipe, 0.2 for the fast one).
    """

    name: str
    lr: float
    batch_size: int
    weight_decay: float = 5e-4
    label_smoothing: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The recipe as a plain dict.

        Returns:
            ``{"name", "lr", "batch_size", "weight_decay"}`` and ``label_smoothing`` when set.
        """
        d = asdict(self)
        if d["label_smoothing"] is None:  # absent at its default: the records of earlier runs keep their form
            del d["label_smoothing"]
        return d


@dataclass(frozen=True)
class Timed:
    """A run's result with the process CPU seconds (all threads) the run spent, in the process that ran it.

    Attributes:
        value: the run's result.
        cpu_s: process CPU seconds of the call.
    """

    value: Any
    cpu_s: float

    def to_dict(self) -> dict[str, Any]:
        """The record.

        Returns:
            ``{"value": value.to_dict() (or value), "cpu_s": cpu_s}``.
        """
        v = self.value.to_dict() if hasattr(self.value, "to_dict") else self.value
        return {"value": v, "cpu_s": self.cpu_s}


def train_timed(config: Mapping[str, Any], cache_root: str, data: DataSpec | None = None,
                teacher: str | None = None, progress: bool = False,
                deps: Mapping[str, Timed] | None = None, teacher_cache: bool = False) -> Timed:
    """:func:`train_run` (a training through the run cache) with its CPU time.

    Args:
        config: as for :func:`train_run`.
        cache_root: as for :func:`train_run`.
        data: as for :func:`train_run`.
        teacher: as for :func:`train_run`.
        progress: as for :func:`train_run`.
        deps: the dependencies' :class:`Timed` results (the teacher run's), filled in by the sweep runner.
        teacher_cache: as for :func:`train_run`.

    Returns:
        ``Timed(TrainResult, process CPU seconds of this call)``.
    """
    t = time.process_time()
    res = train_run(config, cache_root, data=data, teacher=teacher, progress=progress,
                    deps={k: v.value for k, v in deps.items()} if deps else None, teacher_cache=teacher_cache)
    return Timed(res, time.process_time() - t)
