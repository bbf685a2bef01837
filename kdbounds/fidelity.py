r"""Functional transfer: student–teacher fidelity metrics and seed-level statistics (methods.md §5).

**Per-pair metrics** on held-out inputs, each a :class:`MetricEstimate` (value, standard error, n).
With ``p_S, p_T`` the softmax outputs (at temperature t) and ``ŷ = argmax p``:

- agreement ``mean 1[ŷ_S = ŷ_T]``; disagreement ``1 − agreement``;
- agreement split by whether the teacher is right (``ŷ_T = y``) or wrong (``ŷ_T ≠ y``): the
  "negative asymmetric payoff" of seed 001 is a student that copies the teacher's *errors* more
  readily than its correct answers (relative to controls);
- activation distance ``mean ‖p_S − p_T‖₂``;
- Jensen–Shannon divergence ``½ KL(p_S‖m) + ½ KL(p_T‖m)``, ``m = (p_S + p_T)/2``, in nats (≤ ln 2);
- cosine similarity ``mean ⟨p_S, p_T⟩ / (‖p_S‖ ‖p_T‖)``;
- ``KL(p_S ‖ p_T)`` (the predictive distillation divergence of :mod:`kdbounds.divergence`);
- accuracy and expected calibration error (15 equal-width confidence bins, one model vs labels).

Standard errors of per-example means are ``sd(ddof=1)/sqrt(n)``; ECE is not a per-example mean, so
its standard error is the standard deviation of a seeded bootstrap (``n_boot`` resamples).

**Seed-level statistics**: :func:`compare_groups` (Welch's t-test, Mann–Whitney U, Cohen's d,
Hedges' g, common-language effect size, rank-biserial correlation, Welch CI of the mean difference)
and :func:`compare_methods`, which compares a reference method (KD) against controls (random-control
distillation, SIDDO, student alone) on every metric and returns a :class:`TransferSummary` that
prints as a table (Holm-adjusted p-values across all comparisons are included).

Nothing here prints or writes files.
"""

from __future__ import annotations

import contextvars
import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "MetricEstimate",
    "FidelityReport",
    "GroupComparison",
    "TransferSummary",
    "softmax_probs",
    "agreement",
    "disagreement",
    "agreement_by_teacher_correctness",
    "activation_distance",
    "js_divergence",
    "cosine_similarity",
    "kl_divergence",
    "accuracy",
    "expected_calibration_error",
    "fidelity_report",
    "compare_groups",
    "compare_methods",
    "holm_adjust",
    "DEFAULT_METRICS",
]


# --------------------------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricEstimate:
    """A metric with its standard error and sample count.

    ``n == 0`` (e.g. agreement on teacher-wrong inputs when the teacher makes no error) is the one
    case where ``value`` and ``stderr`` are NaN; ``n == 1`` gives ``stderr = inf``.
    """

    value: float
    stderr: float
    n: int

    @property
    def defined(self) -> bool:
        return self.n > 0 and math.isfinite(self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"value": _json_float(self.value), "stderr": _json_float(self.stderr), "n": self.n}

    def __str__(self) -> str:
        if not self.defined:
            return f"undefined (n={self.n})"
        return f"{self.value:.4f} ± {self.stderr:.4f} (n={self.n})"


def _json_float(x: float) -> float | None | str:
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)


def _from_float(x: Any) -> float:
    if x is None:
        return math.nan
    if isinstance(x, str):
        return float(x)
    return float(x)


