"""The exact oracle of theory.md §7: noisy half-spaces, linear classifiers, Gaussian posteriors.

Inputs :math:`x \\sim N(0, I_d)`, labels :math:`y = \\mathrm{sign}(w_*^\\top x)` flipped with probability
:math:`\\eta`, classifiers :math:`\\mathrm{sign}(w^\\top x)`. Everything a certificate needs is known in
closed form (or by a deterministic quadrature), so the certificate's failure rate over repeated draws of
the data can be measured against its nominal level :math:`\\delta + \\delta'`.

Numpy/scipy only (no torch).

References:
    M. Seeger (2002); A. Maurer (2004); J. Langford and R. Caruana (2001); M. Pérez-Ortiz et al. (2021)
    — see :mod:`kdbounds.certificates.bounds`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from .._checks import check_choice, check_int, check_open_unit, check_positive, check_probability
from .._records import Estimate
from ..stats import clopper_pearson
from .bounds import check_confidences, compose_certificate, kl_inverse_upper, mc_risk_upper, pac_bayes_complexity

__all__ = [
    "sample_halfspace",
    "population_risk",
    "gibbs_error",
    "population_gibbs_risk",
    "RepeatResult",
    "repeat_certificates",
]


def _rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def _vector(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected an array of real numbers, got {type(value).__name__}") from None
    if arr.ndim < 1 or arr.shape[-1] < 1:
        raise ValueError(f"{name}: expected a vector (last axis = dimension d), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite entries, got {int(np.sum(~np.isfinite(arr)))} non-finite value(s)")
    return arr


def _check_eta(eta: Any) -> float:
    e = check_probability("eta", eta)
    if e >= 0.5:
        raise ValueError(f"eta: expected a label-flip probability in [0, 0.5), got {eta!r}")
    return e


def sample_halfspace(n: int, w_star: Any, eta: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw n examples of the noisy half-space problem.

    .. math::

        x \\sim N(0, I_d), \\qquad y = \\xi \\,\\mathrm{sign}(w_*^\\top x), \\quad P(\\xi = -1) = \\eta.

    Args:
        n: number of examples (>= 1).
        w_star: the true direction, shape (d,), nonzero.
        eta: label-flip probability in [0, 0.5).
        rng: the random generator (explicit; no global state).

    Returns:
        ``(x, y)`` with ``x`` of shape (n, d) and ``y`` in {-1, +1} of shape (n,).

    Raises:
        ValueError / TypeError: bad ``n``, ``w_star``, ``eta`` or ``rng``.
    """
    n = check_int("n", n, minimum=1)
    w = _vector("w_star", w_star)
    if w.ndim != 1 or not np.any(w != 0):
        raise ValueError(f"w_star: expected a nonzero vector of shape (d,), got shape {w.shape}")
    e = _check_eta(eta)
    g = _rng(rng)
    x = g.standard_normal((n, w.size))
    y = np.where(x @ w >= 0, 1.0, -1.0)
    flip = g.random(n) < e
    return x, np.where(flip, -y, y)


def population_risk(w: Any, w_star: Any, eta: float) -> float | np.ndarray:
    """0–1 population risk of the linear classifier sign(wᵀx) on the noisy half-space problem.

    .. math::

        L_\\mu(w) = \\eta + (1 - 2\\eta)\\,\\frac{\\theta(w, w_*)}{\\pi}, \\qquad
        \\theta = \\arccos\\frac{w^\\top w_*}{\\|w\\|\\,\\|w_*\\|}.

    Args:
        w: classifier(s), shape (..., d), each nonzero.
        w_star: true direction, shape (d,), nonzero.
        eta: label-flip probability in [0, 0.5).

    Returns:
        A float for one classifier, else an array of shape ``w.shape[:-1]``.

    Raises:
        ValueError: zero vectors, mismatched d, eta out of range.
    """
    wa = _vector("w", w)
    ws = _vector("w_star", w_star)
    if ws.ndim != 1 or wa.shape[-1] != ws.size:
        raise ValueError(f"w_star: expected shape ({wa.shape[-1]},) to match w, got {ws.shape}")
    e = _check_eta(eta)
    nw = np.linalg.norm(wa, axis=-1)
    ns = np.linalg.norm(ws)
    if np.any(nw == 0) or ns == 0:
        raise ValueError("w: expected nonzero classifiers (sign(0) is undefined), got a zero vector")
    cos = np.clip((wa @ ws) / (nw * ns), -1.0, 1.0)
    out = e + (1.0 - 2.0 * e) * np.arccos(cos) / math.pi
    return float(out) if np.ndim(out) == 0 else out


