r"""Study: does a flatter teacher prior certify tighter students? (theory.md §7, issue 12 item 6)

The theory's flatness claim in certificate form: a teacher at a flatter minimum tolerates a larger
prior scale ``sigma_P`` at the same Gibbs risk; a larger ``sigma_P`` shrinks the mean term of the
distillation divergence,

.. math::
    \mathrm{KL}(Q\|P) = \tfrac12 \sum_i \frac{(w_{Q,i} - w_{T,i})^2}{\sigma_P^2}
    + \tfrac12 \sum_i \varphi\!\big(\sigma_{Q,i}^2/\sigma_P^2\big),\qquad \varphi(r) = r - 1 - \ln r,

so the certified risk of students distilled from it should be lower. This study measures it.

On one fixed, recorded split of the CIFAR-10 training set into ``D_T`` and ``D_S``
(:func:`kdbounds.certificates.split.make_split`):

* **teachers** of the student architecture (so each teacher is directly the prior, kind (c)) trained
  with cross-entropy on ``D_T`` by recipes that reach minima of different sharpness (learning rate,
  batch size, weight decay: :class:`~kdbounds.runs.grid.TeacherRecipe`, as in the flagship),
  over seeds — every (recipe, seed) is one independent teacher;
* per teacher, its **sharpness** on a fixed sample of ``D_T`` (the training loss, plain cross-entropy):
  the top Hessian eigenvalue (Lanczos, :func:`kdbounds.curvature.top_eigenvalues`) and the trace
  (Hutchinson, :func:`kdbounds.curvature.hutchinson_trace`, with its standard error);
* per teacher and per value ``sigma_P`` of a grid of ``J`` values fixed in advance: (i) the
  certified-distillation posterior (``pbkd``, and/or ``pbb`` without the KD term) learnt from the
  prior ``P = N(w_T, sigma_P^2 I)`` on ``D_T u D_S`` and certified on ``D_S`` with ``n_grid = n_grid_mc = J``
  (every grid value's certificate is computed and recorded; the reported one is the minimum, which holds at
  ``1 - delta - delta'`` because each was computed at ``delta/J`` in the PAC-Bayes step and ``delta'/J`` in the Monte Carlo
  step; ``J`` is the union of every grid used on this ``D_S``, :mod:`kdbounds.runs.grid_ledger`); (ii) the
  pure-flatness reference ``Q = P = N(w_T, sigma^2 I)``
  (mean and variance terms 0): its Gibbs risk on ``D_S`` as a function of ``sigma`` is the teacher's
  **tolerance curve**, and ``sigma_tolerated`` the scale (log-interpolated on the grid) at which the
  Gibbs risk first exceeds the teacher's own ``D_S`` error by ``tolerance``;
* per teacher, the **scale-aware** versions (the isotropic prior and ``lambda_max``/trace are not invariant to the
  weights' scale): its relative flatness ``kappa = Sum_l ||W_l||^2 tr(H_{W_l})`` (Petzka et al., NeurIPS 2021; one
  Hutchinson trace per layer weight, :func:`relative_flatness`) and ``lambda_max ||w||^2``; the relative prior
  ``P_rel = N(w_T, diag(s (|w_T| + eps rms(W_l)))^2)`` (:func:`relative_std`): its tolerance curve over ``s`` and
  ``s_tolerated``, and its reference certificate ``Q = P_rel`` at each of ``J`` grid values of ``s``;
* **statistics**: Kendall tau_b between each sharpness measure and each outcome
  (certified risk, selected ``sigma_P``, the reference's certified risk, ``sigma_tolerated``), plus
  :data:`SCALE_AWARE_TESTS` (relative flatness vs ``s_tolerated``, the relative certificate, the certified
  risk, the teacher's ``D_S`` error; ``lambda_max`` vs ``s_tolerated``) - the headline on recipe means with exact
  permutations of whole recipes (:func:`kdbounds.checks.teacher_stats.recipe_kendall`: a recipe's seeds are not
  independent replicates), the same tests over teachers labelled within-design
  (:func:`~kdbounds.checks.teacher_stats.permutation_kendall`), Holm within each level (:func:`kendall_report`);
  ``n_recipes``, ``n_teachers`` and the minimum attainable p are reported.

Every training and every per-teacher measurement (curvature and certificates) is a run of the sweep
runner (:func:`kdbounds.runs.sweep.run_sweep`): ``sweep={"executor": "ray", "workers": 2}``
parallelises them; at equal ``threads`` both executors give the same numbers. Workers rebuild the data
from a small description (:class:`~kdbounds.runs.splits.SplitSpec`), once per process.

Writes ``results.json`` (strict JSON: config, split, per-teacher records, every certificate, the
Kendall tests, the summary), ``teachers.csv``, ``certificates.csv``, ``flatness.png`` and ``summary.txt``.

Measured with the ``cpu`` preset (30 Nov 2026, before the Monte Carlo step paid ``J`` and before the recipe-level
tests; 18 teachers = 6 recipes x 3 seeds, n_S = 5,000, n_T = 10,000, J = 5; 536 CPU-s at one thread; every tau below
is within-design - on the recipe means the exact p of lambda_max vs sigma tolerated is 0.011 and vs s tolerated 0.056,
neither significant after Holm over 15 tests): every ``pbkd`` certificate non-vacuous (0.58–0.69, held-out Gibbs risk
0.02-0.04 lower); Kendall tau(lambda_max, certified risk) = -0.27 (p = 0.13, Holm 1) - sharper slightly *tighter*,
not significant, the same tau as sharpness vs the teacher's own ``D_S`` error: the posteriors barely leave
the teacher (mean term 0.35-1.05 nats), so each certificate is the teacher's Gibbs risk + ~ 0.03 and there
is no mean term for flatness to shrink. The selected sigma_P is 0.005 for 17 of 18 teachers. Sharper teachers
tolerate *larger* isotropic noise (tau(lambda_max, sigma tolerated) = +0.71, Holm p = 0.0008 over 15 tests): the sharpest recipe
(lr 0.05, batch 32) has twice the weight norm of the others, and lambda_max/trace are not scale-invariant.
With the relative prior the direction is the theory's: tau(lambda_max, s tolerated) = -0.69 (Holm p = 0.0014 over
15 tests); relative flatness kappa points the same way, tau(kappa, s tolerated) = -0.42 (p = 0.014, Holm 0.17), and is
unrelated to the certificate (tau = +0.02); Q = P_rel certifies the same as the isotropic reference (within 0.004).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_choice, check_int, check_nonnegative, check_open_unit, check_positive
from .._io import atomic_write_csv, atomic_write_json, atomic_write_text
from ..certificates.bounds import check_confidences
from ..runs.grid import TeacherRecipe
from ..runs.splits import SplitSpec, split_data, train_on_split
from ..runs.sweep import RunSpec, run_sweep
from ._config import ConfigRecord
from ._provenance import with_provenance

__all__ = ["POSTERIORS", "OUTCOMES", "SHARPNESS_MEASURES", "SCALE_AWARE_TESTS", "relative_flatness", "flatness_figure",
           "relative_std", "weight_layers", "Config", "PRESETS", "Result", "run", "training_specs", "write_results",
           "unstable_scales", "posterior_loss_note",
           "plot_flatness", "summary", "kendall_report", "sigma_tolerated", "measure_teacher", "KENDALL_LEVELS"]

POSTERIORS = ("pbkd", "pbb")
#: the Q = P references: isotropic ``N(w_T, σ² I)`` and relative ``N(w_T, diag(s (|w_T| + ε rms))²)``
_REFERENCES = ("reference", "relative")
SHARPNESS_MEASURES = ("top_eig", "trace")
#: teacher-level outcomes tested against each sharpness measure (``{p}`` is each learnt posterior)
#: (``teacher_ds_error``, the teacher's own 0–1 error on ``D_S``, is the accuracy confound: reported with the rest)
OUTCOMES = ("{p}_risk_upper", "{p}_sigma_prior", "reference_risk_upper", "sigma_tolerated", "teacher_ds_error")
#: the scale-aware tests, added to SHARPNESS_MEASURES × OUTCOMES (Holm across all): relative flatness
#: (:func:`relative_flatness`) against the relative prior's tolerance and certificate, the learnt posteriors'
#: certificates and the accuracy confound; plain ``λ_max`` against ``s_tolerated`` for contrast
SCALE_AWARE_TESTS = (("rel_flatness", "s_tolerated"), ("rel_flatness", "relative_risk_upper"),
                     ("rel_flatness", "{p}_risk_upper"), ("rel_flatness", "teacher_ds_error"),
                     ("top_eig", "s_tolerated"))

#: recipes for the BatchNorm-free ``mlp256`` (the flagship's ResNet recipes with lr >= 0.1 leave it at chance:
#: measured 30 Nov 2026, lr 0.1 / batch 32, 8 epochs on n_T = 10,000: test accuracy 0.19)
_CPU_RECIPES = (TeacherRecipe("lr0.05-bs32", 0.05, 32), TeacherRecipe("lr0.02-bs64", 0.02, 64),
                TeacherRecipe("lr0.05-bs128-wd0", 0.05, 128, 0.0), TeacherRecipe("lr0.02-bs256", 0.02, 256),
                TeacherRecipe("lr0.01-bs512", 0.01, 512), TeacherRecipe("lr0.05-bs128-wd5e-3", 0.05, 128, 5e-3))


@dataclass(frozen=True)
class Config(ConfigRecord):
    """Everything that determines a run of the study (recorded in ``results.json``).

    Attributes:
        preset: name recorded with the results.
        arch: the student (= teacher = prior) architecture, a BatchNorm-free certificate net.
        n_s, n_t: sizes of ``D_S`` and ``D_T``; test_n: held-out test images (stratified; None: all).
        split_seed: seed of the split (fixed across teachers).
        recipes: the teachers' recipes; seeds: training seeds (teachers = recipes × seeds).
        teacher_epochs: epochs of each teacher (cross-entropy on ``D_T``, cosine schedule).
        posteriors: which learnt posteriors to certify (``pbkd``, ``pbb``); posterior_epochs, posterior_lr,
            posterior_batch_size: their training; objective: ``fquad``/``fclassic``; pbkd_alpha, T: the
            KD term of ``pbkd`` (the teacher is the prior itself; ``T`` is the KD temperature, the method's own name).
        scale_low, scale_high, n_scales: the ``sigma_P`` grid (``J = n_scales`` log-spaced values).
        delta, delta_mc, p_min: certificate parameters; n_draws / test_draws: Monte Carlo passes over
            ``D_S`` / the test images (per-example draws).
        curve_low, curve_high, curve_n: the finer, wider grid of the tolerance curve (Gibbs risk on ``D_S``
            of ``N(w_T, sigma^2 I)``; a measurement, not a certificate).
        tolerance: Gibbs-risk increase over the teacher's ``D_S`` error that defines ``sigma_tolerated``
            (and ``s_tolerated``).
        rel_floor: ``eps`` of the relative prior ``sigma_i = s (|w_i| + eps rms(w_layer))`` (:func:`relative_std`).
        rel_scale_low, rel_scale_high: its certificate grid of ``s`` (``J = n_scales`` log-spaced values);
            rel_curve_low, rel_curve_high: its tolerance curve's grid (``curve_n`` values).
        curvature_n: ``D_T`` images of the sharpness sample; curvature_batch_size: per Hessian product;
            lanczos_matvecs, trace_matvecs: products for ``lambda_max`` and the trace.
        n_perm: random permutations of the Kendall tests when there are more than 8 teachers.
        device: ``cpu``, ``cuda`` or ``auto``; data_root: CIFAR location.
    """

    preset: str = "custom"
    arch: str = "mlp256"
    n_s: int = 5000
    n_t: int = 10000
    test_n: int | None = 2000
    split_seed: int = 0
    recipes: tuple[TeacherRecipe, ...] = _CPU_RECIPES
    seeds: tuple[int, ...] = (0, 1, 2)
    teacher_epochs: int = 8
    posteriors: tuple[str, ...] = ("pbkd",)
    posterior_epochs: int = 2
    posterior_lr: float = 0.02
    posterior_batch_size: int = 128
    objective: str = "fquad"
    pbkd_alpha: float = 0.1
    T: float = 4.0
    scale_low: float = 2.5e-3
    scale_high: float = 4e-2
    n_scales: int = 5
    delta: float = 0.025
    delta_mc: float = 0.01
    p_min: float = 1e-4
    n_draws: int = 4
    test_draws: int = 2
    curve_low: float = 3e-3
    curve_high: float = 0.3
    curve_n: int = 11
    tolerance: float = 0.05
    rel_floor: float = 0.1
    rel_scale_low: float = 0.03
    rel_scale_high: float = 0.5
    rel_curve_low: float = 0.01
    rel_curve_high: float = 3.0
    curvature_n: int = 2000
    curvature_batch_size: int = 500
    lanczos_matvecs: int = 30
    trace_matvecs: int = 30
    n_perm: int = 20000
    device: str = "cpu"
    data_root: str | None = None

    def __post_init__(self) -> None:
        from ..certificates.scales import scale_grid

        check_choice("arch", self.arch, ("mlp256", "mlp512x2"))
        check_int("n_s", self.n_s, minimum=1)
        check_int("n_t", self.n_t, minimum=1)
        if self.test_n is not None:
            check_int("test_n", self.test_n, minimum=10)
        check_int("split_seed", self.split_seed, minimum=0)
        if not self.recipes or not all(isinstance(r, TeacherRecipe) for r in self.recipes):
            raise ValueError(f"recipes: expected at least one TeacherRecipe, got {self.recipes!r}")
        names = [r.name for r in self.recipes]
        if len(set(names)) != len(names):
            raise ValueError(f"recipes: recipe names must be distinct, got {names}")
        for r in self.recipes:
            check_positive(f"recipes[{r.name}].lr", r.lr)
            check_int(f"recipes[{r.name}].batch_size", r.batch_size, minimum=1)
            check_nonnegative(f"recipes[{r.name}].weight_decay", r.weight_decay)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: expected at least one seed, all distinct, got {self.seeds}")
        for s in self.seeds:
            check_int("seeds", s, minimum=0)
        if len(self.recipes) * len(self.seeds) < 3:
            raise ValueError(f"recipes, seeds: the teacher-level Kendall tests need at least 3 teachers "
                             f"(recipes × seeds), got {len(self.recipes)} × {len(self.seeds)}")
        if not self.posteriors:
            raise ValueError(f"posteriors: expected at least one of {POSTERIORS}")
        for p in self.posteriors:
            check_choice("posteriors", p, POSTERIORS)
        if len(set(self.posteriors)) != len(self.posteriors):
            raise ValueError(f"posteriors: repeated entries in {self.posteriors}")
        for name in ("teacher_epochs", "posterior_epochs", "posterior_batch_size", "n_scales", "n_draws",
                     "test_draws", "curvature_n", "curvature_batch_size", "n_perm"):
            check_int(name, getattr(self, name), minimum=1)
        check_int("lanczos_matvecs", self.lanczos_matvecs, minimum=2)
        check_int("trace_matvecs", self.trace_matvecs, minimum=2)
        if self.n_scales < 2:
            raise ValueError(f"n_scales: expected at least 2 grid values (a tolerance curve), got {self.n_scales}")
        check_int("curve_n", self.curve_n, minimum=2)
        for name in ("posterior_lr", "T", "scale_low", "scale_high", "curve_low", "curve_high", "tolerance",
                     "rel_scale_low", "rel_scale_high", "rel_curve_low", "rel_curve_high"):
            check_positive(name, getattr(self, name))
        check_nonnegative("pbkd_alpha", self.pbkd_alpha)
        check_confidences(self.delta, self.delta_mc)
        check_open_unit("p_min", self.p_min)
        check_choice("objective", self.objective, ("fquad", "fclassic"))
        check_choice("device", self.device, ("cpu", "cuda", "auto"))
        check_positive("rel_floor", self.rel_floor, fix="zero weights need noise")
        for lo, hi, n in (("scale_low", "scale_high", "n_scales"), ("curve_low", "curve_high", "curve_n"),
                          ("rel_scale_low", "rel_scale_high", "n_scales"),
                          ("rel_curve_low", "rel_curve_high", "curve_n")):
            try:
                scale_grid(getattr(self, lo), getattr(self, hi), getattr(self, n))
            except ValueError as e:
                raise ValueError(f"{lo}, {hi}: expected 0 < {lo} < {hi}, got {getattr(self, lo)} and "
                                 f"{getattr(self, hi)} ({e})") from None

    @property
    def scales(self) -> tuple[float, ...]:
        """The ``sigma_P`` grid (``J`` log-spaced values, fixed before ``D_S`` is used)."""
        from ..certificates.scales import scale_grid

        return scale_grid(self.scale_low, self.scale_high, self.n_scales)

    @property
    def rel_scales(self) -> tuple[float, ...]:
        """The relative prior's grid of ``s`` (``J = n_scales`` log-spaced values, fixed before ``D_S`` is used)."""
        from ..certificates.scales import scale_grid

        return scale_grid(self.rel_scale_low, self.rel_scale_high, self.n_scales)

    @property
    def data(self) -> SplitSpec:
        """The data description the runs rebuild their arrays from (held-out subset seeded 0)."""
        return SplitSpec(self.n_s, self.n_t, self.test_n, self.split_seed, self.data_root, test_seed=0)


PRESETS: dict[str, Config] = {
    # CI: three tiny teachers, a two-value grid; well under a minute on 2 cores (decoded CIFAR cached).
    "smoke": Config(preset="smoke", n_s=500, n_t=500, test_n=200,
                    recipes=(TeacherRecipe("lr0.1-bs32", 0.1, 32), TeacherRecipe("lr0.05-bs64", 0.05, 64),
                             TeacherRecipe("lr0.02-bs128-wd0", 0.02, 128, 0.0)),
                    seeds=(0,), teacher_epochs=1, posterior_epochs=1, n_scales=2, n_draws=1, test_draws=1,
                    curve_n=4, curvature_n=100, curvature_batch_size=100, lanczos_matvecs=4, trace_matvecs=4,
                    n_perm=2000),
    # Real CIFAR-10 on 2 CPU cores: n_S = 5,000, n_T = 10,000 (certify_students' sizes), 6 recipes × 3 seeds.
    "cpu": Config(preset="cpu"),
    # Full CIFAR-10 on a GPU: n_S = 10,000, n_T = 40,000, 6 recipes × 3 seeds, longer training.
    "gpu": Config(preset="gpu", arch="mlp512x2", n_s=10000, n_t=40000, test_n=None,
                  recipes=(*_CPU_RECIPES, TeacherRecipe("lr0.1-bs128-wd5e-3", 0.1, 128, 5e-3)),
                  seeds=(0, 1, 2, 3), teacher_epochs=40, posteriors=("pbkd", "pbb"), posterior_epochs=10,
                  n_scales=5, scale_low=2.5e-3, n_draws=10, test_draws=5, curvature_n=5000,
                  curvature_batch_size=1000, lanczos_matvecs=40, trace_matvecs=64, device="auto"),
}


# ------------------------------------------------------------------------------------------------ runs
def _teacher_config(cfg: Config, recipe: TeacherRecipe, seed: int) -> Any:
    from ..distill.config import TrainConfig

    return TrainConfig(arch=cfg.arch, epochs=cfg.teacher_epochs, batch_size=recipe.batch_size, lr=recipe.lr,
                       weight_decay=recipe.weight_decay, schedule="cosine", seed=seed, method="ce",
                       device=cfg.device, eval_every=cfg.teacher_epochs)


def _posterior_config(cfg: Config, kind: str, sigma_prior: float, seed: int) -> Any:
    """The ``pbb``/``pbkd`` recipe without its prior (the worker fills the teacher's path in)."""
    from ..distill.config import TrainConfig

    kw: dict[str, Any] = {"sigma_prior": float(sigma_prior), "objective": cfg.objective, "n_bound": cfg.n_s,
                          "delta": cfg.delta, "p_min": cfg.p_min}
    if kind == "pbkd":
        kw.update({"alpha": cfg.pbkd_alpha, "T": cfg.T})
    return TrainConfig(arch=cfg.arch, epochs=cfg.posterior_epochs, batch_size=cfg.posterior_batch_size,
                       lr=cfg.posterior_lr, weight_decay=0.0, schedule="cosine", seed=seed, method=kind,
                       method_kwargs=kw, device=cfg.device, eval_every=cfg.posterior_epochs)


def unstable_scales(cfg: Config) -> tuple[float, ...]:
    r"""The prior scales of the grid at which SGD on the posterior's ``fquad`` objective must diverge.

    The objective :math:`f(c) = (\sqrt{e + c/2} + \sqrt{c/2})^2` has :math:`f'(c) \ge 2` (AM–GM), so its
    curvature in each posterior mean coordinate through :math:`c \ni \mathrm{KL}/n_S` is at least
    :math:`a = 2/(\sigma_P^2 n_S)`; heavy-ball SGD with step :math:`\eta` and momentum :math:`\beta` diverges
    on a quadratic of curvature :math:`a` when :math:`\eta a > 2(1 + \beta)`, i.e. when

    .. math::
        \sigma_P^2 \, n_S \, (1 + \beta) < \eta.

    Args:
        cfg: the study's config (``posterior_lr``, ``n_s``, the grid; momentum: the posterior runs' SGD's).

    Returns:
        The scales where it holds (empty for another ``objective``: no such bound is derived for it).
    """
    if cfg.objective != "fquad":
        return ()
    beta = _posterior_config(cfg, cfg.posteriors[0] if cfg.posteriors else "pbb", cfg.scales[0], 0).momentum
    return tuple(s for s in cfg.scales if s * s * cfg.n_s * (1.0 + beta) < cfg.posterior_lr)


def posterior_loss_note(cfg: Config) -> str:
    """The line that explains the ``loss=`` of a posterior run's progress line before the runs start.

    Args:
        cfg: the study's config.

    Returns:
        One line: what that loss is, and the grid's scales at which it diverges (:func:`unstable_scales`).
    """
    from ..runs.posterior_learning import objective_note

    line = "  " + objective_note(cfg.posteriors, cfg.objective)
    bad = unstable_scales(cfg)
    if not bad:
        return line
    return (line + f"; at σ_P = {', '.join(f'{s:.3g}' for s in bad)} SGD at lr {cfg.posterior_lr:g} diverges on the "
            f"KL term (σ_P² n_S (1 + momentum) < lr), so that loss grows to ~1e9 and that scale's certificate is "
            f"vacuous (1.0); it still counts in J, the minimum over the grid is reported")


def sigma_tolerated(scales: Any, risks: Any, base: float, tolerance: float) -> tuple[float, bool]:
    r"""The prior scale at which the Gibbs risk first exceeds ``base + tolerance`` (log-linear interpolation).

    .. math::
        \sigma_{tol} = \exp\Big(\ln\sigma_{k-1} + (\ln\sigma_k - \ln\sigma_{k-1})
        \frac{\tau - r_{k-1}}{r_k - r_{k-1}}\Big),\quad \tau = \mathrm{base} + \mathrm{tolerance},

    with ``k`` the first grid index whose risk ``r_k > tau``.

    Args:
        scales: increasing grid of ``sigma``.
        risks: Gibbs risk at each.
        base: the risk at ``sigma = 0``.
        tolerance: allowed increase (> 0).

    Returns:
        ``(sigma_tol, censored)``: ``censored`` when no grid value exceeds the threshold (``sigma_tol`` is then the
        largest scale: the tolerated scale is at least that) — or when the smallest already does
        (``sigma_tol`` the smallest scale: at most that).

    Raises:
        ValueError: mismatched or non-increasing inputs, non-finite risks.
    """
    s = np.asarray(scales, dtype=float)
    r = np.asarray(risks, dtype=float)
    if s.shape != r.shape or s.ndim != 1 or s.size < 1:
        raise ValueError(f"scales, risks: expected 1-D arrays of the same length, got {s.shape} and {r.shape}")
    if np.any(np.diff(s) <= 0) or s[0] <= 0:
        raise ValueError(f"scales: expected positive, strictly increasing values, got {s.tolist()}")
    if not np.all(np.isfinite(r)) or not math.isfinite(base):
        raise ValueError("risks, base: expected finite values")
    check_positive("tolerance", tolerance)
    thr = base + tolerance
    above = np.nonzero(r > thr)[0]
    if above.size == 0:
        return float(s[-1]), True
    k = int(above[0])
    if k == 0:
        return float(s[0]), True
    a, b = math.log(s[k - 1]), math.log(s[k])
    f = (thr - r[k - 1]) / (r[k] - r[k - 1])
    return float(math.exp(a + (b - a) * f)), False


def _curvature(model: Any, x: Any, y: Any, cfg: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Top Hessian eigenvalue and Hutchinson trace of the mean cross-entropy on the sample ``(x, y)``."""
    import torch.nn.functional as F

    from ..curvature import HessianOperator, hutchinson_trace, top_eigenvalues

    bs = int(cfg["curvature_batch_size"])
    batches = [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(y), bs)]
    t0 = time.process_time()
    op = HessianOperator(model, lambda out, t: F.cross_entropy(out, t), batches)
    eig = top_eigenvalues(op, 1, max_matvecs=int(cfg["lanczos_matvecs"]), seed=seed)
    tr = hutchinson_trace(op, int(cfg["trace_matvecs"]), seed=seed + 1)
    rel = relative_flatness(model, batches, int(cfg["trace_matvecs"]), seed=seed + 2)
    wn = _weight_norm(model)
    return {"top_eig": float(eig.eigenvalues[0]), "top_eig_residual": float(eig.residuals[0]),
            "top_eig_converged": bool(eig.converged), "top_eig_matvecs": int(eig.n_matvecs),
            "trace": float(tr.value), "trace_se": float(tr.stderr), "trace_matvecs": int(tr.n_matvecs),
            "n_params": int(op.shape[0]), "n_examples": int(len(y)), "weight_norm": wn,
            "top_eig_normalised": float(eig.eigenvalues[0]) * wn ** 2, **rel,
            "cpu_s": time.process_time() - t0}


def weight_layers(model: Any) -> list[str]:
    """Names of the layer weights of ``model`` (parameters with at least 2 dimensions: linear and conv
    kernels), the blocks of :func:`relative_flatness`; biases and normalisation scales are left out.

    Args:
        model: the network.

    Returns:
        The parameter names, in ``named_parameters()`` order.

    Raises:
        ValueError: ``model`` has no such parameter.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad and p.dim() >= 2]
    if not names:
        raise ValueError(f"model: expected at least one weight matrix or kernel (a parameter with >= 2 "
                         f"dimensions), got parameters {[n for n, _ in model.named_parameters()]}")
    return names


def relative_flatness(model: Any, batches: Any, matvecs: int, seed: int) -> dict[str, Any]:
    r"""Relative flatness (Petzka et al., NeurIPS 2021, in its layer-trace form) of the mean cross-entropy.

    .. math::
        \kappa(w) = \sum_{l} \|W_l\|_F^2\, \operatorname{tr}\big(H_{W_l}\big),\qquad
        \mathrm{se}(\kappa) = \Big(\sum_l \|W_l\|_F^4\, \mathrm{se}(\operatorname{tr} H_{W_l})^2\Big)^{1/2},

    with :math:`H_{W_l}` the Hessian block of layer ``l``'s weight :math:`W_l` (biases excluded), each trace by
    Hutchinson on that block alone (independent probes per layer). For a ReLU network, multiplying layer
    ``l`` (weight and bias) by ``alpha > 0`` and layer ``l+1``'s weight by ``1/alpha`` leaves the function unchanged;
    then :math:`\|W_l\|^2` scales by :math:`\alpha^2` and :math:`\operatorname{tr} H_{W_l}` by
    :math:`1/\alpha^2`, so :math:`\kappa` is unchanged while the plain trace and ``lambda_max`` are not.

    Args:
        model: the network (parameters with ``requires_grad``).
        batches: ``[(x, y), ...]`` of the sample.
        matvecs: Hutchinson probes per layer (>= 2).
        seed: probe seed (layer ``l`` uses ``seed + l``).

    Returns:
        ``rel_flatness``, ``rel_flatness_se`` and ``rel_flatness_layers`` (per layer: ``weight_norm_sq``,
        ``trace``, ``trace_se``, ``n_params``).

    Raises:
        ValueError: no weight matrix in ``model``; ``matvecs`` < 2.
    """
    import torch
    import torch.nn.functional as F

    from ..curvature import HessianOperator, hutchinson_trace

    check_int("matvecs", matvecs, minimum=2)
    named = dict(model.named_parameters())
    layers: dict[str, dict[str, Any]] = {}
    total, var = 0.0, 0.0
    for i, name in enumerate(weight_layers(model)):
        op = HessianOperator(model, lambda out, t: F.cross_entropy(out, t), batches, params=name)
        tr = hutchinson_trace(op, matvecs, seed=seed + i)
        with torch.no_grad():
            w2 = float((named[name].double() ** 2).sum())
        layers[name] = {"weight_norm_sq": w2, "trace": float(tr.value), "trace_se": float(tr.stderr),
                        "n_params": int(op.shape[0])}
        total += w2 * float(tr.value)
        var += (w2 * float(tr.stderr)) ** 2
    return {"rel_flatness": total, "rel_flatness_se": math.sqrt(var), "rel_flatness_layers": layers}


def relative_std(model: Any, s: float, floor: float) -> dict[str, Any]:
    r"""Per-weight scales of the relative prior :math:`P_{rel} = N(w_T, \mathrm{diag}\,\sigma^2)`.

    .. math::
        \sigma_i = s\,\big(|w_i| + \epsilon\,\mathrm{rms}(w_{t(i)})\big),\qquad
        \mathrm{rms}(w_t) = \big(\tfrac{1}{d_t}\textstyle\sum_{j\in t} w_j^2\big)^{1/2},

    with ``t(i)`` the parameter tensor holding weight ``i`` (a tensor of zeros takes the RMS of all weights),
    so a zero weight still gets noise ``s*eps*rms``. The noise is relative: rescaling a layer rescales its sigma.

    Args:
        model: the teacher.
        s: the relative scale (> 0).
        floor: ``eps`` (>= 0).

    Returns:
        ``{name: tensor of sigma_i}`` for every trainable parameter (for ``GaussianKernel.from_model(model, std=...)``).

    Raises:
        ValueError: non-positive ``s``, negative or non-finite ``floor``, or an all-zero model with ``floor > 0``
        (every sigma would be 0).
    """
    import torch

    check_positive("s", s)
    check_nonnegative("floor", floor)
    named = [(n, p.detach()) for n, p in model.named_parameters() if p.requires_grad]
    with torch.no_grad():
        n_all = max(1, sum(p.numel() for _, p in named))
        total = math.sqrt(sum(float((p.double() ** 2).sum()) for _, p in named) / n_all)
        out = {}
        for n, p in named:
            rms = float(torch.sqrt((p.double() ** 2).mean()))
            rms = rms if rms > 0 else total
            if rms <= 0 or (floor == 0 and bool((p == 0).any())):
                raise ValueError(f"floor: parameter {n!r} has zero weights that would get σ = 0; use floor > 0 "
                                 f"(and a model that is not all zeros)")
            out[n] = (s * (p.abs() + floor * rms)).to(p.dtype)
    return out


def _weight_norm(model: Any) -> float:
    r"""Euclidean norm of all parameters, :math:`\|w\|_2` (isotropic noise of scale σ is relative to it)."""
    import torch

    with torch.no_grad():
        return float(torch.sqrt(sum((p.double() ** 2).sum() for p in model.parameters())))


def _cert_row(c: Any) -> dict[str, Any]:
    t = c.test_gibbs_risk or {}
    return {"risk_upper": c.risk_upper, "mc_risk": c.mc_risk, "mc_risk_upper": c.mc_risk_upper,
            "divergence": c.divergence, "mean_term": c.mean_term, "variance_term": c.variance_term,
            "vacuous": c.vacuous, "n_s": c.n_s, "n_grid": c.n_grid, "n_grid_mc": c.n_grid_mc, "delta": c.delta,
            "delta_mc": c.delta_mc, "confidence": c.confidence, "data_sha256": c.data_sha256,
            "test_gibbs_risk": t.get("value"),
            "test_gibbs_ci_low": t.get("ci_low"), "test_gibbs_ci_high": t.get("ci_high"),
            "sigma_posterior_max": c.posterior.get("std_max"), "sigma_posterior_min": c.posterior.get("std_min")}


def measure_teacher(config: Mapping[str, Any], data: SplitSpec, teacher: str, posteriors: Mapping[str, str],
                    seed: int, n_grid: Mapping[str, int] | None = None,
                    deps: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Per teacher: sharpness on ``D_T``, the reference tolerance curve and certificates, and the
    certificate of every learnt posterior on the grid (a run of the sweep, executed on the worker).

    Every certificate of a grid pays ``J`` = ``n_grid[grid]`` in both steps (delta/J in the PAC-Bayes step,
    delta'/J in the Monte Carlo step), since the reported number is the minimum over the grid: the minimum
    holds at ``1 - delta - delta'``.

    Args:
        config: :meth:`Config.to_dict` of the study.
        data: the data description.
        teacher: key of the teacher run.
        posteriors: ``{run key: "<kind>"}`` of this teacher's posterior
            runs (one per kind and grid value; each run's ``sigma_prior`` is read from its config).
        seed: the teacher's training seed (Monte Carlo and probe seeds derive from it).
        n_grid: ``{"sigma_prior": J, "relative_s": J_rel}``, the sizes of the unions of every grid used on this
            ``D_S`` (:func:`kdbounds.runs.grid_ledger.record_grids`); default: this run's grid sizes.
        deps: filled in by the sweep runner.

    Returns:
        A small dict: ``curvature``, ``teacher_ds_error``, ``teacher_test_acc``, ``curve`` (reference
        certificates per ``sigma``), ``certificates`` (learnt posteriors), ``cpu_s`` per phase.

    Raises:
        ValueError: ``n_grid`` smaller than this run's grids (a union of grids cannot be).
    """
    import torch

    from .._torch import resolve_device
    from ..pacbayes.certify import certify, gibbs_losses
    from ..pacbayes.kernels import GaussianKernel, per_example_logits
    from ..certificates.scales import scale_grid
    from ..runs.posteriors import posterior_from_run, prior_from_run
    from ..data import normalized_images, stratified_subset
    from ..distill import load_checkpoint_model

    deps = deps or {}
    cfg = config
    dev = resolve_device(cfg["device"])
    arrays = split_data(data)
    split = arrays.split
    xs, ys = arrays.x_s, arrays.y_s
    ds = (normalized_images(xs, dev), torch.from_numpy(np.asarray(ys)).to(dev))
    dtest = (normalized_images(arrays.x_test, dev), torch.from_numpy(np.asarray(arrays.y_test)).to(dev))
    xt, yt = arrays.data_t[:2]
    per = max(1, int(cfg["curvature_n"]) // 10)
    ci = stratified_subset(yt, min(per, int(np.bincount(yt).min())), seed=int(cfg["split_seed"]))
    dcurv = (normalized_images(xt[ci], dev), torch.from_numpy(np.asarray(yt[ci])).to(dev))
    scales = scale_grid(cfg["scale_low"], cfg["scale_high"], cfg["n_scales"])
    J = len(scales)
    ng = dict(n_grid or {})
    j_iso, j_rel = int(ng.get("sigma_prior", J)), int(ng.get("relative_s", J))
    if j_iso < J or j_rel < J:
        raise ValueError(f"n_grid: the unions of the grids used on D_S cannot be smaller than this run's grid "
                         f"(J = {J}), got {ng}")
    ckw = dict(n_draws=int(cfg["n_draws"]), delta=cfg["delta"], delta_mc=cfg["delta_mc"], p_min=cfg["p_min"],
               test_data=dtest, test_draws=int(cfg["test_draws"]), split=split)
    iso = dict(n_grid=j_iso, n_grid_mc=j_iso)  # the reported certificate is the minimum over the grid
    rel = dict(n_grid=j_rel, n_grid_mc=j_rel)
    clock: dict[str, float] = {}
    t_res = deps[teacher]
    model = load_checkpoint_model(t_res.paths["model"], map_location=dev).eval()
    for p in model.parameters():
        p.requires_grad_(True)
    curv = _curvature(model, *dcurv, cfg, seed)
    clock["curvature"] = curv.pop("cpu_s")
    t0 = time.process_time()
    with torch.no_grad():
        err = float((model(ds[0]).argmax(1) != ds[1]).double().mean())
    tol_scales = scale_grid(cfg["curve_low"], cfg["curve_high"], cfg["curve_n"])
    gen = torch.Generator(device=dev).manual_seed(seed * 1000 + 900)
    tol = []
    for s in tol_scales:
        K = GaussianKernel.from_model(model, float(s))
        with torch.no_grad():
            z = torch.stack([per_example_logits(K, ds[0], gen) for _ in range(int(cfg["n_draws"]))])
        tol.append(float(gibbs_losses(z, ds[1], "zero_one", cfg["p_min"]).mean()))
    curve = []
    for j, s in enumerate(scales):
        P = GaussianKernel.from_model(model, float(s))
        c = certify(P, P, ds, seed=seed * 1000 + j, **ckw, **iso)
        curve.append({"sigma": float(s), **_cert_row(c)})
    clock["reference"] = time.process_time() - t0
    t0 = time.process_time()
    rel_tol_scales = scale_grid(cfg["rel_curve_low"], cfg["rel_curve_high"], cfg["curve_n"])
    gen = torch.Generator(device=dev).manual_seed(seed * 1000 + 950)
    rel_tol = []
    for s in rel_tol_scales:
        K = GaussianKernel.from_model(model, relative_std(model, float(s), cfg["rel_floor"]))
        with torch.no_grad():
            z = torch.stack([per_example_logits(K, ds[0], gen) for _ in range(int(cfg["n_draws"]))])
        rel_tol.append(float(gibbs_losses(z, ds[1], "zero_one", cfg["p_min"]).mean()))
    for j, s in enumerate(scale_grid(cfg["rel_scale_low"], cfg["rel_scale_high"], cfg["n_scales"])):
        P = GaussianKernel.from_model(model, relative_std(model, float(s), cfg["rel_floor"]))
        c = certify(P, P, ds, seed=seed * 1000 + 200 + j, **ckw, **rel)
        curve.append({"sigma": float(s), **_cert_row(c), "posterior": "relative"})
    clock["relative"] = time.process_time() - t0
    t0 = time.process_time()
    certs = []
    for i, (key, kind) in enumerate(posteriors.items()):
        res = deps[key]
        Q, P = posterior_from_run(res, dev), prior_from_run(res, dev)
        sp = float(res.config["method_kwargs"]["sigma_prior"])
        c = certify(Q, P, ds, seed=seed * 1000 + 500 + i, **ckw, **iso)
        certs.append({"posterior": kind, "sigma_prior": sp, "run": Path(res.paths["out_dir"]).name,
                      "train_mean_test_acc": res.final.get("test_acc"), **_cert_row(c)})
    clock["posteriors"] = time.process_time() - t0
    return {"curvature": curv, "teacher_ds_error": err, "teacher_test_acc": t_res.final.get("test_acc"),
            "teacher_run": Path(t_res.paths["out_dir"]).name, "curve": curve, "certificates": certs,
            "tolerance_curve": {"sigma": [float(v) for v in tol_scales], "ds_gibbs_risk": tol},
            "relative_tolerance_curve": {"s": [float(v) for v in rel_tol_scales], "ds_gibbs_risk": rel_tol},
            "cpu_s": clock}


def _teacher_key(recipe: TeacherRecipe, seed: int) -> str:
    return f"teacher-{recipe.name}-s{seed}"


def training_specs(config: Config, cache_root: str | os.PathLike, progress: bool = False,
                   n_grid: Mapping[str, int] | None = None) -> list[RunSpec]:
    """The sweep: per teacher its training, one posterior training per kind and grid value, and the
    measurement run (depending on all of them).

    Args:
        config: the study's config.
        cache_root: the run cache (the code tag is appended by :func:`run`).
        progress: the trainer's progress inside each run.
        n_grid: the ``J`` each grid's certificates pay (:func:`measure_teacher`; :func:`run` passes the sizes
            of the ledger's unions); default this run's grid sizes.

    Returns:
        The :class:`~kdbounds.runs.sweep.RunSpec` list; measurement keys are ``measure-<teacher>``.
    """
    cache = os.fspath(cache_root)
    data = config.data
    cd = config.to_dict()
    specs: list[RunSpec] = []
    for seed in config.seeds:
        for r in config.recipes:
            tk = _teacher_key(r, seed)
            specs.append(RunSpec(tk, train_on_split, {"config": _teacher_config(config, r, seed).to_dict(),
                                                       "cache_root": cache, "split": data, "side": "t",
                                                       "progress": progress}))
            post: dict[str, str] = {}
            for kind in config.posteriors:
                for j, s in enumerate(config.scales):
                    pk = f"{kind}-{r.name}-s{seed}-j{j}"
                    specs.append(RunSpec(pk, train_on_split,  # the teacher is the prior (and pbkd's teacher)
                                         {"config": _posterior_config(config, kind, s, seed).to_dict(),
                                          "cache_root": cache, "split": data, "side": "u",
                                          "teacher": tk if kind == "pbkd" else None, "prior": tk,
                                          "progress": progress}, deps=(tk,)))
                    post[pk] = kind
            specs.append(RunSpec(f"measure-{tk}", measure_teacher,
                                 {"config": cd, "data": data, "teacher": tk, "posteriors": post, "seed": seed,
                                  "n_grid": dict(n_grid) if n_grid is not None else None},
                                 deps=(tk, *post)))
    return specs


# ------------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class Result:
    """What :func:`run` returns (and ``results.json`` holds).

    Attributes:
        config: the study's config. split: the split record. teachers: one record per teacher
            (recipe, seed, sharpness, tolerance, selected certificates). certificates: every certificate
            (reference and learnt posteriors, every grid value). kendall: the teacher-level tests
            (Holm-adjusted together). summary: headline numbers. seconds: wall time. cpu_s: CPU seconds
            per phase summed over teachers (measured in the runs). environment: versions and threads.
        grids: this run's grids, the union of every grid used on this ``D_S`` (which the certificates pay) and
            the ledger's entries (:mod:`kdbounds.runs.grid_ledger`).
    """

    config: dict[str, Any]
    split: dict[str, Any]
    teachers: tuple[dict[str, Any], ...]
    certificates: tuple[dict[str, Any], ...]
    kendall: tuple[dict[str, Any], ...]
    summary: dict[str, Any]
    seconds: float
    cpu_s: dict[str, float]
    environment: dict[str, Any]
    grids: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result as plain data (``results.json`` without its provenance).

        Returns:
            ``{"config", "split", "teachers", "certificates", "kendall", "summary", "seconds", "cpu_s",
            "environment", "grids"}``.
        """
        return {"config": self.config, "split": self.split, "teachers": list(self.teachers),
                "certificates": list(self.certificates), "kendall": list(self.kendall), "summary": self.summary,
                "seconds": self.seconds, "cpu_s": self.cpu_s, "environment": self.environment, "grids": self.grids}


def _teacher_record(recipe: TeacherRecipe, seed: int, m: Mapping[str, Any], cfg: Config,
                    train_wall: float | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    name = f"{recipe.name}/s{seed}"
    rows = [{"teacher": name, "recipe": recipe.name, "seed": seed, "posterior": "reference", **c}
            for c in m["curve"]]  # the relative prior's rows carry posterior="relative" (σ_prior is its s)
    rows += [{"teacher": name, "recipe": recipe.name, "seed": seed, **c} for c in m["certificates"]]
    for r in rows:
        r.setdefault("sigma_prior", r.get("sigma"))
        r.pop("sigma", None)
    rec: dict[str, Any] = {"teacher": name, "recipe": recipe.name, "seed": seed, "lr": recipe.lr,
                           "batch_size": recipe.batch_size, "weight_decay": recipe.weight_decay,
                           "teacher_test_acc": m["teacher_test_acc"], "teacher_ds_error": m["teacher_ds_error"],
                           "teacher_run": m["teacher_run"], **m["curvature"]}
    tc = m["tolerance_curve"]
    st, cens = sigma_tolerated(tc["sigma"], tc["ds_gibbs_risk"], m["teacher_ds_error"], cfg.tolerance)
    rec["sigma_tolerated"], rec["sigma_tolerated_censored"] = st, cens
    rec["tolerance_curve"] = tc
    rc = m["relative_tolerance_curve"]
    st, cens = sigma_tolerated(rc["s"], rc["ds_gibbs_risk"], m["teacher_ds_error"], cfg.tolerance)
    rec["s_tolerated"], rec["s_tolerated_censored"] = st, cens
    rec["relative_tolerance_curve"] = rc
    for kind in _REFERENCES + tuple(cfg.posteriors):
        grp = [r for r in rows if r["posterior"] == kind]
        best = min(grp, key=lambda r: r["risk_upper"])
        for r in grp:
            r["selected"] = r is best
        for k in ("risk_upper", "sigma_prior", "mean_term", "variance_term", "divergence", "test_gibbs_risk",
                  "mc_risk", "vacuous"):
            rec[f"{kind}_{k}"] = best[k]
    rec["cpu_s"] = dict(m["cpu_s"])
    rec["teacher_wall_s"] = train_wall
    return rec, rows


#: the levels of the Kendall tests: ``"recipe"`` (the headline: recipe means, permutations of whole recipes, the
#: unit of independence) and ``"within-design"`` (teachers = recipes × seeds treated as exchangeable)
KENDALL_LEVELS = ("recipe", "within-design")


def kendall_report(teachers: Any, posteriors: Any, *, n_perm: int = 20000, seed: int = 0) -> tuple[dict[str, Any], ...]:
    """Kendall tau_b between each sharpness measure and each outcome (:data:`SHARPNESS_MEASURES` x :data:`OUTCOMES`,
    then :data:`SCALE_AWARE_TESTS`) at two levels, Holm-adjusted within each level
    (:func:`kdbounds.checks.teacher_stats.kendall_tests`):

    * ``level="recipe"`` - the headline: tau between the recipes' mean sharpness and mean outcome, exact
      permutations of whole recipes (:func:`kdbounds.checks.teacher_stats.recipe_kendall`); teachers of one
      recipe (its seeds) are not independent replicates, recipes are;
    * ``level="within-design"`` - tau over the teachers, permuting teachers
      (:func:`~kdbounds.checks.teacher_stats.permutation_kendall`): it describes the design, its p-values
      treat a recipe's seeds as independent and are not evidence at the recipe level.

    Args:
        teachers: per-teacher records (``teacher``, ``recipe`` — the teacher's name when absent — plus the
            sharpness and outcome fields).
        posteriors: the learnt posterior kinds present (fills :data:`OUTCOMES`).
        n_perm: random permutations when more than 8 units.
        seed: their seed.

    Returns:
        One dict per test (``level``, ``sharpness``, ``outcome``, tau, p, Holm p within the level, ``n_recipes``,
        ``n_teachers``, minimum attainable p), recipe-level tests first.
    """
    from ..checks.teacher_stats import kendall_tests, permutation_kendall, recipe_kendall

    def expand(o: str) -> list[str]:
        return [o.format(p=p) for p in (posteriors if "{p}" in o else ("",))]

    pairs = [(sh, oc) for sh in SHARPNESS_MEASURES for o in OUTCOMES for oc in expand(o)]
    pairs += [(sh, oc) for sh, o in SCALE_AWARE_TESTS for oc in expand(o)]
    out = []
    for level in KENDALL_LEVELS:
        tests, labels = [], []
        for sh, oc in pairs:
            ok = [t for t in teachers if all(isinstance(t.get(k), (int, float)) and math.isfinite(t[k])
                                             for k in (sh, oc))]
            sharp = {t["teacher"]: float(t[sh]) for t in ok}
            vals = [(t["teacher"], float(t[oc])) for t in ok]
            recipe_of = {t["teacher"]: t.get("recipe", t["teacher"]) for t in ok}
            if len(set(recipe_of.values()) if level == "recipe" else ok) < 3:
                continue
            label = f"{sh} vs {oc}"
            if level == "recipe":
                tests.append(recipe_kendall(sharp, vals, recipe_of, n_perm=n_perm, seed=seed, label=label))
            else:
                tests.append(permutation_kendall(sharp, vals, n_perm=n_perm, seed=seed, label=label))
            labels.append((sh, oc))
        for (sh, oc), t in zip(labels, kendall_tests(tests)):
            out.append({"level": level, "sharpness": sh, "outcome": oc, **t.to_dict()})
    return tuple(out)


def _summarise(teachers: list[dict[str, Any]], kendall: tuple[dict[str, Any], ...], cfg: Config,
               grids: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Headline numbers, each key scoped to what it describes (``selected_*``: the minimum over the grid of
    each teacher, certified at ``1 − δ − δ'``; Kendall: recipe level, the within-design tests separately)."""
    out: dict[str, Any] = {"n_teachers": len(teachers), "n_recipes": len(cfg.recipes), "n_seeds": len(cfg.seeds),
                           "grid": list(cfg.scales), "J": cfg.n_scales,
                           "confidence": 1.0 - cfg.delta - cfg.delta_mc}
    if grids is not None:
        out["J_paid"] = {k: len(v) for k, v in grids.get("union", {}).items()}
    for kind in _REFERENCES + tuple(cfg.posteriors):
        v = [t[f"{kind}_risk_upper"] for t in teachers]
        out[f"{kind}_selected_risk_upper_range"] = [min(v), max(v)]
        out[f"{kind}_all_non_vacuous"] = not any(t[f"{kind}_vacuous"] for t in teachers)
    by_recipe: dict[str, dict[str, Any]] = {}
    for r in cfg.recipes:
        g = [t for t in teachers if t["recipe"] == r.name]
        by_recipe[r.name] = {k: float(np.mean([t[k] for t in g])) for k in
                             ("top_eig", "trace", "weight_norm", "rel_flatness", "top_eig_normalised",
                              "sigma_tolerated", "s_tolerated", "reference_risk_upper", "relative_risk_upper",
                              *(f"{p}_risk_upper" for p in cfg.posteriors),
                              *(f"{p}_sigma_prior" for p in cfg.posteriors))}
    out["by_recipe_mean"] = by_recipe
    for level, key in (("recipe", "recipe_level"), ("within-design", "within_design")):
        ks = [k for k in kendall if k.get("level") == level]
        sig = [k for k in ks if k.get("p_holm") is not None and k["p_holm"] < 0.05]
        out[f"{key}_significant_at_0.05_holm"] = [f"{k['sharpness']} vs {k['outcome']} (tau {k['tau']:+.2f})"
                                                  for k in sig]
        out[f"{key}_min_attainable_p"] = min((k["min_attainable_p"] for k in ks
                                              if math.isfinite(k["min_attainable_p"])), default=None)
        out[f"{key}_n_tests"] = len(ks)
    return out


def run(config: Config, out_dir: str | os.PathLike, *, cache_root: str | os.PathLike | None = None,
        progress: bool = True, log: Callable[[str], None] = print,
        sweep: Mapping[str, Any] | None = None) -> Result:
    """Train (or reuse) every teacher and posterior, measure and certify per teacher, test, write.

    Args:
        config: e.g. ``PRESETS["smoke"]``.
        out_dir: output folder (``results.json``, ``teachers.csv``, ``certificates.csv``, ``flatness.png``,
            ``summary.txt``).
        cache_root: run cache (default ``out_dir/../cache``); trained models are reused across runs.
        progress: progress over runs (and each local run's epochs).
        log: one-line messages.
        sweep: keyword arguments of :func:`~kdbounds.runs.sweep.run_sweep` (``executor``, ``workers``,
            ``address``, ``threads``, ...); default local, one thread per run.

    Returns:
        The :class:`Result`.

    Raises:
        TypeError: ``config`` is not a :class:`Config`.
        kdbounds.runs.sweep.SweepError: a run failed (finished trainings stay in the cache).
    """
    import torch

    from ..runs.cache import resolve_cache_root
    from ..runs.grid_ledger import ledger_path, read_ledger, record_grids

    if not isinstance(config, Config):
        raise TypeError(f"config: expected a certify_flatness.Config (e.g. PRESETS['smoke']), got "
                        f"{type(config).__name__}")
    t_start = time.perf_counter()
    cfg = config
    out = Path(out_dir)
    cache = resolve_cache_root(out, cache_root)
    sweep = dict(sweep or {})
    local = sweep.get("executor", "local") == "local"
    split = split_data(cfg.data).split
    this = {"sigma_prior": cfg.scales, "relative_s": cfg.rel_scales}
    union = record_grids(cache, split, this, study="certify_flatness")
    grids = {"this_run": {k: list(v) for k, v in this.items()}, "union": {k: list(v) for k, v in union.items()},
             "ledger": read_ledger(cache, split), "ledger_path": str(ledger_path(cache, split))}
    specs = training_specs(cfg, cache, progress=progress and local, n_grid={k: len(v) for k, v in union.items()})
    log(f"certify_flatness: {len(cfg.recipes) * len(cfg.seeds)} teachers, grid {[f'{s:.3g}' for s in cfg.scales]} "
        f"(J paid: {', '.join(f'{k} {len(v)}' for k, v in union.items())}, the union of every grid used on this D_S), "
        f"{len(specs)} runs; cache {cache}")
    if cfg.posteriors:
        log(posterior_loss_note(cfg))
    done = run_sweep(specs, progress=progress, desc="certify_flatness", **sweep)
    teachers, rows = [], []
    for seed in cfg.seeds:
        for r in cfg.recipes:
            tk = _teacher_key(r, seed)
            t_res = done[tk]
            rec, cr = _teacher_record(r, seed, done[f"measure-{tk}"], cfg, getattr(t_res, "wall_time_s", None))
            teachers.append(rec)
            rows.extend(cr)
            log(f"  {rec['teacher']:<24} λ_max {rec['top_eig']:9.3f}  tr {rec['trace']:10.1f} ± {rec['trace_se']:.1f}"
                f"  κ_rel {rec['rel_flatness']:10.1f} ± {rec['rel_flatness_se']:.1f}"
                f"  σ_tol {rec['sigma_tolerated']:.4f}{'+' if rec['sigma_tolerated_censored'] else ' '}"
                f"  s_tol {rec['s_tolerated']:.3f}{'+' if rec['s_tolerated_censored'] else ' '}  "
                + "  ".join(f"{k} {rec[k + '_risk_upper']:.4f}@{rec[k + '_sigma_prior']:.3g}"
                            for k in (*_REFERENCES, *cfg.posteriors)))
    kendall = kendall_report(teachers, cfg.posteriors, n_perm=cfg.n_perm, seed=cfg.split_seed)
    cpu = {ph: float(sum(t["cpu_s"].get(ph, 0.0) or 0.0 for t in teachers))
           for ph in ("curvature", "reference", "relative", "posteriors")}
    env = {"torch": torch.__version__, "threads": sweep.get("threads", 1), "executor": sweep.get("executor", "local"),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cache": str(cache)}
    result = Result(cfg.to_dict(), split.to_dict(), tuple(teachers), tuple(rows), kendall,
                    _summarise(teachers, kendall, cfg, grids), time.perf_counter() - t_start, cpu, env, grids)
    write_results(result, out)
    return result


def write_results(result: Result, out_dir: str | os.PathLike) -> dict[str, Path]:
    """``results.json`` (strict JSON), ``teachers.csv``, ``certificates.csv``, ``flatness.png``, ``summary.txt``.

    Args:
        result: the study's result.
        out_dir: the folder (created when missing).

    Returns:
        The written paths by kind (``figure`` absent when matplotlib is missing).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": atomic_write_json(out / "results.json", with_provenance(result.to_dict())),
             "teachers": atomic_write_csv(out / "teachers.csv",
                                          [{k: v for k, v in t.items()
                                            if k not in ("tolerance_curve", "relative_tolerance_curve",
                                                         "rel_flatness_layers", "cpu_s")}
                                           for t in result.teachers]),
             "certificates": atomic_write_csv(out / "certificates.csv", list(result.certificates)),
             "summary": atomic_write_text(out / "summary.txt", summary(result) + "\n")}
    try:
        paths["figure"] = plot_flatness(result, out / "flatness.png")
    except ImportError:  # pragma: no cover - matplotlib missing
        pass
    return {k: Path(v) for k, v in paths.items()}


def _colourbar(fig: Any, ax: Any, cmap: Any, lo: float, hi: float, label: str) -> None:
    """A colour bar next to ``ax`` for lines coloured by ``cmap`` over ``[lo, hi]``."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig.colorbar(ScalarMappable(Normalize(lo, hi if hi > lo else lo + 1.0), cmap), ax=ax, label=label, pad=0.02)


def _kind(kind: str) -> str:
    """A posterior kind as it reads in a figure (method names as acronyms: ``pbkd`` -> ``PBKD``)."""
    return kind if kind == "reference" else kind.upper()


def flatness_figure(result: Result) -> Any:
    """Six panels: certified risk vs ``lambda_max`` and vs the trace (isotropic reference and each learnt posterior,
    held-out Gibbs risk as open markers), the selected ``sigma_P`` vs ``lambda_max``, every teacher's isotropic
    tolerance curve (Gibbs risk on ``D_S`` vs ``sigma``, coloured by ``lambda_max``); ``s`` tolerated and the relative
    reference's certified risk vs relative flatness, and every teacher's relative tolerance curve (coloured by
    relative flatness, with colour bars); the trace and relative flatness with their 95 % intervals.

    Args:
        result: the study's :class:`Result` (``teachers`` and ``config`` are read).

    Returns:
        The :class:`matplotlib.figure.Figure` (not saved).
    """
    from ..figures import plt_figure

    T = result.teachers
    kinds = ["reference", *result.config["posteriors"]]
    fig, axes = plt_figure(2, 3, figsize=(16, 8.5))
    (a1, a2, a5), (a3, a4, a6) = axes
    colours = dict(zip(kinds, ("tab:grey", "tab:blue", "tab:orange")))
    for ax, sh, lab in ((a1, "top_eig", "teacher $\\lambda_{\\max}(H)$ on $D_T$"),
                        (a2, "trace", "teacher tr $H$ on $D_T$ (Hutchinson, ± 1.96 SE)")):
        x = [t[sh] for t in T]
        xerr = [1.96 * float(t.get(f"{sh}_se") or 0.0) for t in T]
        for k in kinds:
            ax.errorbar(x, [t[f"{k}_risk_upper"] for t in T], xerr=xerr if any(xerr) else None, fmt="o",
                        color=colours[k], capsize=2, elinewidth=0.8, label=f"{_kind(k)}: certified")
            ax.scatter(x, [t[f"{k}_test_gibbs_risk"] for t in T], facecolors="none", edgecolors=colours[k],
                       label=f"{_kind(k)}: held-out Gibbs")
        ax.set_xlabel(lab)
        ax.set_ylabel("0–1 risk")
        if min(x) > 0 and max(x) > 10 * min(x):
            ax.set_xscale("log")
    a1.legend(fontsize=7)
    for k in kinds[1:]:
        a3.scatter([t["top_eig"] for t in T], [t[f"{k}_sigma_prior"] for t in T], color=colours[k],
                   label=f"{_kind(k)}: selected $\\sigma_P$")
    a3.scatter([t["top_eig"] for t in T], [t["sigma_tolerated"] for t in T], color="tab:green", marker="^",
               label=f"σ tolerated (+{result.config['tolerance']:g} Gibbs risk)")
    a3.set_yscale("log")
    a3.set_xlabel("teacher $\\lambda_{\\max}(H)$ on $D_T$")
    a3.set_ylabel("prior scale σ")
    a3.legend(fontsize=7)
    eig = np.array([t["top_eig"] for t in T], dtype=float)
    lo, hi = float(np.min(eig)), float(np.max(eig))
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    for t in T:
        c = cmap(0.0 if hi == lo else (t["top_eig"] - lo) / (hi - lo))
        a4.plot(t["tolerance_curve"]["sigma"], t["tolerance_curve"]["ds_gibbs_risk"], "o-", color=c, lw=1)
    a4.set_xscale("log")
    a4.set_xlabel("$\\sigma$ of $Q = P = \\mathcal{N}(w_T, \\sigma^2 I)$")
    a4.set_ylabel("Gibbs 0–1 risk on $D_S$")
    _colourbar(fig, a4, cmap, lo, hi, "teacher $\\lambda_{\\max}(H)$")
    kap = np.array([t["rel_flatness"] for t in T], dtype=float)
    a5.scatter(kap, [t["s_tolerated"] for t in T], color="tab:green", marker="^",
               label=f"s tolerated (+{result.config['tolerance']:g} Gibbs risk)")
    a5.set_yscale("log")
    kerr = 1.96 * np.array([float(t.get("rel_flatness_se") or 0.0) for t in T])
    if kerr.any():
        a5.errorbar(kap, [t["s_tolerated"] for t in T], xerr=kerr, fmt="none", ecolor="tab:green", elinewidth=0.8)
    a5.set_xlabel("relative flatness $\\Sigma_l \\|W_l\\|^2\\, \\mathrm{tr}\\, H_l$ on $D_T$ (± 1.96 SE)")
    a5.set_ylabel("relative scale s tolerated", color="tab:green")
    a5b = a5.twinx()
    a5b.scatter(kap, [t["relative_risk_upper"] for t in T], color="tab:grey", label="relative Q = P: certified")
    for k in kinds[1:]:
        a5b.scatter(kap, [t[f"{k}_risk_upper"] for t in T], color=colours[k], marker="s", s=12,
                    label=f"{_kind(k)}: certified")
    a5b.set_ylabel("certified 0–1 risk")
    a5.legend(fontsize=7, loc="upper left")
    a5b.legend(fontsize=7, loc="lower right")
    if kap.min() > 0 and kap.max() > 10 * kap.min():
        a5.set_xscale("log")
    klo, khi = float(kap.min()), float(kap.max())
    for t in T:
        c = cmap(0.0 if khi == klo else (t["rel_flatness"] - klo) / (khi - klo))
        rc = t["relative_tolerance_curve"]
        a6.plot(rc["s"], rc["ds_gibbs_risk"], "o-", color=c, lw=1)
    a6.set_xscale("log")
    a6.set_xlabel("$s$ of $Q = P = \\mathcal{N}(w_T, \\mathrm{diag}(s\\,(|w_T| + \\epsilon\\, \\mathrm{rms}))^2)$")
    a6.set_ylabel("Gibbs 0–1 risk on $D_S$")
    _colourbar(fig, a6, cmap, klo, khi, "relative flatness")
    fig.suptitle(f"Teacher flatness vs certificate ({len(T)} teachers, $n_S$ = {result.config['n_s']}, "
                 f"J = {result.config['n_scales']})")
    fig.tight_layout()
    return fig


def plot_flatness(result: Result, path: str | os.PathLike) -> Path:
    """Save :func:`flatness_figure` (six panels, intervals where an SE exists, colour bars) to ``path``.

    Args:
        result: the study's :class:`Result`.
        path: the image file written (atomically).

    Returns:
        ``path``.
    """
    from ..figures import save_figure

    return save_figure(flatness_figure(result), path)


def summary(result: Result) -> str:
    """A text table per teacher and the Kendall tests (what ``summary.txt`` holds).

    Args:
        result: the study's result.

    Returns:
        The text.
    """
    from ._tables import format_table

    kinds = [*_REFERENCES, *result.config["posteriors"]]
    cols = ["teacher", "teacher_test_acc", "teacher_ds_error", "top_eig", "trace", "trace_se", "weight_norm",
            "rel_flatness", "rel_flatness_se", "top_eig_normalised", "sigma_tolerated", "s_tolerated",
            *(f"{k}_{f}" for k in kinds for f in ("risk_upper", "sigma_prior", "mean_term", "test_gibbs_risk"))]
    sm = result.summary
    lines = ["Teachers (certified 0–1 risk at the selected σ_P of the grid: the minimum over the grid, every grid "
             f"value paying J in both steps, confidence {sm.get('confidence', float('nan')):.3f}; relative: σ_P is s):",
             format_table(result.teachers, cols),
             ""]
    kcols = ["sharpness", "outcome", "tau", "p_value", "p_holm", "n_recipes", "n_teachers", "min_attainable_p", "note"]
    for level, key, head in (("recipe", "recipe_level", "Kendall τ_b at the recipe level (headline: recipe means, "
                              "exact permutations of whole recipes"),
                             ("within-design", "within_design", "Kendall τ_b over teachers, within-design (seeds of a "
                              "recipe treated as independent: descriptive, not evidence at the recipe level")):
        ks = [k for k in result.kendall if k.get("level") == level]
        lines += [f"{head}; Holm across {len(ks)} tests; — where a number is not defined, the note says why"
                  + ("; n_recipes — in a within-design test: its unit is the teacher" if level == "within-design" else "")
                  + "):", format_table(ks, kcols)]
        sig = sm.get(f"{key}_significant_at_0.05_holm") or []
        lines += [f"significant at 0.05 after Holm ({level}): " + (", ".join(sig) if sig else "none"), ""]
    lines.append(f"(wall time {result.seconds:.0f} s; CPU s per phase in the runs: "
                 + ", ".join(f"{k} {v:.1f}" for k, v in result.cpu_s.items()) + ")")
    return "\n".join(lines)
