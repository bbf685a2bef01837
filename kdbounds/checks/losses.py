r"""Per-example losses from logits and their means with standard errors (theory.md §6, "Gap and sigma").

Three losses, all bounded, each with the range that gives its Hoeffding constant ``sigma = range/2``:

* ``"clipped_ce"``: :math:`\ell = \min(-\log \mathrm{softmax}(z)_y,\ \ln(1/p_{\min}))`, range ``[0, ln(1/p_min)]``;
* ``"zero_one"``: :math:`1[\arg\max z \ne y]` of the deterministic (argmax) predictor, range ``[0, 1]``;
* ``"gibbs_zero_one"``: the *exact* expected 0–1 loss of the stochastic (Gibbs) predictor
  ``ŷ ~ softmax(z/t)``: :math:`\mathbb E\,1[\hat y \ne y] = 1 - p(y|x)`, range ``[0, 1]``.

Means come as :class:`kdbounds._records.Estimate` (``stderr = sd/sqrt n``, the sampling error over inputs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_open_unit, check_positive
from .._data import check_labels
from .._records import Estimate
from .._torch import mean_estimate as _mean_of

__all__ = [
    "LOSSES",
    "clipped_cross_entropy",
    "zero_one_loss",
    "gibbs_error",
    "per_example_losses",
    "loss_range",
    "mean_estimate",
    "LossGap",
    "loss_gap",
    "paired_gap_difference",
]

LOSSES = ("clipped_ce", "zero_one", "gibbs_zero_one")


def _check_pair(logits: Any, labels: Any, logits_name: str = "logits",
                labels_name: str = "labels") -> tuple[Tensor, Tensor]:
    """``(logits, labels)`` after the checks, each error naming its argument: logits a finite floating
    ``(n, classes)`` tensor with ``n >= 1``, labels ``n`` class indices (:func:`kdbounds._data.check_labels`)."""
    if not isinstance(logits, Tensor):
        raise TypeError(f"{logits_name} must be a torch tensor of shape (n, classes), got {type(logits).__name__}")
    if logits.ndim != 2:
        raise ValueError(f"{logits_name} must be (n, classes), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"{logits_name} must be floating-point logits, got dtype {logits.dtype}")
    if logits.shape[0] == 0:
        raise ValueError(f"{logits_name}: no examples (n = 0)")
    if not torch.isfinite(logits).all():
        raise ValueError(f"{logits_name} contain NaN or inf")
    check_labels(labels_name, labels, logits.shape[1], what="class indices")
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"{labels_name}: {labels.shape[0]} labels for the {logits.shape[0]} rows of {logits_name}; "
                         f"give one label per row")
    return logits.detach().to(torch.float64), labels.to(logits.device)


def clipped_ce_differentiable(logits: Tensor, labels: Tensor, p_min: float) -> Tensor:
    """Per-example clipped CE that keeps the autograd graph and the logits' dtype (no validation; for
    Hessian products and functional evaluation inside ``torch.func`` transforms).

    Args:
        logits: ``(n, classes)``.
        labels: ``(n,)`` integer classes.
        p_min: clipping level in (0, 1).

    Returns:
        ``(n,)`` tensor, the logits' dtype.
    """
    ce = -torch.log_softmax(logits, dim=1).gather(1, labels.view(-1, 1)).squeeze(1)
    return torch.clamp(ce, max=math.log(1.0 / p_min))


def clipped_cross_entropy(logits: Tensor, labels: Tensor, p_min: float = 1e-3) -> Tensor:
    r"""Per-example clipped cross-entropy (float64).

    .. math:: \ell_i = \min\bigl(-\log \mathrm{softmax}(z_i)_{y_i},\ \ln(1/p_{\min})\bigr)

    Args:
        logits: ``(n, classes)``.
        labels: ``(n,)`` integer classes.
        p_min: clipping level in (0, 1).

    Returns:
        ``(n,)`` float64 tensor in ``[0, ln(1/p_min)]``.

    Raises:
        ValueError / TypeError: bad shapes, non-finite logits, labels out of range, p_min not in (0, 1).
    """
    p_min = check_open_unit("p_min", p_min)
    z, y = _check_pair(logits, labels)
    return clipped_ce_differentiable(z, y, p_min)


def zero_one_loss(logits: Tensor, labels: Tensor) -> Tensor:
    r"""Per-example 0–1 loss of the argmax predictor, :math:`1[\arg\max_c z_{ic} \ne y_i]` (float64).

    Args:
        logits: ``(n, classes)``.
        labels: ``(n,)`` integer classes.

    Returns:
        ``(n,)`` float64 tensor of 0s and 1s.
    """
    z, y = _check_pair(logits, labels)
    return (z.argmax(dim=1) != y).to(torch.float64)


def gibbs_error(logits: Tensor, labels: Tensor, temperature: float = 1.0) -> Tensor:
    r"""Exact expected 0–1 loss of the Gibbs predictor ``ŷ ~ softmax(z/t)`` (float64).

    .. math:: \mathbb E_{\hat y \sim p(\cdot|x_i)} 1[\hat y \ne y_i] = 1 - p(y_i|x_i)
        = -\operatorname{expm1}(\log \mathrm{softmax}(z_i/t)_{y_i})

    Args:
        logits: ``(n, classes)``.
        labels: ``(n,)`` integer classes.
        temperature: softmax temperature ``t > 0``.

    Returns:
        ``(n,)`` float64 tensor in ``[0, 1]``.
    """
    t = check_positive("temperature", temperature)
    z, y = _check_pair(logits, labels)
    lp = torch.log_softmax(z / t, dim=1).gather(1, y.view(-1, 1)).squeeze(1)
    return -torch.expm1(lp)


def per_example_losses(logits: Tensor, labels: Tensor, loss: str = "clipped_ce", *, p_min: float = 1e-3,
                       temperature: float = 1.0) -> Tensor:
    """Per-example losses (float64) for ``loss`` in :data:`LOSSES`.

    Args:
        logits: ``(n, classes)``.
        labels: ``(n,)`` integer classes.
        loss: ``"clipped_ce"``, ``"zero_one"`` or ``"gibbs_zero_one"``.
        p_min: clipping level of the cross-entropy.
        temperature: softmax temperature of the Gibbs loss.

    Returns:
        ``(n,)`` float64 tensor.

    Raises:
        ValueError: unknown ``loss``.
    """
    if loss == "clipped_ce":
        return clipped_cross_entropy(logits, labels, p_min)
    if loss == "zero_one":
        return zero_one_loss(logits, labels)
    if loss == "gibbs_zero_one":
        return gibbs_error(logits, labels, temperature)
    raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")


def loss_range(loss: str, p_min: float = 1e-3) -> float:
    """Length of the loss's range (``ln(1/p_min)`` for clipped CE, 1 for the 0–1 losses).

    Args:
        loss: a loss of :data:`LOSSES`.
        p_min: clipping level of the cross-entropy.

    Returns:
        The range's length.

    Raises:
        ValueError: unknown ``loss``.
    """
    if loss == "clipped_ce":
        return math.log(1.0 / check_open_unit("p_min", p_min))
    if loss in ("zero_one", "gibbs_zero_one"):
        return 1.0
    raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")


def mean_estimate(x: Tensor) -> Estimate:
    r"""Sample mean with ``stderr = sd(x, ddof=1)/sqrt n`` (``inf`` for one value) as an :class:`Estimate`.

    The arithmetic is :func:`kdbounds._torch.mean_estimate` (the library's one mean estimator); this entry point
    adds the checks of a loss vector: numbers only, and no NaN or inf.

    Args:
        x: the values (any shape; flattened).

    Returns:
        The :class:`Estimate`.

    Raises:
        ValueError: no value, or a NaN/inf.
        TypeError: values that are not numbers.
    """
    v = _values("x", x)
    if not torch.isfinite(v).all():
        raise ValueError("x contains NaN or inf")
    return _mean_of(v, "x")


def _values(name: str, x: Any) -> Tensor:
    """``x`` (a tensor, an array or a list of numbers) as a flat float64 CPU tensor."""
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float64).reshape(-1)
    try:
        return torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a tensor (or array) of numbers, got {type(x).__name__}") from None


@dataclass(frozen=True)
class LossGap:
    """Train and test mean loss of one model and its gap ``gen = test - train``.

    ``gap.stderr = sqrt(se_train^2 + se_test^2)`` (independent samples).
    """

    loss: str
    train: Estimate
    test: Estimate
    gap: Estimate
    p_min: float | None
    temperature: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (the estimates as dicts).

        Returns:
            ``{"loss", "train", "test", "gap", "p_min", "temperature"}``.
        """
        return {"loss": self.loss, "train": self.train.to_dict(), "test": self.test.to_dict(),
                "gap": self.gap.to_dict(), "p_min": self.p_min, "temperature": self.temperature}


def loss_gap(train_logits: Tensor, train_labels: Tensor, test_logits: Tensor, test_labels: Tensor,
             loss: str = "clipped_ce", *, p_min: float = 1e-3, temperature: float = 1.0) -> LossGap:
    """Mean losses on train and test and ``gen = L_test - L_train`` with standard errors.

    Args:
        train_logits: ``(n, classes)`` on the training inputs.
        train_labels: their labels.
        test_logits: ``(m, classes)`` on the test inputs.
        test_labels: their labels.
        loss: a loss of :data:`LOSSES`.
        p_min: clipping level of the cross-entropy.
        temperature: softmax temperature of the Gibbs loss.

    Returns:
        :class:`LossGap`.

    Raises:
        ValueError / TypeError: bad logits or labels (the message names which), an unknown ``loss``, a bad
            ``p_min`` or ``temperature``; all before any loss is computed.
    """
    check_choice("loss", loss, LOSSES)
    _check_pair(train_logits, train_labels, "train_logits", "train_labels")
    _check_pair(test_logits, test_labels, "test_logits", "test_labels")
    tr = mean_estimate(per_example_losses(train_logits, train_labels, loss, p_min=p_min, temperature=temperature))
    te = mean_estimate(per_example_losses(test_logits, test_labels, loss, p_min=p_min, temperature=temperature))
    gap = Estimate(te.value - tr.value, math.hypot(tr.stderr, te.stderr), tr.n + te.n)
    return LossGap(loss, tr, te, gap, p_min if loss == "clipped_ce" else None,
                   temperature if loss == "gibbs_zero_one" else None)


def paired_gap_difference(s_train: Tensor, t_train: Tensor, s_test: Tensor, t_test: Tensor) -> Estimate:
    r"""``gen(S) - gen(T)`` from per-example losses of both models on the same inputs (paired).

    .. math:: \hat d = \overline{(\ell_S - \ell_T)}_{\rm test} - \overline{(\ell_S - \ell_T)}_{\rm train},
        \quad \mathrm{SE}^2 = \mathrm{SE}^2_{\rm test} + \mathrm{SE}^2_{\rm train}

    Args:
        s_train: the student's per-example losses on the training inputs.
        t_train: the teacher's, on the same inputs.
        s_test: the student's per-example losses on the test inputs.
        t_test: the teacher's, on the same inputs.

    Returns:
        The :class:`Estimate` of the difference (``n`` counts both sets).

    Raises:
        ValueError: student and teacher losses of a set differ in shape (the teacher's argument is named).
        TypeError: values that are not numbers.
    """
    s_tr, t_tr, s_te, t_te = (_values(n, v) for n, v in (("s_train", s_train), ("t_train", t_train),
                                                        ("s_test", s_test), ("t_test", t_test)))
    for (sn, sv), (tn, tv) in ((("s_train", s_tr), ("t_train", t_tr)), (("s_test", s_te), ("t_test", t_te))):
        if sv.shape != tv.shape:
            raise ValueError(f"{tn}: {tv.numel()} per-example losses but {sn} has {sv.numel()}; student and teacher "
                             f"losses must be on the same inputs")
    tr = mean_estimate(s_tr - t_tr)
    te = mean_estimate(s_te - t_te)
    return Estimate(te.value - tr.value, math.hypot(tr.stderr, te.stderr), tr.n + te.n)
