r"""The fast recipe's settings and its SGD hyper-parameters, without torch (checked when a config is built).

The fast recipe (airbench94, Jordan 2024, arXiv 2404.00498; docs/methods.md "Fast CIFAR-10 training") is
written in airbench's units: a learning rate ``lr_1024 = 11.5`` and weight decay ``wd_1024 = 0.0153`` "per
1024 examples" for a loss **summed** over the batch, SGD with Nesterov momentum ``m = 0.85``. The trainer
averages the loss over the batch, so the equivalent mean-loss hyper-parameters at batch size ``B`` are

.. math::
    \mathrm{lr} = \frac{B \cdot \mathrm{lr}_{1024}}{1024\,(1 + 1/(1 - m))}, \qquad
    \lambda = \frac{\mathrm{wd}_{1024}}{\mathrm{lr}_{1024}}

(the decay per step, ``lr * lambda``, is the reference's ``wd_1024 * B / (1024 (1 + 1/(1 - m)))``).
BatchNorm biases train at ``bias_lr_scale`` times the learning rate with ``lambda / bias_lr_scale`` (the same decay
per step). The learning rate follows a triangle over all steps ``t = 0..T``: ``lr_start`` at 0, 1 at
``lr_peak * T``, ``lr_end`` at ``T`` (multipliers of ``lr``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from .._checks import check_bool, check_choice, check_int, check_nonnegative

__all__ = ["FastRecipeSettings", "RECIPES", "fast_sgd_hparams", "triangular_multiplier", "whitening_indices"]

RECIPES = ("standard", "fast")


@dataclass(frozen=True)
class FastRecipeSettings:
    """Switches of the fast recipe (``TrainConfig.recipe_kwargs``); the defaults are airbench94's.

    Attributes:
        whiten: set the first layer from the patch covariance of the training images and freeze it.
        whiten_images: how many training images (a random subset seeded by the run's seed,
            :func:`whitening_indices`) give it.
        whiten_eps: added to the eigenvalues.
        whiten_bias_epochs: epochs during which the whitening layer's bias trains (then frozen).
        bias_lr_scale: learning-rate multiplier of the BatchNorm biases.
        lookahead: pull the weights toward their EMA every ``lookahead_every`` steps.
        lookahead_every: steps between lookahead updates.
        lookahead_decay: per-step EMA decay (``decay^every * (t/T)^3`` per update).
        lr_start, lr_peak, lr_end: the triangular schedule (multipliers; ``lr_peak`` is a fraction of steps).
        translate: crop translation in pixels (reflect padding).
        flip: ``"alternating"`` or ``"random"`` horizontal flips.
        tta_level: test-time augmentation of the separately reported accuracy (0 none, 1 mirror,
            2 mirror + two 1-pixel translations).
    """

    whiten: bool = True
    whiten_images: int = 5000
    whiten_eps: float = 5e-4
    whiten_bias_epochs: int = 3
    bias_lr_scale: float = 64.0
    lookahead: bool = True
    lookahead_every: int = 5
    lookahead_decay: float = 0.95
    lr_start: float = 0.2
    lr_peak: float = 0.23
    lr_end: float = 0.07
    translate: int = 2
    flip: str = "alternating"
    tta_level: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            name, v = f"recipe_kwargs[{f.name!r}]", getattr(self, f.name)
            if type(f.default) is bool:
                object.__setattr__(self, f.name, check_bool(name, v))
            elif type(f.default) is int:
                object.__setattr__(self, f.name, check_int(name, v, minimum=0))
            elif type(f.default) is float:
                check_nonnegative(name, v)
        if self.whiten and self.whiten_images < 1:
            raise ValueError("recipe_kwargs['whiten_images'] must be >= 1 when whiten is on")
        if not self.whiten_eps > 0 or not self.bias_lr_scale > 0 or self.lookahead_every < 1:
            raise ValueError("recipe_kwargs: whiten_eps and bias_lr_scale must be > 0 and lookahead_every >= 1; "
                             f"got {self.whiten_eps}, {self.bias_lr_scale}, {self.lookahead_every}")
        if not 0 <= self.lookahead_decay <= 1 or not 0 < self.lr_peak < 1:
            raise ValueError("recipe_kwargs: lookahead_decay must be in [0, 1] and lr_peak in (0, 1); got "
                             f"{self.lookahead_decay}, {self.lr_peak}")
        check_choice("recipe_kwargs['flip']", self.flip, ("alternating", "random"))
        check_int("recipe_kwargs['tta_level']", self.tta_level, maximum=2, fix="0 none, 1 mirror, 2 mirror + translations")
        check_int("recipe_kwargs['translate']", self.translate, maximum=15, fix="a translation in pixels")

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> "FastRecipeSettings":
        """Settings from ``TrainConfig.recipe_kwargs`` (unknown names refused, values checked).

        Args:
            kwargs: name -> value; missing names take airbench94's default.

        Returns:
            The settings.

        Raises:
            ValueError: an unknown name (the message lists the valid ones) or a bad value.
        """
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise ValueError(f"unknown recipe_kwargs {unknown}; the fast recipe takes {names}")
        vals = dict(kwargs)
        for f in fields(cls):  # ints are fine where a float is expected (JSON round trips)
            if type(f.default) is float and f.name in vals and isinstance(vals[f.name], int) \
                    and not isinstance(vals[f.name], bool):
                vals[f.name] = float(vals[f.name])
        return cls(**vals)

    def to_dict(self) -> dict[str, Any]:
        """Every setting as a JSON-able dict.

        Returns:
            name -> value.
        """
        return asdict(self)


def fast_sgd_hparams(batch_size: int, lr_1024: float = 11.5, wd_1024: float = 0.0153,
                     momentum: float = 0.85) -> dict[str, float]:
    r"""Mean-loss SGD hyper-parameters equivalent to airbench's summed-loss ones (module docstring).

    Args:
        batch_size: the batch size ``B``.
        lr_1024: airbench's learning rate per 1024 examples.
        wd_1024: airbench's weight decay per 1024 examples.
        momentum: the Nesterov momentum ``m``.

    Returns:
        ``{"lr", "weight_decay", "momentum"}`` for ``TrainConfig``.

    Raises:
        TypeError: ``batch_size`` is not an integer.
        ValueError: non-positive batch size or rates, or momentum outside [0, 1).
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if not (lr_1024 > 0 and wd_1024 >= 0 and 0 <= momentum < 1):
        raise ValueError(f"need lr_1024 > 0, wd_1024 >= 0, 0 <= momentum < 1; got {lr_1024}, {wd_1024}, {momentum}")
    scale = 1024 * (1 + 1 / (1 - momentum))
    return {"lr": batch_size * lr_1024 / scale, "weight_decay": wd_1024 / lr_1024, "momentum": momentum}


