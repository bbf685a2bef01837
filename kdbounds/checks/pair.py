r"""All check records of one teacher–student pair (the study's per-pair entry point).

:func:`evaluate_pair` measures, on true labels, the gaps of both models (clipped CE, 0–1 loss), the
paired gap difference with its standard error, the predictive divergence ``K̂`` on training and test
inputs, and produces:

* ``gibbs_classifier`` (demonstration, exact, every pair);
* per loss: ``thm1_sigma_n`` and ``thm2_central`` (conditional on the sigma^2/n assumption) and
  ``thm1_product_proxy`` (proxy);
* ``thm3b_subgamma_quadratic``, ``thm3b_subgamma_mc``, ``thm3a_radius`` from
  :func:`kdbounds.checks.kernel_checks.kernel_checks` — defined only for same-architecture pairs,
  with the teacher's curvature measured once per teacher (:func:`measure_teacher_curvature`) and
  passed to every student of that teacher.

Verdicts in the returned records are stand-alone (family of one); the run applies
:func:`kdbounds.checks.verdicts.assign_verdicts` to the records of *all* pairs together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from .._checks import (check_choice, check_int, check_n_boot, check_open_unit, check_positive, check_probability,
                       check_seed)
from .._data import as_tensors, check_inputs, check_labels, warn_label_law_shift
from .._torch import num_classes
from .._io import to_jsonable
from .._records import Estimate
from ..divergence import DivergenceEstimate, collect_logits, predictive_divergence
from .conditional import product_law_proxy, theorem1_sigma_n, theorem2_central
from .gibbs import gibbs_classifier
from .kernel_checks import (C_MODES, KERNEL_CHECK_KINDS, KERNEL_CHECK_NAMES, TeacherCurvature, kernel_checks,
                            student_in_teacher_space)
from .losses import LossGap, loss_gap, loss_range, paired_gap_difference, per_example_losses
from .verdicts import CheckRecord, not_defined

__all__ = ["PAIR_LOSSES", "PairChecks", "evaluate_pair"]

PAIR_LOSSES = ("clipped_ce", "zero_one")


@dataclass(frozen=True)
class PairChecks:
    """Everything measured for one pair and its check records.

    Attributes:
        teacher, student: labels. same_architecture: whether Theorems 3A/3B are defined.
        teacher_losses, student_losses: ``{loss: LossGap}`` on the full train/test sets.
        gap_difference: ``{loss: Estimate}`` of ``gen(S) - gen(T)`` (paired).
        divergence_train, divergence_test: ``K̂`` with SE and bootstrap CI.
        records: the :class:`CheckRecord` s. temperature, p_min: conventions.
    """

    teacher: str | None
    student: str | None
    same_architecture: bool
    teacher_losses: dict[str, LossGap]
    student_losses: dict[str, LossGap]
    gap_difference: dict[str, Estimate]
    divergence_train: DivergenceEstimate
    divergence_test: DivergenceEstimate
    records: tuple[CheckRecord, ...]
    temperature: float
    p_min: float

    def record(self, name: str, loss: str | None = None) -> CheckRecord:
        """The record called ``name`` (and ``loss`` when several losses share the name).

        Args:
            name: the record's name.
            loss: its loss (needed when several losses share the name).

        Returns:
            The record.

        Raises:
            KeyError: no record, or several, match.
        """
        hits = [r for r in self.records if r.name == name and (loss is None or r.loss == loss)]
        if len(hits) != 1:
            raise KeyError(f"{len(hits)} records named {name!r} (loss={loss!r}); names: "
                           f"{sorted({(r.name, r.loss) for r in self.records})}")
        return hits[0]

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-able dict of everything measured (non-finite numbers become ``None``).

        Returns:
            The pair's labels, losses, gap difference, divergences, records, temperature and ``p_min``.
        """
        return to_jsonable({
            "teacher": self.teacher, "student": self.student, "same_architecture": self.same_architecture,
            "teacher_losses": self.teacher_losses, "student_losses": self.student_losses,
            "gap_difference": self.gap_difference, "divergence_train": self.divergence_train.to_dict(),
            "divergence_test": self.divergence_test.to_dict(), "records": list(self.records),
            "temperature": self.temperature, "p_min": self.p_min})


