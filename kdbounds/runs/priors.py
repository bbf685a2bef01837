r"""Priors on the student's parameter space (theory.md §7), each trained on ``D_T`` only.

Four kinds, each a first-class option of :func:`prior_run`:

* ``"random"`` (a) — data-independent: the student architecture at its random initialisation
  (PBB's "random prior"); nothing is trained.
* ``"learnt"`` (b) — the student architecture trained on ``D_T`` with cross-entropy, no teacher
  (PBB's "learnt prior").
* ``"teacher"`` (c) — the teacher itself, when it has the student's architecture (self-distillation,
  born-again students). When the teacher is the student architecture trained on ``D_T`` with the
  same recipe as (b), (b) and (c) coincide (same run, same cache entry).
* ``"distilled"`` (d) — for a smaller student: a student-architecture network distilled (Hinton KD)
  from a larger teacher on ``D_T`` only.

This is the one place a prior is trained: the studies call :func:`prior_run` (or :func:`train_prior`,
its sweep-run form). Training goes through the project's trainer and the run cache
(:func:`kdbounds.runs.cache.train_cached`). The prior's scale is picked from a grid fixed in advance
(:func:`kdbounds.certificates.scales.scale_grid`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from torch import nn

from .._checks import check_choice, check_int
from ..distill import TrainConfig, TrainResult, load_checkpoint_model
from ..models import build_model
from .cache import train_cached

__all__ = ["PRIOR_KINDS", "TRAINED_KINDS", "PriorRun", "prior_run", "random_prior", "train_prior"]

PRIOR_KINDS = ("random", "learnt", "teacher", "distilled")
#: the kinds :func:`prior_run` trains (the others need no training of their own)
TRAINED_KINDS = ("learnt", "distilled")


@dataclass(frozen=True)
class PriorRun:
    """A prior's centre: the model, where it came from, and the file a trainer can load.

    Attributes:
        kind: one of :data:`PRIOR_KINDS`.
        spec: what :mod:`kdbounds.distill.pbb` accepts as ``prior=``: ``"random:<seed>"``
            or the model file's path.
        model: the network (eval mode).
        run: the training run (None for ``"random"``).
        test_acc: the model's last-epoch test accuracy (None for ``"random"``).
    """

    kind: str
    spec: str
    model: nn.Module
    run: TrainResult | None = None
    test_acc: float | None = None

    @property
    def path(self) -> str | None:
        """The prior centre's model file (None for ``"random"``)."""
        return None if self.run is None else self.run.paths["model"]

    @classmethod
    def from_run(cls, kind: str, res: TrainResult) -> "PriorRun":
        """The prior of kind ``kind`` whose centre is the model of the finished run ``res``.

        Args:
            kind: one of :data:`PRIOR_KINDS` except ``"random"``.
            res: the training run (its ``model.pt`` is loaded).

        Returns:
            The :class:`PriorRun`.
        """
        return cls(check_choice("kind", kind, PRIOR_KINDS[1:]), res.paths["model"],
                   load_checkpoint_model(res.paths["model"]), res, res.final.get("test_acc"))

    def to_dict(self) -> dict[str, Any]:
        """The record: kind, spec, test accuracy, model file and (for a trained prior) its config.

        Returns:
            A plain dict.
        """
        d: dict[str, Any] = {"kind": self.kind, "spec": self.spec, "test_acc": self.test_acc, "path": self.path}
        if self.run is not None:
            d["config"] = self.run.config
        return d


def random_prior(arch: str, seed: int, num_classes: int = 10) -> nn.Module:
    """Prior (a): the architecture at the initialisation drawn with ``seed`` (data-independent).

    Args:
        arch: the student's architecture.
        seed: the initialisation's seed, >= 0.
        num_classes: the number of classes.

    Returns:
        The network in eval mode.
    """
    return build_model(arch, num_classes=num_classes, seed=check_int("seed", seed, minimum=0)).eval()


def _as_run(kind: str, res: TrainResult) -> PriorRun:
    return PriorRun.from_run(kind, res)


