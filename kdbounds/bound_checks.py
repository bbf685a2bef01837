r"""Bound checks for trained teacher–student pairs (theory.md §4 and §6).

For a teacher ``T`` and a student ``S`` this module measures, on true labels,

* the losses and gaps ``gen = L_test − L_train`` for a clipped cross-entropy
  ``ℓ_p(z, y) = min(−log softmax(z)_y, log(1/p_min))`` (per-sample proxy ``σ = log(1/p_min)/2``,
  the sub-Gaussian constant of a loss with range ``[0, log(1/p_min)]``) and for the 0–1 loss (``σ = ½``);
* the predictive distillation divergence ``K̂ = mean_x KL(p_S(·|x) ‖ p_T(·|x))`` on the training inputs
  (and on held-out inputs);
* the teacher's curvature for the clipped loss: training-loss Hessian trace and top eigenvalue, and the
  gap function ``f(w) = L_test(w) − L_train(w)``: ``G₀ = ‖∇f(w_T)‖``, ``tr ∇²f``, ``tr (∇²f)²`` and the
  extreme eigenvalues of ``∇²f`` of both signs (Lanczos);

and evaluates Theorems 1, 2, 3A and 3B of :mod:`kdbounds.bounds` next to the observed
``|gen(S) − gen(T)|``.

**Conventions (stated, never silent).** Trained networks are deterministic, so the kernels of the theory
are instantiated as follows (theory.md §6, "open conventions"):

* ``K`` is the predictive divergence ``K̂`` on the training inputs (the predictive-kernel variant).
* Theorem 1, ``"per_sample"``: ``σ_n = σ/√n`` with ``K = K̂`` → ``sqrt(2σ²K̂/n)`` (canonical form);
  ``"product"``: ``K = n·K̂`` (the KL between the products of the per-input predictive laws over the
  ``n`` training inputs) → ``sqrt(2σ²K̂)``, the conservative reading.
* Theorem 3A/3B use a Gaussian teacher kernel ``N(w_T, s² I)`` around the trained weights, with ``s``
  given or chosen so that the kernel raises the teacher's training loss by ``δ`` to second order:
  ``½ s² tr ∇²L_train = δ``. 3A takes the radius ``ρ = s√p`` (where a Gaussian's mass concentrates; a
  Gaussian is not supported in a ball, so its assumption is flagged as not met) and ``β`` = the largest
  absolute eigenvalue of the gap Hessian at ``w_T`` (a local, not a uniform, bound). 3B uses the
  sub-gamma form with ``v = s²G₀² + ½ s⁴ tr(∇²f)²`` and ``c± = s² max(λ_max(±∇²f), 0)``; the gap is
  treated as quadratic around ``w_T`` (flagged). Lanczos Ritz values lie inside the spectrum, so ``c±``
  are slight underestimates; ``tr(∇²f)²`` is a Hutchinson estimate whose standard error is recorded.
* Theorem 2 (lower side) uses the central condition implied by sub-Gaussianity,
  ``η = 2(1−c)·gen(T)/σ_n²`` with ``c = ½``, only defined when ``gen(T) > 0``.

A bound that fails where its assumptions hold is a finding: :class:`BoundCheck` records ``holds``
and ``assumptions_met`` separately and never hides a violation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from . import bounds as B
from .curvature import (
    GapHessianOperator,
    HessianOperator,
    hutchinson_trace,
    make_generator,
    probe_vectors,
    top_eigenvalues,
)
from .divergence import DivergenceEstimate, collect_logits, predictive_divergence

__all__ = [
    "LOSSES",
    "clipped_cross_entropy",
    "zero_one_loss",
    "per_example_losses",
    "LossStats",
    "loss_stats",
    "TeacherCurvature",
    "measure_curvature",
    "kernel_std_from_loss_increase",
    "BoundCheck",
    "check_bounds",
    "PairReport",
    "evaluate_pair",
]

LOSSES = ("clipped_ce", "zero_one")


# ------------------------------------------------------------------------------------------------
# losses
# ------------------------------------------------------------------------------------------------
def _check_p_min(p_min: float) -> float:
    if not isinstance(p_min, (int, float)) or not (0.0 < float(p_min) < 1.0):
        raise ValueError(f"p_min must be in (0, 1) (the clipped loss is min(CE, log(1/p_min))), got {p_min!r}")
    return float(p_min)


def clipped_cross_entropy(logits: Tensor, labels: Tensor, p_min: float = 1e-3, reduction: str = "mean") -> Tensor:
    r"""Clipped cross-entropy ``ℓ = min(−log softmax(z)_y, log(1/p_min))`` (range ``[0, log(1/p_min)]``).

    ``reduction`` is ``"mean"`` (a scalar: usable as ``loss_fn`` of a Hessian operator) or ``"none"``.
    """
    p_min = _check_p_min(p_min)
    ce = nn.functional.cross_entropy(logits, labels, reduction="none")
    out = torch.clamp(ce, max=math.log(1.0 / p_min))
    if reduction == "none":
        return out
    if reduction == "mean":
        return out.mean()
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def zero_one_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-example 0–1 loss ``1[argmax z ≠ y]`` as float."""
    return (logits.argmax(dim=1) != labels).to(torch.float64)


