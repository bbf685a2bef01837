r"""The Gibbs-classifier check (theory.md §6): an exact demonstration, valid for every pair.

The stochastic (Gibbs) predictor draws each label ``ŷ_i ~ p(*|x_i)`` independently on the ``n``
training and ``m`` test inputs. Its empirical 0–1 gap on the sample

.. math:: g = \frac1m\sum_{\rm test} 1[\hat y \ne y] - \frac1n\sum_{\rm train} 1[\hat y \ne y]

is, under the teacher's product law ``P``, a sum of independent terms of ranges ``1/m`` and ``1/n``,
so (Hoeffding) ``sigma^2 = (1/n + 1/m)/4``. The KL between the student's and the teacher's product laws
is ``n K̂_tr + m K̂_te`` with ``K̂ = mean_x KL(p_S(*|x) || p_T(*|x))``. Donsker–Varadhan then gives,
for any architectures,

.. math:: |\mathbb E_S g - \mathbb E_T g| \le
    \sqrt{\tfrac12 \left(\tfrac1n + \tfrac1m\right)\left(n \hat K_{tr} + m \hat K_{te}\right)},

with ``E 1[ŷ!=y] = 1 - p(y|x)`` computed exactly. Both sides are exact given the sample (no
standard error), so the verdict is exact. It speaks about this sample, not the population: a
demonstration of how tight the change of measure is, never a certificate.
"""

from __future__ import annotations

import math

from torch import Tensor

from .._checks import check_int, check_nonnegative, check_open_unit, check_positive
from ..divergence import divergence_from_logits
from .losses import _check_pair, gibbs_error
from .verdicts import CheckRecord, make_record

__all__ = ["gibbs_classifier", "gibbs_bound"]


def gibbs_bound(n: int, m: int, k_train: float, k_test: float) -> float:
    r"""The Gibbs-classifier bound (see the module docstring):

    .. math:: \sqrt{\tfrac12 \bigl(\tfrac1n + \tfrac1m\bigr) \bigl(n \hat K_{\rm tr} + m \hat K_{\rm te}\bigr)}

    Args:
        n: training inputs.
        m: test inputs.
        k_train: mean per-input KL on the training inputs.
        k_test: mean per-input KL on the test inputs.

    Returns:
        The bound.

    Raises:
        ValueError: ``n``/``m`` below 1, negative or non-finite divergences.
        TypeError: ``n``/``m`` not integers, divergences not numbers.
    """
    n, m = check_int("n", n, minimum=1), check_int("m", m, minimum=1)
    k_train, k_test = check_nonnegative("k_train", k_train), check_nonnegative("k_test", k_test)
    return math.sqrt(0.5 * (1.0 / n + 1.0 / m) * (n * k_train + m * k_test))


def gibbs_classifier(s_train_logits: Tensor, t_train_logits: Tensor, train_labels: Tensor,
                     s_test_logits: Tensor, t_test_logits: Tensor, test_labels: Tensor, *,
                     temperature: float = 1.0, alpha: float = 0.05, teacher: str | None = None,
                     student: str | None = None) -> CheckRecord:
    """The ``gibbs_classifier`` check record of one pair (kind ``"demonstration"``, exact verdict).

    Args:
        s_train_logits, t_train_logits: student / teacher logits on the ``n`` training inputs.
        train_labels: their true labels.
        s_test_logits, t_test_logits, test_labels: the same on the ``m`` test inputs.
        temperature: softmax temperature of both predictive laws (the same law is used for the KL and
            for the Gibbs predictor).
        alpha: the run's level (recorded; the verdict is exact).
        teacher, student: pair labels.

    Returns:
        A :class:`CheckRecord`: ``observed = E_S g - E_T g`` (signed, exact), ``bound`` as above,
        ``inputs`` with ``n, m, K_train, K_test, sigma_sq`` and both expected gaps.

    Raises:
        ValueError / TypeError: bad logits or labels (the message names which), a bad ``temperature`` or
            ``alpha``; all before anything is computed.
    """
    temperature = check_positive("temperature", temperature)
    check_open_unit("alpha", alpha)
    for zn, z, yn, y in (("s_train_logits", s_train_logits, "train_labels", train_labels),
                         ("t_train_logits", t_train_logits, "train_labels", train_labels),
                         ("s_test_logits", s_test_logits, "test_labels", test_labels),
                         ("t_test_logits", t_test_logits, "test_labels", test_labels)):
        _check_pair(z, y, zn, yn)
    for sn, sz, tn, tz in (("s_train_logits", s_train_logits, "t_train_logits", t_train_logits),
                           ("s_test_logits", s_test_logits, "t_test_logits", t_test_logits)):
        if sz.shape != tz.shape:
            raise ValueError(f"{tn}: shape {tuple(tz.shape)} differs from {sn}'s {tuple(sz.shape)}; student and teacher "
                             f"logits must be on the same inputs, with the same classes")
    k_tr = float(divergence_from_logits(s_train_logits, t_train_logits, temperature).mean())
    k_te = float(divergence_from_logits(s_test_logits, t_test_logits, temperature).mean())
    e_s = (gibbs_error(s_test_logits, test_labels, temperature).mean()
           - gibbs_error(s_train_logits, train_labels, temperature).mean())
    e_t = (gibbs_error(t_test_logits, test_labels, temperature).mean()
           - gibbs_error(t_train_logits, train_labels, temperature).mean())
    n, m = int(train_labels.shape[0]), int(test_labels.shape[0])
    bound = gibbs_bound(n, m, k_tr, k_te)
    return make_record(
        "gibbs_classifier", "demonstration", loss="gibbs_zero_one", side="abs", bound=bound,
        observed=float(e_s - e_t), observed_se=0.0, assumptions_met=True,
        assumption=("exact instance: Gibbs predictors with product laws over the n training and m test "
                    "inputs; Hoeffding σ² = (1/n + 1/m)/4; KL of the product laws = n K̂_tr + m K̂_te; "
                    "speaks about this sample, not the population"),
        inputs={"n": n, "m": m, "K_train": k_tr, "K_test": k_te, "K_product": n * k_tr + m * k_te,
                "sigma_sq": 0.25 * (1.0 / n + 1.0 / m), "temperature": float(temperature),
                "gibbs_gap_student": float(e_s), "gibbs_gap_teacher": float(e_t)},
        alpha=alpha, teacher=teacher, student=student)
