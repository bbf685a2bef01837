r"""Theorems 3A/3B on networks, only where they are defined (theory.md §4, §6).

The theorems compare gaps *under Gaussian kernels on one parameter space*. For a teacher with
weights ``w_T`` and a student of the **same architecture** (``w_S``, brought to the teacher's
BatchNorm coordinates by :func:`student_in_teacher_space`), the kernels are

.. math:: q_T = \mathcal N(w_T, s^2 I_p),\qquad q_S = \mathcal N(w_S, s^2 I_p),\qquad
    K = \mathrm{KL}(q_S \| q_T) = \frac{\|w_S - w_T\|^2}{2 s^2}

(exact, no estimation), and the gap function is ``f(w) = L_test(w) - L_train(w)`` for the clipped
cross-entropy on fixed kernel samples (the *same* samples carry the curvature and the gaps). The
kernel scale is given (``kernel_std``) or set so that the kernel raises the teacher's training loss by
``delta`` to second order, :math:`\tfrac12 s^2 \operatorname{tr}\nabla^2 L_{\rm train} = \delta`, i.e.
:math:`s = \sqrt{2\delta / \operatorname{tr}\nabla^2 L_{\rm train}}`.

Gaps under the kernels, both reported:

* quadratic model around ``w_T`` (``b = nabla f(w_T)``, ``H = nabla^2 f(w_T)``, ``Delta = w_S - w_T``):
  :math:`\mathbb E_{q_T} f \approx f(w_T) + \tfrac12 s^2 \operatorname{tr} H`,
  :math:`\mathbb E_{q_S} f - \mathbb E_{q_T} f \approx b^\top\Delta + \tfrac12 \Delta^\top H \Delta` (one product);
* Monte Carlo over paired weight draws ``f(w_S + s eps) - f(w_T + s eps)``, ``eps ~ N(0, I)``, with its SE.

Theorem 3B (sub-gamma form): with ``A = s^2 H`` and ``b' = s b``,

.. math:: v = \|b'\|^2 + \tfrac12\|A\|_F^2 = s^2 G_0^2 + \tfrac12 s^4 \|H\|_F^2,\quad
    c_\pm = s^2 \max(\lambda_{\max}(\pm H), 0),\quad
    -\sqrt{2vK} - c_-K \le \mathbb E_{q_S} f - \mathbb E_{q_T} f \le \sqrt{2vK} + c_+K.

``||H||_F^2`` enters at its upper confidence limit (level ``ucl_level``; by default from the worst-case
variance of Rademacher Hutchinson samples, :func:`frobenius_upper_limit`) in ``bound`` (what "violated"
is tested against), and at its lower limit in ``bound_holds`` (what "holds" is tested against;
:func:`kernel_constants` with ``limit="lower"``), so neither verdict is made easier by the estimate. ``c+-`` (``c_mode``):

* ``"frobenius"`` (default, conservative): ``c+- = s^2 sqrt(UCL ||H||_F^2)``, valid since ``|lambda| <= ||H||_F``;
* ``"ritz"``: Lanczos Ritz value plus its residual. Ritz values lie *inside* the spectrum (biased low)
  and a Krylov space can miss the extreme eigenvalue, so this choice makes the check conditional on
  "Lanczos found the extreme eigenvalues".

Theorem 3A with ``rho = s sqrt p`` (where a Gaussian's mass concentrates) and ``beta = max(c₊, c₋)/s^2`` is a
*proxy*: a Gaussian is not supported in a ball and ``beta`` is not a bound on the ball.

Records: ``thm3b_subgamma_quadratic`` (the 3B instance for the quadratic model of ``f``:
``kind="demonstration"`` with ``c_mode="frobenius"``; its gap is exact but its bound is an interval, so its
verdict is decided by the two limits, ``method="input_limits"``, at the level ``ucl_level`` of each limit),
``thm3b_subgamma_mc`` (the network's own gaps: ``kind="conditional"`` on ``f`` being quadratic on the
kernel's support; the mean of ``M`` paired draws, tested with Student's t, ``dof = M - 1``),
``thm3a_radius`` (proxy; same draws).
Different architectures: all three are ``"not_defined"`` with a reason (no common parameter space;
the predictive ``K̂`` is not the kernel divergence).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from scipy.stats import norm
from scipy.stats import t as student_t
from torch import Tensor, nn

from .. import bounds as B
from .._data import as_batches, as_tensors, check_inputs, check_labels
from .._torch import mean_estimate, num_classes
from .._checks import check_choice, check_finite, check_int, check_open_unit, check_positive
from .._records import Estimate
from ..curvature import GapHessianOperator, HessianOperator, make_generator, probe_vectors, top_eigenvalues
from .losses import _values, clipped_ce_differentiable
from .verdicts import CheckRecord, make_record, not_defined

__all__ = [
    "C_MODES",
    "TeacherCurvature",
    "measure_teacher_curvature",
    "kernel_std_from_loss_increase",
    "student_in_teacher_space",
    "kernel_constants",
    "KernelGaps",
    "kernel_gaps",
    "kernel_checks",
    "frobenius_upper_limit",
    "FROB_UCL_METHODS",
    "KERNEL_CHECK_NAMES",
    "KERNEL_CHECK_KINDS",
]

C_MODES = ("frobenius", "ritz")
KERNEL_CHECK_NAMES = ("thm3b_subgamma_quadratic", "thm3b_subgamma_mc", "thm3a_radius")
#: kind of each kernel check (with ``c_mode="frobenius"``; ``"ritz"`` makes the quadratic one conditional)
KERNEL_CHECK_KINDS = {"thm3b_subgamma_quadratic": "demonstration", "thm3b_subgamma_mc": "conditional",
                      "thm3a_radius": "proxy"}


# ------------------------------------------------------------------------------------------------
# data and the gap function
# ------------------------------------------------------------------------------------------------
def _classification_batches(model: nn.Module, train: Any, test: Any, batch_size: int, dtype: torch.dtype | None
                            ) -> tuple[list[tuple[Tensor, Tensor]], list[tuple[Tensor, Tensor]]]:
    """``train`` and ``test`` as fixed batches, after the checks of a classifier's data, each error naming
    ``train`` or ``test``: finite floating inputs (of the model's dtype unless ``dtype`` converts them), the
    same input shape in both, one integer label per input below the model's number of classes (a
    one-example probe, the only evaluation before the checks pass)."""
    own = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    (xtr, ytr), (xte, yte) = as_tensors(train, "train"), as_tensors(test, "test")
    for name, x, y in (("train", xtr, ytr), ("test", xte, yte)):
        check_inputs(name, x, None if dtype is not None else own)  # with dtype, the inputs are converted
        check_labels(name, y)
    if xte.shape[1:] != xtr.shape[1:]:
        raise ValueError(f"test: inputs of shape {tuple(xte.shape[1:])} but train's are {tuple(xtr.shape[1:])}; "
                         f"both sets must be inputs of the same network")
    classes = num_classes([model], xtr.to(own) if own is not None else xtr, "train")[0]
    for name, y in (("train", ytr), ("test", yte)):
        check_labels(name, y, classes)
    return as_batches((xtr, ytr), "train", batch_size=batch_size), as_batches((xte, yte), "test", batch_size=batch_size)


class _GapFunction:
    """``f(w) = L_test(w) - L_train(w)`` (clipped CE, eval mode) of a flat parameter vector."""

    def __init__(self, model: nn.Module, names: Sequence[str], shapes: Sequence[tuple[int, ...]],
                 train: list[tuple[Tensor, Tensor]], test: list[tuple[Tensor, Tensor]], p_min: float) -> None:
        self.model = model
        self.names = list(names)
        self.shapes = list(shapes)
        self.numels = [math.prod(s) for s in shapes]
        self.train, self.test, self.p_min = train, test, p_min
        sel = set(self.names)
        self.fixed = {n: p.detach() for n, p in model.named_parameters() if n not in sel}
        self.fixed.update({n: b.detach() for n, b in model.named_buffers()})
        first = dict(model.named_parameters())[self.names[0]]
        self.dtype, self.device = first.dtype, first.device

    def _mean_loss(self, params: dict[str, Tensor], data: list[tuple[Tensor, Tensor]]) -> float:
        tot, n = 0.0, 0
        for x, y in data:
            x = x.to(self.device, self.dtype if x.dtype.is_floating_point else x.dtype)
            out = torch.func.functional_call(self.model, {**self.fixed, **params}, (x,))
            out = out[0] if isinstance(out, (tuple, list)) else out
            tot += float(clipped_ce_differentiable(out, y.to(self.device), self.p_min).sum())
            n += x.shape[0]
        return tot / n

    def __call__(self, flat: Tensor) -> float:
        parts = torch.split(flat.to(self.device, self.dtype), self.numels)
        params = {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes)}
        flags = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            with torch.no_grad():
                return self._mean_loss(params, self.test) - self._mean_loss(params, self.train)
        finally:
            for m, f in flags:
                m.training = f


# ------------------------------------------------------------------------------------------------
# the teacher's curvature (once per teacher)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TeacherCurvature:
    """Curvature of the teacher's clipped-CE gap function ``f = L_test - L_train`` at ``w_T``, on the
    kernel samples (which are also where the kernel gaps are measured).

    Attributes:
        n_params: ``p`` (selected parameters). n_train, n_test: kernel sample sizes. p_min: clipping.
        gap_at_teacher: ``f(w_T)``. grad_norm: ``G_0 = ||nabla f(w_T)||`` (exact).
        gap_trace: Hutchinson ``tr nabla^2 f`` (Estimate). gap_frob_sq: Hutchinson ``||nabla^2 f||_F^2`` (Estimate;
            ``ci_high`` its one-sided upper confidence limit at ``ucl_level``).
        gap_eig_max, gap_eig_min: Lanczos Ritz values (biased towards the interior of the spectrum).
        gap_eig_residual_max, gap_eig_residual_min: their residual norms. eig_converged: Lanczos flag.
        train_trace: Hutchinson ``tr nabla^2 L_train`` (sets the kernel scale from a loss increase).
        ucl_level: confidence level of the upper limits. n_matvecs: Hessian products. seconds: wall time.
        dtype: the dtype the curvature was computed in.
    The fields ``gradient``, ``operator``, ``gap_function``, ``param_names`` are for computation only
    (not serialised).
    """

    n_params: int
    n_train: int
    n_test: int
    p_min: float
    gap_at_teacher: float
    grad_norm: float
    gap_trace: Estimate
    gap_frob_sq: Estimate
    gap_eig_max: float
    gap_eig_min: float
    gap_eig_residual_max: float
    gap_eig_residual_min: float
    eig_converged: bool
    train_trace: Estimate
    ucl_level: float
    frob_ucl: str
    n_matvecs: int
    seconds: float
    dtype: str
    gradient: Tensor = field(repr=False, compare=False, default=None)
    operator: Any = field(repr=False, compare=False, default=None)
    gap_function: Any = field(repr=False, compare=False, default=None)
    param_names: tuple[str, ...] = field(repr=False, compare=False, default=())
    teacher_model: Any = field(repr=False, compare=False, default=None)

    _PRIVATE = ("gradient", "operator", "gap_function", "param_names", "teacher_model")

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-able dict of the measured fields (not the operator or the model).

        Returns:
            Field name -> value (non-finite numbers become ``None``).
        """
        from .._io import to_jsonable

        return to_jsonable({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                            if f.name not in self._PRIVATE})

    @property
    def frob_sq_upper(self) -> float:
        """Upper confidence limit of ``||nabla^2 f||_F^2``."""
        return float(self.gap_frob_sq.ci_high)

    @property
    def frob_sq_lower(self) -> float:
        """Lower confidence limit of ``||nabla^2 f||_F^2`` (the point estimate when none was recorded)."""
        lo = self.gap_frob_sq.ci_low
        return float(self.gap_frob_sq.value if lo is None else lo)


