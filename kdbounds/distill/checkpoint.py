"""Checkpoint files: atomic writes, RNG state capture, and rebuilding a model from a file.

Two formats (both plain ``torch.save`` dicts loadable with ``weights_only=True``):

* training checkpoint (``checkpoint.pt``, ``format = "kdbounds-train-ckpt-v1"``): everything needed
  for an exact resume — epoch, config, student, method modules, optimisers, schedulers, loader RNG,
  torch/CUDA/numpy/python RNG states, metric history;
* model file (``model.pt``, ``format = "kdbounds-model-v1"``): ``arch``, ``num_classes``,
  ``state_dict``, ``config``, ``metrics`` — what a teacher checkpoint is.

:func:`load_checkpoint_model` accepts either.
"""

from __future__ import annotations

import io
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._io import atomic_write_bytes, file_sha256
from ..models import build_model

__all__ = [
    "MODEL_FORMAT",
    "TRAIN_FORMAT",
    "atomic_save",
    "capture_rng",
    "file_sha256",
    "load_checkpoint_model",
    "read_checkpoint",
    "restore_rng",
]

TRAIN_FORMAT = "kdbounds-train-ckpt-v1"
MODEL_FORMAT = "kdbounds-model-v1"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``: a reader
    never sees a half-written file, and a crash leaves the previous file intact.

    Args:
        obj: what ``torch.save`` writes.
        path: the file written.
    """
    buf = io.BytesIO()
    torch.save(_interned(obj), buf)
    atomic_write_bytes(path, buf.getvalue())


def _interned(obj: Any) -> Any:
    """``obj`` with every string in its dicts, lists and tuples interned (tensors untouched).

    The pickler behind ``torch.save`` memoises objects by identity, so equal strings written as one
    shared object or as several give different bytes. A config rebuilt in another process (a Ray
    worker) holds other string objects than the driver's; interning makes the file's bytes, and with
    them the run ids of students that hash their teacher's file, independent of where it was built.

    Args:
        obj: a checkpoint payload.

    Returns:
        The same structure with interned strings (containers copied, leaves shared).
    """
    if isinstance(obj, str):
        return sys.intern(str(obj))
    if isinstance(obj, dict):
        return type(obj)((_interned(k), _interned(v)) for k, v in obj.items()) if type(obj) is dict else obj
    if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
        return type(obj)(_interned(v) for v in obj)
    return obj


def capture_rng() -> dict[str, Any]:
    """Global torch (CPU, CUDA), numpy and python RNG states, as weights_only-safe objects.

    Returns:
        ``{"torch", "cuda", "numpy", "python"}`` states (restore with :func:`restore_rng`).
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": name, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [py[0], list(py[1]), py[2]],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng` (CUDA states restored only when CUDA is available).

    Args:
        state: a :func:`capture_rng` result.
    """
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))


_FIX = ("re-create it: re-run the command with --no-resume (train(..., resume=False)), or delete the file "
        "(or its cache entry folder) and run again")


def _first_line(e: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (``""`` when it has none), shortened."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a kdbounds checkpoint/model file (``weights_only=True``) with clear errors.

    Args:
        path: a ``model.pt`` or ``checkpoint.pt`` written by :func:`kdbounds.distill.train`.
        map_location: passed to ``torch.load``.

    Returns:
        The stored dict (its ``format`` is :data:`TRAIN_FORMAT` or :data:`MODEL_FORMAT`).

    Raises:
        FileNotFoundError: ``path`` does not exist (or is not a file).
        ValueError: the file is empty, truncated, corrupt or not a kdbounds checkpoint; the message
            names the file and the fix (``--no-resume`` or deleting the file / cache entry).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; pass the model.pt or "
                                f"checkpoint.pt written by `python -m kdbounds.train`")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"checkpoint {str(path)!r} is empty (0 bytes; a run killed while writing?); {_FIX}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated/corrupt/foreign pickle: never let the message itself fail
        detail = _first_line(e)
        raise ValueError(f"checkpoint {str(path)!r} ({size} bytes) cannot be read as a kdbounds checkpoint — "
                         f"truncated or corrupt ({type(e).__name__}{': ' + detail if detail else ''}); "
                         f"{_FIX}") from None
    if not isinstance(obj, dict) or obj.get("format") not in (TRAIN_FORMAT, MODEL_FORMAT):
        raise ValueError(f"{str(path)!r} is not a kdbounds checkpoint (no 'format' field "
                         f"{TRAIN_FORMAT!r}/{MODEL_FORMAT!r}); bare state_dicts are not accepted "
                         f"because the architecture cannot be rebuilt from them; pass a model.pt written by "
                         f"`python -m kdbounds.train`, or {_FIX}")
    keys = ("arch", "num_classes", "state_dict") if obj["format"] == MODEL_FORMAT else (
        "arch", "num_classes", "model", "epoch", "config")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"checkpoint {str(path)!r} lacks {missing} (a damaged or hand-edited file); {_FIX}")
    return obj


def load_checkpoint_model(path: str | os.PathLike, map_location: Any = "cpu",
                          model: nn.Module | None = None, arch: str | None = None) -> nn.Module:
    """Rebuild the model stored in ``path`` (a model file or a training checkpoint), in eval mode.

    Args:
        path: a model file (``model.pt``) or a training checkpoint.
        map_location: where the tensors are loaded (``torch.load``'s ``map_location``).
        model: load into this model instead of building one (its ``arch`` must match).
        arch: assert the stored architecture.

    Returns:
        The model, in eval mode.

    Raises:
        ValueError: the stored architecture or class count differs from the one expected (the
            message names both).
    """
    obj = read_checkpoint(path, map_location)
    stored = obj["arch"]
    want = arch if arch is not None else getattr(model, "arch", None)
    if want is not None and want != stored:
        raise ValueError(f"checkpoint {str(path)!r} holds a {stored!r} model (num_classes="
                         f"{obj['num_classes']}) but a {want!r} was expected; build a {stored!r} or "
                         f"pass the right checkpoint")
    state = obj["state_dict"] if obj["format"] == MODEL_FORMAT else obj["model"]
    if model is None:
        model = build_model(stored, num_classes=int(obj["num_classes"]), seed=0)
    elif getattr(model, "num_classes", obj["num_classes"]) != obj["num_classes"]:
        raise ValueError(f"checkpoint {str(path)!r} has num_classes={obj['num_classes']} but the model "
                         f"has {model.num_classes}")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"checkpoint {str(path)!r} does not fit the {stored!r} model: "
                         f"{_first_line(e)}; {_FIX}") from None
    p = next(model.parameters())
    model.to(p.device)
    return model.eval()
