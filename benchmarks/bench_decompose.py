"""Benchmark: closed-form decomposition K = B + R_r + V at d = 1000, k = 50 (target <= 1 s), against
a Monte Carlo estimate of the same KL (mean of log q_S(W) - log q_T(W), W ~ q_S): the MC standard error
at equal wall time, and the (extrapolated) time MC needs to reach the closed form's accuracy.

    python benchmarks/bench_decompose.py [--d 1000 --k 50 --n 2000 --rank 10 --repeats 5 --out PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import linear_gaussian as lg  # noqa: E402


def dense_oracle(S: lg.MatrixNormal, T: lg.MatrixNormal) -> float:
    """Textbook KL with dense LU solves (independent route, used to gauge the closed form's accuracy)."""
    k, d = S.mean.shape
    D = S.mean - T.mean
    mean = 0.5 * np.sum(D * np.linalg.solve(T.col_cov, D.T).T)
    R = np.linalg.solve(T.col_cov, S.col_cov)
    return float(mean + 0.5 * k * (np.trace(R) - d - np.linalg.slogdet(R)[1]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mc-samples", type=int, default=64, help="samples used to time MC and estimate its per-sample SD")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/benchmarks/bench_decompose.json")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    prob = lg.random_problem(args.d, args.k, args.n, 0.5, rng, cond=100.0, w_rank=min(args.k, args.d) // 2)
    data = prob.sample(rng)
    T = lg.teacher_kernel(data, lam_T=1.0, tau_T=prob.nu**2)
    S = lg.student_kernel(data, T, lam_S=2.0, tau_S=0.5 * prob.nu**2, rank=args.rank)
    t_kernels = time.perf_counter() - t0

    times = []
    dec = None
    for _ in range(args.repeats):
        t = time.perf_counter()
        dec = lg.decompose(S, T, args.rank)
        times.append(time.perf_counter() - t)
    t_dec = statistics.median(times)

    # near-identical covariances (V ~ 0): the covariance term falls back to eigenvalues (eigvalsh, d x d)
    S_eq = lg.MatrixNormal(S.mean, T.col_cov * (1.0 + 1e-9))
    times_eq = []
    for _ in range(max(1, args.repeats // 2)):
        t = time.perf_counter()
        lg.decompose(S_eq, T, args.rank)
        times_eq.append(time.perf_counter() - t)
    t_dec_eq = statistics.median(times_eq)

    t = time.perf_counter()
    K_dense = dense_oracle(S, T)
    t_dense = time.perf_counter() - t
    accuracy = max(abs(dec.total - K_dense), 1e-12 * abs(dec.total))

    t = time.perf_counter()
    mc = lg.kl_monte_carlo(S, T, args.mc_samples, rng, batch=16)
    t_mc = time.perf_counter() - t
    t_per_sample = t_mc / args.mc_samples
    sd = mc.stderr * math.sqrt(args.mc_samples)
    n_equal_time = max(int(t_dec / t_per_sample), 1)
    se_equal_time = sd / math.sqrt(n_equal_time)
    n_needed = (sd / accuracy) ** 2
    t_needed = n_needed * t_per_sample

    res = {
        "config": vars(args),
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "numpy": np.__version__, "loadavg": os.getloadavg()},
        "decomposition": dec.to_dict(),
        "time_kernels_s": t_kernels,
        "time_decompose_s": t_dec,
        "time_decompose_all_s": times,
        "time_decompose_near_equal_cov_s": t_dec_eq,
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "time_dense_oracle_s": t_dense,
        "closed_form_accuracy_abs": accuracy,
        "closed_form_vs_dense_oracle_rel": abs(dec.total - K_dense) / abs(K_dense),
        "mc": mc.to_dict(),
        "mc_time_per_sample_s": t_per_sample,
        "mc_sd_per_sample": sd,
        "mc_se_at_equal_time": se_equal_time,
        "mc_samples_at_equal_time": n_equal_time,
        "mc_samples_for_closed_form_accuracy": n_needed,
        "mc_time_for_closed_form_accuracy_s": t_needed,
        "ratio_mc_time_to_closed_form": t_needed / t_dec,
        "ratio_mc_se_equal_time_to_closed_form_error": se_equal_time / accuracy,
    }
    rows = [
        ("decompose (median of %d)" % args.repeats, f"{t_dec:.3f} s"),
        ("decompose, V ~ 0 (eigen fallback)", f"{t_dec_eq:.3f} s"),
        ("kernel construction", f"{t_kernels:.3f} s"),
        ("K = B + R + V", f"{dec.total:.6g} = {dec.bias:.4g} + {dec.rank_bottleneck:.4g} + {dec.variance:.4g}"),
        ("closed form vs dense oracle", f"{accuracy:.2e} abs ({res['closed_form_vs_dense_oracle_rel']:.1e} rel)"),
        ("MC per sample", f"{t_per_sample * 1e3:.2f} ms, SD {sd:.3g}"),
        ("MC SE at equal time", f"{se_equal_time:.3g} ({n_equal_time} samples)"),
        ("MC time to closed-form accuracy", f"{t_needed:.3g} s ({n_needed:.3g} samples)"),
        ("ratio MC time / closed form", f"{t_needed / t_dec:.3g}"),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"bench_decompose  d={args.d} k={args.k} n={args.n} rank={args.rank}")
    for a, b in rows:
        print(f"  {a:<{w}}  {b}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
