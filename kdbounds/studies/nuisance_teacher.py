"""Nuisance-teacher study (RID paper, methods.md §3): does VID collapse under an untrained teacher
while RID degrades much less?

Teachers: a trained one and an untrained one (same architecture, random init, never trained, saved
as a checkpoint like the trained one). Students, per seed: the student alone (``"ce"``, the paper's
BAS), and VID, RID (optionally KD, RepDistiller's VID ``"vid"``, ITRD) from each teacher. The
reported number is the LAST-epoch test accuracy; the spread is over seeds (a seed fixes the
student's initialisation and data order, so methods are compared on paired seeds). Trained models
are cached (:func:`kdbounds.runs.cache.train_cached`), so a re-run only trains what is missing;
the run cache locks each run, so several processes (one per seed, option
``--seed k --seeds 1``) can share one cache and train it once. The trainings are one sweep
(:func:`training_specs` through :func:`kdbounds.runs.sweep.run_sweep`): in this process by
default, or on Ray (``--executor ray --workers N``); at equal ``--threads`` the numbers are identical.

**VID is the RID paper's variant** (``"vid_rid"``, :mod:`kdbounds.distill.vid_rid`: wider regressor
with BatchNorm, variance softplus(alpha)+1e-3, weight 100), the one that produced the published
table; RepDistiller's VID (``"vid"``) is available as a method name.

The official run (kd-rid, ``experiment4_5000spc/cifar10.py``; :data:`PUBLISHED`): WRN-40-2 ->
WRN-16-1, full CIFAR-10, no augmentation for anyone; students SGD Nesterov, momentum 0.9,
weight decay 5e-4, batch 128, 300 epochs, lr 0.05 x0.2 at epochs 150 and 200 (as the paper
states it); gradient-norm clip 100 for VID and RID; VID weight 100 (alpha = [1, 100]); RID
q = 30, r = 1/4, lam1 = 1, lam2 = 10; last-epoch test accuracy. Two facts of that run that the
``gpu`` preset (formerly ``paper``) does NOT reproduce, stated here so nobody mistakes the preset for a replay:

* the official code's ``LambdaLR`` returns a learning rate where PyTorch expects a multiplier,
  so the students actually ran at lr 0.05^2 = 0.0025, then 5e-4 (epoch 150), 1e-4 (epoch 200);
  the preset uses the paper's stated rates (0.05, 0.01, 0.002), as :mod:`kdbounds.distill.rid`
  does;
* the official teacher was trained with Adam (lr 0.05 constant, no weight decay, unshuffled
  data, no augmentation, 300 epochs; 83.76 %); ``TrainConfig`` has SGD only, so our teacher is
  trained with the students' SGD (Nesterov, lr 0.05, x0.1 at 62.5/75/87.5 % of its epochs),
  without augmentation;
* kd-rid's WRN is post-activation, ours (:mod:`kdbounds.models`) pre-activation; the untrained
  teacher is our architecture's initialisation (kd-rid: Kaiming-uniform, fan_out).

The ``cpu`` preset keeps the recipe (architectures, no augmentation, SGD Nesterov 0.9, weight
decay 5e-4, lr 0.05 with two x0.2 steps at 1/2 and 2/3 of the epochs, VID weight 100 and clip
100, RID r = 1/4, lam1 = 1, lam2 = 10, clip 100, last-epoch accuracy) and changes only what a
2-core CPU forces, each for the stated reason:

* 50 training images per class (500) instead of 5,000 and 100 test images per class (1,000)
  instead of the 10,000 of the test split: WRN-40-2 costs ~25 ms of CPU per training image and
  step, and the whole study (teacher + 15 students) had to fit ~12 CPU-minutes on a machine
  whose 2 cores were shared by ~7 sessions;
* 12 student epochs instead of 300 (milestones 6 and 8 = the paper's 150/300 and 200/300);
* batch 32 instead of 128 (lr kept at 0.05): with 500 images, batch 128 would give 4 steps per
  epoch, 48 in all; batch 32 gives 192 steps at about the same CPU cost;
* RID q = 4 instead of 30: r*q must be a whole number of epochs for r = 1/4 to hold exactly
  (phase 1 = 1 epoch of every 4; 3 cycles instead of the paper's 10; q/epochs = 1/3 not 1/10);
* teacher 12 epochs of SGD on the same 500 images instead of 300 of Adam (see above);
* the exact teacher-feature cache (:class:`kdbounds.distill.teacher_cache.CachedTeacher`) is on:
  without augmentation a frozen eval-mode teacher sees the same images every epoch, so its
  outputs are computed once per image (identical losses and gradients; VID: 4.4 instead of ~7.8
  CPU-s per epoch on 500 images, measured under load).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_choice, check_int
from .._io import atomic_write_csv, atomic_write_json
from ..distill import TrainConfig
from ..distill.controls import make_untrained_teacher
from ..runs import grid
from ..runs.cache import resolve_cache_root, train_cached
from ..runs.sweep import RunSpec, run_sweep
from ._config import ConfigRecord
from ._provenance import with_provenance

__all__ = ["METHODS", "Config", "PRESETS", "PUBLISHED", "Result", "run", "write_results", "plot_accuracy",
           "accuracy_figure", "METHOD_LABELS", "TEACHER_LABELS",
           "summary", "summarise", "base_config", "method_kwargs", "grad_clip", "train_teacher",
           "claim_tests", "data_spec", "training_specs", "untrained_teacher_path", "UNTRAINED_BN", "CLAIMS_BN_TRAIN",
           "bn_train_teacher", "train_mode_accuracy", "readme_report", "GOALS"]

METHODS = ("ce", "kd", "vid", "vid_rid", "rid", "itrd")
#: the methods of the published table: BAS, VID (the RID paper's variant), RID
PAPER_METHODS = ("ce", "vid_rid", "rid")
#: feature methods trained with gradient-norm clip 100 (RID clips inside its own step)
_CLIPPED = ("vid", "vid_rid", "itrd")

#: the official result (methods.md §3; kd-rid, CIFAR-10, WRN-40-2 -> WRN-16-1), test accuracy in %
PUBLISHED: dict[tuple[str, str], float] = {
    ("none", "ce"): 72.3,
    ("trained", "vid_rid"): 81.0, ("untrained", "vid_rid"): 39.8,
    ("trained", "rid"): 81.1, ("untrained", "rid"): 65.8,
}


@dataclass(frozen=True)
class Config(ConfigRecord):
    """Everything that determines a nuisance-teacher run (recorded in ``results.json``).

    ``seed`` is the first student seed, ``seeds`` their number (seeds ``seed .. seed+seeds-1``).
    ``augment`` applies to teacher and students (the paper: none). ``teacher_cache`` turns on the
    exact teacher-output cache (needs ``augment=False``; memory ~230 kB per training image for
    WRN-40-2, so off for full CIFAR-10 on a small machine).

    ``bank_teacher``: the trained teacher is the teacher bank's fast-recipe ``teacher_arch``
    (:class:`~kdbounds.runs.bank.BankTeacher`, seed 0, batch 1024, ``teacher_epochs`` epochs on the whole training
    split, or ``teacher_n_per_class`` images per class; the file ``kdbounds-train teacher --recipe fast --arch
    <teacher_arch> --bank`` writes), trained on first use and shared with every study; else it is trained here with
    the students' SGD recipe.

    ``untrained_bn``: how the untrained teacher's BatchNorm normalises for the students distilled from it
    (:data:`UNTRAINED_BN`): ``"eval"`` — with its running statistics, still at their initial values (mean 0,
    variance 1; teacher kind ``"untrained"``); ``"train"`` — with the statistics of the training images, i.e.
    train-mode normalisation in the limit of a large batch (kind ``"untrained-bn-train"``: the running statistics
    are set to the training set's, :func:`bn_train_teacher`, so the frozen teacher the trainer uses in eval mode
    normalises as train mode does; a teacher left in train mode would change with every batch). The untrained
    teacher's own test accuracy is reported in eval mode, in train mode (batch statistics of ``batch_size`` test
    images in a seeded random order) and with the training images' statistics.
    """

    preset: str
    teacher_arch: str
    student_arch: str
    n_per_class: int | None
    test_per_class: int | None
    teacher_epochs: int
    epochs: int
    batch_size: int
    lr: float
    seeds: int
    methods: tuple[str, ...] = PAPER_METHODS
    rid_q: int = 4
    rid_r: float = 0.25
    lam2: float = 10.0
    vid_lam: float = 100.0
    milestones: tuple[int, ...] | None = None
    lr_gamma: float = 0.2
    nesterov: bool = True
    device: str = "cpu"
    schedule: str = "step"
    threads: int | None = None
    data_root: str | None = None
    seed: int = 0
    augment: bool = False
    teacher_cache: bool = False
    bank_teacher: bool = False
    bank_root: str | None = None
    teacher_n_per_class: int | None = None
    untrained_bn: tuple[str, ...] = ("eval",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "untrained_bn", tuple(self.untrained_bn))
        if not self.untrained_bn or any(m not in UNTRAINED_BN for m in self.untrained_bn) \
                or len(set(self.untrained_bn)) != len(self.untrained_bn):
            raise ValueError(f"untrained_bn: expected distinct modes from {UNTRAINED_BN}, got {self.untrained_bn!r}")
        if self.teacher_n_per_class is not None and not self.bank_teacher:
            raise ValueError("teacher_n_per_class: the subset of the bank teacher's training set; set "
                             "bank_teacher=True (the teacher trained here uses n_per_class)")
        if self.bank_teacher:
            self._bank_spec()  # every field of the bank teacher checked now
        if self.milestones is not None:  # () means "no milestones" (the option --milestones none)
            object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones) or None)
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods: unknown {bad}; choose from {','.join(METHODS)}")
        if self.seeds < 1:
            raise ValueError(f"seeds: expected >= 1, got {self.seeds}")
        if self.seed < 0:
            raise ValueError(f"seed: expected >= 0 (the first student seed), got {self.seed}")
        if self.teacher_cache and self.augment:
            raise ValueError("teacher_cache: the cache needs augment=False (with augmentation every "
                             "view is new); turn one of them off")
        if self.rid_q < 1:
            raise ValueError(f"rid_q: expected a cycle length >= 1 epoch, got {self.rid_q}")
        if not 0.0 < self.rid_r < 1.0:
            raise ValueError(f"rid_r: expected a fraction in (0, 1), got {self.rid_r}")

    def _bank_spec(self) -> Any:
        """The trained teacher as a :class:`~kdbounds.runs.bank.BankTeacher` (``bank_teacher``)."""
        from ..runs.bank import BankTeacher

        fields = {} if self.device == "auto" else {"device": self.device}  # the bank's default device is "auto"
        return BankTeacher(arch=self.teacher_arch, epochs=self.teacher_epochs, n_per_class=self.teacher_n_per_class,
                           fields=fields)

    def teacher_kinds(self) -> tuple[str, ...]:
        """The teachers the students are distilled from.

        Returns:
            ``"untrained"`` (BatchNorm in eval mode), ``"untrained-bn-train"`` (with the training images'
            statistics) as ``untrained_bn`` asks, then ``"trained"``.
        """
        return tuple(_UNTRAINED_KIND[m] for m in self.untrained_bn) + ("trained",)


#: the BatchNorm modes of the untrained teacher (:class:`Config` ``untrained_bn``)
UNTRAINED_BN = ("eval", "train")
_UNTRAINED_KIND = {"eval": "untrained", "train": "untrained-bn-train"}


PRESETS: dict[str, Config] = {
    # < 1 min; CI (resnet8 for speed; the recipe's code paths: no augmentation, cache, vid_rid, rid)
    "smoke": Config(preset="smoke", teacher_arch="resnet8", student_arch="resnet8", n_per_class=10,
                    test_per_class=10, teacher_epochs=1, epochs=2, batch_size=32, lr=0.05, seeds=1,
                    rid_q=2, rid_r=0.25, lam2=10.0, vid_lam=100.0, milestones=None, lr_gamma=0.2,
                    nesterov=True, device="cpu", schedule="constant", threads=1, teacher_cache=True),
    # the paper's recipe scaled to a 2-core CPU (module docstring: what changes and why); 3 seeds,
    # one process for the teacher and one for the seeds share the work (README: time under load)
    "cpu": Config(preset="cpu", teacher_arch="wrn_40_2", student_arch="wrn_16_1", n_per_class=50,
                  test_per_class=100, teacher_epochs=12, epochs=12, batch_size=32, lr=0.05, seeds=3,
                  rid_q=4, rid_r=0.25, lam2=10.0, vid_lam=100.0, milestones=(6, 8), lr_gamma=0.2,
                  nesterov=True, device="cpu", schedule="step", threads=1, teacher_cache=True),
    # the scale preset in miniature for CI (under a minute): a bank teacher (airbench_s, 1 epoch on 10 images per
    # class, in the bank root the caller chooses: bank_root or $KDBOUNDS_BANK), airbench_s students, the untrained
    # teacher with BatchNorm in eval and in train mode, 2 seeds (so the claim's tests run)
    "smoke-scale": Config(preset="smoke-scale", teacher_arch="airbench_s", student_arch="airbench_s", n_per_class=5,
                          test_per_class=10, teacher_epochs=1, epochs=2, batch_size=25, lr=0.05, seeds=2, rid_q=2,
                          rid_r=0.5, milestones=None, schedule="constant", threads=1, teacher_cache=True,
                          bank_teacher=True, teacher_n_per_class=10, untrained_bn=("eval", "train")),
    # Issue 23 on 2 CPU cores: the trained teacher is the teacher bank's airbench94 (fast recipe, 10 epochs on all
    # 50,000 training images: 89.9 % test accuracy measured, README's fast-recipe table; the same file as
    # `kdbounds-train teacher --recipe fast --arch airbench94 --bank`), the untrained teacher an airbench94 at
    # initialisation with BatchNorm in eval and in train mode; students airbench_s (the fast family's small
    # network) with the paper's student recipe (SGD Nesterov 0.9, weight decay 5e-4, lr 0.05 x0.2 at 1/2 and 2/3 of
    # the epochs, no augmentation, clip 100 for VID, RID r = 1/4, lam2 = 10) on 500 images per class for 20 epochs,
    # the whole test set, 5 seeds (the smallest one-sided Mann-Whitney p is then 1/252).
    # Estimated cost: the teacher 4,563 CPU-s (41.7 min wall, measured; nothing when the bank has it), 35 student
    # runs x ~100,000 image-epochs at ~2.2 ms (ce) to ~3.3 ms (vid_rid, rid) per image-epoch of airbench_s plus the
    # cached teacher's 5,000 forward passes per run: ~11,600 CPU-s; ~16,200 CPU-s in all, about 2 h 15 min wall on 2
    # idle cores from an empty cache with --executor ray --workers 2 (<= 3 h), about 1 h 40 min with the teacher
    # in the bank. A second run trains nothing.
    "scale": Config(preset="scale", teacher_arch="airbench94", student_arch="airbench_s", n_per_class=500,
                    test_per_class=None, teacher_epochs=10, epochs=20, batch_size=128, lr=0.05, seeds=5,
                    rid_q=4, rid_r=0.25, lam2=10.0, vid_lam=100.0, milestones=(10, 13), lr_gamma=0.2,
                    nesterov=True, device="auto", schedule="step", threads=None, teacher_cache=True,
                    bank_teacher=True, untrained_bn=("eval", "train")),
    # every setting of the official run as the paper states it (module docstring: the lr defect
    # and the Adam teacher are NOT reproduced); GPU
    "gpu": Config(preset="gpu", teacher_arch="wrn_40_2", student_arch="wrn_16_1", n_per_class=None,
                    test_per_class=None, teacher_epochs=300, epochs=300, batch_size=128, lr=0.05, seeds=3,
                    rid_q=30, rid_r=0.25, lam2=10.0, vid_lam=100.0, milestones=(150, 200), lr_gamma=0.2,
                    nesterov=True, device="auto", schedule="step", threads=None, teacher_cache=False),
}


@dataclass(frozen=True)
class Result:
    """One row per student run, the per-(teacher, method) summary, the teachers' own accuracy and the cost.

    ``timing``: ``wall_s`` of this invocation's sweep, ``teacher_train_wall_s`` (the trained teacher's training, as its
    run recorded it), ``student_train_wall_s`` (the sum of the students' training wall times, each as its run
    recorded it, so runs reused from the cache count what they cost when they ran), ``executor``, ``workers``,
    ``threads``.
    """

    config: dict[str, Any]
    rows: tuple[dict[str, Any], ...]
    summary: tuple[dict[str, Any], ...]
    teacher_test_acc: dict[str, float | None]
    timing: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "teacher_test_acc": self.teacher_test_acc, "rows": list(self.rows),
                "summary": list(self.summary), "timing": self.timing}


def data_spec(cfg: Config) -> grid.DataSpec:
    """The study's arrays as a :class:`~kdbounds.runs.grid.DataSpec`: the CIFAR-10 train split and
    ``test_per_class`` test images per class (``n_test = 10 * test_per_class``: the stratified draw of
    :func:`kdbounds.data.stratified_subset` with seed 0), or the whole test split.

    Args:
        cfg: the study config.

    Returns:
        The description (each process loads it once: :func:`kdbounds.runs.grid.load_data`).
    """
    return grid.DataSpec("cifar10", cfg.data_root, 10 * cfg.test_per_class if cfg.test_per_class else None)


def load_data(cfg: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y) of :func:`data_spec`, loaded once per process (shared arrays:
    do not modify them in place)."""
    return grid.load_data(data_spec(cfg))


