"""The distillation-method interface, its registry, and the built-in ``"ce"`` method.

A method is an ``nn.Module`` subclass of :class:`DistillMethod`, registered by name::

    @register_method
    class MyMethod(DistillMethod):
        name = "mine"
        requires_teacher = True          # trainer refuses to run it without a teacher
        requires_features = True         # s_out / t_out are FeatureOutput instead of logits
        defaults = {"beta": 1.0}         # every accepted hyper-parameter with its default

        def __init__(self, student, teacher, num_classes, **hparams):
            super().__init__(student, teacher, num_classes, **hparams)   # validates -> self.hparams
            self.regressor = nn.Conv2d(...)    # own parameters: trained with the student by default

        def loss(self, x, y, s_out, t_out, epoch):
            ...
            return total, {"ce": ce.detach(), "feat": feat.detach()}

Contract with the trainer (:func:`kdbounds.distill.trainer.train`):

* ``__init__`` gets the student and the (frozen, eval-mode) teacher so it can read
  ``stage_channels`` / ``feature_dim`` or probe shapes (:func:`feature_shapes`). It must **not**
  keep them as sub-modules (``self.student = student`` would put the student into the method's
  state_dict and parameters); keep plain Python references if needed, e.g. ``self._t = [teacher]``.
* The method module is moved to the training device and put in train mode for training; its own
  parameters/buffers are checkpointed with ``method.state_dict()``.
* Default step (:meth:`DistillMethod.training_step`): student forward (train mode), teacher forward
  under ``torch.no_grad()`` (only when ``requires_teacher`` and a teacher exists), ``loss(...)``,
  backward, optional grad-norm clip, ``optimizers[0].step()``. Optimisers: one SGD over student +
  method parameters (:meth:`configure_optimizers`); schedulers: one per optimiser, stepped once per
  epoch (:meth:`configure_schedulers`). Override these three for full control (e.g. RID's two
  alternating optimisers); :meth:`on_epoch_start` is called before each epoch.
* ``training_step`` returns a dict with at least ``"loss"`` (batch-mean objective) and ``"acc"``
  (student batch accuracy); values are Python floats or 0-dim detached tensors (tensors avoid a
  GPU sync per step). The trainer averages every key over the epoch, weighted by batch size, and
  raises :class:`TrainingDiverged` when ``"loss"`` is not finite.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import as_bool, as_float, as_int, check_int
from ..models.base import FeatureOutput

__all__ = [
    "DistillMethod",
    "StepContext",
    "TrainingDiverged",
    "available_methods",
    "check_method_hparams",
    "build_method",
    "build_scheduler",
    "build_sgd",
    "coerce_hparams",
    "describe_methods",
    "feature_shapes",
    "get_method",
    "logits_of",
    "lr_multiplier",
    "register_method",
    "CEMethod",
]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN/inf; the checkpoint of the last good epoch is kept."""


def logits_of(out: Tensor | FeatureOutput) -> Tensor:
    """Logits from a model output (plain logits or :class:`FeatureOutput`).

    Args:
        out: the model's output.

    Returns:
        The logits.
    """
    return out.logits if isinstance(out, FeatureOutput) else out


@torch.no_grad()
def feature_shapes(model: nn.Module, image_size: int = 32) -> FeatureOutput:
    """Shapes (without batch dim) of ``model(x, return_features=True)`` for one image.

    Runs a 2-image forward in eval mode on the model's device and restores the previous mode, so
    BatchNorm statistics are untouched.

    Args:
        model: a model that accepts ``return_features=True``.
        image_size: side of the square RGB test image.

    Returns:
        A ``FeatureOutput`` of ``torch.Size`` objects.
    """
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        out = model(torch.zeros(2, 3, image_size, image_size, device=device), return_features=True)
    finally:
        model.train(was_training)
    return FeatureOutput(out.logits.shape[1:], [s.shape[1:] for s in out.stages], out.pooled.shape[1:])


# ----------------------------------------------------------------------------- optimisation helpers

def lr_multiplier(epoch: int, cfg: Any, milestones: Sequence[int] | None = None) -> float:
    r"""Learning-rate multiplier for 0-based ``epoch`` under ``cfg.schedule``.

    step (epoch ``m`` is the first one at the lower rate, as in RepDistiller's 150/180/210), cosine,
    constant (1):

    .. math::
        \gamma^{\#\{m \in \mathrm{milestones} : m \le e\}}, \qquad
        \tfrac12\bigl(1 + \cos(\pi e / \mathrm{epochs})\bigr), \qquad 1.

    Args:
        epoch: the 0-based epoch ``e``.
        cfg: a :class:`TrainConfig` (``schedule``, ``lr_gamma``, ``epochs``, milestones).
        milestones: override ``cfg``'s milestones.

    Returns:
        The multiplier of the base learning rate.
    """
    if cfg.schedule == "step":
        ms = cfg.effective_milestones if milestones is None else tuple(milestones)
        return float(cfg.lr_gamma) ** sum(1 for m in ms if epoch >= m)
    if cfg.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs))
    return 1.0


