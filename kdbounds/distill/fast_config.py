"""``fast_config``: a :class:`TrainConfig` for the fast recipe, without torch (study configs build it at parse time)."""

from __future__ import annotations

from typing import Any, Mapping

from .config import TrainConfig
from .recipe_settings import fast_sgd_hparams

__all__ = ["fast_config"]


def fast_config(arch: str = "airbench94", epochs: int = 10, batch_size: int = 1024, method: str = "ce",
                label_smoothing: float = 0.2, recipe_kwargs: Mapping[str, Any] | None = None,
                **fields: Any) -> TrainConfig:
    """A :class:`TrainConfig` for the fast recipe with airbench94's hyper-parameters at ``batch_size``.

    Args:
        arch: the network (``airbench94``, ``airbench_m``, ``airbench_s`` or any zoo name).
        epochs: epochs (airbench94: 9.9; whole epochs here).
        batch_size: the batch size (learning rate scaled linearly; :func:`fast_sgd_hparams`).
        method: the distillation method (``"ce"`` for a teacher).
        label_smoothing: the ``ce`` method's label smoothing (ignored for other methods).
        recipe_kwargs: switches of :class:`FastRecipeSettings` (ablations).
        **fields: any other :class:`TrainConfig` field (``seed``, ``n_per_class``, ``method_kwargs``, …).

    Returns:
        The config (validated).
    """
    hp = fast_sgd_hparams(batch_size)
    method_kwargs = dict(fields.pop("method_kwargs", {}) or {})
    if method == "ce":
        method_kwargs.setdefault("label_smoothing", label_smoothing)
    base = dict(arch=arch, epochs=epochs, batch_size=batch_size, lr=hp["lr"], momentum=hp["momentum"],
                weight_decay=hp["weight_decay"], nesterov=True, schedule="triangular", method=method,
                method_kwargs=method_kwargs, recipe="fast", recipe_kwargs=dict(recipe_kwargs or {}))
    base.update(fields)
    return TrainConfig(**base)
