r"""Theorems 1 and 2 with the sigma^2/n rate: *conditional* checks, and the product-law *proxy*.

**Theorem 1, sigma^2/n form** (theory.md §4): ``|gen(S) - gen(T)| <= sqrt(2 sigma^2 K / n)``. Two things stand
between this formula and a trained pair, and the record names both as its assumption:

1. the sigma^2/n rate. With ``D_n`` fixed and a teacher kernel that depends on ``D_n``, a bounded loss only
   gives ``sigma = range/2`` *without* the ``1/n`` (theory.md §4 "Caution": a memoriser/constant mixture
   breaks it by a factor 35). The rate holds under a stability assumption on the teacher, or when the
   reference kernel is independent of the data (the certificates of §7), neither of which is checked
   here;
2. ``K``: the theorem needs ``KL(q_S || q_T)`` between training kernels. The predictive ``K̂`` is
   smaller (data processing), so plugging it in can only make the bound too small.

So the check is ``kind="conditional"`` with ``assumptions_met=False``: a "violation" is evidence against
the assumptions, not against the theorem. ``K`` is taken at the upper end of its interval.

**Theorem 2** (lower side, ``gen(S) >= c*gen(T) - K/eta``) with the ``eta = 2(1-c) gen(T)/sigma_n^2`` that
sub-Gaussianity implies inherits the same sigma^2/n assumption; it is not defined when ``gen(T) <= 0``.

Every bound here is evaluated at both ends of ``K̂``'s confidence interval: ``bound`` (what "violated"
is tested against) at the end that makes the bound valid (the upper limit ``K_up``), ``bound_holds``
(what "holds" is tested against) at the other end ``K_lo`` (:mod:`kdbounds.checks.verdicts`).

**Product form** ``K = n*K̂`` (``sqrt(2 sigma^2 K̂)``): the KL between the *products* of the per-input
predictive laws over the ``n`` training inputs is ``n*K̂`` exactly, and it is the divergence of an
honest theorem — the Gibbs-classifier check (:mod:`kdbounds.checks.gibbs`), where the predictors are
the stochastic (Gibbs) classifiers, the loss is their 0–1 loss, and the product runs over training
*and* test inputs. The product form here drops the test-input KL and compares the gaps of the
deterministic (argmax / logit) predictors, which are not draws from those product laws; it is an
instance of nothing, hence ``kind="proxy"``.
"""

from __future__ import annotations

import math

from .. import bounds as B
from .._checks import check_int, check_nonnegative, check_positive, check_probability
from .._records import Estimate
from .verdicts import CheckRecord, make_record, not_defined

__all__ = ["theorem1_sigma_n", "theorem2_central", "product_law_proxy", "ASSUMPTION_SIGMA_N"]

ASSUMPTION_SIGMA_N = (
    "stability / σ²/n rate: the teacher's gap is (σ/√n)-sub-Gaussian under the teacher kernel given D_n "
    "(not implied by a bounded loss when D_n is fixed, theory.md §4 Caution); and K̂ (predictive, mean over "
    "training inputs) stands for KL(q_S‖q_T) between training kernels, which it underestimates "
    "(data processing; deterministic networks have no kernel)")


def _estimate(name: str, value: object) -> Estimate:
    if not isinstance(value, Estimate):
        raise TypeError(f"{name}: expected an Estimate (value, stderr, n and its interval), got {type(value).__name__}")
    return value


def _k_upper(k: Estimate) -> float:
    hi = k.upper()
    if not math.isfinite(hi):
        raise ValueError(f"divergence: its upper confidence limit is not finite ({hi!r}); need n >= 2 inputs")
    return max(hi, k.value, 0.0)


def _k_lower(k: Estimate) -> float:
    """The lower confidence limit of ``K̂`` (``>= 0``, ``<= K̂``): the end unfavourable to "holds"."""
    lo = k.lower()
    if not math.isfinite(lo):
        raise ValueError(f"divergence: its lower confidence limit is not finite ({lo!r}); need n >= 2 inputs")
    return max(min(lo, k.value), 0.0)


