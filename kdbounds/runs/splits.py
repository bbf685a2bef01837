r"""The ``D_T``/``D_S`` split of CIFAR-10 (theory.md §7): its description and the one loader.

A certificate needs a training set split into ``D_T`` (what the prior and the teacher see) and
``D_S`` (the certification set, never seen by anything the prior depends on). A sweep run receives
the small, picklable description :class:`SplitSpec` and rebuilds the arrays with :func:`split_data`,
once per process (every run of a sweep on a worker shares them; nothing of the size of CIFAR is
pickled). The split itself is :func:`kdbounds.certificates.split.make_split` (stratified, seeded,
recorded by SHA-256); the held-out images are a stratified subset of the test split.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .._checks import check_choice, check_int
from ..certificates.split import DataSplit, make_split

__all__ = ["SIDES", "SplitSpec", "SplitData", "split_data", "train_on_split"]

#: the sides a run trains on: ``"t"`` = ``D_T``, ``"u"`` = ``D_T ∪ D_S``, ``"s"`` = ``D_S`` alone (e.g. a student
#: distilled on data its teacher did not see)
SIDES = ("t", "u", "s")


@dataclass(frozen=True)
class SplitSpec:
    """A small, picklable description of a split's arrays; :func:`split_data` rebuilds them.

    Attributes:
        n_s: size of ``D_S``.
        n_t: size of ``D_T`` (None: the rest of the training set).
        test_n: held-out images, ``test_n // 10`` per class (None: the whole test split).
        split_seed: the seed of :func:`~kdbounds.certificates.split.make_split`.
        data_root: where CIFAR-10 is (None: the standard places).
        test_seed: the seed of the stratified held-out subset (each study records its own).

    Raises:
        ValueError: a size or seed out of range (named).
    """

    n_s: int
    n_t: int | None
    test_n: int | None
    split_seed: int
    data_root: str | None = None
    test_seed: int = 0

    def __post_init__(self) -> None:
        check_int("n_s", self.n_s, minimum=1)
        if self.n_t is not None:
            check_int("n_t", self.n_t, minimum=1)
        if self.test_n is not None:
            check_int("test_n", self.test_n, minimum=10)
        check_int("split_seed", self.split_seed, minimum=0)
        check_int("test_seed", self.test_seed, minimum=0)
        if self.data_root is not None and not isinstance(self.data_root, str):
            object.__setattr__(self, "data_root", os.fspath(self.data_root))


@dataclass(frozen=True)
class SplitData:
    """The arrays of a :class:`SplitSpec` (uint8 images ``N × 32 × 32 × 3``, int labels).

    Attributes:
        split: the recorded split of the training set.
        data_t: ``(x_T, y_T, x_test, y_test)`` — what the priors and teachers train on.
        data_u: ``(x_{T∪S}, y_{T∪S}, x_test, y_test)`` — what the students and posteriors train on.
        x_s: the images of ``D_S``, the certification set.
        y_s: their labels.
        x_test: the held-out images.
        y_test: their labels.
    """

    split: DataSplit
    data_t: tuple[np.ndarray, ...]
    data_u: tuple[np.ndarray, ...]
    x_s: np.ndarray
    y_s: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def data_s(self) -> tuple[np.ndarray, ...]:
        """``(x_S, y_S, x_test, y_test)``: ``D_S`` alone (students that never see ``D_T``)."""
        return self.x_s, self.y_s, self.x_test, self.y_test

    def side(self, side: str) -> tuple[np.ndarray, ...]:
        """The arrays a run on ``side`` trains on.

        Args:
            side: one of :data:`SIDES`.

        Returns:
            :attr:`data_t`, :attr:`data_u` or :attr:`data_s`.

        Raises:
            ValueError: an unknown side.
        """
        side = check_choice("side", side, SIDES)
        return {"t": self.data_t, "u": self.data_u, "s": self.data_s}[side]

    def to_dict(self) -> dict[str, Any]:
        """The split's record (sizes, seed, SHA-256 of each side; see :meth:`DataSplit.to_dict`).

        Returns:
            A plain dict.
        """
        return self.split.to_dict()


@functools.lru_cache(maxsize=2)
def split_data(spec: SplitSpec) -> SplitData:
    """The arrays described by ``spec``, built once per process. Do not modify them in place.

    Args:
        spec: the description.

    Returns:
        The :class:`SplitData`.

    Raises:
        kdbounds.data.DataNotFoundError: CIFAR-10 is not found (the message lists where it looked).
        ValueError: sizes the training set cannot hold (names ``n_s``/``n_t``).
    """
    from ..data import load_cifar, stratified_subset

    xtr, ytr = load_cifar("cifar10", root=spec.data_root, split="train")
    xte, yte = load_cifar("cifar10", root=spec.data_root, split="test")
    if spec.test_n is not None and spec.test_n < len(yte):
        j = stratified_subset(yte, spec.test_n // 10, seed=spec.test_seed)
        xte, yte = xte[j], yte[j]
    split = make_split(ytr, spec.n_s, n_t=spec.n_t, seed=spec.split_seed)
    T, S, U = split.teacher, split.cert, split.union
    return SplitData(split, (xtr[T], ytr[T], xte, yte), (xtr[U], ytr[U], xte, yte), xtr[S], ytr[S], xte, yte)


def train_on_split(config: Mapping[str, Any], cache_root: str, split: SplitSpec, side: str,
                   teacher: str | None = None, prior: str | None = None, progress: bool = False,
                   deps: Mapping[str, Any] | None = None, init: str | None = None) -> Any:
    """Train one configuration on one side of the split through the run cache (a sweep run).

    Args:
        config: ``TrainConfig.to_dict()`` of the run (``teacher_ckpt`` empty when ``teacher`` is given).
        cache_root: the run cache.
        split: the arrays' description.
        side: ``"t"`` (``D_T``: teachers, priors), ``"u"`` (``D_T ∪ D_S``: students, posteriors) or ``"s"``
            (``D_S`` alone).
        teacher: key of the dependency whose model is the teacher checkpoint.
        prior: key of the dependency whose model is the ``pbb``/``pbkd`` prior (its path and SHA-256 go
            into ``method_kwargs``; see :func:`kdbounds.runs.grid.worker_config`).
        progress: the trainer's progress.
        deps: results of the dependencies (filled in by the sweep runner).
        init: key of the dependency whose model the run starts from (``init_ckpt``; see
            :func:`kdbounds.runs.grid.worker_config`).

    Returns:
        The :class:`~kdbounds.distill.trainer.TrainResult`.

    Raises:
        ValueError: a bad ``side``, or ``teacher``/``prior``/``init`` not among ``deps``.
    """
    from .cache import train_cached
    from .grid import worker_config

    check_choice("side", side, SIDES)
    cfg = worker_config(config, teacher, deps, prior=prior, init=init)
    return train_cached(cfg, cache_root, data=split_data(split).side(side), progress=progress)