FROB_UCL_METHODS = ("worst_case", "t")


def frobenius_upper_limit(samples: Tensor, level: float = 0.99, method: str = "worst_case") -> Estimate:
    r"""Mean of the Hutchinson samples ``X_i = ||H z_i||^2`` (Rademacher ``z_i``) with one-sided upper and
    lower confidence limits of ``F = ||H||_F^2 = E X`` in ``ci_high`` and ``ci_low`` (each at ``level``).

    * ``"worst_case"`` (default): for Rademacher probes
      :math:`\operatorname{Var} X = 2\sum_{i\ne j}(H^2)_{ij}^2 \le 2\|H^2\|_F^2 \le 2F^2`, so with the
      normal approximation of the mean,

      .. math:: F \le \frac{\bar X}{1 - z_{\rm level}\sqrt{2/m}}\qquad (m > 2 z^2),\qquad
          F \ge \frac{\bar X}{1 + z_{\rm level}\sqrt{2/m}}.

      It does not rely on the sample variance, which a Hessian with an outlier eigenvalue makes
      heavy-tailed (a t-interval then under-covers: 0.89–0.97 instead of 0.99 in a simulation with a
      spiked 200×200 matrix and 8–128 probes).
    * ``"t"``: ``X_bar +- t_{level, m-1}*SE`` (the textbook interval; anti-conservative for spiked spectra;
      the lower limit clipped at 0).

    Args:
        samples: the Hutchinson samples ``X_i`` (at least 2).
        level: one-sided confidence level in (0, 1).
        method: ``"worst_case"`` or ``"t"``.

    Returns:
        :class:`Estimate` with the sample mean, the lower limit in ``ci_low`` and the upper one in ``ci_high``.

    Raises:
        ValueError: fewer probes than the worst-case limit needs (``m <= 2 z^2``; ask for more
            ``trace_matvecs`` or a lower ``ucl_level``), NaN/inf samples, a bad level or method.
        TypeError: samples that are not numbers.
    """
    level = check_open_unit("level", level)
    method = check_choice("method", method, FROB_UCL_METHODS)
    v = _values("samples", samples)
    n = int(v.numel())
    if n < 2:
        raise ValueError(f"samples: need at least 2 probes, got {n}")
    if not bool(torch.isfinite(v).all()):
        raise ValueError(f"samples: {int((~torch.isfinite(v)).sum())} non-finite (NaN/inf) Hutchinson samples; the "
                         f"Hessian products are not finite")
    est = mean_estimate(v, "samples")
    m, se = est.value, est.stderr
    if method == "t":
        q = float(student_t.ppf(level, n - 1)) * se
        lo, hi = max(m - q, 0.0), m + q
    else:
        c = float(norm.ppf(level)) * math.sqrt(2.0 / n)
        if c >= 1.0:
            need = math.floor(2.0 * float(norm.ppf(level)) ** 2) + 1
            raise ValueError(f"trace_matvecs: the worst-case upper limit of ‖H‖_F² at level {level} needs more than "
                             f"{need - 1} probes, got {n}; raise trace_matvecs or lower ucl_level")
        lo, hi = m / (1.0 + c), m / (1.0 - c)
    return Estimate(m, se, n, lo, hi, level)


