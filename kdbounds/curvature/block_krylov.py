r"""Block Krylov methods on the blocked product ``op.matmat``: block Lanczos and batched Lanczos.

**Block Lanczos** (extreme eigenvalues). From an orthonormal start block :math:`X_0 \in
\mathbb R^{n\times b}` it builds an orthonormal basis :math:`Q_m = [X_0, \dots, X_{j}]` of the
block Krylov space :math:`\operatorname{span}\{X_0, HX_0, \dots, H^{j}X_0\}` and keeps the products
:math:`HQ_m` (each block costs one ``matmat`` of ``b`` columns). Rayleigh–Ritz on the basis,

.. math::
    T_m = Q_m^\top H Q_m = S \Theta S^\top, \qquad y_i = Q_m s_i, \qquad
    r_i = \|H y_i - \theta_i y_i\| = \|(HQ_m) s_i - \theta_i Q_m s_i\|,

gives Ritz values :math:`\theta_i` with exact residual norms (no three-term recurrence is trusted:
:math:`T_m` and :math:`r_i` are formed from the stored products, so loss of orthogonality cannot
produce spurious values); each :math:`\theta_i` lies within :math:`r_i` of an eigenvalue of the
symmetric ``H``. The next block is :math:`HX_j` orthogonalised twice against the whole basis
(full reorthogonalisation); a column that vanishes (rank deficiency, an invariant subspace) is
replaced by a random vector orthogonal to the basis, which keeps the block size and the
Rayleigh–Ritz bound valid.

**Batched Lanczos** (SLQ). ``p`` independent single-vector Lanczos recurrences advanced together:
step ``j`` multiplies the ``p`` current vectors in one ``matmat``, and each recurrence keeps its
own tridiagonal :math:`T^{(i)}` and full reorthogonalisation against its own basis. The result is
identical (up to rounding) to ``p`` separate runs, at the blocked price per product.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .base import CurvatureOperator

__all__ = ["BlockLanczosRun", "block_lanczos_run", "batched_lanczos"]


class BlockLanczosRun:
    """Basis ``Q`` (``(n, m)``), products ``HQ`` and the Ritz decomposition after each block."""

    def __init__(self, op: CurvatureOperator, X0: Tensor, generator: torch.Generator) -> None:
        self.op = op
        self.gen = generator
        self.Q = torch.zeros(op.shape[0], 0, dtype=op.dtype, device=op.device)
        self.HQ = torch.zeros_like(self.Q)
        self.X = self._orthonormalise(X0)
        self.exhausted = False  # the basis spans the whole space (results exact)

    @property
    def size(self) -> int:
        """Columns of the basis built so far."""
        return self.Q.shape[1]

    def step(self, max_columns: int) -> None:
        """Multiply the current block (at most ``max_columns`` columns) and extend the basis.

        Args:
            max_columns: the most columns of the current block multiplied (a budget cut).
        """
        X = self.X[:, :max_columns]
        W = self.op.matmat(X)
        self.Q = torch.cat([self.Q, X], dim=1)
        self.HQ = torch.cat([self.HQ, W], dim=1)
        n = self.op.shape[0]
        if self.size >= n:
            self.exhausted = True
            return
        b = min(X.shape[1], n - self.size)
        self.X = self._orthonormalise(W[:, :b].clone())

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) and eigenvectors ``S`` of ``T = Q^T H Q`` (float64 numpy).

        Returns:
            ``(theta, S)``: the Ritz values and the eigenvectors of ``T`` as columns.
        """
        T = (self.Q.T @ self.HQ).double().cpu().numpy()
        T = 0.5 * (T + T.T)
        return np.linalg.eigh(T)

    def residuals(self, theta: np.ndarray, S: np.ndarray) -> np.ndarray:
        """Exact residual norms ``||H y - theta y||`` of the Ritz pairs given by columns of ``S``.

        Args:
            theta: Ritz values, one per column of ``S``.
            S: eigenvectors of ``T`` (columns); the Ritz vectors are ``y = Q S``.

        Returns:
            The residual norms (float64 numpy), one per pair.
        """
        St = torch.as_tensor(S, dtype=self.op.dtype, device=self.op.device)
        th = torch.as_tensor(theta, dtype=self.op.dtype, device=self.op.device)
        R = self.HQ @ St - (self.Q @ St) * th
        return torch.linalg.vector_norm(R, dim=0).double().cpu().numpy()

    def _orthonormalise(self, W: Tensor) -> Tensor:
        """Columns of ``W`` orthonormalised against the basis and each other (twice); vanishing
        columns replaced by random directions."""
        n = self.op.shape[0]
        tiny = 1e-10 if self.op.dtype == torch.float64 else 1e-5
        out = []
        for j in range(W.shape[1]):
            w = W[:, j]
            scale = float(torch.linalg.vector_norm(w))
            for attempt in range(3):
                B = torch.cat([self.Q] + [c[:, None] for c in out], dim=1)
                for _ in range(2):
                    w = w - B @ (B.T @ w)
                nrm = float(torch.linalg.vector_norm(w))
                if nrm > tiny * max(scale, 1e-300) and nrm > 0:
                    out.append(w / nrm)
                    break
                if B.shape[1] >= n:
                    break
                w = torch.randn(n, generator=self.gen, dtype=self.op.dtype).to(self.op.device)
                scale = float(torch.linalg.vector_norm(w))
        if not out:
            self.exhausted = True
            return torch.zeros(n, 0, dtype=self.op.dtype, device=self.op.device)
        return torch.stack(out, dim=1)


