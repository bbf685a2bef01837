r"""Learn a PAC-Bayes posterior for any network: ``pbb``/``pbkd`` without the model zoo or the CLI trainer.

:func:`learn_posterior` takes a user's ``nn.Module``, a prior :class:`~kdbounds.pacbayes.GaussianKernel`
``P = N(w_P, diag sigma_P^2)`` and data, and returns the learnt ``Q = N(w_Q, diag softplus(rho)^2)``: the same
objective as the trainer's methods ``"pbb"`` (PAC-Bayes with backprop, Pérez-Ortiz et al. 2021) and
``"pbkd"`` (plus ``alpha`` times Hinton's KD term on a teacher's soft labels), through the same step
(:func:`kdbounds.distill.pbb.certified_step`, written once). With the same prior, data order, seed and
hyper-parameters it returns the kernel a ``python -m kdbounds.train distill --method pbb`` run reads back
with :func:`~kdbounds.runs.posteriors.posterior_from_run`, bit for bit (tested).

The posterior lives in the prior's space: the prior's random parameters (``prior.names``) get a mean and
a scale; every other tensor — unselected parameters and buffers such as BatchNorm running statistics —
stays the prior's (``prior.frozen``) and the network runs in eval mode, so ``KL(Q||P)`` is finite and the
returned kernel certifies with :func:`kdbounds.certify` against ``prior`` directly. The user's module is
used as a function (:func:`torch.func.functional_call`): its own parameters, buffers and train/eval
flags are left as they were.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from kdbounds._checks import check_bool, check_choice, check_positive
from kdbounds._data import as_batches
from kdbounds._progress import progress_bar
from kdbounds._torch import eval_mode
from kdbounds.distill.config import TrainConfig
from kdbounds.distill.methods import StepContext, TrainingDiverged, build_scheduler, build_sgd, coerce_hparams
from kdbounds.distill.pbb import (
    KD_DEFAULTS,
    OBJECTIVE_DEFAULTS,
    OBJECTIVES,
    certified_step,
    check_objective_hparams,
    draw_noise_seed,
    initial_rho,
    step_generator,
)
from kdbounds.distill.trainer import method_rng

from ..pacbayes.kernels import GaussianKernel

__all__ = ["learn_posterior", "objective_note", "POSTERIOR_METHODS", "POSTERIOR_SCHEDULES"]

POSTERIOR_METHODS = ("pbb", "pbkd")
POSTERIOR_SCHEDULES = ("constant", "cosine", "step")


def objective_note(methods: str | Sequence[str], objective: str = "fquad") -> str:
    r"""The line that says what ``loss=`` is on the progress line of a ``pbb``/``pbkd`` training.

    Printed where that line appears (``kdbounds-train distill --method pbb|pbkd``, the certify studies),
    because its values look alarming without it: the loss is the relaxed PAC-Bayes bound the posterior
    is trained on (:func:`kdbounds.distill.pbb.pac_bayes_objective`), not a cross-entropy, and it is at
    least :math:`2\,\mathrm{KL}(Q\|P)/n` (``fquad``) or :math:`\sqrt{\mathrm{KL}(Q\|P)/(2n)}` (``fclassic``)
    with ``n`` = ``n_bound``: thousands for a prior far from the posterior's start.

    Args:
        methods: the posterior methods of the run(s), e.g. ``"pbkd"`` or ``("pbb", "pbkd")``.
        objective: the objective's kind, ``"fquad"`` or ``"fclassic"``.

    Returns:
        One line, starting with ``note:``.

    Raises:
        ValueError: an unknown ``objective``.
    """
    check_choice("objective", objective, OBJECTIVES)
    names = [methods] if isinstance(methods, str) else list(methods)
    floor = "2·KL(Q‖P)/n_bound" if objective == "fquad" else "√(KL(Q‖P)/(2·n_bound))"
    kd = "; pbkd adds alpha times the KD term (T²·KL to the teacher's soft labels)" if "pbkd" in names else ""
    return (f"note: loss= on a {'/'.join(names)} run's progress line is its training objective, not a cross-entropy: "
            f"the relaxed PAC-Bayes bound ({objective}) of the bounded cross-entropy with KL(Q‖P) inside{kd}. It is "
            f"at least {floor}, so a prior far from the posterior's start (random, or a small sigma_prior) reads in "
            f"the thousands or more; it is not the certificate (kdbounds.certify computes that on D_S), and the "
            f"run's log.jsonl keeps its parts (emp_bce, kl, bound)")


def _check_space(model: nn.Module, prior: GaussianKernel) -> None:
    """``model`` computes with exactly the prior's tensors (random and frozen), shape for shape."""
    ours = {n: tuple(t.shape) for n, t in [*model.named_parameters(), *model.named_buffers()]}
    theirs = {n: tuple(prior.mean[n].shape) for n in prior.names}
    theirs.update({n: tuple(t.shape) for n, t in prior.frozen.items()})
    if ours != theirs:
        only_m = sorted(set(ours) - set(theirs))[:5]
        only_p = sorted(set(theirs) - set(ours))[:5]
        shapes = [n for n in set(ours) & set(theirs) if ours[n] != theirs[n]][:5]
        raise ValueError(f"model: its parameters and buffers are not the prior's (only in model: {only_m}, only in "
                         f"prior: {only_p}, other shapes: {shapes}); build the prior from a network of this "
                         f"architecture: GaussianKernel.from_model(net, sigma)")