def measure_teacher_curvature(teacher: nn.Module, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], *,
                              p_min: float = 1e-3, batch_size: int = 256, trace_matvecs: int = 32,
                              lanczos_matvecs: int = 20, ucl_level: float = 0.99, frob_ucl: str = "worst_case",
                              seed: int = 0,
                              dtype: torch.dtype | None = None, params: Any = None) -> TeacherCurvature:
    r"""Measure ``G_0``, ``tr nabla^2 f``, ``||nabla^2 f||_F^2`` and ``tr nabla^2 L_train`` (one set of Rademacher
    probes: the training Hessian's products are half of the gap's, so its trace costs none of its own), extreme
    eigenvalues of ``nabla^2 f`` at the teacher's weights (eval-mode BatchNorm); ``2 (trace_matvecs +
    lanczos_matvecs)`` Hessian products at most.

    .. math:: \widehat{\operatorname{tr}} H = \tfrac1m\textstyle\sum_i z_i^\top H z_i,\qquad
        \widehat{\|H\|_F^2} = \tfrac1m\textstyle\sum_i \|H z_i\|^2

    Args:
        teacher: the teacher network (its weights are the kernel centre ``w_T``).
        train, test: the kernel samples, each ``(inputs, labels)`` tensors, an iterable of such batches
            or a DataLoader; every kernel gap is measured on them too.
        p_min: clipping of the cross-entropy.
        batch_size: batch size of the products.
        trace_matvecs: probes for the traces (>= 2; more probes tighten the upper limit of ``||H||_F^2``).
        lanczos_matvecs: Lanczos steps for the extreme eigenvalues (>= 2).
        ucl_level: one-sided level of the upper confidence limit of ``||H||_F^2``.
        frob_ucl: how that limit is built (:func:`frobenius_upper_limit`; ``"worst_case"`` needs
            ``trace_matvecs > 2 z^2``, e.g. > 10 at 0.99, and costs a factor ``1/(1 - z sqrt(2/m))``).
        seed: probe seed.
        dtype: e.g. ``torch.float64``.
        params: parameter subset (default all).

    Returns:
        :class:`TeacherCurvature`.

    Raises:
        ValueError / TypeError: bad arguments, inputs or labels (non-integer, out of the teacher's classes,
            NaN/inf, the wrong dtype or shape; the message names ``train`` or ``test``), all before any product.
    """
    p_min = check_open_unit("p_min", p_min)
    ucl_level = check_open_unit("ucl_level", ucl_level)
    frob_ucl = check_choice("frob_ucl", frob_ucl, FROB_UCL_METHODS)
    trace_matvecs = check_int("trace_matvecs", trace_matvecs, minimum=2)
    lanczos_matvecs = check_int("lanczos_matvecs", lanczos_matvecs, minimum=2)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher: expected an nn.Module, got {type(teacher).__name__}")
    frobenius_upper_limit(torch.ones(trace_matvecs), ucl_level, frob_ucl)  # enough probes? (fails fast)
    tr_b, te_b = _classification_batches(teacher, train, test, batch_size, dtype)
    start = time.perf_counter()

    def loss_fn(out: Any, y: Tensor) -> Tensor:
        return clipped_ce_differentiable(out, y, p_min).mean()

    h_tr = HessianOperator(teacher, loss_fn, tr_b, params, dtype=dtype)
    h_te = HessianOperator(teacher, loss_fn, te_b, params, dtype=dtype)
    gap = GapHessianOperator.from_operators(h_te, h_tr)
    # one set of probes for both operators: H_train Z is a half of the gap's products, so the training trace
    # costs no product of its own (each trace is Hutchinson's on the same Z; they are correlated, never combined)
    Z = probe_vectors(gap.shape[0], trace_matvecs, "rademacher", make_generator(seed + 1), gap.dtype, gap.device)
    HZ_train = h_tr.matmat(Z)
    HZ = h_te.matmat(Z) - HZ_train
    t_train = frobenius_upper_limit((Z * HZ_train).sum(dim=0), ucl_level, "t")  # only value and SE are used
    t_gap = frobenius_upper_limit((Z * HZ).sum(dim=0), ucl_level, "t")
    f_gap = frobenius_upper_limit((HZ * HZ).sum(dim=0), ucl_level, frob_ucl)
    eig = top_eigenvalues(gap, 1, which="both", max_matvecs=lanczos_matvecs, seed=seed + 2)
    g = gap.gradient()
    model = h_tr.model
    shapes = [tuple(dict(model.named_parameters())[n].shape) for n in h_tr.param_names]
    fn = _GapFunction(model, h_tr.param_names, shapes, tr_b, te_b, p_min)
    return TeacherCurvature(
        n_params=int(gap.shape[0]), n_train=int(h_tr.num_examples), n_test=int(h_te.num_examples), p_min=p_min,
        gap_at_teacher=float(gap.gap()), grad_norm=float(torch.linalg.vector_norm(g)),
        gap_trace=Estimate(t_gap.value, t_gap.stderr, t_gap.n), gap_frob_sq=f_gap,
        gap_eig_max=float(eig.eigenvalues[0]), gap_eig_min=float(eig.eigenvalues[-1]),
        gap_eig_residual_max=float(eig.residuals[0]), gap_eig_residual_min=float(eig.residuals[-1]),
        eig_converged=bool(eig.converged),
        train_trace=Estimate(t_train.value, t_train.stderr, t_train.n), ucl_level=ucl_level,
        frob_ucl=frob_ucl, n_matvecs=int(h_tr.num_matvecs + h_te.num_matvecs), seconds=time.perf_counter() - start,
        dtype=str(gap.dtype).replace("torch.", ""), gradient=g.detach(), operator=gap, gap_function=fn,
        param_names=tuple(h_tr.param_names), teacher_model=model)