def _mean_estimate(v: torch.Tensor) -> MetricEstimate:
    v = v.to(torch.float64)
    n = int(v.numel())
    if n == 0:
        return MetricEstimate(math.nan, math.nan, 0)
    mean = float(v.mean())
    if n == 1:
        return MetricEstimate(mean, math.inf, 1)
    return MetricEstimate(mean, float(v.std(unbiased=True)) / math.sqrt(n), n)


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
    """``softmax(z / t)`` in float64 (rows sum to 1)."""
    z = _tensor(logits, "logits")
    if z.ndim != 2 or not torch.is_floating_point(z):
        raise ValueError(f"logits must be a float tensor of shape (n, classes), got {tuple(z.shape)} {z.dtype}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("logits contain NaN or infinite values")
    t = float(temperature)
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
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
    """``mean 1[argmax p_S = argmax p_T]`` (ties: the first maximal class)."""
    ps, pt = _pair(p_student, p_teacher)
    return _mean_estimate((ps.argmax(1) == pt.argmax(1)).to(torch.float64))


def disagreement(p_student: Any, p_teacher: Any) -> MetricEstimate:
    """``mean 1[argmax p_S ≠ argmax p_T] = 1 − agreement`` (same standard error)."""
    a = agreement(p_student, p_teacher)
    return MetricEstimate(1.0 - a.value, a.stderr, a.n)


def agreement_by_teacher_correctness(p_student: Any, p_teacher: Any, labels: Any) -> tuple[MetricEstimate, MetricEstimate]:
    """Agreement on the inputs the teacher gets right, and on those it gets wrong.

    Returns ``(on_teacher_correct, on_teacher_wrong)``; on the wrong subset, agreement is the rate at
    which the student reproduces the teacher's *error*. A subset with no inputs gives ``n = 0``.
    """
    ps, pt = _pair(p_student, p_teacher)
    y = _labels(labels, ps.shape[0], ps.shape[1])
    agree = (ps.argmax(1) == pt.argmax(1)).to(torch.float64)
    right = pt.argmax(1) == y
    return _mean_estimate(agree[right]), _mean_estimate(agree[~right])


def activation_distance(p_student: Any, p_teacher: Any) -> MetricEstimate:
    """``mean ‖p_S − p_T‖₂`` (Euclidean distance of the probability vectors; in [0, √2])."""
    ps, pt = _pair(p_student, p_teacher)
    return _mean_estimate(torch.linalg.vector_norm(ps - pt, dim=1))


def _xlogy_ratio(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    # Σ p log(p/q) with 0 log 0 = 0; q > 0 wherever p > 0 by construction of the callers.
    return torch.where(p > 0, p * (torch.log(p) - torch.log(q.clamp_min(1e-300))), torch.zeros_like(p)).sum(1)


def js_per_example(p_student: Any, p_teacher: Any) -> torch.Tensor:
    """Per-example Jensen–Shannon divergence in nats."""
    ps, pt = _pair(p_student, p_teacher)
    m = 0.5 * (ps + pt)
    js = 0.5 * _xlogy_ratio(ps, m) + 0.5 * _xlogy_ratio(pt, m)
    return js.clamp(0.0, math.log(2.0))


def js_divergence(p_student: Any, p_teacher: Any) -> MetricEstimate:
    """``mean JS(p_S, p_T)``, ``JS = ½ KL(p_S‖m) + ½ KL(p_T‖m)``, ``m = (p_S+p_T)/2``, nats, in [0, ln 2]."""
    return _mean_estimate(js_per_example(p_student, p_teacher))


def cosine_similarity(p_student: Any, p_teacher: Any) -> MetricEstimate:
    """``mean ⟨p_S, p_T⟩ / (‖p_S‖₂ ‖p_T‖₂)`` (in [0, 1] for probability vectors)."""
    ps, pt = _pair(p_student, p_teacher)
    cos = (ps * pt).sum(1) / (torch.linalg.vector_norm(ps, dim=1) * torch.linalg.vector_norm(pt, dim=1))
    return _mean_estimate(cos)


def kl_divergence(p_student: Any, p_teacher: Any) -> MetricEstimate:
    """``mean KL(p_S ‖ p_T)`` from probabilities (nats). From logits prefer
    :func:`kdbounds.divergence.divergence_from_logits` (log-space, stable)."""
    ps, pt = _pair(p_student, p_teacher)
    if bool(((ps > 0) & (pt <= 0)).any()):
        raise ValueError("KL(p_S ‖ p_T) is infinite: p_teacher is 0 where p_student is not; pass logits instead")
    return _mean_estimate(_xlogy_ratio(ps, pt).clamp_min(0.0))


def accuracy(probs: Any, labels: Any) -> MetricEstimate:
    """``mean 1[argmax p = y]``."""
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
    r"""Expected calibration error of one model against labels.

    ``ECE = Σ_b (|B_b| / n) |acc(B_b) − conf(B_b)|`` over ``n_bins`` equal-width bins ``(lo, hi]`` of the
    confidence ``max_c p_c`` (Guo et al. 2017). Standard error: sd of ``n_boot`` bootstrap ECEs
    (``numpy.random.default_rng(seed)``); ``n_boot = 0`` gives ``stderr = NaN``.
    """
    p = _probs(probs, "probs")
    if p.shape[0] == 0:
        raise ValueError("no examples: probs is empty")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
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
    return MetricEstimate(value, float(boots.std(ddof=1)) if n_boot > 1 else math.inf, n)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FidelityReport:
    """All fidelity metrics of one student–teacher pair on one set of inputs.

    Label-dependent fields are ``None`` when no labels were given.
    """

    n: int
    n_classes: int
    temperature: float
    agreement: MetricEstimate
    disagreement: MetricEstimate
    activation_distance: MetricEstimate
    js_divergence: MetricEstimate
    cosine_similarity: MetricEstimate
    kl_divergence: MetricEstimate
    agreement_teacher_correct: MetricEstimate | None = None
    agreement_teacher_wrong: MetricEstimate | None = None
    student_accuracy: MetricEstimate | None = None
    teacher_accuracy: MetricEstimate | None = None
    student_ece: MetricEstimate | None = None
    teacher_ece: MetricEstimate | None = None

    @classmethod
    def metric_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in ("n", "n_classes", "temperature"))

    def get(self, name: str) -> MetricEstimate | None:
        if name not in self.metric_names():
            raise KeyError(f"unknown metric {name!r}; known: {', '.join(self.metric_names())}")
        return getattr(self, name)

    def values(self) -> dict[str, float]:
        """Flat ``{metric: value}`` (NaN for undefined or missing metrics)."""
        out = {}
        for name in self.metric_names():
            m = getattr(self, name)
            out[name] = m.value if m is not None else math.nan
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"n": self.n, "n_classes": self.n_classes, "temperature": self.temperature}
        for name in self.metric_names():
            m = getattr(self, name)
            d[name] = m.to_dict() if m is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FidelityReport":
        kw: dict[str, Any] = {"n": int(d["n"]), "n_classes": int(d["n_classes"]), "temperature": float(d["temperature"])}
        for name in cls.metric_names():
            m = d.get(name)
            kw[name] = None if m is None else MetricEstimate(_from_float(m["value"]), _from_float(m["stderr"]), int(m["n"]))
        return cls(**kw)

    def __str__(self) -> str:
        lines = [f"FidelityReport(n={self.n}, classes={self.n_classes}, T={self.temperature:g})"]
        for name in self.metric_names():
            m = getattr(self, name)
            if m is not None:
                lines.append(f"  {name:<26} {m}")
        return "\n".join(lines)


