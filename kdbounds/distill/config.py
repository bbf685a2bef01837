"""Training configuration: one frozen dataclass that fully determines a run (and its cache id)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from .._checks import (SEED_MAX, check_choice, check_finite, check_int, check_nonnegative,
                       check_positive)
from .._io import canonical_json
from .recipe_settings import RECIPES, FastRecipeSettings

__all__ = ["TrainConfig", "SCHEDULES"]

SCHEDULES = ("step", "cosine", "constant", "triangular")
_DEVICES = ("auto", "cpu", "cuda")
_OPTIONAL = ("n_per_class", "init_seed")  # integer fields that may be None


def _freeze_kwargs(kw: Mapping[str, Any] | None, name: str = "method_kwargs") -> dict[str, Any]:
    if kw is None:
        return {}
    if not isinstance(kw, Mapping):
        raise TypeError(f"{name} must be a dict of hyper-parameters; got {type(kw).__name__}")
    out = {}
    for k, v in kw.items():
        if not isinstance(k, str):
            raise TypeError(f"{name} keys must be strings; got {k!r}")
        if not isinstance(v, (bool, int, float, str)) and v is not None:
            raise TypeError(f"{name}[{k!r}] must be a bool/int/float/str (JSON scalar); got {type(v).__name__}")
        out[k] = v
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class TrainConfig:
    r"""Everything that determines a training run (teacher or student).

    Optimiser: SGD(lr, momentum, weight_decay, nesterov). Learning-rate schedule per epoch ``e``:
    ``"step"`` with ``milestones`` in epochs (None: the RepDistiller 150/180/210-of-240 fractions
    0.625/0.75/0.875 of ``epochs``), ``"cosine"``, or ``"constant"``:

    .. math::
        \mathrm{lr}_e = \mathrm{lr}\,\gamma^{\#\{m \in \mathrm{milestones} : m \le e\}}, \qquad
        \mathrm{lr}_e = \mathrm{lr}\,\tfrac12\bigl(1 + \cos(\pi e / \mathrm{epochs})\bigr).

    Data: ``dataset`` (``"cifar10"``/``"cifar100"``) from ``data_root`` (None: ``$KDBOUNDS_DATA`` then
    standard places); ``n_per_class`` images per class drawn (stratified, ``subset_seed``) from the
    training split after removing ``val_per_class`` images per class for validation
    (``val_per_class=0``: no validation split). Reported metrics are those of the last epoch.

    Seeds: ``seed`` drives data order and augmentation and, unless ``init_seed`` is set, the
    student's initialisation (``init_seed`` separate allows "same init, different data order").

    Recipe: ``"standard"`` (the above), or ``"fast"`` — airbench94's recipe (whitened, frozen first
    layer, BatchNorm biases at a higher rate, per-step triangular schedule, lookahead, alternating flips,
    reflect-padded translations; :mod:`kdbounds.distill.recipes`, switches in ``recipe_kwargs``, see
    :class:`~kdbounds.distill.recipe_settings.FastRecipeSettings`), which needs ``schedule="triangular"``;
    :func:`~kdbounds.distill.recipes.fast_config` fills in its hyper-parameters. ``init_ckpt``: start the
    student from the weights of this model file (same architecture) instead of a fresh initialisation.
    The three fields are left out of :meth:`to_dict` at their defaults, so run ids of standard runs do not
    depend on them.

    Hardware: ``device`` ``"auto"`` = CUDA when available; ``amp`` (bfloat16/float16 autocast) applies
    on CUDA only; ``channels_last`` (default on) applies on CPU and CUDA — on this project's 2-core CPU it
    cut 23–28 % of the CPU time per epoch of resnet8/resnet14 (``benchmarks/train_cpu_profile.py``).
    """

    arch: str
    dataset: str = "cifar10"
    epochs: int = 240
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "step"
    milestones: tuple[int, ...] | None = None
    lr_gamma: float = 0.1
    seed: int = 0
    init_seed: int | None = None
    subset_seed: int = 0
    n_per_class: int | None = None
    val_per_class: int = 0
    augment: bool = True
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    method: str = "ce"
    method_kwargs: Mapping[str, Any] = field(default_factory=dict)
    teacher_ckpt: str | None = None
    eval_every: int = 1
    grad_clip: float | None = None
    data_root: str | None = None
    drop_last: bool = False
    recipe: str = "standard"
    recipe_kwargs: Mapping[str, Any] = field(default_factory=dict)
    init_ckpt: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method_kwargs", _freeze_kwargs(self.method_kwargs))
        object.__setattr__(self, "recipe_kwargs", _freeze_kwargs(self.recipe_kwargs, "recipe_kwargs"))
        if self.init_ckpt is not None:
            object.__setattr__(self, "init_ckpt", str(self.init_ckpt))
        if self.milestones is not None:
            object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        if self.teacher_ckpt is not None:
            object.__setattr__(self, "teacher_ckpt", str(self.teacher_ckpt))
        if self.data_root is not None:
            object.__setattr__(self, "data_root", str(self.data_root))
        self.validate()

    def validate(self) -> None:
        """Check every field (called by ``__post_init__``; integer fields given as whole floats become ints).

        Raises:
            TypeError: a field of the wrong type (the message names it).
            ValueError: a field out of range (the message names it).
        """
        if not isinstance(self.arch, str) or not self.arch:
            raise ValueError(f"arch must be a model name such as 'resnet20'; got {self.arch!r}")
        check_choice("dataset", self.dataset, ("cifar10", "cifar100"))
        for name, minimum, maximum in (("epochs", 1, None), ("batch_size", 1, None), ("eval_every", 1, None),
                                       ("n_per_class", 1, None), ("val_per_class", 0, None), ("seed", 0, SEED_MAX),
                                       ("subset_seed", 0, SEED_MAX), ("init_seed", 0, SEED_MAX)):
            if getattr(self, name) is not None or name not in _OPTIONAL:
                object.__setattr__(self, name, check_int(name, getattr(self, name), minimum, maximum))
        for name in ("lr", "lr_gamma"):
            check_positive(name, getattr(self, name))
        check_nonnegative("weight_decay", self.weight_decay)
        if not 0 <= check_finite("momentum", self.momentum) < 1:
            raise ValueError(f"momentum: expected a number in [0, 1), got {self.momentum!r}; SGD diverges at momentum >= 1")
        for k, v in self.method_kwargs.items():
            if isinstance(v, float):
                check_finite(f"method_kwargs[{k!r}]", v)
        check_choice("schedule", self.schedule, SCHEDULES)
        if self.milestones is not None and any(m < 1 for m in self.milestones):  # () = no milestones
            raise ValueError(f"milestones must be positive epoch numbers; got {self.milestones}")
        if not isinstance(self.device, str) or not (
                self.device in _DEVICES or (self.device.startswith("cuda:") and self.device[5:].isdigit())):
            raise ValueError(f"device must be one of {_DEVICES} or 'cuda:k'; got {self.device!r}")
        if self.grad_clip is not None:
            check_positive("grad_clip", self.grad_clip, fix="or None for no clipping")
        if not isinstance(self.method, str) or not self.method:
            raise ValueError(f"method must be a method name such as 'kd'; got {self.method!r}")
        check_choice("recipe", self.recipe, RECIPES)
        if (self.recipe == "fast") != (self.schedule == "triangular"):
            raise ValueError("recipe='fast' goes with schedule='triangular' (per-step) and only with it; got "
                             f"recipe={self.recipe!r}, schedule={self.schedule!r}. Build fast configs with "
                             "kdbounds.distill.recipes.fast_config (CLI: --recipe fast)")
        if self.recipe == "fast":
            FastRecipeSettings.from_kwargs(self.recipe_kwargs)
        elif self.recipe_kwargs:
            raise ValueError(f"recipe_kwargs {sorted(self.recipe_kwargs)} are for recipe='fast'; the standard "
                             "recipe takes none")

    def __hash__(self) -> int:  # method_kwargs is a dict: hash the canonical JSON instead
        return hash(self.to_json())

    @property
    def num_classes(self) -> int:
        """10 for CIFAR-10, 100 for CIFAR-100."""
        return 10 if self.dataset == "cifar10" else 100

    @property
    def effective_milestones(self) -> tuple[int, ...]:
        """``milestones``, or the RepDistiller fractions 0.625/0.75/0.875 of ``epochs`` when None."""
        if self.milestones is not None:
            return self.milestones
        return tuple(max(1, round(self.epochs * f)) for f in (0.625, 0.75, 0.875))

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-able values.

        Returns:
            The fields (``milestones`` as a list, ``method_kwargs`` as a dict).
        """
        d = dataclasses.asdict(self)
        d["method_kwargs"] = dict(self.method_kwargs)
        d["recipe_kwargs"] = dict(self.recipe_kwargs)
        for name, default in (("recipe", "standard"), ("recipe_kwargs", {}), ("init_ckpt", None)):
            if d[name] == default:  # absent at the default: standard runs keep their ids
                del d[name]
        d["milestones"] = list(self.milestones) if self.milestones is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`.

        Args:
            d: the fields (as written by :meth:`to_dict`).

        Returns:
            The config (validated).

        Raises:
            ValueError: ``d`` has a field that ``TrainConfig`` does not.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}; valid: {sorted(names)}")
        d = dict(d)
        if d.get("milestones") is not None:
            d["milestones"] = tuple(d["milestones"])
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (``dataclasses.replace``; validated again).

        Args:
            **changes: field name -> new value.

        Returns:
            The new config.
        """
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys; :func:`kdbounds._io.canonical_json`, the one serialiser of the run ids).

        Returns:
            The JSON text.
        """
        return canonical_json(self.to_dict())
