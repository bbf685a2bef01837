"""Per-run scheduling overhead of the sweep runner: Ray vs local on a grid of no-op runs.

    python benchmarks/sweep_overhead.py --runs 48 --workers 2 --out results/benchmarks/sweep_overhead.json

The grid is ``runs`` no-op runs: a quarter are "teachers" and each has three "students" that depend
on it (the shape of a study). A no-op run returns a number, so the wall time per run *is* the
runner's overhead. Reported: Ray cluster start (``ray.init``), the first sweep on fresh workers
(``cold``: includes starting worker processes and importing torch in each), a second sweep on the
same cluster (``warm``), each in ms per run, next to the local executor. Needs the ``ray`` extra.
On a loaded machine the seconds are noisy; ``driver_cpu_s`` is the driver's CPU time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdbounds._io import atomic_write_json  # noqa: E402
from kdbounds.runs.sweep import RunSpec, run_sweep  # noqa: E402


def noop(i: int, deps: dict | None = None) -> float:
    """A run that does nothing but return a number (plus its teacher's)."""
    return float(i) + (sum(deps.values()) if deps else 0.0)


def grid(n: int) -> list[RunSpec]:
    n_teachers = max(1, n // 4)
    specs = [RunSpec(f"t{t}", noop, {"i": t}) for t in range(n_teachers)]
    specs += [RunSpec(f"t{k % n_teachers}-s{k}", noop, {"i": k}, deps=(f"t{k % n_teachers}",))
              for k in range(n - n_teachers)]
    return specs


def timed(fn) -> tuple[float, float, object]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=48)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=None, help="JSON file for the numbers (optional)")
    a = p.parse_args(argv)
    if a.runs < 1 or a.workers < 1:
        p.error("--runs and --workers must be >= 1")
    specs = grid(a.runs)
    rec: dict[str, object] = {"runs": a.runs, "workers": a.workers, "cpus": os.cpu_count(),
                              "loadavg_1min": os.getloadavg()[0]}
    for phase in ("cold", "warm"):  # cold includes importing torch (to set its threads) once
        wall, cpu, local = timed(lambda: run_sweep(specs, progress=False))
        rec[f"local_{phase}_ms_per_run"], rec[f"local_{phase}_driver_cpu_s"] = 1e3 * wall / a.runs, cpu

    import ray

    w0 = time.perf_counter()
    wall, _, _ = timed(lambda: ray.init(num_cpus=a.workers, include_dashboard=False, log_to_driver=False,
                                        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}))
    rec["ray_init_s"] = wall
    try:
        for phase in ("cold", "warm"):
            wall, cpu, out = timed(lambda: run_sweep(specs, executor="ray", workers=a.workers, progress=False))
            assert out == local, "ray and local disagree"
            rec[f"ray_{phase}_ms_per_run"], rec[f"ray_{phase}_driver_cpu_s"] = 1e3 * wall / a.runs, cpu
    finally:
        w1 = time.perf_counter()
        ray.shutdown()
        rec["ray_shutdown_s"] = time.perf_counter() - w1
    rec["ray_total_s"] = time.perf_counter() - w0
    for k, v in rec.items():
        print(f"{k:>24}: {v:.4g}" if isinstance(v, float) else f"{k:>24}: {v}")
    if a.out:
        atomic_write_json(a.out, rec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