def kernel_std_from_loss_increase(train_trace: float, loss_increase: float = 0.05) -> float:
    r"""Kernel scale ``s`` with :math:`\tfrac12 s^2 \operatorname{tr}\nabla^2 L_{\rm train} = \delta`:

    .. math:: s = \sqrt{2\delta / \operatorname{tr}\nabla^2 L_{\rm train}}

    Args:
        train_trace: the trace of the training loss's Hessian at the teacher.
        loss_increase: ``delta``, the training-loss increase the kernel causes to second order.

    Returns:
        The kernel scale ``s``.

    Raises:
        ValueError: ``loss_increase`` not > 0, or a non-positive / non-finite trace (pass ``kernel_std``).
        TypeError: either is not a number.
    """
    delta = check_positive("loss_increase", loss_increase)
    train_trace = check_finite("train_trace", train_trace)
    if not train_trace > 0:
        raise ValueError(f"train_trace: expected a positive finite trace to set the kernel scale, got "
                         f"{train_trace!r}; pass kernel_std explicitly")
    return math.sqrt(2.0 * delta / train_trace)


# ------------------------------------------------------------------------------------------------
# the student on the teacher's parameter space
# ------------------------------------------------------------------------------------------------
def student_in_teacher_space(student: nn.Module, teacher: nn.Module) -> tuple[dict[str, Tensor] | None, str | None]:
    r"""The student's parameters expressed with the teacher's buffers, or ``(None, reason)``.

    Same architecture = the same parameter and buffer names and shapes. An eval-mode BatchNorm
    ``gamma (x - mu_S)/\sqrt{sigma^2_S + eps} + beta`` equals ``gamma' (x - mu_T)/\sqrt{sigma^2_T + eps} + beta'`` with

    .. math:: \gamma' = \gamma \frac{\sqrt{\sigma_T^2+\epsilon}}{\sqrt{\sigma_S^2+\epsilon}},\qquad
        \beta' = \beta + \gamma \frac{\mu_T - \mu_S}{\sqrt{\sigma_S^2+\epsilon}},

    so the returned parameters with the *teacher's* buffers compute exactly the student's function:
    a point of the teacher's parameter space (buffers fixed and shared, so the kernel KL is finite).
    Any other buffer must be equal in both models.

    Args:
        student: the student network.
        teacher: the teacher network.

    Returns:
        ``(params, None)`` with every parameter (detached copies) or ``(None, reason)``.
    """
    sp, tp = dict(student.named_parameters()), dict(teacher.named_parameters())
    sb, tb = dict(student.named_buffers()), dict(teacher.named_buffers())
    if list(sp) != list(tp) or any(sp[n].shape != tp[n].shape for n in sp):
        return None, ("different architectures (parameter names or shapes differ): there is no common parameter "
                      "space, so the kernels N(w_S, s²I) and N(w_T, s²I) of Theorems 3A/3B are not defined; the "
                      "predictive K̂ is not the kernel divergence (theory.md §6)")
    if list(sb) != list(tb) or any(sb[n].shape != tb[n].shape for n in sb):
        return None, "different architectures (buffer names or shapes differ)"
    out = {n: p.detach().clone() for n, p in sp.items()}
    handled: set[str] = set()
    smods, tmods = dict(student.named_modules()), dict(teacher.named_modules())
    for name, m in smods.items():
        if not isinstance(m, nn.modules.batchnorm._BatchNorm) or m.running_mean is None:
            continue
        tm = tmods[name]
        pre = f"{name}." if name else ""
        handled |= {pre + "running_mean", pre + "running_var", pre + "num_batches_tracked"}
        same = torch.equal(m.running_mean, tm.running_mean) and torch.equal(m.running_var, tm.running_var)
        if same:
            continue
        if not m.affine or m.eps != tm.eps:
            return None, (f"BatchNorm {name!r}: running statistics differ and the layer cannot be re-expressed "
                          "with the teacher's statistics (not affine or different eps); the kernel KL would be "
                          "infinite")
        s_sd = torch.sqrt(m.running_var.double() + m.eps)
        t_sd = torch.sqrt(tm.running_var.double() + tm.eps)
        gamma, beta = m.weight.detach().double(), m.bias.detach().double()
        new_gamma = gamma * t_sd / s_sd
        new_beta = beta + gamma * (tm.running_mean.double() - m.running_mean.double()) / s_sd
        out[pre + "weight"] = new_gamma.to(m.weight.dtype)
        out[pre + "bias"] = new_beta.to(m.bias.dtype)
    for n in sb:
        if n not in handled and not torch.equal(sb[n], tb[n]):
            return None, (f"buffer {n!r} differs between student and teacher and is not a BatchNorm statistic; "
                          "the kernels do not share a parameter space (infinite KL)")
    return out, None


