"""Model / data plumbing shared by the Hessian operators (private).

:class:`_Problem` holds a model, a loss, re-iterable data and a parameter selection, and evaluates
the loss of one batch as a function of the selected parameters (``torch.func.functional_call``).
"""

from __future__ import annotations

import contextlib
import copy
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from .._data import check_finite_tensors
from .._params import ParamSpec, select_parameters

@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _bn_affine_forward(self: nn.Module, x: Tensor) -> Tensor:
    """Eval-mode BatchNorm as the per-channel affine map it is: ``x * s + t`` with
    ``s = weight / sqrt(running_var + eps)``, ``t = bias - running_mean * s`` (equal to
    ``F.batch_norm(..., training=False)`` up to rounding; its forward-mode and double-backward
    formulas are those of a multiply-add instead of the general batch-norm backward)."""
    s = torch.rsqrt(self.running_var + self.eps)
    if self.weight is not None:
        s = self.weight * s
    t = -self.running_mean * s
    if self.bias is not None:
        t = t + self.bias
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return torch.addcmul(t.view(shape), x, s.view(shape))


@contextlib.contextmanager
def _affine_batchnorm(model: nn.Module) -> Iterator[None]:
    """Inside the block, every plain ``nn.BatchNorm{1,2,3}d`` in eval mode with running statistics
    computes its output as :func:`_bn_affine_forward` (an instance-level ``forward``, removed
    afterwards). Subclasses with their own ``forward``, modules that already carry an instance
    ``forward`` and modules that use batch statistics are left alone."""
    base = nn.modules.batchnorm._BatchNorm.forward
    patched = []
    for m in model.modules():
        if (isinstance(m, nn.modules.batchnorm._BatchNorm) and type(m).forward is base
                and "forward" not in m.__dict__ and not m.training
                and m.running_mean is not None and m.running_var is not None):
            m.forward = types.MethodType(_bn_affine_forward, m)
            patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


#: fragments of the errors torch raises when an operation lacks a forward-mode (jvp) formula or a
#: ``torch.func`` transform rule (custom ``autograd.Function`` without ``jvp`` / ``setup_context`` /
#: ``vmap``); see :func:`is_transform_error`
_TRANSFORM_ERROR_MARKERS = ("forward ad", "forward-mode", "forward mode", "jvp", "functorch",
                            "setup_context", "vmap", "batching rule", "torch.func")


def is_transform_error(e: BaseException) -> bool:
    """Whether ``e`` says that an operation cannot go through forward-mode AD or ``vmap``."""
    if not isinstance(e, (RuntimeError, NotImplementedError)):
        return False
    msg = str(e).lower()
    return any(k in msg for k in _TRANSFORM_ERROR_MARKERS)


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
        name: str = "data",
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
        self.data_name = name
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

    def check_batch(self, i: int, x: Any, y: Any) -> None:
        """One batch before it reaches the model: floating inputs of the parameters' dtype (unless ``dtype``
        converts them: ``TypeError``), no NaN/inf in any floating tensor of the inputs or targets, and as many
        targets as inputs when both are tensors (``ValueError``); each naming the data argument."""
        if isinstance(x, Tensor) and x.is_floating_point() and self.cast_dtype is None and x.dtype != self.dtype:
            raise TypeError(f"{self.data_name}: batch {i} inputs x have dtype {x.dtype} but the model's parameters "
                            f"are {self.dtype}; pass x.to({self.dtype}), or dtype={x.dtype} to measure in "
                            f"{str(x.dtype).replace('torch.', '')}")
        check_finite_tensors(self.data_name, x, f"batch {i} inputs x")
        check_finite_tensors(self.data_name, y, f"batch {i} targets y")
        if isinstance(x, Tensor) and isinstance(y, Tensor) and x.ndim and y.ndim and len(x) != len(y):
            raise ValueError(f"{self.data_name}: batch {i} has {len(x)} inputs x but {len(y)} targets y; give one "
                             f"target per input")

    def check_data(self) -> None:
        """Every batch of data held in memory (a list of batches), before any pass over it: a bad batch at the
        end is refused before the first is evaluated. A DataLoader is checked batch by batch as it is read."""
        if isinstance(self.data, (list, tuple)):
            for i, (x, y) in enumerate(self.data):
                self.check_batch(i, x, y)

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
            if not isinstance(self.data, (list, tuple)):  # in memory: checked once by check_data
                self.check_batch(i, x, y)
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
        try:
            if isinstance(x, (tuple, list)):
                out = torch.func.functional_call(self.model, full, tuple(x))
            elif isinstance(x, dict):
                out = torch.func.functional_call(self.model, full, (), x)
            else:
                out = torch.func.functional_call(self.model, full, (x,))
        except (RuntimeError, ValueError, IndexError, TypeError) as e:
            if is_transform_error(e):
                raise  # a forward-mode / vmap limitation, not bad data: the caller falls back
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise ValueError(f"{self.data_name}: the model could not be evaluated on a batch ({first}); check that "
                             f"the inputs have the shape and dtype the model expects") from e
        try:
            loss = self.loss_fn(self.output_fn(out), y)
        except (RuntimeError, ValueError, IndexError) as e:
            if is_transform_error(e):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise ValueError(f"{self.data_name}: loss_fn(model(x), y) failed on a batch ({first}); check that the "
                             f"targets y match the outputs (class indices in [0, num_classes), the same batch size "
                             f"as x)") from e
        if not isinstance(loss, Tensor):
            raise TypeError(
                f"loss_fn must return a scalar torch.Tensor, got {type(loss).__name__}"
            )
        if loss.numel() != 1 or loss.ndim > 1:
            raise ValueError(
                f"loss_fn must return a scalar (use reduction='mean'), got shape {tuple(loss.shape)}"
            )
        return loss.reshape(())
