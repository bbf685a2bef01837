"""Private torch plumbing: which parameters of a model vary — one selector shared by the curvature
operators (:mod:`kdbounds.curvature`), the Gaussian kernels (:mod:`kdbounds.pacbayes.kernels`) and
certified distillation (:mod:`kdbounds.distill.pbb`)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

from torch import Tensor, nn

__all__ = ["ParamSpec", "select_parameters"]

ParamSpec = None | str | nn.Module | nn.Parameter | Iterable[Any]


def select_parameters(model: nn.Module, params: ParamSpec = None) -> list[str]:
    """Names of the selected parameters of ``model``, in ``named_parameters()`` order.

    Args:
        model: the network.
        params: ``None`` (all parameters with ``requires_grad``), a glob pattern on parameter
            names (``"layer3.*"``, ``"*.bn*.weight"``, ``"fc.weight"``; ``fnmatch`` rules, ``*``
            also matches dots), a submodule of ``model`` (all its parameters), a parameter of
            ``model``, or an iterable mixing these (the union is taken).

    Returns:
        The selected names, without repeats.

    Raises:
        ValueError: if a pattern, module or parameter matches nothing, or the selection is empty.
        TypeError: for unsupported specification types.
    """
    named = list(model.named_parameters())
    if not named:
        raise ValueError("model has no parameters; nothing to differentiate")
    if params is None:
        names = [n for n, p in named if p.requires_grad]
        if not names:
            raise ValueError(
                "model has no parameter with requires_grad=True; pass params= explicitly"
            )
        return names
    specs = [params] if isinstance(params, (str, nn.Module, Tensor)) else params
    try:
        specs = list(specs)
    except TypeError:
        raise TypeError(
            "params must be None, a name pattern (str), a submodule, a parameter, or an "
            f"iterable of those; got {type(params).__name__}"
        ) from None
    if not specs:
        raise ValueError("params is empty; pass None for all parameters or a name pattern")
    id_to_name = {id(p): n for n, p in named}
    chosen: set[str] = set()
    available = ", ".join(n for n, _ in named[:12]) + (" ..." if len(named) > 12 else "")
    for spec in specs:
        if isinstance(spec, str):
            hits = {n for n, _ in named if fnmatch.fnmatchcase(n, spec)}
            if not hits:
                raise ValueError(
                    f"params pattern {spec!r} matches no parameter name; available names: "
                    f"{available}"
                )
        elif isinstance(spec, nn.Module):
            hits = {id_to_name[id(p)] for p in spec.parameters() if id(p) in id_to_name}
            if not hits:
                raise ValueError(
                    f"params module {type(spec).__name__} has no parameters belonging to model; "
                    "pass a submodule of model (e.g. model.layer3) that holds parameters"
                )
        elif isinstance(spec, Tensor):
            if id(spec) not in id_to_name:
                raise ValueError(
                    "params contains a tensor that is not a parameter of model; pass "
                    "model parameters, names or submodules"
                )
            hits = {id_to_name[id(spec)]}
        else:
            raise TypeError(
                "each params entry must be a name pattern (str), a submodule or a parameter, "
                f"got {type(spec).__name__}"
            )
        chosen |= hits
    return [n for n, _ in named if n in chosen]