# ------------------------------------------------------------------------------------------------
# constants and gaps
# ------------------------------------------------------------------------------------------------
LIMITS = ("upper", "lower")


def kernel_constants(curv: TeacherCurvature, s: float, c_mode: str = "frobenius", *,
                     limit: str = "upper") -> dict[str, float]:
    r"""``v``, ``c+-``, ``beta``, ``rho`` of Theorems 3A/3B for the kernel ``N(w_T, s^2 I)``.

    .. math:: v = s^2 G_0^2 + \tfrac12 s^4\,\mathrm{UCL}\|H\|_F^2,\quad \rho = s\sqrt p,\quad
        \beta = \max(c_+, c_-)/s^2

    and ``c+-`` as in the module docstring (``c_mode``). ``limit="upper"`` takes every estimated input at
    the end that makes the bounds valid (``||H||_F^2`` at its upper confidence limit; Ritz value + residual);
    ``limit="lower"`` at the other end (``||H||_F^2`` at its lower limit; the Ritz value alone, which lies
    inside the spectrum): the bounds "holds" is tested against (:mod:`kdbounds.checks.verdicts`).

    Args:
        curv: the teacher's curvature.
        s: the kernel scale (``> 0``).
        c_mode: ``"frobenius"`` or ``"ritz"``.
        limit: ``"upper"`` or ``"lower"``.

    Returns:
        ``{"s", "v", "c_plus", "c_minus", "rho", "beta", "G0", "frob_sq", "limit", "p"}`` (``frob_sq``:
        ``||H||_F^2`` at that limit).

    Raises:
        ValueError: ``s`` not a finite number > 0, an unknown ``c_mode`` or ``limit``.
        TypeError: ``curv`` is not a :class:`TeacherCurvature`.
    """
    s = check_positive("s", s)
    c_mode = check_choice("c_mode", c_mode, C_MODES)
    limit = check_choice("limit", limit, LIMITS)
    if not isinstance(curv, TeacherCurvature):
        raise TypeError(f"curv: expected a TeacherCurvature (measure_teacher_curvature), got {type(curv).__name__}")
    upper = limit == "upper"
    frob = max(curv.frob_sq_upper if upper else curv.frob_sq_lower, 0.0)
    v = s * s * curv.grad_norm ** 2 + 0.5 * s ** 4 * frob
    if c_mode == "frobenius":
        c_plus = c_minus = s * s * math.sqrt(frob)
    else:
        r_max, r_min = (curv.gap_eig_residual_max, curv.gap_eig_residual_min) if upper else (0.0, 0.0)
        c_plus = s * s * max(curv.gap_eig_max + r_max, 0.0)
        c_minus = s * s * max(-curv.gap_eig_min + r_min, 0.0)
    return {"s": s, "v": v, "c_plus": c_plus, "c_minus": c_minus, "rho": s * math.sqrt(curv.n_params),
            "beta": max(c_plus, c_minus) / (s * s), "G0": curv.grad_norm, "frob_sq": frob, "limit": limit,
            "p": curv.n_params}


