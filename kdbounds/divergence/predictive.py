r"""Predictive distillation divergence of classifiers (measurement layer, torch; theory.md §6).

Direction **student** :math:`\Vert` **teacher** (theory.md §2, forced by the change-of-measure
argument with Q = student, P = teacher):

.. math::
    \hat K = \frac1n \sum_x \mathrm{KL}\bigl(p_S(\cdot\mid x) \,\Vert\, p_T(\cdot\mid x)\bigr), \qquad
    p(\cdot\mid x) = \mathrm{softmax}(z(x) / t),

with a standard error ``sd / sqrt(n)`` and a seeded bootstrap percentile confidence interval.
Optionally each side is an ensemble: the predictive law is the *mixture* (average of the
members' probabilities), computed in log space with ``logsumexp``.
Entry points: :func:`predictive_divergence` (modules or logits + data) and the pure core
:func:`divergence_from_logits`.

(The Laplace and Gaussian closed forms live in :mod:`.laplace` and :mod:`.gaussian`.)

Conventions. Modules are evaluated in eval mode (BatchNorm uses its running statistics, dropout is
off) under ``torch.no_grad()``; the training flag of every submodule is restored afterwards.
Per-example KLs are computed in float64 from ``log_softmax`` (never ``log(softmax)``). Inputs follow
each model's device unless ``device`` is given. Nothing here prints or writes files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from collections.abc import Iterable
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .._checks import check_finite_array, check_int, check_n_boot, check_open_unit, check_positive, check_seed
from .._torch import collect_logits, resolve_device

__all__ = [
    "DivergenceEstimate",
    "predictive_divergence",
    "divergence_from_logits",
    "mixture_log_probs",
    "summarize_per_example",
    "collect_logits",
]


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DivergenceEstimate:
    r"""Mean per-input :math:`\mathrm{KL}(p_S \Vert p_T)` with its uncertainty.

    Attributes:
        value: the sample mean :math:`\frac1n \sum_i \mathrm{KL}_i` (nats).
        stderr: :math:`\mathrm{sd}(\mathrm{KL}_i, \mathrm{ddof}=1) / \sqrt n`; ``inf`` when ``n == 1``.
        ci_low, ci_high: confidence interval at level ``ci`` (bootstrap percentile, or the normal
            approximation clipped at 0 when ``n_boot == 0``; ``(0, inf)`` when ``n == 1``).
        n: number of inputs.
        temperature: the softmax temperature ``t``.
        ci: confidence level of the interval.
        n_boot: number of bootstrap resamples (0 = normal approximation).
        ci_method: ``"percentile"`` or ``"normal"``.
        per_example: the ``n`` per-input KLs (float64, CPU) when requested, else ``None``.
    """

    value: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int
    temperature: float
    ci: float = 0.95
    n_boot: int = 0
    ci_method: str = "percentile"
    per_example: torch.Tensor | None = field(default=None, repr=False, compare=False)

    def to_dict(self, include_per_example: bool = False) -> dict[str, Any]:
        """JSON-ready dict; the per-example vector only when ``include_per_example``.

        Args:
            include_per_example: add the per-example KLs as a list.

        Returns:
            The fields as plain Python values (an infinite ``stderr``/``ci_high`` stays a float here;
            :func:`kdbounds._io.to_jsonable` writes it as ``null``).
        """
        d: dict[str, Any] = {
            "value": self.value,
            "stderr": self.stderr,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n": self.n,
            "temperature": self.temperature,
            "ci": self.ci,
            "n_boot": self.n_boot,
            "ci_method": self.ci_method,
        }
        if include_per_example and self.per_example is not None:
            d["per_example"] = self.per_example.tolist()
        return d


# --------------------------------------------------------------------------------------------
# Pure core
# --------------------------------------------------------------------------------------------


def _as_logits(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of logits of shape (n, classes), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n, classes), got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor of logits, got dtype {x.dtype}")
    if x.shape[1] < 1:
        raise ValueError(f"{name} has no classes (shape {tuple(x.shape)})")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite logits; check the model's outputs")
    return x


def mixture_log_probs(logits: Sequence[torch.Tensor] | torch.Tensor, temperature: float = 1.0, *,
                      name: str = "logits") -> torch.Tensor:
    r"""Log-probabilities of the mixture of the members' softmaxes (float64).

    .. math::
        \log p = \operatorname{logsumexp}_j \log\mathrm{softmax}(z_j / t) - \log M,

    i.e. :math:`p = \frac1M \sum_j \mathrm{softmax}(z_j / t)`. A single tensor is a single member.

    Args:
        logits: one ``(n, classes)`` tensor or a sequence of M of them.
        temperature: ``t > 0``.
        name: the argument's name in error messages.

    Returns:
        ``(n, classes)`` float64 log-probabilities.

    Raises:
        ValueError: no members, members of different shapes, non-finite logits or a bad temperature.
    """
    t = check_positive("temperature", temperature)
    if isinstance(logits, (torch.Tensor, np.ndarray)):
        members = [logits]
    elif isinstance(logits, (str, bytes)) or not isinstance(logits, Iterable):
        raise TypeError(f"{name} must be a tensor of logits of shape (n, classes) or a sequence of them (an "
                        f"ensemble), got {type(logits).__name__}")
    else:
        members = list(logits)
    if not members:
        raise ValueError(f"{name}: an ensemble needs at least one member")
    lps = []
    for j, z in enumerate(members):
        z = _as_logits(z, name if len(members) == 1 and z is logits else f"{name}[{j}]")
        if lps and z.shape != lps[0].shape:
            raise ValueError(
                f"{name}: ensemble members disagree in shape: member 0 has {tuple(lps[0].shape)}, "
                f"member {j} has {tuple(z.shape)}"
            )
        lps.append(torch.log_softmax(z.to(torch.float64) / t, dim=1))
    if len(lps) == 1:
        return lps[0]
    return torch.logsumexp(torch.stack(lps, 0), dim=0) - math.log(len(lps))


def _kl_from_log_probs(lp_s: torch.Tensor, lp_t: torch.Tensor) -> torch.Tensor:
    # KL(p_s || p_t) = Σ_c p_s (log p_s − log p_t); terms with p_s = 0 contribute 0.
    p_s = lp_s.exp()
    diff = torch.where(p_s > 0, lp_s - lp_t, torch.zeros_like(lp_s))
    kl = (p_s * diff).sum(dim=1)
    # Exact KL is ≥ 0; remove rounding noise of order 1e-16.
    return kl.clamp_min(0.0)


def divergence_from_logits(
    s_logits: torch.Tensor | Sequence[torch.Tensor],
    t_logits: torch.Tensor | Sequence[torch.Tensor],
    temperature: float = 1.0,
) -> torch.Tensor:
    r"""Per-example KL of the student's softmax from the teacher's (nats, float64, shape ``(n,)``).

    .. math::
        \mathrm{KL}_i = \sum_c p_{S,c}\,(\log p_{S,c} - \log p_{T,c}), \qquad
        \log p = \log\mathrm{softmax}(z / t).

    Either side may be a sequence of logits tensors (an ensemble): its law is then the mixture of the
    members' softmaxes (:func:`mixture_log_probs`).

    Args:
        s_logits: the student's ``(n, classes)`` logits, or a sequence of them.
        t_logits: the teacher's ``(n, classes)`` logits, or a sequence of them.
        temperature: ``t > 0``.

    Returns:
        The ``(n,)`` per-example KLs.

    Raises:
        ValueError: class counts or example counts differ (both named), non-finite logits,
            temperature not positive, no examples.
    """
    t = check_positive("temperature", temperature)
    lp_s = mixture_log_probs(s_logits, t, name="s_logits")
    lp_t = mixture_log_probs(t_logits, t, name="t_logits")
    if lp_s.shape[1] != lp_t.shape[1]:
        raise ValueError(
            f"t_logits: class counts differ: the student has {lp_s.shape[1]} classes but the teacher has "
            f"{lp_t.shape[1]} (s_logits vs t_logits); the predictive divergence needs the same label space"
        )
    if lp_s.shape[0] != lp_t.shape[0]:
        raise ValueError(
            f"t_logits: example counts differ: the student has logits for {lp_s.shape[0]} inputs but the teacher "
            f"for {lp_t.shape[0]} (s_logits vs t_logits); evaluate both on the same inputs in the same order"
        )
    if lp_s.shape[0] == 0:
        raise ValueError("s_logits: no examples, the logits are empty (n = 0)")
    lp_t = lp_t.to(lp_s.device)
    return _kl_from_log_probs(lp_s, lp_t)


def summarize_per_example(
    values: torch.Tensor | np.ndarray | Sequence[float],
    *,
    temperature: float = 1.0,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    keep_per_example: bool = False,
) -> DivergenceEstimate:
    r"""Mean, standard error and bootstrap percentile CI of per-example divergences.

    .. math::
        \text{value} = \bar v = \frac1n \sum_i v_i, \qquad
        \text{stderr} = \mathrm{sd}(v, \mathrm{ddof}=1) / \sqrt n.

    The CI resamples the n values with replacement ``n_boot`` times
    (``numpy.random.default_rng(seed)``) and takes the :math:`(1-\mathrm{ci})/2` and
    :math:`(1+\mathrm{ci})/2` quantiles of the resampled means. ``n_boot = 0`` gives the normal
    interval :math:`\bar v \pm z\,\mathrm{stderr}` clipped at 0.

    Args:
        values: the ``n`` per-example divergences (1-D).
        temperature: the softmax temperature, recorded in the result.
        n_boot: bootstrap resamples (0: normal interval).
        ci: confidence level in (0, 1).
        seed: seed of the bootstrap.
        keep_per_example: keep ``values`` in ``per_example``.

    Returns:
        A :class:`DivergenceEstimate`.

    Raises:
        ValueError: ``values`` not 1-D, empty or non-finite, ``n_boot < 0`` or ``== 1`` (one resample has no
            spread), ``ci`` outside (0, 1), ``seed`` outside [0, 2**32 - 1].
        TypeError: values that are not numbers, a ``ci``, ``n_boot`` or ``seed`` of the wrong type.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    v = check_finite_array("values", values, ndim=1)  # one divergence per example
    n = int(v.shape[0])
    if n == 0:
        raise ValueError("values: no examples, cannot estimate a divergence from an empty data set")
    n_boot = check_n_boot("n_boot", n_boot)
    ci = check_open_unit("ci", ci)
    seed = check_seed("seed", seed)
    t = check_positive("temperature", temperature)
    mean = float(v.mean())
    per = torch.from_numpy(v.copy()) if keep_per_example else None
    if n == 1:
        return DivergenceEstimate(mean, math.inf, 0.0, math.inf, 1, t, float(ci), int(n_boot),
                                  "percentile" if n_boot else "normal", per)
    sd = float(v.std(ddof=1))
    se = sd / math.sqrt(n)
    alpha = (1.0 - float(ci)) / 2.0
    if n_boot == 0:
        from scipy.stats import norm

        z = float(norm.ppf(1.0 - alpha))
        lo, hi = max(mean - z * se, 0.0), mean + z * se
        method = "normal"
    else:
        rng = np.random.default_rng(seed)
        means = np.empty(int(n_boot), dtype=np.float64)
        # Chunk the resamples so that memory stays ~ 8 MB whatever n is.
        chunk = max(1, min(int(n_boot), 1_000_000 // n))
        for start in range(0, int(n_boot), chunk):
            stop = min(int(n_boot), start + chunk)
            idx = rng.integers(0, n, size=(stop - start, n))
            means[start:stop] = v[idx].mean(axis=1)
        lo, hi = (float(q) for q in np.quantile(means, [alpha, 1.0 - alpha]))
        method = "percentile"
    return DivergenceEstimate(mean, se, lo, hi, n, t, float(ci), int(n_boot), method, per)


# --------------------------------------------------------------------------------------------
# Models and data
# --------------------------------------------------------------------------------------------


def _members(main: Any, extra: Sequence[Any] | None, name: str) -> list[Any]:
    members: list[Any] = []
    if main is not None:
        if isinstance(main, (list, tuple)):
            members.extend(main)
        else:
            members.append(main)
    if extra is not None:
        if isinstance(extra, (nn.Module, torch.Tensor)):
            members.append(extra)
        else:
            members.extend(list(extra))
    if not members:
        raise ValueError(f"{name}: give a model, a logits tensor or a non-empty ensemble")
    for j, m in enumerate(members):
        if isinstance(m, np.ndarray):
            members[j] = torch.from_numpy(m)
        elif not isinstance(m, (nn.Module, torch.Tensor)):
            raise TypeError(
                f"{name} member {j} is a {type(m).__name__}; expected an nn.Module or a logits tensor"
            )
    return members


def predictive_divergence(
    student: nn.Module | torch.Tensor | Sequence[nn.Module | torch.Tensor] | None,
    teacher: nn.Module | torch.Tensor | Sequence[nn.Module | torch.Tensor] | None,
    data: Any = None,
    temperature: float = 1.0,
    *,
    ensemble_student: Sequence[nn.Module | torch.Tensor] | None = None,
    ensemble_teacher: Sequence[nn.Module | torch.Tensor] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    keep_per_example: bool = False,
    progress: bool = False,
) -> DivergenceEstimate:
    r"""Predictive distillation divergence of a student and a teacher on ``data`` (theory.md §6).

    .. math::
        \hat K = \frac1n \sum_x \mathrm{KL}\bigl(p_S(\cdot\mid x) \,\Vert\, p_T(\cdot\mid x)\bigr), \qquad
        p(\cdot\mid x) = \mathrm{softmax}(z(x)/t),

    and for an ensemble of M members the mixture :math:`\frac1M \sum_j \mathrm{softmax}(z_j(x)/t)`.

    Args:
        student, teacher: an ``nn.Module`` (evaluated on ``data`` in eval mode under no_grad, its
            training flags restored afterwards; outputs may be a tensor, a ``FeatureOutput``-like
            NamedTuple with ``.logits`` or a tuple whose first element is the logits), a precomputed
            logits tensor ``(n, classes)`` in data order, or a list of those (an ensemble). May be
            ``None`` when the corresponding ``ensemble_*`` is given.
        data: ``(x, y)`` tensors, an iterable of ``(x, y)`` batches or a DataLoader (labels unused), or
            a tensor of inputs alone. Needed when a module is involved; ignored (may be ``None``) when
            all members are logits.
        temperature: softmax temperature ``t > 0``.
        ensemble_student, ensemble_teacher: extra members whose probabilities are averaged with
            ``student`` / ``teacher`` (mixture) before the KL.
        n_boot, ci, seed: bootstrap percentile CI with ``numpy.random.default_rng(seed)``;
            ``n_boot = 0`` uses the normal approximation.
        device: move inputs there (default: each model's own device).
        batch_size: batch size used when ``data`` is a tensor.
        keep_per_example: keep the per-input KLs in ``per_example``.
        progress: tqdm bar while evaluating modules.

    Returns:
        :class:`DivergenceEstimate` with ``value``, ``stderr = sd/sqrt(n)``, ``ci_low``, ``ci_high``, ``n``.

    Raises:
        ValueError: class counts differ (both named), empty data, temperature not positive, a module given
            without ``data``, logits counts that do not match the data, inputs whose shape does not
            fit a model, NaN/inf inputs, a device that is not available, ``n_boot`` < 0 or = 1, ``ci``
            outside (0, 1), ``seed`` outside [0, 2**32 - 1], ``batch_size`` < 1 (all checked before evaluation).
        TypeError: integer (un-normalised) inputs, or an argument of the wrong type.
    """
    t = check_positive("temperature", temperature)
    n_boot = check_n_boot("n_boot", n_boot)  # before any model is evaluated
    check_open_unit("ci", ci)
    check_seed("seed", seed)
    check_int("batch_size", batch_size, minimum=1)
    if device is not None:
        resolve_device(device)
    s_members = _members(student, ensemble_student, "student")
    t_members = _members(teacher, ensemble_teacher, "teacher")
    modules = [m for m in s_members + t_members if isinstance(m, nn.Module)]
    mod_logits: dict[int, torch.Tensor] = {}
    if modules:
        if data is None:
            raise ValueError(
                "data is None but a model was given: pass the inputs as (x, y) tensors, an iterable of (x, y) "
                "batches or a DataLoader"
            )
        zs = collect_logits(modules, data, device=device, batch_size=batch_size, progress=progress)
        mod_logits = {id(m): z for m, z in zip(modules, zs)}

    def resolve(members: list[Any], name: str) -> list[torch.Tensor]:
        out = []
        for j, m in enumerate(members):
            z = mod_logits[id(m)] if isinstance(m, nn.Module) else m
            out.append(_as_logits(z, f"{name} member {j} logits").detach().to("cpu"))
            if out[j].shape != out[0].shape:
                raise ValueError(f"{name}: ensemble members disagree in shape: member 0 has {tuple(out[0].shape)}, "
                                 f"member {j} has {tuple(out[j].shape)}")
        return out

    zs_s = resolve(s_members, "student")
    zs_t = resolve(t_members, "teacher")
    if zs_s[0].shape[1] != zs_t[0].shape[1]:
        raise ValueError(
            f"class counts differ: the student has {zs_s[0].shape[1]} classes but the teacher has "
            f"{zs_t[0].shape[1]}; the predictive divergence needs the same label space"
        )
    if any(z.shape[0] == 0 for z in zs_s + zs_t):
        raise ValueError("empty data: no inputs to average the divergence over")
    kl = divergence_from_logits(zs_s, zs_t, t)
    return summarize_per_example(
        kl, temperature=t, n_boot=n_boot, ci=ci, seed=seed, keep_per_example=keep_per_example
    )