def fidelity_report(
    student_logits: Any,
    teacher_logits: Any,
    labels: Any = None,
    temperature: float = 1.0,
    *,
    probs: bool = False,
    ece_bins: int = 15,
    ece_temperature: float = 1.0,
    n_boot: int = 200,
    seed: int = 0,
) -> FidelityReport:
    """Every fidelity metric of one pair.

    Args:
        student_logits, teacher_logits: ``(n, classes)`` logits on the same held-out inputs (or
            probabilities with ``probs=True``; then the temperatures must be 1).
        labels: true class indices ``(n,)``; needed for the teacher-correct/wrong split, accuracy, ECE.
        temperature: softmax temperature for the similarity metrics (JS, distance, cosine, KL).
        ece_bins, ece_temperature: ECE of each model at its own temperature (default 1: the model's
            calibration as deployed).
        n_boot, seed: bootstrap for the ECE standard errors.
    """
    if probs:
        if temperature != 1.0 or ece_temperature != 1.0:
            raise ValueError("probs=True takes probabilities as given; temperature and ece_temperature must be 1")
        ps, pt = _pair(student_logits, teacher_logits)
        ps_cal, pt_cal = ps, pt
        kl = kl_divergence(ps, pt)
    else:
        from kdbounds.divergence import divergence_from_logits

        zs, zt = _tensor(student_logits, "student_logits"), _tensor(teacher_logits, "teacher_logits")
        for z, nm in ((zs, "student_logits"), (zt, "teacher_logits")):
            if z.ndim != 2:
                raise ValueError(f"{nm} must have shape (n, classes), got {tuple(z.shape)}")
        if zs.shape[1] != zt.shape[1]:
            raise ValueError(f"class counts differ: the student has {zs.shape[1]} classes but the teacher has {zt.shape[1]}")
        if zs.shape[0] != zt.shape[0]:
            raise ValueError(f"example counts differ: student {zs.shape[0]}, teacher {zt.shape[0]}; evaluate both on the same inputs")
        if zs.shape[0] == 0:
            raise ValueError("no examples: the logits are empty")
        ps, pt = _pair(softmax_probs(zs, temperature), softmax_probs(zt, temperature))
        ps_cal, pt_cal = softmax_probs(zs, ece_temperature), softmax_probs(zt, ece_temperature)
        kl = _mean_estimate(divergence_from_logits(zs, zt, temperature))
    n, c = ps.shape
    y = _labels(labels, n, c) if labels is not None else None
    token = _TRUSTED.set(True)
    try:
        return _report(ps, pt, ps_cal, pt_cal, kl, y, float(temperature), ece_bins, n_boot, seed)
    finally:
        _TRUSTED.reset(token)