def evaluate_pair(teacher: nn.Module, student: nn.Module, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
                  *, curvature: TeacherCurvature | None = None, kernel: bool = True, p_min: float = 1e-3,
                  temperature: float = 1.0, kernel_std: float | None = None, loss_increase: float = 0.05,
                  c_mode: str = "frobenius", mc_draws: int = 32, losses: Sequence[str] = PAIR_LOSSES,
                  central_c: float = 0.5, n_boot: int = 500, batch_size: int = 256, alpha: float = 0.05,
                  seed: int = 0, teacher_label: str | None = None, student_label: str | None = None) -> PairChecks:
    """Measure one pair and build every check record.

    Args:
        teacher, student: the networks (any architectures with the same classes).
        train, test: each ``(inputs, labels)`` tensors, an iterable of such batches or a DataLoader
            (normalised, not augmented); gaps and ``K̂`` use all of them. A ``UserWarning`` when the test
            labels are not distributed like the training labels (:func:`kdbounds._data.label_law_shift`).
        curvature: the teacher's curvature on the kernel samples (once per teacher); required for a
            same-architecture pair when ``kernel`` is True.
        kernel: evaluate Theorems 3A/3B (else they are ``not_defined`` with reason "not requested").
        p_min: clipping of the cross-entropy.
        temperature: softmax temperature of ``K̂`` and the Gibbs check.
        kernel_std, loss_increase, c_mode, mc_draws: see :func:`kdbounds.checks.kernel_checks.kernel_checks`.
        losses: subset of :data:`PAIR_LOSSES` for the Theorem 1/2 checks.
        central_c: ``c`` of Theorem 2.
        n_boot: bootstrap resamples of ``K̂``'s CI.
        batch_size: evaluation batch size.
        alpha: the run's family-wise level.
        seed: bootstrap / MC seed.
        teacher_label, student_label: recorded in every record.

    Returns:
        :class:`PairChecks`.

    Raises:
        TypeError / ValueError: non-modules, empty data, class counts that differ, unknown losses, a bad scalar
            argument, a same-architecture pair without ``curvature`` while ``kernel`` is True; inputs that are
            not finite floating tensors or do not fit the networks, labels that are not integer class indices
            of the networks (the message names ``train`` or ``test``). All before any network evaluates the data
            (one example is tried).
    """
    alpha = check_open_unit("alpha", alpha)
    for name, m in (("teacher", teacher), ("student", student)):
        if not isinstance(m, nn.Module):
            raise TypeError(f"{name}: expected an nn.Module, got {type(m).__name__}")
    bad = [x for x in losses if x not in PAIR_LOSSES]
    if bad or not losses:
        raise ValueError(f"losses: expected a non-empty subset of {PAIR_LOSSES}, got {tuple(losses)!r}")
    p_min, temperature = check_open_unit("p_min", p_min), check_positive("temperature", temperature)
    n_boot, seed = check_n_boot("n_boot", n_boot), check_seed("seed", seed)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if check_probability("central_c", central_c) == 1.0:
        raise ValueError("central_c: expected a number in [0, 1) (the c of Theorem 2), got 1.0")
    c_mode = check_choice("c_mode", c_mode, C_MODES)
    mc_draws = check_int("mc_draws", mc_draws, minimum=2)
    loss_increase = check_positive("loss_increase", loss_increase)
    if kernel_std is not None:
        kernel_std = check_positive("kernel_std", kernel_std)
    _, reason = student_in_teacher_space(student, teacher)
    same = reason is None
    if kernel and same and curvature is None:
        raise ValueError("curvature: a same-architecture pair needs the teacher's curvature for Theorems 3A/3B; "
                         "pass curvature=measure_teacher_curvature(teacher, kernel_train, kernel_test) (once per "
                         "teacher) or kernel=False")
    xtr, ytr = as_tensors(train, "train")  # (x, y) tensors, batches or a DataLoader (kdbounds._data)
    xte, yte = as_tensors(test, "test")
    for name, x, y in (("train", xtr, ytr), ("test", xte, yte)):  # before any network runs
        check_inputs(name, x)
        check_labels(name, y)
    n_t, n_s = num_classes([teacher, student], xtr, "train")  # one example each: do they take these inputs?
    if xte.shape[1:] != xtr.shape[1:] or xte.dtype != xtr.dtype:
        raise ValueError(f"test: inputs of shape {tuple(xte.shape[1:])} and dtype {xte.dtype} but train's are "
                         f"{tuple(xtr.shape[1:])} and {xtr.dtype}; both sets must be inputs of the same networks")
    if n_s != n_t:
        raise ValueError(f"student: it has {n_s} classes but the teacher has {n_t}; a pair needs the same classes")
    for name, y in (("train", ytr), ("test", yte)):
        check_labels(name, y, n_t)
    warn_label_law_shift(ytr, yte, "train", "test")
    t_tr, s_tr = collect_logits([teacher, student], xtr, batch_size=batch_size, name="train")
    t_te, s_te = collect_logits([teacher, student], xte, batch_size=batch_size, name="test")
    ytr, yte = ytr.to("cpu"), yte.to("cpu")
    lab = {"alpha": alpha, "teacher": teacher_label, "student": student_label}
    div_tr = predictive_divergence(s_tr, t_tr, temperature=temperature, n_boot=n_boot, seed=seed)
    div_te = predictive_divergence(s_te, t_te, temperature=temperature, n_boot=n_boot, seed=seed)
    k_tr = Estimate(div_tr.value, div_tr.stderr, div_tr.n, div_tr.ci_low, div_tr.ci_high, div_tr.ci)
    records: list[CheckRecord] = [gibbs_classifier(s_tr, t_tr, ytr, s_te, t_te, yte, temperature=temperature, **lab)]
    t_losses, s_losses, diffs = {}, {}, {}
    n = int(ytr.shape[0])
    for loss in losses:
        t_losses[loss] = loss_gap(t_tr, ytr, t_te, yte, loss, p_min=p_min)
        s_losses[loss] = loss_gap(s_tr, ytr, s_te, yte, loss, p_min=p_min)
        pel = [per_example_losses(z, y, loss, p_min=p_min) for z, y in ((s_tr, ytr), (t_tr, ytr), (s_te, yte),
                                                                        (t_te, yte))]
        diffs[loss] = paired_gap_difference(*pel)
        sigma = 0.5 * loss_range(loss, p_min)
        records.append(theorem1_sigma_n(diffs[loss], k_tr, sigma, n, loss=loss, **lab))
        records.append(theorem2_central(t_losses[loss].gap, s_losses[loss].gap, k_tr, sigma, n, loss=loss,
                                        c=central_c, **lab))
        records.append(product_law_proxy(diffs[loss], k_tr, sigma, n, loss=loss, **lab))
    if kernel:
        records.extend(kernel_checks(curvature, teacher, student, kernel_std=kernel_std, loss_increase=loss_increase,
                                     c_mode=c_mode, mc_draws=mc_draws, seed=seed, teacher_label=teacher_label,
                                     student_label=student_label, alpha=alpha))
    else:
        records.extend(not_defined(nm, KERNEL_CHECK_KINDS[nm], loss="clipped_ce", side="abs",
                                   reason="not requested (kernel=False)", **lab) for nm in KERNEL_CHECK_NAMES)
    return PairChecks(teacher_label, student_label, same, t_losses, s_losses, diffs, div_tr, div_te, tuple(records),
                      float(temperature), float(p_min))