def base_config(cfg: Config, arch: str, epochs: int, seed: int, teacher: bool = False) -> TrainConfig:
    """The shared recipe as a :class:`TrainConfig`.

    Students use the preset's schedule (gpu: x0.2 at 150/200 of 300); the teacher uses the
    default step fractions (0.625/0.75/0.875 of its epochs, x0.1). Augmentation: ``cfg.augment``
    for both (the paper: none).

    Args:
        cfg: the study config.
        arch: the model.
        epochs: its epochs.
        seed: its seed (data order and initialisation).
        teacher: the teacher's recipe instead of the students'.

    Returns:
        The run's config (method ``"ce"``; the caller sets the method).
    """
    return TrainConfig(arch=arch, dataset="cifar10", epochs=epochs, batch_size=cfg.batch_size,
                       lr=cfg.lr, nesterov=cfg.nesterov, schedule=cfg.schedule,
                       milestones=None if teacher else cfg.milestones,
                       lr_gamma=0.1 if teacher else cfg.lr_gamma, seed=seed,
                       n_per_class=cfg.n_per_class, augment=cfg.augment, device=cfg.device,
                       eval_every=max(epochs, 1))


def method_kwargs(cfg: Config, method: str) -> dict[str, Any]:
    """Hyper-parameters of ``method`` in this study.

    RID: the preset's q, r, lam1 = 1, lam2 and the SAME lr schedule as every other student
    (``lr_schedule="config"``; in the cpu/gpu presets that schedule is the paper's). VID (both
    variants): weight ``lam = vid_lam`` (100 in the official script, ``alpha = [1, 100]``).

    Args:
        cfg: the study config.
        method: a name from :data:`METHODS`.

    Returns:
        The ``method_kwargs`` of the run.
    """
    if method == "rid":
        return {"q": cfg.rid_q, "r": cfg.rid_r, "lam1": 1.0, "lam2": cfg.lam2, "lr_schedule": "config"}
    if method in ("vid", "vid_rid"):
        return {"lam": cfg.vid_lam}
    return {}