def prior_run(kind: str, *, student_arch: str, data_t: Sequence[Any] | None = None,
              cache_root: str | os.PathLike | None = None, recipe: TrainConfig | None = None,
              teacher: TrainResult | None = None, init_seed: int = 0, kd_kwargs: dict[str, Any] | None = None,
              progress: bool = True) -> PriorRun:
    """Build (or reuse from the run cache) a prior's centre of kind ``kind`` on ``D_T``.

    Args:
        kind: ``"random"``, ``"learnt"``, ``"teacher"`` or ``"distilled"`` (see the module docstring).
        student_arch: the student's architecture (the prior lives on its parameter space).
        data_t: ``(x_T, y_T, x_test, y_test)`` uint8 images / int labels — ``D_T`` only, never ``D_S``.
        cache_root: the run cache folder (required except for ``"random"``).
        recipe: the training recipe (arch, epochs, lr …) for ``"learnt"`` and ``"distilled"``; its
            ``arch`` is replaced by ``student_arch`` and its method by ``ce`` / ``kd``.
        teacher: the teacher's finished run (``"teacher"``: must have ``student_arch``;
            ``"distilled"``: any architecture).
        init_seed: the seed of the random prior (``"random"``).
        kd_kwargs: hyper-parameters of the KD run for ``"distilled"``.
        progress: the trainer's progress.

    Returns:
        The :class:`PriorRun`.

    Raises:
        ValueError: an unknown kind, a missing input, or a teacher of another architecture for ``"teacher"``.
    """
    kind = check_choice("kind", kind, PRIOR_KINDS)
    return _prior_run(kind, student_arch, data_t, cache_root, recipe, teacher, init_seed, kd_kwargs, progress)


def _prior_run(kind, student_arch, data_t, cache_root, recipe, teacher, init_seed, kd_kwargs, progress):
    if kind == "random":
        return PriorRun(kind, f"random:{int(init_seed)}", random_prior(student_arch, init_seed))
    if kind == "teacher":
        if teacher is None:
            raise ValueError("teacher: prior kind 'teacher' needs the teacher's TrainResult")
        if teacher.config["arch"] != student_arch:
            raise ValueError(f"teacher: prior kind 'teacher' needs a teacher of the student's architecture "
                             f"{student_arch!r}, got {teacher.config['arch']!r}; use kind 'distilled' for a "
                             f"larger teacher")
        return _as_run(kind, teacher)
    if data_t is None or cache_root is None or recipe is None:
        raise ValueError(f"data_t, cache_root and recipe are required for prior kind {kind!r}")
    if kind == "learnt":
        cfg = recipe.replace(arch=student_arch, method="ce", method_kwargs={}, teacher_ckpt=None)
        return _as_run(kind, train_cached(cfg, cache_root, data=data_t, progress=progress))
    if teacher is None:
        raise ValueError("teacher: prior kind 'distilled' needs the teacher's TrainResult")
    cfg = recipe.replace(arch=student_arch, method="kd", method_kwargs=dict(kd_kwargs or {}), teacher_ckpt=None)
    res = train_cached(cfg, cache_root, teacher_ckpt=teacher.paths["model"], data=data_t, progress=progress)
    return _as_run(kind, res)


def train_prior(kind: str, recipe: Mapping[str, Any], cache_root: str, split: Any, *, student_arch: str,
                init_seed: int = 0, kd_kwargs: Mapping[str, Any] | None = None, teacher: str | None = None,
                progress: bool = False, deps: Mapping[str, Any] | None = None) -> TrainResult:
    """Train prior (b) ``"learnt"`` or (d) ``"distilled"`` on ``D_T`` (a sweep run: :func:`prior_run` on a worker).

    Args:
        kind: ``"learnt"`` or ``"distilled"``.
        recipe: ``TrainConfig.to_dict()`` of the training recipe (see :func:`prior_run`).
        cache_root: the run cache.
        split: the :class:`~kdbounds.runs.splits.SplitSpec` whose ``D_T`` the prior trains on.
        student_arch: the student's architecture.
        init_seed: as for :func:`prior_run`.
        kd_kwargs: the KD hyper-parameters of ``"distilled"``.
        teacher: key of the teacher's run among ``deps`` (``"distilled"``).
        progress: the trainer's progress.
        deps: results of the dependencies, filled in by the sweep runner.

    Returns:
        The prior's :class:`~kdbounds.distill.trainer.TrainResult`.

    Raises:
        ValueError: a kind that is not trained, or ``teacher`` not among ``deps``.
    """
    from .splits import split_data

    kind = check_choice("kind", kind, TRAINED_KINDS)
    if teacher is not None and teacher not in (deps or {}):
        raise ValueError(f"teacher={teacher!r}: not among the run's dependencies {sorted(deps or {})}")
    pr = prior_run(kind, student_arch=student_arch, data_t=split_data(split).data_t, cache_root=cache_root,
                   recipe=TrainConfig.from_dict(dict(recipe)), teacher=(deps or {}).get(teacher) if teacher else None,
                   init_seed=init_seed, kd_kwargs=dict(kd_kwargs or {}), progress=progress)
    return pr.run