def build_sgd(params: Iterable[nn.Parameter], cfg: Any, lr: float | None = None,
              nesterov: bool | None = None, weight_decay: float | None = None) -> torch.optim.SGD:
    """SGD(lr, momentum, weight_decay, nesterov) from a :class:`TrainConfig` (overridable).

    Args:
        params: the parameters (those without ``requires_grad`` are dropped).
        cfg: the training config.
        lr: override ``cfg.lr``.
        nesterov: override ``cfg.nesterov`` (Nesterov needs momentum > 0).
        weight_decay: override ``cfg.weight_decay``.

    Returns:
        The optimiser.

    Raises:
        ValueError: no trainable parameter.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("build_sgd: no trainable parameters were given")
    nest = cfg.nesterov if nesterov is None else nesterov
    return torch.optim.SGD(
        params, lr=cfg.lr if lr is None else lr, momentum=cfg.momentum,
        weight_decay=cfg.weight_decay if weight_decay is None else weight_decay,
        nesterov=bool(nest and cfg.momentum > 0),
    )


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Any,
                    milestones: Sequence[int] | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-epoch ``LambdaLR`` with :func:`lr_multiplier` (a multiplier of the base lr).

    Args:
        optimizer: the optimiser scheduled.
        cfg: the training config.
        milestones: override ``cfg``'s milestones.

    Returns:
        The scheduler (step it once per epoch).
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_multiplier(e, cfg, milestones))


@dataclass
class StepContext:
    """What the trainer hands to ``training_step`` besides the batch.

    Attributes: ``device``; ``amp_dtype`` (autocast dtype, None = full precision); ``grad_clip``
    (max global grad norm or None); ``epoch``/``batch_index`` (0-based), ``global_step``,
    ``steps_per_epoch``; ``cfg`` (the :class:`TrainConfig`).
    """

    device: torch.device
    amp_dtype: torch.dtype | None = None
    grad_clip: float | None = None
    epoch: int = 0
    batch_index: int = 0
    global_step: int = 0
    steps_per_epoch: int = 0
    cfg: Any = None

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context (no-op unless AMP is on, which the trainer allows on CUDA only).

        Returns:
            The context manager.
        """
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def backward_and_step(self, loss: Tensor, optimizer: torch.optim.Optimizer,
                          clip: float | None = None) -> None:
        """``optimizer.zero_grad(); loss.backward(); clip; optimizer.step()``.

        Args:
            loss: the scalar loss.
            optimizer: the optimiser stepped.
            clip: global L2 gradient-norm clip over the optimiser's parameters (overrides
                ``self.grad_clip``; ``None``: that one).
        """
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        c = self.grad_clip if clip is None else clip
        if c is not None:
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, c)
        optimizer.step()


# ----------------------------------------------------------------------------- hyper-parameters

def coerce_hparams(method: str, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``given`` into ``defaults``; reject unknown names; coerce to the default's type.

    Strings (from the command line) are parsed as the default's type (bool: true/false/1/0).

    Args:
        method: the method's name (for messages).
        defaults: hyper-parameter name -> default value.
        given: the values given.

    Returns:
        The merged hyper-parameters.

    Raises:
        ValueError: an unknown name, or a value that cannot be coerced to the default's type.
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in defaults.items()) or "(none)"
        raise ValueError(f"method {method!r}: unknown hyper-parameter(s) {unknown}; valid ones with "
                         f"defaults: {valid}")
    coerce = {bool: as_bool, int: as_int, float: as_float}
    out = dict(defaults)
    for k, v in given.items():
        d = defaults[k]
        try:
            out[k] = v if d is None else coerce[type(d)](k, v) if type(d) in coerce else type(d)(v)
        except (TypeError, ValueError):
            what = "must be finite" if isinstance(d, float) and _non_finite(v) else \
                f"must be of type {type(d).__name__} (default {d!r})"
            raise ValueError(f"method {method!r}: hyper-parameter {k}={v!r} {what}") from None
    return out


def _non_finite(v: Any) -> bool:
    """Whether ``v`` reads as a number that is NaN or infinite."""
    try:
        return not math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------- base class

