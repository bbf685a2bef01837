r"""A student a few gentle gradient steps away from its teacher: the pair on which Theorem 3B can be tight.

The quadratic Theorem 3B bound is :math:`\sqrt{2vK} + c_+K` with :math:`\sqrt{2vK} \ge \|\Delta\|\,\|\nabla f(w_T)\|`
(``Delta = w_S - w_T``, ``f`` the gap function; :func:`kdbounds.studies.sharpness_vs_gap.bound_anatomy`). A student
trained by minibatch SGD moves in a direction nearly orthogonal to :math:`\nabla f(w_T)` (and its BatchNorm statistics
move with no learning rate at all), so bound / observed stays above 50 whatever the step size. A student moved by
full-batch gradient descent on its own training sample, with BatchNorm in evaluation mode, moves along
:math:`-\nabla L_{\rm train}(w_T)`, which is part of :math:`\nabla f = \nabla L_{\rm test} - \nabla L_{\rm train}`:
the displacement the bound is written for.

.. math:: w_0 = w_T,\qquad w_{k+1} = w_k - \eta\,\nabla_w \tfrac1n \textstyle\sum_i \ell_{\rm CE}(h_{w_k}(x_i), y_i),
    \quad k = 0, \dots, \text{steps} - 1,

every buffer (BatchNorm running statistics included) the teacher's.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .._checks import check_int, check_positive
from .._data import check_inputs, check_labels

__all__ = ["gentle_student"]


def gentle_student(teacher: nn.Module, inputs: Tensor, labels: Tensor, *, steps: int, lr: float,
                   batch_size: int = 500) -> nn.Module:
    r"""A copy of ``teacher`` moved by ``steps`` full-batch gradient-descent steps of size ``lr`` on the mean
    cross-entropy of ``(inputs, labels)``, in evaluation mode (module docstring for the formula).

    Every parameter moves (the kernel of Theorems 3A/3B lives on all of them), every buffer stays the teacher's; the
    gradient of the mean over all examples is accumulated over chunks of ``batch_size`` (memory only: the result does
    not depend on it beyond float rounding).

    Args:
        teacher: the network (not modified).
        inputs: ``(n, ...)`` normalised inputs on the teacher's device.
        labels: ``(n,)`` integer classes.
        steps: number of steps (0: an exact copy of the teacher).
        lr: the step size (:math:`\eta` of the formula).
        batch_size: examples per chunk of the full-batch gradient.

    Returns:
        The student, in evaluation mode, parameters detached (``requires_grad`` as in the teacher).

    Raises:
        TypeError / ValueError: not a module, inputs or labels that do not fit (named), ``steps < 0``,
            ``lr <= 0``, ``batch_size < 1``, a non-finite loss along the way (names the step).
    """
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher: expected an nn.Module, got {type(teacher).__name__}")
    steps = check_int("steps", steps, minimum=0)
    lr = check_positive("lr", lr)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    check_inputs("inputs", inputs)
    check_labels("labels", labels, what="the labels")
    if len(labels) != len(inputs) or len(inputs) == 0:
        raise ValueError(f"inputs, labels: expected the same number (>= 1) of examples, got {len(inputs)} inputs and "
                         f"{len(labels)} labels")
    student = copy.deepcopy(teacher).eval()
    params = {n: p.detach().clone() for n, p in student.named_parameters()}
    buffers = {n: b for n, b in student.named_buffers()}
    n = len(inputs)
    for k in range(steps):
        live = {name: p.requires_grad_(True) for name, p in params.items()}
        total = torch.zeros((), dtype=torch.float64)
        grads = [torch.zeros_like(p) for p in live.values()]
        for start in range(0, n, batch_size):
            x, y = inputs[start:start + batch_size], labels[start:start + batch_size]
            out = torch.func.functional_call(student, {**live, **buffers}, (x,))
            loss = nn.functional.cross_entropy(out, y, reduction="sum") / n
            total += loss.detach().double()
            for acc, g in zip(grads, torch.autograd.grad(loss, list(live.values()))):
                acc += g
        if not torch.isfinite(total):
            raise ValueError(f"gentle_student: the cross-entropy at step {k} is {float(total)}; lower lr (now {lr:g})")
        params = {name: (p - lr * g).detach() for (name, p), g in zip(live.items(), grads)}
    with torch.no_grad():
        for name, p in student.named_parameters():
            p.copy_(params[name])
    return student
