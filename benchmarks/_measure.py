"""Shared measurement helpers of the curvature benchmarks (hvp.py, peers.py): models and batches,
timers (wall or process CPU time), peak memory, convergence counters."""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ------------------------------------------------------------------------------------------
# ResNet-20 (He et al. 2016, CIFAR variant) used when kdbounds.models is not available.
# ------------------------------------------------------------------------------------------
class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = cout - cin
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x
        if self.stride != 1 or self.pad:
            sc = x[:, :, :: self.stride, :: self.stride]
            sc = F.pad(sc, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + sc)


class LocalResNet20(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(3):
                blocks.append(_Block(cin, cout, stride if i == 0 else 1))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build_resnet20() -> tuple[nn.Module, str]:
    try:
        from kdbounds.models import build_model  # type: ignore

        return build_model("resnet20", 10), "kdbounds.models.build_model('resnet20', 10)"
    except Exception:  # noqa: BLE001 - benchmark falls back to its own definition
        return LocalResNet20(10), "benchmarks/hvp.py LocalResNet20"


# ------------------------------------------------------------------------------------------
# Measurement helpers
# ------------------------------------------------------------------------------------------
class PeakMemory:
    """Peak memory increase (MiB) over a block: CUDA allocator, or RSS polled from /proc."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mib = float("nan")

    @staticmethod
    def _rss() -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        self.base = self._rss()
        self.peak = self.base
        self.stop = False

        def poll():
            while not self.stop:
                self.peak = max(self.peak, self._rss())
                time.sleep(0.002)

        self.thread = threading.Thread(target=poll, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self.base) / 2**20
            return False
        self.stop = True
        self.thread.join()
        self.peak = max(self.peak, self._rss())
        self.peak_mib = (self.peak - self.base) / 2**20
        return False


def peak_tensor_mib(fn, device: torch.device) -> float:
    """Peak of the bytes held by live tensors while ``fn()`` runs, above what was held before, MiB:
    ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the allocation events of
    ``torch.profiler`` (``profile_memory=True``; each carries the allocator's running total), which
    count tensors exactly where RSS deltas are blurred by the C allocator's caching."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    allocs, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        if e.tag == _EventType.Allocation:
            allocs.append((e.start_time_ns, e.extra_fields.alloc_size, e.extra_fields.total_allocated))
        stack.extend(e.children)
    if not allocs:
        return 0.0
    allocs.sort()
    base = allocs[0][2] - allocs[0][1]
    return (max(a[2] for a in allocs) - base) / 2**20


def timeit(fn, repeats: int, device: torch.device, warmup: int = 1,
           timer: str = "wall") -> tuple[float, float]:
    """Median and minimum time of ``fn``; ``timer="process"`` uses process CPU time (robust to
    other jobs on a shared machine when torch runs one thread; meaningless on CUDA)."""
    clock = time.process_time if timer == "process" else time.perf_counter

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        sync()
        times.append(clock() - t0)
    return statistics.median(times), min(times)


def first_reach(history, ref: float, rtol: float) -> int | None:
    """Products after which the history is within ``rtol`` of ``ref`` and stays there."""
    n = None
    for i, v in enumerate(history):
        if abs(v - ref) <= rtol * abs(ref):
            if n is None:
                n = i + 1
        else:
            n = None
    return n


def change_stop(history, rtol: float) -> int | None:
    """Products after which PyHessian's rule (relative change of the estimate between two
    consecutive products <= ``rtol``) first stops a run with this ``history``; ``None`` if never."""
    return next((i + 1 for i in range(1, len(history))
                 if abs(history[i] - history[i - 1]) <= rtol * abs(history[i])), None)


def random_setup(batch: int, seed: int, device: torch.device):
    """Random-init ResNet-20, Gaussian inputs, random labels; BatchNorm running statistics from
    three forward passes on noisy copies of the batch. Returns (model, source, x, y, info)."""
    torch.manual_seed(seed)
    model, source = build_resnet20()
    model = model.to(device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        model.train()
        for _ in range(3):
            model(x + 0.1 * torch.randn(x.shape, generator=gen).to(device))
    return model.eval(), source, x, y, {"data": "random Gaussian inputs, random labels"}


def checkpoint_setup(path: str, batch: int, seed: int, device: torch.device, split: str,
                     n_per_class: int | None, subset_seed: int):
    """Trained CIFAR-10 model from ``path`` and ``batch`` real CIFAR-10 images of ``split``
    (optionally restricted first to the stratified subset ``n_per_class`` / ``subset_seed`` that the
    trainer uses), chosen by a seeded permutation and normalised with the CIFAR-10 statistics."""
    from kdbounds.data import load_cifar, stratified_subset
    from kdbounds.data.transforms import normalization, normalize_uint8
    from kdbounds.distill import load_checkpoint_model

    model = load_checkpoint_model(path, map_location=device)
    arch, ncls = getattr(model, "arch", type(model).__name__), getattr(model, "num_classes", None)
    if ncls != 10:
        raise ValueError(f"--checkpoint {path!r} holds a model with num_classes={ncls}; this benchmark "
                         f"needs a 10-class CIFAR-10 model (resnet20-style)")
    images, labels = load_cifar("cifar10", split=split)
    idx = np.arange(len(labels))
    if n_per_class is not None:
        idx = idx[stratified_subset(labels, n_per_class, seed=subset_seed)]
    if batch > len(idx):
        raise ValueError(f"--batch {batch} is larger than the {len(idx)} images available; "
                         f"lower --batch or raise --n-per-class")
    gen = torch.Generator().manual_seed(seed)
    sel = idx[torch.randperm(len(idx), generator=gen)[:batch].numpy()]
    xu = torch.from_numpy(np.ascontiguousarray(images[sel])).permute(0, 3, 1, 2)
    mean, std = normalization("cifar10")
    x = normalize_uint8(xu, mean, std).contiguous().to(device)
    y = torch.from_numpy(labels[sel]).long().to(device)
    info = {"data": f"CIFAR-10 {split} images", "checkpoint": str(path), "arch": arch,
            "split": split, "n_per_class": n_per_class, "subset_seed": subset_seed,
            "pool_size": int(len(idx))}
    with torch.no_grad():
        z = model.eval()(x)
        z = z[0] if isinstance(z, tuple) else z
        info["batch_accuracy"] = float((z.argmax(1) == y).float().mean())
        info["batch_cross_entropy"] = float(F.cross_entropy(z, y))
    return model.eval(), f"checkpoint {path} ({arch})", x, y, info


def first_rel_se(samples, target: float, min_n: int) -> int | None:
    s = torch.tensor(samples, dtype=torch.float64)
    for m in range(max(2, min_n), len(s) + 1):
        mean = s[:m].mean()
        se = s[:m].std() / m**0.5
        if mean != 0 and se <= target * abs(mean):
            return m
    return None


