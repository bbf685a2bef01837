"""Model registry: ``build_model(name, num_classes=10, seed=None)``."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .._checks import check_int
from .airbench import AIRBENCH_WIDTHS, AirbenchNet
from .base import CifarModel, init_weights
from .mlp import MLP_WIDTHS, CifarMLP
from .resnet import CifarResNet
from .vgg import VGG
from .wrn import WideResNet

__all__ = ["MODEL_NAMES", "arch_name", "available_models", "build_model", "count_parameters", "register_model"]

_REGISTRY: dict[str, Callable[[int], CifarModel]] = {}


def register_model(name: str, factory: Callable[[int], CifarModel]) -> None:
    """Register ``factory(num_classes) -> CifarModel`` under ``name`` (lower case).

    Args:
        name: the registry key (lower case; :func:`build_model` normalises user input to it).
        factory: ``factory(num_classes)`` building an uninitialised :class:`CifarModel`.

    Raises:
        ValueError: ``name`` is already registered.
    """
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = factory


for _d in (8, 14, 20, 32, 44, 56, 110):
    register_model(f"resnet{_d}", lambda c, d=_d: CifarResNet(f"resnet{d}", d, (16, 16, 32, 64), c))
for _d in (8, 32):
    register_model(f"resnet{_d}x4", lambda c, d=_d: CifarResNet(f"resnet{d}x4", d, (32, 64, 128, 256), c))
for _d, _k in ((16, 1), (16, 2), (16, 8), (40, 1), (40, 2), (28, 10)):
    register_model(f"wrn_{_d}_{_k}", lambda c, d=_d, k=_k: WideResNet(f"wrn_{d}_{k}", d, k, c))
for _name in ("vgg8", "vgg11", "vgg13"):
    register_model(_name, lambda c, n=_name: VGG(n, c))
for _name, _w in AIRBENCH_WIDTHS.items():  # the fast recipe's networks (kdbounds.distill.recipes)
    register_model(_name, lambda c, n=_name, w=_w: AirbenchNet(n, w, c))
for _name, _w in MLP_WIDTHS.items():  # BatchNorm-free nets for PAC-Bayes certificates (kdbounds.certificates)
    register_model(_name, lambda c, n=_name, w=_w: CifarMLP(n, w, c))

MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def available_models() -> list[str]:
    """Names accepted by :func:`build_model`.

    Returns:
        The registered model names, in registration order.
    """
    return list(_REGISTRY)


def build_model(name: str, num_classes: int = 10, seed: int | None = None) -> CifarModel:
    """Build a CIFAR model by name, freshly initialised (see :func:`init_weights`).

    Args:
        name: one of :func:`available_models` (e.g. ``"resnet20"``, ``"wrn_40_2"``, ``"vgg8"``);
            case-insensitive, ``-`` accepted for ``_`` (``"WRN-40-2"``).
        num_classes: classifier outputs (10 for CIFAR-10, 100 for CIFAR-100).
        seed: if given, initialisation draws from a private ``torch.Generator`` seeded with it
            (the global RNG is untouched); if None it draws from the global torch RNG.

    Returns:
        The freshly initialised :class:`CifarModel`.

    Raises:
        TypeError: ``name`` is not a string, or ``num_classes`` or ``seed`` is not an integer.
        ValueError: unknown ``name`` (the message lists the valid names) ``num_classes < 1``, or ``seed`` outside [0, 2**64 - 1].
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name string; got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(_REGISTRY)}")
    num_classes = check_int("num_classes", num_classes, minimum=1, fix="10 for CIFAR-10, 100 for CIFAR-100")
    if seed is not None:
        seed = check_int("seed", seed, minimum=0, maximum=2**64 - 1, fix="torch.Generator's range, or None")
    if seed is None:
        model = _REGISTRY[key](num_classes)
        _initialise(model, None)
        return model
    # module constructors draw their default init from the global RNG; fork it so that a seeded
    # build leaves the caller's RNG stream untouched, then re-initialise from a private generator
    with torch.random.fork_rng(devices=[]):
        model = _REGISTRY[key](num_classes)
    _initialise(model, torch.Generator().manual_seed(seed))
    return model


def _initialise(model: nn.Module, generator: torch.Generator | None) -> None:
    """The model's own ``init_parameters(generator)`` when it has one, else :func:`init_weights`."""
    own = getattr(model, "init_parameters", None)
    if callable(own):
        own(generator)
    else:
        init_weights(model, generator)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters.

    Args:
        model: the module.
        trainable_only: count only parameters with ``requires_grad``.

    Returns:
        The total number of scalar parameters.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def arch_name(text: str) -> str:
    """A model name of the zoo typed on a command line (``--arch``), e.g. ``resnet20`` or ``WRN-40-2``.

    Args:
        text: the typed name (case and ``-``/``_`` do not matter).

    Returns:
        The zoo's name.

    Raises:
        argparse.ArgumentTypeError: not a model of the zoo (the message lists the valid names).
    """
    import argparse

    name = text.strip().lower().replace("-", "_")
    names = available_models()
    if name not in names:
        raise argparse.ArgumentTypeError(f"expected a model name, got {text!r}; valid: {', '.join(names)}")
    return name