def _report(ps, pt, ps_cal, pt_cal, kl, labels, temperature, ece_bins, n_boot, seed) -> FidelityReport:
    n, c = ps.shape
    kw: dict[str, Any] = dict(
        n=int(n),
        n_classes=int(c),
        temperature=float(temperature),
        agreement=agreement(ps, pt),
        disagreement=disagreement(ps, pt),
        activation_distance=activation_distance(ps, pt),
        js_divergence=js_divergence(ps, pt),
        cosine_similarity=cosine_similarity(ps, pt),
        kl_divergence=kl,
    )
    if labels is not None:
        right, wrong = agreement_by_teacher_correctness(ps, pt, labels)
        kw.update(
            agreement_teacher_correct=right,
            agreement_teacher_wrong=wrong,
            student_accuracy=accuracy(ps_cal, labels),
            teacher_accuracy=accuracy(pt_cal, labels),
            student_ece=expected_calibration_error(ps_cal, labels, ece_bins, n_boot=n_boot, seed=seed),
            teacher_ece=expected_calibration_error(pt_cal, labels, ece_bins, n_boot=n_boot, seed=seed + 1),
        )
    return FidelityReport(**kw)


# --------------------------------------------------------------------------------------------
# Seed-level statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupComparison:
    r"""Group ``a`` vs group ``b`` (e.g. KD vs a control), one value per seed.

    ``diff = mean_a − mean_b``; Welch: ``se = sqrt(s_a²/n_a + s_b²/n_b)``,
    ``df = se⁴ / ((s_a²/n_a)²/(n_a−1) + (s_b²/n_b)²/(n_b−1))``, ``t = diff/se``, CI ``diff ± t_{df} se``.
    Cohen's ``d = diff / s_pooled``, ``s_pooled² = ((n_a−1)s_a² + (n_b−1)s_b²)/(n_a+n_b−2)``; Hedges'
    ``g = J d`` with the exact ``J = Γ(ν/2) / (sqrt(ν/2) Γ((ν−1)/2))``, ``ν = n_a+n_b−2``.
    Mann–Whitney ``U`` is the statistic of sample ``a`` (scipy); common-language effect size
    ``CLES = P(A > B) + ½ P(A = B) = U / (n_a n_b)``; rank-biserial ``r = 2 CLES − 1``.
    ``note`` explains degenerate cases (zero variance in both groups).
    """

    name_a: str
    name_b: str
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    ci: float
    welch_t: float
    welch_df: float
    welch_p: float
    mwu_u: float
    mwu_p: float
    cohens_d: float
    hedges_g: float
    cles: float
    rank_biserial: float
    metric: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (_json_float(getattr(self, f.name)) if isinstance(getattr(self, f.name), float) else getattr(self, f.name)) for f in fields(self)}

    def __str__(self) -> str:
        head = f"{self.metric}: " if self.metric else ""
        return (
            f"{head}{self.name_a} {self.mean_a:.4g}±{self.sd_a:.2g} (n={self.n_a}) vs {self.name_b} "
            f"{self.mean_b:.4g}±{self.sd_b:.2g} (n={self.n_b}); diff {self.diff:+.4g} "
            f"[{self.diff_ci_low:+.4g}, {self.diff_ci_high:+.4g}]; Welch t={self.welch_t:.3g} df={self.welch_df:.3g} "
            f"p={self.welch_p:.3g}; MWU U={self.mwu_u:g} p={self.mwu_p:.3g}; g={self.hedges_g:.3g}; "
            f"CLES={self.cles:.3g}" + (f" [{self.note}]" if self.note else "")
        )