def _optimiser_config(model: nn.Module, method: str, epochs: int, lr: float, momentum: float,
                      weight_decay: float, nesterov: bool, schedule: str, milestones: Sequence[int] | None,
                      lr_gamma: float, seed: int, grad_clip: float | None, batch_size: int) -> TrainConfig:
    """The optimiser's settings, checked by the trainer's own config (its messages name the field)."""
    check_choice("schedule", schedule, POSTERIOR_SCHEDULES)
    return TrainConfig(arch=type(model).__name__ or "model", epochs=epochs, batch_size=batch_size, lr=lr,
                       momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, schedule=schedule,
                       milestones=None if milestones is None else tuple(milestones), lr_gamma=lr_gamma,
                       seed=seed, grad_clip=grad_clip, device="cpu", amp=False, method=method)


def learn_posterior(model: nn.Module, prior: GaussianKernel, data: Any, *, n_bound: int, method: str = "pbb",
                    teacher: nn.Module | None = None, epochs: int = 1, batch_size: int = 256, lr: float = 0.001,
                    momentum: float = 0.95, weight_decay: float = 0.0, nesterov: bool = False,
                    schedule: str = "constant", milestones: Sequence[int] | None = None, lr_gamma: float = 0.1,
                    objective: str = "fquad", delta: float = 0.025, p_min: float = 1e-4, kl_weight: float = 1.0,
                    sigma_init: float | None = None, alpha: float = 1.0, T: float = 4.0, seed: int = 0,
                    grad_clip: float | None = None, progress: bool = True) -> GaussianKernel:
    r"""Learn the Gaussian posterior ``Q`` of ``model`` by minimising a relaxed PAC-Bayes-kl bound.

    ``Q`` starts at the prior (means ``w_P``; scales ``sigma_P``, or ``sigma_init``) and SGD minimises, one
    weight draw ``W = w + sigma * eps`` per batch (the reparameterisation trick),

    .. math::
        f_{\text{quad}} = \Big(\sqrt{\hat L + c/2} + \sqrt{c/2}\Big)^2 \ \text{or}\
        f_{\text{classic}} = \hat L + \sqrt{c/2}, \qquad
        c = \frac{\text{kl\_weight}\cdot\mathrm{KL}(Q\|P) + \ln(2\sqrt{n}/\delta)}{n},

    with :math:`\hat L` the bounded cross-entropy ``min(CE, ln(1/p_min)) / ln(1/p_min)`` of ``W`` on the
    batch and ``n = n_bound``; ``method="pbkd"`` adds ``alpha * T^2 * KL(softmax(z_t/T) || softmax(z_W/T))``
    with the ``teacher``'s logits ``z_t``. The returned kernel is a *candidate*: certify it with
    :func:`kdbounds.certify` (``certify(Q, prior, data_s, ...)``), on ``D_S`` of size ``n_bound``.

    Data: ``(x, y)`` tensors (cut into batches of ``batch_size`` in the given order, the same every
    epoch), an iterable of ``(x, y)`` batches, or a ``DataLoader`` (pass ``shuffle=True`` to reshuffle each
    epoch). A loader with a ``set_epoch(epoch)`` method (kdbounds' ``TensorLoader``) is told the epoch
    before each pass. Inputs as the model takes them, moved to the prior's device batch by batch.

    Randomness: the weight noise of step ``t`` comes from a generator seeded with ``s + t``, where ``s`` is
    drawn from ``seed`` exactly as the trainer draws a run's (:func:`kdbounds.distill.trainer.method_rng`);
    the global RNG is left untouched.

    Args:
        model: the network (any ``nn.Module`` returning logits, an object with ``.logits`` or a tuple
            whose first element is the logits) with exactly the prior's parameters and buffers; used as a
            function, never modified.
        prior: the prior ``P`` (:meth:`GaussianKernel.from_model`), independent of the certification set.
        data: the training data in one of the three forms (see above).
        n_bound: ``|D_S|``, the size of the set the certificate will be computed on (not the training-set
            size, unless the two are the same set).
        method: ``"pbb"`` (no teacher) or ``"pbkd"`` (with ``teacher``).
        teacher: the teacher network of ``"pbkd"`` (evaluated in eval mode without gradients; on the
            prior's device).
        epochs: passes over ``data``.
        batch_size: batch size for ``(x, y)`` tensors (ignored for batches and loaders).
        lr, momentum, weight_decay, nesterov: SGD over the means and ``rho`` (weight decay applies to both).
        schedule: per-epoch learning-rate schedule: ``"constant"``, ``"cosine"`` or ``"step"`` (with
            ``milestones`` in epochs, ``None``: 0.625/0.75/0.875 of ``epochs``, and factor ``lr_gamma``).
        milestones, lr_gamma: the step schedule's epochs and factor.
        objective: ``"fquad"`` or ``"fclassic"``.
        delta: the certificate's ``delta`` in the objective.
        p_min: the bounded cross-entropy's probability floor, in (0, 1).
        kl_weight: multiplies ``KL(Q||P)`` in the objective (1: the bound itself).
        sigma_init: the posterior's starting scale (one number > 0); ``None``: the prior's scales.
        alpha, T: weight and temperature of ``pbkd``'s KD term.
        seed: the seed of the weight noise.
        grad_clip: clip the global gradient norm at this value (``None``: no clipping).
        progress: show a progress bar (terminal) or one line per epoch (logs).

    Returns:
        ``Q``: a :class:`GaussianKernel` over ``prior.names`` with the prior's frozen tensors, ``model``
        as its function, on the prior's device.

    Raises:
        TypeError: ``model``/``teacher`` not an ``nn.Module``, ``prior`` not a ``GaussianKernel``, ``data``
            in none of the three forms, an argument of the wrong type — each naming the argument.
        ValueError: ``model`` outside the prior's space, a method without its teacher (or ``"pbb"`` with
            one), an argument out of range (``n_bound < 1``, ``delta`` outside (0, 1), ``lr <= 0``, ...) —
            all before any forward pass.
        TrainingDiverged: the objective became NaN/inf (lower ``lr``, set ``grad_clip``, check the data).
    """
    # ---- every argument, before any work
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not isinstance(prior, GaussianKernel):
        raise TypeError(f"prior: expected a GaussianKernel (GaussianKernel.from_model(net, sigma)), got "
                        f"{type(prior).__name__}")
    _check_space(model, prior)
    method = check_choice("method", method, POSTERIOR_METHODS)
    if method == "pbkd" and not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher: method 'pbkd' distils from a teacher: expected an nn.Module, got "
                        f"{type(teacher).__name__}")
    if method == "pbb" and teacher is not None:
        raise ValueError("teacher: method 'pbb' uses no teacher; pass method='pbkd' to distil from it, or drop it")
    if sigma_init is not None:
        sigma_init = check_positive("sigma_init", sigma_init, fix="or None (the prior's scales)")
    given = {"objective": objective, "n_bound": n_bound, "delta": delta, "p_min": p_min, "kl_weight": kl_weight,
             "sigma_init": 0.0 if sigma_init is None else sigma_init}
    defaults = dict(OBJECTIVE_DEFAULTS)
    if method == "pbkd":
        given.update(alpha=alpha, T=T)
        defaults.update(KD_DEFAULTS)
    hp = coerce_hparams(method, defaults, given)
    check_objective_hparams(hp, method)
    progress = check_bool("progress", progress)
    cfg = _optimiser_config(model, method, epochs, lr, momentum, weight_decay, nesterov, schedule, milestones,
                            lr_gamma, seed, grad_clip, batch_size)
    batches = as_batches(data, "data", batch_size=batch_size)
    set_epoch = getattr(data, "set_epoch", None)  # a TensorLoader: each epoch's order, as in the trainer

    # ---- the posterior's tensors: means and ρ, trainable leaves on the prior's device
    device = prior.device
    means = {n: prior.mean[n].detach().clone().requires_grad_(True) for n in prior.names}
    rho = {n: r.requires_grad_(True) for n, r in initial_rho(prior.std, hp["sigma_init"]).items()}
    with method_rng(seed):
        noise_seed = draw_noise_seed()
    optimizer = build_sgd([*means.values(), *rho.values()], cfg)
    scheduler = build_scheduler(optimizer, cfg)
    ctx = StepContext(device=device, grad_clip=cfg.grad_clip, cfg=cfg)
    bar = progress_bar(desc=f"learn_posterior:{method}", total=epochs, unit="ep") if progress else None
    modules = (model,) if teacher is None else (model, teacher)
    try:
        with eval_mode(*modules, grad=True):  # buffers frozen to the prior's; flags restored afterwards
            for epoch in range(epochs):
                if callable(set_epoch):
                    set_epoch(epoch)
                _epoch(model, means, rho, prior, batches, hp, noise_seed, optimizer, ctx, epoch, teacher, bar)
                scheduler.step()
    finally:
        if bar is not None:
            bar.close()
    return GaussianKernel(model, {n: t.detach() for n, t in means.items()},
                          {n: torch.nn.functional.softplus(r).detach() for n, r in rho.items()}, prior.frozen)


