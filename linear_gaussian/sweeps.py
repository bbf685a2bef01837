"""Sweeps for the linear-Gaussian trade-off experiment (pure numpy computation; figures are in
:mod:`linear_gaussian.plots`, writing files is the caller's job).

``run_sweeps(config)`` returns one row per (sweep, value, seed) with the three terms of
``K = B + R_r + V`` (theory.md §3.4), the exact gap difference ``gen(S|D) - gen(T|D)`` and every bound
of theory.md §4 with its tightness ratio.  ``summarize(rows)`` fits the log-log slopes of the terms
against n (expected: R_r ~ n^1, B ~ n^-1, V ~ n^0).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from .divergence import decompose
from .model import random_problem, student_kernel, teacher_kernel
from .risk import instantiated_bounds

__all__ = ["TradeoffConfig", "run_sweeps", "sweep_rows", "summarize", "mean_by_x", "SWEEPS"]

SWEEPS = ("rank", "n", "tau_ratio", "lam_S")


@dataclass(frozen=True)
class TradeoffConfig:
    r"""Base instance and sweep grids; every sweep varies one knob from the base values.

    :math:`\tau_T = \nu^2` (Bayes teacher) unless given; :math:`\tau_S = \text{tau\_ratio}\cdot\tau_T`.
    """

    d: int = 20
    k: int = 8
    n: int = 200
    nu: float = 0.5
    cond: float = 10.0
    w_rank: int | None = None
    lam_T: float = 1.0
    lam_S: float = 1.0
    tau_T: float | None = None
    tau_ratio: float = 2.0
    rank: int = 2
    labels: str = "deterministic"
    metric: str = "teacher"
    ranks: tuple[int, ...] | None = None  # None: 0..min(k, d)
    ns: tuple[int, ...] = (25, 50, 100, 200, 400, 800, 1600, 3200)
    tau_ratios: tuple[float, ...] = (0.25, 0.5, 0.8, 1.0, 1.25, 2.0, 4.0)
    lam_Ss: tuple[float, ...] = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)
    seeds: tuple[int, ...] = (0, 1, 2)

    @classmethod
    def quick(cls) -> "TradeoffConfig":
        """A small configuration for tests and smoke runs.

        Returns:
            ``d=8, k=4, n=100``, three values per grid, one seed.
        """
        return cls(d=8, k=4, n=100, ns=(25, 100, 400), tau_ratios=(0.5, 1.0, 2.0), lam_Ss=(0.1, 1.0, 10.0), seeds=(0,))

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON values.

        Returns:
            Every field, as a dict.
        """
        return asdict(self)


def _row(cfg: TradeoffConfig, sweep: str, x: float, seed: int, **over: Any) -> dict[str, Any]:
    p = {**asdict(cfg), **over}
    rng = np.random.default_rng([seed, 0])
    prob = random_problem(cfg.d, cfg.k, int(p["n"]), cfg.nu, rng, cond=cfg.cond, w_rank=cfg.w_rank)
    data_rng = np.random.default_rng([seed, 1, int(p["n"])])
    data = prob.sample(data_rng)
    tau_T = cfg.nu**2 if cfg.tau_T is None else cfg.tau_T
    tau_S = float(p["tau_ratio"]) * tau_T
    T = teacher_kernel(data, p["lam_T"], tau_T)
    S = student_kernel(data, T, p["lam_S"], tau_S, rank=int(p["rank"]), labels=cfg.labels, metric=cfg.metric,
                       rng=np.random.default_rng([seed, 2]), nu=cfg.nu)
    dec = decompose(S, T, int(p["rank"]))
    b = instantiated_bounds(prob, data, T, S)
    return {
        "sweep": sweep, "x": float(x), "seed": seed, "d": cfg.d, "k": cfg.k, "n": int(p["n"]), "rank": int(p["rank"]),
        "lam_T": float(p["lam_T"]), "lam_S": float(p["lam_S"]), "tau_T": tau_T, "tau_S": tau_S,
        "total": dec.total, "bias": dec.bias, "rank_bottleneck": dec.rank_bottleneck, "variance": dec.variance,
        "gen_teacher": b.gen_teacher, "gen_student": b.gen_student, "gap_difference": b.gap_difference,
        "var_teacher": b.var_teacher,
        "theorem3b_upper": b.theorem3b_upper, "theorem3b_lower": b.theorem3b_lower,
        "subgamma_upper": b.subgamma_upper, "subgamma_lower": b.subgamma_lower,
        "theorem1_bound": b.theorem1_bound, "theorem3a_bound": b.theorem3a_bound,
        "theorem2_lower_gen_student": b.theorem2_lower_gen_student,
        "ratio_theorem3b": b.ratio_theorem3b, "ratio_subgamma": b.ratio_subgamma,
        "ratio_theorem1": b.ratio_theorem1, "ratio_theorem3a": b.ratio_theorem3a,
        "theorem3b_holds": b.theorem3b_holds,
    }