def per_example_losses(logits: Tensor, labels: Tensor, loss: str = "clipped_ce", p_min: float = 1e-3) -> Tensor:
    """Per-example losses (float64) for ``loss`` in :data:`LOSSES`."""
    if loss == "clipped_ce":
        return clipped_cross_entropy(logits.double(), labels, p_min, reduction="none")
    if loss == "zero_one":
        return zero_one_loss(logits, labels)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def loss_sigma(loss: str, p_min: float = 1e-3) -> float:
    """Per-sample sub-Gaussian proxy of a bounded loss: half its range (Hoeffding)."""
    if loss == "clipped_ce":
        return 0.5 * math.log(1.0 / _check_p_min(p_min))
    if loss == "zero_one":
        return 0.5
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


@dataclass(frozen=True)
class LossStats:
    """Train/test mean loss of one model and its gap ``gen = test − train`` with standard errors."""

    loss: str
    train: float
    test: float
    gap: float
    train_se: float
    test_se: float
    gap_se: float
    sigma: float
    p_min: float | None
    n_train: int
    n_test: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean_se(x: Tensor) -> tuple[float, float]:
    n = x.numel()
    if n == 0:
        raise ValueError("empty data: no examples to average the loss over")
    m = float(x.mean())
    se = float(x.std(unbiased=True) / math.sqrt(n)) if n > 1 else math.inf
    return m, se


def loss_stats(train_logits: Tensor, train_labels: Tensor, test_logits: Tensor, test_labels: Tensor,
               loss: str = "clipped_ce", p_min: float = 1e-3) -> LossStats:
    """Mean losses on train and test and the gap, with ``se(gap) = sqrt(se_train² + se_test²)``."""
    for name, z, y in (("train", train_logits, train_labels), ("test", test_logits, test_labels)):
        if z.ndim != 2 or y.ndim != 1 or z.shape[0] != y.shape[0]:
            raise ValueError(f"{name}_logits must be (n, classes) and {name}_labels (n,) with the same n, "
                             f"got {tuple(z.shape)} and {tuple(y.shape)}")
    ltr = per_example_losses(train_logits, train_labels, loss, p_min)
    lte = per_example_losses(test_logits, test_labels, loss, p_min)
    tr, tr_se = _mean_se(ltr)
    te, te_se = _mean_se(lte)
    return LossStats(loss, tr, te, te - tr, tr_se, te_se, math.hypot(tr_se, te_se), loss_sigma(loss, p_min),
                     p_min if loss == "clipped_ce" else None, int(ltr.numel()), int(lte.numel()))


def _paired_gap_difference(s_train: Tensor, t_train: Tensor, s_test: Tensor, t_test: Tensor) -> tuple[float, float]:
    """``gen(S) − gen(T)`` and its standard error from per-example paired differences."""
    dtr = s_train - t_train
    dte = s_test - t_test
    m_tr, se_tr = _mean_se(dtr)
    m_te, se_te = _mean_se(dte)
    return m_te - m_tr, math.hypot(se_tr, se_te)


