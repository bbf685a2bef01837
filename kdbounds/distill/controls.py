"""Controls for distillation experiments (methods.md §3 nuisance teacher, §5 controls).

* **Untrained teacher** (:func:`make_untrained_teacher`): the teacher's architecture, randomly
  initialised from ``seed`` and never trained, saved as a checkpoint in the same format as a
  trained teacher, so every method loads and uses it exactly like a trained one.
* **Random control distillation** (``"rcd"``, :class:`RCD`): the Hinton KD loss with the teacher's
  softened distribution replaced by random noise, drawn afresh for every example at every step:

      L = gamma * CE(y, z_s) + alpha * T^2 * KL(p_noise || softmax(z_s / T))     (batchmean)

  ``noise="gaussian"`` (default): p_noise = softmax(g), g ~ N(0, noise_scale^2 I_K) per example;
  ``noise="dirichlet"``: p_noise ~ Dirichlet(concentration * 1_K) per example (clamped below at
  1e-12 and renormalised). The noise is NOT divided by T; it stands in for softmax(z_t/T).
  Noise is drawn from ``numpy.random.default_rng([seed, step])``, a deterministic function of
  (seed, step counter); the counter is a buffer in the
  method's state_dict, so a resumed run draws the same noise. No teacher is used
  (``requires_teacher = False``). Defaults gamma = 0.1, alpha = 0.9, T = 4 as for KD.
* **SIDDO** (:func:`siddo_config`): same initialisation as a reference student, different data
  order, no teacher: the reference config with ``method="ce"``, no teacher, the same model seed
  and a different data seed.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .methods import DistillMethod, register_method
from .._checks import as_choice, as_float, as_int, check_int
from .features import upcast

__all__ = ["RCD", "rcd_noise", "kd_kl_term", "make_untrained_teacher", "siddo_config",
           "UNTRAINED_CONFIG_KEY"]

UNTRAINED_CONFIG_KEY = "untrained"

def rcd_noise(batch: int, num_classes: int, *, noise: str = "gaussian", noise_scale: float = 1.0,
              concentration: float = 1.0, rng: np.random.Generator,
              device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
              ) -> torch.Tensor:
    """Random class distributions, ``batch x num_classes``, rows on the simplex.

    gaussian: softmax(noise_scale * g), g ~ N(0, I); dirichlet: Dirichlet(concentration * 1),
    clamped below at 1e-12 and renormalised. Drawn in float64 from the numpy ``rng``
    (reproducible across devices), then moved to ``device``/``dtype``.

    Args:
        batch: rows.
        num_classes: columns.
        noise: ``"gaussian"`` or ``"dirichlet"``.
        noise_scale: scale of the Gaussian logits.
        concentration: Dirichlet concentration.
        rng: the numpy random source.
        device: where the result goes.
        dtype: the result's dtype.

    Returns:
        The distributions, ``batch x num_classes``, rows summing to 1.

    Raises:
        ValueError: unknown ``noise``.
    """
    if noise == "gaussian":
        g = noise_scale * rng.standard_normal((batch, num_classes))
        g = g - g.max(axis=1, keepdims=True)
        p = np.exp(g)
    elif noise == "dirichlet":
        p = rng.dirichlet(np.full(num_classes, float(concentration)), size=batch)
        p = np.maximum(p, 1e-12)
    else:
        raise ValueError(f"noise must be 'gaussian' or 'dirichlet', got {noise!r}")
    p = p / p.sum(axis=1, keepdims=True)
    return torch.as_tensor(p, dtype=dtype, device=device)


def kd_kl_term(student_logits: torch.Tensor, target_probs: torch.Tensor,
               T: float) -> torch.Tensor:
    """``T^2 * KL(p || softmax(z_s/T))`` summed over classes, averaged over the batch.

    Args:
        student_logits: ``N x C`` logits.
        target_probs: ``N x C`` target distributions (rows on the simplex).
        T: temperature.

    Returns:
        The scalar term.
    """
    log_q = F.log_softmax(student_logits / T, dim=1)
    p = target_probs
    kl = (p * (torch.log(p.clamp_min(1e-30)) - log_q)).sum(1).mean()
    return (T * T) * kl


@register_method
class RCD(DistillMethod):
    """Random control: KD with the teacher distribution replaced by per-example noise.

    Hyper-parameters: gamma (0.1), alpha (0.9), T (4), noise ("gaussian" | "dirichlet"),
    noise_scale (1.0, gaussian logit std), concentration (1.0, Dirichlet), seed (0).
    """

    name = "rcd"
    requires_teacher = False
    requires_features = False

    defaults = {"gamma": 0.1, "alpha": 0.9, "T": 4.0, "noise": "gaussian", "noise_scale": 1.0,
                "concentration": 1.0, "seed": 0}

    @classmethod
    def parse_hparams(cls, h: Mapping[str, Any]) -> dict[str, Any]:
        """``gamma, alpha, noise_scale >= 0``, ``T, concentration > 0``, a known ``noise``, ``seed >= 0``.

        Args:
            h: the hyper-parameters completed by their defaults.

        Returns:
            The checked values.

        Raises:
            ValueError: a value out of range.
            TypeError: a value of the wrong type.
        """
        return {"gamma": as_float("gamma", h["gamma"], low=0.0), "alpha": as_float("alpha", h["alpha"], low=0.0),
                "T": as_float("T", h["T"], low=0.0, low_open=True),
                "noise": as_choice("noise", h["noise"], ("gaussian", "dirichlet")),
                "noise_scale": as_float("noise_scale", h["noise_scale"], low=0.0),
                "concentration": as_float("concentration", h["concentration"], low=0.0, low_open=True),
                "seed": as_int("seed", h["seed"], low=0)}

    def __init__(self, student: nn.Module, teacher: nn.Module | None, num_classes: int,
                 **hparams: Any) -> None:
        super().__init__(student, teacher, num_classes, **hparams)
        p = self.parse_hparams(self.hparams)
        self.gamma, self.alpha, self.T, self.noise = p["gamma"], p["alpha"], p["T"], p["noise"]
        self.noise_scale, self.concentration, self.seed = p["noise_scale"], p["concentration"], p["seed"]
        self.num_classes_ = int(num_classes)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def noise_for_step(self, step: int, batch: int, device, dtype) -> torch.Tensor:
        """The noise distribution used at ``step`` (deterministic in seed and step).

        Args:
            step: the training step.
            batch: rows.
            device: where the result goes.
            dtype: the result's dtype.

        Returns:
            ``batch x num_classes`` distributions (see :func:`rcd_noise`).
        """
        rng = np.random.default_rng([self.seed, int(step)])
        return rcd_noise(batch, self.num_classes_, noise=self.noise,
                         noise_scale=self.noise_scale, concentration=self.concentration,
                         rng=rng, device=device, dtype=dtype)

    def loss(self, x, y, s_out, t_out, epoch):
        """RCD's objective: cross-entropy plus the KD term against this step's noise distribution.
        Args:
            x: the normalised (augmented) input batch.
            y: the labels.
            s_out: the student's output (logits, or a :class:`FeatureOutput`).
            t_out: the teacher's output on ``x`` (``None`` when the method needs no teacher).
            epoch: the 0-based epoch.

        Returns:
            ``(loss, parts)``: the scalar loss and its named parts (detached).

        Raises:
            ValueError: the student's logits are not ``N x num_classes``.
        """
        logits = s_out.logits if hasattr(s_out, "logits") else s_out
        if logits.dim() != 2 or logits.shape[1] != self.num_classes_:
            raise ValueError(f"rcd: student logits must be N x {self.num_classes_}, got "
                             f"{tuple(logits.shape)}")
        p = self.noise_for_step(int(self.step), logits.shape[0], logits.device, logits.dtype)
        if self.training:
            self.step += 1
        ce = F.cross_entropy(upcast(logits), y)
        kd = kd_kl_term(upcast(logits), upcast(p), self.T)
        loss = self.gamma * ce + self.alpha * kd
        return loss, {"ce": ce.detach(), "kd": kd.detach(),
                      "loss": loss.detach()}


# ---------------------------------------------------------------------------------------------
# Untrained ("nuisance") teacher and SIDDO.
# ---------------------------------------------------------------------------------------------
def make_untrained_teacher(arch: str, num_classes: int, seed: int,
                           path: str | os.PathLike) -> Path:
    """Save a randomly initialised, never trained ``arch`` as a teacher model file; return path.

    The model is ``build_model(arch, num_classes, seed=seed)`` (private generator: the global RNG
    is untouched) written atomically in the same format as a trained teacher's ``model.pt``
    (``kdbounds-model-v1``: arch, num_classes, state_dict, config, metrics), so
    ``load_checkpoint_model(path)`` and ``TrainConfig(teacher_ckpt=path)`` use it exactly like a
    trained one. ``config`` records ``{"untrained": True, "init_seed": seed, "epochs": 0, ...}``.
    The file's bytes are a deterministic function of (arch, num_classes, seed), so a run cache
    keyed by the teacher file's hash is reused across calls.

    Args:
        arch: the architecture name.
        num_classes: classes (``>= 2``).
        seed: initialisation seed (``>= 0``).
        path: the ``.pt`` file written.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        TypeError: ``seed`` or ``num_classes`` is not an integer.
        ValueError: ``seed < 0``, ``num_classes < 2`` or a ``path`` suffix other than ``.pt``.
    """
    from ..models import build_model
    from .checkpoint import MODEL_FORMAT, atomic_save

    seed = check_int("seed", seed, minimum=0)
    num_classes = check_int("num_classes", num_classes, minimum=2)
    model = build_model(arch, num_classes=num_classes, seed=seed)
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"path must name a .pt file (e.g. teachers/untrained_{arch}_s{seed}.pt); "
                         f"got {str(path)!r}")
    config = {"arch": model.arch, "num_classes": num_classes, "init_seed": seed, "epochs": 0,
              UNTRAINED_CONFIG_KEY: True}
    atomic_save({"format": MODEL_FORMAT, "arch": model.arch, "num_classes": num_classes,
                 "state_dict": {k: v.detach().cpu().clone() for k, v in
                                model.state_dict().items()},
                 "config": config, "metrics": {}, "teacher_sha256": None}, path)
    return path


def siddo_config(reference: Any, data_seed: int) -> Any:
    """SIDDO control config: same initialisation as ``reference``, different data order, no teacher.

    The reference's model seed is its ``init_seed`` when set, else its ``seed`` (the trainer's
    rule). ``data_seed`` must differ from the reference's data seed (``seed``), otherwise the
    control is the reference itself.

    Args:
        reference: the :class:`TrainConfig` of the run compared with.
        data_seed: the control's data-order seed.

    Returns:
        ``replace(reference, method="ce", method_kwargs={}, teacher_ckpt=None,
        init_seed=<reference's model seed>, seed=data_seed)``.

    Raises:
        TypeError: ``reference`` is not a ``TrainConfig``, or ``data_seed`` is not an integer.
        ValueError: ``data_seed`` is negative or equals the reference's seed.
    """
    from .config import TrainConfig

    if not isinstance(reference, TrainConfig):
        raise TypeError(f"reference must be a TrainConfig; got {type(reference).__name__}")
    data_seed = check_int("data_seed", data_seed, minimum=0)
    if data_seed == reference.seed:
        raise ValueError(f"data_seed={data_seed} equals the reference's data seed (seed="
                         f"{reference.seed}); SIDDO needs a different data order, pick another")
    init = reference.init_seed if reference.init_seed is not None else reference.seed
    return dataclasses.replace(reference, method="ce", method_kwargs={}, teacher_ckpt=None,
                               init_seed=init, seed=data_seed)