class DistillMethod(nn.Module):
    """Base class of training methods (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    requires_teacher: ClassVar[bool] = True
    requires_features: ClassVar[bool] = False
    defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, student: nn.Module, teacher: nn.Module | None, num_classes: int,
                 **hparams: Any) -> None:
        super().__init__()
        if self.requires_teacher and teacher is None:
            raise ValueError(f"method {self.name!r} needs a teacher: pass a teacher model / "
                             f"--teacher CKPT, or use method 'ce' to train without one")
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        self.hparams: dict[str, Any] = coerce_hparams(self.name, self.defaults, hparams)
        self.check_hparams(self.hparams)

    @classmethod
    def check_hparams(cls, hparams: Mapping[str, Any]) -> None:
        """Validate hyper-parameters that need no model (called by ``__init__``, by
        :func:`~kdbounds.distill.train` and by the command line before the teacher or any data is
        loaded). Default: :meth:`parse_hparams` (whatever it raises).

        Args:
            hparams: the hyper-parameters completed by their defaults.

        Raises:
            ValueError: in subclasses, a value the method cannot run with (naming it).
            TypeError: in subclasses, a value of the wrong type (naming it).
        """
        cls.parse_hparams(hparams)

    @classmethod
    def parse_hparams(cls, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """The hyper-parameters checked and coerced to what the method uses (no model needed), the
        one place a method validates them: ``__init__`` reads its settings from here, so the early
        check and the method cannot disagree. Default: ``dict(hparams)``.

        Args:
            hparams: the hyper-parameters completed by their defaults.

        Returns:
            The checked values by name.

        Raises:
            ValueError: in subclasses, a value the method cannot run with (naming it).
            TypeError: in subclasses, a value of the wrong type (naming it).
        """
        return dict(hparams)

    # -- the one thing most methods implement
    def loss(self, x: Tensor, y: Tensor, s_out: Tensor | FeatureOutput,
             t_out: Tensor | FeatureOutput | None, epoch: int) -> tuple[Tensor, dict[str, Any]]:
        """Return ``(scalar loss, {part name: float or detached 0-dim tensor})``.

        Args:
            x: the normalised (augmented) input batch.
            y: the labels.
            s_out: the student's output (logits, or a :class:`FeatureOutput`).
            t_out: the teacher's output on ``x`` (``None`` when the method needs no teacher).
            epoch: the 0-based epoch.

        Returns:
            ``(loss, parts)``.

        Raises:
            NotImplementedError: a subclass must define it.
        """
        raise NotImplementedError

    # -- overridable pieces of the training loop
    def configure_optimizers(self, student: nn.Module, cfg: Any) -> list[torch.optim.Optimizer]:
        """Default: one SGD over the student's and this method's parameters.

        Args:
            student: the student.
            cfg: the training config.

        Returns:
            The optimisers (one here).
        """
        return [build_sgd(list(student.parameters()) + list(self.parameters()), cfg)]

    def configure_schedulers(self, optimizers: Sequence[torch.optim.Optimizer], cfg: Any) -> list[Any]:
        """Default: one per-epoch schedule (``cfg.schedule``) per optimiser.

        Args:
            optimizers: the optimisers of :meth:`configure_optimizers`.
            cfg: the training config.

        Returns:
            The schedulers, one per optimiser.
        """
        return [build_scheduler(o, cfg) for o in optimizers]

    def on_epoch_start(self, epoch: int, student: nn.Module, teacher: nn.Module | None) -> None:
        """Hook called by the trainer before each epoch (0-based). Default: nothing.

        Args:
            epoch: the 0-based epoch.
            student: the student.
            teacher: the teacher (``None`` without one).
        """

    def training_step(self, x: Tensor, y: Tensor, student: nn.Module, teacher: nn.Module | None,
                      optimizers: Sequence[torch.optim.Optimizer], epoch: int,
                      step_ctx: StepContext) -> dict[str, Any]:
        """Standard single-optimiser step.

        Args:
            x: the input batch.
            y: the labels.
            student: the student.
            teacher: the teacher (``None`` without one).
            optimizers: the optimisers (the first is stepped).
            epoch: the 0-based epoch.
            step_ctx: autocast and gradient clipping.

        Returns:
            ``{"loss", "acc", **parts}`` (detached).
        """
        with step_ctx.autocast():
            s_out = student(x, return_features=self.requires_features)
            t_out = None
            if teacher is not None and self.requires_teacher:
                with torch.no_grad():
                    t_out = teacher(x, return_features=self.requires_features)
            loss, parts = self.loss(x, y, s_out, t_out, epoch)
        step_ctx.backward_and_step(loss, optimizers[0])
        acc = (logits_of(s_out).detach().argmax(1) == y).float().mean()
        return {"loss": loss.detach(), "acc": acc, **parts}

    @classmethod
    def describe(cls) -> str:
        """One line: name, first docstring line, teacher or not, hyper-parameters with defaults.

        Returns:
            The line.
        """
        doc = (cls.__doc__ or "").strip().splitlines()
        head = doc[0] if doc else ""
        hp = ", ".join(f"{k}={v!r}" for k, v in cls.defaults.items()) or "no hyper-parameters"
        t = "teacher" if cls.requires_teacher else "no teacher"
        return f"{cls.name:10s} {head}  [{t}; {hp}]"

    def extra_repr(self) -> str:
        """The hyper-parameters, for ``repr``.

        Returns:
            ``"name=value, ..."``.
        """
        return ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())


# ----------------------------------------------------------------------------- registry

_METHODS: dict[str, type[DistillMethod]] = {}



def check_method_hparams(method: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The hyper-parameters of ``method`` completed by its defaults, coerced and checked by the method's
    :meth:`~DistillMethod.check_hparams` — what the trainer, the run cache's workers and the command
    line call before a teacher or any data is loaded.

    Args:
        method: a registered method's name.
        given: the hyper-parameters given (e.g. ``TrainConfig.method_kwargs``).

    Returns:
        The completed hyper-parameters.

    Raises:
        ValueError: an unknown method or name, or a value the method cannot run with (named).
        TypeError: a value of the wrong type (named).
    """
    cls = get_method(method)
    hp = coerce_hparams(method, cls.defaults, given)
    cls.check_hparams(hp)
    return hp