def _k_inputs(k: Estimate, k_up: float, k_lo: float) -> dict[str, float | None]:
    return {"K": k.value, "K_upper": k_up, "K_lower": k_lo, "K_se": k.stderr, "K_level": k.level}


def theorem1_sigma_n(diff: Estimate, divergence: Estimate, sigma: float, n: int, *, loss: str,
                     alpha: float = 0.05, teacher: str | None = None, student: str | None = None) -> CheckRecord:
    r"""Theorem 1 in the sigma^2/n form, conditional on :data:`ASSUMPTION_SIGMA_N`.

    .. math:: |\mathrm{gen}(S) - \mathrm{gen}(T)| \le \sqrt{2\sigma^2 K_{\rm up}/n}

    ("holds" is tested against the same bound at ``K_lo``.)

    Args:
        diff: ``gen(S) - gen(T)`` with its standard error (paired per-example differences).
        divergence: ``K̂`` on the training inputs with its interval (``ci_low, ci_high`` = ``K_lo, K_up``).
        sigma: per-sample proxy (``range/2``).
        n: training-set size.
        loss: loss name.
        alpha, teacher, student: recorded.

    Returns:
        The ``thm1_sigma_n`` :class:`CheckRecord` (kind ``"conditional"``, side ``"abs"``).

    Raises:
        ValueError: ``sigma < 0``, ``n < 1``, a divergence without a finite interval.
        TypeError: ``diff`` or ``divergence`` not an :class:`Estimate`.
    """
    sigma = check_nonnegative("sigma", sigma)
    n = check_int("n", n, minimum=1)
    diff, divergence = _estimate("diff", diff), _estimate("divergence", divergence)
    k_up, k_lo = _k_upper(divergence), _k_lower(divergence)
    bound = B.subgaussian_bound(k_up, sigma, n)
    return make_record("thm1_sigma_n", "conditional", loss=loss, side="abs", bound=bound, observed=diff.value,
                       observed_se=diff.stderr, assumptions_met=False, assumption=ASSUMPTION_SIGMA_N,
                       inputs={**_k_inputs(divergence, k_up, k_lo), "sigma": sigma, "n": n},
                       alpha=alpha, teacher=teacher, student=student,
                       bound_holds=B.subgaussian_bound(k_lo, sigma, n))


