"""Benchmark: Monte Carlo throughput of certificates — weight draws evaluated per second on D_S.

One run, same kernel, same D_S, four ways of evaluating the Gibbs risk of Q = N(w, σ² I):

* ``shared/vmap``  — M draws, each on all of D_S, vectorised over draws (``torch.func.vmap``);
* ``shared/loop``  — the same M draws, a plain Python loop over draws;
* ``per_example/local``    — a fresh draw per (example, pass), exact local reparameterisation;
* ``per_example/explicit`` — a fresh full weight draw per example, vmap over (weight, example).

Reported per scheme: draw-evaluations per second (one network evaluation of one example under one
draw), whole-D_S draws per second (evaluations / n_S), and the Monte Carlo term ``ln(2/δ')/N`` one
second buys (N = M for shared draws, M·n_S for per-example draws). Wall and process CPU time are
both recorded; on a shared machine, quote CPU time.

    OMP_NUM_THREADS=2 python benchmarks/certify_throughput.py [--arch mlp256 --n 5000 --draws 16 --out PATH]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import torch

from kdbounds.pacbayes.kernels import GaussianKernel, draw_logits, per_example_logits
from kdbounds.models import build_model


def _time(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="mlp256")
    ap.add_argument("--n", type=int, default=5000, help="|D_S|")
    ap.add_argument("--draws", type=int, default=16, help="M for the shared schemes")
    ap.add_argument("--passes", type=int, default=2, help="passes over D_S for the per-example schemes")
    ap.add_argument("--explicit-n", type=int, default=500, help="examples for the (slow) explicit per-example scheme")
    ap.add_argument("--sigma", type=float, default=0.01)
    ap.add_argument("--delta-mc", type=float, default=0.01)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    model = build_model(a.arch, seed=0)
    K = GaussianKernel.from_model(model, a.sigma)
    x = torch.randn(a.n, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    w = K.sample(a.draws, g)
    draw_logits(K, x[:100], {n: t[:2] for n, t in w.items()})  # warm-up
    rows = []

    def add(name, wall, cpu, evals, n_eff):
        rows.append({"scheme": name, "evaluations": evals, "wall_s": wall, "cpu_s": cpu,
                     "evals_per_s_wall": evals / wall, "evals_per_s_cpu": evals / cpu,
                     "dS_draws_per_s_wall": evals / a.n / wall,
                     "mc_term_per_cpu_second": math.log(2 / a.delta_mc) / (n_eff / cpu)})

    wall, cpu = _time(lambda: draw_logits(K, x, w, mode="vmap", batch_size=1000))
    add("shared/vmap", wall, cpu, a.draws * a.n, a.draws)
    wall, cpu = _time(lambda: draw_logits(K, x, w, mode="loop", batch_size=1000))
    add("shared/loop", wall, cpu, a.draws * a.n, a.draws)
    wall, cpu = _time(lambda: [per_example_logits(K, x, g, method="local") for _ in range(a.passes)])
    add("per_example/local", wall, cpu, a.passes * a.n, a.passes * a.n)
    xe = x[:a.explicit_n]
    wall, cpu = _time(lambda: per_example_logits(K, xe, g, method="explicit", chunk=128))
    add("per_example/explicit", wall, cpu, a.explicit_n, a.explicit_n)
    res = {"arch": a.arch, "kernel_dim": K.dim, "n_s": a.n, "draws": a.draws, "passes": a.passes,
           "torch": torch.__version__, "threads": torch.get_num_threads(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "machine": platform.machine(),
           "load_avg_1m": os.getloadavg()[0], "rows": rows}
    for r in rows:
        print(f"{r['scheme']:22s} {r['evals_per_s_wall']:10.0f} evals/s wall  {r['evals_per_s_cpu']:10.0f} evals/s CPU  "
              f"{r['dS_draws_per_s_wall']:7.2f} D_S-draws/s wall   MC term per CPU-second {r['mc_term_per_cpu_second']:.2e}")
    print(f"(load average {res['load_avg_1m']:.1f}; vmap/loop speed-up {rows[1]['wall_s'] / rows[0]['wall_s']:.2f}x wall)")
    if a.out:
        from kdbounds._io import atomic_write_json

        atomic_write_json(a.out, res)
    return res


if __name__ == "__main__":
    main()