def grad_clip(method: str) -> float | None:
    """Gradient-norm clip 100 for the feature methods (official script: VID and ITRD), none for
    the others (RID clips inside its own step, hyper-parameter ``grad_clip=100``).

    Args:
        method: a name from :data:`METHODS`.

    Returns:
        100.0 or ``None``.
    """
    return 100.0 if method in _CLIPPED else None


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r"""Mean, sample std (ddof=1; 0 for one seed), n and standard error per (teacher, method),
    with the published accuracy (:data:`PUBLISHED`, as a fraction; ``None`` where the paper has none).

    .. math::
        \mathrm{se} = s / \sqrt{n}, \qquad s^2 = \tfrac{1}{n-1}\sum_i (a_i - \bar a)^2.

    Args:
        rows: dicts with ``teacher``, ``method``, ``test_acc``.

    Returns:
        One dict per (teacher, method).
    """
    groups: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        groups.setdefault((r["teacher"], r["method"]), []).append(r["test_acc"])
    out = []
    for (t, m), accs in groups.items():
        a = np.asarray(accs, dtype=float)
        sd = float(a.std(ddof=1)) if len(a) > 1 else 0.0
        out.append({"teacher": t, "method": m, "mean_test_acc": float(a.mean()), "std": sd,
                    "se": sd / math.sqrt(len(a)), "n": len(a),
                    "published_test_acc": PUBLISHED[(t, m)] / 100 if (t, m) in PUBLISHED else None})
    return out


