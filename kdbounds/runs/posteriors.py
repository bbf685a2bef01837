r"""Certified distillation's posteriors: read a finished ``pbb``/``pbkd`` run back as Gaussian kernels.

The two methods themselves — ``"pbb"`` (PAC-Bayes with backprop, no teacher) and ``"pbkd"``
(certified distillation: the PAC-Bayes objective plus Hinton's KD term) — live in
:mod:`kdbounds.distill.pbb` and are registered with the project's trainer like every other method
(``python -m kdbounds.train distill --method pbb ...``, the run cache, Ray workers). Their objective
and its bounded cross-entropy are re-exported here. This module reads a finished run:
:func:`posterior_from_run` gives the learnt ``Q = N(w_Q, diag softplus(ρ)²)``,
:func:`prior_from_run` the prior ``P = N(w_P, σ_P² I)`` it was trained against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from kdbounds.distill.checkpoint import read_checkpoint
from kdbounds.distill.pbb import (
    OBJECTIVES,
    PBBMethod,
    PBKDMethod,
    bounded_cross_entropy,
    pac_bayes_objective,
    param_key,
)
from kdbounds.models import build_model

from ..pacbayes.kernels import GaussianKernel

__all__ = ["bounded_cross_entropy", "pac_bayes_objective", "PBBMethod", "PBKDMethod", "posterior_from_run",
           "prior_from_run", "OBJECTIVES"]


# ---------------------------------------------------------------------- reading a trained posterior
def _ckpt(run: Any) -> dict[str, Any]:
    out = Path(run.paths["out_dir"]) if hasattr(run, "paths") else Path(run)
    return read_checkpoint(out / "checkpoint.pt")


def posterior_from_run(run: Any, device: str | torch.device = "cpu") -> GaussianKernel:
    """The learnt ``Q = N(w, diag softplus(ρ)²)`` of a finished ``pbb``/``pbkd`` run.

    Args:
        run: a :class:`kdbounds.distill.TrainResult` or the run folder (holding ``checkpoint.pt``).
    """
    ck = _ckpt(run)
    cfg = ck["config"]
    if cfg["method"] not in ("pbb", "pbkd"):
        raise ValueError(f"run: expected a 'pbb' or 'pbkd' run, got method {cfg['method']!r}")
    model = build_model(ck["arch"], num_classes=int(ck["num_classes"]), seed=0)
    model.load_state_dict(ck["model"])
    model.to(device).eval()
    params = cfg["method_kwargs"].get("params") or None
    rho = {k[len("rho."):]: v for k, v in ck["method"].items() if k.startswith("rho.")}
    names = [n for n, _ in model.named_parameters()]
    std = {n: F.softplus(rho[param_key(n)].to(device)) for n in names if param_key(n) in rho}
    return GaussianKernel.from_model(model, std, params)


def prior_from_run(run: Any, device: str | torch.device = "cpu") -> GaussianKernel:
    """The prior ``P = N(w_P, σ_P² I)`` a ``pbb``/``pbkd`` run was trained against (its stored means)."""
    ck = _ckpt(run)
    cfg = ck["config"]
    model = build_model(ck["arch"], num_classes=int(ck["num_classes"]), seed=0)
    state = dict(ck["model"])
    for name, _ in model.named_parameters():
        key = "prior_mean__" + param_key(name)
        if key in ck["method"]:
            state[name] = ck["method"][key]
    model.load_state_dict(state)
    model.to(device).eval()
    return GaussianKernel.from_model(model, float(cfg["method_kwargs"]["sigma_prior"]),
                                     cfg["method_kwargs"].get("params") or None)
