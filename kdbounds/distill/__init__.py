"""Distillation: the method interface/registry, built-in methods, and the trainer.

Import order matters only for registration: every module that defines methods is imported here
so ``get_method(name)`` sees them all.
"""

from .config import TrainConfig
from .methods import (
    DistillMethod,
    StepContext,
    TrainingDiverged,
    available_methods,
    build_method,
    describe_methods,
    feature_shapes,
    get_method,
    logits_of,
    register_method,
)
from . import kd  # noqa: F401  (registers "kd")
from .kd import kd_loss
from .checkpoint import load_checkpoint_model
from .fast_config import fast_config
from .recipe_settings import FastRecipeSettings
from .recipes import evaluate_tta, tta_logits
from .trainer import ConfigMismatchError, EpochInfo, TrainResult, evaluate, predict_logits, train
from . import vid, vid_rid, rid, itrd, controls, pbb  # noqa: F401,E402  (register "vid", "vid_rid", "rid", "itrd", "rcd", "pbb", "pbkd")

__all__ = [
    "ConfigMismatchError",
    "FastRecipeSettings",
    "evaluate_tta",
    "fast_config",
    "tta_logits",
    "DistillMethod",
    "EpochInfo",
    "TrainResult",
    "evaluate",
    "load_checkpoint_model",
    "predict_logits",
    "train",
    "StepContext",
    "TrainConfig",
    "TrainingDiverged",
    "available_methods",
    "build_method",
    "describe_methods",
    "feature_shapes",
    "get_method",
    "kd_loss",
    "logits_of",
    "register_method",
]