@dataclass(frozen=True)
class KernelGaps:
    """Gaps under the kernels for one pair (clipped CE, kernel samples).

    ``K = ||w_S - w_T||^2/(2s^2)``; ``diff_quadratic = b^T Delta + ½Delta^T H Delta`` (exact for the quadratic model);
    ``diff_mc`` the paired Monte Carlo estimate of ``E_{q_S} f - E_{q_T} f`` with ``diff_mc_se``;
    ``teacher_quadratic = f(w_T) + ½ s^2 tr H`` and ``teacher_mc``; ``student_point = f(w_S)``.
    """

    s: float
    K: float
    delta_norm: float
    diff_quadratic: float
    diff_mc: float
    diff_mc_se: float
    teacher_point: float
    teacher_quadratic: float
    teacher_mc: float
    teacher_mc_se: float
    student_point: float
    student_mc: float
    student_mc_se: float
    mc_draws: int

    def to_dict(self) -> dict[str, Any]:
        """Every field.

        Returns:
            ``dataclasses.asdict(self)``.
        """
        return dataclasses.asdict(self)


def kernel_gaps(curv: TeacherCurvature, student_params: dict[str, Tensor], s: float, *, mc_draws: int = 32,
                seed: int = 0) -> KernelGaps:
    r"""Gaps under ``N(w_S, s^2 I)`` and ``N(w_T, s^2 I)``: quadratic model and paired Monte Carlo.

    .. math:: \hat d_{\rm MC} = \frac1M\sum_{j=1}^M \bigl[f(w_S + s\varepsilon_j) - f(w_T + s\varepsilon_j)\bigr]

    Args:
        curv: the teacher's curvature (carries ``f``, ``nabla f``, ``nabla^2 f`` on the kernel samples).
        student_params: every parameter of the student in the teacher's coordinates
            (:func:`student_in_teacher_space`).
        s: kernel scale.
        mc_draws: ``M >= 2``.
        seed: draw seed.

    Returns:
        :class:`KernelGaps` (quadratic-model and Monte Carlo gaps of both kernels and their difference).

    Raises:
        ValueError: ``curv`` has no operator (loaded from a file), or a student parameter outside the
            curvature's selection differs from the teacher's.
    """
    s = check_positive("s", s)
    mc_draws = check_int("mc_draws", mc_draws, minimum=2)
    fn = curv.gap_function
    op = curv.operator
    if fn is None or op is None:
        raise ValueError("curv: this TeacherCurvature was loaded without its operator; re-measure it")
    names = list(curv.param_names)
    tparams = dict(curv.teacher_model.named_parameters())
    for n, p in student_params.items():
        if n not in names and not torch.equal(p.to(tparams[n].dtype), tparams[n].detach()):
            raise ValueError(f"student_params: parameter {n!r} is outside the curvature's selection but differs "
                             "from the teacher's; the kernels would not share a parameter space")
    w_t = op.train.parameters_vector().detach()
    w_s = op.train.flatten({n: student_params[n] for n in names}).detach()
    delta = w_s - w_t
    k = float(delta.double().pow(2).sum()) / (2.0 * s * s)
    h_delta = op.matvec(delta)
    diff_q = float(curv.gradient.double() @ delta.double() + 0.5 * (delta.double() @ h_delta.double()))
    gen = make_generator(seed)
    diffs, ts, ss = [], [], []
    for _ in range(mc_draws):
        eps = torch.randn(w_t.shape[0], generator=gen, dtype=torch.float64).to(w_t.device, w_t.dtype)
        ft = fn(w_t + s * eps)
        fs = fn(w_s + s * eps)
        ts.append(ft)
        ss.append(fs)
        diffs.append(fs - ft)

    def mse(v: list[float]) -> tuple[float, float]:
        est = mean_estimate(torch.tensor(v, dtype=torch.float64))
        return est.value, est.stderr

    d_m, d_se = mse(diffs)
    t_m, t_se = mse(ts)
    s_m, s_se = mse(ss)
    f_t = curv.gap_at_teacher
    return KernelGaps(s=s, K=k, delta_norm=math.sqrt(2.0 * s * s * k), diff_quadratic=diff_q, diff_mc=d_m,
                      diff_mc_se=d_se, teacher_point=f_t, teacher_quadratic=f_t + 0.5 * s * s * curv.gap_trace.value,
                      teacher_mc=t_m, teacher_mc_se=t_se, student_point=fn(w_s), student_mc=s_m,
                      student_mc_se=s_se, mc_draws=mc_draws)