# ------------------------------------------------------------------------------------------------
# curvature of the teacher
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TeacherCurvature:
    """Curvature of the teacher's clipped loss at its trained weights (all estimates with their errors).

    ``train_*`` refer to the training-loss Hessian ``H = ∇²L_train``; ``gap_*`` to the gap function
    ``f = L_test − L_train``: ``gap_grad_norm = G₀ = ‖∇f‖``, ``gap_trace = tr ∇²f``,
    ``gap_frob_sq = tr (∇²f)²``, ``gap_eig_max``/``gap_eig_min`` its extreme eigenvalues.
    Eigenvalue errors are Lanczos residual bounds; trace errors are Hutchinson standard errors.
    """

    train_trace: float
    train_trace_se: float
    train_top_eig: float
    train_top_eig_residual: float
    gap_grad_norm: float
    gap_trace: float
    gap_trace_se: float
    gap_frob_sq: float
    gap_frob_sq_se: float
    gap_eig_max: float
    gap_eig_min: float
    gap_eig_residual: float
    n_params: int
    n_train_examples: int
    n_test_examples: int
    p_min: float
    n_matvecs: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def gap_abs_eig(self) -> float:
        """``β = max(|λ_max|, |λ_min|)`` of the gap Hessian."""
        return max(abs(self.gap_eig_max), abs(self.gap_eig_min))


def _batches(x: Tensor, y: Tensor, batch_size: int) -> list[tuple[Tensor, Tensor]]:
    if x.shape[0] == 0:
        raise ValueError("empty data: no examples to measure curvature on")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"inputs and labels differ in length: {x.shape[0]} vs {y.shape[0]}")
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]


def measure_curvature(model: nn.Module, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], *,
                      p_min: float = 1e-3, batch_size: int = 128, trace_matvecs: int = 16,
                      lanczos_matvecs: int = 20, seed: int = 0, dtype: torch.dtype | None = None,
                      params: Any = None) -> TeacherCurvature:
    """Measure the teacher's curvature for the clipped cross-entropy (eval-mode BatchNorm).

    Args:
        model: the teacher (its weights are the kernel's centre ``w_T``).
        train, test: ``(inputs, labels)`` tensors (already normalised, no augmentation) on which the
            training and held-out losses are defined; subsets are fine (their sizes are recorded).
        p_min: clipping of the loss (the same as in the loss statistics).
        batch_size: batch size of the products.
        trace_matvecs: Hutchinson probes for each trace / Frobenius estimate (≥ 2).
        lanczos_matvecs: Lanczos steps for the extreme eigenvalues (≥ 2).
        seed: probe seed.
        dtype: e.g. ``torch.float64`` for a check in double precision.
        params: parameter subset (see :func:`kdbounds.curvature.select_parameters`; ``None`` = all).
            The Gaussian kernel of Theorems 3A/3B then perturbs only these parameters.

    The gap trace ``tr ∇²f`` and ``tr (∇²f)²`` share the same Rademacher probes ``z``
    (``zᵀ∇²f z`` and ``‖∇²f z‖²`` from one product each), which halves their cost; each keeps its own
    standard error.
    """
    p_min = _check_p_min(p_min)
    start = time.perf_counter()

    def loss_fn(out: Any, y: Tensor) -> Tensor:
        return clipped_cross_entropy(out, y, p_min)

    tr_b = _batches(*train, batch_size)
    te_b = _batches(*test, batch_size)
    if not (isinstance(trace_matvecs, int) and trace_matvecs >= 2):
        raise ValueError(f"trace_matvecs must be an int >= 2 (a standard error needs two probes), got {trace_matvecs!r}")
    if not (isinstance(lanczos_matvecs, int) and lanczos_matvecs >= 2):
        raise ValueError(f"lanczos_matvecs must be an int >= 2, got {lanczos_matvecs!r}")
    h_train = HessianOperator(model, loss_fn, tr_b, params, dtype=dtype)
    h_test = HessianOperator(model, loss_fn, te_b, params, dtype=dtype)
    gap = GapHessianOperator.from_operators(h_test, h_train)
    t_tr = hutchinson_trace(h_train, trace_matvecs, seed=seed)
    e_tr = top_eigenvalues(h_train, 1, which="largest", max_matvecs=lanczos_matvecs, seed=seed)
    Z = probe_vectors(gap.shape[0], trace_matvecs, "rademacher", make_generator(seed + 1), gap.dtype, gap.device)
    HZ = gap.matmat(Z)
    t_gap = _mean_se((Z * HZ).sum(dim=0).double().cpu())
    f_gap = _mean_se((HZ * HZ).sum(dim=0).double().cpu())
    e_gap = top_eigenvalues(gap, 1, which="both", max_matvecs=lanczos_matvecs, seed=seed + 3)
    g0 = float(torch.linalg.vector_norm(gap.gradient()))
    n_mv = h_train.num_matvecs + h_test.num_matvecs
    return TeacherCurvature(
        train_trace=float(t_tr.value), train_trace_se=float(t_tr.stderr),
        train_top_eig=float(e_tr.eigenvalues[0]), train_top_eig_residual=float(e_tr.residuals[0]),
        gap_grad_norm=g0, gap_trace=t_gap[0], gap_trace_se=t_gap[1],
        gap_frob_sq=f_gap[0], gap_frob_sq_se=f_gap[1],
        gap_eig_max=float(e_gap.eigenvalues[0]), gap_eig_min=float(e_gap.eigenvalues[-1]),
        gap_eig_residual=float(np.max(e_gap.residuals)),
        n_params=int(h_train.shape[0]), n_train_examples=int(h_train.num_examples),
        n_test_examples=int(h_test.num_examples), p_min=p_min, n_matvecs=int(n_mv),
        seconds=time.perf_counter() - start,
    )


