"""A study's training grid on the sweep runner: local vs Ray, wall time, CPU time and per-run overhead.

    python benchmarks/study_sweep.py --preset smoke --workers 2 --out results/benchmarks/study_sweep.json
    python benchmarks/study_sweep.py --preset smoke --n-per-class 100 --epochs 2 --workers 2

Trains the grid of :func:`kdbounds.studies.functional_transfer.training_specs` (1 teacher, then KD,
RCD, SIDDO and alone students per seed) three times from an empty run cache each: ``local``, ``ray``
with ``--workers 1`` (same sequential schedule as local, so the difference per run is Ray's per-run
overhead: task dispatch, result transfer, a worker loading the data once) and ``ray`` with
``--workers``. The Ray cluster is started once before (its start time is reported separately).
CPU time: the driver's ``process_time`` plus, for every run, the ``process_time`` of the process that
trained it, measured around the run inside that process. The data is
loaded once before (untimed); the local grid is timed before and after the Ray ones (the load drifts) (so it counts Ray worker CPU too, but not the
workers' start-up and imports). Needs real CIFAR-10 (KDBOUNDS_DATA) and the ``ray`` extra. Numbers
depend on the machine's load: ``loadavg_1min`` is recorded before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdbounds._io import atomic_write_json  # noqa: E402
from kdbounds.studies import functional_transfer as ft  # noqa: E402
from kdbounds.runs.grid import train_timed  # noqa: E402
from kdbounds.runs.sweep import RAY_LOCAL_SYSTEM_CONFIG, run_sweep  # noqa: E402


def specs_for(cfg: ft.Config, cache: Path) -> list:
    out = []
    for s in ft.training_specs(cfg, cache):
        out.append(dataclasses.replace(s, fn=train_timed))
    return out


def measure(cfg: ft.Config, label: str, **sweep) -> dict:
    cache = Path(tempfile.mkdtemp(prefix=f"study-sweep-{label}-"))
    try:
        w, c = time.perf_counter(), time.process_time()
        out = run_sweep(specs_for(cfg, cache), progress=False, **sweep)
        wall, driver_cpu = time.perf_counter() - w, time.process_time() - c
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    runs_cpu = sum(v.cpu_s for v in out.values())
    return {"wall_s": wall, "driver_cpu_s": driver_cpu, "runs_cpu_s": runs_cpu,
            "cpu_s": driver_cpu + (runs_cpu if sweep.get("executor") == "ray" else 0.0),
            "final": {k: {m: x for m, x in v.value.final.items() if not m.endswith("_time_s")}
                      for k, v in out.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="smoke", choices=sorted(ft.PRESETS))
    p.add_argument("--n-per-class", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="teacher and student epochs")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker-nice", type=int, default=None,
                   help="niceness of the Ray workers (default: that of run_sweep's local clusters, 0; Ray's own "
                        "default is 15)")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    cfg = ft.PRESETS[a.preset]
    if a.n_per_class:
        cfg = dataclasses.replace(cfg, n_per_class=a.n_per_class)
    if a.epochs:
        cfg = dataclasses.replace(cfg, teacher_epochs=a.epochs, student_epochs=a.epochs)
    n = len(ft.training_specs(cfg, "/nonexistent"))
    rec: dict = {"worker_nice": a.worker_nice if a.worker_nice is not None else
                 RAY_LOCAL_SYSTEM_CONFIG["worker_niceness"], "preset": a.preset, "config": cfg.params(), "runs": n, "workers": a.workers,
                 "cpus": os.cpu_count(), "loadavg_1min_before": os.getloadavg()[0]}
    from kdbounds.runs.grid import load_data

    w = time.perf_counter()
    load_data(ft.training_specs(cfg, "/nonexistent")[0].kwargs["data"])  # decode/cache the data once, untimed
    rec["data_load_s"] = time.perf_counter() - w
    rec["local"] = measure(cfg, "local", executor="local", threads=1)
    import ray

    here = str(Path(__file__).resolve().parent)
    root = str(Path(__file__).resolve().parents[1])
    w = time.perf_counter()
    ray.init(num_cpus=a.workers, include_dashboard=False, log_to_driver=False,
             _system_config=RAY_LOCAL_SYSTEM_CONFIG if a.worker_nice is None else {"worker_niceness": a.worker_nice},
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
                 [root, here, os.environ.get("PYTHONPATH", "")])}})
    rec["ray_init_s"] = time.perf_counter() - w
    try:
        rec["ray_workers1"] = measure(cfg, "ray1", executor="ray", workers=1, threads=1)
        rec[f"ray_workers{a.workers}"] = measure(cfg, "rayN", executor="ray", workers=a.workers, threads=1)
    finally:
        ray.shutdown()
    rec["local_again"] = measure(cfg, "local", executor="local", threads=1)  # the load drifts: a second look
    same = all(rec[k]["final"] == rec["local"]["final"]
               for k in ("ray_workers1", f"ray_workers{a.workers}", "local_again"))
    rec["identical_numbers"] = same
    local_wall = (rec["local"]["wall_s"] + rec["local_again"]["wall_s"]) / 2
    rec["ray_overhead_s_per_run"] = (rec["ray_workers1"]["wall_s"] - local_wall) / n
    rec["speedup_workers"] = local_wall / rec[f"ray_workers{a.workers}"]["wall_s"]
    rec["loadavg_1min_after"] = os.getloadavg()[0]
    for k, v in rec.items():
        if isinstance(v, dict) and "wall_s" in v:
            print(f"{k:>16}: wall {v['wall_s']:.1f} s, driver CPU {v['driver_cpu_s']:.1f} s, "
                  f"CPU in runs {v['runs_cpu_s']:.1f} s")
        elif k != "config":
            print(f"{k:>16}: {v:.4g}" if isinstance(v, float) else f"{k:>16}: {v}")
    for v in rec.values():
        if isinstance(v, dict):
            v.pop("final", None)
    if a.out:
        atomic_write_json(a.out, rec)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
