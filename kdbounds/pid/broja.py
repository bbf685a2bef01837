# Over 500 lines on purpose: one solver (primal cone program, dual certificate, input checks) whose parts share private helpers.
r"""BROJA partial information decomposition of a discrete joint law P(Y, T, S).

Definitions (Bertschinger, Rauh, Olbrich, Jost & Ay 2014; methods.md §3). With
:math:`\Delta_P = \{Q : Q(y,t) = P(y,t),\ Q(y,s) = P(y,s)\}` and

.. math::
    Q^\star = \arg\min_{Q\in\Delta_P} I_Q(Y;T,S),

the four atoms are

.. math::
    \mathrm{Red} &= I(Y;T) + I(Y;S) - I_{Q^\star}(Y;T,S),\\
    \mathrm{Uni}(T\setminus S) &= I_{Q^\star}(Y;T\mid S) = I(Y;T) - \mathrm{Red},\\
    \mathrm{Uni}(S\setminus T) &= I_{Q^\star}(Y;S\mid T) = I(Y;S) - \mathrm{Red},\\
    \mathrm{Syn} &= I_P(Y;T,S) - I_{Q^\star}(Y;T,S).

All four are non-negative and sum to :math:`I_P(Y;T,S)`.

Solving. :math:`I_Q(Y;T,S) = H(Y) - H_Q(Y\mid T,S)` and :math:`H(Y)` is fixed on
:math:`\Delta_P`, so we minimise the convex function
:math:`-H_Q(Y\mid T,S) = \sum_{y,t,s} q(y,t,s)\log\frac{q(y,t,s)}{q(t,s)}` (``cvxpy.rel_entr``,
an exponential-cone programme) over the cells where :math:`P(y,t) > 0` and :math:`P(y,s) > 0`
(every other cell of every :math:`Q\in\Delta_P` is zero). After the conic solve the solution is

1. mixed with :math:`10^{-12}` of the product law :math:`P(y)P(t|y)P(s|y)\in\Delta_P` (keeps every
   support cell positive),
2. polished by iterative proportional fitting onto the two marginal constraints (the solver's
   equality residual ~1e-9 becomes ~1e-15), optionally (``newton_polish=True``) refined by a few
   feasible equality-constrained Newton steps on the exact objective, and
3. compared with the two known feasible points :math:`P` and the product law; the candidate with the
   smallest :math:`I_Q(Y;T,S)` is kept. The reported value is therefore always attained by a law
   in :math:`\Delta_P` (up to the reported marginal violation), so :math:`\mathrm{Syn} \ge 0` exactly and Red is at most
   the solver's sub-optimality below its true value. That sub-optimality is certified by a Lagrange
   dual bound (:func:`dual_lower_bound`) and reported as ``duality_gap``.

Negative atoms. By construction they can only come from floating-point rounding:
:math:`\mathrm{Syn} \ge 0` because P is a candidate, :math:`\mathrm{Red} \ge I_{\mathrm{prod}}(T;S) \ge 0`
because the product law is one (its :math:`I(Y;T,S) = I(Y;T) + I(Y;S) - I_{\mathrm{prod}}(T;S)`), and the
uniques are conditional mutual informations of :math:`Q^\star`. Values
in ``[-tol, 0)`` are set to 0 (default ``tol = 1e-7`` nats, the largest is reported as ``clipped``);
anything below ``-tol`` is kept as it is, recorded in ``status`` (``"negative_atom"``) and a
``RuntimeWarning`` is issued.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._info import LN2, conditional_mi_yt_given_s, entropy, mi_terms

__all__ = [
    "PIDResult",
    "PIDSolverError",
    "broja_pid",
    "broja_pid_from_counts",
    "dual_lower_bound",
    "validate_joint",
]

_UNITS = ("nats", "bits")
_SUM_ATOL = 1e-8
_PRODUCT_MIX = 1e-12
# Clarabel's default gap tolerances (1e-8) leave errors ~1e-5 nats in I_Q*; these tighter ones give
# certified duality gaps ~1e-10 nats on 10x10x10 laws at similar speed.
# Clarabel sometimes stalls ("optimal_inaccurate") at the tightest setting after a 1e-16 change of
# the input; the next rungs of the ladder are tried until the certified gap is below gap_tol.
_OPTS_LADDER: dict[str, list[dict[str, Any]]] = {
    "CLARABEL": [
        {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10},
        {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "tol_ktratio": 1e-8},
        {"tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11, "tol_ktratio": 1e-9, "static_regularization_constant": 1e-9},
    ],
    "SCS": [{"eps": 1e-9, "max_iters": 100_000}],
}


class PIDSolverError(RuntimeError):
    """The convex solver failed; ``status`` holds the solver's own status string."""

    def __init__(self, message: str, status: str, solver: str) -> None:
        super().__init__(f"{message} (solver={solver}, status={status})")
        self.status = status
        self.solver = solver


