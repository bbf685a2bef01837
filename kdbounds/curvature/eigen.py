r"""Extreme eigenvalues: Lanczos with full reorthogonalisation, and power iteration.

Lanczos builds an orthonormal Krylov basis :math:`Q_m` with :math:`Q_m^\top H Q_m = T_m`
tridiagonal (diagonal ``alpha``, off-diagonal ``beta``). The eigenvalues :math:`\theta_i` of
:math:`T_m = S \Theta S^\top` (Ritz values) approximate the extreme eigenvalues of ``H``; the
residual of the Ritz pair :math:`(\theta_i, Q_m s_i)` is :math:`|\beta_m s_{m,i}|`, an upper bound
on the distance from :math:`\theta_i` to the spectrum. Full reorthogonalisation (two passes of
classical Gram-Schmidt against all previous vectors) keeps :math:`Q_m` orthonormal in floating
point, which prevents spurious copies of converged eigenvalues.

**Start vector** (``start=``). The cost of Lanczos (and of power iteration) to a relative accuracy
grows with :math:`\log(1/c^2)`, :math:`c = |\langle v_0, u_1\rangle|/\|v_0\|` the overlap of the
start vector with the top eigenvector (Kaniel–Paige–Saad: the error after :math:`m` steps is at most
:math:`(\lambda_1-\lambda_n)\,\tan^2\angle(v_0,u_1)\,/\,T_{m-1}^2(1+2\gamma)`,
:math:`\gamma = (\lambda_1-\lambda_2)/(\lambda_2-\lambda_n)`). For a random probe
:math:`c^2 \approx \chi^2_1/n` -- of order :math:`1/n` and heavy-tailed towards 0, which is what makes
the cost depend on the seed; a sum of random probes, or a few power steps before Lanczos, has the same
law (or spends products inside the same Krylov space). ``start="gradient"`` starts from
:math:`v_0 = g/\|g\| + z/\|z\|` with :math:`g` the operator's loss gradient (``op.gradient()``,
cached from construction: no extra product) and :math:`z` the seeded Rademacher probe. The gradient of a
network loss lies mostly in the top Hessian eigenspace (Gur-Ari, Roberts & Dyer 2018, *Gradient descent
happens in a tiny subspace*), so :math:`c` is of order one instead of :math:`n^{-1/2}`, and the
random half keeps :math:`c > 0` almost surely even where :math:`g \perp u_1` (costing at most a factor
2 in :math:`c^2` against a purely random start, i.e. under one Lanczos step).

**Stopping rule** (``stop=``). ``"residual"`` (default): every wanted Ritz pair's residual
:math:`\|Hy_i-\theta_i y_i\| \le \mathrm{tol}\,|\theta_i|` -- a bound: each :math:`\theta_i` is within
its residual of an eigenvalue. ``"change"``: every wanted Ritz value moved by at most
:math:`\mathrm{tol}\,|\theta_i|` since the previous step -- PyHessian's power-iteration rule applied to
Ritz values; cheaper, and a heuristic (no bound: a slow phase can stop it early), so the reported
``residuals`` stay the bound to read.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from .._checks import check_choice, check_positive
from .base import CurvatureOperator, as_operator
from .block_krylov import block_lanczos_run
from .results import EigenEstimate, PowerIterationResult
from .trace import _check_int, make_generator, probe_vectors

__all__ = ["lanczos", "top_eigenvalues", "power_iteration", "LanczosState", "start_vector",
           "EIGEN_STARTS", "EIGEN_STOPS"]

_WHICH = ("largest", "smallest", "both")
EIGEN_STARTS = ("random", "gradient")
EIGEN_STOPS = ("residual", "change")


class LanczosState:
    """Krylov basis and tridiagonal coefficients of a Lanczos run (extended step by step)."""

    def __init__(self, op: CurvatureOperator, v0: Tensor, max_steps: int) -> None:
        n = op.shape[0]
        self.op = op
        self.Q = torch.zeros(max_steps + 1, n, dtype=op.dtype, device=op.device)
        nrm = torch.linalg.vector_norm(v0)
        if not nrm > 0:
            raise ValueError("v0 must be a nonzero vector")
        self.Q[0] = v0 / nrm
        self.alpha: list[float] = []
        self.beta: list[float] = []  # beta[j] couples q_j and q_{j+1}
        self.breakdown = False

    @property
    def steps(self) -> int:
        """Lanczos steps taken so far."""
        return len(self.alpha)

    def step(self) -> None:
        """One Lanczos step (one product) with full reorthogonalisation; sets ``breakdown`` at an
        invariant subspace."""
        j = self.steps
        q = self.Q[j]
        w = self.op.matvec(q)
        a = float(q @ w)
        w = w - a * q
        if j > 0:
            w = w - self.beta[j - 1] * self.Q[j - 1]
        basis = self.Q[: j + 1]
        for _ in range(2):  # full reorthogonalisation, twice is enough
            w = w - basis.T @ (basis @ w)
        b = float(torch.linalg.vector_norm(w))
        self.alpha.append(a)
        scale = max(abs(a), abs(self.beta[j - 1]) if j > 0 else 0.0, 1e-300)
        tiny = 1e-10 if self.op.dtype == torch.float64 else 1e-5
        if b <= tiny * scale or j + 1 >= self.op.shape[0]:
            self.breakdown = True  # invariant subspace found
            self.beta.append(0.0)
            return
        self.beta.append(b)
        if j + 1 < self.Q.shape[0]:
            self.Q[j + 1] = w / b

    def ritz(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ritz values (ascending), residual bounds, and eigenvectors ``S`` of ``T``.

        Returns:
            ``(theta, residuals, S)`` (float64 numpy).
        """
        a = np.asarray(self.alpha)
        b = np.asarray(self.beta[: len(a) - 1])
        if len(a) == 1:
            theta, S = a.copy(), np.ones((1, 1))
        else:
            theta, S = scipy.linalg.eigh_tridiagonal(a, b)
        res = np.abs(self.beta[len(a) - 1] * S[-1, :])
        return theta, res, S