def theorem2_central(gen_teacher: Estimate, gen_student: Estimate, divergence: Estimate, sigma: float, n: int, *,
                     loss: str, c: float = 0.5, alpha: float = 0.05, teacher: str | None = None,
                     student: str | None = None) -> CheckRecord:
    r"""Theorem 2 with the central condition implied by sigma^2/n sub-Gaussianity (conditional).

    .. math:: \mathrm{gen}(S) \ge c\,\mathrm{gen}(T) - K_{\rm up}/\eta,\qquad
        \eta = 2(1-c)\,\mathrm{gen}(T)\,n/\sigma^2

    ("holds" is tested against the larger bound at ``K_lo``.)

    ``not_defined`` when ``gen(T) <= 0`` (no positive eta). The teacher's gap enters the bound as its
    point estimate (its error is part of the conditional statement); the observed side is ``gen(S)``
    with its standard error.

    Args:
        gen_teacher: the teacher's gap ``gen(T)``.
        gen_student: the student's gap ``gen(S)`` (the observed side).
        divergence: ``K̂`` on the training inputs with its interval (``ci_high`` = ``K_up``).
        sigma: per-sample proxy (``range/2``, ``> 0``).
        n: training-set size.
        loss: loss name.
        c: the constant ``c`` in (0, 1).
        alpha, teacher, student: recorded.

    Returns:
        The ``thm2_central`` :class:`CheckRecord` (side ``"lower"``; ``not_defined`` when ``gen(T) <= 0``).

    Raises:
        ValueError: ``sigma <= 0``, ``n < 1``, ``c`` outside [0, 1), a divergence without a finite interval.
        TypeError: a gap or the divergence not an :class:`Estimate`.
    """
    sigma = check_positive("sigma", sigma)
    n = check_int("n", n, minimum=1)
    c = check_probability("c", c)
    if c == 1.0:
        raise ValueError("c: expected a number in [0, 1), got 1.0 (c = 1 gives eta = 0)")
    gen_teacher, gen_student = _estimate("gen_teacher", gen_teacher), _estimate("gen_student", gen_student)
    divergence = _estimate("divergence", divergence)
    k_up, k_lo = _k_upper(divergence), _k_lower(divergence)
    if gen_teacher.value <= 0:
        return not_defined("thm2_central", "conditional", loss=loss, side="lower",
                           reason=f"gen(T) = {gen_teacher.value:.4g} <= 0: the central condition implied by "
                                  "sub-Gaussianity needs a positive teacher gap",
                           assumption=ASSUMPTION_SIGMA_N, inputs={"c": c, "K_upper": k_up},
                           alpha=alpha, teacher=teacher, student=student)
    sig_n = sigma / math.sqrt(n)
    eta = B.central_eta_from_subgaussian(gen_teacher.value, sig_n, c)
    bound = B.central_lower_bound(gen_teacher.value, k_up, eta, c)
    return make_record("thm2_central", "conditional", loss=loss, side="lower", bound=bound,
                       observed=gen_student.value, observed_se=gen_student.stderr, assumptions_met=False,
                       assumption=ASSUMPTION_SIGMA_N,
                       inputs={"c": c, "eta": eta, "gen_teacher": gen_teacher.value,
                               **_k_inputs(divergence, k_up, k_lo), "sigma": sigma, "n": n},
                       alpha=alpha, teacher=teacher, student=student,
                       bound_holds=B.central_lower_bound(gen_teacher.value, k_lo, eta, c))


def product_law_proxy(diff: Estimate, divergence: Estimate, sigma: float, n: int, *, loss: str,
                      alpha: float = 0.05, teacher: str | None = None, student: str | None = None) -> CheckRecord:
    r"""The product-law form ``sqrt(2 sigma^2*n K_up / n) = sigma sqrt(2 K_up)`` (``kind="proxy"``; see the module
    docstring for why it is an instance of nothing and :func:`kdbounds.checks.gibbs.gibbs_classifier` for
    the honest version).

    Args:
        diff: ``gen(S) - gen(T)`` with its standard error.
        divergence: ``K̂`` on the training inputs with its interval (``ci_high`` = ``K_up``).
        sigma: per-sample proxy (``range/2``).
        n: training-set size.
        loss: loss name.
        alpha, teacher, student: recorded.

    Returns:
        The ``thm1_product_proxy`` :class:`CheckRecord` (kind ``"proxy"``).

    Raises:
        ValueError: ``sigma < 0``, ``n < 1``, a divergence without a finite interval.
        TypeError: ``diff`` or ``divergence`` not an :class:`Estimate`.
    """
    sigma = check_nonnegative("sigma", sigma)
    n = check_int("n", n, minimum=1)
    diff, divergence = _estimate("diff", diff), _estimate("divergence", divergence)
    k_up, k_lo = _k_upper(divergence), _k_lower(divergence)
    bound = B.subgaussian_bound(n * k_up, sigma, n)
    return make_record("thm1_product_proxy", "proxy", loss=loss, side="abs", bound=bound, observed=diff.value,
                       observed_se=diff.stderr, assumptions_met=False,
                       assumption=("proxy: K = n·K̂_train (KL of the per-input product laws on the training "
                                   "inputs only) with the deterministic predictors' gaps; the valid use of "
                                   "product laws is the gibbs_classifier check"),
                       inputs={**_k_inputs(divergence, k_up, k_lo), "K_product": n * k_up, "sigma": sigma,
                               "n": n},
                       alpha=alpha, teacher=teacher, student=student,
                       bound_holds=B.subgaussian_bound(n * k_lo, sigma, n))
