"""Hinton knowledge distillation (Hinton, Vinyals & Dean 2015; methods.md §1)."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn
from torch.nn import functional as F

from .._checks import as_float
from .methods import DistillMethod, logits_of, register_method

__all__ = ["kd_loss", "KDMethod"]


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, T: float) -> Tensor:
    r"""Soft-target term, the KL divergence summed over classes and averaged over the batch:

    .. math::
        T^2 \, \frac1N \sum_n \mathrm{KL}\bigl(\mathrm{softmax}(z_{t,n}/T) \,\|\,
        \mathrm{softmax}(z_{s,n}/T)\bigr)

    computed in float32 from log-softmax for stability ("batchmean"). The factor ``T**2`` keeps
    gradient magnitudes constant in ``T``.

    Args:
        student_logits: ``N x C`` logits of the student.
        teacher_logits: ``N x C`` logits of the teacher.
        T: temperature (``> 0``).

    Returns:
        The scalar term.

    Raises:
        ValueError: shapes differ or are not ``N x C``, or ``T <= 0``.
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(f"kd_loss: student and teacher logits must both be N×C; got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)} "
                         f"(teacher and student must have the same number of classes)")
    if not T > 0:
        raise ValueError(f"kd_loss: temperature T must be > 0; got {T}")
    log_p_s = F.log_softmax(student_logits.float() / T, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / T, dim=1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return kl * (T * T)


@register_method
class KDMethod(DistillMethod):
    r"""Hinton KD: cross-entropy with the labels plus the KL to the teacher's softened outputs (scaled by T**2).

    .. math::
        L = \gamma\, \mathrm{CE}(y, \mathrm{softmax}(z_s))
        + \alpha T^2\, \mathrm{KL}\bigl(\mathrm{softmax}(z_t/T) \,\|\, \mathrm{softmax}(z_s/T)\bigr).
    """

    name = "kd"
    requires_teacher = True
    defaults = {"gamma": 0.1, "alpha": 0.9, "T": 4.0}

    @classmethod
    def parse_hparams(cls, hp: Mapping[str, Any]) -> dict[str, Any]:
        """``T > 0``, ``gamma >= 0``, ``alpha >= 0`` (checked before the teacher or any data is loaded).

        Args:
            hp: the hyper-parameters completed by their defaults.

        Returns:
            The checked values.

        Raises:
            TypeError: a value that is not a number.
            ValueError: ``T <= 0`` or a negative weight.
        """
        return {**hp, "T": as_float("T", hp["T"], low=0.0, low_open=True),
                "gamma": as_float("gamma", hp["gamma"], low=0.0), "alpha": as_float("alpha", hp["alpha"], low=0.0)}

    def loss(self, x, y, s_out, t_out, epoch):
        """KD's objective (formula in the class docstring).
        Args:
            x: the normalised (augmented) input batch.
            y: the labels.
            s_out: the student's output (logits, or a :class:`FeatureOutput`).
            t_out: the teacher's output on ``x`` (``None`` when the method needs no teacher).
            epoch: the 0-based epoch.

        Returns:
            ``(loss, parts)``: the scalar loss and its named parts (detached).
        """
        zs, zt = logits_of(s_out), logits_of(t_out)
        ce = F.cross_entropy(zs.float(), y)
        kd = kd_loss(zs, zt, self.hparams["T"])
        total = self.hparams["gamma"] * ce + self.hparams["alpha"] * kd
        return total, {"ce": ce.detach(), "kd": kd.detach()}