def lanczos(op: Any, num_steps: int, *, seed: int | torch.Generator | None = None,
            v0: Tensor | None = None) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """Run ``num_steps`` Lanczos steps (stops early at an invariant subspace).

    Args:
        op: symmetric operator (or square tensor/array).
        num_steps: steps wanted (``>= 1``; at most ``n`` are taken).
        seed: probe seed (Rademacher start vector) unless ``v0`` is given.
        v0: start vector, shape ``(n,)``.

    Returns:
        ``(alpha, beta, Q)``: diagonal ``(m,)``, off-diagonal ``(m-1,)`` of ``T`` and the basis
        ``(m, n)`` (rows orthonormal).
    """
    op = as_operator(op)
    steps = _check_int("num_steps", num_steps, 1)
    steps = min(steps, op.shape[0])
    if v0 is None:
        v0 = probe_vectors(op.shape[0], 1, "rademacher", make_generator(seed), op.dtype,
                           op.device)[:, 0]
    else:
        v0 = op._check_vectors(v0, ndim=1, name="v0")
    st = LanczosState(op, v0, steps)
    while st.steps < steps and not st.breakdown:
        st.step()
    m = st.steps
    return np.asarray(st.alpha), np.asarray(st.beta[: m - 1]), st.Q[:m]