def _seed_values(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        v = np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise TypeError(f"group {name!r} must be a sequence of numbers (one per seed): {e}") from None
    if not np.all(np.isfinite(v)):
        raise ValueError(f"group {name!r} contains NaN or infinite values; drop the undefined seeds first")
    if v.size < 2:
        raise ValueError(
            f"group {name!r} has {v.size} seed(s); the seed-level tests (Welch's t, Mann–Whitney U) need "
            "at least 2 seeds per group — run more seeds"
        )
    return v


def _hedges_j(dof: float) -> float:
    from scipy.special import gammaln

    return math.exp(gammaln(dof / 2) - gammaln((dof - 1) / 2)) / math.sqrt(dof / 2)


def compare_groups(
    a: Any,
    b: Any,
    names: Sequence[str] = ("a", "b"),
    *,
    ci: float = 0.95,
    alternative: str = "two-sided",
    metric: str = "",
) -> GroupComparison:
    """Compare per-seed values of two groups (Welch's t, Mann–Whitney U, effect sizes, CI of the difference).

    ``alternative`` applies to both tests (``"greater"``: group a larger); the CI of the difference
    is always two-sided at level ``ci``. Formulas: see :class:`GroupComparison`.

    Raises:
        ValueError: fewer than 2 seeds in a group (the message names the group), NaN values, bad ``ci``.
    """
    from scipy import stats

    if len(names) != 2:
        raise ValueError(f"names must hold the two group names, got {names!r}")
    na_, nb_ = str(names[0]), str(names[1])
    if not (0.0 < float(ci) < 1.0):
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    va, vb = _seed_values(a, na_), _seed_values(b, nb_)
    n_a, n_b = va.size, vb.size
    ma, mb = float(va.mean()), float(vb.mean())
    sa, sb = float(va.std(ddof=1)), float(vb.std(ddof=1))
    diff = ma - mb
    qa, qb = sa * sa / n_a, sb * sb / n_b
    se = math.sqrt(qa + qb)
    note = ""
    if se > 0:
        df = (qa + qb) ** 2 / (qa * qa / (n_a - 1) + qb * qb / (n_b - 1))
        t = diff / se
        # Same as scipy.stats.ttest_ind(equal_var=False) (tested), without its cancellation warnings.
        if alternative == "two-sided":
            p = float(2.0 * stats.t.sf(abs(t), df))
        elif alternative == "greater":
            p = float(stats.t.sf(t, df))
        else:
            p = float(stats.t.cdf(t, df))
        tq = float(stats.t.ppf(0.5 + ci / 2, df))
        lo, hi = diff - tq * se, diff + tq * se
    else:
        # Both groups constant: the t statistic is 0/0 or ±∞; report the limit explicitly.
        df = float(n_a + n_b - 2)
        note = "zero variance in both groups"
        if diff == 0:
            t, p = 0.0, 1.0
        else:
            t = math.copysign(math.inf, diff)
            p = 0.0 if alternative == "two-sided" or (alternative == "greater") == (diff > 0) else 1.0
        lo = hi = diff
    mw = stats.mannwhitneyu(va, vb, alternative=alternative, method="auto")
    u = float(mw.statistic)
    pooled = math.sqrt(((n_a - 1) * sa * sa + (n_b - 1) * sb * sb) / (n_a + n_b - 2))
    if pooled > 0:
        d = diff / pooled
    else:
        d = 0.0 if diff == 0 else math.copysign(math.inf, diff)
    dof = n_a + n_b - 2
    g = d * _hedges_j(dof) if dof > 1 else d
    cles = u / (n_a * n_b)
    return GroupComparison(
        name_a=na_, name_b=nb_, n_a=n_a, n_b=n_b, mean_a=ma, mean_b=mb, sd_a=sa, sd_b=sb,
        diff=diff, diff_ci_low=float(lo), diff_ci_high=float(hi), ci=float(ci),
        welch_t=float(t), welch_df=float(df), welch_p=p, mwu_u=u, mwu_p=float(mw.pvalue),
        cohens_d=float(d), hedges_g=float(g), cles=float(cles), rank_biserial=float(2 * cles - 1),
        metric=metric, note=note,
    )


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values: ``p̃_(i) = max_{j≤i} min(1, (m−j+1) p_(j))``."""
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


DEFAULT_METRICS: tuple[str, ...] = (
    "agreement",
    "agreement_teacher_correct",
    "agreement_teacher_wrong",
    "activation_distance",
    "js_divergence",
    "cosine_similarity",
    "kl_divergence",
    "student_accuracy",
    "student_ece",
)


@dataclass(frozen=True)
class TransferSummary:
    """Reference method vs every other group on every metric (one :class:`GroupComparison` each).

    ``welch_p_holm`` / ``mwu_p_holm`` hold Holm-adjusted p-values over all comparisons of the summary,
    in the order of ``comparisons``. ``skipped`` lists ``(metric, reason)`` pairs that could not be
    compared (e.g. a metric undefined in too many seeds).
    """

    reference: str
    groups: tuple[str, ...]
    metrics: tuple[str, ...]
    comparisons: tuple[GroupComparison, ...]
    welch_p_holm: tuple[float, ...]
    mwu_p_holm: tuple[float, ...]
    group_stats: Mapping[str, Mapping[str, tuple[float, float, int]]] = field(default_factory=dict)
    skipped: tuple[tuple[str, str], ...] = ()

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per (metric, compared group): for CSV."""
        out = []
        for c, ph, pm in zip(self.comparisons, self.welch_p_holm, self.mwu_p_holm):
            out.append(
                {
                    "metric": c.metric,
                    "reference": c.name_a,
                    "group": c.name_b,
                    "n_reference": c.n_a,
                    "n_group": c.n_b,
                    "mean_reference": c.mean_a,
                    "sd_reference": c.sd_a,
                    "mean_group": c.mean_b,
                    "sd_group": c.sd_b,
                    "diff": c.diff,
                    "diff_ci_low": c.diff_ci_low,
                    "diff_ci_high": c.diff_ci_high,
                    "welch_t": c.welch_t,
                    "welch_df": c.welch_df,
                    "welch_p": c.welch_p,
                    "welch_p_holm": ph,
                    "mwu_u": c.mwu_u,
                    "mwu_p": c.mwu_p,
                    "mwu_p_holm": pm,
                    "cohens_d": c.cohens_d,
                    "hedges_g": c.hedges_g,
                    "cles": c.cles,
                    "rank_biserial": c.rank_biserial,
                    "note": c.note,
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "groups": list(self.groups),
            "metrics": list(self.metrics),
            "group_stats": {
                m: {g: {"mean": _json_float(s[0]), "sd": _json_float(s[1]), "n": s[2]} for g, s in gs.items()}
                for m, gs in self.group_stats.items()
            },
            "comparisons": [{k: (_json_float(v) if isinstance(v, float) else v) for k, v in r.items()} for r in self.rows()],
            "skipped": [list(s) for s in self.skipped],
        }

    def __str__(self) -> str:
        ci = self.comparisons[0].ci if self.comparisons else 0.95
        header = [
            "metric", "vs", f"{self.reference} mean±sd", "control mean±sd",
            f"diff [{ci:.0%} CI]", "Welch p", "p(Holm)", "MWU p", "Hedges g", "CLES",
        ]
        body = []
        for r in self.rows():
            body.append([
                r["metric"], r["group"],
                f"{r['mean_reference']:.4f}±{r['sd_reference']:.4f}",
                f"{r['mean_group']:.4f}±{r['sd_group']:.4f}",
                f"{r['diff']:+.4f} [{r['diff_ci_low']:+.4f}, {r['diff_ci_high']:+.4f}]",
                f"{r['welch_p']:.3g}", f"{r['welch_p_holm']:.3g}", f"{r['mwu_p']:.3g}",
                f"{r['hedges_g']:+.2f}", f"{r['cles']:.2f}",
            ])
        widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
        fmt = lambda row: "  ".join(s.ljust(w) for s, w in zip(row, widths))  # noqa: E731
        lines = [f"Functional transfer: {self.reference} vs {', '.join(g for g in self.groups if g != self.reference)}",
                 fmt(header), "  ".join("-" * w for w in widths)]
        lines += [fmt(row) for row in body]
        for m, why in self.skipped:
            lines.append(f"(skipped {m}: {why})")
        return "\n".join(lines)


def _metric_value(item: Any, metric: str, group: str, i: int) -> float:
    if isinstance(item, FidelityReport):
        m = item.get(metric)
        return m.value if m is not None else math.nan
    if isinstance(item, Mapping):
        if metric not in item:
            raise KeyError(f"results[{group!r}][{i}] has no metric {metric!r}; it has {', '.join(map(str, item))}")
        v = item[metric]
        if v is None:
            return math.nan
        if isinstance(v, MetricEstimate):
            return v.value
        if isinstance(v, Mapping):
            return _from_float(v.get("value"))
        return float(v)
    raise TypeError(f"results[{group!r}][{i}] is a {type(item).__name__}; expected a FidelityReport or a dict")


def compare_methods(
    results: Mapping[str, Sequence[Any]],
    reference: str = "kd",
    metrics: Iterable[str] | None = None,
    *,
    ci: float = 0.95,
    alternative: str = "two-sided",
) -> TransferSummary:
    """Compare the ``reference`` method's seeds against every other group on each metric.

    Args:
        results: ``{group: [per-seed FidelityReport, or dict metric -> value / {"value": ...}]}``,
            e.g. ``{"kd": [...], "rcd": [...], "siddo": [...], "alone": [...]}``.
        reference: the group compared against all others.
        metrics: metric names; default :data:`DEFAULT_METRICS` present in the reference results.
            Seeds where a metric is undefined (NaN, e.g. no teacher errors) are dropped for that metric;
            a default metric left with < 2 seeds is listed in ``skipped``; an explicitly requested one raises.
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must be a non-empty dict {group name: list of per-seed reports}")
    if reference not in results:
        raise ValueError(f"reference group {reference!r} not in results (groups: {', '.join(results)})")
    others = [g for g in results if g != reference]
    if not others:
        raise ValueError(f"results holds only the reference group {reference!r}; add at least one control group")
    for g, items in results.items():
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise TypeError(f"results[{g!r}] must be a list of per-seed results, got {type(items).__name__}")
        if len(items) < 2:
            raise ValueError(
                f"group {g!r} has {len(items)} seed(s); the seed-level tests need at least 2 seeds per group"
            )
    explicit = metrics is not None
    if metrics is None:
        first = results[reference][0]
        if isinstance(first, FidelityReport):
            present = set(first.metric_names())
        elif isinstance(first, Mapping):
            present = set(first)
        else:
            raise TypeError(f"results[{reference!r}][0] is a {type(first).__name__}; expected a FidelityReport or a dict")
        metric_list = [m for m in DEFAULT_METRICS if m in present]
    else:
        metric_list = list(metrics)
    comps: list[GroupComparison] = []
    stats_: dict[str, dict[str, tuple[float, float, int]]] = {}
    skipped: list[tuple[str, str]] = []
    for metric in metric_list:
        vals = {}
        for g, items in results.items():
            v = np.array([_metric_value(it, metric, g, i) for i, it in enumerate(items)], dtype=np.float64)
            vals[g] = v[np.isfinite(v)]
        short = [g for g, v in vals.items() if v.size < 2]
        if short:
            why = "fewer than 2 seeds with a defined value in " + ", ".join(f"{g!r} ({vals[g].size})" for g in short)
            if explicit:
                raise ValueError(f"metric {metric!r}: {why}")
            skipped.append((metric, why))
            continue
        stats_[metric] = {g: (float(v.mean()), float(v.std(ddof=1)), int(v.size)) for g, v in vals.items()}
        for g in others:
            comps.append(compare_groups(vals[reference], vals[g], (reference, g), ci=ci, alternative=alternative, metric=metric))
    return TransferSummary(
        reference=reference,
        groups=tuple(results),
        metrics=tuple(m for m in metric_list if m in stats_),
        comparisons=tuple(comps),
        welch_p_holm=tuple(holm_adjust([c.welch_p for c in comps])),
        mwu_p_holm=tuple(holm_adjust([c.mwu_p for c in comps])),
        group_stats=stats_,
        skipped=tuple(skipped),
    )