# ------------------------------------------------------------------------------------------------
# the records
# ------------------------------------------------------------------------------------------------
_ASSUME_QUAD = ("f replaced by its second-order model at w_T (b = ∇f, H = ∇²f on the kernel samples): Theorem 3B "
                "holds exactly for that model with Gaussian kernels N(w_S, s²I), N(w_T, s²I) and K = ‖Δ‖²/(2s²)")
_ASSUME_MC = ("the network's own gap f under the kernels (Monte Carlo); conditional on f being quadratic on the "
              "kernel's support (ψ of the quadratic model in place of the true log-MGF)")
_ASSUME_3A = ("proxy: a Gaussian kernel is not supported in a ball (ρ = s√p is where its mass concentrates) and "
              "β is measured at w_T, not bounded on the ball")


def kernel_checks(curv: TeacherCurvature | None, teacher: nn.Module, student: nn.Module, *,
                  kernel_std: float | None = None, loss_increase: float = 0.05, c_mode: str = "frobenius",
                  mc_draws: int = 32, alpha: float = 0.05, seed: int = 0, teacher_label: str | None = None,
                  student_label: str | None = None) -> tuple[CheckRecord, ...]:
    """Theorem 3A/3B records of one pair (see the module docstring).

    Args:
        curv: the teacher's :class:`TeacherCurvature` (``None`` only for cross-architecture pairs, which
            get ``not_defined`` records anyway).
        teacher, student: the two networks.
        kernel_std: ``s``; default from ``loss_increase``.
        loss_increase: ``delta``, the training-loss increase that sets ``s`` when ``kernel_std`` is None.
        c_mode: ``"frobenius"`` or ``"ritz"``.
        mc_draws: paired Monte Carlo draws.
        alpha, seed, teacher_label, student_label: recorded / used for the draws.

    Returns:
        Three records, names :data:`KERNEL_CHECK_NAMES`.

    Raises:
        ValueError: a same-architecture pair without ``curv``, or bad ``c_mode``.
    """
    c_mode = check_choice("c_mode", c_mode, C_MODES)
    params, reason = student_in_teacher_space(student, teacher)
    lab = {"alpha": alpha, "teacher": teacher_label, "student": student_label}
    kinds = dict(KERNEL_CHECK_KINDS)
    if c_mode != "frobenius":
        kinds["thm3b_subgamma_quadratic"] = "conditional"
    assumptions = {"thm3b_subgamma_quadratic": _ASSUME_QUAD, "thm3b_subgamma_mc": _ASSUME_MC,
                   "thm3a_radius": _ASSUME_3A}
    if reason is None and curv is None:
        raise ValueError("curv: same-architecture pair but no teacher curvature given; measure it with "
                         "measure_teacher_curvature (once per teacher)")
    if reason is not None:
        return tuple(not_defined(nm, kinds[nm], loss="clipped_ce", side="abs", reason=reason,
                                 assumption=assumptions[nm], **lab) for nm in KERNEL_CHECK_NAMES)
    s = kernel_std if kernel_std is not None else kernel_std_from_loss_increase(curv.train_trace.value, loss_increase)
    s = check_positive("kernel_std", s)
    gaps = kernel_gaps(curv, params, s, mc_draws=mc_draws, seed=seed)
    c = kernel_constants(curv, s, c_mode)
    cl = kernel_constants(curv, s, c_mode, limit="lower")  # the limits unfavourable to "holds"
    lo, hi = B.subgamma_bound(gaps.K, c["v"], c["c_plus"], c["c_minus"])
    two = max(hi, -lo)
    lo_h, hi_h = B.subgamma_bound(gaps.K, cl["v"], cl["c_plus"], cl["c_minus"])
    two_h = max(hi_h, -lo_h)
    ritz_note = ("" if c_mode == "frobenius" else
                 "; c± from Lanczos Ritz values + residuals (conditional on Lanczos having found the extreme "
                 "eigenvalues)")
    c = {k: v for k, v in c.items() if k not in ("frob_sq", "limit")}
    inputs = {**c, "frob_sq_upper": curv.frob_sq_upper, "frob_sq_lower": curv.frob_sq_lower,
              "v_lower": cl["v"], "c_plus_lower": cl["c_plus"], "c_minus_lower": cl["c_minus"], "K": gaps.K,
              "c_mode": c_mode, "ucl_level": curv.ucl_level, "bound_upper": hi, "bound_lower": lo,
              "loss_increase": None if kernel_std is not None else loss_increase,
              **{f"gap_{k}": v for k, v in gaps.to_dict().items() if k not in ("s", "K")},
              "n_train": curv.n_train, "n_test": curv.n_test}
    # the quadratic model's gap is exact, but its bound is an interval (‖H‖_F² estimated): decided by the
    # two limits, method "input_limits" (not "exact")
    quad = make_record("thm3b_subgamma_quadratic", kinds["thm3b_subgamma_quadratic"], loss="clipped_ce", side="abs",
                       bound=two, bound_holds=two_h, observed=gaps.diff_quadratic, observed_se=0.0,
                       assumptions_met=c_mode == "frobenius", assumption=_ASSUME_QUAD + ritz_note, inputs=inputs,
                       **lab)
    # the Monte Carlo mean of M paired draws: Student's t with M − 1 degrees of freedom
    mc = make_record("thm3b_subgamma_mc", "conditional", loss="clipped_ce", side="abs", bound=two,
                     bound_holds=two_h, observed=gaps.diff_mc, observed_se=gaps.diff_mc_se, assumptions_met=False,
                     assumption=_ASSUME_MC + ritz_note, inputs=inputs, dof=gaps.mc_draws - 1, **lab)
    b3a = B.sharpness_radius_bound(gaps.K, c["rho"], c["G0"], c["beta"])
    b3a_h = B.sharpness_radius_bound(gaps.K, cl["rho"], cl["G0"], cl["beta"])
    # f = L_test − L_train lies in [−ln(1/p_min), ln(1/p_min)]: global proxy σ_f = ln(1/p_min) (Hoeffding)
    rho0 = B.tightness_radius(math.log(1.0 / curv.p_min), c["G0"], c["beta"])
    r3a = make_record("thm3a_radius", "proxy", loss="clipped_ce", side="abs", bound=b3a, bound_holds=b3a_h,
                      observed=gaps.diff_mc, observed_se=gaps.diff_mc_se, assumptions_met=False, assumption=_ASSUME_3A,
                      inputs={**inputs, "rho0_global_sigma": rho0}, dof=gaps.mc_draws - 1, **lab)
    return quad, mc, r3a