def top_eigenvalues(
    op: Any,
    k: int = 1,
    *,
    which: str = "largest",
    tol: float = 1e-3,
    max_matvecs: int = 100,
    seed: int | torch.Generator | None = None,
    v0: Tensor | None = None,
    return_eigenvectors: bool = False,
    block_size: int = 1,
    start: str = "random",
    stop: str = "residual",
) -> EigenEstimate:
    r"""Top-``k`` eigenvalues of a symmetric operator by Lanczos with full reorthogonalisation.

    Stops (``stop="residual"``, the default) when every wanted Ritz residual satisfies
    :math:`|\beta_m s_{m,i}| \le \mathrm{tol}\,|\theta_i|` (the eigenvalue error is at most the
    residual, and typically of order of the squared residual over the spectral gap), at an invariant
    subspace, or after ``max_matvecs`` steps; ``stop="change"`` stops instead when the wanted Ritz
    values moved by at most ``tol`` relative since the previous step (see the module docstring).

    Args:
        op: operator (or square tensor/array), symmetric.
        k: number of eigenvalues per end (``>= 1``).
        which: ``"largest"`` (algebraic), ``"smallest"`` (algebraic), or ``"both"`` (the ``k``
            largest and the ``k`` smallest: the extreme eigenvalues of both signs of an
            indefinite gap Hessian).
        tol: relative residual tolerance.
        max_matvecs: Lanczos steps allowed (``>= k``, ``>= 2k`` for ``"both"``, unless ``n`` is
            smaller).
        seed: probe seed (Rademacher start vector) unless ``v0`` is given.
        v0: start vector, shape ``(n,)`` (default: built by ``start`` from ``seed``).
        return_eigenvectors: also return the Ritz vectors ``(n, #eigenvalues)``.
        block_size: ``1`` runs single-vector Lanczos (the three-term recurrence above); ``b > 1``
            runs block Lanczos (:mod:`kdbounds.curvature.block_krylov`): ``b`` products per
            ``op.matmat`` call, Rayleigh–Ritz with exact residuals, convergence checked after
            each block, so ``n_matvecs`` is a multiple of ``b`` (the last block may be cut to
            respect ``max_matvecs``). Default ``1``: measured on a trained ResNet-20 (batch 32, CPU,
            top 3 at tol 1e-3, one thread, CPU s) single-vector Lanczos needed 13-14 products and 4.7-6.3 s, blocks
            of 3 needed 21-24 products and 6.7-9.2 s (with or without kept graphs), so blocks pay
            only for multiple or tightly clustered eigenvalues (a block of size ``b`` sees up to
            ``b`` copies of a repeated eigenvalue at once; a single vector sees one). With ``v0``
            given the start block is ``v0`` plus random columns.
        start: ``"random"`` (default: the Rademacher probe from ``seed``) or ``"gradient"``
            (:func:`start_vector`: the normalised ``op.gradient()`` plus the normalised probe; the
            operator must have a ``gradient()`` method, as :class:`HessianOperator` and
            :class:`GapHessianOperator` do). Ignored when ``v0`` is given.
        stop: ``"residual"`` (default; the bound above) or ``"change"`` (relative change of the
            wanted Ritz values between steps, PyHessian's rule; needs one step more than ``need``).

    .. math::
        \text{stop when } \|H y_i - \theta_i y_i\| \le \mathrm{tol}\,|\theta_i|
        \text{ for every wanted Ritz pair } (\theta_i, y_i)
        \quad(\texttt{stop="residual"}).

    Returns:
        :class:`EigenEstimate` (``history`` holds one value per step: per product for
        ``block_size=1``, per block of ``block_size`` products otherwise).

    Raises:
        ValueError: bad ``k``, ``which``, ``tol`` (not a finite number > 0), ``max_matvecs``, ``block_size``,
            ``seed``, ``v0``, ``start`` or ``stop``; ``start="gradient"`` on an operator without a
            gradient; an ``op`` matrix that is not square, finite or symmetric.
        TypeError: one of them of the wrong type.
    """
    op = as_operator(op)
    if which not in _WHICH:
        raise ValueError(f"which must be one of {_WHICH}, got {which!r}")
    start = check_choice("start", start, EIGEN_STARTS)
    stop = check_choice("stop", stop, EIGEN_STOPS)
    k = _check_int("k", k, 1)
    n = op.shape[0]
    need = min(n, 2 * k if which == "both" else k)
    if need < (2 * k if which == "both" else k):
        raise ValueError(f"k={k} too large for an operator of size n={n}")
    max_steps = min(_check_int("max_matvecs", max_matvecs, need), n)
    tol = check_positive("tol", tol)
    block_size = min(_check_int("block_size", block_size, 1), n)
    gen = make_generator(seed)
    if v0 is None:
        v0 = start_vector(op, start, gen)
    else:
        v0 = op._check_vectors(v0, ndim=1, name="v0")
    if block_size > 1:
        return _block_top_eigenvalues(op, k, which, tol, max_steps, need, v0, gen, block_size,
                                      return_eigenvectors, stop)
    st = LanczosState(op, v0, max_steps)
    history: list[float] = []
    converged = False
    previous = None
    while st.steps < max_steps and not st.breakdown:
        st.step()
        theta, res, _ = st.ritz()
        history.append(float(theta[0] if which == "smallest" else theta[-1]))
        if st.steps >= need:
            idx = _wanted(len(theta), k, which)
            if _stopped(stop, theta[idx], res[idx], previous, tol) or st.breakdown:
                converged = True
                break
            previous = theta[idx]
    theta, res, S = st.ritz()
    if st.breakdown:
        res = np.zeros_like(res)
        converged = True
    idx = _wanted(len(theta), k, which)
    vecs = None
    if return_eigenvectors:
        Sm = torch.as_tensor(S[:, idx], dtype=op.dtype, device=op.device)
        vecs = st.Q[: st.steps].T @ Sm
    return EigenEstimate(theta[idx].copy(), res[idx].copy(), st.steps, bool(converged), which,
                         tuple(history), vecs)


