r"""Dense Hessians for small models (tests, tiny problems), via ``torch.func.hessian``.

.. math:: H = \sum_b \frac{n_b}{N} \nabla^2_\theta\, \mathrm{loss\_fn}(\mathrm{output\_fn}(f_\theta(x_b)), y_b)

computed per batch as forward-over-reverse ``jacfwd(jacrev(.))`` of the loss as a function of the
flat parameter vector — a different code path from the operator's products, so the two can be
compared. Same data, parameter selection, eval-mode and dtype conventions as
:class:`~kdbounds.curvature.HessianOperator`. Memory ``O(n^2)``: keep ``n`` to a few thousand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_int
from .._data import as_batches
from ._problem import _eval_mode, _Problem
from .._params import ParamSpec

__all__ = ["dense_hessian"]


def dense_hessian(
    model: nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    data: Iterable,
    params: ParamSpec = None,
    *,
    dtype: torch.dtype | None = None,
    output_fn: Callable[[Any], Any] | None = None,
    max_params: int = 20_000,
) -> Tensor:
    """The ``(n, n)`` Hessian of the batch-size-weighted average loss w.r.t. the selected params.

    Args:
        model: the network (evaluated in eval mode).
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor`` (mean over the batch).
        data: ``(inputs, targets)`` tensors, an iterable of such batches or a DataLoader.
        params: which parameters vary (see :func:`select_parameters`); ``None`` for all.
        dtype: differentiate a converted copy of the model in this dtype (e.g. ``torch.float64``).
        output_fn: maps the model output to what ``loss_fn`` takes (default: identity, or the
            first element of a tuple output).
        max_params: refuse more selected parameters than this (the matrix has ``n**2`` entries).

    Returns:
        The symmetric Hessian, shape ``(n, n)``, in the problem's dtype and device.

    Raises:
        ValueError: empty data, NaN/inf in the data, non-scalar loss, empty selection, ``max_params < 1``, or
            ``n > max_params``.
        TypeError: inputs of another dtype than the parameters (without ``dtype``), a non-integer ``max_params``.
    """
    max_params = check_int("max_params", max_params, minimum=1)
    p = _Problem(model, loss_fn, as_batches(data, "data"), params, dtype, output_fn)
    p.check_data()
    if p.num_params > max_params:
        raise ValueError(
            f"dense_hessian: {p.num_params} parameters exceed max_params={max_params}; select a "
            "subset with params= or use HessianOperator with the estimators"
        )
    theta0 = torch.cat([t.reshape(-1) for t in p.param_values().values()])
    H = torch.zeros(p.num_params, p.num_params, dtype=p.dtype, device=p.device)
    total = 0
    with _eval_mode(p.model):
        for x, y, nb in p.batches():

            def f(flat: Tensor) -> Tensor:
                return p.loss(dict(zip(p.names, p.split(flat))), x, y)

            H += nb * torch.func.hessian(f)(theta0)
            total += nb
    if total == 0:
        raise ValueError("data yielded no batches; pass a non-empty list of (inputs, targets)")
    return H / total
