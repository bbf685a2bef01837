r"""Curvature linear operators on flat parameter vectors.

The central object is :class:`HessianOperator`, the Hessian of the data-averaged loss

.. math::
    L(\theta) = \sum_b \frac{n_b}{N}\, \ell\big(g(f_\theta(x_b)), y_b\big), \qquad
    H = \nabla^2_\theta L(\theta),

for a model ``f``, an optional output map ``g`` (``output_fn``), a scalar loss ``loss_fn`` and
batches :math:`(x_b, y_b)` of sizes :math:`n_b`, :math:`N = \sum_b n_b`. Only the selected
parameters :math:`\theta` (``params``) vary; all others are held fixed at their current values.

Products :math:`Hv` are computed batch by batch with automatic differentiation (no matrix is
formed). Vectors are flat tensors of length ``shape[0]`` laid out in the order of
``model.named_parameters()``; :meth:`HessianOperator.unflatten` / :meth:`HessianOperator.flatten`
convert to and from ``dict[str, Tensor]``.

**BatchNorm / dropout policy.** Curvature is measured in *evaluation mode*: during every product
the model is put in ``eval()`` mode (BatchNorm uses its running statistics, dropout is off), and
the previous ``training`` flag of every submodule is restored afterwards. Running statistics are
never updated.

**Backends** (``backend=``), all exact up to rounding:

* ``"rev-rev"``: reverse-over-reverse (double backward). Per batch one forward pass and one
  gradient with ``create_graph=True``; then one extra backward pass of that graph *per vector*. With
  graph reuse (below) the first-order graph is kept, so a product on a kept batch is one double
  backward (PyHessian's path).
* ``"fwd-rev"``: forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad`` through
  ``torch.func.functional_call``; no second autograd graph and nothing kept between products. A
  block ``matmat(V)`` pushes its columns through one ``torch.func.vmap``-ed jvp in chunks of
  ``vmap_chunk_size`` (default 4; ``1`` = one jvp per vector, ``None`` = all columns at once), so
  the primal forward and backward are shared by the chunk. ``compile=True`` wraps the jvp in
  ``torch.compile`` (one compiled jvp per vector; the first product pays the compilation).
* ``"auto"`` (default): :func:`resolve_backend`, a documented rule: ``"rev-rev"`` on the CPU,
  ``"fwd-rev"`` on CUDA. Measured on CPU (2 cores, one thread, torch 2.13, ResNet-8/20, batches
  16-100; ``benchmarks/hvp.py --peers``; see ``kdbounds/curvature/NOTE.md``): a kept-graph double
  backward costs what the tangent part of a forward-over-reverse product costs (both about six
  convolutions per conv layer and vector), and fwd-rev redoes the primal forward and backward per
  chunk, so rev-rev with kept graphs is the fastest per product (fwd-rev 1.5x single, 1.1x in blocks
  of 4, ResNet-20 batch 16) and its peak memory is also lower (fwd-rev 1.2x: the tangents double the
  saved activations). CUDA: from curvlinops' published GPU measurements, not yet measured here
  (``benchmarks/gpu_check.sh`` measures both backends there).

**Operations without a forward-mode formula** (a custom ``autograd.Function`` without ``jvp``, an
aten op without one): with ``backend="auto"`` the operator switches to ``"rev-rev"`` for good,
warns (``RuntimeWarning``) and records why in :attr:`HessianOperator.fallback_reason`; with an
explicit ``backend="fwd-rev"`` it raises ``ValueError`` naming the fix. An operation that has a jvp
but no ``vmap`` rule drops the fwd-rev blocks to one jvp per vector (with a warning).

**Eval BatchNorm as an affine map.** During products and gradients every plain
``nn.BatchNorm{1,2,3}d`` in eval mode computes ``x * s + t`` with
``s = weight / sqrt(running_var + eps)``, ``t = bias - running_mean * s`` (the same function, up to
rounding; its forward-mode and double-backward formulas are a multiply-add's instead of the general
batch-norm backward's: about 10 % of a ResNet-8 product on CPU).

``mode=`` is the older spelling: ``"rev-rev"``, ``"fwd-rev"`` (= ``backend="fwd-rev",
vmap_chunk_size=1``) or ``"vmap"`` (= ``backend="fwd-rev"`` with vmapped blocks).

**Graph reuse** (``reuse_graph=True``, the default; ``"rev-rev"`` only). The first product builds,
for each batch whose graph fits in ``graph_memory_limit`` bytes, the first-order graph
:math:`g_b(\theta) = \nabla_\theta \ell_b(\theta)` once (one forward + one ``create_graph``
backward) and *keeps* it; every later product back-propagates through the kept graphs only,

.. math:: H_b v = \nabla_\theta \big( g_b(\theta)^\top v \big),

so a product on a kept batch costs one double backward instead of a forward, a backward and a
double backward (what PyHessian's single-batch path does). Memory: the tensors saved by the
forward and by the ``create_graph`` backward of every kept batch stay alive as long as the
operator (measured with ``torch.autograd.graph.saved_tensors_hooks`` at build time and reported
as :attr:`HessianOperator.graph_bytes`). Batches are kept in data order until the running total
would exceed ``graph_memory_limit``; the later ones are recomputed per product as without reuse
(their forward + first backward still shared by the columns of a block). The kept graphs are
rebuilt automatically when a parameter or buffer of the model is modified in place (tracked by
tensor version counters) and dropped by :meth:`HessianOperator.clear_graphs`. Kept graphs are matched to batches by position, so with
reuse the data must yield the same batches in the same order on every pass (a shuffling DataLoader
breaks this whenever some but not all batches are kept; the construction-time determinism check is
order-invariant and does not catch it): pass a fixed list of batches, or ``reuse_graph=False``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_nonnegative
from .._data import as_batches
from ._problem import _affine_batchnorm, _eval_mode, _Problem, is_transform_error
from .base import CurvatureOperator
from .._params import ParamSpec

__all__ = ["HessianOperator", "HVP_MODES", "HVP_BACKENDS", "resolve_backend"]

#: the products' backends (``backend=``): ``"auto"`` resolves by :func:`resolve_backend`
HVP_BACKENDS = ("auto", "fwd-rev", "rev-rev")
#: the older spelling (``mode=``): ``"vmap"`` is ``backend="fwd-rev"`` with vmapped blocks,
#: ``"fwd-rev"`` is ``backend="fwd-rev", vmap_chunk_size=1`` (one jvp per vector)
HVP_MODES = ("rev-rev", "fwd-rev", "vmap")


def resolve_backend(backend: str, device: torch.device | str = "cpu") -> str:
    """The backend ``"auto"`` stands for on ``device`` (the documented rule; see the module docstring).

    Args:
        backend: ``"auto"``, ``"fwd-rev"`` or ``"rev-rev"``.
        device: the operator's device.

    Returns:
        ``"rev-rev"`` or ``"fwd-rev"``: an explicit choice unchanged; ``"auto"`` gives ``"rev-rev"``
        on the CPU (faster per product and less peak memory in every CPU measurement here) and
        ``"fwd-rev"`` on CUDA (curvlinops' GPU measurements: 30-55 % less memory, 1-42 % less time;
        not measured in this project yet, ``benchmarks/gpu_check.sh`` does).

    Raises:
        ValueError: an unknown backend.
    """
    if backend not in HVP_BACKENDS:
        raise ValueError(f"backend must be one of {HVP_BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    return "fwd-rev" if torch.device(device).type == "cuda" else "rev-rev"


@dataclass
class _KeptGraph:
    """First-order graph of one batch: leaves, live gradients (``create_graph=True``), bytes saved."""

    inputs: list[Tensor]
    grads: list[Tensor]
    live: list[int]
    nbytes: int


class HessianOperator(CurvatureOperator):
    r"""Hessian of the batch-size-weighted average loss as a linear operator.

    .. math::
        H v = \sum_b \frac{n_b}{N} \nabla^2_\theta \ell_b(\theta)\, v,
        \qquad \ell_b(\theta) = \mathrm{loss\_fn}(\mathrm{output\_fn}(f_\theta(x_b)), y_b).

    Args:
        model: the network (evaluated in eval mode during products; see module docstring).
            The operator follows its device; parameters are used at their *current* values
            (shared storage, so later in-place updates are seen) unless ``dtype`` makes a copy.
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor`` (mean over the batch). Any
            differentiable loss, e.g. cross-entropy or a temperature-scaled KD loss whose
            ``targets`` are the teacher's precomputed soft labels / logits for that batch.
        data: ``(inputs, targets)`` tensors (one batch, the PyHessian habit), an iterable of
            ``(inputs, targets)`` batches (a generator is read once and kept) or a DataLoader without
            random augmentation (shuffling only reorders the weighted sum and is harmless up to
            rounding). In batches, ``inputs`` may also be a tuple of positional arguments or a dict
            of keyword arguments. Every product iterates over all of it.
        params: which parameters vary (see :func:`select_parameters`): ``None`` for all,
            a name glob, a submodule, a parameter or a list of these.
        backend: ``"auto"`` (default; :func:`resolve_backend`: rev-rev on CPU, fwd-rev on CUDA),
            ``"fwd-rev"`` or ``"rev-rev"``;
            see the module docstring. The resolved one is :attr:`backend`.
        mode: the older spelling (``"rev-rev"``, ``"fwd-rev"``, ``"vmap"``); ``None`` uses ``backend``.
        dtype: e.g. ``torch.float64``: differentiate a converted *copy* of the model; floating
            inputs and targets are converted batch by batch.
        output_fn: maps the model output to what ``loss_fn`` takes; default identity, or the
            first element if the model returns a tuple / NamedTuple.
        check_deterministic: evaluate the full gradient twice at construction and raise
            ``ValueError`` if the two disagree (shuffled loader, augmentation, dropout in a
            custom forward...). Costs one extra gradient pass.
        deterministic_rtol: relative tolerance of that check (relative to ``max |g|``).
        vmap_chunk_size: tangents per vmapped jvp of the fwd-rev backend (default 4; ``1`` = one
            jvp per vector, ``None`` = all columns of a block at once).
        progressbar: show a tqdm bar over batches.
        reuse_graph: keep the first-order graph of each batch that fits in
            ``graph_memory_limit`` and back-propagate through it for every later vector and block
            (``"rev-rev"`` only; ignored by fwd-rev). See the module docstring for the
            memory cost. ``False`` rebuilds the graph on every product (least memory).
        graph_memory_limit: bytes of saved tensors the kept graphs may hold in total (default
            1 GiB; ResNet-20 in float32 keeps about 3 MiB per example, measured). Batches are kept
            in data order until the next one would exceed it.
        compile: wrap the fwd-rev jvp in ``torch.compile`` (fwd-rev only; pays for long runs).

    Attributes:
        shape, dtype, device, num_matvecs, param_names, num_examples, graph_bytes (bytes held by
        the kept graphs), num_kept_graphs, backend (resolved: ``"rev-rev"`` or ``"fwd-rev"``),
        backend_requested, fallback_reason (why fwd-rev was abandoned, or ``None``).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Any, Any], Tensor],
        data: Iterable,
        params: ParamSpec = None,
        *,
        backend: str = "auto",
        mode: str | None = None,
        dtype: torch.dtype | None = None,
        output_fn: Callable[[Any], Any] | None = None,
        check_deterministic: bool = True,
        deterministic_rtol: float = 1e-5,
        vmap_chunk_size: int | None = 4,
        progressbar: bool = False,
        reuse_graph: bool = True,
        graph_memory_limit: float = 2**30,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if backend not in HVP_BACKENDS:
            raise ValueError(f"backend must be one of {HVP_BACKENDS}, got {backend!r}")
        if mode is not None:
            if mode not in HVP_MODES:
                raise ValueError(f"mode must be one of {HVP_MODES} (or use backend=), got {mode!r}")
            implied = "rev-rev" if mode == "rev-rev" else "fwd-rev"
            if backend not in ("auto", implied):
                raise ValueError(f"mode={mode!r} contradicts backend={backend!r}; pass only backend=")
            backend = implied
            if mode == "fwd-rev":
                vmap_chunk_size = 1
        if vmap_chunk_size is not None and (isinstance(vmap_chunk_size, bool)
                                            or not isinstance(vmap_chunk_size, int) or vmap_chunk_size < 1):
            raise ValueError(f"vmap_chunk_size must be a positive int or None (all columns at once), "
                             f"got {vmap_chunk_size!r}")
        if not isinstance(reuse_graph, bool):
            raise TypeError(f"reuse_graph must be True or False, got {reuse_graph!r}")
        if not isinstance(compile, bool):
            raise TypeError(f"compile must be True or False, got {compile!r}")
        if not isinstance(check_deterministic, bool):
            raise TypeError(f"check_deterministic must be True or False, got {check_deterministic!r}")
        deterministic_rtol = check_nonnegative("deterministic_rtol", deterministic_rtol)
        if isinstance(graph_memory_limit, bool) or not isinstance(graph_memory_limit, (int, float)) \
                or not graph_memory_limit >= 0 or not math.isfinite(graph_memory_limit):
            raise ValueError(
                "graph_memory_limit must be a finite number of bytes >= 0 (e.g. 2 * 2**30), "
                f"got {graph_memory_limit!r}"
            )
        self.backend_requested = backend
        self.fallback_reason: str | None = None
        self.vmap_chunk_size = vmap_chunk_size
        self.compile = compile
        self._compiled_hvp: Callable | None = None
        self._reuse_requested = reuse_graph
        self.graph_memory_limit = float(graph_memory_limit)
        self._graphs: dict[int, _KeptGraph] = {}
        self._graphs_version: tuple[int, ...] | None = None
        self._graph_full = False  # a batch did not fit: later ones are not kept either
        data = as_batches(data, "data")  # (x, y) tensors, batches or a DataLoader (kdbounds._data)
        self._p = _Problem(model, loss_fn, data, params, dtype, output_fn, progressbar)
        self._p.check_data()  # every batch held in memory, before the first pass
        self.shape = (self._p.num_params, self._p.num_params)
        self.dtype = self._p.dtype
        self.device = self._p.device
        self.backend = resolve_backend(backend, self.device)
        self.reuse_graph = reuse_graph and self.backend == "rev-rev"
        self.param_names = tuple(self._p.names)
        g1, l1, n1 = self._gradient_pass()
        self.num_examples = n1
        self._grad_cache = (g1, l1)
        if check_deterministic:
            g2, l2, n2 = self._gradient_pass()
            scale = float(g1.abs().max()) if g1.numel() else 0.0
            ok = n1 == n2 and torch.allclose(
                g1, g2, rtol=deterministic_rtol, atol=deterministic_rtol * scale + 1e-30
            )
            if not ok:
                raise ValueError(
                    "determinism check failed: two gradient evaluations over data disagree "
                    f"(examples {n1} vs {n2}, max diff {float((g1 - g2).abs().max()):.3g}). "
                    "Use a fixed list of batches or a DataLoader without random augmentation "
                    "(precompute the inputs), and a deterministic model in eval mode; or pass "
                    "check_deterministic=False."
                )

    # -- model access -----------------------------------------------------------------------
    @property
    def model(self) -> nn.Module:
        """The (possibly dtype-converted copy of the) model the operator differentiates."""
        return self._p.model

    def unflatten(self, v: Tensor) -> dict[str, Tensor]:
        """Flat vector ``(n,)`` -> ``dict[name, tensor]`` with parameter shapes (views).

        Args:
            v: a flat vector, shape ``(n,)``.

        Returns:
            One tensor per selected parameter name, in the parameter's shape.
        """
        v = self._check_vectors(v, ndim=1, name="v")
        return dict(zip(self._p.names, self._p.split(v)))

    def flatten(self, d: dict[str, Tensor]) -> Tensor:
        """``dict[name, tensor]`` (all selected names, parameter shapes) -> flat vector.

        Args:
            d: one tensor per selected parameter name, in the parameter's shape.

        Returns:
            The flat vector, shape ``(n,)``, in the operator's dtype and device.

        Raises:
            ValueError: a selected name is missing or a tensor has the wrong shape.
        """
        missing = [n for n in self._p.names if n not in d]
        if missing:
            raise ValueError(f"flatten: dict lacks selected parameters {missing[:5]}")
        parts = []
        for n, s in zip(self._p.names, self._p.shapes):
            t = torch.as_tensor(d[n])
            if tuple(t.shape) != s:
                raise ValueError(f"flatten: {n} has shape {tuple(t.shape)}, expected {s}")
            parts.append(t.reshape(-1).to(device=self.device, dtype=self.dtype))
        return torch.cat(parts)

    def parameters_vector(self) -> Tensor:
        """Current values of the selected parameters as a flat vector.

        Returns:
            The flat vector, shape ``(n,)``.
        """
        return torch.cat([p.reshape(-1) for p in self._p.param_values().values()])

    # -- gradient / loss ----------------------------------------------------------------------
    def _gradient_pass(self) -> tuple[Tensor, float, int]:
        p = self._p
        total = torch.zeros(p.num_params, dtype=self.dtype, device=self.device)
        loss_sum = 0.0
        n_total = 0
        with _eval_mode(p.model), _affine_batchnorm(p.model), torch.enable_grad():
            for x, y, nb in p.batches():
                leaves = {k: v.requires_grad_(True) for k, v in
                          ((k, t.detach()) for k, t in p.param_values().items())}
                loss = p.loss(leaves, x, y)
                grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
                flat = torch.cat([
                    (g if g is not None else torch.zeros_like(t)).reshape(-1)
                    for g, t in zip(grads, leaves.values())
                ])
                total += nb * flat.detach()
                loss_sum += nb * float(loss.detach())
                n_total += nb
        if n_total == 0:
            raise ValueError(
                "data yielded no batches (or only empty batches); pass a non-empty list of "
                "(inputs, targets) batches or a non-empty DataLoader"
            )
        g = total / n_total
        lv = loss_sum / n_total
        if not (torch.isfinite(g).all() and math.isfinite(lv)):
            raise ValueError("loss or gradient is not finite at the current parameters")
        return g, lv, n_total

    def gradient(self, recompute: bool = False) -> Tensor:
        r"""Full-data gradient :math:`\nabla_\theta L` (flat), cached from construction.

        Args:
            recompute: run a new gradient pass (after the weights changed) and refresh the cache.

        Returns:
            The flat gradient, shape ``(n,)``.
        """
        if recompute:
            g, l, _ = self._gradient_pass()
            self._grad_cache = (g, l)
        return self._grad_cache[0]

    def loss(self, recompute: bool = False) -> float:
        """Full-data weighted average loss ``L(theta)``, cached from construction.

        Args:
            recompute: run a new gradient pass (after the weights changed) and refresh the cache.

        Returns:
            The loss (a float).
        """
        if recompute:
            self.gradient(recompute=True)
        return self._grad_cache[1]

    # -- products -----------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """The older name of the backend: ``"rev-rev"``, ``"fwd-rev"`` (one jvp per vector) or ``"vmap"``."""
        if self.backend == "rev-rev":
            return "rev-rev"
        return "fwd-rev" if self.vmap_chunk_size == 1 or self.compile else "vmap"

    def _matmat(self, V: Tensor) -> Tensor:
        p = self._p
        out = torch.zeros_like(V)
        n_total = 0
        if self.reuse_graph:
            self._check_graph_versions()
        with _eval_mode(p.model), _affine_batchnorm(p.model):
            for i, (x, y, nb) in enumerate(p.batches()):
                out.add_(self._batch_product(i, x, y, V), alpha=nb)
                n_total += nb
        if n_total == 0:
            raise ValueError("data yielded no batches during a product; data must be re-iterable")
        if n_total != self.num_examples:
            raise ValueError(
                f"data changed size between passes ({self.num_examples} then {n_total} examples)"
            )
        return out / n_total

    def _batch_product(self, i: int, x: Any, y: Any, V: Tensor) -> Tensor:
        """``H_b V`` of batch ``i`` with the current backend (fwd-rev falls back, see below)."""
        if self.backend == "fwd-rev":
            try:
                return self._batch_fwdrev(x, y, V)
            except (RuntimeError, NotImplementedError) as e:
                if not is_transform_error(e):
                    raise
                self._fall_back(e)
        graph = self._graph_for(i, x, y) if self.reuse_graph else None
        if graph is not None:
            return self._backprop(graph, V, keep=i in self._graphs)
        return self._batch_revrev(x, y, V)

    def _fall_back(self, e: BaseException) -> None:
        """An operation has no forward-mode formula: raise for an explicit ``backend="fwd-rev"``,
        else switch this operator to ``"rev-rev"`` for good (with a ``RuntimeWarning``)."""
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        if self.backend_requested == "fwd-rev":
            raise ValueError(
                f"backend='fwd-rev': the model or loss uses an operation without a forward-mode "
                f"derivative ({type(e).__name__}: {first}); use backend='rev-rev' or 'auto' (which "
                "falls back), or give the custom autograd.Function a jvp / setup_context") from e
        self.backend = "rev-rev"
        self.reuse_graph = self._reuse_requested
        self.fallback_reason = f"{type(e).__name__}: {first}"
        warnings.warn(f"HessianOperator: forward-over-reverse is not available for this model "
                      f"({self.fallback_reason}); using reverse-over-reverse", RuntimeWarning,
                      stacklevel=4)

    # -- kept first-order graphs ----------------------------------------------------------------
    @property
    def graph_bytes(self) -> int:
        """Bytes of saved tensors held by the kept first-order graphs (0 without reuse)."""
        return int(sum(g.nbytes for g in self._graphs.values()))

    @property
    def num_kept_graphs(self) -> int:
        """Number of batches whose first-order graph is currently kept."""
        return len(self._graphs)

    def clear_graphs(self) -> None:
        """Drop the kept first-order graphs (frees their memory; rebuilt on the next product)."""
        self._graphs = {}
        self._graphs_version = None
        self._graph_full = False

    def _state_version(self) -> tuple[int, ...]:
        m = self._p.model
        return tuple(t._version for t in (*m.parameters(), *m.buffers()))

    def _check_graph_versions(self) -> None:
        version = self._state_version()
        if self._graphs_version is not None and version != self._graphs_version:
            self.clear_graphs()  # parameters or buffers changed in place: the graphs are stale
        self._graphs_version = version

    def _graph_for(self, i: int, x: Any, y: Any) -> _KeptGraph | None:
        """The kept graph of batch ``i``; built (and kept if it fits) on first use; ``None`` once
        the memory limit has been reached (the batch is then recomputed per product)."""
        if i in self._graphs:
            return self._graphs[i]
        if self._graph_full:
            return None
        graph = self._build_graph(x, y)
        if self.graph_bytes + graph.nbytes > self.graph_memory_limit:
            self._graph_full = True
            return graph  # used for this product only, then freed
        self._graphs[i] = graph
        return graph

    def _build_graph(self, x: Any, y: Any) -> _KeptGraph:
        seen: dict[tuple[int, str], int] = {}

        def pack(t: Tensor) -> Tensor:
            try:
                st = t.untyped_storage()
                seen[(st.data_ptr(), str(t.device))] = st.nbytes()
            except (RuntimeError, NotImplementedError):  # tensors without a plain storage
                seen[(id(t), "?")] = t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            graph = self._first_order_graph(x, y)
        graph.nbytes = int(sum(seen.values()))
        return graph

    def _first_order_graph(self, x: Any, y: Any) -> _KeptGraph:
        p = self._p
        with torch.enable_grad():
            leaves = {k: t.detach().requires_grad_(True) for k, t in p.param_values().items()}
            inputs = list(leaves.values())
            loss = p.loss(leaves, x, y)
            grads = torch.autograd.grad(loss, inputs, create_graph=True, allow_unused=True)
        live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
        return _KeptGraph(inputs, [grads[i] for i in live], live, 0)

    def _batch_revrev(self, x: Any, y: Any, V: Tensor) -> Tensor:
        return self._backprop(self._first_order_graph(x, y), V, keep=False)

    def _backprop(self, graph: _KeptGraph, V: Tensor, *, keep: bool) -> Tensor:
        """Columns ``H_b V[:, j]``: back-propagate ``g_b . v_j`` through a first-order graph
        (``keep=False`` frees the graph with the last column)."""
        p = self._p
        k = V.shape[1]
        out = torch.zeros(k, p.num_params, dtype=V.dtype, device=V.device)
        if not graph.live:
            return out.T
        Vt = V.T.contiguous()
        with torch.enable_grad():
            for j in range(k):
                vs = p.split(Vt[j])
                hv = torch.autograd.grad(
                    graph.grads, graph.inputs, grad_outputs=[vs[i] for i in graph.live],
                    retain_graph=keep or j < k - 1, allow_unused=True,
                )
                offset = 0
                for h, m in zip(hv, p.numels):
                    if h is not None:
                        out[j, offset:offset + m] = h.reshape(-1)
                    offset += m
        return out.T

    def _jvp_grad(self, primals: dict[str, Tensor], v: dict[str, Tensor], x: Any, y: Any
                  ) -> dict[str, Tensor]:
        """``H_b v`` as ``jvp(grad(loss_b))`` at ``primals`` along ``v`` (dicts by parameter name)."""
        p = self._p
        if isinstance(y, Tensor) and y.is_floating_point():
            # Floating targets enter jvp as primals with a materialised zero tangent: some
            # losses (F.mse_loss in torch 2.13) fail with "ZeroTensors are immutable" otherwise.
            def f2(params: dict[str, Tensor], yy: Tensor) -> Tensor:
                return p.loss(params, x, yy)

            return torch.func.jvp(torch.func.grad(f2), (primals, y), (v, torch.zeros_like(y)))[1]

        def f(params: dict[str, Tensor]) -> Tensor:
            return p.loss(params, x, y)

        return torch.func.jvp(torch.func.grad(f), (primals,), (v,))[1]

    def _fwdrev_fn(self, x: Any, y: Any) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
        primals = self._p.param_values()
        fn = self._jvp_grad
        if self.compile:
            if self._compiled_hvp is None:
                self._compiled_hvp = torch.compile(self._jvp_grad)
            fn = self._compiled_hvp

        def hvp(v: dict[str, Tensor]) -> dict[str, Tensor]:
            return fn(primals, v, x, y)

        return hvp

    def _flat(self, d: dict[str, Tensor]) -> Tensor:
        return torch.cat([d[n].reshape(-1) for n in self._p.names])

    def _batch_fwdrev(self, x: Any, y: Any, V: Tensor) -> Tensor:
        """Columns ``H_b V[:, j]``: one jvp per column, or ``vmap`` over chunks of columns (the
        primal forward and backward shared by the chunk); a ``vmap`` failure (an operation without
        a batching rule) drops to one jvp per column for good, with a ``RuntimeWarning``."""
        hvp = self._fwdrev_fn(x, y)
        k = V.shape[1]
        chunk = k if self.vmap_chunk_size is None else min(self.vmap_chunk_size, k)
        if chunk > 1 and not self.compile:
            try:
                return torch.cat([self._vmapped(hvp, V[:, s:s + chunk])
                                  for s in range(0, k, chunk)], dim=1)
            except (RuntimeError, NotImplementedError) as e:
                if not is_transform_error(e):
                    raise
                hv0 = self._flat(hvp(self.unflatten(V[:, 0].contiguous())))  # plain jvp works?
                self.vmap_chunk_size = 1
                warnings.warn(f"HessianOperator: vmap over tangents failed ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]}); one jvp per vector from now on",
                              RuntimeWarning, stacklevel=5)
                cols = [hv0] + [self._flat(hvp(self.unflatten(V[:, j].contiguous())))
                                for j in range(1, k)]
                return torch.stack(cols, dim=1)
        cols = [self._flat(hvp(self.unflatten(V[:, j].contiguous()))) for j in range(k)]
        return torch.stack(cols, dim=1)

    def _vmapped(self, hvp: Callable, V: Tensor) -> Tensor:
        p = self._p
        k = V.shape[1]
        Vt = V.T.contiguous()
        vd = {}
        offset = 0
        for n, s, m in zip(p.names, p.shapes, p.numels):
            vd[n] = Vt[:, offset:offset + m].reshape((k,) + s)
            offset += m
        res = torch.func.vmap(hvp)(vd)
        return torch.cat([res[n].reshape(k, -1) for n in p.names], dim=1).T
