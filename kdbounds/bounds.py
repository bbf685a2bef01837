# Over 500 lines on purpose: the theorems of theory.md §4 (one per function) and the 1-D optimisations they share.
r"""Generalization bounds for knowledge distillation (theory.md §4), as pure functions.

Every function takes *measured* quantities (a divergence :math:`K = \mathrm{KL}(q_S \Vert q_T)`, a
sub-Gaussian proxy, a gradient norm, curvature, spectra) and returns a number; nothing here
trains, samples or prints. All arithmetic is float64 numpy/scipy. Notation follows
``docs/theory.md`` (in this repository):

.. math::
    \text{Theorem 1 (sub-Gaussian):}\quad & |\mathrm{gen}(S) - \mathrm{gen}(T)| \le \sqrt{2\sigma_n^2 K},\\
    \text{Theorem 2 (central condition):}\quad & \mathrm{gen}(S) \ge c\,\mathrm{gen}(T) - K/\eta,\\
    \text{Theorem 3A (sharpness radius):}\quad & |\mathrm{gen}(S\mid D) - \mathrm{gen}(T\mid D)|
        \le a_\rho \sqrt{2K}, \quad a_\rho = G_0\rho + \beta\rho^2/2,\\
    \text{Theorem 3B (Gaussian teacher, quadratic gap):}\quad &
        \inf_{\lambda>0} \frac{K + \psi(\lambda)}{\lambda} \le \sqrt{2vK} + c_+ K

(3B: the exact Donsker-Varadhan-Cramér bound and its sub-gamma relaxation).

Bad input raises ``ValueError`` (or ``TypeError``) naming the argument.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from ._checks import check_finite, check_int, check_nonnegative, check_positive, check_probability, check_square_matrix

__all__ = [
    "subgaussian_bound",
    "central_lower_bound",
    "central_eta_from_subgaussian",
    "sharpness_radius_bound",
    "tightness_radius",
    "subgamma_bound",
    "log_mgf_quadratic",
    "quadratic_spectrum",
    "gaussian_quadratic_bound",
    "GaussianQuadraticBound",
]


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _nonneg(name: str, value: Any) -> float:
    fix = "clip tiny negative KL estimates to 0 before calling" if name == "divergence" else ""
    return check_nonnegative(name, value, fix)


# ----------------------------------------------------------------------------------------------
# Theorem 1 and Theorem 2
# ----------------------------------------------------------------------------------------------


def subgaussian_bound(divergence: float, sigma: float, n: float | None = None) -> float:
    r"""Theorem 1: the sub-Gaussian bound on the difference of generalization gaps.

    .. math::
        |\mathrm{gen}(S) - \mathrm{gen}(T)| \le \sqrt{2\sigma_n^2 K}, \qquad
        \sigma_n = \sigma / \sqrt n .

    ``sigma`` is a per-sample sub-Gaussian proxy of the loss when ``n`` is given (a loss in
    :math:`[0, B]` has :math:`\sigma = B/2`); with ``n=None`` ``sigma`` is the proxy
    :math:`\sigma_n` of the gap itself. :math:`K = 0` gives 0 (equal expected gaps).

    Args:
        divergence: :math:`K \ge 0` (nats).
        sigma: the sub-Gaussian proxy :math:`\sigma \ge 0`.
        n: sample size :math:`n > 0`, or ``None``.

    Returns:
        The bound :math:`\sqrt{2\sigma_n^2 K}`.

    Raises:
        ValueError: an argument is NaN/inf or out of its range (the message names it).
        TypeError: an argument is not a real number.
    """
    k = _nonneg("divergence", divergence)
    s = _nonneg("sigma", sigma)
    if n is None:
        return s * math.sqrt(2.0 * k)
    nn = check_positive("n", n)
    return s * math.sqrt(2.0 * k / nn)


def central_lower_bound(gen_teacher: float, divergence: float, eta: float, c: float) -> float:
    r"""Theorem 2: lower bound on the student's gap under the :math:`(\eta, c)`-central condition.

    .. math::
        \mathrm{gen}(S) \ge c\,\mathrm{gen}(T) - K / \eta

    Args:
        gen_teacher: :math:`\mathrm{gen}(T)`, any sign.
        divergence: :math:`K \ge 0`.
        eta: :math:`\eta > 0`.
        c: :math:`c \in [0, 1]`.

    Returns:
        The lower bound on :math:`\mathrm{gen}(S)`.

    Raises:
        ValueError: an argument is NaN/inf or out of its range (the message names it).
        TypeError: an argument is not a real number.
    """
    g = check_finite("gen_teacher", gen_teacher)
    k = _nonneg("divergence", divergence)
    e = check_positive("eta", eta)
    cc = check_probability("c", c)
    return cc * g - k / e


def central_eta_from_subgaussian(gen_teacher: float, sigma_n: float, c: float) -> float:
    r"""The :math:`\eta` for which sub-Gaussianity implies the :math:`(\eta, c)`-central condition.

    .. math::
        \log \mathbb E\, e^{-\eta G} \le -\eta\,\mathbb E G + \eta^2\sigma_n^2/2 \le -c\,\eta\,\mathbb E G
        \iff \eta \le \frac{2(1-c)\,\mathrm{gen}(T)}{\sigma_n^2},

    and this returns the largest such :math:`\eta`. Plugging it into :func:`central_lower_bound` and
    maximising over :math:`c` gives :math:`\mathrm{gen}(T) - \sqrt{2\sigma_n^2 K}` (when
    :math:`\sqrt{\sigma_n^2 K/2} \le \mathrm{gen}(T)`).

    Args:
        gen_teacher: :math:`\mathrm{gen}(T) > 0`.
        sigma_n: the gap's sub-Gaussian proxy :math:`\sigma_n > 0`.
        c: :math:`c \in [0, 1)`.

    Returns:
        :math:`\eta = 2(1-c)\,\mathrm{gen}(T)/\sigma_n^2`.

    Raises:
        ValueError: ``gen_teacher`` or ``sigma_n`` not positive, or ``c`` outside :math:`[0, 1)`.
        TypeError: an argument is not a real number.
    """
    g = check_finite("gen_teacher", gen_teacher)
    s = check_positive("sigma_n", sigma_n)
    cc = check_probability("c", c)
    if g <= 0.0:
        raise ValueError(
            f"gen_teacher must be > 0 for a positive eta, got {g}; the central condition "
            "derived from sub-Gaussianity is vacuous for a non-positive teacher gap"
        )
    if cc >= 1.0:
        raise ValueError("c must be < 1 here (c = 1 gives eta = 0); pick c in [0, 1)")
    return 2.0 * (1.0 - cc) * g / (s * s)


# ----------------------------------------------------------------------------------------------
# Theorem 3A
# ----------------------------------------------------------------------------------------------


def sharpness_radius_bound(divergence: float, rho: float, grad_norm: float, curvature: float) -> float:
    r"""Theorem 3A: the sharpness-radius bound.

    .. math::
        |\mathrm{gen}(S\mid D) - \mathrm{gen}(T\mid D)| \le a_\rho \sqrt{2K}, \qquad
        a_\rho = G_0\rho + \beta\rho^2/2 .

    Args:
        divergence: :math:`K \ge 0`.
        rho: radius :math:`\rho \ge 0` of the ball (around the teacher's centre m) that supports the
            teacher kernel.
        grad_norm: :math:`G_0 = \lVert\nabla f(m)\rVert \ge 0`.
        curvature: :math:`\beta \ge \lVert\nabla^2 f\rVert_{\mathrm{op}}` on the ball, :math:`\ge 0`.

    Returns:
        The bound :math:`a_\rho\sqrt{2K}`.

    Raises:
        ValueError: an argument is NaN/inf or out of its range (the message names it).
        TypeError: an argument is not a real number.
    """
    k = _nonneg("divergence", divergence)
    r = _nonneg("rho", rho)
    g0 = _nonneg("grad_norm", grad_norm)
    beta = _nonneg("curvature", curvature)
    a_rho = g0 * r + 0.5 * beta * r * r
    return a_rho * math.sqrt(2.0 * k)


def tightness_radius(sigma: float, grad_norm: float, curvature: float) -> float:
    r"""Tightness radius :math:`\rho_0`: :math:`a_\rho < \sigma` iff :math:`\rho < \rho_0`.

    .. math::
        \rho_0 = \frac{\sqrt{G_0^2 + 2\beta\sigma} - G_0}{\beta}
               = \frac{2\sigma}{\sqrt{G_0^2 + 2\beta\sigma} + G_0}

    (evaluated in the cancellation-free second form; :math:`\sigma / G_0` when :math:`\beta = 0`).

    Args:
        sigma: the proxy :math:`\sigma \ge 0` to beat.
        grad_norm: :math:`G_0 \ge 0`.
        curvature: :math:`\beta \ge 0`.

    Returns:
        :math:`\rho_0`; ``inf`` when :math:`G_0 = \beta = 0` (and :math:`\sigma > 0`), 0 when
        :math:`\sigma = 0`.

    Raises:
        ValueError: an argument is NaN/inf or out of its range (the message names it).
        TypeError: an argument is not a real number.
    """
    s = _nonneg("sigma", sigma)
    g0 = _nonneg("grad_norm", grad_norm)
    beta = _nonneg("curvature", curvature)
    denom = math.sqrt(g0 * g0 + 2.0 * beta * s) + g0
    if s == 0.0:
        return 0.0
    if denom == 0.0:
        return math.inf
    return 2.0 * s / denom


# ----------------------------------------------------------------------------------------------
# sub-gamma and Theorem 3B
# ----------------------------------------------------------------------------------------------


def subgamma_bound(divergence: float, v: float, c_plus: float, c_minus: float = 0.0) -> tuple[float, float]:
    r"""Sub-gamma two-sided bound on :math:`\mathrm{gen}(S\mid D) - \mathrm{gen}(T\mid D)`.

    .. math::
        -\sqrt{2vK} - c_- K \ \le\ \mathrm{gen}(S\mid D) - \mathrm{gen}(T\mid D)
        \ \le\ \sqrt{2vK} + c_+ K,

    valid when :math:`\psi(\lambda) \le \frac{\lambda^2 v}{2(1 - c_+\lambda)}` for
    :math:`0 < \lambda < 1/c_+` (and the mirror statement with :math:`c_-` for :math:`-\lambda`).

    Args:
        divergence: :math:`K \ge 0`.
        v: the variance factor :math:`v \ge 0`.
        c_plus: the scale :math:`c_+ \ge 0` of the upper tail.
        c_minus: the scale :math:`c_- \ge 0` of the lower tail.

    Returns:
        ``(lower, upper)``.

    Raises:
        ValueError: an argument is NaN/inf or out of its range (the message names it).
        TypeError: an argument is not a real number.
    """
    k = _nonneg("divergence", divergence)
    vv = _nonneg("v", v)
    cp = _nonneg("c_plus", c_plus)
    cm = _nonneg("c_minus", c_minus)
    root = math.sqrt(2.0 * vv) * math.sqrt(k)
    return (0.0 - root - cm * k, root + cp * k)


def _as_spectrum(eigenvalues: Any, b_proj: Any, multiplicity: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate and flatten ``(eigenvalues, b_proj)`` to matching 1-D arrays of a_i and b_i^2."""
    multiplicity = check_int("multiplicity", multiplicity, minimum=1)
    try:
        a = np.asarray(eigenvalues, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"eigenvalues must be a 1-D array of reals: {exc}") from None
    if a.ndim != 1:
        raise ValueError(f"eigenvalues must be 1-D, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("eigenvalues must be finite (found NaN or inf)")
    m = a.shape[0]
    if b_proj is None:
        raise ValueError("b_proj is required with eigenvalues (pass zeros for a centred gap gradient)")
    try:
        b = np.asarray(b_proj, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"b_proj must be an array of reals: {exc}") from None
    if not np.all(np.isfinite(b)):
        raise ValueError("b_proj must be finite (found NaN or inf)")
    k = int(multiplicity)
    if b.shape == (m, k) or (k == 1 and b.shape == (m,)) or b.shape == (m * k,):
        b2 = (b.reshape(m, k) ** 2).sum(axis=1) if k > 1 else b.reshape(m) ** 2
    else:
        raise ValueError(
            f"b_proj shape {b.shape} does not match eigenvalues of length {m} with multiplicity {k}: "
            f"expected ({m}, {k}) or the C-order flattening ({m * k},)"
            + (f" or ({m},)" if k == 1 else "")
        )
    return a, b2


def _phi_neg_log(one_minus_x: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``-log(1 - x) - x`` (= sum_{j>=2} x^j / j >= 0), accurate for small |x|.

    ``one_minus_x`` is passed separately so that the caller can compute ``1 - x`` exactly near
    the pole.
    """
    out = np.empty_like(x)
    small = np.abs(x) < 0.1
    if np.any(small):
        xs = x[small]
        term = xs * xs
        acc = term / 2.0
        power = term
        for j in range(3, 20):
            power = power * xs
            acc = acc + power / j
        out[small] = acc
    big = ~small
    if np.any(big):
        out[big] = -np.log(one_minus_x[big]) - x[big]
    return out


def log_mgf_quadratic(lam: float, eigenvalues: Any, b_proj: Any, multiplicity: int = 1) -> float:
    r"""Log-MGF of a Gaussian quadratic, :math:`\psi(\lambda) = \log \mathbb E \exp(\lambda (f - \mathbb E f))`.

    For :math:`w \sim \mathcal N(m, S)` and :math:`f(w) = f(m) + b^\top (w-m) + (w-m)^\top H (w-m)/2`,
    with :math:`A = S^{1/2} H S^{1/2}` (eigenvalues :math:`a_i`) and :math:`b_i` the components of
    :math:`b' = S^{1/2} b` in A's eigenbasis,

    .. math::
        \psi(\lambda) = \sum_i \Bigl[-\tfrac12 \log(1 - \lambda a_i) - \frac{\lambda a_i}{2}
        + \frac{\lambda^2}{2}\,\frac{b_i^2}{1 - \lambda a_i}\Bigr].

    Outside the admissible set (:math:`1 - \lambda a_i > 0` for all i) the MGF is infinite and this
    returns ``+inf`` (not an error), so that it can be fed to an optimiser.

    Args:
        lam: :math:`\lambda`, any real.
        eigenvalues: the :math:`a_i`, 1-D.
        b_proj: the :math:`b_i`; with ``multiplicity`` k, shape ``(len(eigenvalues), k)`` or its
            C-order flattening.
        multiplicity: repeats every :math:`a_i` k times (:math:`A \otimes I_k`).

    Returns:
        :math:`\psi(\lambda)`, or ``inf`` outside the admissible set.

    Raises:
        ValueError: NaN/inf or mismatched shapes, or ``multiplicity < 1``.
        TypeError: non-numeric arrays or a non-integer ``multiplicity``.
    """
    lam_f = check_finite("lam", lam)
    a, b2 = _as_spectrum(eigenvalues, b_proj, multiplicity)
    return _psi_mult(lam_f, a, b2, int(multiplicity))


def _psi_mult(lam: float, a: np.ndarray, b2: np.ndarray, mult: int) -> float:
    """psi with each a_i repeated ``mult`` times and ``b2`` the per-eigenvalue summed b^2."""
    x = lam * a
    om = 1.0 - x
    if np.any(om <= 0.0):
        return math.inf
    return float(np.sum(0.5 * mult * _phi_neg_log(om, x) + 0.5 * lam * lam * b2 / om))


def _log_sigmoid(z: float) -> float:
    """``log(1 / (1 + exp(-z)))`` without overflow."""
    return -math.log1p(math.exp(-z)) if z > -30.0 else z - math.log1p(math.exp(z))


def _dv_upper(k: float, a: np.ndarray, b2: np.ndarray, mult: int) -> tuple[float, float]:
    """``inf_{lam>0} (K + psi(lam)) / lam`` and its argmin (see :func:`gaussian_quadratic_bound`).

    The objective is quasi-convex in lam (sublevel sets ``{K + psi <= t lam}`` are convex), so a
    bounded Brent search on a monotone reparametrisation finds the global minimum.  With
    ``c_+ = max(a, 0) > 0`` we use ``lam = sigmoid(z) / c_+`` so that ``1 - lam a_i =
    sigmoid(-z) + lam (c_+ - a_i)`` is a sum of non-negative terms, exact near the pole; with
    ``c_+ = 0`` we use ``lam = exp(z)``.  lam itself is formed in the log domain.  The search
    window is 60 e-folds either side of the sub-gamma optimum ``1 / (c_+ + sqrt(v / (2K)))``, which
    is also evaluated as a candidate.
    """
    v = float(mult * 0.5 * np.sum(a * a) + np.sum(b2))
    if k == 0.0 or v == 0.0:
        # psi >= 0 with psi(lam) = O(lam^2): the infimum is 0 (approached as lam -> 0 for K = 0,
        # as lam -> inf for psi == 0).
        return 0.0, (0.0 if k == 0.0 else math.inf)
    c_plus = float(max(a.max(initial=0.0), 0.0))
    gap = c_plus - a  # >= 0 exactly in floating point
    # log of the sub-gamma optimum lam_sg = 1 / (c_+ + sqrt(v / (2K))), overflow-free
    log_root = 0.5 * (math.log(v) - math.log(2.0 * k))  # log sqrt(v / (2K))
    log_lam_sg = -(log_root + math.log1p(c_plus * math.exp(-log_root))) if c_plus > 0.0 else -log_root
    log_lam_sg = min(max(log_lam_sg, -640.0), 640.0)

    def terms(lam: float, om: np.ndarray) -> float:
        x = lam * a
        return float(np.sum(0.5 * mult * _phi_neg_log(om, x) + 0.5 * lam * lam * b2 / om))

    if c_plus > 0.0:
        log_cp = math.log(c_plus)

        def lam_of(z: float) -> float:
            return math.exp(_log_sigmoid(z) - log_cp)

        def objective(z: float) -> float:
            log_lam = _log_sigmoid(z) - log_cp
            lam = math.exp(log_lam)
            s_neg = math.exp(_log_sigmoid(-z))
            om = s_neg + lam * gap
            return k * math.exp(-log_lam) + terms(lam, om) / lam

        # z0 = logit(lam_sg c_+)
        log_u = log_lam_sg + log_cp
        z0 = log_u - math.log1p(-math.exp(log_u)) if log_u < -1e-300 else 700.0
        lo = max(z0 - 60.0, log_cp - 690.0)  # keeps lam = sigmoid(z) / c_+ >= e^-690
        hi = min(z0 + 60.0, 700.0)
        z0 = min(max(z0, lo), hi)
    else:

        def lam_of(z: float) -> float:
            return math.exp(z)

        def objective(z: float) -> float:
            lam = math.exp(z)
            om = 1.0 - lam * a
            return k * math.exp(-z) + terms(lam, om) / lam

        z0 = log_lam_sg
        lo, hi = max(z0 - 60.0, -690.0), min(z0 + 60.0, 300.0)

    res = minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"xatol": 1e-11, "maxiter": 500})
    z_best, f_best = float(res.x), float(res.fun)
    # Brent's bounded method never evaluates the window's ends; the sub-gamma optimum is a valid
    # candidate too (it guarantees exact <= sub-gamma up to rounding)
    f0 = objective(z0)
    if f0 < f_best:
        z_best, f_best = z0, f0
    return f_best, lam_of(z_best)


@dataclass(frozen=True)
class GaussianQuadraticBound:
    r"""Theorem 3B for a Gaussian teacher :math:`\mathcal N(m, S)` and a quadratic gap function.

    .. math::
        \text{upper} = \inf_{\lambda>0} \frac{K + \psi(\lambda)}{\lambda}, \qquad
        \text{lower} = -\inf_{\lambda>0} \frac{K + \psi(-\lambda)}{\lambda}

    bound :math:`\mathrm{gen}(S\mid D) - \mathrm{gen}(T\mid D)`; their sub-gamma relaxations are

    .. math::
        \text{subgamma\_upper} = \sqrt{2vK} + c_+ K, \quad
        \text{subgamma\_lower} = -\sqrt{2vK} - c_- K, \quad
        v = \mathrm{Var}_T f = \lVert b'\rVert^2 + \lVert A\rVert_F^2/2, \quad
        c_\pm = \max(\lambda_{\max}(\pm A), 0).

    ``lambda_upper`` / ``lambda_lower`` are the optimal :math:`\lambda` (0 when :math:`K = 0`; inf when
    the infimum is approached at :math:`\lambda \to \infty`; a very large finite :math:`\lambda` when
    the search window ends there). ``trace_a`` :math:`= \operatorname{tr} A = \operatorname{tr}(HS)`
    gives :math:`\mathrm{gen}(T) = f(m) + \text{trace\_a}/2`.
    """

    divergence: float
    upper: float
    lower: float
    lambda_upper: float
    lambda_lower: float
    subgamma_upper: float
    subgamma_lower: float
    v: float
    c_plus: float
    c_minus: float
    trace_a: float
    dimension: int
    multiplicity: int

    def k0(self, sigma: float) -> float:
        r"""The divergence below which the sub-gamma bound beats a global proxy :math:`\sigma`.

        .. math::
            K_0 = \frac{2(\sigma - \sqrt v)^2}{c_+^2}:
            \quad \sqrt{2vK} + c_+K < \sqrt{2\sigma^2 K} \text{ for } K < K_0 \ (\text{if } \sqrt v < \sigma).

        Args:
            sigma: the global sub-Gaussian proxy :math:`\sigma`.

        Returns:
            :math:`K_0`; ``inf`` if :math:`c_+ = 0` and :math:`\sqrt v < \sigma`; 0 if :math:`\sqrt v \ge \sigma`.
        """
        s = _nonneg("sigma", sigma)
        sv = math.sqrt(self.v)
        if sv >= s:
            return 0.0
        if self.c_plus == 0.0:
            return math.inf
        return 2.0 * (s - sv) ** 2 / self.c_plus**2

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict.

        Returns:
            Every field (floats; infinite values are left to the writer's non-finite policy).
        """
        return asdict(self)


def quadratic_spectrum(grad: Any, hessian: Any, cov: Any, *, tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    r"""Spectral form ``(a, b_proj)`` of a dense Gaussian-quadratic problem.

    .. math::
        A = S^{1/2} H S^{1/2} = Q \operatorname{diag}(a) Q^\top, \qquad
        b_{\text{proj}} = Q^\top S^{1/2} \nabla f .

    :math:`S^{1/2}` is the symmetric square root from ``eigh``, with eigenvalues of S below
    :math:`p\,\epsilon\,\lambda_{\max}(S)` treated as exact zeros (singular teacher covariances are
    allowed).

    Args:
        grad: the gradient, ``(p,)`` or ``(p, k)`` (k output copies sharing H and S, i.e.
            :math:`H \otimes I_k`; column j is the gradient w.r.t. the j-th copy).
        hessian: ``(p, p)`` symmetric H.
        cov: ``(p, p)`` symmetric positive semi-definite S.
        tol: relative tolerance of the symmetry and semi-definiteness checks.

    Returns:
        ``(a, b_proj)``: the eigenvalues of A and the projected gradient (same trailing shape as
        ``grad``).

    Raises:
        ValueError: shapes that do not match, NaN/inf, a non-symmetric H or S, or S not PSD.
        TypeError: non-numeric arrays.
    """
    h = check_square_matrix("hessian", hessian)
    s = check_square_matrix("cov", cov)
    p = h.shape[0]
    if s.shape != (p, p):
        raise ValueError(f"cov has shape {s.shape}, expected ({p}, {p}) to match hessian")
    try:
        g = np.asarray(grad, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"grad must be an array of reals: {exc}") from None
    if g.ndim not in (1, 2) or g.shape[0] != p:
        raise ValueError(f"grad has shape {g.shape}, expected ({p},) or ({p}, k) to match hessian")
    if not np.all(np.isfinite(g)):
        raise ValueError("grad must be finite (found NaN or inf)")
    scale_h = max(float(np.max(np.abs(h))), 1e-300)
    if np.max(np.abs(h - h.T)) > tol * scale_h:
        raise ValueError("hessian must be symmetric (max |H - H^T| exceeds tol * max |H|); symmetrise it")
    scale_s = max(float(np.max(np.abs(s))), 1e-300)
    if np.max(np.abs(s - s.T)) > tol * scale_s:
        raise ValueError("cov must be symmetric (max |S - S^T| exceeds tol * max |S|)")
    h = 0.5 * (h + h.T)
    s = 0.5 * (s + s.T)
    es, vs = np.linalg.eigh(s)
    if es.size and es.min() < -tol * max(es.max(), 0.0) - 1e-300:
        raise ValueError(f"cov must be positive semi-definite, smallest eigenvalue {es.min():.3e}")
    # eigenvalues of S at rounding level are zero: their square roots (~1e-8) would inject noise
    es = np.where(es > es.size * np.finfo(np.float64).eps * max(es.max(initial=0.0), 0.0), es, 0.0)
    root = (vs * np.sqrt(es)) @ vs.T
    a_mat = root @ h @ root
    a_mat = 0.5 * (a_mat + a_mat.T)
    a, q = np.linalg.eigh(a_mat)
    b_proj = q.T @ (root @ g)
    return a, b_proj


def gaussian_quadratic_bound(
    divergence: float,
    *,
    eigenvalues: Any = None,
    b_proj: Any = None,
    grad: Any = None,
    hessian: Any = None,
    cov: Any = None,
    multiplicity: int = 1,
) -> GaussianQuadraticBound:
    r"""Theorem 3B: exact Donsker-Varadhan-Cramér bounds for a Gaussian teacher, quadratic gap.

    Teacher kernel :math:`\mathcal N(m, S)`, gap :math:`f(w) = f(m) + b^\top(w-m) + (w-m)^\top H(w-m)/2`,
    :math:`A = S^{1/2} H S^{1/2}`, :math:`b' = S^{1/2} b`, :math:`\psi` as in
    :func:`log_mgf_quadratic`. For any student Q with :math:`\mathrm{KL}(Q \Vert \mathcal N(m, S)) = K`,

    .. math::
        -\inf_{\lambda>0} \frac{K + \psi(-\lambda)}{\lambda} \ \le\ \mathbb E_Q f - \mathbb E_T f
        \ \le\ \inf_{\lambda>0} \frac{K + \psi(\lambda)}{\lambda},\\
        -\sqrt{2vK} - c_-K \ \le\ (\text{lower}), \qquad (\text{upper}) \ \le\ \sqrt{2vK} + c_+K,

    with :math:`v = \lVert b'\rVert^2 + \lVert A\rVert_F^2/2` and
    :math:`c_\pm = \max(\lambda_{\max}(\pm A), 0)`. The upper infimum runs over the admissible
    interval :math:`(0, 1/c_+)` by a bounded 1-D minimisation (``scipy.optimize.minimize_scalar``) in
    a variable that resolves both ends; :math:`K = 0` gives 0.

    For the linear-Gaussian model with gradient matrix :math:`G` (:math:`k \times d`) and
    :math:`\Sigma_T^{1/2} (\Sigma_x - \hat\Sigma) \Sigma_T^{1/2} = Q \operatorname{diag}(\tilde a) Q^\top`:
    ``eigenvalues`` :math:`= 2\tilde a`, ``b_proj`` :math:`= (G \Sigma_T^{1/2} Q)^\top`,
    ``multiplicity`` :math:`= k`.

    Args:
        divergence: :math:`K \ge 0`.
        eigenvalues: spectral path: the eigenvalues of A.
        b_proj: spectral path: the components of :math:`b'` in A's eigenbasis; with multiplicity k,
            shape ``(len(eigenvalues), k)`` (row i: the k components along eigenvector i) or its
            C-order flattening.
        grad: dense path: b, ``(p,)`` or ``(p, k)``.
        hessian: dense path: H, ``(p, p)``.
        cov: dense path: S, ``(p, p)``.
        multiplicity: k, repeats every eigenvalue (:math:`A \otimes I_k`, e.g. the linear-Gaussian
            case with k outputs).

    Returns:
        A :class:`GaussianQuadraticBound` (exact bounds, their sub-gamma relaxations, :math:`v`,
        :math:`c_\pm`, optimal :math:`\lambda`).

    Raises:
        ValueError: both or neither path given, an incomplete path, mismatched shapes, NaN/inf or a
            bad ``multiplicity`` (see also :func:`quadratic_spectrum`).
        TypeError: non-numeric input or a non-integer ``multiplicity``.
    """
    k = _nonneg("divergence", divergence)
    spectral = eigenvalues is not None or b_proj is not None
    dense = grad is not None or hessian is not None or cov is not None
    if spectral and dense:
        raise ValueError("give either (eigenvalues, b_proj) or (grad, hessian, cov), not both")
    if not spectral and not dense:
        raise ValueError("give either (eigenvalues, b_proj) or (grad, hessian, cov)")
    multiplicity = check_int("multiplicity", multiplicity, minimum=1)
    mult = int(multiplicity)
    if dense:
        if grad is None or hessian is None or cov is None:
            raise ValueError("the dense path needs all of grad, hessian and cov")
        g_arr = np.asarray(grad)
        if mult > 1 and g_arr.ndim == 2 and g_arr.shape[1] != mult:
            raise ValueError(f"grad has shape {g_arr.shape}; with multiplicity {mult} it must be (p, {mult})")
        if mult > 1 and g_arr.ndim == 1:
            raise ValueError(f"with multiplicity {mult} grad must have shape (p, {mult})")
        if mult == 1 and g_arr.ndim == 2 and g_arr.shape[1] != 1:
            raise ValueError(
                f"grad has shape {g_arr.shape}; pass multiplicity={g_arr.shape[1]} for k output copies"
            )
        a, b_mat = quadratic_spectrum(grad, hessian, cov)
        a, b2 = _as_spectrum(a, b_mat.reshape(a.shape[0], -1) if mult > 1 else b_mat.reshape(-1), mult)
    else:
        if eigenvalues is None or b_proj is None:
            raise ValueError("the spectral path needs both eigenvalues and b_proj")
        a, b2 = _as_spectrum(eigenvalues, b_proj, mult)

    v = float(mult * 0.5 * np.sum(a * a) + np.sum(b2))
    c_plus = float(max(a.max(initial=0.0), 0.0)) + 0.0
    c_minus = float(max((-a).max(initial=0.0), 0.0)) + 0.0
    upper, lam_u = _dv_upper(k, a, b2, mult)
    neg_upper, lam_l = _dv_upper(k, -a, b2, mult)
    sg_lo, sg_hi = subgamma_bound(k, v, c_plus, c_minus)
    lower = 0.0 - neg_upper
    return GaussianQuadraticBound(
        divergence=k,
        upper=float(upper),
        lower=float(lower),
        lambda_upper=float(lam_u),
        lambda_lower=float(lam_l),
        subgamma_upper=float(sg_hi),
        subgamma_lower=float(sg_lo),
        v=v,
        c_plus=c_plus,
        c_minus=c_minus,
        trace_a=float(mult * np.sum(a)),
        dimension=int(a.shape[0] * mult),
        multiplicity=mult,
    )