def _stopped(stop: str, theta: np.ndarray, res: np.ndarray, previous: np.ndarray | None,
             tol: float) -> bool:
    """Whether the wanted Ritz values ``theta`` (residuals ``res``; ``previous``: the wanted values
    one step earlier, or ``None``) meet the stopping rule ``stop`` at relative tolerance ``tol``."""
    scale = tol * np.maximum(np.abs(theta), 1e-300)
    if stop == "residual":
        return bool((res <= scale).all())
    return previous is not None and len(previous) == len(theta) and bool(
        (np.abs(theta - previous) <= scale).all())


def start_vector(op: CurvatureOperator, start: str, generator: torch.Generator) -> Tensor:
    r"""Start vector of :func:`top_eigenvalues` / :func:`power_iteration` (module docstring).

    Args:
        op: the operator (for ``"gradient"``: with a ``gradient()`` method returning a flat tensor).
        start: ``"random"``: the Rademacher probe :math:`z` drawn from ``generator``;
            ``"gradient"``: :math:`g/\|g\| + z/\|z\|` with :math:`g` = ``op.gradient()`` (just
            :math:`z` when :math:`g = 0`).
        generator: the random source of :math:`z` (one probe is drawn either way).

    Returns:
        The start vector, shape ``(n,)``, the operator's dtype and device.

    Raises:
        ValueError: unknown ``start``; ``"gradient"`` for an operator without ``gradient()`` or
            whose gradient has the wrong shape or is not finite.
    """
    start = check_choice("start", start, EIGEN_STARTS)
    n = op.shape[0]
    z = probe_vectors(n, 1, "rademacher", generator, op.dtype, op.device)[:, 0]
    if start == "random":
        return z
    grad_fn = getattr(op, "gradient", None)
    if not callable(grad_fn):
        raise ValueError(
            f"start='gradient' needs an operator with a gradient() method (HessianOperator, "
            f"GapHessianOperator); {type(op).__name__} has none: pass start='random' or v0=")
    g = grad_fn()
    if not isinstance(g, Tensor) or g.shape != (n,) or not bool(torch.isfinite(g).all()):
        raise ValueError(f"start='gradient': {type(op).__name__}.gradient() must return a finite "
                         f"tensor of shape ({n},), got {getattr(g, 'shape', type(g).__name__)}")
    g = g.to(dtype=op.dtype, device=op.device)
    gn = torch.linalg.vector_norm(g)
    if not gn > 0:
        return z
    return g / gn + z / torch.linalg.vector_norm(z)