@dataclass(frozen=True)
class PIDResult:
    r"""A BROJA (or Gaussian MMI) PID of a joint law of (Y, T, S).

    Attributes:
        redundancy, unique_t, unique_s, synergy: the four atoms, in ``units``.
        mi_yt, mi_ys, mi_yts: I(Y;T), I(Y;S), I_P(Y;T,S) of the input law, in ``units``.
        mi_yts_q: I_{Q*}(Y;T,S) of the optimiser, in ``units``.
        units: ``"nats"`` or ``"bits"``.
        status: ``"optimal"`` (certified duality gap <= ``gap_tol``), ``"inaccurate"`` (gap above
            ``gap_tol``; a RuntimeWarning was issued) or ``"negative_atom"`` (see module doc).
        solver: the solver that produced Q* (``"CLARABEL"``, ``"SCS"``, ``"closed_form"``...).
        solver_status: the solver's own status string (e.g. ``"optimal_inaccurate"``; informative
            only: acceptance is decided by the certified gap).
        chosen: which feasible candidate attained the minimum: ``"solver"``, ``"input"`` or
            ``"product"`` (the law P(y)P(t|y)P(s|y)).
        marginal_violation: :math:`\max |Q^\star(y,t) - P(y,t)|, |Q^\star(y,s) - P(y,s)|` after polishing.
        identity_residual: max abs residual of :math:`\mathrm{Uni}(T\setminus S) = I(Y;T) - \mathrm{Red}`,
            :math:`\mathrm{Uni}(S\setminus T) = I(Y;S) - \mathrm{Red}` and
            :math:`\mathrm{Red} + \mathrm{Uni} + \mathrm{Uni} + \mathrm{Syn} = I(Y;T,S)`, with the uniques
            computed directly as :math:`I_{Q^\star}(Y;T\mid S)`, :math:`I_{Q^\star}(Y;S\mid T)` (before
            clipping), in ``units``.
        duality_gap: certified bound on :math:`I_{Q^\star}(Y;T,S) - \min_{\Delta_P} I_Q(Y;T,S)` (Lagrange dual), in
            ``units``: the true Red lies in [redundancy, redundancy + duality_gap].
        clipped: the largest magnitude of a negative atom that was set to 0, in ``units``.
        n_cells: number of free cells of the convex programme.
        n_attempts: conic solves run (rungs of the solver-settings ladder; 0 when :math:`\Delta_P` is a point).
        shape: (|Y|, |T|, |S|).
        solve_seconds: wall time of the solve.
        q_star: the optimiser Q* (array [y, t, s]); excluded from ``to_dict``.
    """

    redundancy: float
    unique_t: float
    unique_s: float
    synergy: float
    mi_yt: float
    mi_ys: float
    mi_yts: float
    mi_yts_q: float
    units: str = "nats"
    status: str = "optimal"
    solver: str = ""
    solver_status: str = ""
    chosen: str = "solver"
    marginal_violation: float = 0.0
    identity_residual: float = 0.0
    duality_gap: float = 0.0
    clipped: float = 0.0
    n_cells: int = 0
    n_attempts: int = 0
    shape: tuple[int, ...] = ()
    solve_seconds: float = 0.0
    q_star: np.ndarray | None = field(default=None, repr=False, compare=False)

    _ENERGY_FIELDS = (
        "redundancy",
        "unique_t",
        "unique_s",
        "synergy",
        "mi_yt",
        "mi_ys",
        "mi_yts",
        "mi_yts_q",
        "identity_residual",
        "duality_gap",
        "clipped",
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``q_star`` left out).

        Returns:
            Every field but ``q_star``, as plain JSON values (``shape`` as a list).
        """
        d = asdict(self)
        d.pop("q_star", None)
        d["shape"] = list(self.shape)
        return d

    def in_units(self, units: str) -> "PIDResult":
        """The same result expressed in ``"nats"`` or ``"bits"``.

        Args:
            units: ``"nats"`` or ``"bits"``.

        Returns:
            A new :class:`PIDResult` with every information quantity converted.
        """
        units = _check_units(units)
        if units == self.units:
            return self
        factor = 1.0 / LN2 if units == "bits" else LN2
        changes = {k: getattr(self, k) * factor for k in self._ENERGY_FIELDS}
        return replace(self, units=units, **changes)

    def atoms(self) -> dict[str, float]:
        """The four atoms as a dict.

        Returns:
            ``{"redundancy", "unique_t", "unique_s", "synergy"}``, in ``units``.
        """
        return {
            "redundancy": self.redundancy,
            "unique_t": self.unique_t,
            "unique_s": self.unique_s,
            "synergy": self.synergy,
        }



def _support(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Marginals P(y,t), P(y,s) and the support of Δ_P: the cells (y,t,s) with P(y,t) > 0 and P(y,s) > 0
    (every other cell is 0 in every law with these marginals). Returns ``(pyt, pys, mask, idx)``, ``idx`` the
    ``(n, 3)`` indices of the support cells in C order."""
    pyt = p.sum(axis=2)
    pys = p.sum(axis=1)
    mask = (pyt[:, :, None] > 0) & (pys[:, None, :] > 0)
    return pyt, pys, mask, np.argwhere(mask)