def register_method(cls: type[DistillMethod]) -> type[DistillMethod]:
    """Class decorator: register ``cls`` under ``cls.name``.

    Args:
        cls: a :class:`DistillMethod` subclass with a non-empty ``name``.

    Returns:
        ``cls``.

    Raises:
        TypeError: ``cls`` is not a ``DistillMethod`` subclass.
        ValueError: empty name, or the name is taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, DistillMethod)):
        raise TypeError(f"register_method expects a DistillMethod subclass; got {cls!r}")
    if not isinstance(cls.name, str) or not cls.name:
        raise ValueError(f"{cls.__name__}.name must be a non-empty string")
    old = _METHODS.get(cls.name)
    if old is not None and old.__qualname__ != cls.__qualname__:
        raise ValueError(f"method name {cls.name!r} is already registered by {old.__qualname__}")
    _METHODS[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Registered method names, sorted.

    Returns:
        The names.
    """
    return sorted(_METHODS)


def get_method(name: str) -> type[DistillMethod]:
    """The method class registered under ``name``.

    Args:
        name: a registered name.

    Returns:
        The class.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if not isinstance(name, str) or name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(available_methods())}")
    return _METHODS[name]


def build_method(name: str, student: nn.Module, teacher: nn.Module | None, num_classes: int,
                 **hparams: Any) -> DistillMethod:
    """``get_method(name)(student, teacher, num_classes, **hparams)``.

    Args:
        name: a registered method name.
        student: the student.
        teacher: the teacher (``None`` for a method without one).
        num_classes: classes.
        **hparams: the method's hyper-parameters (unknown names are refused).

    Returns:
        The method (an ``nn.Module``).
    """
    return get_method(name)(student, teacher, num_classes, **hparams)


def describe_methods() -> str:
    """One line per registered method (used by ``--list-methods``).

    Returns:
        The lines, joined.
    """
    return "\n".join(_METHODS[n].describe() for n in available_methods())


# ----------------------------------------------------------------------------- built-in: ce

@register_method
class CEMethod(DistillMethod):
    """Student alone: cross-entropy with the labels, L = CE(y, softmax(z_s)) (label_smoothing eps)."""

    name = "ce"
    requires_teacher = False
    defaults = {"label_smoothing": 0.0}

    def __init__(self, student: nn.Module, teacher: nn.Module | None, num_classes: int, **hparams: Any):
        super().__init__(student, teacher, num_classes, **hparams)
        as_float("label_smoothing", self.hparams["label_smoothing"], low=0.0, high=1.0, high_open=True)

    def loss(self, x, y, s_out, t_out, epoch):
        """Cross-entropy with the labels.
        Args:
            x: the normalised (augmented) input batch.
            y: the labels.
            s_out: the student's output (logits, or a :class:`FeatureOutput`).
            t_out: the teacher's output on ``x`` (``None`` when the method needs no teacher).
            epoch: the 0-based epoch.

        Returns:
            ``(loss, parts)``: the scalar loss and its named parts (detached).
        """
        ce = F.cross_entropy(logits_of(s_out).float(), y, label_smoothing=self.hparams["label_smoothing"])
        return ce, {"ce": ce.detach()}
