"""Run every benchmark in turn and collect their JSON outputs under --out (default results/benchmarks).

    python benchmarks/run_all.py            # all benchmarks, CPU defaults
    python benchmarks/run_all.py --quick    # shorter settings where a benchmark offers them

Each benchmark measures its ratio against a baseline timed in the same run (see each script's
docstring for targets). Timings on a shared machine are noisy: read the ratios, not the seconds.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(HERE.parent / "results" / "benchmarks"))
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        ["bench_decompose.py", "--out", str(out / "decompose.json")],
        ["hvp.py", "--threads", "2", "--out", str(out / "hvp.json")] + (["--quick"] if a.quick else []),
        # against the real PyHessian / curvlinops / dit (pyproject's bench extra), one thread,
        # process CPU time; ratios hvp_over_pyhessian ... broja_time_over_dit in hvp_peers.json
        ["hvp.py", "--peers", "--threads", "1", "--json", str(out / "hvp_peers.json")]
        + (["--quick"] if a.quick else ["--batch", "64", "--block", "8"]),
        ["train_throughput.py", "--threads", "1", "--out", str(out / "train_throughput.json")]
        + (["--epochs", "1", "--repeats", "2"] if a.quick else []),
        # glibc's malloc tuned (kdbounds.runs.allocator) against its defaults, fresh processes: cpu_s_tuned_over_default
        ["allocator.py", "--json", str(out / "allocator.json")]
        + (["--arch", "airbench_s", "--n-per-class", "400", "--repeats", "2"] if a.quick else []),
    ]
    failed = []
    for job in jobs:
        t = time.perf_counter()
        print(f"== {job[0]}", flush=True)
        rc = subprocess.call([sys.executable, str(HERE / job[0]), *job[1:]])
        print(f"== {job[0]} finished with exit code {rc} in {time.perf_counter() - t:.0f} s", flush=True)
        if rc:
            failed.append(job[0])
    if failed:
        print("failed:", ", ".join(failed))
        return 1
    print("results in", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
