r"""Certified distillation: learn the posterior ``Q = N(w_Q, diag sigma_Q^2)`` directly on a PAC-Bayes objective.

Two methods of the project's trainer, registered like every other (:func:`kdbounds.distill.train`, so
``python -m kdbounds.train``, the run cache, resume from atomic checkpoints, the NaN stop and progress
come from there; reading a finished run back as kernels: :mod:`kdbounds.runs.posteriors`). The step
itself is :func:`certified_step`, written once: the trainer's methods call it on the student's
parameters, and :func:`kdbounds.runs.posterior_learning.learn_posterior` (any ``nn.Module``, a prior
kernel, data in the three forms) calls it on its own tensors, so both give the same kernel:

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

from .._checks import check_choice, check_int, check_nonnegative, check_open_unit, check_positive
from .._torch import _output_logits, bounded_cross_entropy
from ..models import build_model
from .checkpoint import file_sha256, load_checkpoint_model
from .kd import kd_loss
from .methods import DistillMethod, StepContext, build_scheduler, build_sgd, register_method

__all__ = ["pac_bayes_objective", "PBBMethod", "PBKDMethod", "OBJECTIVES", "OBJECTIVE_DEFAULTS", "KD_DEFAULTS",
           "param_key", "check_objective_hparams", "certified_step", "gaussian_kl", "initial_rho",
           "draw_noise_seed", "step_generator"]

OBJECTIVES = ("fquad", "fclassic")
#: the objective's hyper-parameters, shared by the trainer's methods and ``learn_posterior``
#: (``sigma_init = 0``: the posterior starts with the prior's scales)
OBJECTIVE_DEFAULTS: dict[str, Any] = {"objective": "fquad", "n_bound": 0, "delta": 0.025, "p_min": 1e-4,
                                      "kl_weight": 1.0, "sigma_init": 0.0}
#: ``pbkd``'s KD term: weight ``alpha`` and temperature ``T``
KD_DEFAULTS: dict[str, Any] = {"alpha": 1.0, "T": 4.0}


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
    check_choice("objective", kind, OBJECTIVES)
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


def check_objective_hparams(hp: Mapping[str, Any], method: str = "pbb") -> None:
    """Refuse objective hyper-parameters that cannot give a certificate (no model or data needed).

    The one check of :data:`OBJECTIVE_DEFAULTS` (and of :data:`KD_DEFAULTS` when ``hp`` has them), used
    by the trainer's ``pbb``/``pbkd`` and by :func:`kdbounds.runs.posterior_learning.learn_posterior`.

    Args:
        hp: the hyper-parameters completed by their defaults.
        method: ``"pbb"`` or ``"pbkd"`` (named in the messages).

    Raises:
        TypeError: a value of the wrong type — naming the argument.
        ValueError: ``n_bound < 1``, ``delta`` or ``p_min`` outside (0, 1), ``sigma_init < 0``, an unknown
            ``objective``, ``kl_weight < 0``, ``alpha < 0`` or ``T <= 0`` — naming the argument.
    """
    if check_int("n_bound", hp["n_bound"]) < 1:
        raise ValueError(f"n_bound: expected |D_S| (the size of the certification set, ≥ 1), got "
                         f"{hp['n_bound']}; the objective's n must be |D_S|, not the training-set size "
                         f"(method {method!r})")
    check_open_unit("delta", hp["delta"])
    check_open_unit("p_min", hp["p_min"])  # the bounded cross-entropy's floor
    check_nonnegative("sigma_init", hp["sigma_init"], fix="0 = the prior's scale")
    check_choice("objective", hp["objective"], OBJECTIVES)
    check_nonnegative("kl_weight", hp["kl_weight"])
    if "alpha" in hp:
        check_nonnegative("alpha", hp["alpha"], fix="alpha is the weight of pbkd's KD term")
    if "T" in hp:
        check_positive("T", hp["T"], fix="T is the KD temperature")


def draw_noise_seed() -> Tensor:
    """The seed of a run's weight noise, drawn from the global torch RNG (the caller seeds it).

    Returns:
        A one-element int64 tensor in ``[0, 2^62)``.
    """
    return torch.randint(0, 2 ** 62, (1,), dtype=torch.int64)


def step_generator(noise_seed: Tensor | int, step: int, device: torch.device) -> torch.Generator:
    """The generator of step ``step``'s weight noise: seeded with ``noise_seed + step``, so a resumed run
    draws what an uninterrupted one would.

    Args:
        noise_seed: the run's noise seed (:func:`draw_noise_seed`).
        step: the global 0-based step.
        device: where the noise is drawn.

    Returns:
        The seeded generator.
    """
    return torch.Generator(device=device).manual_seed(int(noise_seed) + int(step))


def initial_rho(prior_std: Mapping[str, Tensor], sigma_init: float = 0.0) -> dict[str, Tensor]:
    r"""``rho`` of the posterior's starting scales, the inverse of ``sigma = softplus(rho)``, in float64 then
    cast back:

    .. math:: \rho = \sigma + \ln(1 - e^{-\sigma})

    Args:
        prior_std: name -> the prior's scale tensor.
        sigma_init: the posterior's starting scale (one number), or 0: the prior's scales.

    Returns:
        name -> ``rho`` (same shape and dtype as the prior's scale).
    """
    out = {}
    for n, sp in prior_std.items():
        s = (torch.full_like(sp, sigma_init) if sigma_init > 0 else sp).double()
        out[n] = (s + torch.log(-torch.expm1(-s))).to(sp.dtype)
    return out


def gaussian_kl(means: Mapping[str, Tensor], stds: Mapping[str, Tensor], prior_means: Mapping[str, Tensor],
                prior_stds: Mapping[str, Tensor]) -> Tensor:
    r"""Differentiable ``KL(Q||P)`` of two diagonal Gaussians over the same tensors (the closed form of
    :func:`kdbounds.pacbayes.kernels.kernel_kl`, in the tensors' dtype):

    .. math:: \tfrac12 \sum_i \frac{(w_{Q,i} - w_{P,i})^2}{\sigma_{P,i}^2} + \tfrac12 \sum_i \Big(r_i - 1 - \ln r_i\Big),
        \qquad r_i = \sigma_{Q,i}^2 / \sigma_{P,i}^2

    Args:
        means, stds: the posterior's means and scales, by name.
        prior_means, prior_stds: the prior's, by the same names.

    Returns:
        The divergence in nats (a scalar tensor).
    """
    total = None
    for n, m in means.items():
        vp = prior_stds[n].square()
        r = stds[n].square() / vp
        term = 0.5 * (((m - prior_means[n]).square() / vp).sum() + (r - 1 - torch.log(r)).sum())
        total = term if total is None else total + term
    return total


def certified_step(model: nn.Module, means: Mapping[str, Tensor], rho: Mapping[str, Tensor],
                   prior_means: Mapping[str, Tensor], prior_stds: Mapping[str, Tensor], x: Tensor, y: Tensor,
                   hp: Mapping[str, Any], generator: torch.Generator, optimizer: torch.optim.Optimizer,
                   step_ctx: StepContext, *, teacher: nn.Module | None = None,
                   frozen: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    r"""One optimisation step of ``pbb`` (``teacher=None``) or ``pbkd`` — the only implementation of it.

    Draws one ``W = w + softplus(rho) * eps`` (``eps`` from ``generator``, tensor by tensor in the order of
    ``means``), evaluates ``model`` at ``W`` (and ``frozen``) on the batch with
    :func:`torch.func.functional_call`, and takes an optimiser step on

    .. math:: f\big(\hat L_{\text{bce}}(W),\ \text{kl\_weight}\cdot\mathrm{KL}(Q\|P)\big)
        \;[+\ \alpha\, T^2\, \mathrm{KL}(\mathrm{softmax}(z_t/T)\,\|\,\mathrm{softmax}(z_W/T))]

    (:func:`pac_bayes_objective` with ``hp``'s ``objective``, ``n_bound``, ``delta``, ``p_min``).
    The caller puts ``model`` in eval mode (buffers frozen: no running-statistics update).

    Args:
        model: the network used as a function.
        means: name -> the posterior's mean (trainable leaf tensors).
        rho: name -> the posterior's ``rho`` (trainable; ``sigma = softplus(rho)``).
        prior_means, prior_stds: name -> the prior's mean and scale.
        x, y: the batch.
        hp: the hyper-parameters (:data:`OBJECTIVE_DEFAULTS`, and :data:`KD_DEFAULTS` with a teacher).
        generator: the step's noise generator (:func:`step_generator`).
        optimizer: stepped over ``means`` and ``rho``.
        step_ctx: autocast and gradient clipping.
        teacher: with a teacher, ``pbkd``'s KD term (the teacher runs under ``torch.no_grad()``).
        frozen: name -> tensor of the parameters and buffers not in ``means`` (``None``: the model's own).

    Returns:
        ``{"loss", "acc", "emp_bce", "kl", "bound"}`` (and ``"kd"`` with a teacher), detached.
    """
    sigmas = {n: F.softplus(rho[n]) for n in means}
    weights = {n: m + sigmas[n] * torch.randn(m.shape, generator=generator, device=x.device, dtype=m.dtype)
               for n, m in means.items()}
    with step_ctx.autocast():
        logits = _output_logits(functional_call(model, {**(frozen or {}), **weights}, (x,)), "model")
        emp = bounded_cross_entropy(logits, y, hp["p_min"]).mean()
        kl = gaussian_kl(means, sigmas, prior_means, prior_stds)
        bound = pac_bayes_objective(emp, hp["kl_weight"] * kl, hp["n_bound"], hp["delta"], hp["objective"])
        loss, parts = bound, {}
        if teacher is not None:
            with torch.no_grad():
                t = _output_logits(teacher(x), "teacher")
            kd = kd_loss(logits, t, hp["T"])
            loss, parts = bound + hp["alpha"] * kd, {"kd": kd.detach()}
    step_ctx.backward_and_step(loss, optimizer)
    acc = (logits.detach().argmax(1) == y).float().mean()
    return {"loss": loss.detach(), "acc": acc, "emp_bce": emp.detach(), "kl": kl.detach(),
            "bound": bound.detach(), **parts}


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
    """Shared machinery of ``pbb`` and ``pbkd`` (see the module docstring): the prior from ``prior``, the
    posterior on the student's parameters and ``ρ``, each step :func:`certified_step`."""

    requires_teacher = False
    base_defaults: dict[str, Any] = {"prior": "", "prior_sha256": "", "params": "", "sigma_prior": 0.03,
                                     **OBJECTIVE_DEFAULTS}

    @classmethod
    def check_hparams(cls, hp: Mapping[str, Any]) -> None:
        """Refuse a run that cannot give a certificate, before any data is loaded.

        Args:
            hp: the hyper-parameters completed by their defaults.

        Raises:
            ValueError: no ``prior``, ``sigma_prior ≤ 0``, or an objective hyper-parameter
                :func:`check_objective_hparams` refuses — naming the argument.
        """
        need = "method_kwargs prior='random:<seed>' or a model file trained on D_T only, and n_bound=|D_S|"
        if not hp["prior"]:
            raise ValueError(f"prior: required — method {cls.name!r} needs a PAC-Bayes prior centre: {need} "
                             f"(command line: --method-arg prior=random:0 --method-arg n_bound=5000)")
        check_positive("sigma_prior", hp["sigma_prior"])
        check_objective_hparams(hp, cls.name)

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
            # the prior's scale as a tensor (not saved: it is sigma_prior), so the step is the one of learn_posterior
            self.register_buffer("prior_std__" + param_key(n), torch.full_like(mean[n], hp["sigma_prior"]),
                                 persistent=False)
        rho = initial_rho(self._by_name("prior_std__"), hp["sigma_init"])
        self.rho = nn.ParameterDict({param_key(n): nn.Parameter(rho[n]) for n in self.names})
        # drawn under the trainer's forked RNG seeded with the run's seed: different seeds, different noise
        self.register_buffer("noise_seed", draw_noise_seed())

    def _by_name(self, prefix: str) -> dict[str, Tensor]:
        return {n: getattr(self, prefix + param_key(n)) for n in self.names}

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
        """Differentiable ``KL(Q‖P)`` (:func:`gaussian_kl`, the closed form of :func:`kdbounds.pacbayes.kernels.kernel_kl`)."""
        named = dict(student.named_parameters())
        return gaussian_kl({n: named[n] for n in self.names}, {n: self.sigma(n) for n in self.names},
                           self._by_name("prior_mean__"), self._by_name("prior_std__"))

    def training_step(self, x, y, student, teacher, optimizers, epoch, step_ctx):
        student.eval()  # buffers frozen to the prior's (no running-statistics updates)
        named = dict(student.named_parameters())
        return certified_step(student, {n: named[n] for n in self.names},
                              {n: self.rho[param_key(n)] for n in self.names}, self._by_name("prior_mean__"),
                              self._by_name("prior_std__"), x, y, self.hparams,
                              step_generator(self.noise_seed, step_ctx.global_step, x.device), optimizers[0],
                              step_ctx, teacher=teacher if self.requires_teacher else None)

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
    defaults = {**_CertifiedMethod.base_defaults, **KD_DEFAULTS}
