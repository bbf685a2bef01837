"""Base class of the curvature operators: a symmetric linear operator on flat vectors.

:class:`CurvatureOperator` (``op @ v``, ``matvec``, ``matmat``, ``to_dense``, ``to_scipy``,
``num_matvecs``), :class:`MatrixOperator` (a dense symmetric matrix as an operator) and
:func:`as_operator` (accept an operator, a tensor or an array).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["CurvatureOperator", "MatrixOperator", "as_operator"]


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
        """Return ``A v`` for a flat vector ``v`` of shape ``(n,)``.

        Args:
            v: the vector, shape ``(n,)``, the operator's dtype and device.

        Returns:
            ``A v``, shape ``(n,)``.
        """
        v = self._check_vectors(v, ndim=1, name="v")
        return self.matmat(v[:, None])[:, 0]

    def matmat(self, V: Tensor) -> Tensor:
        """Return ``A V`` for a matrix ``V`` of shape ``(n, k)`` (one column per vector).

        Args:
            V: the vectors as columns, shape ``(n, k)``.

        Returns:
            ``A V``, shape ``(n, k)``; counted in ``num_matvecs`` as ``k`` products.

        Raises:
            FloatingPointError: a product is NaN or infinite for a finite input.
        """
        V = self._check_vectors(V, ndim=2, name="V")
        if V.shape[1] == 0:
            return V.clone()
        out = self._matmat(V)
        self.num_matvecs += V.shape[1]
        if not torch.isfinite(out).all():
            raise FloatingPointError(
                f"{type(self).__name__}: a product returned NaN or infinite entries for a finite input "
                "vector; the matrix (or the model's loss, gradient or weights behind it) is not finite. "
                "Check the weights and the data, or measure in float64 (dtype=torch.float64)")
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
        """Materialise the ``(n, n)`` matrix by products with identity columns (small ``n`` only).

        Args:
            chunk_size: identity columns per ``matmat`` call.

        Returns:
            The dense matrix, shape ``(n, n)``.
        """
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

        Returns:
            A ``LinearOperator`` of shape ``(n, n)`` whose products call this operator.
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
        A: square symmetric matrix (``torch.Tensor`` or ``numpy.ndarray``), real, at least 1 x 1.
        check_symmetric: raise ``ValueError`` if ``A`` is not symmetric to ``1e-8`` relative.
        name: the argument's name in error messages (:func:`as_operator` passes ``"op"``).

    Raises:
        TypeError: a complex matrix.
        ValueError: not a non-empty square 2-D matrix, NaN/inf entries, not symmetric.
    """

    def __init__(self, A: Tensor | np.ndarray, *, check_symmetric: bool = True, name: str = "A") -> None:
        super().__init__()
        A = torch.as_tensor(A)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty square 2-D matrix, got shape {tuple(A.shape)}")
        if A.is_complex():
            raise TypeError(f"{name} must be a real symmetric matrix, got dtype {A.dtype}")
        if not A.is_floating_point():
            A = A.to(torch.get_default_dtype())
        if not torch.isfinite(A).all():
            raise ValueError(f"{name}: expected a matrix with finite entries, got NaN or infinite values")
        if check_symmetric:
            scale = float(A.abs().max())
            if float((A - A.T).abs().max()) > 1e-8 * max(scale, 1e-300):
                raise ValueError(f"{name} must be symmetric (pass check_symmetric=False to skip)")
        self.A = A
        self.shape = (A.shape[0], A.shape[1])
        self.dtype = A.dtype
        self.device = A.device

    def _matmat(self, V: Tensor) -> Tensor:
        return self.A @ V


def as_operator(op: Any) -> CurvatureOperator:
    """Return ``op`` if it is a :class:`CurvatureOperator`; wrap tensors/arrays as a matrix.

    Args:
        op: an operator, or a square tensor or numpy array.

    Returns:
        The operator (a :class:`MatrixOperator` for a tensor/array).

    Raises:
        TypeError: ``op`` is neither, or a complex matrix.
        ValueError: a matrix that is not square, empty, finite or symmetric (the message names ``op``).
    """
    if isinstance(op, CurvatureOperator):
        return op
    if isinstance(op, (Tensor, np.ndarray)):
        return MatrixOperator(op, name="op")
    raise TypeError(
        "op must be a kdbounds.curvature operator (HessianOperator, GapHessianOperator, "
        f"MatrixOperator) or a square tensor/array, got {type(op).__name__}"
    )
