r"""Gaussian kernels over a network's parameters (theory.md §7): the prior P and the posterior Q.

A :class:`GaussianKernel` is the mean-field law

.. math::
    W \sim \mathcal N\big(w, \operatorname{diag}(\sigma^2)\big)

over a *selected* set of a network's parameters (all of them, or a subset chosen with the same
selector as the curvature operators, :func:`kdbounds.curvature.select_parameters`). Everything else
the network computes with — the unselected parameters and the buffers (BatchNorm running
statistics) — is **frozen**: a fixed tensor stored in the kernel. Two kernels can only be compared
(KL) when they share the parameter space (same names, same shapes) and the same frozen tensors;
otherwise the KL is infinite and :func:`check_compatible` raises a ``ValueError`` naming what
differs. To certify a network whose buffers differ from the prior's, build its kernel with
``frozen_from=prior`` (the buffers are then the prior's, which changes the function computed —
that is the network being certified).

Draws are evaluated with :func:`torch.func.functional_call`; ``M`` draws are evaluated in chunks
with :func:`torch.func.vmap` over the draws (``mode="vmap"``), or with a plain loop over draws
(``mode="loop"``, also the automatic fallback when a module does not support ``vmap``). The
``"per_example"`` scheme draws an independent weight for every evaluated example (vmap over
(weight, example) pairs), which is what :func:`kdbounds.pacbayes.certify.certify` uses by
default (see there for why this is a valid, tighter Monte Carlo bound).

The closed-form divergence splits as in theory.md §7:

.. math::
    \mathrm{KL}(Q\,\|\,P) = \underbrace{\tfrac12 \sum_i \frac{(w_{Q,i}-w_{P,i})^2}{\sigma_{P,i}^2}}_{\text{mean term}}
      + \underbrace{\tfrac12 \sum_i \varphi\!\big(\sigma_{Q,i}^2/\sigma_{P,i}^2\big)}_{\text{variance term}},
    \qquad \varphi(r) = r - 1 - \ln r,

computed tensor by tensor in float64 (no flat copy of the whole network).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from .._checks import check_int

__all__ = [
    "DRAW_MODES",
    "GaussianKernel",
    "KernelKL",
    "check_compatible",
    "kernel_kl",
    "draw_logits",
    "per_example_logits",
    "supports_local_reparam",
]

DRAW_MODES = ("vmap", "loop")


@dataclass(frozen=True)
class KernelKL:
    r"""``KL(Q || P)`` between two Gaussian kernels, with its mean and variance terms (nats):

    .. math::
        \text{mean\_term} = \tfrac12 \sum_i \frac{(w_{Q,i} - w_{P,i})^2}{\sigma_{P,i}^2}, \qquad
        \text{variance\_term} = \tfrac12 \sum_i \varphi\Big(\frac{\sigma_{Q,i}^2}{\sigma_{P,i}^2}\Big),
        \quad \varphi(r) = r - 1 - \ln r.

    Attributes:
        total: ``mean_term + variance_term``.
        mean_term: the mean term above.
        variance_term: the variance term above.
        dim: number of parameters the kernels are over.
    """

    total: float
    mean_term: float
    variance_term: float
    dim: int

    def to_dict(self) -> dict[str, Any]:
        """The divergence as plain data.

        Returns:
            ``{"total", "mean_term", "variance_term", "dim"}``.
        """
        return {"total": self.total, "mean_term": self.mean_term, "variance_term": self.variance_term,
                "dim": self.dim}


def _select(model: nn.Module, params: Any) -> list[str]:
    from kdbounds._params import select_parameters

    return select_parameters(model, params)


def _as_std(name: str, value: Any, like: Tensor) -> Tensor:
    if isinstance(value, Tensor):
        t = value.detach().to(device=like.device, dtype=like.dtype)
        if t.shape != like.shape and t.numel() != 1:
            raise ValueError(f"std[{name!r}]: expected shape {tuple(like.shape)} or a scalar, got "
                             f"{tuple(t.shape)}")
        t = t.expand_as(like).clone()
    else:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy scalars are Real too
            raise TypeError(f"std: expected a positive float, a tensor or a mapping name -> those; got "
                            f"{type(value).__name__} for {name!r}")
        t = torch.full_like(like, float(value))
    if not bool(torch.isfinite(t).all()) or not bool((t > 0).all()):
        raise ValueError(f"std[{name!r}]: expected finite values > 0 (a Gaussian kernel needs a positive "
                         f"scale; use a small value such as 1e-6 instead of 0), got min {float(t.min()):.3g}")
    return t


class GaussianKernel:
    """``N(w, diag sigma^2)`` over the selected parameters of ``model``; the rest frozen (see module doc).

    Build one with :meth:`from_model`. The kernel keeps a reference to ``model`` only as the
    function to evaluate (its current tensors are never read after construction: the kernel holds
    detached copies of the mean, the scales and the frozen tensors).

    Attributes:
        model: the network used as a function (evaluated in eval mode through ``functional_call``).
        names: the selected parameter names, in ``named_parameters()`` order.
        mean, std: dicts name -> tensor of the parameter's shape.
        frozen: dict name -> tensor of every unselected parameter and every buffer.
    """

    def __init__(self, model: nn.Module, mean: Mapping[str, Tensor], std: Mapping[str, Tensor],
                 frozen: Mapping[str, Tensor]) -> None:
        if set(mean) != set(std):
            raise ValueError("mean and std must have the same parameter names")
        self.model = model
        order = [n for n, _ in model.named_parameters() if n in mean]
        if len(order) != len(mean):
            raise ValueError(f"mean names {sorted(set(mean) - set(order))} are not parameters of the model")
        self.names: tuple[str, ...] = tuple(order)
        self.mean = {n: mean[n].detach() for n in self.names}
        self.std = {n: std[n].detach() for n in self.names}
        self.frozen = {n: t.detach() for n, t in frozen.items()}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(cls, model: nn.Module, std: float | Tensor | Mapping[str, float | Tensor],
                   params: Any = None, *, frozen_from: "GaussianKernel | None" = None) -> "GaussianKernel":
        """The kernel centred at ``model``'s current weights.

        Args:
            model: a trained network (its weights are copied).
            std: the scale sigma: a float (isotropic), a tensor broadcastable to every selected parameter,
                or a mapping name -> float/tensor covering every selected parameter.
            params: which parameters are random (``None``: all trainable; a glob pattern, submodule,
                parameter or list of those, as :func:`kdbounds.curvature.select_parameters`).
            frozen_from: take the frozen tensors (buffers, unselected parameters) from this kernel
                instead of ``model`` — e.g. to put a student on the prior's BatchNorm statistics.

        Returns:
            The kernel (detached copies of the weights, scales and frozen tensors).

        Raises:
            TypeError: ``model`` is not an ``nn.Module``; ``std`` of another type.
            ValueError: non-positive or non-finite ``std``; a mapping missing a selected name;
                ``frozen_from`` over another parameter space.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        names = _select(model, params)
        named = dict(model.named_parameters())
        mean = {n: named[n].detach().clone() for n in names}
        if isinstance(std, Mapping):
            missing = [n for n in names if n not in std]
            if missing:
                raise ValueError(f"std: no scale given for parameters {missing[:5]}; give every selected "
                                 f"parameter or a single float")
            stds = {n: _as_std(n, std[n], mean[n]) for n in names}
        else:
            stds = {n: _as_std(n, std, mean[n]) for n in names}
        frozen = {n: p.detach().clone() for n, p in named.items() if n not in mean}
        frozen.update({n: b.detach().clone() for n, b in model.named_buffers()})
        if frozen_from is not None:
            if tuple(names) != frozen_from.names:
                raise ValueError("frozen_from: the kernels select different parameters "
                                 f"({len(names)} vs {len(frozen_from.names)} tensors); use the same params=")
            if set(frozen) != set(frozen_from.frozen):
                raise ValueError("frozen_from: the models have different buffers/unselected parameters "
                                 f"(names differ: {sorted(set(frozen) ^ set(frozen_from.frozen))[:5]})")
            frozen = {n: t.clone() for n, t in frozen_from.frozen.items()}
        return cls(model, mean, stds, frozen)

    def with_std(self, std: float | Tensor | Mapping[str, float | Tensor]) -> "GaussianKernel":
        """The same kernel (same mean and frozen tensors) with another scale.

        Args:
            std: the new scale, in any form :meth:`from_model` takes.

        Returns:
            A new :class:`GaussianKernel`.
        """
        if isinstance(std, Mapping):
            stds = {n: _as_std(n, std[n], self.mean[n]) for n in self.names}
        else:
            stds = {n: _as_std(n, std, self.mean[n]) for n in self.names}
        return GaussianKernel(self.model, self.mean, stds, self.frozen)

    # ------------------------------------------------------------------ description
    @property
    def dim(self) -> int:
        """Number of random parameters."""
        return sum(t.numel() for t in self.mean.values())

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """The shape of each random parameter, in :attr:`names` order."""
        return tuple(tuple(self.mean[n].shape) for n in self.names)

    @property
    def device(self) -> torch.device:
        """The device of the kernel's tensors."""
        return self.mean[self.names[0]].device

    def to(self, device: torch.device | str) -> "GaussianKernel":
        """A copy on ``device`` (the model is moved too).

        Args:
            device: the target device.

        Returns:
            A new :class:`GaussianKernel` on it.
        """
        d = torch.device(device)
        self.model.to(d)
        return GaussianKernel(self.model, {n: t.to(d) for n, t in self.mean.items()},
                              {n: t.to(d) for n, t in self.std.items()},
                              {n: t.to(d) for n, t in self.frozen.items()})

    def describe(self) -> dict[str, Any]:
        """Dimension, tensor count and the range of the scales (for records).

        Returns:
            ``{"dim", "tensors", "std_min", "std_max"}``.
        """
        smin = min(float(t.min()) for t in self.std.values())
        smax = max(float(t.max()) for t in self.std.values())
        return {"dim": self.dim, "tensors": len(self.names), "std_min": smin, "std_max": smax}

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``n`` independent draws: dict name -> tensor ``(n, *shape)``.

        .. math:: W_j = w + \\sigma \\odot \\varepsilon_j, \\quad \\varepsilon_j \\sim \\mathcal N(0, I).

        Args:
            n: the number of draws (>= 1).
            generator: the random generator (``None``: torch's global one).

        Returns:
            Parameter name -> the ``n`` draws of that tensor.
        """
        n = check_int("n", n, minimum=1, fix="the number of draws")
        out = {}
        for name in self.names:
            m, s = self.mean[name], self.std[name]
            eps = torch.randn((n, *m.shape), generator=generator, device=m.device, dtype=m.dtype)
            out[name] = m.unsqueeze(0) + s.unsqueeze(0) * eps
        return out

    def functional(self) -> Callable[[Mapping[str, Tensor], Tensor], Tensor]:
        """``f(weights, x) -> logits`` with the frozen tensors filled in (model in eval mode).

        Returns:
            The function of a weight dict (name -> tensor) and an input batch.
        """
        model, frozen = self.model, self.frozen

        def f(weights: Mapping[str, Tensor], x: Tensor) -> Tensor:
            out = functional_call(model, {**frozen, **weights}, (x,))
            return out.logits if hasattr(out, "logits") else out

        return f

    def mean_logits(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """Logits of the kernel's mean network (its frozen tensors), in batches.

        Args:
            x: the inputs.
            batch_size: rows per forward pass.

        Returns:
            ``(N, C)`` logits.
        """
        f = self.functional()
        with _eval(self.model), torch.no_grad():
            return torch.cat([f(self.mean, x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


class _eval:
    """Context: model in eval mode, previous flags restored."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.flags = [m.training for m in self.model.modules()]
        self.model.eval()

    def __exit__(self, *exc: Any) -> None:
        for m, f in zip(self.model.modules(), self.flags):
            m.training = f


# ---------------------------------------------------------------------- compatibility and KL
def check_compatible(q: GaussianKernel, p: GaussianKernel, *, names: tuple[str, str] = ("posterior", "prior")) -> None:
    """Raise ``ValueError`` unless ``q`` and ``p`` are laws on the same space with the same frozen part.

    Checks: same selected parameter names and shapes; same frozen tensor names; frozen tensors
    (buffers such as BatchNorm running statistics, unselected parameters) exactly equal.

    Args:
        q: the posterior.
        p: the prior.
        names: how the messages call ``q`` and ``p``.

    Raises:
        TypeError: ``q`` or ``p`` is not a :class:`GaussianKernel`.
        ValueError: they differ in their parameter space or frozen tensors (the message says how to fix it).
    """
    a, b = names
    if not isinstance(q, GaussianKernel) or not isinstance(p, GaussianKernel):
        raise TypeError(f"{a}/{b}: expected GaussianKernel objects, got {type(q).__name__}/{type(p).__name__}")
    if q.names != p.names:
        only_q = [n for n in q.names if n not in p.names][:5]
        only_p = [n for n in p.names if n not in q.names][:5]
        raise ValueError(f"{a} and {b} do not share a parameter space: parameter names differ "
                         f"(only in {a}: {only_q}, only in {b}: {only_p}); build both kernels on the same "
                         f"architecture with the same params= selection")
    for n in q.names:
        if q.mean[n].shape != p.mean[n].shape:
            raise ValueError(f"{a} and {b} do not share a parameter space: {n!r} has shape "
                             f"{tuple(q.mean[n].shape)} in {a} and {tuple(p.mean[n].shape)} in {b}")
    if set(q.frozen) != set(p.frozen):
        diff = sorted(set(q.frozen) ^ set(p.frozen))[:5]
        raise ValueError(f"{a} and {b} have different frozen tensors (buffers/unselected parameters) {diff}")
    for n in q.frozen:
        tq, tp = q.frozen[n], p.frozen[n]
        if tq.shape != tp.shape or not torch.equal(tq.to(tp.device), tp):
            kind = "buffer" if n in dict(q.model.named_buffers()) else "unselected parameter"
            raise ValueError(f"{a} and {b} differ in the frozen {kind} {n!r} (e.g. BatchNorm running "
                             f"statistics): the KL between them is infinite. Build the {a} with "
                             f"GaussianKernel.from_model(..., frozen_from={b}) so both share the {b}'s "
                             f"buffers")


def kernel_kl(q: GaussianKernel, p: GaussianKernel) -> KernelKL:
    r"""Closed-form ``KL(Q || P)`` with its mean/variance split, in float64, tensor by tensor.

    .. math::
        \mathrm{KL} = \tfrac12\sum_i \frac{(w_{Q,i}-w_{P,i})^2}{\sigma_{P,i}^2}
        + \tfrac12\sum_i \Big(\frac{\sigma_{Q,i}^2}{\sigma_{P,i}^2} - 1 - \ln\frac{\sigma_{Q,i}^2}{\sigma_{P,i}^2}\Big)

    Args:
        q: the posterior ``Q``.
        p: the prior ``P``.

    Returns:
        The :class:`KernelKL`.

    Raises:
        ValueError: the kernels do not share a parameter space or frozen tensors (:func:`check_compatible`).
    """
    check_compatible(q, p)
    mean_term = 0.0
    var_term = 0.0
    for n in q.names:
        mq = q.mean[n].double()
        mp = p.mean[n].double().to(mq.device)
        vq = q.std[n].double().square()
        vp = p.std[n].double().to(mq.device).square()
        mean_term += 0.5 * float(((mq - mp).square() / vp).sum())
        r = vq / vp
        var_term += 0.5 * float((r - 1.0 - torch.log(r)).sum())
    if not (math.isfinite(mean_term) and math.isfinite(var_term)):
        raise ValueError("kernel_kl: the divergence is not finite (non-finite weights or scales)")
    return KernelKL(total=mean_term + var_term, mean_term=mean_term, variance_term=var_term, dim=q.dim)


# ---------------------------------------------------------------------- evaluating draws
def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for i in range(0, n, size):
        yield i, min(n, i + size)


def draw_logits(kernel: GaussianKernel, x: Tensor, weights: Mapping[str, Tensor], *, mode: str = "vmap",
                batch_size: int = 1000) -> Tensor:
    """Logits of every draw in ``weights`` (dict name -> ``(k, *shape)``) on every row of ``x``.

    Returns a ``(k, N, C)`` tensor. ``mode="vmap"`` vectorises over the ``k`` draws
    (:func:`torch.func.vmap` of :func:`torch.func.functional_call`); ``"loop"`` evaluates them one
    by one. If ``vmap`` fails for a module (an op without a batching rule) the loop is used.

    Args:
        kernel: the kernel the draws come from.
        x: the inputs ``(N, ...)``.
        weights: the draws, name -> ``(k, *shape)`` (:meth:`GaussianKernel.sample`).
        mode: ``"vmap"`` or ``"loop"``.
        batch_size: rows of ``x`` per pass.

    Returns:
        ``(k, N, C)`` logits.

    Raises:
        ValueError: an unknown ``mode``.
    """
    if mode not in DRAW_MODES:
        raise ValueError(f"mode: expected one of {DRAW_MODES}, got {mode!r}")
    f = kernel.functional()
    k = next(iter(weights.values())).shape[0]
    outs = []
    with _eval(kernel.model), torch.no_grad():
        for i, j in _chunks(len(x), batch_size):
            xb = x[i:j]
            if mode == "vmap":
                try:
                    outs.append(vmap(f, in_dims=(0, None))(dict(weights), xb))
                    continue
                except (RuntimeError, NotImplementedError):  # pragma: no cover - module without batching rule
                    mode = "loop"
            outs.append(torch.stack([f({n: w[d] for n, w in weights.items()}, xb) for d in range(k)]))
    return torch.cat(outs, dim=1)


class _NotLocal(Exception):
    """A selected parameter is used outside a 2-D ``F.linear`` call: local reparameterisation is not exact."""


class _LocalReparam(TorchFunctionMode):
    r"""Replace every ``F.linear(x, W, b)`` whose ``W``/``b`` are the kernel's means by an exact per-row draw.

    For a fresh ``W ~ N(μ_W, diag σ_W²)``, ``b ~ N(μ_b, diag σ_b²)`` per row ``x_i`` of a 2-D input,
    the outputs are independent Gaussians

    .. math:: (W x_i + b)_k \sim \mathcal N\big(\mu_{W,k} \cdot x_i + \mu_{b,k},\
              \textstyle\sum_j \sigma_{W,kj}^2 x_{ij}^2 + \sigma_{b,k}^2\big)

    (Kingma, Salimans & Welling 2015), so sampling them is sampling an independent weight per example.
    """

    def __init__(self, kernel: "GaussianKernel", generator: torch.Generator | None) -> None:
        super().__init__()
        self.ids = {id(t): n for n, t in kernel.mean.items()}
        self.kernel, self.gen, self.used = kernel, generator, set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            x, w = args[0], args[1]
            b = args[2] if len(args) > 2 else kwargs.get("bias")
            nw, nb = self.ids.get(id(w)), (self.ids.get(id(b)) if b is not None else None)
            if nw is None and nb is None:
                return func(*args, **kwargs)
            if x.dim() != 2 or nw in self.used or nb in self.used:
                raise _NotLocal
            self.used.update(n for n in (nw, nb) if n is not None)
            sw = self.kernel.std[nw] if nw is not None else torch.zeros_like(w)
            mean = func(x, w, b)
            var = func(x.square(), sw.square(), None if nb is None else self.kernel.std[nb].square())
            eps = torch.randn(mean.shape, generator=self.gen, device=mean.device, dtype=mean.dtype)
            return mean + var.clamp_min(0).sqrt() * eps
        if any(id(a) in self.ids for a in args if isinstance(a, Tensor)) or \
                any(id(a) in self.ids for a in kwargs.values() if isinstance(a, Tensor)):
            raise _NotLocal
        return func(*args, **kwargs)


def supports_local_reparam(kernel: "GaussianKernel", x: Tensor) -> bool:
    """True when every random parameter enters the network once, through a 2-D ``F.linear``
    (then :func:`per_example_logits` can use the exact local reparameterisation).

    Args:
        kernel: the kernel.
        x: example inputs (two rows are passed through the network).

    Returns:
        Whether the local reparameterisation is exact for this network.
    """
    f = kernel.functional()
    mode = _LocalReparam(kernel, None)
    try:
        with _eval(kernel.model), torch.no_grad(), mode:
            f(kernel.mean, x[:2])
    except _NotLocal:
        return False
    return mode.used == set(kernel.names)


def per_example_logits(kernel: GaussianKernel, x: Tensor, generator: torch.Generator | None = None, *,
                       chunk: int = 256, method: str = "auto", batch_size: int = 1000) -> Tensor:
    """Logits of ``x[i]`` under its own independent draw ``W_i ~ kernel`` for every row ``i``.

    Returns ``(N, C)``. ``method="explicit"`` draws a full weight per example, ``chunk`` examples at a
    time, evaluated with ``vmap`` over (weight, example) pairs (memory ``chunk × dim`` floats; any
    network). ``"local"`` samples each ``Linear`` layer's outputs exactly (:class:`_LocalReparam`:
    the same law, a fraction of the cost; only when every random parameter is a 2-D ``Linear``
    weight/bias used once). ``"auto"``: local when supported, else explicit.

    Args:
        kernel: the kernel the draws come from.
        x: the inputs ``(N, ...)``.
        generator: the random generator (``None``: torch's global one).
        chunk: examples per explicit draw.
        method: ``"auto"``, ``"local"`` or ``"explicit"``.
        batch_size: rows per pass of the local method.

    Returns:
        ``(N, C)`` logits, row ``i`` under its own draw.

    Raises:
        ValueError: an unknown ``method``, or ``"local"`` for a network it is not exact for.
    """
    if method not in ("auto", "local", "explicit"):
        raise ValueError(f"method: expected 'auto', 'local' or 'explicit', got {method!r}")
    if method == "auto":
        method = "local" if supports_local_reparam(kernel, x) else "explicit"
    elif method == "local" and not supports_local_reparam(kernel, x):
        raise ValueError("method='local': some random parameter is not a Linear weight/bias used once on "
                         "2-D inputs (e.g. a convolution); use method='explicit'")
    f = kernel.functional()
    outs = []
    with _eval(kernel.model), torch.no_grad():
        if method == "local":
            for i, j in _chunks(len(x), batch_size):
                with _LocalReparam(kernel, generator):
                    outs.append(f(kernel.mean, x[i:j]))
            return torch.cat(outs)

        def one(w: Mapping[str, Tensor], xi: Tensor) -> Tensor:
            return f(w, xi.unsqueeze(0)).squeeze(0)

        for i, j in _chunks(len(x), chunk):
            w = kernel.sample(j - i, generator)
            try:
                outs.append(vmap(one, in_dims=(0, 0))(w, x[i:j]))
            except (RuntimeError, NotImplementedError):  # pragma: no cover
                outs.append(torch.stack([one({n: t[d] for n, t in w.items()}, x[i + d]) for d in range(j - i)]))
    return torch.cat(outs)
