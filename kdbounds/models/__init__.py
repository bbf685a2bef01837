"""CIFAR model zoo: ResNets (8 … 110, 8x4, 32x4), wide ResNets, VGG-BN, and the BatchNorm-free MLPs
``mlp256`` / ``mlp512x2`` (PAC-Bayes certificates, :mod:`kdbounds.models.mlp`).

>>> from kdbounds.models import build_model
>>> m = build_model("resnet20", num_classes=10, seed=0)
>>> out = m(x, return_features=True)   # FeatureOutput(logits, stages, pooled)

Contract of every model: ``forward(x, return_features=False)``; attributes ``arch``, ``num_classes``,
``stage_channels`` (channels of each entry of ``stages``), ``feature_dim`` (size of ``pooled``),
and ``classifier`` (the final ``nn.Linear``).
"""

from .airbench import AirbenchNet
from .base import CifarModel, FeatureOutput, init_weights
from .mlp import CifarMLP
from .registry import MODEL_NAMES, arch_name, available_models, build_model, count_parameters, register_model

__all__ = [
    "AirbenchNet",
    "CifarMLP",
    "CifarModel",
    "FeatureOutput",
    "MODEL_NAMES",
    "arch_name",
    "available_models",
    "build_model",
    "count_parameters",
    "init_weights",
    "register_model",
]