def _epoch(model: nn.Module, means: dict[str, Tensor], rho: dict[str, Tensor], prior: GaussianKernel,
           batches: Any, hp: dict[str, Any], noise_seed: Tensor, optimizer: torch.optim.Optimizer,
           ctx: StepContext, epoch: int, teacher: nn.Module | None, bar: Any) -> None:
    """One pass over ``batches``: :func:`certified_step` per batch; raises on a non-finite objective."""
    ctx.epoch = epoch
    sums: dict[str, Tensor] = {}
    seen = 0
    for i, (x, y) in enumerate(batches):
        x, y = x.to(prior.device), y.to(prior.device)
        ctx.batch_index = i
        parts = certified_step(model, means, rho, prior.mean, prior.std, x, y, hp,
                               step_generator(noise_seed, ctx.global_step, x.device), optimizer, ctx,
                               teacher=teacher, frozen=prior.frozen)
        ctx.global_step += 1
        seen += len(y)
        for k in ("loss", "kl"):
            sums[k] = parts[k] * len(y) + sums.get(k, 0.0)
    if seen == 0:
        raise ValueError("data: no batches in this epoch (an exhausted iterator?)")
    loss, kl = float(sums["loss"]) / seen, float(sums["kl"]) / seen
    tensors = [*means.values(), *rho.values()]
    if not (math.isfinite(loss) and all(bool(torch.isfinite(t).all()) for t in tensors)):
        raise TrainingDiverged(f"learn_posterior diverged in epoch {epoch + 1}: the objective is {loss} (lr "
                               f"{optimizer.param_groups[0]['lr']:g}); lower lr, set grad_clip, or check the data "
                               f"for NaN/inf")
    if bar is not None:
        bar.set_postfix_str(f"objective={loss:.4f}, KL={kl:.2f}")
        bar.update(1)
