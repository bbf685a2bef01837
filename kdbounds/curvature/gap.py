"""Gap Hessian operator: held-out minus training loss Hessian (theory.md §4, §6)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import Tensor, nn

from .._data import as_batches
from ._problem import _Problem
from .base import CurvatureOperator
from .hessian import HessianOperator
from .._params import ParamSpec

__all__ = ["GapHessianOperator"]


class GapHessianOperator(CurvatureOperator):
    r"""Hessian of the gap function :math:`f(\theta) = L_{\mathrm{held}}(\theta) - L_{\mathrm{train}}(\theta)`.

    .. math:: H_{\mathrm{gap}} v = H_{\mathrm{held}} v - H_{\mathrm{train}} v

    (theory.md §4 Theorems 3A/3B, §6). It is symmetric but indefinite: use
    ``top_eigenvalues(op, which="both")`` for its extreme eigenvalues of both signs and
    ``hutchinson_trace`` for its trace. One product costs two Hessian products.

    Args:
        model, loss_fn, params and keyword arguments: as :class:`HessianOperator`.
        train_data: the training data: ``(x, y)`` tensors, an iterable of ``(x, y)`` batches or a DataLoader.
        heldout_data: the held-out (test) data, in any of the same three forms.

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
        train_data, heldout_data = as_batches(train_data, "train_data"), as_batches(heldout_data, "heldout_data")
        for name, data in (("train_data", train_data), ("heldout_data", heldout_data)):  # both, before any pass
            _Problem(model, loss_fn, data, params, kwargs.get("dtype"), kwargs.get("output_fn"), name=name).check_data()
        train = HessianOperator(model, loss_fn, train_data, params, **kwargs)
        heldout = HessianOperator(model, loss_fn, heldout_data, params, **kwargs)
        self._set(heldout, train)

    @classmethod
    def from_operators(cls, heldout: HessianOperator, train: HessianOperator) -> GapHessianOperator:
        """Gap operator ``heldout - train`` from two operators on the same parameters.

        Args:
            heldout: the Hessian operator of the held-out loss.
            train: the Hessian operator of the training loss (same parameters, dtype and device).

        Returns:
            The gap operator.

        Raises:
            TypeError: an argument is not a :class:`HessianOperator`.
            ValueError: the two select different parameters or differ in dtype or device.
        """
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
        r"""Gradient of the gap function, :math:`\nabla L_{\mathrm{held}} - \nabla L_{\mathrm{train}}`.

        Returns:
            The flat gradient, shape ``(n,)``.
        """
        return self.heldout.gradient() - self.train.gradient()

    def gap(self) -> float:
        """Value of the gap function, held-out loss minus training loss.

        Returns:
            The gap (a float).
        """
        return self.heldout.loss() - self.train.loss()