def checkpoint_accuracy(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy of a saved model (used for the untrained teacher)."""
    from ..distill.checkpoint import load_checkpoint_model
    from ..distill.trainer import predict_logits

    logits = predict_logits(load_checkpoint_model(path), images)
    return float((logits.argmax(1).numpy() == labels).mean())


def _teacher_config(config: Config) -> TrainConfig:
    return base_config(config, config.teacher_arch, config.teacher_epochs, seed=1000, teacher=True)


def untrained_teacher_path(config: Config, cache_root: str | os.PathLike, bn: str = "eval") -> Path:
    """Where the untrained teacher's model file lives in the run cache (made by :func:`run`).

    Args:
        config: the study config.
        cache_root: the run cache.
        bn: ``"eval"`` (BatchNorm with its initial statistics) or ``"train"`` (with the statistics of the students'
            training images: one file per training subset, ``n_per_class`` and the data set's folder in its name).

    Returns:
        The file's path.
    """
    check_choice("bn", bn, UNTRAINED_BN)
    base = Path(cache_root) / "teachers" / f"untrained_{config.teacher_arch}_s1000"
    if bn == "eval":
        return base.with_suffix(".pt")
    where = hashlib.sha256(str(config.data_root).encode()).hexdigest()[:8]
    return base.parent / f"{base.name}_bn-train_n{config.n_per_class}_{where}.pt"


def bn_train_teacher(source: str | os.PathLike, images: np.ndarray, path: str | os.PathLike,
                     batch_size: int = 500) -> Path:
    r"""The model file ``source`` with its BatchNorm running statistics set to those of ``images`` (train-mode
    normalisation in the limit of a large batch), written to ``path`` in the same format.

    .. math:: \hat\mu = \tfrac1B\textstyle\sum_b \mu_b, \qquad \hat\sigma^2 = \tfrac1B\textstyle\sum_b \sigma_b^2

    over the ``B`` batches of ``batch_size`` images in order (PyTorch's cumulative average, ``momentum=None``), layer
    after layer as a train-mode forward pass computes them. In eval mode the network then normalises every
    input with these statistics (a train-mode network would use each batch's own).

    Args:
        source: an untrained teacher's model file (:func:`kdbounds.distill.controls.make_untrained_teacher`).
        images: uint8 ``N × 32 × 32 × 3`` training images.
        path: the ``.pt`` file written (atomically; its bytes are a function of ``source`` and ``images``).
        batch_size: images per forward pass.

    Returns:
        ``path``.

    Raises:
        ValueError: no images, or a bad ``batch_size``.
    """
    import torch

    from ..data.transforms import normalized_images
    from ..distill.checkpoint import MODEL_FORMAT, atomic_save, read_checkpoint
    from ..distill.trainer import load_checkpoint_model

    batch_size = check_int("batch_size", batch_size, minimum=1)
    if len(images) == 0:
        raise ValueError("images: need at least one training image for the BatchNorm statistics")
    model = load_checkpoint_model(source, map_location="cpu")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.double().train()  # float64 sums: the file's bytes do not depend on the thread count's summation order
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            model(normalized_images(images[i:i + batch_size], "cpu").double())
    model.float()
    ckpt = read_checkpoint(source)
    config = {**ckpt.get("config", {}), "bn_statistics": "training images", "bn_images": int(len(images)),
              "bn_batch_size": batch_size}
    atomic_save({"format": MODEL_FORMAT, "arch": ckpt["arch"], "num_classes": ckpt["num_classes"],
                 "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                 "config": config, "metrics": {}, "teacher_sha256": None}, path)
    return Path(path)


def train_mode_accuracy(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, batch_size: int,
                        seed: int = 0) -> float:
    """Test accuracy of a saved model with BatchNorm in train mode: each batch of ``batch_size`` images (in a
    seeded random order, so that a batch is not one class) normalised with its own statistics; the file's running
    statistics are left as they are.

    Args:
        path: the model file.
        images: uint8 ``N × 32 × 32 × 3`` test images.
        labels: their labels.
        batch_size: the batch.
        seed: the order's seed.

    Returns:
        The accuracy.
    """
    import torch

    from ..data.transforms import normalized_images
    from ..distill.trainer import load_checkpoint_model

    model = load_checkpoint_model(path, map_location="cpu").train()
    order = np.random.default_rng(seed).permutation(len(labels))
    right = 0
    with torch.no_grad():
        for i in range(0, len(order), batch_size):
            j = order[i:i + batch_size]
            right += int((model(normalized_images(images[j], "cpu")).argmax(1).numpy() == labels[j]).sum())
    return right / len(labels)


def train_teacher(config: Config, cache_root: str | os.PathLike, data: Any = None, progress: bool = True):
    """Train (or load) the study's trained teacher (``train_cached`` holds the run's lock: one
    process trains it, others wait and then load it).

    Args:
        config: the study config.
        cache_root: the run cache.
        data: preloaded :func:`load_data` arrays (loaded when ``None``).
        progress: show a progress bar.

    Returns:
        The teacher's :class:`~kdbounds.distill.trainer.TrainResult`.
    """
    data = load_data(config) if data is None else data
    return train_cached(_teacher_config(config), cache_root, data=data, progress=progress)


def _jobs(config: Config) -> list[tuple[int, str, str]]:
    """(seed, method, teacher kind) in run order: seed by seed, so a run stopped early has whole replicates
    (every method under every teacher for its first seeds), not one half of the claim for every seed. While the
    trained teacher trains (it is the sweep's first run, :func:`training_specs`), the sweep starts the runs
    that do not need it, in this order."""
    seeds = range(config.seed, config.seed + config.seeds)
    return [(s, m, k) for s in seeds for m in config.methods
            for k in (["none"] if m == "ce" else config.teacher_kinds())]


def _job_key(seed: int, method: str, kind: str) -> str:
    return f"{method}-{kind}-seed{seed}"


def training_specs(config: Config, cache_root: str | os.PathLike, progress: bool = False) -> list[RunSpec]:
    """The study's training grid: per :func:`_jobs` entry a run ``"<method>-<teacher kind>-seed<s>"``,
    and the trained teacher (key ``"teacher"``) first, so it starts at once (its students depend on it).

    The untrained teacher's students name its model file (:func:`untrained_teacher_path`, one per BatchNorm mode;
    :func:`run` writes them before the sweep). With ``bank_teacher`` the trained teacher comes from the teacher
    bank (:func:`kdbounds.runs.bank.bank_teacher`). Every student trains through the run cache on
    :func:`data_spec`'s arrays.

    Args:
        config: the study config.
        cache_root: the run cache.
        progress: the trainer's progress inside each run.

    Returns:
        The :class:`~kdbounds.runs.sweep.RunSpec` list for :func:`~kdbounds.runs.sweep.run_sweep`.
    """
    data = data_spec(config)
    untrained = {kind: str(untrained_teacher_path(config, cache_root, bn))
                 for bn, kind in _UNTRAINED_KIND.items() if bn in config.untrained_bn}
    specs: list[RunSpec] = []
    if any(kind == "trained" for _, _, kind in _jobs(config)):
        if config.bank_teacher:
            from ..runs.bank import bank_teacher

            specs.append(RunSpec("teacher", bank_teacher, {"spec": config._bank_spec(), "root": config.bank_root,
                                                           "data_root": config.data_root, "progress": progress}))
        else:
            specs.append(grid.train_spec("teacher", _teacher_config(config), cache_root, data, progress=progress))
    for seed, m, kind in _jobs(config):
        c = dataclasses.replace(base_config(config, config.student_arch, config.epochs, seed),
                                method=m, method_kwargs=method_kwargs(config, m), grad_clip=grad_clip(m),
                                teacher_ckpt=untrained.get(kind))
        specs.append(grid.train_spec(_job_key(seed, m, kind), c, cache_root, data,
                                     teacher="teacher" if kind == "trained" else None, progress=progress,
                                     teacher_cache=config.teacher_cache and m != "ce"))
    return specs


def run(config: Config, out_dir: str | os.PathLike, *, cache_root: str | os.PathLike | None = None,
        progress: bool = True, log: Callable[[str], None] = print,
        sweep: Mapping[str, Any] | None = None) -> Result:
    """Train (or reuse) both teachers and every student, then write the results to ``out_dir``.

    The untrained teacher is written first (a deterministic file); the trainings are one sweep
    (:func:`training_specs` through :func:`~kdbounds.runs.sweep.run_sweep`): in this process by
    default (order: the students without a teacher or with the untrained one, then the trained
    teacher, then its students), or on Ray with ``sweep={"executor": "ray", "workers": 2}``; at equal
    ``threads`` both give the same numbers. Writes ``results.csv`` (one row per run), ``summary.csv``
    (mean/std/n per teacher x method, with the published value), ``claims.json`` (the seed-level
    tests of :func:`claim_tests`, when there are >= 2 seeds), ``results.json`` (config, rows,
    summary) and ``accuracy.png``.

    Args:
        config: e.g. ``PRESETS["cpu"]``.
        out_dir: output folder (created when missing).
        cache_root: run cache (default ``out_dir/../cache``); trained models are reused.
        progress: progress over runs (and, with the local executor, over each run's epochs).
        log: where result lines go.
        sweep: keyword arguments of :func:`~kdbounds.runs.sweep.run_sweep` (``executor``,
            ``workers``, ``address``, ``threads``, ``max_retries``, ``gpus_per_run``); default local,
            with ``config.threads`` intra-op threads per run when ``threads`` is not given.

    Returns:
        The :class:`Result`.

    Raises:
        kdbounds.runs.sweep.SweepError: a training run failed (finished runs stay in the cache).
    """
    out = Path(out_dir)
    cache = resolve_cache_root(out, cache_root)
    sweep = dict(sweep or {})
    sweep.setdefault("threads", config.threads)
    if config.threads:
        # intra-op threads of this process (smoke: 1; on a busy 2-core machine more threads
        # spin-wait: the smoke preset took 2 min of CPU with the default instead of 7 s)
        import torch

        torch.set_num_threads(int(config.threads))
    data = load_data(config)
    untrained = make_untrained_teacher(config.teacher_arch, 10, 1000, untrained_teacher_path(config, cache))
    teacher_acc: dict[str, float | None] = {
        "untrained": checkpoint_accuracy(untrained, data[2], data[3]),
        f"untrained (BatchNorm in train mode, batches of {config.batch_size})":
            train_mode_accuracy(untrained, data[2], data[3], config.batch_size, seed=config.seed)}
    if "train" in config.untrained_bn:  # the students' own training images give the statistics
        from ..distill.trainer import prepare_data

        images = prepare_data(base_config(config, config.student_arch, config.epochs, config.seed), data).train_x
        bn_train = bn_train_teacher(untrained, images, untrained_teacher_path(config, cache, "train"))
        teacher_acc["untrained-bn-train"] = checkpoint_accuracy(bn_train, data[2], data[3])
    teacher_acc["trained"] = None
    local = sweep.get("executor", "local") == "local"
    specs = training_specs(config, cache, progress=progress and local)
    start = time.perf_counter()
    trained = run_sweep(specs, progress=progress, desc="nuisance_teacher", **sweep)
    timing: dict[str, Any] = {"executor": sweep.get("executor", "local"), "workers": sweep.get("workers"),
                              "threads": sweep.get("threads"), "teacher_train_wall_s": None}
    if "teacher" in trained:
        teacher = trained.pop("teacher")
        teacher_acc["trained"] = teacher.final.get("test_acc")
        timing["teacher_train_wall_s"] = float(teacher.wall_time_s)
        log(f"trained teacher {config.teacher_arch}: test accuracy {teacher_acc['trained']}")
    rows: list[dict[str, Any]] = []
    for seed, m, kind in _jobs(config):
        res = trained[_job_key(seed, m, kind)]
        rows.append({"teacher": kind, "method": m, "seed": seed,
                     "test_acc": float(res.final["test_acc"]),
                     "train_acc": float(res.final.get("train_acc", float("nan"))),
                     "train_wall_s": float(res.wall_time_s), "run_dir": res.paths["out_dir"]})
        log(f"seed {seed} {m} ({kind} teacher): test accuracy {rows[-1]['test_acc']:.4f}")
    rows.sort(key=lambda r: (r["seed"], config.methods.index(r["method"]), r["teacher"]))
    timing["student_train_wall_s"] = sum(r["train_wall_s"] for r in rows)
    timing["wall_s"] = time.perf_counter() - start
    result = Result(config.to_dict(), tuple(rows), tuple(summarise(rows)), teacher_acc, timing)
    write_results(result, out)
    plot_accuracy(result, out / "accuracy.png")
    return result


#: the published claim, as (name, group a, group b, alternative): a "greater"/"less" than b
CLAIMS = (
    ("VID-ut below BAS", ("untrained", "vid_rid"), ("none", "ce"), "less"),
    ("RID-ut above VID-ut", ("untrained", "rid"), ("untrained", "vid_rid"), "greater"),
    ("VID-tt above BAS", ("trained", "vid_rid"), ("none", "ce"), "greater"),
    ("RID-tt above BAS", ("trained", "rid"), ("none", "ce"), "greater"),
)
#: the first two parts again under the untrained teacher whose BatchNorm normalises as in train mode
#: (``untrained_bn`` with ``"train"``), tested in the same Holm family as :data:`CLAIMS`
CLAIMS_BN_TRAIN = (
    ("VID-ut(BN train) below BAS", ("untrained-bn-train", "vid_rid"), ("none", "ce"), "less"),
    ("RID-ut(BN train) above VID-ut(BN train)", ("untrained-bn-train", "rid"), ("untrained-bn-train", "vid_rid"),
     "greater"),
)


def claim_tests(rows: list[dict[str, Any]] | tuple[dict[str, Any], ...], ci: float = 0.95) -> list[dict[str, Any]]:
    r"""Seed-level tests of the four parts of the published claim (:data:`CLAIMS`) and, with the untrained teacher
    in both BatchNorm modes, of its first two parts again (:data:`CLAIMS_BN_TRAIN`), one Holm family over every part
    tested.

    For each part: :func:`kdbounds.stats.compare_groups` (Welch's t and Mann-Whitney U, one-sided
    in the claimed direction; CI of the difference two-sided), the per-seed paired differences
    (same seed = same student initialisation and data order) and whether every seed agrees with
    the claimed sign, and Holm-adjusted Welch p-values over the parts present
    (:func:`kdbounds.stats.holm_adjust`). With n seeds per group the smallest one-sided
    Mann-Whitney p is :math:`1/\binom{2n}{n}` (0.05 for n = 3), so 3 seeds can at best just
    reach 5 %: read the Welch p and the sizes of the differences, not a verdict.

    Args:
        rows: the study's rows (``teacher``, ``method``, ``seed``, ``test_acc``).
        ci: level of the CI of the difference.

    Returns:
        One dict per part whose two groups both have >= 2 seeds (strict-JSON-ready).
    """
    from ..stats import compare_groups, holm_adjust

    acc: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        acc.setdefault((r["teacher"], r["method"]), {})[int(r["seed"])] = float(r["test_acc"])
    out = []
    for name, ga, gb, alt in CLAIMS + CLAIMS_BN_TRAIN:
        a, b = acc.get(ga, {}), acc.get(gb, {})
        if len(a) < 2 or len(b) < 2:
            continue
        cmp = compare_groups([a[s] for s in sorted(a)], [b[s] for s in sorted(b)],
                             names=("-".join(ga), "-".join(gb)), ci=ci, alternative=alt,
                             metric="test_acc")
        paired = {s: a[s] - b[s] for s in sorted(set(a) & set(b))}
        sign = 1.0 if alt == "greater" else -1.0
        out.append({"claim": name, "a": "-".join(ga), "b": "-".join(gb), "alternative": alt,
                    "paired_diffs": paired,
                    "all_seeds_agree": bool(paired) and all(sign * d > 0 for d in paired.values()),
                    **cmp.to_dict()})
    for d, p in zip(out, holm_adjust([d["welch_p"] if d["welch_p"] is not None else 1.0 for d in out])):
        d["welch_p_holm"] = p
    return out


def write_results(result: Result, out: str | os.PathLike) -> dict[str, Path]:
    """``results.csv``, ``summary.csv``, ``results.json`` (strict JSON) and, with >= 2 seeds,
    ``claims.json`` (:func:`claim_tests`), each atomically.

    Args:
        result: the study's result.
        out: the output folder.

    Returns:
        The written paths by kind.
    """
    out = Path(out)
    paths = {"csv": atomic_write_csv(out / "results.csv", result.rows),
             "summary": atomic_write_csv(out / "summary.csv", result.summary),
             "json": atomic_write_json(out / "results.json", with_provenance(result.to_dict()))}
    claims = claim_tests(result.rows)
    if claims:
        paths["claims"] = atomic_write_json(out / "claims.json", claims)
    return paths


#: the methods as they read in a figure
METHOD_LABELS = {"ce": "student alone", "kd": "KD", "vid": "VID (RepDistiller)", "vid_rid": "VID (RID paper)",
                 "rid": "RID", "itrd": "ITRD"}

#: the teachers as they read in a figure, with their colours
TEACHER_LABELS = {"trained": "trained teacher",
                  "untrained": "untrained teacher, BatchNorm in eval mode (initial statistics)",
                  "untrained-bn-train": "untrained teacher, BatchNorm in train mode (training-set statistics)"}
_TEACHER_COLOURS = {"trained": "tab:blue", "untrained": "tab:red", "untrained-bn-train": "tab:orange"}


def _arch_label(arch: str) -> str:
    """An architecture name as it reads in a figure (``wrn_40_2`` -> ``WRN-40-2``, ``airbench_s`` -> ``airbench-s``)."""
    return arch.upper().replace("_", "-") if arch.startswith("wrn") else arch.replace("_", "-")


def accuracy_figure(result: Result) -> Any:
    """The figure of :func:`plot_accuracy` (a :class:`matplotlib.figure.Figure`, not saved).

    Per method and teacher a bar: the mean over seeds of the last-epoch test accuracy, whiskers ± 1 sd over seeds
    (ddof = 1, the summary's ``std``; no whiskers for one seed), each seed a dot; the student alone as a dashed line
    with its ± 1 sd band; the trained teacher's own test accuracy as a dotted line. The summary carries no confidence
    interval, so none is drawn.

    Args:
        result: the study's :class:`Result`.

    Returns:
        The figure; ``kdbounds_bars`` lists ``(teacher, method, mean, sd, n)`` per bar drawn.
    """
    from ..figures import plt_figure

    cfg = result.config
    methods = [m for m in cfg["methods"] if m != "ce"]
    by = {(s["teacher"], s["method"]): s for s in result.summary}
    kinds = [k for k in _TEACHER_COLOURS if any((k, m) in by for m in methods)]
    seeds = sorted({int(r["seed"]) for r in result.rows})
    fig, ax = plt_figure(figsize=(max(7.0, 2.4 + 1.9 * len(methods)), 5.6))
    xs = np.arange(len(methods))
    width = 0.8 / max(len(kinds), 1)
    bars: list[tuple[str, str, float, float, int]] = []
    tops = [0.0]
    for k, kind in enumerate(kinds):
        colour = _TEACHER_COLOURS[kind]
        for i, m in enumerate(methods):
            s = by.get((kind, m))
            if s is None:
                continue
            x = xs[i] + (k - (len(kinds) - 1) / 2) * width
            spread = s["n"] > 1
            ax.bar(x, s["mean_test_acc"], width * 0.92, color=colour, alpha=0.8,
                   label=None if any(b[0] == kind for b in bars) else TEACHER_LABELS.get(kind, kind))
            if spread:  # the spread over seeds at the bar's right, the seeds on its left
                ax.errorbar(x + 0.22 * width, s["mean_test_acc"], yerr=s["std"], fmt="_", color="k", ms=7, capsize=3,
                            lw=1.2)
            accs = [r["test_acc"] for r in result.rows if (r["teacher"], r["method"]) == (kind, m)]
            ax.scatter(x + np.linspace(-0.3, -0.05, len(accs)) * width if len(accs) > 1 else [x], accs, s=9,
                       color="k", zorder=3, lw=0)
            bars.append((kind, m, float(s["mean_test_acc"]), float(s["std"]), int(s["n"])))
            tops += [s["mean_test_acc"] + (s["std"] if spread else 0.0), *accs]
    ce = by.get(("none", "ce"))
    if ce is not None:
        mean, sd = ce["mean_test_acc"], ce["std"]
        band = ce["n"] > 1
        ax.axhline(mean, color="k", ls="--", lw=1, label=f"student alone, no teacher ({mean:.3f}"
                                                          + (f"; band ± 1 sd = {sd:.3f})" if band else ")"))
        if band:
            ax.axhspan(mean - sd, mean + sd, color="k", alpha=0.08, lw=0)
        tops.append(mean + (sd if band else 0.0))
    trained = result.teacher_test_acc.get("trained")
    if trained is not None:
        ax.axhline(trained, color="tab:blue", ls=":", lw=1.4, label=f"trained teacher itself ({trained:.3f})")
        tops.append(trained)
    ax.set_xticks(xs, [METHOD_LABELS.get(m, m) for m in methods])
    ax.set_xlim(-0.6, len(methods) - 0.4)
    ax.set_ylim(0.0, min(1.0, max(tops) * 1.08) if max(tops) > 0 else 1.0)
    ax.set_ylabel("last-epoch test accuracy")
    n = len(seeds)
    spread = f"bars: mean ± 1 sd over {n} seeds, dots: seeds" if n > 1 else "one seed: no spread to show"
    ax.set_title(f"{_arch_label(cfg['teacher_arch'])} → {_arch_label(cfg['student_arch'])} on CIFAR-10 "
                 f"({cfg['preset']} preset)\n{spread}", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=1, frameon=False)
    fig.tight_layout()
    fig.kdbounds_bars = bars
    return fig


def plot_accuracy(result: Result, path: str | os.PathLike) -> Path:
    """Bar plot of the last-epoch test accuracy per teacher and method, mean ± sd over seeds
    (:func:`accuracy_figure`), written atomically.

    Args:
        result: the study's result.
        path: the image file.

    Returns:
        ``path``.
    """
    from ..figures import save_figure

    return save_figure(accuracy_figure(result), path)


def _fmt(v: Any, spec: str = ".3g") -> str:
    from ._tables import format_number

    return format_number(v, spec)


def _accuracy_diff_ci(low: Any, high: Any) -> tuple[str, bool]:
    """``[low, high]`` of a difference of two accuracies, cut at its range [-1, 1] (``†`` marks a cut end).

    Cutting loses no coverage (the difference lies in [-1, 1]); with 2-3 seeds Welch's t has few degrees
    of freedom and its interval can reach past ±1. Returns the text and whether an end was cut.
    """
    ends = []
    for v in (low, high):
        if not isinstance(v, (int, float)):
            ends.append(_fmt(v))
        else:
            ends.append(_fmt(min(1.0, max(-1.0, v)), "+.3f") + ("†" if abs(v) > 1.0 else ""))
    return f"[{ends[0]}, {ends[1]}]", any(e.endswith("†") for e in ends)


def summary(result: Result) -> str:
    """Markdown table of the summary next to the published values, the teachers' own accuracy and,
    with >= 2 seeds, the seed-level tests of the claim.

    Args:
        result: the study's result.

    Returns:
        The text.
    """
    lines = ["| teacher | method | test acc (mean) | sd | n | per seed | published |",
             "|---|---|---|---|---|---|---|"]
    per_seed: dict[tuple[str, str], list[str]] = {}
    for r in result.rows:
        per_seed.setdefault((r["teacher"], r["method"]), []).append(f"{r['test_acc']:.3f}")
    for s in sorted(result.summary, key=lambda s: (s["teacher"] != "none", s["teacher"], s["method"])):
        pub = s.get("published_test_acc")
        lines.append(f"| {s['teacher']} | {s['method']} | {s['mean_test_acc']:.4f} | {s['std']:.4f} | {s['n']} "
                     f"| {' '.join(per_seed.get((s['teacher'], s['method']), []))} "
                     f"| {'-' if pub is None else f'{pub:.3f}'} |")
    for k, v in result.teacher_test_acc.items():
        if v is not None:
            lines.append(f"| ({k} teacher itself) | - | {v:.4f} | - | 1 | - | {'0.838' if k == 'trained' else '-'} |")
    bas = [s["mean_test_acc"] for s in result.summary if (s["teacher"], s["method"]) == ("none", "ce")]
    if bas and result.teacher_test_acc.get("trained") is not None:
        above = 100 * (result.teacher_test_acc["trained"] - bas[0])
        lines += ["", f"Trained teacher − BAS (mean over seeds): {above:+.1f} points (issue 23 asks for ≥ 10)."]
    lines += _claims_table(claim_tests(result.rows))
    return "\n".join(lines)


#: the issue's goals for the scale run: the trained teacher this many points above the student alone (BAS), and
#: at least this many seeds per part of the claim
GOALS = {"teacher_above_bas_points": 10.0, "seeds": 5}


def _verdict(claim: Mapping[str, Any], alpha: float) -> str:
    """``holds`` (Holm-adjusted one-sided Welch p < ``alpha``: the p is one-sided in the claimed direction),
    ``opposite`` (the 95 % interval of the difference excludes 0 on the other side), else ``not shown``."""
    sign = 1.0 if claim["alternative"] == "greater" else -1.0
    holm = claim.get("welch_p_holm")
    if isinstance(holm, (int, float)) and holm < alpha:
        return "**holds**"
    far = claim["diff_ci_high"] if sign > 0 else claim["diff_ci_low"]
    if isinstance(far, (int, float)) and sign * far < 0:
        return "opposite"
    return "not shown"


def readme_report(results: Mapping[str, Any], alpha: float = 0.05) -> str:
    """README's block for a committed run (generated from its ``results.json``, never typed by hand): the design and
    cost in one paragraph, the goal lines (computed), the accuracies per student and teacher next to the published
    ones, and the tests of the claim's parts (:func:`claim_tests`, one Holm family) with a verdict each at ``alpha``.

    Args:
        results: the parsed ``results.json`` of :func:`run`.
        alpha: the family-wise level of the verdicts.

    Returns:
        The markdown text.
    """
    from ._tables import format_number

    cfg, rows, acc = results["config"], results["rows"], results["teacher_test_acc"]
    tm = results.get("timing", {})
    seeds = sorted({int(r["seed"]) for r in rows})
    n_train = f"{10 * cfg['n_per_class']:,} training images ({cfg['n_per_class']} per class)" \
        if cfg["n_per_class"] else "all 50,000 training images"
    n_test = f"{10 * cfg['test_per_class']:,} test images" if cfg["test_per_class"] else "the 10,000 test images"
    bank = (f"the teacher bank's {cfg['teacher_arch']} (fast recipe, {cfg['teacher_epochs']} epochs on "
            + (f"{cfg['teacher_n_per_class']} images per class)" if cfg.get("teacher_n_per_class")
               else "all 50,000 training images)")) if cfg.get("bank_teacher") else \
        f"{cfg['teacher_arch']} trained here ({cfg['teacher_epochs']} epochs of the students' SGD recipe)"
    words = {"untrained": "with BatchNorm in eval mode (initial statistics)",
             "untrained-bn-train": "with the training images' statistics"}
    own = "; ".join(f"{format_number(v, '.4f')} {words.get(k, 'with ' + k.removeprefix('untrained (').rstrip(')'))}"
                    for k, v in acc.items() if k != "trained")
    per_run = sorted(r["train_wall_s"] for r in rows if isinstance(r.get("train_wall_s"), (int, float)))
    cost = "not recorded"
    if per_run:
        cost = (f"students {sum(per_run) / 3600:.1f} h of training wall time in all ({len(per_run)} runs, median "
                f"{per_run[len(per_run) // 2] / 60:.1f} min)")
        if isinstance(tm.get("teacher_train_wall_s"), (int, float)):
            cost += f", the trained teacher {tm['teacher_train_wall_s'] / 60:.1f} min"
        cost += (" — each the wall time of the process that finished the run, so a run resumed after an interruption "
                 "counts only its last part")
        if isinstance(tm.get("wall_s"), (int, float)):
            cost += (f"; this invocation's sweep {tm['wall_s'] / 3600:.2f} h wall ({tm.get('executor')} executor, "
                     f"{tm.get('workers') or 1} worker(s) × {tm.get('threads') or 'default'} thread(s); runs found "
                     "finished in the run cache cost it nothing)")
    intro = (f"Preset `{cfg['preset']}`: trained teacher: {bank}, test accuracy "
             f"{format_number(acc.get('trained'), '.4f')}; untrained teacher: {cfg['teacher_arch']} at initialisation, "
             f"test accuracy {own}; students {cfg['student_arch']} on {n_train}, {cfg['epochs']} epochs, batch "
             f"{cfg['batch_size']}, lr {cfg['lr']:g}"
             f"{', no augmentation' if not cfg.get('augment') else ''}; last-epoch accuracy on {n_test}; "
             f"{len(seeds)} seeds ({', '.join(map(str, seeds))}). Cost: {cost}.")
    by = {(s["teacher"], s["method"]): s for s in results["summary"]}
    per_seed: dict[tuple[str, str], list[float]] = {}
    for r in sorted(rows, key=lambda r: int(r["seed"])):
        per_seed.setdefault((r["teacher"], r["method"]), []).append(float(r["test_acc"]))
    table = ["| student | teacher | test accuracy, mean ± sd over seeds | per seed | published (kd-rid, full "
             "recipe) |", "|---|---|---|---|---|"]
    order = [("none", "ce")] + [(k, m) for m in cfg["methods"] if m != "ce"
                                for k in ("trained", "untrained", "untrained-bn-train") if (k, m) in by]
    for key in order:
        if key not in by:
            continue
        s = by[key]
        pub = s.get("published_test_acc")
        table.append(f"| {METHOD_LABELS.get(key[1], key[1])} | {TEACHER_LABELS.get(key[0], 'none')} "
                     f"| {s['mean_test_acc']:.4f} ± {s['std']:.4f} | {', '.join(f'{a:.4f}' for a in per_seed[key])} "
                     f"| {'–' if pub is None else f'{pub:.3f}'} |")
    lines = [intro, "", *table]
    bas = by.get(("none", "ce"))
    goal = GOALS["teacher_above_bas_points"]
    if bas is not None and isinstance(acc.get("trained"), (int, float)):
        above = 100 * (acc["trained"] - bas["mean_test_acc"])
        lines += ["", f"- Goal: the trained teacher ≥ {goal:g} points above the student alone: "
                      f"{'**met**' if above >= goal - 1e-9 else '**not met**'} ({above:+.2f} points: "
                      f"{acc['trained']:.4f} vs {bas['mean_test_acc']:.4f})."]
    claims = claim_tests(rows)
    n_min = min((min(c["n_a"], c["n_b"]) for c in claims), default=0)
    lines.append(f"- Goal: every part of the claim with its effect, interval and Holm p over ≥ {GOALS['seeds']} "
                 f"seeds: {'**met**' if claims and n_min >= GOALS['seeds'] else '**not met**'} ({len(claims)} parts, "
                 f"at least {n_min} seeds per group).")
    lines += _claims_table(claims, alpha)
    return "\n".join(lines)


def _claims_table(claims: list[dict[str, Any]], alpha: float = 0.05) -> list[str]:
    """The markdown lines of :func:`claim_tests`' parts (a blank line first; none without parts): difference, its
    95 % Welch interval cut at ±1 (:func:`_accuracy_diff_ci`), Welch and Holm p, Mann–Whitney p, whether every seed
    agrees, and the verdict at ``alpha`` (:func:`_verdict`)."""
    if not claims:
        return []
    lines = ["", f"| part of the claim | difference (a − b) | 95 % CI (Welch) | Welch p, one-sided | Holm "
                 f"({len(claims)} parts) | Mann–Whitney p | every seed agrees | verdict at {alpha:g} |",
             "|---|---|---|---|---|---|---|---|"]
    cut = False
    for c in claims:
        ci, was_cut = _accuracy_diff_ci(c["diff_ci_low"], c["diff_ci_high"])
        cut |= was_cut
        lines.append(f"| {c['claim']} | {_fmt(c['diff'], '+.4f')} | {ci} | {_fmt(c['welch_p'])} "
                     f"| {_fmt(c['welch_p_holm'])} | {_fmt(c['mwu_p'])} | {'yes' if c['all_seeds_agree'] else 'no'} "
                     f"| {_verdict(c, alpha)} |")
    if cut:
        lines += ["", "† Welch's interval reaches past ±1 (few seeds: few degrees of freedom); shown cut at ±1, "
                      "the range of an accuracy difference (claims.json keeps the uncut interval)."]
    return lines
