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

**HVP modes** (``mode=``), all exact up to rounding:

* ``"rev-rev"`` (default): reverse-over-reverse (double backward). Per batch one forward pass and
  one gradient with ``create_graph=True``; then one extra backward pass of that graph *per vector*
  with ``retain_graph=True``. In :meth:`matmat` the forward and first backward are shared by all
  columns, so a block of ``k`` vectors costs ``1 forward + 1 backward + k double-backwards``
  instead of ``k`` full double-backward HVPs.
* ``"fwd-rev"``: forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad``, one vector at a
  time.
* ``"vmap"``: forward-over-reverse vectorised over the columns with ``torch.func.vmap``.

Default chosen from ``benchmarks/hvp.py`` (ResNet-20, 272k parameters, CIFAR shapes, batch 128,
CPU, torch 2.13, one intra-op thread, process CPU time, 2 repeats, 22 Nov 2026; seconds per
vector, ratio to a gradient / to the PyHessian-style double-backward baseline):
gradient 0.355 s; baseline 1.34 s (3.77x gradient); rev-rev single vector 1.45 s (4.09x, 1.08x
baseline); fwd-rev single 1.70 s (4.78x, 1.27x); **rev-rev in blocks of 8 0.94 s (2.65x, 0.70x)**;
vmap over fwd-rev in blocks of 4 1.66 s (4.67x, 1.24x, 4x the memory). So rev-rev is the default,
and estimators that can (Hutchinson, Hutch++, diagonal, tr H^2) feed it blocks through
:meth:`matmat`; sequential Lanczos / power iteration pay the single-vector price. Not measured on
a GPU (none was available); on CUDA the ordering may differ, so re-run the benchmark there.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "CurvatureOperator",
    "MatrixOperator",
    "HessianOperator",
    "GapHessianOperator",
    "as_operator",
    "select_parameters",
    "HVP_MODES",
]

HVP_MODES = ("rev-rev", "fwd-rev", "vmap")


