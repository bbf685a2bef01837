"""The trainer with glibc's default malloc against the tuned thresholds of ``kdbounds.runs.allocator``.

    python benchmarks/allocator.py --json benchmarks/results/allocator.json      # airbench94, fast recipe
    python benchmarks/allocator.py --arch airbench_s --n-per-class 400 --repeats 2 --synthetic
    python benchmarks/allocator.py --data /path/to/root                         # CIFAR-10 from there

Each measurement is one fresh process (the setting is process-wide and cannot be undone), training the same
network on the same images with the same seed through ``kdbounds.distill.train`` (fast recipe, one epoch by
default, no evaluation); the two modes alternate and swap order every repeat, because the machine may be shared.
Per process: wall and training-phase seconds, user and system CPU seconds, minor page faults, peak RSS, and a
SHA-256 of the trained weights — the two modes must give the same weights (the run fails otherwise). Prints
strict JSON with the medians and the ratios tuned / default: ``cpu_s_tuned_over_default``,
``train_s_tuned_over_default``, ``minor_faults_tuned_over_default``, ``peak_rss_tuned_over_default``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _child import malloc_env, run_child  # noqa: E402

MODES = ("default", "tuned")


def _data(n_per_class: int, synthetic: bool, root: str | None = None):
    import numpy as np

    if synthetic:
        g = np.random.default_rng(0)
        n = 10 * n_per_class
        return g.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10, "synthetic uint8 images"
    from kdbounds.data import load_cifar, stratified_subset

    x, y = load_cifar("cifar10", split="train", root=root)
    idx = stratified_subset(y, n_per_class, seed=0)
    return x[idx], y[idx], "CIFAR-10"


def child(a: argparse.Namespace) -> dict:
    """One training in this process, in mode ``a.mode``; its measurements."""
    import torch

    from kdbounds.distill import train
    from kdbounds.distill.recipes import fast_config
    from kdbounds.io import file_sha256
    from kdbounds.runs.allocator import tune_cpu_allocator

    torch.set_num_threads(a.threads)
    tuning = tune_cpu_allocator() if a.mode == "tuned" else None
    x, y, source = _data(a.n_per_class, a.synthetic, a.data)
    cfg = fast_config(a.arch, epochs=a.epochs, batch_size=a.batch_size, eval_every=10**6, seed=0,
                      recipe_kwargs={"tta_level": 0})
    with tempfile.TemporaryDirectory() as d:
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        res = train(cfg, d, data=(x, y, x[:100], y[:100]), progress=False, resume=False)
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
        weights = file_sha256(res.paths["model"])  # the trainer writes byte-identical files for equal weights
    return {"mode": a.mode, "applied": None if tuning is None else tuning.applied, "source": source,
            "wall_s": wall, "train_s": sum(e["train_time_s"] for e in res.history),
            "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime,
            "minor_faults": r1.ru_minflt - r0.ru_minflt, "peak_rss_mib": r1.ru_maxrss / 1024,
            "weights_sha256": weights}


def _spawn(a: argparse.Namespace, mode: str) -> dict:
    args = [__file__, "--child", "--mode", mode, "--arch", a.arch, "--n-per-class", str(a.n_per_class), "--epochs",
            str(a.epochs), "--batch-size", str(a.batch_size), "--threads", str(a.threads)]
    args += ["--synthetic"] if a.synthetic else ([] if a.data is None else ["--data", a.data])
    return run_child(args, malloc_env(mode != "default"), mode)


def main(argv: list[str] | None = None) -> int:
    """Measure both modes and print (and optionally write) the JSON record.

    Args:
        argv: arguments.

    Returns:
        The exit code.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="airbench94")
    p.add_argument("--n-per-class", type=int, default=400, help="training images per class (default 400: 4,000)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--synthetic", action="store_true", help="random uint8 images instead of CIFAR-10")
    p.add_argument("--data", default=None,
                   help="CIFAR-10 root (default: $KDBOUNDS_DATA, then the standard places)")
    p.add_argument("--json", default=None, help="also write the record here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=MODES, default="tuned", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for name in ("n_per_class", "epochs", "batch_size", "repeats", "threads"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if a.synthetic and a.data is not None:
        p.error("--data: not used with --synthetic (random images); drop one of the two")
    if not a.synthetic and not a.child:
        from _data import require_cifar10

        require_cifar10(p, "--data", a.data)
    if a.child:
        print(json.dumps(child(a)))
        return 0
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    for r in range(a.repeats):
        for mode in (MODES if r % 2 == 0 else MODES[::-1]):
            runs[mode].append(_spawn(a, mode))
            print(f"repeat {r + 1}/{a.repeats} {mode}: {runs[mode][-1]['train_s']:.1f} s training, "
                  f"{runs[mode][-1]['sys_s']:.1f} s system CPU", file=sys.stderr, flush=True)
    hashes = {x["weights_sha256"] for m in MODES for x in runs[m]}
    if len(hashes) != 1:
        raise SystemExit(f"the modes trained different weights ({len(hashes)} distinct hashes): not a speed-only change")
    if not all(x["applied"] for x in runs["tuned"]):
        raise SystemExit("the tuning was not applied in the tuned children (not Linux/glibc?); nothing to compare")
    med = {m: {k: statistics.median(x[k] for x in runs[m])
               for k in ("wall_s", "train_s", "user_s", "sys_s", "minor_faults", "peak_rss_mib")} for m in MODES}
    for m in MODES:
        med[m]["cpu_s"] = statistics.median(x["user_s"] + x["sys_s"] for x in runs[m])

    def ratio(k: str) -> float:
        return med["tuned"][k] / med["default"][k]

    rec = {"arch": a.arch, "images": 10 * a.n_per_class, "epochs": a.epochs, "batch_size": a.batch_size,
           "threads": a.threads, "repeats": a.repeats, "data": runs["tuned"][0]["source"], "same_weights": True,
           "cpu_s_tuned_over_default": ratio("cpu_s"), "train_s_tuned_over_default": ratio("train_s"),
           "wall_s_tuned_over_default": ratio("wall_s"), "minor_faults_tuned_over_default": ratio("minor_faults"),
           "peak_rss_tuned_over_default": ratio("peak_rss_mib"), "median": med, "runs": runs,
           "python": platform.python_version(), "glibc": platform.libc_ver()[1]}
    import torch

    rec["torch"] = torch.__version__
    text = json.dumps(rec, indent=1, allow_nan=False)
    print(text)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
