r"""Certified distillation: learn the posterior ``Q = N(w_Q, diag sigma_Q^2)`` directly on a PAC-Bayes objective.

Two methods of the project's trainer, registered like every other (:func:`kdbounds.distill.train`, so
``python -m kdbounds.train``, the run cache, resume from atomic checkpoints, the NaN stop and progress
come from there; reading a finished run back as kernels: :mod:`kdbounds.runs.posteriors`):

* ``"pbb"`` — PAC-Bayes with backprop (Pérez-Ortiz et al., JMLR 2021) without a teacher: minimise a
  relaxed PAC-Bayes bound of the bounded cross-entropy;
* ``"pbkd"`` — certified distillation: the same objective plus ``alpha`` times Hinton's KD term on the
  teacher's soft labels for the sampled network ``W``:

.. math:: T^2\, \mathrm{KL}\big(\mathrm{softmax}(z_t/T)\,\|\,\mathrm{softmax}(z_W/T)\big)


Both start the posterior *at the prior*: the student's weights (and its buffers, which stay frozen
to the prior's) are set to the prior's, and ``sigma_Q`` to ``sigma_init`` (default ``sigma_prior``).
The prior is ``prior="random:<seed>"`` (data-independent: the student architecture initialised with
that seed) or the path of a model file (a teacher or a network trained on ``D_T``), optionally
pinned by ``prior_sha256``. ``sigma = softplus(rho)``; each step draws ``W = w + sigma * eps`` (one draw per
batch, the reparameterisation trick) from a generator seeded by the run's seed and the step, so a
resumed run repeats an uninterrupted one bit for bit and different seeds give different draws.

Objectives, with :math:`c = (\mathrm{KL}(Q\|P) + \ln(2\sqrt n/\delta))/n` and the bounded
cross-entropy :math:`\hat L` (``min(CE, ln(1/p_min)) / ln(1/p_min)``) on the batch:

.. math::
    f_{\text{quad}} = \Big(\sqrt{\hat L + c/2} + \sqrt{c/2}\Big)^2, \qquad
    f_{\text{classic}} = \hat L + \sqrt{c/2}.

``n = n_bound`` must be ``|D_S|``, the size of the set the certificate is evaluated on (PBB's public
code used the full training-set size, which is anti-conservative); it is required, and so is ``prior``
(:meth:`_CertifiedMethod.check_hparams` says so before any data is loaded). From the command line::

    python -m kdbounds.train distill --method pbb --arch mlp256 --method-arg prior=random:1000 \\
        --method-arg n_bound=5000 --method-arg sigma_prior=0.01 --preset smoke --out runs/pbb
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn import functional as F

from .._torch import bounded_cross_entropy
from ..models import build_model
from .checkpoint import file_sha256, load_checkpoint_model
from .kd import kd_loss
from .methods import DistillMethod, build_scheduler, build_sgd, register_method

__all__ = ["pac_bayes_objective", "PBBMethod", "PBKDMethod", "OBJECTIVES", "param_key"]

OBJECTIVES = ("fquad", "fclassic")


def pac_bayes_objective(emp: Tensor, kl: Tensor, n: int, delta: float, kind: str = "fquad") -> Tensor:
    r"""Differentiable relaxation of the PAC-Bayes-kl bound (PBB's ``fquad`` / ``fclassic``).

    .. math::
        c = \frac{\mathrm{KL} + \ln(2\sqrt n/\delta)}{n}, \quad
        f_{\text{quad}} = \big(\sqrt{\hat L + c/2} + \sqrt{c/2}\big)^2, \quad
        f_{\text{classic}} = \hat L + \sqrt{c/2}

    Both upper-bound the inverse ``kl^{-1}(L_hat, c)`` (the first via the lower bound
    :math:`\mathrm{kl}(q\|p) \ge (p-q)^2/(2p)`, the second by Pinsker).

    Args:
        emp: the empirical bounded loss (a scalar tensor in ``[0, 1]``).
        kl: ``KL(Q||P)`` in nats (a scalar tensor).
        n: the size of the certification set ``|D_S|``.
        delta: the confidence parameter in ``(0, 1)``.
        kind: ``"fquad"`` or ``"fclassic"``.

    Returns:
        The objective (a differentiable scalar tensor).

    Raises:
        ValueError: ``kind`` is not one of :data:`OBJECTIVES`.
    """
    if kind not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {kind!r}")
    half_c = (kl + math.log(2.0 * math.sqrt(n) / delta)) / (2.0 * n)
    if kind == "fquad":
        return (torch.sqrt(emp + half_c) + torch.sqrt(half_c)) ** 2
    return emp + torch.sqrt(half_c)


def param_key(name: str) -> str:
    """A parameter name as a module/buffer key (``.`` is not allowed there): ``a.b`` -> ``a__b``.

    Args:
        name: a dotted parameter name.

    Returns:
        The name with ``.`` replaced by ``__``.
    """
    return name.replace(".", "__")


def _inv_softplus(s: float) -> float:
    return s + math.log(-math.expm1(-s))


def _load_prior(spec: str, sha: str, student: nn.Module, num_classes: int) -> nn.Module:
    if not spec:
        raise ValueError("prior: required — 'random:<seed>' (data-independent prior) or the path of a model "
                         "file trained on D_T only (e.g. a teacher's model.pt)")
    if spec.startswith("random:"):
        try:
            seed = int(spec.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"prior: 'random:<seed>' needs an integer seed, got {spec!r}") from None
        return build_model(student.arch, num_classes=num_classes, seed=seed)
    if not Path(spec).is_file():
        raise ValueError(f"prior: model file {spec!r} does not exist")
    if sha and file_sha256(spec) != sha:
        raise ValueError(f"prior_sha256: the file {spec!r} does not have the pinned SHA-256 {sha[:12]}…; "
                         f"it was retrained or replaced")
    return load_checkpoint_model(spec, arch=student.arch)


class _CertifiedMethod(DistillMethod):
    """Shared machinery of ``pbb`` and ``pbkd`` (see the module docstring)."""

    requires_teacher = False
    base_defaults: dict[str, Any] = {
        "prior": "", "prior_sha256": "", "params": "", "sigma_prior": 0.03, "sigma_init": 0.0,
        "objective": "fquad", "n_bound": 0, "delta": 0.025, "p_min": 1e-4, "kl_weight": 1.0,
    }

    @classmethod
    def check_hparams(cls, hp: Mapping[str, Any]) -> None:
        """Refuse a run that cannot give a certificate, before any data is loaded.

        Args:
            hp: the hyper-parameters completed by their defaults.

        Raises:
            ValueError: no ``prior``, ``n_bound < 1``, ``delta`` outside (0, 1), ``sigma_prior ≤ 0``,
                ``sigma_init < 0``, an unknown ``objective`` or ``kl_weight < 0`` — naming the argument.
        """
        need = "method_kwargs prior='random:<seed>' or a model file trained on D_T only, and n_bound=|D_S|"
        if not hp["prior"]:
            raise ValueError(f"prior: required — method {cls.name!r} needs a PAC-Bayes prior centre: {need} "
                             f"(command line: --method-arg prior=random:0 --method-arg n_bound=5000)")
        if hp["n_bound"] < 1:
            raise ValueError(f"n_bound: expected |D_S| (the size of the certification set, ≥ 1), got "
                             f"{hp['n_bound']}; the objective's n must be |D_S|, not the training-set size "
                             f"(method {cls.name!r} needs {need})")
        if not 0.0 < hp["delta"] < 1.0:
            raise ValueError(f"delta: expected a number in (0, 1), got {hp['delta']}")
        if not hp["sigma_prior"] > 0:
            raise ValueError(f"sigma_prior: expected a number > 0, got {hp['sigma_prior']}")
        if hp["sigma_init"] < 0:
            raise ValueError(f"sigma_init: expected ≥ 0 (0 = sigma_prior), got {hp['sigma_init']}")
        if hp["objective"] not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {OBJECTIVES}, got {hp['objective']!r}")
        if hp["kl_weight"] < 0:
            raise ValueError(f"kl_weight: expected ≥ 0, got {hp['kl_weight']}")

    def __init__(self, student: nn.Module, teacher: nn.Module | None, num_classes: int, **hparams: Any):
        super().__init__(student, teacher, num_classes, **hparams)  # calls check_hparams
        hp = self.hparams
        prior = _load_prior(hp["prior"], hp["prior_sha256"], student, num_classes)
        from .._params import select_parameters

        self.names: tuple[str, ...] = tuple(select_parameters(prior, hp["params"] or None))
        prior_named = dict(prior.named_parameters())
        mean = {n: prior_named[n].detach().clone() for n in self.names}
        # the posterior starts at the prior; buffers and unselected parameters are the prior's and stay so
        with torch.no_grad():
            student.load_state_dict(prior.state_dict())
        for n in self.names:
            self.register_buffer("prior_mean__" + param_key(n), mean[n].clone())
        s0 = hp["sigma_init"] or hp["sigma_prior"]
        self.rho = nn.ParameterDict({param_key(n): nn.Parameter(torch.full_like(mean[n], _inv_softplus(s0)))
                                     for n in self.names})
        # drawn under the trainer's forked RNG seeded with the run's seed: different seeds, different noise
        self.register_buffer("noise_seed", torch.randint(0, 2 ** 62, (1,), dtype=torch.int64))

    # -- optimisation: the selected means and ρ only (unselected parameters stay the prior's)
    def configure_optimizers(self, student: nn.Module, cfg: Any) -> list[torch.optim.Optimizer]:
        named = dict(student.named_parameters())
        for n, p in named.items():
            if n not in self.names:
                p.requires_grad_(False)
        return [build_sgd([named[n] for n in self.names] + list(self.rho.values()), cfg)]

    def configure_schedulers(self, optimizers, cfg):
        return [build_scheduler(o, cfg) for o in optimizers]

    def sigma(self, name: str) -> Tensor:
        return F.softplus(self.rho[param_key(name)])

    def kl(self, student: nn.Module) -> Tensor:
        """Differentiable ``KL(Q‖P)`` (the closed form of :func:`kdbounds.pacbayes.kernels.kernel_kl`)."""
        named = dict(student.named_parameters())
        sp = self.hparams["sigma_prior"]
        total = torch.zeros((), device=self.noise_seed.device)
        for n in self.names:
            vq = self.sigma(n).square()
            mp = getattr(self, "prior_mean__" + param_key(n))
            r = vq / sp ** 2
            total = total + 0.5 * ((named[n] - mp).square().sum() / sp ** 2 + (r - 1 - torch.log(r)).sum())
        return total

    def training_step(self, x, y, student, teacher, optimizers, epoch, step_ctx):
        hp = self.hparams
        student.eval()  # buffers frozen to the prior's (no running-statistics updates)
        gen = torch.Generator(device=x.device).manual_seed(int(self.noise_seed.item()) + step_ctx.global_step)
        named = dict(student.named_parameters())
        weights = {n: named[n] + self.sigma(n) * torch.randn(named[n].shape, generator=gen, device=x.device,
                                                             dtype=named[n].dtype) for n in self.names}
        with step_ctx.autocast():
            out = functional_call(student, weights, (x,))
            logits = out.logits if hasattr(out, "logits") else out
            emp = bounded_cross_entropy(logits, y, hp["p_min"]).mean()
            kl = self.kl(student)
            bound = pac_bayes_objective(emp, hp["kl_weight"] * kl, hp["n_bound"], hp["delta"], hp["objective"])
            loss, parts = self.extra_loss(bound, logits, x, teacher)
        step_ctx.backward_and_step(loss, optimizers[0])
        acc = (logits.detach().argmax(1) == y).float().mean()
        return {"loss": loss.detach(), "acc": acc, "emp_bce": emp.detach(), "kl": kl.detach(),
                "bound": bound.detach(), **parts}

    def extra_loss(self, bound: Tensor, logits: Tensor, x: Tensor, teacher: nn.Module | None):
        return bound, {}

    def loss(self, x, y, s_out, t_out, epoch):  # pragma: no cover - training_step is overridden
        raise NotImplementedError


@register_method
class PBBMethod(_CertifiedMethod):
    """PAC-Bayes with backprop: minimise fquad/fclassic of the bounded CE, posterior started at the prior."""

    name = "pbb"
    requires_teacher = False
    defaults = dict(_CertifiedMethod.base_defaults)


@register_method
class PBKDMethod(_CertifiedMethod):
    r"""Certified distillation: the PBB objective plus ``alpha`` times the KD term of the sampled student.

    .. math:: f + \alpha\, T^2\, \mathrm{KL}\big(\mathrm{softmax}(z_t/T)\,\|\,\mathrm{softmax}(z_W/T)\big)
    """

    name = "pbkd"
    requires_teacher = True
    defaults = {**_CertifiedMethod.base_defaults, "alpha": 1.0, "T": 4.0}

    def __init__(self, student, teacher, num_classes, **hparams):
        super().__init__(student, teacher, num_classes, **hparams)
        if self.hparams["alpha"] < 0 or not self.hparams["T"] > 0:
            raise ValueError(f"alpha must be ≥ 0 and T > 0; got alpha={self.hparams['alpha']}, T={self.hparams['T']}")

    def extra_loss(self, bound, logits, x, teacher):
        """The bound plus ``alpha`` times Hinton's KD term against the teacher's soft labels.

        Args:
            bound: the relaxed PAC-Bayes objective of the batch.
            logits: the sampled student's logits on ``x``.
            x: the batch inputs.
            teacher: the teacher network (evaluated without gradients).

        Returns:
            ``(loss, {"kd": detached KD term})``.
        """
        with torch.no_grad():
            t = teacher(x)
            t = t.logits if hasattr(t, "logits") else t
        kd = kd_loss(logits, t, self.hparams["T"])
        return bound + self.hparams["alpha"] * kd, {"kd": kd.detach()}