# --------------------------------------------------------------------------------------------
# Base operator
# --------------------------------------------------------------------------------------------
class CurvatureOperator:
    """A symmetric linear operator on flat vectors of length ``shape[0]``.

    Subclasses implement :meth:`_matmat` on an ``(n, k)`` tensor already checked and cast to the
    operator's dtype and device. Supports ``op @ v`` (``v`` of shape ``(n,)``) and ``op @ V``
    (``(n, k)``). ``num_matvecs`` counts the products computed so far (a ``matmat`` with ``k``
    columns counts ``k``).
    """

    shape: tuple[int, int]
    dtype: torch.dtype
    device: torch.device

    def __init__(self) -> None:
        self.num_matvecs = 0

    # -- public products --------------------------------------------------------------------
    def matvec(self, v: Tensor) -> Tensor:
        """Return ``A v`` for a flat vector ``v`` of shape ``(n,)``."""
        v = self._check_vectors(v, ndim=1, name="v")
        return self.matmat(v[:, None])[:, 0]

    def matmat(self, V: Tensor) -> Tensor:
        """Return ``A V`` for a matrix ``V`` of shape ``(n, k)`` (one column per vector)."""
        V = self._check_vectors(V, ndim=2, name="V")
        if V.shape[1] == 0:
            return V.clone()
        out = self._matmat(V)
        self.num_matvecs += V.shape[1]
        return out

    def __matmul__(self, x: Tensor) -> Tensor:
        if isinstance(x, Tensor) and x.ndim == 1:
            return self.matvec(x)
        if isinstance(x, Tensor) and x.ndim == 2:
            return self.matmat(x)
        if isinstance(x, np.ndarray):
            raise TypeError(
                "operator @ x: x must be a torch.Tensor; use op.to_scipy() for numpy arrays "
                "or torch.as_tensor(x)"
            )
        raise ValueError(
            f"operator @ x: x must be a 1-D (n,) or 2-D (n, k) tensor with n={self.shape[0]}, "
            f"got {type(x).__name__} with shape {getattr(x, 'shape', None)}"
        )

    def _matmat(self, V: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers ----------------------------------------------------------------------------
    def _check_vectors(self, V: Any, ndim: int, name: str) -> Tensor:
        if not isinstance(V, Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor of shape "
                f"{'(n,)' if ndim == 1 else '(n, k)'} with n={self.shape[0]}, "
                f"got {type(V).__name__}; use torch.as_tensor or op.to_scipy() for numpy"
            )
        if V.ndim != ndim or V.shape[0] != self.shape[0]:
            want = f"({self.shape[0]},)" if ndim == 1 else f"({self.shape[0]}, k)"
            raise ValueError(f"{name} must have shape {want}, got {tuple(V.shape)}")
        if not (V.is_floating_point() or V.is_complex()):
            V = V.to(self.dtype)
        if V.is_complex():
            raise TypeError(f"{name} must be real, got dtype {V.dtype}")
        if not torch.isfinite(V).all():
            raise ValueError(f"{name} contains NaN or infinite entries")
        return V.to(device=self.device, dtype=self.dtype)

    def to_dense(self, chunk_size: int = 64) -> Tensor:
        """Materialise the ``(n, n)`` matrix by products with identity columns (small ``n`` only)."""
        n = self.shape[0]
        cols = []
        for start in range(0, n, chunk_size):
            stop = min(n, start + chunk_size)
            E = torch.zeros(n, stop - start, dtype=self.dtype, device=self.device)
            E[torch.arange(start, stop), torch.arange(stop - start)] = 1
            cols.append(self.matmat(E))
        return torch.cat(cols, dim=1)

    def to_scipy(self):
        """Export as a :class:`scipy.sparse.linalg.LinearOperator` (numpy in, numpy out).

        Numpy vectors are converted to the operator's dtype and device for each product and the
        result is returned on the CPU as numpy with the numpy equivalent of the operator's dtype.
        """
        from scipy.sparse.linalg import LinearOperator

        np_dtype = torch.empty(0, dtype=self.dtype).numpy().dtype

        def mv(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x).reshape(-1)
            t = torch.as_tensor(np.ascontiguousarray(x), dtype=self.dtype, device=self.device)
            return self.matvec(t).detach().cpu().numpy()

        def mm(X: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.ascontiguousarray(X), dtype=self.dtype, device=self.device)
            return self.matmat(t).detach().cpu().numpy()

        return LinearOperator(
            shape=self.shape, matvec=mv, rmatvec=mv, matmat=mm, rmatmat=mm, dtype=np_dtype
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, device={self.device})"


class MatrixOperator(CurvatureOperator):
    """A dense symmetric matrix wrapped as an operator (tests, tiny problems).

    Args:
        A: square symmetric matrix (``torch.Tensor`` or ``numpy.ndarray``).
        check_symmetric: raise ``ValueError`` if ``A`` is not symmetric to ``1e-8`` relative.
    """

    def __init__(self, A: Tensor | np.ndarray, *, check_symmetric: bool = True) -> None:
        super().__init__()
        A = torch.as_tensor(A)
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be a square 2-D matrix, got shape {tuple(A.shape)}")
        if not A.is_floating_point():
            A = A.to(torch.get_default_dtype())
        if check_symmetric:
            scale = float(A.abs().max()) if A.numel() else 0.0
            if float((A - A.T).abs().max()) > 1e-8 * max(scale, 1e-300) and A.numel():
                raise ValueError("A must be symmetric (pass check_symmetric=False to skip)")
        self.A = A
        self.shape = (A.shape[0], A.shape[1])
        self.dtype = A.dtype
        self.device = A.device

    def _matmat(self, V: Tensor) -> Tensor:
        return self.A @ V


def as_operator(op: Any) -> CurvatureOperator:
    """Return ``op`` if it is a :class:`CurvatureOperator`; wrap tensors/arrays as a matrix."""
    if isinstance(op, CurvatureOperator):
        return op
    if isinstance(op, (Tensor, np.ndarray)):
        return MatrixOperator(op)
    raise TypeError(
        "op must be a kdbounds.curvature operator (HessianOperator, GapHessianOperator, "
        f"MatrixOperator) or a square tensor/array, got {type(op).__name__}"
    )


# --------------------------------------------------------------------------------------------
# Parameter selection
# --------------------------------------------------------------------------------------------
ParamSpec = None | str | nn.Module | nn.Parameter | Iterable[Any]


def select_parameters(model: nn.Module, params: ParamSpec = None) -> list[str]:
    """Names of the selected parameters of ``model``, in ``named_parameters()`` order.

    Args:
        model: the network.
        params: ``None`` (all parameters with ``requires_grad``), a glob pattern on parameter
            names (``"layer3.*"``, ``"*.bn*.weight"``, ``"fc.weight"``; ``fnmatch`` rules, ``*``
            also matches dots), a submodule of ``model`` (all its parameters), a parameter of
            ``model``, or an iterable mixing these (the union is taken).

    Raises:
        ValueError: if a pattern, module or parameter matches nothing, or the selection is empty.
        TypeError: for unsupported specification types.
    """
    named = list(model.named_parameters())
    if not named:
        raise ValueError("model has no parameters; nothing to differentiate")
    if params is None:
        names = [n for n, p in named if p.requires_grad]
        if not names:
            raise ValueError(
                "model has no parameter with requires_grad=True; pass params= explicitly"
            )
        return names
    specs = [params] if isinstance(params, (str, nn.Module, Tensor)) else params
    try:
        specs = list(specs)
    except TypeError:
        raise TypeError(
            "params must be None, a name pattern (str), a submodule, a parameter, or an "
            f"iterable of those; got {type(params).__name__}"
        ) from None
    if not specs:
        raise ValueError("params is empty; pass None for all parameters or a name pattern")
    id_to_name = {id(p): n for n, p in named}
    chosen: set[str] = set()
    available = ", ".join(n for n, _ in named[:12]) + (" ..." if len(named) > 12 else "")
    for spec in specs:
        if isinstance(spec, str):
            hits = {n for n, _ in named if fnmatch.fnmatchcase(n, spec)}
            if not hits:
                raise ValueError(
                    f"params pattern {spec!r} matches no parameter name; available names: "
                    f"{available}"
                )
        elif isinstance(spec, nn.Module):
            hits = {id_to_name[id(p)] for p in spec.parameters() if id(p) in id_to_name}
            if not hits:
                raise ValueError(
                    f"params module {type(spec).__name__} has no parameters belonging to model; "
                    "pass a submodule of model (e.g. model.layer3) that holds parameters"
                )
        elif isinstance(spec, Tensor):
            if id(spec) not in id_to_name:
                raise ValueError(
                    "params contains a tensor that is not a parameter of model; pass "
                    "model parameters, names or submodules"
                )
            hits = {id_to_name[id(spec)]}
        else:
            raise TypeError(
                "each params entry must be a name pattern (str), a submodule or a parameter, "
                f"got {type(spec).__name__}"
            )
        chosen |= hits
    return [n for n, _ in named if n in chosen]


# --------------------------------------------------------------------------------------------
# Model / data plumbing
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _default_output_fn(out: Any) -> Any:
    if isinstance(out, tuple):  # includes NamedTuple
        if len(out) == 0:
            raise ValueError("model returned an empty tuple; pass output_fn= to select the output")
        return out[0]
    return out


def _first_tensor(obj: Any) -> Tensor | None:
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for o in obj:
            t = _first_tensor(o)
            if t is not None:
                return t
    if isinstance(obj, dict):
        for o in obj.values():
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


def _move(obj: Any, device: torch.device, dtype: torch.dtype | None) -> Any:
    if isinstance(obj, Tensor):
        if dtype is not None and obj.is_floating_point():
            return obj.to(device=device, dtype=dtype)
        return obj.to(device=device)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_move(o, device, dtype) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_move(o, device, dtype) for o in obj)
    if isinstance(obj, dict):
        return {k: _move(v, device, dtype) for k, v in obj.items()}
    return obj


