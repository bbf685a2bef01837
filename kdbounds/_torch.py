"""Private torch plumbing shared by the measurement and training layers (each policy written once).

- :func:`resolve_device`: ``"auto"`` / ``"cpu"`` / ``"cuda[:k]"`` / a ``torch.device`` -> ``torch.device``,
  with a clear error when CUDA is asked for but absent.
- :func:`eval_mode`: eval mode + ``no_grad`` for one or several modules, restoring every submodule's
  own ``training`` flag afterwards (even if the body raises).
- :func:`collect_logits`: evaluate one or several modules on a tensor of inputs or a loader of
  batches (eval mode, no grad) and return their logits on the CPU, in data order; :func:`forward_logits`
  (one forward pass, a network that cannot take the inputs said in our words) and :func:`num_classes`
  (a one-example probe: do the networks take these inputs, and how many classes do they have?).
- :func:`mean_estimate`: the mean of per-example values with its standard error, as the one estimate
  record (:class:`~kdbounds._records.Estimate`) — the one implementation behind every fidelity metric and
  ``checks.mean_estimate``.
- :func:`bounded_cross_entropy`: the cross-entropy clipped and scaled to ``[0, 1]`` that certified
  distillation trains on (:mod:`kdbounds.distill.pbb`) and the certificates measure
  (:mod:`kdbounds.pacbayes.certify`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._checks import check_int
from ._data import FORMS, check_inputs, is_pair
from ._records import Estimate

__all__ = ["resolve_device", "eval_mode", "collect_logits", "forward_logits", "num_classes", "mean_estimate",
           "bounded_cross_entropy"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The ``torch.device`` named by ``device``.

    Args:
        device: ``"auto"`` or ``None`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:k"``, ``"mps"`` or a ``torch.device`` (returned unchanged).

    Returns:
        The resolved device.

    Raises:
        ValueError: ``device`` asks for CUDA and no CUDA device is available, or it is not a device name.
        TypeError: ``device`` is neither a string, a ``torch.device`` nor ``None``.
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str):
        raise TypeError(f"device: expected 'auto', 'cpu', 'cuda[:k]' or a torch.device, got {type(device).__name__}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but no CUDA device is available; use device='auto' or 'cpu'")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda[:k]' or a torch.device, got {device!r}") from e


@contextmanager
def eval_mode(*modules: nn.Module, grad: bool = False) -> Iterator[None]:
    """Put ``modules`` in eval mode under ``torch.no_grad()``; restore each submodule's flag on exit.

    Args:
        *modules: the modules to evaluate.
        grad: keep gradients on (eval mode only: e.g. training through a network whose BatchNorm
            statistics stay frozen).

    Raises:
        TypeError: one of ``modules`` is not an ``nn.Module``.
    """
    for j, m in enumerate(modules):
        if not isinstance(m, nn.Module):
            raise TypeError(f"modules[{j}]: expected an nn.Module, got {type(m).__name__}")
    saved = [(sub, sub.training) for m in modules for sub in m.modules()]
    try:
        for m in modules:
            m.eval()
        with nullcontext() if grad else torch.no_grad():
            yield
    finally:
        for sub, flag in saved:
            sub.training = flag


def _output_logits(out: Any, name: str) -> torch.Tensor:
    """Logits from a model output: a tensor, an object with ``.logits``, a dict with 'logits',
    or a tuple/list whose first element is the logits (e.g. a ``FeatureOutput`` NamedTuple)."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits") and isinstance(out.logits, torch.Tensor):
        return out.logits
    if isinstance(out, dict) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(
        f"{name} returned {type(out).__name__}; expected a logits tensor, an object with a .logits "
        "tensor, a dict with key 'logits' or a tuple whose first element is the logits"
    )