def gibbs_error(mean: Any, s: float, x: Any, y: Any) -> np.ndarray:
    """Per-example Gibbs 0–1 error of :math:`Q = N(m, s^2 I)` (exact).

    :math:`W^\\top x \\sim N(m^\\top x, s^2\\|x\\|^2)` under Q, so

    .. math::

        P_{W\\sim Q}\\big(y\\, W^\\top x < 0\\big) = \\Phi\\Big(-\\frac{y\\, m^\\top x}{s\\,\\|x\\|}\\Big).

    Args:
        mean: m, shape (d,).
        s: isotropic standard deviation > 0.
        x: inputs, shape (n, d), nonzero rows.
        y: labels in {-1, +1}, shape (n,).

    Returns:
        Array of shape (n,) with entries in [0, 1].

    Raises:
        ValueError: shapes that do not match, s <= 0, labels not ±1, zero inputs.
    """
    m = _vector("mean", mean)
    s = check_positive("s", s)
    xa = _vector("x", x)
    if m.ndim != 1:
        raise ValueError(f"mean: expected shape (d,), got {m.shape}")
    if xa.ndim != 2 or xa.shape[1] != m.size:
        raise ValueError(f"x: expected shape (n, {m.size}), got {xa.shape}")
    ya = np.asarray(y, dtype=np.float64)
    if ya.shape != (xa.shape[0],) or not np.all(np.abs(ya) == 1.0):
        raise ValueError(f"y: expected labels in {{-1, +1}} of shape ({xa.shape[0]},), got shape {ya.shape}")
    nx = np.linalg.norm(xa, axis=1)
    if np.any(nx == 0):
        raise ValueError("x: expected nonzero inputs (the classifier's sign is undefined at 0)")
    return ndtr(-ya * (xa @ m) / (s * nx))


def _gauss_legendre_01(k: int) -> tuple[np.ndarray, np.ndarray]:
    t, w = np.polynomial.legendre.leggauss(k)
    return 0.5 * (t + 1.0), 0.5 * w


