"""RID: Redundant Information Distillation (Dissanayake et al., AISTATS 2025), methods.md §3.

RID maximises a lower bound on the redundant information Red(Y: T, S) -- the task-relevant
information the student shares with the teacher -- as a regulariser, in two alternating phases.

Modules, per distilled layer k (teacher stage T_k with C_t channels, student stage S_k with C_s):
  teacher filter f_t^k : conv1x1(C_t->C_t) -> BN -> ReLU -> conv1x1(C_t->C_f)
  student filter f_s^k : conv1x1(C_s->2C_s) -> BN -> ReLU -> conv1x1(2C_s->C_f)
  head g_t^k           : ReLU -> flatten -> Linear(C_f*H*W -> classes), on f_t^k(T_k)
  sigma_k (per channel): sigma_c = softplus(a_c) + 1e-3, a_c = 5 initially
  V_k = f_t^k(T_k) - f_s^k(S_k)
(C_f defaults to C_s, as in the official code; convolutions have no bias.)

Phase 1 (teacher filters and heads learn; student, student filters and sigma frozen):
    L_1 = sum_k CE(y, g_t^k(f_t^k(T_k))) + [not warm-up] * sum_k mean(V_k^2 / sigma_k)
Phase 2 (student, student filters and sigma learn; teacher filters and heads frozen):
    L_2 = lam1 * CE(y, z_s) + lam2 * sum_k mean(sigma_k^2 + V_k^2 / sigma_k)
  (``sigma_penalty="square"``, methods.md and the official alternating code; ``"log"`` gives the
  Gaussian form mean(log sigma + V^2/sigma) instead). No Hinton KD term.
Means run over (n, c, h, w). Frozen modules run under no_grad but in TRAIN mode, as in the
official code (BatchNorm normalises with batch statistics: running statistics of a student that
is trained with a large learning rate lag behind its weights, and in eval mode they gave
representation gaps V^2 of ~1e4 instead of ~1 in a short CIFAR-10 run); their buffers (BN running
statistics) are restored after the step, so a phase changes only the parameters and buffers of
the modules it trains. The teacher network itself stays frozen in eval mode.

Schedule (pure function :func:`rid_phase`): E epochs in cycles of length q (q = E // n_rounds
when q is not given); epoch e is in phase 1 iff (e mod q) < r*q, else phase 2. The warm-up is the
first cycle's phase 1 (e < q and phase 1), during which the V-term of L_1 is off.

Optimisers: two SGD optimisers (Nesterov, momentum 0.9, weight decay 5e-4), one per phase, each
step with gradient-norm clipping at 100 (``grad_clip``). Learning rate as the PAPER states it
(CIFAR-10, 300 epochs): 0.05, x0.2 at epoch 150 (-> 0.01), x0.2 at epoch 200 (-> 0.002), i.e.
MULTIPLIERS 1, 0.2, 0.04 applied to the base rate, stepped once per epoch, for both optimisers
(:func:`rid_lr_multiplier`; milestones scale with E/300 for shorter runs). The official code has
two defects here which this implementation does NOT reproduce: its LambdaLR returns a learning
rate instead of a multiplier (so the rate becomes lr*lr), and under manual optimisation its
scheduler is never stepped.
Paper setting: WRN-40-2 -> WRN-16-1, 300 epochs, q = 30, r = 1/4, lam1 = 1, lam2 = 10, batch 128,
three distilled layers (outputs of the three WRN groups).
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .methods import DistillMethod, build_sgd, feature_shapes, lr_multiplier, register_method
from .._checks import as_bool, as_choice, as_float, as_int, as_int_tuple
from .features import get_features, match_spatial, require_feature_model, select_stage_pairs, upcast

__all__ = [
    "RID",
    "rid_cycle_length",
    "rid_phase",
    "rid_is_warmup",
    "rid_schedule",
    "rid_lr_multiplier",
    "rid_sigma",
    "rid_phase1_loss",
    "rid_phase2_loss",
    "RIDTeacherFilter",
    "RIDStudentFilter",
    "RIDHead",
    "PAPER_EPOCHS",
    "PAPER_LR_MILESTONES",
    "PAPER_LR_GAMMA",
]

PAPER_EPOCHS = 300
PAPER_LR_MILESTONES = (150, 200)
PAPER_LR_GAMMA = 0.2
SIGMA_FLOOR = 1e-3
_TOL = 1e-9


# ---------------------------------------------------------------------------------------------
# Schedule: pure functions.
# ---------------------------------------------------------------------------------------------
def _check_r(r: Any) -> float:
    return as_float("r", r, low=0.0, high=1.0, low_open=True, high_open=True)


def rid_cycle_length(epochs: int, q: int | None = None, n_rounds: int | None = None,
                     r: float = 0.25) -> int:
    """Cycle length q: ``q`` if given, else ``epochs // n_rounds``; validated.

    Each cycle must contain at least one phase-1 epoch and one phase-2 epoch, i.e.
    1 <= ceil(r q) <= q - 1, and the run must reach phase 2 (ceil(r q) < epochs).

    Args:
        epochs: the run's length.
        q: cycle length in epochs (or give ``n_rounds``).
        n_rounds: number of cycles (``q = epochs // n_rounds``).
        r: fraction of each cycle in phase 1.

    Returns:
        ``q``.

    Raises:
        ValueError: both or neither of ``q`` and ``n_rounds``, or a schedule without a phase-2 epoch.
    """
    epochs = as_int("epochs", epochs, low=1)
    r = _check_r(r)
    if q is not None and n_rounds is not None:
        raise ValueError("give either q (cycle length in epochs) or n_rounds, not both")
    if q is None:
        if n_rounds is None:
            raise ValueError("give q (cycle length in epochs) or n_rounds (number of cycles)")
        n_rounds = as_int("n_rounds", n_rounds, low=1)
        q = epochs // n_rounds
        src = f" (= epochs // n_rounds = {epochs} // {n_rounds})"
    else:
        q = as_int("q", q, low=1)
        src = ""
    n1 = math.ceil(r * q - _TOL)
    if q < 2 or n1 > q - 1:
        raise ValueError(
            f"RID cycle length q={q}{src} with r={r} leaves no phase-2 epoch in a cycle "
            f"(phase 1 takes ceil(r*q)={n1} of {q} epochs); need q >= 2 and r <= 1 - 1/q. "
            f"Use more epochs, fewer n_rounds, or a smaller r.")
    if n1 >= epochs:
        raise ValueError(f"RID q={q}, r={r}: the first phase 1 lasts {n1} epochs, which is the "
                         f"whole run of {epochs} epochs; the student would never train. "
                         f"Use a smaller q or more epochs.")
    return q


def rid_phase(epoch: int, epochs: int, q: int | None = None, n_rounds: int | None = None,
              r: float = 0.25) -> int:
    """Phase (1 or 2) of 0-based ``epoch``: 1 iff ``epoch mod q < r*q``.

    So each cycle starts with ceil(r q) phase-1 epochs (r q within 1e-9 of an integer counts as
    that integer, so float noise such as 0.1*30 = 3.0000000000000004 gives 3, not 4).
    Example (paper): epochs=300, q=30, r=1/4 -> epochs 0..7 of every 30 are phase 1.

    Args:
        epoch: the 0-based epoch.
        epochs: the run's length.
        q: cycle length in epochs (or give ``n_rounds``).
        n_rounds: number of cycles (``q = epochs // n_rounds``).
        r: fraction of each cycle in phase 1.

    Returns:
        1 or 2.
    """
    q = rid_cycle_length(epochs, q=q, n_rounds=n_rounds, r=r)
    epoch = as_int("epoch", epoch, low=0)
    return 1 if (epoch % q) < float(r) * q - _TOL else 2


def rid_is_warmup(epoch: int, epochs: int, q: int | None = None, n_rounds: int | None = None,
                  r: float = 0.25) -> bool:
    """True in the warm-up: the first cycle's phase 1 (the V-term of phase 1 is off).

    Args:
        epoch: the 0-based epoch.
        epochs: the run's length.
        q: cycle length in epochs (or give ``n_rounds``).
        n_rounds: number of cycles (``q = epochs // n_rounds``).
        r: fraction of each cycle in phase 1.

    Returns:
        Whether ``epoch`` is in the warm-up.
    """
    qq = rid_cycle_length(epochs, q=q, n_rounds=n_rounds, r=r)
    return epoch < qq and rid_phase(epoch, epochs, q=qq, r=r) == 1


def rid_schedule(epochs: int, q: int | None = None, n_rounds: int | None = None,
                 r: float = 0.25) -> list[int]:
    """Phases of all epochs 0..epochs-1 (a list of 1s and 2s).

    Args:
        epochs: the run's length.
        q: cycle length in epochs (or give ``n_rounds``).
        n_rounds: number of cycles (``q = epochs // n_rounds``).
        r: fraction of each cycle in phase 1.

    Returns:
        One phase per epoch.
    """
    qq = rid_cycle_length(epochs, q=q, n_rounds=n_rounds, r=r)
    return [rid_phase(e, epochs, q=qq, r=r) for e in range(epochs)]


def rid_lr_multiplier(epoch: int, epochs: int = PAPER_EPOCHS,
                      milestones: Sequence[int] = PAPER_LR_MILESTONES,
                      gamma: float = PAPER_LR_GAMMA,
                      reference_epochs: int = PAPER_EPOCHS) -> float:
    """Paper learning-rate MULTIPLIER: ``gamma ** #{m : epoch >= m * epochs / reference_epochs}``.

    With the paper's 300 epochs: 1 for epochs 0..149, 0.2 for 150..199, 0.04 from 200
    (0.05 -> 0.01 -> 0.002 with base lr 0.05). Milestones scale with epochs / reference_epochs.

    Args:
        epoch: the 0-based epoch.
        epochs: the run's length.
        milestones: the paper's milestones (for ``reference_epochs`` epochs).
        gamma: the factor per milestone.
        reference_epochs: the run length the milestones are given for.

    Returns:
        The multiplier of the base learning rate.
    """
    scale = epochs / reference_epochs
    return float(gamma) ** sum(1 for m in milestones if epoch >= m * scale - 1e-9)


# ---------------------------------------------------------------------------------------------
# Losses: pure functions of tensors.
# ---------------------------------------------------------------------------------------------
def rid_sigma(a: torch.Tensor) -> torch.Tensor:
    """sigma_c = softplus(a_c) + 1e-3 (per-channel weight, not squared).

    Args:
        a: the free parameters.

    Returns:
        sigma, shaped like ``a``.
    """
    return F.softplus(a) + SIGMA_FLOOR


def _bcast(sigma: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    if sigma.dim() != 1 or sigma.shape[0] != ref.shape[1]:
        raise ValueError(f"sigma must have shape ({ref.shape[1]},), got {tuple(sigma.shape)}")
    return sigma.view(1, -1, *([1] * (ref.dim() - 2)))


def rid_phase1_loss(head_logits: Sequence[torch.Tensor], y: torch.Tensor,
                    diffs: Sequence[torch.Tensor], sigmas: Sequence[torch.Tensor],
                    warmup: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_1 = sum_k CE(y, head_k) + [not warmup] sum_k mean(V_k^2 / sigma_k)``.

    Args:
        head_logits: logits of each head.
        y: the labels.
        diffs: the filtered feature differences ``V_k``.
        sigmas: the per-channel ``sigma_k``.
        warmup: drop the V-term.

    Returns:
        ``(loss, {"head_ce", "v_term"})``.
    """
    ce = sum(F.cross_entropy(upcast(z), y) for z in head_logits)
    parts = {"head_ce": ce.detach()}
    if warmup:
        parts["v_term"] = ce.detach().new_zeros(())
        return ce, parts
    v = sum((upcast(d).pow(2) / _bcast(s, d)).mean() for d, s in zip(diffs, sigmas))
    parts["v_term"] = v.detach()
    return ce + v, parts


def rid_phase2_loss(student_logits: torch.Tensor, y: torch.Tensor,
                    diffs: Sequence[torch.Tensor], sigmas: Sequence[torch.Tensor],
                    lam1: float, lam2: float, sigma_penalty: str = "square",
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_2 = lam1 CE(y, z_s) + lam2 sum_k mean(pen(sigma_k) + V_k^2 / sigma_k)``.

    pen(sigma) = sigma^2 (``"square"``, methods.md / official code) or log sigma (``"log"``).

    Args:
        student_logits: the student's logits.
        y: the labels.
        diffs: the filtered feature differences ``V_k``.
        sigmas: the per-channel ``sigma_k``.
        lam1: weight of the cross-entropy.
        lam2: weight of the regulariser.
        sigma_penalty: ``"square"`` or ``"log"``.

    Returns:
        ``(loss, {"ce", "rid_reg"})``.
    """
    ce = F.cross_entropy(upcast(student_logits), y)
    reg = ce.new_zeros(())
    for d, s in zip(diffs, sigmas):
        d = upcast(d)
        sb = _bcast(s, d)
        pen = sb.pow(2) if sigma_penalty == "square" else torch.log(sb)
        reg = reg + (pen + d.pow(2) / sb).mean()
    loss = lam1 * ce + lam2 * reg
    return loss, {"ce": ce.detach(), "rid_reg": reg.detach()}


class _EpochLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """LambdaLR that does not warn when stepped in an epoch where its optimiser did not step
    (RID's phase-1 optimiser is idle in phase 2 and vice versa)."""

    def step(self, *args, **kwargs):  # noqa: D401
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            return super().step(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Modules.
# ---------------------------------------------------------------------------------------------
class RIDTeacherFilter(nn.Sequential):
    """f_t: conv1x1(C_t->C_t, no bias) -> BN -> ReLU -> conv1x1(C_t->C_f, no bias)."""

    def __init__(self, t_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(t_channels, t_channels, 1, bias=False),
                         nn.BatchNorm2d(t_channels), nn.ReLU(),
                         nn.Conv2d(t_channels, out_channels, 1, bias=False))


class RIDStudentFilter(nn.Sequential):
    """f_s: conv1x1(C_s->2C_s, no bias) -> BN -> ReLU -> conv1x1(2C_s->C_f, no bias)."""

    def __init__(self, s_channels: int, out_channels: int) -> None:
        super().__init__(nn.Conv2d(s_channels, 2 * s_channels, 1, bias=False),
                         nn.BatchNorm2d(2 * s_channels), nn.ReLU(),
                         nn.Conv2d(2 * s_channels, out_channels, 1, bias=False))


class RIDHead(nn.Sequential):
    """g_t: ReLU -> flatten -> Linear(C_f*H*W -> classes)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__(nn.ReLU(), nn.Flatten(), nn.Linear(in_features, num_classes))


@register_method
class RID(DistillMethod):
    """RID: alternating phases; phase 2 L = lam1*CE + lam2*sum_k mean(sigma^2 + V^2/sigma).

    Hyper-parameters (``--method-arg key=value``):
      q (int >= 2): cycle length in epochs; or n_rounds (int >= 1, default 10 when neither is
        given): q = epochs // n_rounds.
      r (0 < r < 1, default 0.25): fraction of each cycle spent in phase 1.
      lam1 (>= 0, default 1.0), lam2 (>= 0, default 10.0): weights of CE and the RID term.
      layers / teacher_layers: stage indices to pair (default: all stages, equal counts).
      filter_channels (default: the student stage's channels): C_f (one int or one per layer).
      sigma_init (default 5.0): initial a_c.  sigma_penalty: "square" (default) or "log".
      grad_clip (> 0, default 100): gradient-norm clip of each phase's step.
      nesterov (default true): Nesterov momentum for both SGD optimisers (momentum, weight decay
        and base lr come from the training config).
      lr_schedule: "paper" (default; :func:`rid_lr_multiplier`, milestones 150/200 of 300 scaled
        to the run, x0.2 each) or "config" (the training config's schedule).
      spatial_pool (default false): allow average-pooling filter outputs whose spatial sizes
        differ (otherwise construction fails with a clear error).
      image_size (default 32): input size used to probe stage shapes at construction.
      epochs: total epochs (normally taken from the training config in configure_optimizers).
    """

    name = "rid"
    requires_teacher = True
    requires_features = True
    defaults = {"q": None, "n_rounds": None, "r": 0.25, "lam1": 1.0, "lam2": 10.0,
                "layers": None, "teacher_layers": None, "filter_channels": None,
                "sigma_init": 5.0, "sigma_penalty": "square", "grad_clip": 100.0,
                "nesterov": True, "lr_schedule": "paper", "spatial_pool": False,
                "image_size": 32, "epochs": None}

    @classmethod
    def parse_hparams(cls, h: Mapping[str, Any]) -> dict[str, Any]:
        """Every setting that needs no model: ``r``, the weights (not both 0), the schedule (``q`` or
        ``n_rounds``, and ``epochs`` against them), ``sigma_*``, ``grad_clip``, flags, stage indices,
        ``filter_channels`` and ``image_size``.

        Args:
            h: the hyper-parameters completed by their defaults.

        Returns:
            The checked values (``n_rounds`` 10 when neither ``q`` nor ``n_rounds`` is given).

        Raises:
            ValueError: a value out of range, ``lam1 = lam2 = 0``, both ``q`` and ``n_rounds``, or a
                schedule the run length cannot hold.
            TypeError: a value of the wrong type.
        """
        p: dict[str, Any] = {"r": _check_r(h["r"]), "lam1": as_float("lam1", h["lam1"], low=0.0),
                             "lam2": as_float("lam2", h["lam2"], low=0.0)}
        if p["lam1"] == 0.0 and p["lam2"] == 0.0:
            raise ValueError("hyper-parameters lam1 and lam2 are both 0: the student would not "
                             "learn; set lam1 > 0 (e.g. lam1=1)")
        p["sigma_init"] = as_float("sigma_init", h["sigma_init"])
        p["sigma_penalty"] = as_choice("sigma_penalty", h["sigma_penalty"], ("square", "log"))
        p["grad_clip"] = as_float("grad_clip", h["grad_clip"], low=0.0, low_open=True)
        p["nesterov"] = as_bool("nesterov", h["nesterov"])
        p["lr_schedule"] = as_choice("lr_schedule", h["lr_schedule"], ("paper", "config"))
        p["spatial_pool"] = as_bool("spatial_pool", h["spatial_pool"])
        q, n_rounds = h["q"], h["n_rounds"]
        if q is not None and n_rounds is not None:
            raise ValueError("RID: give either q (cycle length in epochs) or n_rounds, not both")
        p["q"] = None if q is None else as_int("q", q, low=1)
        p["n_rounds"] = None if n_rounds is None else as_int("n_rounds", n_rounds, low=1)
        if p["q"] is None and p["n_rounds"] is None:
            p["n_rounds"] = 10
        if p["q"] is not None:
            # range check of q and r that does not need the run length
            rid_cycle_length(p["q"] + 1, q=p["q"], r=p["r"])
        p["epochs"] = None if h["epochs"] is None else as_int("epochs", h["epochs"], low=1)
        if p["epochs"] is not None:
            rid_cycle_length(p["epochs"], q=p["q"], n_rounds=None if p["q"] is not None else p["n_rounds"], r=p["r"])
        p["layers"] = as_int_tuple("layers", h["layers"])
        p["teacher_layers"] = as_int_tuple("teacher_layers", h["teacher_layers"])
        p["filter_channels"] = as_int_tuple("filter_channels", h["filter_channels"])
        p["image_size"] = as_int("image_size", h["image_size"], low=1)
        return p

    def __init__(self, student: nn.Module, teacher: nn.Module | None, num_classes: int,
                 **hparams: Any) -> None:
        super().__init__(student, teacher, num_classes, **hparams)
        p = self.parse_hparams(self.hparams)
        s_ch = require_feature_model(student, "student", self.name)
        t_ch = require_feature_model(teacher, "teacher", self.name)
        self.r, self.lam1, self.lam2 = p["r"], p["lam1"], p["lam2"]
        self.sigma_init, self.sigma_penalty, self.grad_clip = p["sigma_init"], p["sigma_penalty"], p["grad_clip"]
        self.nesterov, self.lr_schedule, self.spatial_pool = p["nesterov"], p["lr_schedule"], p["spatial_pool"]
        self.q_arg, self.n_rounds = p["q"], p["n_rounds"]
        self.epochs: int | None = None
        self.q: int | None = None
        if p["epochs"] is not None:
            self.set_epochs(p["epochs"])

        self.pairs = select_stage_pairs(self.name, s_ch, t_ch, p["layers"], p["teacher_layers"])
        fc = p["filter_channels"]
        if fc is not None and len(fc) not in (1, len(self.pairs)):
            raise ValueError(f"filter_channels must be one int or one per layer "
                             f"({len(self.pairs)}), got {fc}")
        size = p["image_size"]
        s_shapes = feature_shapes(student, size).stages
        t_shapes = feature_shapes(teacher, size).stages
        t_filters, s_filters, heads, a = [], [], [], []
        for k, (i, j) in enumerate(self.pairs):
            cs, hs, ws = s_shapes[i]
            ct, ht, wt = t_shapes[j]
            if (hs, ws) != (ht, wt) and not self.spatial_pool:
                raise ValueError(
                    f"RID cannot match layer pair {k}: student stage {i} has spatial size "
                    f"{hs}x{ws} but teacher stage {j} has {ht}x{wt}, so V = f_t(T) - f_s(S) is "
                    f"undefined. Choose stages of equal size with layers=/teacher_layers=, or "
                    f"allow average pooling with spatial_pool=true.")
            cf = cs if fc is None else fc[0 if len(fc) == 1 else k]
            if cf < 1:
                raise ValueError(f"filter_channels must be >= 1, got {cf}")
            t_filters.append(RIDTeacherFilter(ct, cf))
            s_filters.append(RIDStudentFilter(cs, cf))
            heads.append(RIDHead(cf * ht * wt, num_classes))
            a.append(nn.Parameter(torch.full((cf,), self.sigma_init)))
        self.teacher_filters = nn.ModuleList(t_filters)
        self.student_filters = nn.ModuleList(s_filters)
        self.heads = nn.ModuleList(heads)
        self.sigma_params = nn.ParameterList(a)
        p = next(iter(student.parameters()), None)
        if p is not None:
            self.to(p.device)

    # -- schedule -------------------------------------------------------------------------
    def set_epochs(self, epochs: int) -> None:
        """Fix the run length (resolves q from n_rounds and validates the schedule).

        Args:
            epochs: the run's length.
        """
        self.q = rid_cycle_length(epochs, q=self.q_arg,
                                  n_rounds=None if self.q_arg is not None else self.n_rounds,
                                  r=self.r)
        self.epochs = int(epochs)

    def _require_epochs(self) -> int:
        if self.q is None or self.epochs is None:
            raise RuntimeError("RID needs the total number of epochs to place its phases: "
                               "call configure_optimizers(student, cfg) or pass epochs=...")
        return self.epochs

    def phase(self, epoch: int) -> int:
        """1 or 2 (see :func:`rid_phase`).

        Args:
            epoch: the 0-based epoch.

        Returns:
            The phase.
        """
        return rid_phase(epoch, self._require_epochs(), q=self.q, r=self.r)

    def is_warmup(self, epoch: int) -> bool:
        """Whether ``epoch`` is in the warm-up (see :func:`rid_is_warmup`).

        Args:
            epoch: the 0-based epoch.

        Returns:
            True in the first cycle's phase 1.
        """
        return rid_is_warmup(epoch, self._require_epochs(), q=self.q, r=self.r)

    def sigmas(self) -> list[torch.Tensor]:
        """The per-channel ``sigma_k`` of every stage pair (:func:`rid_sigma`).

        Returns:
            One tensor per stage pair.
        """
        return [rid_sigma(a) for a in self.sigma_params]

    # -- parameter groups and optimisation ------------------------------------------------
    def phase1_parameters(self) -> list[nn.Parameter]:
        """Teacher filters and heads.

        Returns:
            Their parameters.
        """
        return list(self.teacher_filters.parameters()) + list(self.heads.parameters())

    def phase2_parameters(self, student: nn.Module) -> list[nn.Parameter]:
        """Student, student filters and sigma.

        Args:
            student: the student.

        Returns:
            Their parameters.
        """
        return (list(student.parameters()) + list(self.student_filters.parameters())
                + list(self.sigma_params.parameters()))

    def configure_optimizers(self, student: nn.Module, cfg: Any) -> list[torch.optim.Optimizer]:
        """[phase-1 SGD (teacher filters, heads), phase-2 SGD (student, student filters, sigma)].

        Args:
            student: the student.
            cfg: the training config (fixes the run length).

        Returns:
            The two optimisers.
        """
        if self.epochs is None or self.epochs != int(cfg.epochs):
            self.set_epochs(int(cfg.epochs))
        return [build_sgd(self.phase1_parameters(), cfg, nesterov=self.nesterov),
                build_sgd(self.phase2_parameters(student), cfg, nesterov=self.nesterov)]

    def configure_schedulers(self, optimizers, cfg):
        """Per-epoch LambdaLR with the paper's multipliers (or the config's schedule).

        Both schedulers are stepped every epoch, also in epochs where their optimiser does not
        step (the schedule is a function of the epoch, not of the optimiser's steps).

        Args:
            optimizers: the two optimisers.
            cfg: the training config.

        Returns:
            One scheduler per optimiser.
        """
        epochs = int(cfg.epochs)
        if self.lr_schedule == "config":
            return [_EpochLambdaLR(o, lambda e: lr_multiplier(e, cfg)) for o in optimizers]
        return [_EpochLambdaLR(o, lambda e: rid_lr_multiplier(e, epochs)) for o in optimizers]

    # -- forward pieces -----------------------------------------------------------------------
    def _diffs(self, ft: Sequence[torch.Tensor], fs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for a, b in zip(ft, fs):
            if a.shape[-2:] != b.shape[-2:]:
                b, a = match_spatial(b, a)
            out.append(a - b)
        return out

    def _stages(self, out, which: str, idx: int) -> list[torch.Tensor]:
        out = get_features(out, which, self.name)
        return [out.stages[p[idx]] for p in self.pairs]

    def loss(self, x, y, s_out, t_out, epoch):
        """Phase-2 (student) objective ``L_2``; differentiable in the student, its filters and
        sigma; the teacher filters' output is detached.
        Args:
            x: the normalised (augmented) input batch.
            y: the labels.
            s_out: the student's output (logits, or a :class:`FeatureOutput`).
            t_out: the teacher's output on ``x`` (``None`` when the method needs no teacher).
            epoch: the 0-based epoch.

        Returns:
            ``(loss, parts)``: the scalar loss and its named parts (detached).
        """
        t_st = self._stages(t_out, "teacher", 1)
        s_st = self._stages(s_out, "student", 0)
        ft = [f(t.detach()).detach() for f, t in zip(self.teacher_filters, t_st)]
        fs = [f(s) for f, s in zip(self.student_filters, s_st)]
        loss, parts = rid_phase2_loss(s_out.logits, y, self._diffs(ft, fs), self.sigmas(),
                                      self.lam1, self.lam2, self.sigma_penalty)
        return loss, parts

    def training_step(self, x, y, student, teacher, optimizers, epoch, step_ctx):
        """One step of the phase of ``epoch``: phase 1 steps optimizers[0], phase 2 optimizers[1].

        Student, filters and heads run in train mode; the frozen ones of the phase under no_grad
        with their buffers restored afterwards (see the module docstring).

        Args:
            x: the input batch.
            y: the labels.
            student: the student.
            teacher: the teacher.
            optimizers: the two optimisers of :meth:`configure_optimizers`.
            epoch: the 0-based epoch.
            step_ctx: autocast, gradient clipping and the config.

        Returns:
            ``{"loss", "acc", "phase", **parts}`` (detached).

        Raises:
            ValueError: not two optimisers, or no teacher.
        """
        if len(optimizers) != 2:
            raise ValueError(f"RID needs its two optimisers from configure_optimizers; got "
                             f"{len(optimizers)}")
        if teacher is None:
            raise ValueError("method 'rid' needs a teacher")
        if self.epochs is None:
            self.set_epochs(int(step_ctx.cfg.epochs))
        phase = self.phase(epoch)
        warm = self.is_warmup(epoch)
        modules = (student, self.student_filters, self.teacher_filters, self.heads)
        saved_modes = [(m, m.training) for m in modules]
        for m in modules:
            m.train()
        frozen = (student, self.student_filters) if phase == 1 else (self.teacher_filters,)
        saved_buffers = [(b, b.detach().clone()) for m in frozen for b in m.buffers()]
        try:
            with step_ctx.autocast():
                with torch.no_grad():
                    t_out = teacher(x, return_features=True)
                t_st = self._stages(t_out, "teacher", 1)
                if phase == 1:
                    with torch.no_grad():
                        s_out = student(x, return_features=True)
                        fs = ([] if warm else
                              [f(s) for f, s in zip(self.student_filters,
                                                    self._stages(s_out, "student", 0))])
                    ft = [f(t) for f, t in zip(self.teacher_filters, t_st)]
                    logits = [g(z) for g, z in zip(self.heads, ft)]
                    sig = [s.detach() for s in self.sigmas()]
                    loss, parts = rid_phase1_loss(logits, y, [] if warm else self._diffs(ft, fs),
                                                  sig, warm)
                    opt = optimizers[0]
                else:
                    with torch.no_grad():
                        ft = [f(t) for f, t in zip(self.teacher_filters, t_st)]
                    s_out = student(x, return_features=True)
                    fs = [f(s) for f, s in zip(self.student_filters,
                                               self._stages(s_out, "student", 0))]
                    loss, parts = rid_phase2_loss(s_out.logits, y, self._diffs(ft, fs),
                                                  self.sigmas(), self.lam1, self.lam2,
                                                  self.sigma_penalty)
                    opt = optimizers[1]
            step_ctx.backward_and_step(loss, opt, clip=self.grad_clip)
        finally:
            with torch.no_grad():
                for b, v in saved_buffers:
                    b.copy_(v)
            for m, was in saved_modes:
                m.train(was)
        acc = (s_out.logits.detach().argmax(1) == y).float().mean()
        return {"loss": loss.detach(), "acc": acc, "phase": float(phase), **parts}
