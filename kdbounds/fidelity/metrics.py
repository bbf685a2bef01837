r"""Student–teacher fidelity metrics on held-out inputs (methods.md §5), each a :class:`MetricEstimate`.

With :math:`p_S, p_T` the softmax outputs (at temperature t), :math:`\hat y = \arg\max_c p_c` and
:math:`m = (p_S + p_T)/2`, averaged over the n inputs:

.. math::
    \text{agreement} &= \tfrac1n \textstyle\sum_i \mathbb 1[\hat y_{S,i} = \hat y_{T,i}], \qquad
    \text{disagreement} = 1 - \text{agreement},\\
    \text{activation distance} &= \tfrac1n \textstyle\sum_i \lVert p_{S,i} - p_{T,i}\rVert_2,\\
    \mathrm{JS} &= \tfrac12 \mathrm{KL}(p_S \,\Vert\, m) + \tfrac12 \mathrm{KL}(p_T \,\Vert\, m)
    \ \le \ln 2 \text{ nats},\\
    \text{cosine} &= \tfrac1n \textstyle\sum_i \langle p_{S,i}, p_{T,i}\rangle
    / (\lVert p_{S,i}\rVert_2 \lVert p_{T,i}\rVert_2),

and :math:`\mathrm{KL}(p_S \Vert p_T)` (the predictive distillation divergence of
:mod:`kdbounds.divergence`). Agreement is also split by whether the teacher is right
(:math:`\hat y_T = y`) or wrong (:math:`\hat y_T \ne y`): the "negative asymmetric payoff" of seed
001 is a student that copies the teacher's *errors* more readily than its correct answers
(relative to controls). Accuracy and expected calibration error (15 equal-width confidence bins)
compare one model with the labels.

Standard errors of per-example means are ``sd(ddof=1)/sqrt(n)``; ECE is not a per-example mean, so
its standard error is the standard deviation of a seeded bootstrap (``n_boot`` resamples).
"""

from __future__ import annotations

import contextvars
import math
from typing import Any

import numpy as np
import torch

from .._checks import check_int, check_n_boot, check_positive, check_seed
from .._records import Estimate
from .._torch import mean_estimate as _mean_of

__all__ = ["MetricEstimate", "softmax_probs", "agreement", "disagreement", "agreement_by_teacher_correctness",
           "activation_distance", "js_divergence", "js_per_example", "cosine_similarity", "kl_divergence",
           "accuracy", "expected_calibration_error"]


# --------------------------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------------------------


#: The estimate record of every metric: :class:`kdbounds._records.Estimate`, the library's one estimate record,
#: under the name this package has always exported (``n = 0``: NaN value and stderr; ``n = 1``: ``stderr = inf``;
#: ``to_dict`` writes ``{"value", "stderr", "n"}`` with a ``*_reason`` for a non-finite number, as before).
MetricEstimate = Estimate