def _jobs(cfg: TradeoffConfig) -> list[tuple[str, float, int, dict[str, Any]]]:
    ranks = cfg.ranks if cfg.ranks is not None else tuple(range(min(cfg.k, cfg.d) + 1))
    jobs: list[tuple[str, float, int, dict[str, Any]]] = []
    for s in cfg.seeds:
        jobs += [("rank", r, s, {"rank": r}) for r in ranks]
        jobs += [("n", n, s, {"n": n}) for n in cfg.ns]
        jobs += [("tau_ratio", t, s, {"tau_ratio": t}) for t in cfg.tau_ratios]
        jobs += [("lam_S", lam, s, {"lam_S": lam}) for lam in cfg.lam_Ss]
    return jobs


def run_sweeps(cfg: TradeoffConfig, progress: bool = True) -> list[dict[str, Any]]:
    """All sweep rows (a tqdm bar when ``progress``).

    Args:
        cfg: the sweep configuration.
        progress: show a progress bar.

    Returns:
        One dict per (sweep, x, seed): the decomposition, the bounds and the exact gap difference.
    """
    jobs = _jobs(cfg)
    it: Iterable = jobs
    if progress:
        from tqdm import tqdm

        it = tqdm(jobs, desc="linear-Gaussian sweeps", unit="inst")
    return [_row(cfg, sweep, x, seed, **over) for sweep, x, seed, over in it]


def sweep_rows(config: dict[str, Any], sweep: str, seed: int) -> list[dict[str, Any]]:
    """The rows of one sweep and one seed: a unit of work for a sweep runner (picklable arguments).

    Concatenating ``sweep_rows`` over ``seeds`` (outer) and :data:`SWEEPS` (inner) gives the rows of
    :func:`run_sweeps` in the same order.

    Args:
        config: ``TradeoffConfig.to_dict()``.
        sweep: one of :data:`SWEEPS`.
        seed: one of the config's seeds.

    Returns:
        One dict per x of the sweep (see :func:`run_sweeps`).

    Raises:
        ValueError: an unknown ``sweep`` or a ``seed`` the config does not hold.
    """
    cfg = TradeoffConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    if sweep not in SWEEPS:
        raise ValueError(f"sweep: expected one of {SWEEPS}, got {sweep!r}")
    if seed not in cfg.seeds:
        raise ValueError(f"seed: expected one of the config's seeds {cfg.seeds}, got {seed!r}")
    return [_row(cfg, sw, x, s, **over) for sw, x, s, over in _jobs(cfg) if sw == sweep and s == seed]


def mean_by_x(rows: list[dict[str, Any]], sweep: str, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard error over seeds of ``key`` at each x of one sweep.

    Args:
        rows: rows from :func:`run_sweeps`.
        sweep: the sweep's name.
        key: the column to average (``None`` values are skipped).

    Returns:
        ``(xs, means, stderrs)``, sorted by x (NaN mean where no value; stderr 0 for one value).
    """
    xs = sorted({r["x"] for r in rows if r["sweep"] == sweep})
    m, se = [], []
    for x in xs:
        v = np.array([r[key] for r in rows if r["sweep"] == sweep and r["x"] == x and r[key] is not None], float)
        m.append(v.mean() if v.size else np.nan)
        se.append(v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else 0.0)
    return np.array(xs, float), np.array(m), np.array(se)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Log-log slopes vs n of R_r, B, V (expected 1, -1, 0) and bound validity / tightness.

    Args:
        rows: rows from :func:`run_sweeps`.

    Returns:
        ``{"slope_<term>_vs_n", "all_theorem3b_hold", "median_ratio_<bound>", "n_rows"}``.
    """
    out: dict[str, Any] = {}
    for key in ("rank_bottleneck", "bias", "variance", "total"):
        x, m, _ = mean_by_x(rows, "n", key)
        ok = (m > 0) & np.isfinite(m)
        out[f"slope_{key}_vs_n"] = float(np.polyfit(np.log(x[ok]), np.log(m[ok]), 1)[0]) if ok.sum() >= 2 else None
    out["all_theorem3b_hold"] = all(r["theorem3b_holds"] for r in rows)
    for key in ("ratio_theorem3b", "ratio_subgamma", "ratio_theorem1", "ratio_theorem3a"):
        v = np.array([r[key] for r in rows if r[key] is not None], float)
        out[f"median_{key}"] = float(np.median(v)) if v.size else None
    out["n_rows"] = len(rows)
    return out