def kernel_std_from_loss_increase(train_trace: float, loss_increase: float = 0.05) -> float:
    r"""``s`` with ``½ s² tr ∇²L_train = δ``: a Gaussian kernel ``N(w_T, s² I)`` that raises the training
    loss by ``δ`` (to second order). ``tr ∇²L_train`` must be positive."""
    if not (isinstance(loss_increase, (int, float)) and loss_increase > 0):
        raise ValueError(f"loss_increase must be > 0, got {loss_increase!r}")
    if not (math.isfinite(train_trace) and train_trace > 0):
        raise ValueError(
            f"the training-Hessian trace must be positive to set the kernel width, got {train_trace!r}; "
            "pass kernel_std explicitly")
    return math.sqrt(2.0 * loss_increase / train_trace)


# ------------------------------------------------------------------------------------------------
# the checks
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoundCheck:
    """One bound evaluated next to the observed gap difference.

    ``side`` is ``"abs"`` (a bound on ``|gen(S) − gen(T)|``), ``"upper"`` / ``"lower"`` (bounds on the
    signed ``gen(S) − gen(T)``) or ``"student_lower"`` (a lower bound on ``gen(S)`` itself).
    ``observed`` is the quantity the bound speaks about; ``ratio = bound / observed`` (tightness; for
    ``"abs"``/``"upper"``) and ``holds`` whether the inequality is satisfied by the point estimate.
    ``assumptions_met`` is ``False`` when the instantiation departs from the theorem's hypotheses
    (``assumptions`` says how); a violation with ``assumptions_met`` is a finding.
    """

    name: str
    loss: str
    side: str
    bound: float
    observed: float
    observed_se: float
    ratio: float
    holds: bool
    assumptions_met: bool
    assumptions: str
    params: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(bound: float, observed: float) -> float:
    if observed == 0.0:
        return math.inf if bound > 0 else 1.0
    return bound / abs(observed)