def population_gibbs_risk(
    mean: Any, s: Any, w_star: Any, eta: float, *, n_angle: int = 256, n_radius: int = 96
) -> float | np.ndarray:
    """Population Gibbs 0–1 risk of :math:`Q = N(m, s^2 I_d)` on the noisy half-space problem.

    Averaging the per-example error over x: only the projection of :math:`z = x/\\|x\\|` (uniform on the
    sphere) on the plane spanned by :math:`u = w_*/\\|w_*\\|` and :math:`m` matters. In polar coordinates
    :math:`(u^\\top z, v^\\top z) = r(\\cos\\psi, \\sin\\psi)`, with :math:`\\psi` uniform and independent of
    :math:`r`, :math:`r^2 \\sim \\mathrm{Beta}(1, (d-2)/2)` (:math:`r = 1` for d = 2), and by the symmetry
    :math:`z \\to -z`,

    .. math::

        L_\\mu(Q) = \\eta + (1-2\\eta)\\, \\frac1\\pi \\int_{-\\pi/2}^{\\pi/2}
        \\mathbb E_r\\Big[\\Phi\\Big(-\\frac{r\\,\\|m\\|}{s}\\cos(\\psi - \\alpha)\\Big)\\Big]\\,d\\psi,
        \\qquad \\alpha = \\theta(m, w_*),

    which equals :math:`\\eta + (1-2\\eta)\\,\\mathbb E_{W\\sim Q}[\\theta(W, w_*)]/\\pi`. The ψ integral is
    split where the integrand crosses 1/2 (ψ = α − π/2) and done by Gauss–Legendre with nodes clustered at
    the split; the r expectation by Gauss–Legendre in the quantile :math:`r^2 = 1 - (1-u)^{2/(d-2)}`.

    Args:
        mean: m, shape (..., d) (several posteriors at once), nonzero.
        s: isotropic standard deviation(s) > 0, scalar or shape ``mean.shape[:-1]``.
        w_star: true direction, shape (d,), nonzero; d >= 2.
        eta: label-flip probability in [0, 0.5).
        n_angle: Gauss–Legendre nodes on each side of the split (default 256).
        n_radius: Gauss–Legendre nodes for the radius (default 96).

    Returns:
        A float for one posterior, else an array of shape ``mean.shape[:-1]``.

    Raises:
        ValueError: bad shapes, d < 2, zero vectors, s <= 0, eta out of range.
    """
    m = _vector("mean", mean)
    ws = _vector("w_star", w_star)
    d = m.shape[-1]
    if ws.ndim != 1 or ws.size != d:
        raise ValueError(f"w_star: expected shape ({d},) to match mean, got {ws.shape}")
    if d < 2:
        raise ValueError(f"mean: expected dimension d >= 2, got d = {d}")
    e = _check_eta(eta)
    n_angle = check_int("n_angle", n_angle, minimum=8)
    n_radius = check_int("n_radius", n_radius, minimum=4)
    sa = np.asarray(s, dtype=np.float64)
    if not np.all(np.isfinite(sa) & (sa > 0)):
        raise ValueError(f"s: expected standard deviations > 0 and finite, got {s!r}")
    sa = np.broadcast_to(sa, m.shape[:-1])
    nm = np.linalg.norm(m, axis=-1)
    ns = np.linalg.norm(ws)
    if np.any(nm == 0) or ns == 0:
        raise ValueError("mean: expected nonzero vectors, got a zero vector")
    alpha = np.arccos(np.clip((m @ ws) / (nm * ns), -1.0, 1.0))  # (...,)
    kappa = nm / sa
    # radius nodes: r^2 = 1 - (1 - u)^(1/beta), beta = (d - 2) / 2
    if d == 2:
        r, wr = np.ones(1), np.ones(1)
    else:
        u, wr = _gauss_legendre_01(n_radius)
        r = np.sqrt(-np.expm1(np.log1p(-u) * 2.0 / (d - 2)))
    # angle nodes: psi = psi0 + side * L * t^2 on each side of psi0 = alpha - pi/2
    t, wt = _gauss_legendre_01(n_angle)
    psi0 = alpha - 0.5 * math.pi  # in [-pi/2, pi/2]
    total = np.zeros_like(alpha)
    for length, side in ((psi0 + 0.5 * math.pi, -1.0), (0.5 * math.pi - psi0, 1.0)):
        lg = length[..., None]
        psi = psi0[..., None] + side * lg * t**2  # (..., n_angle)
        jac = 2.0 * lg * t * wt  # dpsi = 2 L t dt
        cosv = np.cos(psi - alpha[..., None])  # (..., n_angle)
        arg = -(kappa[..., None, None] * cosv[..., None]) * r  # (..., n_angle, n_radius)
        inner = ndtr(arg) @ wr  # (..., n_angle)
        total = total + np.sum(inner * jac, axis=-1)
    out = e + (1.0 - 2.0 * e) * total / math.pi
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class RepeatResult:
    """Failure rate of the certificate over repeated draws of the data (theory.md §7 oracle).

    Attributes:
        d, n_t, n_s, eta, repetitions, delta, delta_mc, n_draws, scale, control, posterior: the settings
            (``delta_mc = 0`` and ``n_draws = 0`` on the exact path).
        nominal_level: δ + δ', the largest failure rate the theory allows.
        nominal_stderr: :math:`\\sqrt{\\alpha(1-\\alpha)/R}` at α = nominal_level.
        failures: number of repetitions where the certificate was below the population Gibbs risk.
        failure_rate: :class:`~kdbounds._records.Estimate` with the binomial standard error and a 95 %
            Clopper–Pearson interval.
        mean_certificate, mean_population_risk, mean_empirical_risk, mean_divergence: averages over
            repetitions.
        certificates, population_risks: per repetition.
    """

    d: int
    n_t: int
    n_s: int
    eta: float
    repetitions: int
    delta: float
    delta_mc: float
    n_draws: int
    scale: float
    control: bool
    posterior: str
    nominal_level: float
    nominal_stderr: float
    failures: int
    failure_rate: Estimate
    mean_certificate: float
    mean_population_risk: float
    mean_empirical_risk: float
    mean_divergence: float
    certificates: tuple[float, ...]
    population_risks: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (the per-repetition tuples become lists)."""
        out = asdict(self)
        out["certificates"] = list(self.certificates)
        out["population_risks"] = list(self.population_risks)
        return out


def _least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Minimum-norm least-squares fit of y on x (interpolates when d > n)."""
    return np.linalg.lstsq(x, y, rcond=None)[0]


