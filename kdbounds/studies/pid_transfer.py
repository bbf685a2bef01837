"""Trainer hook: PID of teacher vs student features over training (orchestration layer).

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

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..pid import RepresentationPID, pid_of_representations

__all__ = ["PIDTracker", "extract_features"]


@torch.no_grad()
def extract_features(
    model: nn.Module,
    images: Any,
    *,
    layer: str | int = "last",
    batch_size: int = 500,
    dataset: str = "cifar10",
) -> np.ndarray:
    """Features (float64 numpy, one flattened row per image) of ``model`` at ``layer``."""
    from ..data import TensorLoader

    if isinstance(images, torch.Tensor):
        images = images.cpu().numpy()
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"images must be uint8 N×32×32×3 (kdbounds.data.load_cifar); got {images.dtype} {images.shape}")
    dev = next(model.parameters()).device
    loader = TensorLoader(images, np.zeros(len(images), dtype=np.int64), batch_size=batch_size, shuffle=False,
                          augment=False, device=dev, seed=0, drop_last=False, normalize=dataset)
    was = model.training
    model.eval()
    out = []
    try:
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
    finally:
        model.train(was)
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