def block_lanczos_run(op: CurvatureOperator, X0: Tensor, generator: torch.Generator
                      ) -> BlockLanczosRun:
    """Start a block Lanczos run from the block ``X0`` (``(n, b)``, full column rank).

    Args:
        op: the symmetric operator.
        X0: the start block, shape ``(n, b)``.
        generator: random source for the columns that replace a rank-deficient block.

    Returns:
        The run (advance it with :meth:`BlockLanczosRun.step`).
    """
    return BlockLanczosRun(op, X0, generator)


def batched_lanczos(op: CurvatureOperator, V0: Tensor, num_steps: int
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``p`` Lanczos recurrences (columns of ``V0``) advanced together, one ``matmat`` per step.

    Args:
        op: the symmetric operator.
        V0: the start vectors as columns, shape ``(n, p)``, each nonzero.
        num_steps: Lanczos steps per recurrence (at most ``n`` are taken).

    Returns:
        Per column, ``(alpha, beta)`` of its tridiagonal (``alpha`` of length ``m_i <=
        num_steps``, shorter where the recurrence met an invariant subspace; ``beta`` of length
        ``m_i - 1``).

    Raises:
        ValueError: a start vector is zero.
    """
    n, p = V0.shape
    m = min(num_steps, n)
    Q = torch.zeros(p, m + 1, n, dtype=op.dtype, device=op.device)
    nrm = torch.linalg.vector_norm(V0, dim=0)
    if not bool((nrm > 0).all()):
        raise ValueError("every start vector must be nonzero")
    Q[:, 0] = (V0 / nrm).T
    alpha = [[] for _ in range(p)]
    beta = [[] for _ in range(p)]
    active = list(range(p))
    tiny = 1e-10 if op.dtype == torch.float64 else 1e-5
    for j in range(m):
        if not active:
            break
        idx = torch.tensor(active, device=op.device)
        qj = Q[idx, j]  # (a, n)
        W = op.matmat(qj.T.contiguous()).T  # (a, n)
        a = (qj * W).sum(dim=1)
        W = W - a[:, None] * qj
        if j > 0:
            bprev = torch.tensor([beta[i][j - 1] for i in active], dtype=op.dtype,
                                 device=op.device)
            W = W - bprev[:, None] * Q[idx, j - 1]
        basis = Q[idx, : j + 1]  # (a, j+1, n)
        for _ in range(2):
            W = W - torch.einsum("akn,ak->an", basis, torch.einsum("akn,an->ak", basis, W))
        b = torch.linalg.vector_norm(W, dim=1)
        still = []
        for r, i in enumerate(active):
            ai, bi = float(a[r]), float(b[r])
            alpha[i].append(ai)
            scale = max(abs(ai), abs(beta[i][j - 1]) if j > 0 else 0.0, 1e-300)
            if bi <= tiny * scale or j + 1 >= n:
                beta[i].append(0.0)
                continue
            beta[i].append(bi)
            Q[i, j + 1] = W[r] / bi
            still.append(i)
        active = still
    return [(np.asarray(alpha[i]), np.asarray(beta[i][: len(alpha[i]) - 1])) for i in range(p)]
