"""CPU cost of the certify_students study, per run: trainings and certifications (``time.process_time``).

    OMP_NUM_THREADS=1 python benchmarks/certify_students_cost.py --preset smoke --out results/benchmarks/cert_cost_smoke.json
    OMP_NUM_THREADS=1 python benchmarks/certify_students_cost.py --preset cpu --seeds 0 \\
        --out results/benchmarks/cert_cost_cpu.json --cache-root /tmp/cert-cpu-cache

Runs the study (local executor, one thread per run, from the given run cache: an empty one measures
every training) with timing wrappers around the run cache's trainer (CPU seconds per training, by
method and architecture) and around ``select_scales`` / ``certify`` (CPU seconds per student and
prior). CPU time is what the load of a shared machine does not inflate; the wall time and the load
average are recorded too. The study's own outputs go to ``<out>.study/``. Needs real CIFAR-10.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from kdbounds._io import atomic_write_json
    from kdbounds.runs import cache as cache_mod
    from kdbounds.studies import certify_students as cs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(cs.PRESETS), default="smoke")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--out", required=True, help="JSON file of the measurements")
    ap.add_argument("--cache-root", default=None, help="run cache (default: next to --out)")
    ap.add_argument("--data-root", default=None)
    a = ap.parse_args(argv)
    cfg = cs.PRESETS[a.preset]
    if a.seeds:
        cfg = cfg.replace(seeds=tuple(a.seeds))
    if a.data_root:
        cfg = cfg.replace(data_root=a.data_root)
    out = Path(a.out)
    cache = Path(a.cache_root) if a.cache_root else out.with_suffix(".cache")

    trainings: list[dict] = []
    cert = defaultdict(float)
    calls = defaultdict(int)
    real_train = cache_mod.train

    def timed_train(c, folder, **kw):
        t0, w0 = time.process_time(), time.perf_counter()
        r = real_train(c, folder, **kw)
        trainings.append({"run": Path(folder).name, "method": c.method, "arch": c.arch, "epochs": c.epochs,
                          "cpu_s": time.process_time() - t0, "wall_s": time.perf_counter() - w0})
        return r

    def timed(name, fn):
        def wrapper(*args, **kw):
            t0 = time.process_time()
            try:
                return fn(*args, **kw)
            finally:
                cert[name] += time.process_time() - t0
                calls[name] += 1
        return wrapper

    cache_mod.train = timed_train
    cs.select_scales = timed("select_scales", cs.select_scales)
    cs.certify = timed("certify", cs.certify)
    load0 = os.getloadavg()[0]
    t0, w0 = time.process_time(), time.perf_counter()
    res = cs.run(cfg, out.with_suffix(".study"), cache_root=cache, progress=False, log=print,
                 sweep={"executor": "local", "threads": 1})
    total_cpu, total_wall = time.process_time() - t0, time.perf_counter() - w0
    by_method = defaultdict(float)
    for t in trainings:
        by_method[f"{t['method']}:{t['arch']}"] += t["cpu_s"]
    rec = {"preset": a.preset, "config": dataclasses.asdict(cfg), "total_cpu_s": total_cpu, "total_wall_s": total_wall,
           "loadavg_1min": [load0, os.getloadavg()[0]], "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "training_cpu_s_by_method": dict(by_method), "trainings": trainings,
           "certification_cpu_s": dict(cert), "certification_calls": dict(calls), "n_certificates": len(res.certificates)}
    atomic_write_json(out, rec)
    print({k: round(v, 1) for k, v in by_method.items()}, {k: round(v, 1) for k, v in cert.items()},
          f"total {total_cpu:.1f} CPU-s, {total_wall:.0f} s wall -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