def _check_units(units: str) -> str:
    if units not in _UNITS:
        raise ValueError(f"units must be one of {_UNITS}, got {units!r}")
    return units


def validate_joint(p: Any, *, normalize: bool = False, name: str = "p") -> np.ndarray:
    """Check a joint law indexed ``[y, t, s]`` and return it as float64.

    Args:
        p: the joint law (or counts, with ``normalize=True``), a 3-D numeric array.
        normalize: divide by the total instead of requiring a total of 1 (within 1e-8).
        name: the argument's name in error messages.

    Returns:
        The law as a float64 array summing to 1.

    Raises:
        TypeError: ``p`` is not numeric.
        ValueError: not 3-D, an empty axis, NaN/inf, negative entries, a total that is not 1
            (unless ``normalize``) or an all-zero array.
    """
    try:
        arr = np.asarray(p, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array indexed [y, t, s]; got {type(p).__name__}") from exc
    if arr.ndim != 3:
        raise ValueError(f"{name} must be 3-D, indexed [y, t, s]; got shape {arr.shape}")
    if min(arr.shape) < 1:
        raise ValueError(f"{name} has an empty axis: shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf; clean the input first")
    if np.any(arr < 0):
        raise ValueError(f"{name} has negative entries (min {arr.min():.3g}); probabilities/counts must be >= 0")
    total = float(arr.sum())
    if normalize:
        if total <= 0:
            raise ValueError(f"{name} sums to {total}; cannot normalise an all-zero array")
        return arr / total
    if abs(total - 1.0) > _SUM_ATOL:
        raise ValueError(
            f"{name} sums to {total!r}, not 1 (tolerance {_SUM_ATOL}); pass normalize=True or use "
            "broja_pid_from_counts for counts"
        )
    return arr / total


def _product_law(p: np.ndarray) -> np.ndarray:
    """P(y) P(t|y) P(s|y) = P(y,t) P(y,s) / P(y): a point of Δ_P (conditional independence)."""
    pyt = p.sum(axis=2)
    pys = p.sum(axis=1)
    py = p.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(py > 0, 1.0 / py, 0.0)
    return pyt[:, :, None] * pys[:, None, :] * inv[:, None, None]


def _marginal_violation(q: np.ndarray, pyt: np.ndarray, pys: np.ndarray) -> float:
    return float(max(np.abs(q.sum(axis=2) - pyt).max(), np.abs(q.sum(axis=1) - pys).max()))


def _ipf_polish(q: np.ndarray, pyt: np.ndarray, pys: np.ndarray, *, iters: int = 500, tol: float = 1e-15) -> np.ndarray:
    """Iterative proportional fitting of q onto Q(y,t) = P(y,t), Q(y,s) = P(y,s).

    Requires q > 0 wherever the product law is > 0 (guaranteed by the caller's mixing).
    """
    q = q.copy()
    for _ in range(iters):
        m = q.sum(axis=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            q *= np.where(m > 0, pyt / m, 0.0)[:, :, None]
        m = q.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            q *= np.where(m > 0, pys / m, 0.0)[:, None, :]
        if _marginal_violation(q, pyt, pys) <= tol:
            break
    return q


def _newton_polish(q: np.ndarray, p: np.ndarray, *, iters: int = 10, decrement_tol: float = 1e-15) -> np.ndarray:
    r"""Feasible equality-constrained Newton steps on :math:`f(q) = \sum q\log(q/q(t,s))` over Δ_P.

    ``q`` must be feasible and positive on the support cells. The Hessian is block diagonal over
    the (t, s) columns, :math:`\mathrm{diag}(1/q) - \mathbf{1}\mathbf{1}^\top/q(t,s)`; each step
    solves the sparse KKT system, keeps 1% of the distance to the boundary and backtracks on f.
    Never returns a point with larger f than the input.
    """
    import scipy.sparse.linalg as spl

    ny, nt, ns = p.shape
    pyt, pys, mask, idx = _support(p)
    n = idx.shape[0]
    rows = np.arange(n)
    _, ts = np.unique(idx[:, 1] * ns + idx[:, 2], return_inverse=True)
    b_ts = sp.csr_matrix((np.ones(n), (ts, rows)))
    _, kyt = np.unique(idx[:, 0] * nt + idx[:, 1], return_inverse=True)
    uys, kys = np.unique(idx[:, 0] * ns + idx[:, 2], return_inverse=True)
    c_yt = sp.csr_matrix((np.ones(n), (kyt, rows)))
    c_ys = sp.csr_matrix((np.ones(n), (kys, rows)))
    keep = np.ones(uys.size, dtype=bool)
    keep[np.unique(uys // ns, return_index=True)[1]] = False
    a_eq = sp.vstack([c_yt, c_ys[keep]]).tocsr()
    m = a_eq.shape[0]
    # pairs of cells in the same (t, s) column, for the rank-one part of the Hessian
    order = np.argsort(ts, kind="stable")
    counts = np.bincount(ts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pair_i, pair_j = [], []
    for st, c in zip(starts, counts):
        members = order[st : st + c]
        pair_i.append(np.repeat(members, c))
        pair_j.append(np.tile(members, c))
    pi = np.concatenate(pair_i)
    pj = np.concatenate(pair_j)

    def f_val(v: np.ndarray) -> float:
        vts = b_ts @ v
        return float(np.sum(v * np.log(v)) - np.sum(vts * np.log(vts)))

    v = q[mask].copy()
    if np.any(v <= 0):
        return q
    fv = f_val(v)
    for _ in range(iters):
        vts = b_ts @ v
        grad = np.log(v) - np.log(vts[ts])
        hess = sp.csr_matrix((-1.0 / vts[ts[pi]], (pi, pj)), shape=(n, n)) + sp.diags(1.0 / v)
        reg = 1e-13 * float(np.min(1.0 / v))  # tiny ridge against column-scaling null directions
        kkt = sp.bmat([[hess + reg * sp.eye(n), a_eq.T], [a_eq, None]]).tocsc()
        rhs = np.concatenate([-grad, np.zeros(m)])
        try:
            d = spl.spsolve(kkt, rhs)[:n]
        except Exception:  # singular KKT: stop polishing, keep the best point so far
            break
        if not np.all(np.isfinite(d)):
            break
        decrement = -float(grad @ d)
        if decrement <= decrement_tol:
            break
        neg = d < 0
        alpha = min(1.0, 0.99 * float(np.min(-v[neg] / d[neg]))) if np.any(neg) else 1.0
        improved = False
        while alpha > 1e-10:
            cand = v + alpha * d
            fc = f_val(cand)
            if fc <= fv - 0.25 * alpha * decrement or fc < fv:
                v, fv, improved = cand, fc, True
                break
            alpha *= 0.5
        if not improved:
            break
    out = np.zeros_like(q)
    out[mask] = v
    return out


def _mi_yts(q: np.ndarray) -> float:
    return mi_terms(q)[2]


def _solve_conic(p: np.ndarray, solver: str, solver_opts: dict[str, Any]) -> tuple[np.ndarray, str, int]:
    """Solve min_{Q in Δ_P} −H_Q(Y|T,S) with cvxpy; return (Q, solver status, number of cells)."""
    import cvxpy as cp  # local: cvxpy import is slow and only needed here

    ny, nt, ns = p.shape
    pyt, pys, mask, idx = _support(p)
    n = idx.shape[0]
    cols = np.arange(n)

    def incidence(keys: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        uniq, inv = np.unique(keys, return_inverse=True)
        mat = sp.csr_matrix((np.ones(n), (inv, cols)), shape=(uniq.size, n))
        return mat, uniq

    b_ts, _ = incidence(idx[:, 1] * ns + idx[:, 2])
    c_yt, k_yt = incidence(idx[:, 0] * nt + idx[:, 1])
    c_ys, k_ys = incidence(idx[:, 0] * ns + idx[:, 2])
    rhs_yt = pyt.ravel()[k_yt]
    rhs_ys = pys.ravel()[k_ys]
    # The (y,s) rows of one y sum to P(y), which the (y,t) rows already fix: drop one per y so the
    # equality system has full row rank.
    y_of_ys = k_ys // ns
    keep = np.ones(k_ys.size, dtype=bool)
    _, first = np.unique(y_of_ys, return_index=True)
    keep[first] = False
    c_ys, rhs_ys = c_ys[keep], rhs_ys[keep]

    # Scale the variables to O(1) entries for the conic solver: x = n * q. Then
    # sum rel_entr(q, q_ts) = (1/n) sum rel_entr(x, x_ts).
    scale = float(n)
    x = cp.Variable(n, nonneg=True)
    z = cp.Variable(b_ts.shape[0], nonneg=True)  # z(t, s) = sum_y x(y, t, s)
    spread = b_ts.T.tocsr()  # cell -> its (t, s) column
    objective = cp.Minimize(cp.sum(cp.rel_entr(x, spread @ z)) / scale)
    constraints = [b_ts @ x == z, c_yt @ x == scale * rhs_yt]
    if c_ys.shape[0] > 0:
        constraints.append(c_ys @ x == scale * rhs_ys)
    x.value = scale * _product_law(p)[mask]
    z.value = b_ts @ x.value
    problem = cp.Problem(objective, constraints)
    try:
        with warnings.catch_warnings():
            # cvxpy's "Solution may be inaccurate" is superseded by the certified duality gap
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            problem.solve(solver=solver, **solver_opts)
    except cp.error.SolverError as exc:
        raise PIDSolverError(f"convex solver raised: {exc}", status="solver_error", solver=solver) from exc
    except (TypeError, ValueError) as exc:  # a setting the solver does not know, or of the wrong type
        if not solver_opts:
            raise
        raise ValueError(f"solver_opts: the {solver} solver refused {sorted(solver_opts)} ({exc}); "
                         f"{_valid_settings(solver)}") from None
    status = str(problem.status)
    if status not in ("optimal", "optimal_inaccurate") or x.value is None:
        raise PIDSolverError("BROJA programme not solved", status=status, solver=solver)
    q = np.zeros_like(p)
    q[mask] = np.maximum(np.asarray(x.value, dtype=np.float64), 0.0) / scale
    return q, status, n


def dual_lower_bound(q: np.ndarray, p: np.ndarray) -> float:
    r"""A certified lower bound on :math:`\min_{Q\in\Delta_P} -H_Q(Y\mid T,S)` built from a near-optimal ``q``.

    Lagrange duality of the BROJA programme: for any multipliers :math:`\lambda(y,t), \mu(y,s)`,

    .. math::
        \min_{Q\in\Delta_P} \sum q\log\frac{q}{q(t,s)} \ \ge\ \sum_{y,t}\lambda P(y,t)
        + \sum_{y,s}\mu P(y,s) - \max_{t,s}\log\sum_y e^{\lambda(y,t)+\mu(y,s)}

    (sum over the support cells). At the optimum :math:`\log q^\star(y|t,s) = \lambda + \mu`, so we
    fit :math:`\lambda, \mu` to :math:`\log q(y|t,s)` by weighted least squares; the bound is valid
    for any fit, and tight when ``q`` is optimal. ``primal - bound`` is the reported duality gap.

    Args:
        q: a near-optimal law in :math:`\Delta_P`, indexed ``[y, t, s]``.
        p: the input law, indexed ``[y, t, s]``.

    Returns:
        The certified lower bound (nats).
    """
    import scipy.sparse.linalg as spl
    from scipy.special import logsumexp

    ny, nt, ns = p.shape
    pyt, pys, mask, idx = _support(p)
    n = idx.shape[0]
    qc = np.maximum(q[mask], 1e-300)
    qts = np.maximum(q.sum(axis=0)[idx[:, 1], idx[:, 2]], 1e-300)
    target = np.log(qc) - np.log(qts)
    weight = np.sqrt(qc / qc.max()) + 1e-8
    rows = np.arange(n)
    design = sp.hstack(
        [
            sp.csr_matrix((np.ones(n), (rows, idx[:, 0] * nt + idx[:, 1])), shape=(n, ny * nt)),
            sp.csr_matrix((np.ones(n), (rows, idx[:, 0] * ns + idx[:, 2])), shape=(n, ny * ns)),
        ]
    ).tocsr()
    sol = spl.lsqr(sp.diags(weight) @ design, weight * target, atol=1e-14, btol=1e-14, iter_lim=20_000)[0]
    lam = sol[: ny * nt].reshape(ny, nt)
    mu = sol[ny * nt :].reshape(ny, ns)
    c = np.full(p.shape, -np.inf)
    c[mask] = (lam[:, :, None] + mu[:, None, :])[mask]
    with np.errstate(divide="ignore"):
        lse = logsumexp(c, axis=0)  # (t, s); -inf for columns without support cells
    base = float((lam * pyt).sum() + (mu * pys).sum())
    # Feasibility repair (LSE_ts <= 0 for all t, s) by shifting lambda(., t) by max_s LSE_ts (costs
    # P(t) times the shift), or mu(., s) by max_t LSE_ts, or all of lambda by the global max; the
    # best of the three valid bounds is returned.
    pt = pyt.sum(axis=0)
    ps = pys.sum(axis=0)
    with np.errstate(invalid="ignore"):
        shift_t = np.where(np.isfinite(lse).any(axis=1), lse.max(axis=1), 0.0)
        shift_s = np.where(np.isfinite(lse).any(axis=0), lse.max(axis=0), 0.0)
    worst = float(lse[np.isfinite(lse)].max())
    return max(base - worst, base - float(pt @ shift_t), base - float(ps @ shift_s))


def _valid_settings(solver: str) -> str:
    """A hint listing the solver's settings where the solver exposes them."""
    if solver == "CLARABEL":
        try:
            import clarabel

            names = sorted(n for n in dir(clarabel.DefaultSettings()) if not n.startswith("_"))
            return "valid CLARABEL settings: " + ", ".join(names)
        except Exception:  # pragma: no cover - clarabel missing or its API changed
            pass
    return f"see the {solver} documentation for its settings (cvxpy passes solver_opts to it unchanged)"


def _check_solver(solver: Any, solver_opts: Any) -> tuple[str | None, dict[str, Any]]:
    """``solver`` is None or an installed cvxpy solver; ``solver_opts`` None or a dict with str keys."""
    if solver is not None:
        if not isinstance(solver, str):
            raise TypeError(f"solver: expected a cvxpy solver name (str) or None, got {type(solver).__name__}")
        import cvxpy as cp

        installed = sorted(cp.installed_solvers())
        if solver.upper() not in installed:
            raise ValueError(f"solver: expected one of {', '.join(installed)} (installed cvxpy solvers) or None, "
                             f"got {solver!r}")
    if solver_opts is None:
        return solver, {}
    if not isinstance(solver_opts, Mapping) or not all(isinstance(k, str) for k in solver_opts):
        raise TypeError(f"solver_opts: expected a dict of solver settings (str keys) or None, got {solver_opts!r}")
    return solver, dict(solver_opts)


def broja_pid(
    p: Any,
    *,
    solver: str | None = None,
    units: str = "nats",
    tol: float = 1e-7,
    gap_tol: float = 1e-5,
    normalize: bool = False,
    solver_opts: dict[str, Any] | None = None,
    keep_q: bool = True,
    newton_polish: bool = False,
) -> PIDResult:
    r"""BROJA PID of a joint probability array ``p`` indexed ``[y, t, s]``.

    Args:
        p: non-negative array of shape (|Y|, |T|, |S|) summing to 1 (within 1e-8).
        solver: cvxpy solver name. ``None``: ``"CLARABEL"``, then ``"SCS"`` if Clarabel fails
            (the solver used is recorded in the result and a warning is issued on fallback).
        units: ``"nats"`` (default) or ``"bits"``.
        tol: clipping tolerance in nats: atoms in ``[-tol, 0)`` are set to 0; below ``-tol`` they
            are kept, ``status = "negative_atom"`` and a ``RuntimeWarning`` is issued.
        gap_tol: certified duality gap (nats, see :func:`dual_lower_bound`) above which the result
            gets ``status = "inaccurate"`` and a ``RuntimeWarning``.
        normalize: divide ``p`` by its total instead of requiring a total of 1.
        solver_opts: extra keyword arguments passed to ``cvxpy.Problem.solve``.
        keep_q: store the optimiser Q* in ``result.q_star``.
        newton_polish: refine the conic solution by feasible Newton steps (off by default: measured
            gains ~1e-9 nats in Red for +30..140 % time on 10×10×10..10×20×20 laws).

    Returns:
        :class:`PIDResult` with ``redundancy``, ``unique_t``, ``unique_s``, ``synergy`` and the
        mutual informations, in ``units``.

    Raises:
        ValueError / TypeError: bad input (see :func:`validate_joint`), bad ``units`` or ``tol``, a
            ``solver`` that is not installed (the message lists those that are), ``solver_opts`` the
            solver refuses (the message lists its settings where the solver exposes them).
        PIDSolverError: the solver failed (its status is in the exception).
    """
    units = _check_units(units)
    for name_, val in (("tol", tol), ("gap_tol", gap_tol)):
        if not (isinstance(val, (int, float)) and np.isfinite(val) and val >= 0):
            raise ValueError(f"{name_} must be a finite number >= 0, got {val!r}")
    p = validate_joint(p, normalize=normalize)
    solver, opts = _check_solver(solver, solver_opts)
    t0 = time.perf_counter()

    pyt = p.sum(axis=2)
    pys = p.sum(axis=1)
    prod = _product_law(p)
    mi_yt, mi_ys, mi_yts = mi_terms(p)

    n_free = int(np.count_nonzero((pyt[:, :, None] > 0) & (pys[:, None, :] > 0)))
    if _is_singleton_polytope(p):
        q_sol, used, solver_status, attempts = prod, "closed_form", "optimal", 0
    else:
        q_sol, used, solver_status, attempts = _solve_with_retries(
            p, prod, solver=solver, solver_opts=opts, gap_tol=gap_tol, newton_polish=newton_polish
        )

    candidates = {"solver": q_sol, "input": p, "product": prod}
    values = {k: _mi_yts(v) for k, v in candidates.items()}
    chosen = min(values, key=lambda k: (values[k], k != "solver"))
    q_star = candidates[chosen]
    mi_q = values[chosen]

    h_y = entropy(p.sum(axis=(1, 2)))
    gap = max(0.0, (mi_q - h_y) - dual_lower_bound(q_star, p)) if used != "closed_form" else 0.0

    red = mi_yt + mi_ys - mi_q
    uni_t = conditional_mi_yt_given_s(q_star)
    uni_s = conditional_mi_yt_given_s(np.swapaxes(q_star, 1, 2))
    syn = mi_yts - mi_q
    residual = max(
        abs(uni_t - (mi_yt - red)),
        abs(uni_s - (mi_ys - red)),
        abs(red + uni_t + uni_s + syn - mi_yts),
    )

    status = "optimal" if gap <= gap_tol else "inaccurate"
    atoms = {"redundancy": red, "unique_t": uni_t, "unique_s": uni_s, "synergy": syn}
    clipped = 0.0
    negatives = []
    for k, v in atoms.items():
        if v < 0:
            if v >= -tol:
                clipped = max(clipped, -v)
                atoms[k] = 0.0
            else:
                negatives.append(f"{k}={v:.3g}")
    if negatives:
        status = "negative_atom"
        warnings.warn(
            "BROJA PID: atoms below -tol (solver inaccuracy?): " + ", ".join(negatives) + f" nats (tol={tol})",
            RuntimeWarning,
            stacklevel=2,
        )
    if not negatives and gap > gap_tol:
        warnings.warn(
            f"BROJA PID: certified duality gap {gap:.3g} nats > gap_tol={gap_tol} (solver {used}, "
            f"status {solver_status}); Red may be underestimated by up to the gap",
            RuntimeWarning,
            stacklevel=2,
        )

    result = PIDResult(
        redundancy=float(atoms["redundancy"]),
        unique_t=float(atoms["unique_t"]),
        unique_s=float(atoms["unique_s"]),
        synergy=float(atoms["synergy"]),
        mi_yt=float(mi_yt),
        mi_ys=float(mi_ys),
        mi_yts=float(mi_yts),
        mi_yts_q=float(mi_q),
        units="nats",
        status=status,
        solver=used,
        solver_status=solver_status,
        chosen=chosen,
        marginal_violation=_marginal_violation(q_star, pyt, pys),
        identity_residual=float(residual),
        duality_gap=float(gap),
        clipped=float(clipped),
        n_cells=n_free,
        n_attempts=int(attempts),
        shape=tuple(int(s) for s in p.shape),
        solve_seconds=time.perf_counter() - t0,
        q_star=q_star if keep_q else None,
    )
    return result.in_units(units)


def _solve_with_retries(
    p: np.ndarray,
    prod: np.ndarray,
    *,
    solver: str | None,
    solver_opts: dict[str, Any],
    gap_tol: float,
    newton_polish: bool,
) -> tuple[np.ndarray, str, str, int]:
    """Conic solve + polish over a ladder of solver settings; keep the feasible point with least f.

    Stops at the first attempt whose certified gap is <= ``gap_tol``.
    Returns (Q, solver used, its status, number of attempts). Raises the last PIDSolverError if no
    attempt produced a point.
    """
    pyt = p.sum(axis=2)
    pys = p.sum(axis=1)
    h_y = entropy(p.sum(axis=(1, 2)))
    names = [solver.upper()] if solver is not None else ["CLARABEL", "SCS"]
    plan: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        ladder = _OPTS_LADDER.get(name, [{}])
        if solver_opts:
            ladder = [{**ladder[0], **solver_opts}]
        plan.extend((name, o) for o in ladder)
    best: tuple[float, np.ndarray, str, str] | None = None
    last_error: PIDSolverError | None = None
    attempts = 0
    for name, o in plan:
        if best is not None and name != best[2]:
            break  # a point from an earlier solver exists; do not switch solvers just for accuracy
        attempts += 1
        try:
            q, status, _ = _solve_conic(p, name, o)
        except PIDSolverError as exc:
            last_error = exc
            continue
        q = _ipf_polish((1.0 - _PRODUCT_MIX) * q + _PRODUCT_MIX * prod, pyt, pys)
        if newton_polish:
            q = _ipf_polish(_newton_polish(q, p), pyt, pys)
        f = _mi_yts(q) - h_y
        if best is None or f < best[0]:
            best = (f, q, name, status)
        gap = f - dual_lower_bound(q, p)
        if gap <= gap_tol:  # certified: the solver's own word does not matter any more
            break
    if best is None:
        assert last_error is not None
        raise last_error
    if best[2] != names[0]:
        warnings.warn(f"BROJA PID: {names[0]} failed ({last_error}); used {best[2]}", RuntimeWarning, stacklevel=3)
    return best[1], best[2], best[3], attempts


def _is_singleton_polytope(p: np.ndarray) -> bool:
    """True when Δ_P has one point: for every y, P(t|y) or P(s|y) is a point mass.

    Then the transportation polytope of each slice Q(·,·|y) is a single table (one row or one
    column), and Q* is the product law.
    """
    pyt = p.sum(axis=2)
    pys = p.sum(axis=1)
    for y in range(p.shape[0]):
        if pyt[y].sum() == 0:
            continue
        if np.count_nonzero(pyt[y]) > 1 and np.count_nonzero(pys[y]) > 1:
            return False
    return True


def broja_pid_from_counts(counts: Any, **kwargs: Any) -> PIDResult:
    """BROJA PID of the plug-in law ``counts / counts.sum()`` (counts indexed [y, t, s]).

    Keyword arguments are those of :func:`broja_pid` (``normalize`` is forced to True).

    Args:
        counts: non-negative counts indexed ``[y, t, s]``.
        **kwargs: keyword arguments of :func:`broja_pid`.

    Returns:
        The :class:`PIDResult` of the plug-in law.
    """
    kwargs.pop("normalize", None)
    arr = validate_joint(counts, normalize=True, name="counts")
    return broja_pid(arr, normalize=True, **kwargs)
