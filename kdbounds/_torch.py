"""Private torch plumbing shared by the measurement and training layers (each policy written once).

- :func:`resolve_device`: ``"auto"`` / ``"cpu"`` / ``"cuda[:k]"`` / a ``torch.device`` -> ``torch.device``,
  with a clear error when CUDA is asked for but absent.
- :func:`eval_mode`: eval mode + ``no_grad`` for one or several modules, restoring every submodule's
  own ``training`` flag afterwards (even if the body raises).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["resolve_device", "eval_mode"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The ``torch.device`` named by ``device``.

    Args:
        device: ``"auto"`` or ``None`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:k"``, ``"mps"`` or a ``torch.device`` (returned unchanged).

    Returns:
        The resolved device.

    Raises:
        ValueError: ``device`` asks for CUDA and no CUDA device is available, or it is not a device name.
        TypeError: ``device`` is neither a string, a ``torch.device`` nor ``None``.
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str):
        raise TypeError(f"device: expected 'auto', 'cpu', 'cuda[:k]' or a torch.device, got {type(device).__name__}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA device is available; use device='auto' or 'cpu'")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda[:k]' or a torch.device, got {device!r}") from e


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode under ``torch.no_grad()``; restore each submodule's flag on exit.

    Args:
        *modules: the modules to evaluate.

    Raises:
        TypeError: one of ``modules`` is not an ``nn.Module``.
    """
    for j, m in enumerate(modules):
        if not isinstance(m, nn.Module):
            raise TypeError(f"modules[{j}]: expected an nn.Module, got {type(m).__name__}")
    saved = [(sub, sub.training) for m in modules for sub in m.modules()]
    try:
        for m in modules:
            m.eval()
        with torch.no_grad():
            yield
    finally:
        for sub, flag in saved:
            sub.training = flag
