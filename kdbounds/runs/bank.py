"""The teacher bank: one trained teacher per (recipe, architecture, data, seed), shared by every study.

A bank teacher is an ordinary run of the run cache (:func:`~kdbounds.runs.cache.train_cached`) in one
shared folder, the **bank root**: ``$KDBOUNDS_BANK``, else ``$KDBOUNDS_CACHE/bank``, else
``~/.cache/kdbounds/bank`` (or an explicit ``root``). Its identity is the run cache's: the training config,
the fingerprint of preloaded data (a D_T split, say), and the training code. So

* every study asking for the same :class:`BankTeacher` on the same data gets the same file, trained once
  (the run cache's lock: two processes asking at once train it once, the second waits and reuses it);
* ``kdbounds-train teacher --recipe fast --arch airbench94 --bank`` writes exactly the file a study would
  (same config, no preloaded data);
* a change to the training code makes a new teacher (the old one is never silently reused).

A request prints one line saying whether the teacher is reused or trained now (with its expected cost).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..distill.config import TrainConfig
from ..distill.recipe_settings import RECIPES
from .cache_layout import bank_root  # the one cache layout (re-exported: kdbounds.bank_root)

__all__ = ["BankTeacher", "bank_root", "bank_teacher", "bank_teacher_on_split"]

#: seconds per 50,000-image epoch, 2 cores, fast recipe, batch 1024, glibc's malloc tuned (runs/allocator.py), from
#: benchmarks/time_to_accuracy.py: airbench_s-e16-malloc 424 s / 16; airbench94: its e10 run before the tuning (2,502 s
#: / 10, per-epoch evaluations included) x 0.77, the training-time ratio benchmarks/allocator.py measured on it (7 Dec
#: 2026); other networks: no estimate
_SECONDS_PER_EPOCH = {"airbench94": 193.0, "airbench_s": 26.5}
#: wall time on one thread over the two-core estimate: seed 5's airbench94 bank teacher of the certify_students scale
#: preset took 2,530 s on one thread (a Ray worker with ``--threads 1``, 7 Dec 2026) against the 1,380 s estimated
_ONE_THREAD_FACTOR = 1.83


@dataclass(frozen=True)
class BankTeacher:
    """What identifies a bank teacher (besides preloaded data and the code).

    Attributes:
        arch: the network (default the airbench94 shape).
        recipe: ``"fast"`` (airbench94's recipe) or ``"standard"``.
        epochs: training epochs.
        seed: data order, augmentation and initialisation.
        n_per_class: a stratified subset of the training split (None: all of it, or all of preloaded data).
        subset_seed: the subset's seed.
        batch_size: the batch size (fast recipe: its hyper-parameters follow from it).
        recipe_kwargs: fast-recipe switches (:class:`~kdbounds.distill.recipe_settings.FastRecipeSettings`).
        fields: other :class:`~kdbounds.distill.config.TrainConfig` fields (the standard recipe's lr, …).
    """

    arch: str = "airbench94"
    recipe: str = "fast"
    epochs: int = 10
    seed: int = 0
    n_per_class: int | None = None
    subset_seed: int = 0
    batch_size: int = 1024
    recipe_kwargs: Mapping[str, Any] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipe_kwargs", dict(self.recipe_kwargs))
        object.__setattr__(self, "fields", dict(self.fields))
        if self.recipe not in RECIPES:
            raise ValueError(f"BankTeacher: recipe must be one of {RECIPES}; got {self.recipe!r}")
        self.config()  # every field checked now, before any data is loaded

    def config(self, data_root: str | os.PathLike | None = None) -> TrainConfig:
        """The teacher's training config.

        Args:
            data_root: CIFAR-10's folder (not part of the identity of a run with preloaded data).

        Returns:
            The :class:`TrainConfig` (validated).

        Raises:
            ValueError: a field the config refuses (named in the message).
        """
        root = None if data_root is None else str(data_root)
        common = dict(seed=self.seed, n_per_class=self.n_per_class, subset_seed=self.subset_seed, data_root=root)
        if self.recipe == "fast":
            from ..distill.fast_config import fast_config

            return fast_config(self.arch, epochs=self.epochs, batch_size=self.batch_size,
                               recipe_kwargs=self.recipe_kwargs, **common, **self.fields)
        if self.recipe_kwargs:
            raise ValueError("BankTeacher: recipe_kwargs are for recipe='fast'")
        return TrainConfig(arch=self.arch, epochs=self.epochs, batch_size=self.batch_size, **common, **self.fields)

    @property
    def name(self) -> str:
        """A readable name, e.g. ``airbench94-fast-e10-s0``."""
        sub = "" if self.n_per_class is None else f"-n{self.n_per_class}"
        return f"{self.arch}-{self.recipe}-e{self.epochs}-s{self.seed}{sub}"


def bank_teacher(spec: BankTeacher, root: str | os.PathLike | None = None, data: Sequence[Any] | None = None,
                 data_root: str | os.PathLike | None = None, progress: bool = True, say: bool = True):
    """The trained bank teacher ``spec`` (trained now, on first use, with progress).

    Args:
        spec: which teacher.
        root: the bank's folder (default :func:`bank_root`).
        data: preloaded ``(train_x, train_y, test_x, test_y)`` (e.g. a D_T split); fingerprinted into the id.
        data_root: CIFAR-10's folder when ``data`` is None.
        progress: the trainer's progress lines.
        say: print one line on stderr: reused, or trained now and what it costs.

    Returns:
        The run's :class:`~kdbounds.distill.trainer.TrainResult` (``.paths["model"]`` is the teacher file).
    """
    from .cache import load_cached, run_id, train_cached

    folder = bank_root(root)
    cfg = spec.config(data_root)
    where = folder / f"{cfg.method}-{cfg.arch}-{run_id(cfg, data=data)}"
    if say:
        if load_cached(where) is not None:
            print(f"teacher bank: reusing {spec.name} ({where})", file=sys.stderr, flush=True)
        else:
            n = len(data[0]) if data is not None else 5000 * 10 if spec.n_per_class is None else 10 * spec.n_per_class
            est = _SECONDS_PER_EPOCH.get(spec.arch) if spec.recipe == "fast" and spec.batch_size == 1024 else None
            cost = "" if est is None else _cost_words(est * spec.epochs * n / 50000)
            print(f"teacher bank: training {spec.name} on first use ({spec.epochs} epochs on {n} images{cost}) "
                  f"into {where}; later requests reuse it", file=sys.stderr, flush=True)
    return train_cached(cfg, folder, data=data, progress=progress)


def _cost_words(two_core_s: float) -> str:
    """``", about N min on 2 idle cores"``, and the one-thread figure when this process trains on one thread."""
    import torch

    words = f", about {two_core_s / 60:.0f} min on 2 idle cores"
    if torch.get_num_threads() == 1:
        words += f" (this process uses 1 thread: about {two_core_s * _ONE_THREAD_FACTOR / 60:.0f} min)"
    return words


def bank_teacher_on_split(spec: BankTeacher, split: Any, root: str | os.PathLike | None = None,
                          progress: bool = False, deps: Mapping[str, Any] | None = None):
    """The bank teacher ``spec`` trained on ``D_T`` of ``split`` only (a sweep run: runs on a worker).

    Args:
        spec: which teacher.
        split: the :class:`~kdbounds.runs.splits.SplitSpec` whose ``D_T`` (and held-out images) it trains on.
        root: the bank's folder (default :func:`bank_root`).
        progress: the trainer's progress lines.
        deps: unused (a sweep run's dependencies; a bank teacher has none).

    Returns:
        The run's :class:`~kdbounds.distill.trainer.TrainResult`.
    """
    from .splits import split_data

    return bank_teacher(spec, root=root, data=split_data(split).data_t, progress=progress)