def _model_device(model: nn.Module) -> torch.device | None:
    """The device of ``model``'s first parameter (or buffer); ``None`` for a module without either."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return None


def _batches(data: Any, batch_size: int, name: str = "data") -> Iterator[torch.Tensor]:
    """Yield input tensors from a tensor of inputs, ``(x, y)`` tensors, or an iterable of (x, y) batches / x tensors."""
    if is_pair(data):
        data = data[0]  # (x, y) tensors: the inputs, in batches of batch_size
    elif (isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(a, torch.Tensor) for a in data)
          and data[0].shape[1:] != data[1].shape[1:]):  # meant as (x, y), not as two batches of inputs
        raise ValueError(f"{name}: x and y must have the same leading length (one target per input), got shapes "
                         f"{tuple(data[0].shape)} and {tuple(data[1].shape)}")
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(data)
    if isinstance(data, torch.Tensor):
        if data.ndim == 0:
            raise ValueError(f"{name} must be a tensor of inputs with a leading batch dimension, got a scalar")
        for start in range(0, data.shape[0], batch_size):
            yield data[start : start + batch_size]
        return
    if isinstance(data, (str, bytes, dict)) or not isinstance(data, Iterable):
        raise TypeError(f"{name}: expected {FORMS} (or a tensor of inputs alone); got {type(data).__name__}")
    for i, batch in enumerate(data):
        if isinstance(batch, torch.Tensor):
            x = batch
        elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
            x = batch[0]
        elif isinstance(batch, dict) and isinstance(batch.get("x", batch.get("input")), torch.Tensor):
            x = batch.get("x", batch.get("input"))
        else:
            raise TypeError(f"{name}: batch {i} is a {type(batch).__name__}; expected an (x, y) pair or a tensor x "
                            f"({FORMS})")
        yield x


def _model_dtype(model: nn.Module) -> torch.dtype | None:
    """The one dtype of ``model``'s floating parameters (``None`` without one, or with several: a mixed-precision
    model may cast its inputs itself)."""
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


def forward_logits(model: nn.Module, x: torch.Tensor, name: str = "data", j: int = 0) -> torch.Tensor:
    """``model(x)``'s logits, with a network that cannot take ``x`` said in our words.

    The inputs' dtype and finiteness are the caller's to check first (:func:`kdbounds._data.check_inputs`).

    Args:
        model: the network (its mode and grad state are the caller's).
        x: a batch of inputs, on the model's device.
        name: the data argument's name, for errors.
        j: the model's index among several, for errors.

    Returns:
        The ``(batch, classes)`` logits (a tensor, ``.logits``, ``["logits"]`` or a tuple's first entry).

    Raises:
        TypeError: inputs of another floating dtype than the model's parameters, or an output of no known form.
        ValueError: inputs of a shape the model does not take, or logits that are not 2-D.
    """
    try:
        out = model(x)
    except RuntimeError as e:  # shape/channel/dtype mismatch inside the model: say so in our words
        want = _model_dtype(model)
        if x.is_floating_point() and want is not None and x.dtype != want:
            raise TypeError(f"{name}: inputs x have dtype {x.dtype} but model {j}'s parameters are {want}; pass "
                            f"x.to({want})") from None
        first = next((ln for ln in str(e).splitlines() if ln.strip()), "")[:300]
        raise ValueError(f"{name}: inputs of shape {tuple(x.shape)} do not fit model {j} "
                         f"({type(model).__name__}: {first}); CIFAR models expect (batch, 3, 32, 32)") from None
    z = _output_logits(out, f"model {j}")
    if z.ndim != 2:
        raise ValueError(f"model {j} returned logits of shape {tuple(z.shape)}; expected (batch, classes)")
    return z


def num_classes(models: Sequence[nn.Module], x: torch.Tensor, name: str = "data") -> list[int]:
    """The number of classes of each network, from one example of ``x`` (eval mode, no grad): a probe that
    checks the networks take ``x`` before any long evaluation.

    Args:
        models: the networks.
        x: inputs (only ``x[:1]`` is evaluated), already checked by :func:`kdbounds._data.check_inputs`.
        name: the data argument's name, for errors.

    Returns:
        The logits' width of each network.

    Raises:
        TypeError / ValueError: as :func:`forward_logits`.
    """
    out = []
    with eval_mode(*models):
        for j, m in enumerate(models):
            dev = _model_device(m)
            out.append(int(forward_logits(m, x[:1].to(dev) if dev is not None else x[:1], name, j).shape[1]))
    return out


def collect_logits(
    models: nn.Module | Sequence[nn.Module],
    data: Any,
    *,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    progress: bool = False,
    name: str = "data",
) -> list[torch.Tensor]:
    """Evaluate one or several modules on ``data`` (eval mode, no grad) and return their logits.

    The one logit collector of the project (``divergence`` re-exports it; the trainer's
    ``predict_logits`` builds a normalising loader and calls it). Every submodule's ``training`` flag
    is restored afterwards (:func:`eval_mode`).

    Args:
        models: one ``nn.Module`` or a sequence of them, all evaluated on the same batches.
        data: ``(x, y)`` tensors, an iterable of ``(x, y)`` batches or a DataLoader (the data convention
            of :mod:`kdbounds._data`; only ``x`` is used); also a tensor (or numpy array) of inputs alone,
            and batches that are an input tensor or a dict with key ``"x"`` or ``"input"``. Tensors are
            split into batches of ``batch_size``.
        device: where inputs go (a name for :func:`resolve_device` or a ``torch.device``);
            ``None`` moves them to each model's own device.
        batch_size: batch size when ``data`` is a tensor (ignored for an iterable of batches).
        progress: show a progress bar over batches (:func:`kdbounds._progress.progress_bar`).
        name: the data argument's name in error messages (``evaluate_pair`` passes ``"train"``/``"test"``).

    Returns:
        One CPU tensor ``(n, classes)`` per model, in data order, in the dtype the model returns.
        A model output may be a tensor, an object with ``.logits``, a dict with key ``"logits"`` or a
        tuple whose first element is the logits.

    Raises:
        TypeError: a model is not an ``nn.Module``, ``data`` is not a tensor or an iterable of
            batches, a batch or a model output has an unknown form, integer (un-normalised) inputs, or
            inputs of another floating dtype than a model's parameters.
        ValueError: ``batch_size < 1``, ``data`` is a scalar or yields no batch, ``x`` and ``y`` of
            different lengths, NaN/inf inputs (data held in memory is checked whole before any model
            runs; a DataLoader batch by batch), inputs whose shape does not fit a model (the model's
            own error, in our words), a model returns logits that are not 2-D.
    """
    mods = [models] if isinstance(models, nn.Module) else list(models)
    for j, m in enumerate(mods):
        if not isinstance(m, nn.Module):
            raise TypeError(f"models[{j}] must be an nn.Module, got {type(m).__name__}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    devs = [resolve_device(device) if device is not None else _model_device(m) for m in mods]
    outs: list[list[torch.Tensor]] = [[] for _ in mods]
    it: Iterable[torch.Tensor] = _batches(data, batch_size, name)
    dtypes = [_model_dtype(m) for m in mods]

    def checked(i: int, x: torch.Tensor) -> torch.Tensor:
        check_inputs(name, x, what=f"batch {i} ")
        for j, dt in enumerate(dtypes):  # before the model runs: its own error would name no argument
            if dt is not None and x.dtype != dt:
                raise TypeError(f"{name}: batch {i} inputs x have dtype {x.dtype} but the parameters of model {j} "
                                f"are {dt}; pass x.to({dt}) (or convert the model to {x.dtype})")
        return x

    if isinstance(data, (torch.Tensor, np.ndarray, tuple, list)):  # in memory: checked whole before any model runs
        it = [checked(i, x) for i, x in enumerate(it)]
    else:
        it = (checked(i, x) for i, x in enumerate(it))
    if progress:
        from ._progress import progress_bar

        it = progress_bar(it, desc="logits", unit="batch", leave=False)
    with eval_mode(*mods):
        for x in it:
            for j, (m, dev) in enumerate(zip(mods, devs)):
                xin = x.to(dev) if dev is not None else x
                outs[j].append(forward_logits(m, xin, name, j).detach().to("cpu"))
    if not outs or not outs[0]:
        raise ValueError(f"{name} is empty: no batches were produced")
    return [torch.cat(o, 0) for o in outs]


def mean_estimate(values: Tensor, name: str = "values") -> Estimate:
    r"""Sample mean of ``values`` with :math:`\mathrm{stderr} = s/\sqrt n`, :math:`s` the ``ddof=1`` standard deviation.

    The one mean estimator of the library's per-example values (float64, the caller's device). ``n = 1`` gives
    ``stderr = inf``; NaN or inf among the values passes into the record (callers that forbid them check first,
    as ``checks.mean_estimate`` does); an empty input is refused: a caller whose subset may be empty returns
    ``Estimate(nan, nan, 0)`` itself (``fidelity.agreement_by_teacher_correctness``).

    Args:
        values: the values (any shape; flattened).
        name: the argument's name in the error message.

    Returns:
        The :class:`~kdbounds._records.Estimate` ``(mean, stderr, n)``.

    Raises:
        ValueError: no value.
    """
    v = values.detach().to(torch.float64).reshape(-1)
    n = int(v.numel())
    if n == 0:
        raise ValueError(f"{name}: expected at least one value, got an empty tensor")
    se = float(v.std(unbiased=True)) / math.sqrt(n) if n > 1 else math.inf
    return Estimate(float(v.mean()), se, n)


def bounded_cross_entropy(logits: Tensor, y: Tensor, p_min: float) -> Tensor:
    r"""Per-example cross-entropy clipped at ``ln(1/p_min)`` and scaled to ``[0, 1]``.

    .. math:: \ell(z, y) = \frac{\min(-\ln \mathrm{softmax}(z)_y,\ \ln(1/p_{\min}))}{\ln(1/p_{\min})}

    Args:
        logits: ``(N, C)`` logits.
        y: ``(N,)`` integer labels.
        p_min: the smallest probability that still counts, in ``(0, 1)``.

    Returns:
        ``(N,)`` losses in ``[0, 1]`` (float32, or float64 for float64 logits).

    Raises:
        ValueError: ``p_min`` outside ``(0, 1)``.
    """
    if not 0.0 < p_min < 1.0:
        raise ValueError(f"p_min: expected a number in (0, 1), got {p_min!r}")
    cap = math.log(1.0 / p_min)
    z = logits if logits.dtype == torch.float64 else logits.float()
    ce = F.cross_entropy(z, y, reduction="none")
    return torch.clamp(ce, max=cap) / cap
