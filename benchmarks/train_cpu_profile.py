"""CPU training-loop profile (issue 16 item 4): process CPU time per epoch of the training step on
2,000 real CIFAR-10 images for the study's models, under loop variants.

Variants (one per process, so thread settings and compilation caches do not leak):
  eager        contiguous tensors, eager mode (what kdbounds.distill.trainer does on CPU)
  channels_last  model and batches in channels-last memory format
  compile      torch.compile(model) (inductor; the first epoch includes compilation, reported apart)
Threads: --threads N sets torch.set_num_threads(N). Process CPU time counts all threads, so for
N > 1 the wall time is the speed figure (noisy on a shared machine) and CPU time the cost.

    python benchmarks/train_cpu_profile.py --arch resnet8 --variant eager --threads 1 --json out.json
    python benchmarks/train_cpu_profile.py --all --json results/benchmarks/train_cpu_profile.json

Measured 30 Nov 2026 (2,000 real CIFAR-10 images, batch 64, SGD + nesterov, crop/flip, torch 2.13 CPU;
process CPU s per epoch, median of epochs 2-3; shared 2-core machine at load 9-12; two runs each
for eager / channels_last, in both orders):

    model     eager        channels_last   torch.compile (first epoch incl. compile)   eager, 2 threads
    resnet8   3.61 / 3.50  2.77 / 2.51     3.00 (18.6)                                  21.6 (wall 64)
    resnet14  6.77 / 6.32  4.83 / 4.75     4.78 (23.7)                                  40.3 (wall 105)

Channels-last saves 23-28 % of the training CPU time at no set-up cost; torch.compile (works offline
here: inductor + gcc) saves about as much for resnet14 and less for resnet8, but its compilation costs
15-20 CPU s (1-2 min wall under load) per process, i.e. more than it saves over a 16-epoch student on
2,000 images. Two intra-op threads on the oversubscribed machine cost 6x the CPU time (OpenMP
spin-waiting) and were 3-5x slower in wall time: use one thread per process when the machine is shared.
Recommendation for kdbounds.distill.trainer: channels-last on the CPU too (today CUDA only), keep eager,
default to 1 thread when os.cpu_count() is small or jobs run in parallel.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdbounds._io import atomic_write_json  # noqa: E402
from kdbounds.data import TensorLoader, load_cifar, stratified_subset  # noqa: E402
from kdbounds.models import build_model  # noqa: E402

VARIANTS = ("eager", "channels_last", "compile")


def one(arch: str, variant: str, threads: int, epochs: int, n_per_class: int, batch: int) -> dict:
    torch.set_num_threads(threads)
    X, Y = load_cifar("cifar10", split="train")
    idx = stratified_subset(Y, n_per_class, seed=0)
    x, y = X[idx], Y[idx]
    cl = variant == "channels_last"
    model = build_model(arch, 10, seed=0)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if variant == "compile" else model
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                          nesterov=True)
    loader = TensorLoader(x, y, batch_size=batch, shuffle=True, augment=True, device="cpu", seed=0,
                          normalize="cifar10", channels_last=cl)
    model.train()
    cpu, wall = [], []
    for _ in range(epochs):
        c0, w0 = time.process_time(), time.perf_counter()
        for xb, yb in loader:
            loss = F.cross_entropy(step_model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    steady_cpu, steady_wall = cpu[1:] or cpu, wall[1:] or wall
    return {"arch": arch, "variant": variant, "threads": threads, "images": len(y), "batch": batch,
            "epochs": epochs, "cpu_s_per_epoch": cpu, "wall_s_per_epoch": wall,
            "cpu_s_per_epoch_steady_median": statistics.median(steady_cpu),
            "wall_s_per_epoch_steady_median": statistics.median(steady_wall),
            "first_epoch_cpu_s": cpu[0], "torch": torch.__version__}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet8")
    p.add_argument("--variant", choices=VARIANTS, default="eager")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3, help="first one is warm-up (and compilation)")
    p.add_argument("--n-per-class", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--all", action="store_true",
                   help="every arch in --archs x variant x --thread-list, one process each")
    p.add_argument("--archs", default="resnet8,resnet14")
    p.add_argument("--thread-list", default="1,2")
    p.add_argument("--json", default="results/benchmarks/train_cpu_profile.json")
    a = p.parse_args(argv)
    if not a.all:
        res = one(a.arch, a.variant, a.threads, a.epochs, a.n_per_class, a.batch_size)
        atomic_write_json(a.json, res)
        print(json.dumps({k: v for k, v in res.items() if "median" in k or k in ("arch", "variant", "threads", "first_epoch_cpu_s")}))
        return 0
    rows = []
    for arch in a.archs.split(","):
        for threads in (int(t) for t in a.thread_list.split(",")):
            for variant in VARIANTS:
                tmp = Path(a.json).with_suffix(f".{arch}.{variant}.t{threads}.json")
                cmd = [sys.executable, __file__, "--arch", arch, "--variant", variant, "--threads",
                       str(threads), "--epochs", str(a.epochs), "--n-per-class", str(a.n_per_class),
                       "--batch-size", str(a.batch_size), "--json", str(tmp)]
                rc = subprocess.call(cmd)
                rows.append(json.loads(tmp.read_text()) if rc == 0 and tmp.exists() else
                            {"arch": arch, "variant": variant, "threads": threads, "error": f"exit {rc}"})
    atomic_write_json(a.json, {"benchmark": "train_cpu_profile", "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