def _block_top_eigenvalues(op: CurvatureOperator, k: int, which: str, tol: float, max_steps: int,
                           need: int, v0: Tensor, gen: torch.Generator, b: int,
                           return_eigenvectors: bool, stop: str) -> EigenEstimate:
    """Block Lanczos version of :func:`top_eigenvalues` (same stopping rule and record)."""
    n = op.shape[0]
    X0 = torch.cat([v0[:, None], probe_vectors(n, b - 1, "rademacher", gen, op.dtype, op.device)],
                   dim=1)
    run = block_lanczos_run(op, X0, gen)
    history: list[float] = []
    converged = False
    theta = res = S = idx = previous = None
    while run.size < max_steps and not run.exhausted and run.X.shape[1] > 0:
        run.step(max_steps - run.size)
        theta, S = run.ritz()
        history.append(float(theta[0] if which == "smallest" else theta[-1]))
        idx = _wanted(len(theta), k, which)
        res = run.residuals(theta[idx], S[:, idx])
        if run.exhausted:
            converged = True
            break
        if run.size >= need:
            if _stopped(stop, theta[idx], res, previous, tol):
                converged = True
                break
            previous = theta[idx]
    vecs = None
    if return_eigenvectors:
        Sm = torch.as_tensor(S[:, idx], dtype=op.dtype, device=op.device)
        vecs = run.Q @ Sm
    return EigenEstimate(theta[idx].copy(), res.copy(), run.size, bool(converged), which,
                         tuple(history), vecs, b)


def _wanted(m: int, k: int, which: str) -> np.ndarray:
    k = min(k, m)
    top = np.arange(m - 1, m - 1 - k, -1)
    bottom = np.arange(0, k)
    if which == "largest":
        return top
    if which == "smallest":
        return bottom
    if 2 * k > m:  # overlap: fewer steps than 2k, report what exists
        return np.concatenate([top, bottom[: max(0, m - k)]])
    return np.concatenate([top, bottom])


def power_iteration(
    op: Any,
    *,
    max_matvecs: int = 100,
    tol: float = 1e-3,
    seed: int | torch.Generator | None = None,
    v0: Tensor | None = None,
    start: str = "random",
) -> PowerIterationResult:
    r"""Dominant eigenvalue (largest :math:`|\lambda|`) by power iteration (PyHessian style).

    Iterates :math:`v \leftarrow Hv/\|Hv\|` and reports the Rayleigh quotient
    :math:`\lambda_t = v_t^\top H v_t` (each product gives the quotient of the current iterate),
    stopping when :math:`|\lambda_t - \lambda_{t-1}| \le \mathrm{tol}\,|\lambda_t|`. Kept for
    comparison with :func:`top_eigenvalues`, which needs far fewer products.

    Args:
        op: symmetric operator (or square tensor/array).
        max_matvecs: products allowed (``>= 2``).
        tol: relative tolerance on successive Rayleigh quotients.
        seed: probe seed (Rademacher start vector) unless ``v0`` is given.
        v0: start vector, shape ``(n,)``.
        start: ``"random"`` or ``"gradient"``, as in :func:`top_eigenvalues` (:func:`start_vector`);
            ignored when ``v0`` is given.

    Returns:
        :class:`PowerIterationResult` (the last quotient, its history and whether it converged).

    Raises:
        ValueError: bad ``max_matvecs``, ``tol`` (not a finite number > 0), ``seed``, ``v0`` or
            ``start`` (``"gradient"`` on an operator without a gradient).
        TypeError: one of them of the wrong type.
    """
    op = as_operator(op)
    budget = _check_int("max_matvecs", max_matvecs, 2)
    tol = check_positive("tol", tol)
    start = check_choice("start", start, EIGEN_STARTS)
    if v0 is None:
        v = start_vector(op, start, make_generator(seed))
    else:
        v = op._check_vectors(v0, ndim=1, name="v0")
    v = v / torch.linalg.vector_norm(v)
    history: list[float] = []
    converged = False
    residual = math.inf
    for _ in range(budget):
        w = op.matvec(v)
        lam = float(v @ w)
        residual = float(torch.linalg.vector_norm(w - lam * v))
        history.append(lam)
        nw = torch.linalg.vector_norm(w)
        if len(history) >= 2 and abs(history[-1] - history[-2]) <= tol * abs(lam):
            converged = True
            break
        if not nw > 0:
            converged = True  # v in the null space: eigenvalue 0
            break
        v = w / nw
    return PowerIterationResult(history[-1], residual, len(history), converged, tuple(history), v)