def _mean_estimate(v: torch.Tensor) -> MetricEstimate:
    """The mean of per-example values (:func:`kdbounds._torch.mean_estimate`); an empty subset gives ``n = 0``."""
    return _mean_of(v) if v.numel() else MetricEstimate(math.nan, math.nan, 0)


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, (list, tuple)):
        x = torch.as_tensor(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or array, got {type(x).__name__}")
    return x.detach().to("cpu")


def softmax_probs(logits: Any, temperature: float = 1.0) -> torch.Tensor:
    r"""Softmax at temperature ``t`` in float64 (rows sum to 1).

    .. math::
        p_c = \frac{e^{z_c / t}}{\sum_{c'} e^{z_{c'} / t}}

    Args:
        logits: ``(n, classes)`` float logits.
        temperature: ``t > 0``.

    Returns:
        ``(n, classes)`` float64 probabilities.

    Raises:
        ValueError: logits not a 2-D float tensor, NaN/inf logits, or ``t`` not finite and positive.
    """
    z = _tensor(logits, "logits")
    if z.ndim != 2 or not torch.is_floating_point(z):
        raise ValueError(f"logits must be a float tensor of shape (n, classes), got {tuple(z.shape)} {z.dtype}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("logits contain NaN or infinite values")
    t = check_positive("temperature", temperature)
    return torch.softmax(z.to(torch.float64) / t, dim=1)


# Set inside fidelity_report after its own validation, so the metric functions skip re-checking.
_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("kdbounds_fidelity_trusted", default=False)


def _probs(p: Any, name: str) -> torch.Tensor:
    if _TRUSTED.get() and isinstance(p, torch.Tensor) and p.dtype == torch.float64:
        return p
    p = _tensor(p, name)
    if p.ndim != 2 or not torch.is_floating_point(p):
        raise ValueError(f"{name} must be a float tensor of probabilities with shape (n, classes), got shape {tuple(p.shape)}")
    p = p.to(torch.float64)
    if not bool(torch.isfinite(p).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if p.numel() and (bool((p < -1e-12).any()) or not torch.allclose(p.sum(1), torch.ones(p.shape[0], dtype=p.dtype), atol=1e-4)):
        raise ValueError(
            f"{name} is not a matrix of probabilities (rows must be ≥ 0 and sum to 1); if these are logits, "
            "convert them with kdbounds.fidelity.softmax_probs(logits, temperature) or use fidelity_report"
        )
    return p.clamp_min(0.0)


def _pair(p_s: Any, p_t: Any) -> tuple[torch.Tensor, torch.Tensor]:
    ps, pt = _probs(p_s, "p_student"), _probs(p_t, "p_teacher")
    if ps.shape[1] != pt.shape[1]:
        raise ValueError(
            f"class counts differ: the student has {ps.shape[1]} classes but the teacher has {pt.shape[1]}"
        )
    if ps.shape[0] != pt.shape[0]:
        raise ValueError(
            f"example counts differ: student {ps.shape[0]}, teacher {pt.shape[0]}; evaluate both on the same inputs"
        )
    if ps.shape[0] == 0:
        raise ValueError("no examples: the inputs are empty")
    return ps, pt


def _labels(labels: Any, n: int, c: int) -> torch.Tensor:
    y = _tensor(labels, "labels")
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must be a vector of {n} class indices, got shape {tuple(y.shape)}")
    if torch.is_floating_point(y):
        if not bool((y == y.round()).all()):
            raise ValueError("labels must be integer class indices, got non-integer floats")
    y = y.to(torch.long)
    if n and (int(y.min()) < 0 or int(y.max()) >= c):
        raise ValueError(f"labels must lie in [0, {c - 1}] for {c} classes, got range [{int(y.min())}, {int(y.max())}]")
    return y


# --------------------------------------------------------------------------------------------
# Metrics on probabilities
# --------------------------------------------------------------------------------------------


def agreement(p_student: Any, p_teacher: Any) -> MetricEstimate:
    r"""Agreement of the predicted classes (ties: the first maximal class).

    .. math::
        \tfrac1n \textstyle\sum_i \mathbb 1[\arg\max p_{S,i} = \arg\max p_{T,i}]

    Args:
        p_student: ``(n, classes)`` student probabilities (rows sum to 1), e.g. :func:`softmax_probs`.
        p_teacher: ``(n, classes)`` teacher probabilities on the same inputs.

    Returns:
        The mean with its standard error.

    Raises:
        ValueError: the inputs are not probabilities, their shapes differ or they are empty.
    """
    ps, pt = _pair(p_student, p_teacher)
    return _mean_estimate((ps.argmax(1) == pt.argmax(1)).to(torch.float64))


def disagreement(p_student: Any, p_teacher: Any) -> MetricEstimate:
    r"""Disagreement of the predicted classes, one minus :func:`agreement` (same standard error).

    .. math::
        \tfrac1n \textstyle\sum_i \mathbb 1[\arg\max p_{S,i} \ne \arg\max p_{T,i}] = 1 - \text{agreement}

    Args:
        p_student: ``(n, classes)`` student probabilities (rows sum to 1), e.g. :func:`softmax_probs`.
        p_teacher: ``(n, classes)`` teacher probabilities on the same inputs.

    Returns:
        The mean with its standard error.

    Raises:
        ValueError: the inputs are not probabilities, their shapes differ or they are empty.
    """
    a = agreement(p_student, p_teacher)
    return MetricEstimate(1.0 - a.value, a.stderr, a.n)


def agreement_by_teacher_correctness(p_student: Any, p_teacher: Any, labels: Any) -> tuple[MetricEstimate, MetricEstimate]:
    """Agreement on the inputs the teacher gets right, and on those it gets wrong.

    On the wrong subset, agreement is the rate at which the student reproduces the teacher's
    *error*. A subset with no inputs gives ``n = 0`` (value and stderr NaN).

    Args:
        p_student: ``(n, classes)`` student probabilities.
        p_teacher: ``(n, classes)`` teacher probabilities on the same inputs.
        labels: ``(n,)`` integer labels in ``[0, classes)``.

    Returns:
        ``(on_teacher_correct, on_teacher_wrong)``, two :class:`MetricEstimate`.

    Raises:
        ValueError: bad probabilities, shapes that differ, or labels of the wrong length or range.
    """
    ps, pt = _pair(p_student, p_teacher)
    y = _labels(labels, ps.shape[0], ps.shape[1])
    agree = (ps.argmax(1) == pt.argmax(1)).to(torch.float64)
    right = pt.argmax(1) == y
    return _mean_estimate(agree[right]), _mean_estimate(agree[~right])


def activation_distance(p_student: Any, p_teacher: Any) -> MetricEstimate:
    r"""Mean Euclidean distance of the probability vectors, in :math:`[0, \sqrt2]`.

    .. math::
        \tfrac1n \textstyle\sum_i \lVert p_{S,i} - p_{T,i}\rVert_2

    Args:
        p_student: ``(n, classes)`` student probabilities (rows sum to 1), e.g. :func:`softmax_probs`.
        p_teacher: ``(n, classes)`` teacher probabilities on the same inputs.

    Returns:
        The mean with its standard error.

    Raises:
        ValueError: the inputs are not probabilities, their shapes differ or they are empty.
    """
    ps, pt = _pair(p_student, p_teacher)
    return _mean_estimate(torch.linalg.vector_norm(ps - pt, dim=1))


def _xlogy_ratio(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    # Σ p log(p/q) with 0 log 0 = 0; q > 0 wherever p > 0 by construction of the callers.
    return torch.where(p > 0, p * (torch.log(p) - torch.log(q.clamp_min(1e-300))), torch.zeros_like(p)).sum(1)


def js_per_example(p_student: Any, p_teacher: Any) -> torch.Tensor:
    r"""Per-example Jensen–Shannon divergence in nats.

    .. math::
        \mathrm{JS}_i = \tfrac12 \mathrm{KL}(p_{S,i} \Vert m_i) + \tfrac12 \mathrm{KL}(p_{T,i} \Vert m_i),
        \qquad m_i = (p_{S,i} + p_{T,i})/2

    Args:
        p_student: ``(n, classes)`` student probabilities (rows sum to 1), e.g. :func:`softmax_probs`.
        p_teacher: ``(n, classes)`` teacher probabilities on the same inputs.

    Returns:
        ``(n,)`` float64 tensor, each value in :math:`[0, \ln 2]`.

    Raises:
        ValueError: the inputs are not probabilities, their shapes differ or they are empty.
    """
    ps, pt = _pair(p_student, p_teacher)
    m = 0.5 * (ps + pt)
    js = 0.5 * _xlogy_ratio(ps, m) + 0.5 * _xlogy_ratio(pt, m)
    return js.clamp(0.0, math.log(2.0))


def js_divergence(p_student: Any, p_teacher: Any) -> MetricEstimate:
    r"""Mean Jensen–Shannon divergence (nats), in :math:`[0, \ln 2]`; see :func:`js_per_example`.

    .. math::
        \tfrac1n \textstyle\sum_i \mathrm{JS}(p_{S,i}, p_{T,i})

    Args:
        p_student: ``(n, classes)`` student probabilities (rows sum to 1), e.g. :func:`softmax_probs`.
        p_teacher: ``(n, classes)`` teacher probabilities on the same inputs.

    Returns:
        The mean with its standard error.

    Raises:
        ValueError: the inputs are not probabilities, their shapes differ or they are empty.
    """
    return _mean_estimate(js_per_example(p_student, p_teacher))


def cosine_similarity(p_student: Any, p_teacher: Any) -> MetricEstimate:
    r"""Mean cosine similarity of the probability vectors (in [0, 1] for probabilities).

    .. math::
        \tfrac1n \textstyle\sum_i \frac{\langle p_{S,i}, p_{T,i}\rangle}{\lVert p_{S,i}\rVert_2\,\lVert p_{T,i}\rVert_2}

    Args:
        p_student: ``(n, classes)`` student probabilities (rows sum to 1), e.g. :func:`softmax_probs`.
        p_teacher: ``(n, classes)`` teacher probabilities on the same inputs.

    Returns:
        The mean with its standard error.

    Raises:
        ValueError: the inputs are not probabilities, their shapes differ or they are empty.
    """
    ps, pt = _pair(p_student, p_teacher)
    cos = (ps * pt).sum(1) / (torch.linalg.vector_norm(ps, dim=1) * torch.linalg.vector_norm(pt, dim=1))
    return _mean_estimate(cos)


def kl_divergence(p_student: Any, p_teacher: Any) -> MetricEstimate:
    r"""Mean KL divergence from probabilities (nats).

    .. math::
        \tfrac1n \textstyle\sum_i \mathrm{KL}(p_{S,i} \Vert p_{T,i}), \qquad
        \mathrm{KL}(p \Vert q) = \textstyle\sum_c p_c \log(p_c / q_c)

    From logits prefer :func:`kdbounds.divergence.divergence_from_logits` (log-space, stable).

    Args:
        p_student: ``(n, classes)`` student probabilities.
        p_teacher: ``(n, classes)`` teacher probabilities on the same inputs.

    Returns:
        The mean with its standard error.

    Raises:
        ValueError: the KL is infinite (``p_teacher`` is 0 where ``p_student`` is not), or bad inputs
            as in :func:`agreement`.
    """
    ps, pt = _pair(p_student, p_teacher)
    if bool(((ps > 0) & (pt <= 0)).any()):
        raise ValueError("KL(p_S ‖ p_T) is infinite: p_teacher is 0 where p_student is not; pass logits instead")
    return _mean_estimate(_xlogy_ratio(ps, pt).clamp_min(0.0))


def accuracy(probs: Any, labels: Any) -> MetricEstimate:
    r"""Accuracy of one model against labels.

    .. math::
        \tfrac1n \textstyle\sum_i \mathbb 1[\arg\max p_i = y_i]

    Args:
        probs: ``(n, classes)`` probabilities.
        labels: ``(n,)`` integer labels.

    Returns:
        The mean with its standard error.

    Raises:
        ValueError: ``probs`` is empty or not probabilities, or labels of the wrong length or range.
    """
    p = _probs(probs, "probs")
    if p.shape[0] == 0:
        raise ValueError("no examples: probs is empty")
    y = _labels(labels, p.shape[0], p.shape[1])
    return _mean_estimate((p.argmax(1) == y).to(torch.float64))


def _ece_bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of each confidence for equal-width bins ``(lo, hi]`` (the first bin also holds 0)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(edges[1:-1], conf, side="left")


def _ece_from_weights(w: np.ndarray, onehot: np.ndarray, conf: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """ECE for rows of example weights ``w`` (B×n, each row summing to n): Σ_b |Σ_i w_i (acc_i − conf_i) 1[i∈b]| / n."""
    gap = (w * (correct - conf)) @ onehot  # B × bins
    return np.abs(gap).sum(1) / w.sum(1)


def expected_calibration_error(
    probs: Any, labels: Any, n_bins: int = 15, *, n_boot: int = 200, seed: int = 0
) -> MetricEstimate:
    r"""Expected calibration error of one model against labels (Guo et al. 2017).

    .. math::
        \mathrm{ECE} = \sum_b \frac{|B_b|}{n}\,\bigl|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\bigr|

    over ``n_bins`` equal-width bins ``(lo, hi]`` of the confidence :math:`\max_c p_c`. Standard
    error: sd of ``n_boot`` bootstrap ECEs (``numpy.random.default_rng(seed)``); ``n_boot = 0`` gives
    ``stderr = NaN``.

    Args:
        probs: ``(n, classes)`` probabilities.
        labels: ``(n,)`` integer labels.
        n_bins: number of confidence bins.
        n_boot: bootstrap resamples for the standard error: 0 (none) or >= 2.
        seed: seed of the bootstrap, in [0, 2**32 - 1].

    Returns:
        The ECE with its bootstrap standard error.

    Raises:
        ValueError: ``probs`` is empty, ``n_bins`` is not a positive integer, ``n_boot`` negative
            or 1, ``seed`` outside [0, 2**32 - 1], labels out of range, or bad inputs.
    """
    n_boot = check_n_boot("n_boot", n_boot)
    seed = check_seed("seed", seed)
    p = _probs(probs, "probs")
    if p.shape[0] == 0:
        raise ValueError("no examples: probs is empty")
    n_bins = check_int("n_bins", n_bins, minimum=1)
    y = _labels(labels, p.shape[0], p.shape[1])
    conf_t, pred = p.max(1)
    conf = conf_t.numpy()
    correct = (pred == y).to(torch.float64).numpy()
    n = conf.size
    onehot = np.zeros((n, n_bins))
    onehot[np.arange(n), _ece_bins(conf, n_bins)] = 1.0
    value = float(_ece_from_weights(np.ones((1, n)), onehot, conf, correct)[0])
    if n_boot <= 0:
        return MetricEstimate(value, math.nan, n)
    # Bootstrap resamples as multinomial example weights; bin membership is fixed per example.
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n)) + (np.arange(stop - start) * n)[:, None]
        w = np.bincount(idx.ravel(), minlength=(stop - start) * n).reshape(stop - start, n).astype(np.float64)
        boots[start:stop] = _ece_from_weights(w, onehot, conf, correct)
    return MetricEstimate(value, float(boots.std(ddof=1)), n)