def check_bounds(gen_teacher: float, gen_student: float, divergence: float, sigma: float, n: int, *,
                 loss: str = "clipped_ce", diff_se: float = 0.0,
                 curvature: TeacherCurvature | None = None, kernel_std: float | None = None,
                 loss_increase: float = 0.05, central_c: float = 0.5) -> tuple[BoundCheck, ...]:
    """Evaluate Theorems 1, 2 (and 3A, 3B when ``curvature`` is given) for one pair and one loss.

    Args:
        gen_teacher, gen_student: measured gaps ``L_test − L_train`` (true labels).
        divergence: ``K̂`` (predictive divergence on the training inputs, nats, ≥ 0).
        sigma: per-sample sub-Gaussian proxy of the loss; ``n``: number of training examples.
        loss: name of the loss (recorded).
        diff_se: standard error of ``gen(S) − gen(T)`` (recorded).
        curvature: the teacher's curvature for this loss (Theorems 3A/3B), or ``None``.
        kernel_std: ``s`` of the Gaussian teacher kernel; default from ``loss_increase``.
        central_c: ``c`` of Theorem 2's central condition.
    """
    K = float(divergence)
    if not math.isfinite(K) or K < 0:
        raise ValueError(f"divergence must be a finite non-negative number, got {divergence!r}")
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n must be a positive int (training set size), got {n!r}")
    for name, val in (("gen_teacher", gen_teacher), ("gen_student", gen_student)):
        if not math.isfinite(val):
            raise ValueError(f"{name} must be finite, got {val!r}")
    diff = float(gen_student - gen_teacher)
    obs = abs(diff)
    sig_n = sigma / math.sqrt(n)
    out: list[BoundCheck] = []

    b1 = B.subgaussian_bound(K, sigma, n)
    out.append(BoundCheck("thm1_per_sample", loss, "abs", b1, obs, diff_se, _ratio(b1, obs), obs <= b1, False,
                          "bounded loss ⇒ σ-sub-Gaussian per sample; K = K̂ (predictive, mean over inputs); "
                          "deterministic networks are not the stochastic kernels of the theorem",
                          {"sigma": sigma, "n": float(n), "K": K}))
    b1p = B.subgaussian_bound(K * n, sigma, n)
    out.append(BoundCheck("thm1_product", loss, "abs", b1p, obs, diff_se, _ratio(b1p, obs), obs <= b1p, False,
                          "as thm1_per_sample with K = n·K̂ (product of per-input predictive laws)",
                          {"sigma": sigma, "n": float(n), "K": K * n}))
    if gen_teacher > 0:
        eta = B.central_eta_from_subgaussian(gen_teacher, sig_n, central_c)
        b2 = B.central_lower_bound(gen_teacher, K, eta, central_c)
        out.append(BoundCheck("thm2_central", loss, "student_lower", b2, gen_student, 0.0, math.nan,
                              gen_student >= b2, False,
                              f"central condition from sub-Gaussianity, c = {central_c}, η = 2(1−c)gen(T)/σ_n²",
                              {"eta": eta, "c": central_c, "K": K}))
    else:
        out.append(BoundCheck("thm2_central", loss, "student_lower", math.nan, gen_student, 0.0, math.nan,
                              False, False, "not evaluated: gen(T) <= 0, so the central condition implied by "
                              "sub-Gaussianity (η = 2(1−c)gen(T)/σ_n²) does not exist", {"c": central_c, "K": K}))
    if curvature is not None:
        s = kernel_std if kernel_std is not None else kernel_std_from_loss_increase(curvature.train_trace,
                                                                                  loss_increase)
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"kernel_std must be > 0, got {kernel_std!r}")
        p = curvature.n_params
        g0 = curvature.gap_grad_norm
        beta = curvature.gap_abs_eig
        rho = s * math.sqrt(p)
        b3a = B.sharpness_radius_bound(K, rho, g0, beta)
        rho0 = B.tightness_radius(sig_n, g0, beta)
        out.append(BoundCheck("thm3a_radius", loss, "abs", b3a, obs, diff_se, _ratio(b3a, obs), obs <= b3a, False,
                              "Gaussian kernel N(w_T, s²I) is not supported in a ball (ρ = s√p); β is the gap "
                              "Hessian's largest |eigenvalue| at w_T, not a bound on the ball",
                              {"s": s, "rho": rho, "rho0": rho0, "G0": g0, "beta": beta, "K": K,
                               "tighter_than_thm1": float(rho < rho0)}))
        v = s * s * g0 * g0 + 0.5 * s ** 4 * max(curvature.gap_frob_sq, 0.0)
        c_plus = s * s * max(curvature.gap_eig_max, 0.0)
        c_minus = s * s * max(-curvature.gap_eig_min, 0.0)
        lo, hi = B.subgamma_bound(K, v, c_plus, c_minus)
        common = ("Gaussian teacher kernel N(w_T, s²I), gap quadratic around w_T (second-order Taylor); "
                  "v and c± from Hutchinson/Lanczos estimates")
        prm = {"s": s, "v": v, "c_plus": c_plus, "c_minus": c_minus, "K": K,
               "k0": (2 * (sig_n - math.sqrt(v)) ** 2 / c_plus ** 2 if c_plus > 0 and math.sqrt(v) < sig_n
                      else (math.inf if math.sqrt(v) < sig_n else 0.0))}
        two = max(hi, -lo)
        out.append(BoundCheck("thm3b_subgamma", loss, "abs", two, obs, diff_se, _ratio(two, obs), obs <= two,
                              False, common + "; two-sided: max(upper, −lower) bounds |gen(S) − gen(T)|", prm))
        out.append(BoundCheck("thm3b_subgamma_upper", loss, "upper", hi, diff, diff_se, _ratio(hi, diff),
                              diff <= hi, False, common, prm))
        out.append(BoundCheck("thm3b_subgamma_lower", loss, "lower", lo, diff, diff_se, _ratio(lo, diff),
                              diff >= lo, False, common, prm))
    return tuple(out)


