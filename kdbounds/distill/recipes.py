r"""Training recipes: the standard one (per-epoch schedule, the method's optimisers) and the fast one.

The **fast recipe** (``TrainConfig.recipe="fast"``) is airbench94's (Jordan 2024, arXiv 2404.00498;
docs/methods.md, "Fast CIFAR-10 training"), written from the published techniques and ported to float32 on
a CPU. It is orthogonal to the distillation method: a teacher is ``method="ce"`` (label smoothing 0.2), a
student any single-optimiser method (``kd``, ``ce``, …) under the same recipe. What it changes:

* **whitening** (:func:`~kdbounds.models.airbench.whitening_weights`): before training, the first layer's
  weights are set from the patch covariance of the first ``whiten_images`` training images and frozen; its
  bias trains for ``whiten_bias_epochs`` epochs, then is frozen too;
* **optimiser**: one SGD (Nesterov) with BatchNorm biases at ``bias_lr_scale ×`` the learning rate;
* **schedule**: the triangular multiplier of
  :func:`~kdbounds.distill.recipe_settings.triangular_multiplier`, set **before every step**;
* **lookahead** (:class:`Lookahead`): every ``k`` steps, with :math:`\beta_t = d^k (t/T)^3`,

  .. math:: \bar w \leftarrow \beta_t \bar w + (1 - \beta_t) w, \qquad w \leftarrow \bar w

  over every float tensor of the state (BatchNorm running statistics included); after the last step
  :math:`\beta = 1` (the network ends at :math:`\bar w`);
* **data**: translations by up to ``translate`` pixels with reflect padding and alternating flips
  (:class:`~kdbounds.data.transforms.TensorLoader`);
* **evaluation**: the network's own test accuracy (what every bound speaks of) and, reported separately,
  the accuracy with test-time augmentation (:func:`tta_logits`).

The trainer (:mod:`kdbounds.distill.trainer`) calls a recipe's hooks; the recipe's state (the lookahead
average) is part of the checkpoint, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import check_int
from .config import TrainConfig
from .fast_config import fast_config
from .recipe_settings import FastRecipeSettings, triangular_multiplier, whitening_indices

__all__ = ["FastRecipe", "Lookahead", "Recipe", "build_recipe", "evaluate_tta", "fast_config", "tta_logits"]


class Recipe:
    """The standard recipe: the method's optimisers and per-epoch schedulers, no per-step hooks."""

    def prepare_student(self, student: nn.Module, train_x: Any, cfg: TrainConfig) -> None:
        """Hook after the student is built, before the optimisers (default: nothing).

        Args:
            student: the freshly built student.
            train_x: the run's uint8 ``N × 32 × 32 × 3`` training images.
            cfg: the config.
        """

    def loader_options(self) -> dict[str, Any]:
        """Augmentation options of the training loader (default: the loader's own defaults).

        Returns:
            Keyword arguments of :class:`~kdbounds.data.transforms.TensorLoader`.
        """
        return {}

    def optimizers(self, method: nn.Module, student: nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
        """The optimisers (default: the method's).

        Args:
            method: the distillation method.
            student: the student.
            cfg: the config.

        Returns:
            The optimisers.
        """
        return method.configure_optimizers(student, cfg)

    def schedulers(self, method: nn.Module, optimizers: Sequence[torch.optim.Optimizer], cfg: TrainConfig) -> list[Any]:
        """Per-epoch schedulers (default: the method's).

        Args:
            method: the distillation method.
            optimizers: the optimisers.
            cfg: the config.

        Returns:
            The schedulers (stepped once per epoch by the trainer).
        """
        return method.configure_schedulers(optimizers, cfg)

    def before_step(self, student: nn.Module, optimizers: Sequence[torch.optim.Optimizer], epoch: int,
                    step: int, total: int) -> None:
        """Hook before the training step ``step`` (0-based, of ``total``). Default: nothing.

        Args:
            student: the student.
            optimizers: the optimisers.
            epoch: the 0-based epoch.
            step: the global 0-based step.
            total: the number of steps of the run.
        """

    def after_step(self, student: nn.Module, step: int, total: int) -> None:
        """Hook after the training step ``step``. Default: nothing.

        Args:
            student: the student.
            step: the global 0-based step just taken.
            total: the number of steps of the run.
        """

    def tta_level(self) -> int:
        """Test-time augmentation level of the separately reported accuracy (0: none).

        Returns:
            0 here.
        """
        return 0

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (default: none).

        Returns:
            The state.
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Args:
            state: the state.
        """


class Lookahead:
    r"""The lookahead average :math:`\bar w` of a module's float state (formula in the module docstring).

    Args:
        module: the network whose ``state_dict()`` float tensors are averaged (copied now).
    """

    def __init__(self, module: nn.Module) -> None:
        self.average = {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, module: nn.Module, decay: float) -> None:
        r""":math:`\bar w \leftarrow \beta \bar w + (1 - \beta) w`, then :math:`w \leftarrow \bar w`.

        Args:
            module: the network (its tensors are overwritten in place).
            decay: :math:`\beta \in [0, 1]`.
        """
        state = module.state_dict()
        for k, avg in self.average.items():
            avg.lerp_(state[k], 1.0 - decay)
            state[k].copy_(avg)

    def state_dict(self) -> dict[str, Tensor]:
        """The average, for the checkpoint.

        Returns:
            name -> tensor.
        """
        return {k: v.clone() for k, v in self.average.items()}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore the average.

        Args:
            state: name -> tensor, as :meth:`state_dict` wrote it.

        Raises:
            ValueError: the names differ from the module's float tensors.
        """
        if set(state) != set(self.average):
            raise ValueError("lookahead state does not match the network's tensors; was the architecture changed?")
        for k, v in state.items():
            self.average[k].copy_(v)


def _norm_biases(student: nn.Module) -> list[nn.Parameter]:
    ids = set()
    for m in student.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.bias is not None and m.bias.requires_grad:
            ids.add(id(m.bias))
    return [p for p in student.parameters() if id(p) in ids]


class FastRecipe(Recipe):
    """airbench94's recipe (module docstring).

    Args:
        settings: its switches.
    """

    def __init__(self, settings: FastRecipeSettings) -> None:
        self.settings = settings
        self.lookahead: Lookahead | None = None

    def prepare_student(self, student: nn.Module, train_x: Any, cfg: TrainConfig) -> None:
        """Whitening from a seeded random subset of the training images (frozen), then the lookahead average.

        Args:
            student: the freshly built student.
            train_x: the run's uint8 ``N × 32 × 32 × 3`` training images.
            cfg: the config (dataset normalisation).

        Raises:
            ValueError: whitening is on but the network has no whitening layer (``set_whitening``).
        """
        s = self.settings
        if s.whiten and cfg.init_ckpt is None:
            if not hasattr(student, "set_whitening"):
                raise ValueError(f"recipe_kwargs whiten=True needs a network with a whitening layer "
                                 f"(airbench94, airbench_m, airbench_s); {cfg.arch!r} has none: pass "
                                 f"recipe_kwargs={{'whiten': False}}")
            from ..data.transforms import normalization, normalize_uint8
            from ..models.airbench import whitening_weights

            idx = whitening_indices(len(train_x), s.whiten_images, cfg.seed)
            x = torch.as_tensor(train_x[idx]).permute(0, 3, 1, 2).to(student.whiten.weight.device)
            mean, std = normalization(cfg.dataset)
            student.set_whitening(whitening_weights(normalize_uint8(x, mean, std), eps=s.whiten_eps))
        elif s.whiten and hasattr(student, "whiten"):
            student.whiten.weight.requires_grad_(False)  # started from a checkpoint: keep its whitening
        if s.lookahead:
            self.lookahead = Lookahead(student)

    def loader_options(self) -> dict[str, Any]:
        """Reflect-padded translations and the configured flips.

        Returns:
            ``{"padding", "pad_mode", "flip"}``.
        """
        return {"padding": self.settings.translate, "pad_mode": "reflect", "flip": self.settings.flip}

    def optimizers(self, method: nn.Module, student: nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
        """One Nesterov SGD: BatchNorm biases at ``bias_lr_scale × lr`` (decay divided by it), the rest at ``lr``.

        Args:
            method: the distillation method (its own parameters join the main group).
            student: the student.
            cfg: the config.

        Returns:
            ``[optimizer]``.

        Raises:
            ValueError: the method brings its own optimisers (not supported by the fast recipe).
        """
        if _overrides(method, "configure_optimizers"):
            raise ValueError(f"method {cfg.method!r} configures its own optimisers; the fast recipe supports "
                             f"single-optimiser methods (ce, kd, …): use recipe='standard' for it")
        biases = _norm_biases(student)
        bias_ids = {id(p) for p in biases}
        rest = [p for p in list(student.parameters()) + list(method.parameters())
                if p.requires_grad and id(p) not in bias_ids]
        k = self.settings.bias_lr_scale
        groups = [{"params": rest, "lr": cfg.lr, "weight_decay": cfg.weight_decay},  # first: the logged lr
                  {"params": biases, "lr": cfg.lr * k, "weight_decay": cfg.weight_decay / k}]
        groups = [g for g in groups if g["params"]]
        for g in groups:
            g["base_lr"] = g["lr"]
        return [torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)]

    def schedulers(self, method: nn.Module, optimizers: Sequence[torch.optim.Optimizer], cfg: TrainConfig) -> list[Any]:
        """None: the learning rate is set before every step.

        Args:
            method: the distillation method.
            optimizers: the optimisers.
            cfg: the config.

        Returns:
            ``[]``.
        """
        return []

    def before_step(self, student: nn.Module, optimizers: Sequence[torch.optim.Optimizer], epoch: int,
                    step: int, total: int) -> None:
        """The step's learning rate; the whitening bias frozen after ``whiten_bias_epochs``.

        Args:
            student: the student.
            optimizers: the optimisers.
            epoch: the 0-based epoch.
            step: the global 0-based step.
            total: the number of steps.
        """
        s = self.settings
        gamma = triangular_multiplier(step, total, s.lr_start, s.lr_peak, s.lr_end)
        for o in optimizers:
            for g in o.param_groups:
                g["lr"] = g["base_lr"] * gamma
        whiten = getattr(student, "whiten", None)
        if s.whiten and whiten is not None and whiten.bias is not None:
            whiten.bias.requires_grad_(epoch < s.whiten_bias_epochs)
            if epoch >= s.whiten_bias_epochs:
                whiten.bias.grad = None

    def after_step(self, student: nn.Module, step: int, total: int) -> None:
        """Lookahead every ``lookahead_every`` steps and, with decay 1, after the last one.

        Args:
            student: the student.
            step: the global 0-based step just taken.
            total: the number of steps.
        """
        if self.lookahead is None:
            return
        s, done = self.settings, step + 1
        if done % s.lookahead_every == 0:
            self.lookahead.update(student, s.lookahead_decay ** s.lookahead_every * (done / total) ** 3)
        if done == total:
            self.lookahead.update(student, 1.0)

    def tta_level(self) -> int:
        """The configured test-time augmentation level.

        Returns:
            0, 1 or 2.
        """
        return self.settings.tta_level

    def state_dict(self) -> dict[str, Any]:
        """The lookahead average.

        Returns:
            ``{"lookahead": ...}`` or ``{}``.
        """
        return {"lookahead": self.lookahead.state_dict()} if self.lookahead is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the lookahead average.

        Args:
            state: from :meth:`state_dict`.

        Raises:
            ValueError: the checkpoint lacks the average this recipe needs (or has one it does not).
        """
        if (self.lookahead is None) != ("lookahead" not in state):
            raise ValueError("the checkpoint's recipe state does not match recipe_kwargs['lookahead']")
        if self.lookahead is not None:
            self.lookahead.load_state_dict(state["lookahead"])


def _overrides(obj: Any, name: str) -> bool:
    from .methods import DistillMethod

    return getattr(type(obj), name) is not getattr(DistillMethod, name)


def build_recipe(cfg: TrainConfig) -> Recipe:
    """The recipe object of ``cfg.recipe``.

    Args:
        cfg: the config.

    Returns:
        A :class:`Recipe` (standard) or :class:`FastRecipe`.
    """
    if cfg.recipe == "fast":
        return FastRecipe(FastRecipeSettings.from_kwargs(cfg.recipe_kwargs))
    return Recipe()


def _mirror_logits(model: nn.Module, x: Tensor) -> Tensor:
    return 0.5 * (model(x) + model(x.flip(-1)))


@torch.no_grad()
def tta_logits(model: nn.Module, x: Tensor, level: int = 2) -> Tensor:
    r"""Test-time-augmented logits (airbench's levels).

    Level 0: ``f(x)``; level 1: :math:`m(x) = \tfrac12(f(x) + f(\mathrm{flip}\,x))`; level 2:
    :math:`\tfrac12 m(x) + \tfrac14 m(\tau_{-1} x) + \tfrac14 m(\tau_{+1} x)` with :math:`\tau_{\pm1}` the
    translations by one pixel in both directions (reflect padding).

    Args:
        model: the network (call it in eval mode).
        x: ``(N, 3, H, W)`` normalised images.
        level: 0, 1 or 2.

    Returns:
        ``(N, classes)`` logits.

    Raises:
        TypeError: ``level`` is not an integer.
        ValueError: ``level`` is not 0, 1 or 2.
    """
    level = check_int("level", level, minimum=0, maximum=2)
    if level == 0:
        return model(x)
    z = _mirror_logits(model, x)
    if level == 1:
        return z
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [_mirror_logits(model, p[..., :h, :w].contiguous(memory_format=torch.channels_last)),
               _mirror_logits(model, p[..., 2:, 2:].contiguous(memory_format=torch.channels_last))]
    return 0.5 * z + 0.25 * (shifted[0] + shifted[1])


@torch.no_grad()
def evaluate_tta(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]], level: int = 2) -> float:
    """Accuracy of :func:`tta_logits` over ``loader`` (eval mode; the previous mode restored).

    Args:
        model: the network.
        loader: normalised images in any of the three data forms: ``(x, y)`` tensors, an iterable of ``(x, y)``
            batches, or a DataLoader (:func:`kdbounds._data.as_batches`).
        level: the augmentation level.

    Returns:
        The accuracy.

    Raises:
        TypeError: ``loader`` is none of the three forms (the message names it).
        ValueError: the loader yielded no batches.
    """
    from .._data import as_batches
    from .._torch import eval_mode

    correct, total = 0, 0
    with eval_mode(model):
        for x, y in as_batches(loader, "loader"):
            correct += int((tta_logits(model, x, level).argmax(1) == y).sum())
            total += int(y.shape[0])
    if total == 0:
        raise ValueError("evaluate_tta: the loader yielded no batches")
    return correct / total