def triangular_multiplier(step: int, total: int, start: float = 0.2, peak: float = 0.23, end: float = 0.07) -> float:
    r"""The triangular learning-rate multiplier at ``step`` of ``total`` (linear interpolation).

    .. math::
        \gamma(t) = \mathrm{interp}\bigl(t;\ [0, \lfloor pT \rfloor, T],\ [\gamma_0, 1, \gamma_T]\bigr)

    Args:
        step: the 0-based step ``t`` (clipped to ``[0, T]``).
        total: the number of steps ``T`` (``>= 1``).
        start: ``gamma_0``.
        peak: ``p``, the fraction of steps at which the multiplier is 1.
        end: ``gamma_T``.

    Returns:
        The multiplier.
    """
    total = max(int(total), 1)
    t = min(max(int(step), 0), total)
    top = max(int(peak * total), 1)
    if t <= top:
        return start + (1.0 - start) * t / top
    return 1.0 + (end - 1.0) * (t - top) / max(total - top, 1)


def whitening_indices(n_train: int, n_images: int, seed: int) -> np.ndarray:
    """Which training images give the whitening layer its patch covariance: a uniformly random subset.

    Not the first ``n_images``: a training set read from image folders (and a split's sorted indices) is
    ordered class by class, and the first 5,000 images of CIFAR-10's would all be airplanes.

    Args:
        n_train: the number of training images.
        n_images: how many to take (all of them when ``n_images >= n_train``).
        seed: the run's seed.

    Returns:
        Sorted indices (int64), ``min(n_images, n_train)`` of them, without repetition.
    """
    k = min(int(n_images), int(n_train))
    rng = np.random.default_rng([int(seed), 0x5717E])  # a stream of its own: the run's other draws are unchanged
    return np.sort(rng.choice(int(n_train), size=k, replace=False)).astype(np.int64)