class _Problem:
    """Model + loss + data + parameter selection: evaluates the weighted loss per batch."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Any, Any], Tensor],
        data: Iterable,
        params: ParamSpec,
        dtype: torch.dtype | None,
        output_fn: Callable[[Any], Any] | None,
        progressbar: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError("loss_fn must be callable as loss_fn(outputs, targets) -> scalar")
        if output_fn is not None and not callable(output_fn):
            raise TypeError("output_fn must be callable (model output -> loss_fn input)")
        if isinstance(data, (Iterator,)) or (hasattr(data, "__next__") and iter(data) is data):
            raise TypeError(
                "data must be re-iterable (a list of (inputs, targets) batches or a DataLoader); "
                "got a one-shot iterator/generator; wrap it as list(data)"
            )
        if not isinstance(data, Iterable):
            raise TypeError(
                f"data must be an iterable of (inputs, targets) batches, got {type(data).__name__}"
            )
        names = select_parameters(model, params)
        if dtype is not None:
            if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
                raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
            model = copy.deepcopy(model).to(dtype=dtype)
        self.model = model
        self.loss_fn = loss_fn
        self.output_fn = output_fn or _default_output_fn
        self.data = data
        self.names = names
        self.cast_dtype = dtype
        self.progressbar = progressbar
        all_params = dict(model.named_parameters())
        first = all_params[names[0]]
        self.device = first.device
        self.dtype = first.dtype
        for n in names:
            p = all_params[n]
            if p.dtype != self.dtype or p.device != self.device:
                raise ValueError(
                    "selected parameters must share one dtype and device; got "
                    f"{n}: {p.dtype}/{p.device} vs {self.dtype}/{self.device}; pass dtype= to convert"
                )
        self.shapes = [tuple(all_params[n].shape) for n in names]
        self.numels = [all_params[n].numel() for n in names]
        self.num_params = int(sum(self.numels))
        self._all_params = all_params
        self.fixed = {n: p.detach() for n, p in all_params.items() if n not in set(names)}

    # views of the current parameter values (shared storage, no grad)
    def param_values(self) -> dict[str, Tensor]:
        return {n: self._all_params[n].detach() for n in self.names}

    def split(self, flat: Tensor) -> list[Tensor]:
        return [t.view(s) for t, s in zip(torch.split(flat, self.numels), self.shapes)]

    def batches(self) -> Iterator[tuple[Any, Any, int]]:
        it: Iterable = self.data
        if self.progressbar:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="curvature", leave=False)
        for i, batch in enumerate(it):
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise ValueError(
                    f"data batch {i} must be a pair (inputs, targets), got {type(batch).__name__}"
                    + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                )
            x, y = batch
            x = _move(x, self.device, self.cast_dtype)
            y = _move(y, self.device, self.cast_dtype)
            t = _first_tensor(y)
            if t is None or t.ndim == 0:
                t = _first_tensor(x)
            if t is None or t.ndim == 0:
                raise ValueError(
                    f"data batch {i}: cannot infer the batch size (no tensor with a leading "
                    "batch dimension in targets or inputs)"
                )
            yield x, y, int(t.shape[0])

    def loss(self, params: dict[str, Tensor], x: Any, y: Any) -> Tensor:
        full = {**self.fixed, **params}
        if isinstance(x, (tuple, list)):
            out = torch.func.functional_call(self.model, full, tuple(x))
        elif isinstance(x, dict):
            out = torch.func.functional_call(self.model, full, (), x)
        else:
            out = torch.func.functional_call(self.model, full, (x,))
        loss = self.loss_fn(self.output_fn(out), y)
        if not isinstance(loss, Tensor):
            raise TypeError(
                f"loss_fn must return a scalar torch.Tensor, got {type(loss).__name__}"
            )
        if loss.numel() != 1 or loss.ndim > 1:
            raise ValueError(
                f"loss_fn must return a scalar (use reduction='mean'), got shape {tuple(loss.shape)}"
            )
        return loss.reshape(())


# --------------------------------------------------------------------------------------------
# Hessian operator
# --------------------------------------------------------------------------------------------
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
        data: re-iterable of ``(inputs, targets)`` batches (a list or a DataLoader without
            random augmentation; shuffling only reorders the weighted sum and is harmless
            up to rounding). ``inputs`` may be a tensor, a tuple of positional
            arguments, or a dict of keyword arguments. Every product iterates over all of it.
        params: which parameters vary (see :func:`select_parameters`): ``None`` for all,
            a name glob, a submodule, a parameter or a list of these.
        mode: ``"rev-rev"`` (default), ``"fwd-rev"`` or ``"vmap"``; see the module docstring.
        dtype: e.g. ``torch.float64``: differentiate a converted *copy* of the model; floating
            inputs and targets are converted batch by batch.
        output_fn: maps the model output to what ``loss_fn`` takes; default identity, or the
            first element if the model returns a tuple / NamedTuple.
        check_deterministic: evaluate the full gradient twice at construction and raise
            ``ValueError`` if the two disagree (shuffled loader, augmentation, dropout in a
            custom forward...). Costs one extra gradient pass.
        deterministic_rtol: relative tolerance of that check (relative to ``max |g|``).
        vmap_chunk_size: chunk size for ``mode="vmap"`` (``None`` = all columns at once).
        progressbar: show a tqdm bar over batches.

    Attributes:
        shape, dtype, device, num_matvecs, param_names, num_examples.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[Any, Any], Tensor],
        data: Iterable,
        params: ParamSpec = None,
        *,
        mode: str = "rev-rev",
        dtype: torch.dtype | None = None,
        output_fn: Callable[[Any], Any] | None = None,
        check_deterministic: bool = True,
        deterministic_rtol: float = 1e-5,
        vmap_chunk_size: int | None = None,
        progressbar: bool = False,
    ) -> None:
        super().__init__()
        if mode not in HVP_MODES:
            raise ValueError(f"mode must be one of {HVP_MODES}, got {mode!r}")
        self.mode = mode
        self.vmap_chunk_size = vmap_chunk_size
        self._p = _Problem(model, loss_fn, data, params, dtype, output_fn, progressbar)
        self.shape = (self._p.num_params, self._p.num_params)
        self.dtype = self._p.dtype
        self.device = self._p.device
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
        """Flat vector ``(n,)`` -> ``dict[name, tensor]`` with parameter shapes (views)."""
        v = self._check_vectors(v, ndim=1, name="v")
        return dict(zip(self._p.names, self._p.split(v)))

    def flatten(self, d: dict[str, Tensor]) -> Tensor:
        """``dict[name, tensor]`` (all selected names, parameter shapes) -> flat vector."""
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
        """Current values of the selected parameters as a flat vector."""
        return torch.cat([p.reshape(-1) for p in self._p.param_values().values()])

    # -- gradient / loss ----------------------------------------------------------------------
    def _gradient_pass(self) -> tuple[Tensor, float, int]:
        p = self._p
        total = torch.zeros(p.num_params, dtype=self.dtype, device=self.device)
        loss_sum = 0.0
        n_total = 0
        with _eval_mode(p.model), torch.enable_grad():
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
        r"""Full-data gradient :math:`\nabla_\theta L` (flat), cached from construction."""
        if recompute:
            g, l, _ = self._gradient_pass()
            self._grad_cache = (g, l)
        return self._grad_cache[0]

    def loss(self, recompute: bool = False) -> float:
        """Full-data weighted average loss ``L(theta)``, cached from construction."""
        if recompute:
            self.gradient(recompute=True)
        return self._grad_cache[1]

    # -- products -----------------------------------------------------------------------------
    def _matmat(self, V: Tensor) -> Tensor:
        p = self._p
        out = torch.zeros_like(V)
        n_total = 0
        with _eval_mode(p.model):
            for x, y, nb in p.batches():
                if self.mode == "rev-rev":
                    hv = self._batch_revrev(x, y, V)
                elif self.mode == "fwd-rev":
                    hv = self._batch_fwdrev(x, y, V)
                else:
                    hv = self._batch_vmap(x, y, V)
                out.add_(hv, alpha=nb)
                n_total += nb
        if n_total == 0:
            raise ValueError("data yielded no batches during a product; data must be re-iterable")
        if n_total != self.num_examples:
            raise ValueError(
                f"data changed size between passes ({self.num_examples} then {n_total} examples)"
            )
        return out / n_total

    def _batch_revrev(self, x: Any, y: Any, V: Tensor) -> Tensor:
        p = self._p
        with torch.enable_grad():
            leaves = {k: t.detach().requires_grad_(True) for k, t in p.param_values().items()}
            inputs = list(leaves.values())
            loss = p.loss(leaves, x, y)
            grads = torch.autograd.grad(loss, inputs, create_graph=True, allow_unused=True)
            live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
            k = V.shape[1]
            out = torch.zeros(k, p.num_params, dtype=V.dtype, device=V.device)
            if not live:
                return out.T
            Vt = V.T.contiguous()
            g_live = [grads[i] for i in live]
            for j in range(k):
                vs = p.split(Vt[j])
                hv = torch.autograd.grad(
                    g_live, inputs, grad_outputs=[vs[i] for i in live],
                    retain_graph=j < k - 1, allow_unused=True,
                )
                offset = 0
                for h, m in zip(hv, p.numels):
                    if h is not None:
                        out[j, offset:offset + m] = h.reshape(-1)
                    offset += m
            return out.T

    def _fwdrev_fn(self, x: Any, y: Any) -> Callable:
        p = self._p

        primals = p.param_values()
        if isinstance(y, Tensor) and y.is_floating_point():
            # Floating targets enter jvp as primals with a materialised zero tangent: some
            # losses (F.mse_loss in torch 2.13) fail with "ZeroTensors are immutable" otherwise.
            def f2(params: dict[str, Tensor], yy: Tensor) -> Tensor:
                return p.loss(params, x, yy)

            grad_f2 = torch.func.grad(f2)
            y_zero = torch.zeros_like(y)

            def hvp(v: dict[str, Tensor]) -> dict[str, Tensor]:
                return torch.func.jvp(grad_f2, (primals, y), (v, y_zero))[1]

            return hvp

        def f(params: dict[str, Tensor]) -> Tensor:
            return p.loss(params, x, y)

        grad_f = torch.func.grad(f)

        def hvp(v: dict[str, Tensor]) -> dict[str, Tensor]:
            return torch.func.jvp(grad_f, (primals,), (v,))[1]

        return hvp

    def _flat(self, d: dict[str, Tensor]) -> Tensor:
        return torch.cat([d[n].reshape(-1) for n in self._p.names])

    def _batch_fwdrev(self, x: Any, y: Any, V: Tensor) -> Tensor:
        hvp = self._fwdrev_fn(x, y)
        cols = []
        for j in range(V.shape[1]):
            v = dict(zip(self._p.names, self._p.split(V[:, j].contiguous())))
            cols.append(self._flat(hvp(v)))
        return torch.stack(cols, dim=1)

    def _batch_vmap(self, x: Any, y: Any, V: Tensor) -> Tensor:
        p = self._p
        hvp = self._fwdrev_fn(x, y)
        k = V.shape[1]
        Vt = V.T.contiguous()
        vd = {}
        offset = 0
        for n, s, m in zip(p.names, p.shapes, p.numels):
            vd[n] = Vt[:, offset:offset + m].reshape((k,) + s)
            offset += m
        res = torch.func.vmap(hvp, chunk_size=self.vmap_chunk_size)(vd)
        return torch.cat([res[n].reshape(k, -1) for n in p.names], dim=1).T


# --------------------------------------------------------------------------------------------
# Gap operator
# --------------------------------------------------------------------------------------------
class GapHessianOperator(CurvatureOperator):
    r"""Hessian of the gap function :math:`f(\theta) = L_{\mathrm{held}}(\theta) - L_{\mathrm{train}}(\theta)`.

    .. math:: H_{\mathrm{gap}} v = H_{\mathrm{held}} v - H_{\mathrm{train}} v

    (theory.md §4 Theorems 3A/3B, §6). It is symmetric but indefinite: use
    ``top_eigenvalues(op, which="both")`` for its extreme eigenvalues of both signs and
    ``hutchinson_trace`` for its trace. One product costs two Hessian products.

    Args:
        model, loss_fn, params and keyword arguments: as :class:`HessianOperator`.
        train_data: training batches.
        heldout_data: held-out (test) batches.

    Use :meth:`from_operators` to build it from two existing operators on the same parameters.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        loss_fn: Callable | None = None,
        train_data: Iterable | None = None,
        heldout_data: Iterable | None = None,
        params: ParamSpec = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if model is None:  # used by from_operators
            return
        if train_data is None or heldout_data is None:
            raise ValueError("GapHessianOperator needs both train_data and heldout_data")
        train = HessianOperator(model, loss_fn, train_data, params, **kwargs)
        heldout = HessianOperator(model, loss_fn, heldout_data, params, **kwargs)
        self._set(heldout, train)

    @classmethod
    def from_operators(cls, heldout: HessianOperator, train: HessianOperator) -> GapHessianOperator:
        """Gap operator ``heldout - train`` from two operators on the same parameters."""
        for name, o in (("heldout", heldout), ("train", train)):
            if not isinstance(o, HessianOperator):
                raise TypeError(f"{name} must be a HessianOperator, got {type(o).__name__}")
        if heldout.param_names != train.param_names or heldout.shape != train.shape:
            raise ValueError(
                "heldout and train operators must select the same parameters "
                f"({len(heldout.param_names)} vs {len(train.param_names)} tensors)"
            )
        if heldout.dtype != train.dtype or heldout.device != train.device:
            raise ValueError("heldout and train operators must share dtype and device")
        self = cls()
        self._set(heldout, train)
        return self

    def _set(self, heldout: HessianOperator, train: HessianOperator) -> None:
        self.heldout = heldout
        self.train = train
        self.shape = train.shape
        self.dtype = train.dtype
        self.device = train.device
        self.param_names = train.param_names

    def _matmat(self, V: Tensor) -> Tensor:
        return self.heldout.matmat(V) - self.train.matmat(V)

    def gradient(self) -> Tensor:
        r"""Gradient of the gap function, :math:`\nabla L_{\mathrm{held}} - \nabla L_{\mathrm{train}}`."""
        return self.heldout.gradient() - self.train.gradient()

    def gap(self) -> float:
        """Value of the gap function, held-out loss minus training loss."""
        return self.heldout.loss() - self.train.loss()