# ------------------------------------------------------------------------------------------------
# one pair, end to end
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairReport:
    """Everything measured for one teacher–student pair."""

    teacher_losses: dict[str, LossStats]
    student_losses: dict[str, LossStats]
    gap_difference: dict[str, float]
    gap_difference_se: dict[str, float]
    divergence_train: DivergenceEstimate
    divergence_test: DivergenceEstimate
    curvature: TeacherCurvature | None
    checks: tuple[BoundCheck, ...]
    temperature: float
    p_min: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "teacher_losses": {k: v.to_dict() for k, v in self.teacher_losses.items()},
            "student_losses": {k: v.to_dict() for k, v in self.student_losses.items()},
            "gap_difference": dict(self.gap_difference),
            "gap_difference_se": dict(self.gap_difference_se),
            "divergence_train": self.divergence_train.to_dict(),
            "divergence_test": self.divergence_test.to_dict(),
            "curvature": None if self.curvature is None else self.curvature.to_dict(),
            "checks": [c.to_dict() for c in self.checks],
            "temperature": self.temperature,
            "p_min": self.p_min,
        }


def evaluate_pair(teacher: nn.Module, student: nn.Module, train: tuple[Tensor, Tensor],
                  test: tuple[Tensor, Tensor], *, curvature: TeacherCurvature | None = None,
                  p_min: float = 1e-3, temperature: float = 1.0, kernel_std: float | None = None,
                  loss_increase: float = 0.05, losses: Sequence[str] = LOSSES, n_boot: int = 500,
                  batch_size: int = 256, seed: int = 0) -> PairReport:
    """Measure losses, gaps and the divergence of a pair and evaluate every bound.

    ``train``/``test`` are ``(inputs, labels)`` tensors (normalised, not augmented). The gap is measured
    on exactly these sets and ``n = len(train)``. ``curvature`` (from :func:`measure_curvature` on the
    teacher, clipped loss) enables Theorems 3A/3B.
    """
    p_min = _check_p_min(p_min)
    for name, m in (("teacher", teacher), ("student", student)):
        if not isinstance(m, nn.Module):
            raise TypeError(f"{name} must be an nn.Module, got {type(m).__name__}")
    bad = [x for x in losses if x not in LOSSES]
    if bad or not losses:
        raise ValueError(f"losses must be a non-empty subset of {LOSSES}, got {tuple(losses)!r}")
    xtr, ytr = train
    xte, yte = test
    if xtr.shape[0] == 0 or xte.shape[0] == 0:
        raise ValueError("empty data: train and test must each hold at least one example")
    t_tr, s_tr = collect_logits([teacher, student], xtr, batch_size=batch_size)
    t_te, s_te = collect_logits([teacher, student], xte, batch_size=batch_size)
    if t_tr.shape[1] != s_tr.shape[1]:
        raise ValueError(f"class counts differ: the student has {s_tr.shape[1]} classes but the teacher has "
                         f"{t_tr.shape[1]}")
    ytr_c, yte_c = ytr.to(t_tr.device), yte.to(t_te.device)
    div_tr = predictive_divergence(s_tr, t_tr, temperature=temperature, n_boot=n_boot, seed=seed)
    div_te = predictive_divergence(s_te, t_te, temperature=temperature, n_boot=n_boot, seed=seed)
    t_losses, s_losses, diffs, diff_ses, checks = {}, {}, {}, {}, []
    for loss in losses:
        t_losses[loss] = loss_stats(t_tr, ytr_c, t_te, yte_c, loss, p_min)
        s_losses[loss] = loss_stats(s_tr, ytr_c, s_te, yte_c, loss, p_min)
        d, d_se = _paired_gap_difference(per_example_losses(s_tr, ytr_c, loss, p_min),
                                         per_example_losses(t_tr, ytr_c, loss, p_min),
                                         per_example_losses(s_te, yte_c, loss, p_min),
                                         per_example_losses(t_te, yte_c, loss, p_min))
        diffs[loss], diff_ses[loss] = d, d_se
        curv = curvature if loss == "clipped_ce" else None
        if curv is not None and abs(curv.p_min - p_min) > 1e-12:
            raise ValueError(f"curvature was measured with p_min={curv.p_min} but p_min={p_min}: use the same")
        checks.extend(check_bounds(t_losses[loss].gap, s_losses[loss].gap, div_tr.value, t_losses[loss].sigma,
                                   int(xtr.shape[0]), loss=loss, diff_se=d_se, curvature=curv,
                                   kernel_std=kernel_std, loss_increase=loss_increase))
    return PairReport(t_losses, s_losses, diffs, diff_ses, div_tr, div_te, curvature, tuple(checks),
                      float(temperature), p_min)