def repeat_certificates(
    *,
    d: int,
    n_t: int,
    n_s: int,
    eta: float,
    repetitions: int,
    rng: np.random.Generator,
    delta: float = 0.05,
    scale: float = 0.3,
    n_draws: int | None = None,
    delta_mc: float | None = None,
    control: bool = False,
    posterior: str = "both",
    w_star: Any = None,
) -> RepeatResult:
    """Draw the data R times, certify each posterior, count how often the certificate fails.

    Each repetition: draw :math:`D_T` (n_t) and :math:`D_S` (n_s) from the noisy half-space problem;
    the prior mean :math:`m_P` is the least-squares fit of y on x over :math:`D_T`; the posterior mean
    :math:`m_Q` is the least-squares fit over :math:`D_T \\cup D_S` (``posterior="both"``, default: the bound
    holds for every Q, so Q may use D_S) or over :math:`D_S` alone (``"certification"``); both kernels are
    isotropic with the prior-determined scale :math:`s = \\text{scale}\\cdot\\|m_P\\|/\\sqrt d`, so

    .. math::

        K = \\frac{\\|m_Q - m_P\\|^2}{2 s^2}, \\qquad
        \\hat L_S(Q) = \\frac1{n_S}\\sum_{i\\in D_S} \\Phi\\Big(-\\frac{y_i m_Q^\\top x_i}{s\\|x_i\\|}\\Big).

    Exact path (``n_draws=None``): certificate :math:`\\mathrm{kl}^{-1}(\\hat L_S, (K + \\ln(2\\sqrt{n_S}/\\delta))/n_S)`,
    nominal level δ. Monte Carlo path (``n_draws=M``, ``delta_mc=δ'``): :math:`\\hat L_M` from M draws
    :math:`W_j \\sim Q` evaluated on all of :math:`D_S`, certificate from
    :func:`~kdbounds.certificates.bounds.compose_certificate`, nominal level δ + δ'. A failure is a
    repetition where the certificate is below the exact population Gibbs risk
    (:func:`population_gibbs_risk`).

    Negative control (``control=True``): the prior is fitted on :math:`D_S` itself and equals the
    posterior (:math:`m_P = m_Q` = least squares on :math:`D_S`, K = 0), which breaks the independence the
    theorem needs. With d > n_S the fit interpolates D_S, its empirical Gibbs risk is small and the
    certificate fails most of the time — the check's power.

    Args:
        d: input dimension (>= 2).
        n_t: |D_T| (>= 1; unused by the control's fits but still drawn).
        n_s: |D_S| (>= 1).
        eta: label-flip probability in [0, 0.5).
        repetitions: R (>= 1).
        rng: random generator (explicit).
        delta: δ in (0, 1).
        scale: posterior/prior standard deviation in units of ‖m_P‖/√d (> 0).
        n_draws: M for the Monte Carlo path, or None for the exact empirical Gibbs risk.
        delta_mc: δ' in (0, 1), required with ``n_draws`` and refused without it.
        control: run the negative control.
        posterior: ``"both"`` or ``"certification"`` (ignored by the control).
        w_star: true direction (d,), or None to draw a standard normal one from ``rng``.

    Returns:
        :class:`RepeatResult`.

    Raises:
        ValueError / TypeError: any argument out of range, before any work.
    """
    d = check_int("d", d, minimum=2)
    n_t = check_int("n_t", n_t, minimum=1)
    n_s = check_int("n_s", n_s, minimum=1)
    e = _check_eta(eta)
    reps = check_int("repetitions", repetitions, minimum=1)
    g = _rng(rng)
    delta = check_open_unit("delta", delta)
    scale = check_positive("scale", scale)
    posterior = check_choice("posterior", posterior, ("both", "certification"))
    if n_draws is None:
        if delta_mc is not None:
            raise ValueError("delta_mc: only meaningful with n_draws (the Monte Carlo path); pass n_draws=M or drop it")
        m_draws, dmc = 0, 0.0
    else:
        m_draws = check_int("n_draws", n_draws, minimum=1)
        if delta_mc is None:
            raise ValueError("delta_mc: required with n_draws (the Monte Carlo step's confidence δ'), e.g. 0.01")
        _, dmc = check_confidences(delta, delta_mc)
    if w_star is None:
        ws = g.standard_normal(d)
    else:
        ws = _vector("w_star", w_star)
        if ws.shape != (d,) or not np.any(ws != 0):
            raise ValueError(f"w_star: expected a nonzero vector of shape ({d},), got shape {ws.shape}")

    m_q = np.empty((reps, d))
    s_all = np.empty(reps)
    k_all = np.empty(reps)
    emp = np.empty(reps)
    for i in range(reps):
        x_t, y_t = sample_halfspace(n_t, ws, e, g)
        x_s, y_s = sample_halfspace(n_s, ws, e, g)
        if control:
            mp = _least_squares(x_s, y_s)
            mq = mp
        else:
            mp = _least_squares(x_t, y_t)
            if posterior == "both":
                mq = _least_squares(np.vstack([x_t, x_s]), np.concatenate([y_t, y_s]))
            else:
                mq = _least_squares(x_s, y_s)
        s = scale * float(np.linalg.norm(mp)) / math.sqrt(d)
        if s <= 0:
            raise ValueError("the prior mean fitted to zero (degenerate data); increase n_t")
        m_q[i], s_all[i] = mq, s
        k_all[i] = 0.5 * float(np.sum((mq - mp) ** 2)) / s**2
        if m_draws == 0:
            emp[i] = float(np.mean(gibbs_error(mq, s, x_s, y_s)))
        else:
            w = mq + s * g.standard_normal((m_draws, d))
            emp[i] = float(np.mean((x_s @ w.T) * y_s[:, None] < 0))
    if m_draws == 0:
        cert = np.asarray(kl_inverse_upper(emp, pac_bayes_complexity(k_all, n_s, delta)), dtype=np.float64)
        level = delta
    else:
        up = np.asarray(mc_risk_upper(emp, m_draws, dmc), dtype=np.float64)
        cert = np.asarray(kl_inverse_upper(up, pac_bayes_complexity(k_all, n_s, delta)), dtype=np.float64)
        level = delta + dmc
        # the vectorised chain equals the scalar record's (kept in sync by construction, checked here once)
        ref = compose_certificate(float(emp[0]), m_draws, float(k_all[0]), n_s, delta, dmc).risk_upper
        if not math.isclose(ref, float(cert[0]), rel_tol=1e-12, abs_tol=1e-15):  # pragma: no cover
            raise RuntimeError("vectorised certificate disagrees with compose_certificate")
    pop = np.asarray(population_gibbs_risk(m_q, s_all, ws, e), dtype=np.float64).reshape(reps)
    fails = int(np.sum(cert < pop))
    rate = fails / reps
    lo, hi = clopper_pearson(int(fails), int(reps))
    return RepeatResult(
        d=d,
        n_t=n_t,
        n_s=n_s,
        eta=e,
        repetitions=reps,
        delta=delta,
        delta_mc=dmc,
        n_draws=m_draws,
        scale=scale,
        control=bool(control),
        posterior=posterior,
        nominal_level=level,
        nominal_stderr=math.sqrt(level * (1 - level) / reps),
        failures=fails,
        failure_rate=Estimate(rate, math.sqrt(rate * (1 - rate) / reps), reps, lo, hi, 0.95),
        mean_certificate=float(np.mean(cert)),
        mean_population_risk=float(np.mean(pop)),
        mean_empirical_risk=float(np.mean(emp)),
        mean_divergence=float(np.mean(k_all)),
        certificates=tuple(float(c) for c in cert),
        population_risks=tuple(float(p) for p in pop),
    )
