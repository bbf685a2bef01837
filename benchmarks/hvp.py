"""Hessian-vector product benchmark: ResNet-20, CIFAR shapes, one batch of 128.

Measures, in one run on the same model and batch:
  * gradient time (one forward + backward, autograd.grad);
  * the PyHessian-style baseline HVP: ``g = autograd.grad(loss, params, create_graph=True)`` then
    ``autograd.grad(sum(g . v), params)`` (one vector per full forward + double backward);
  * kdbounds.curvature.HessianOperator products in every mode (single vector) and in blocks
    (rev-rev with graph reuse, vmap over fwd-rev), reported per vector;
  * estimator costs: Hutchinson products to reach 5 % relative SE, Lanczos vs power iteration
    products to reach rtol 1e-3 on the top eigenvalue;
  * peak memory per phase (RSS sampled from /proc on CPU, max_memory_allocated on CUDA).

Model and data: a randomly initialised ResNet-20 on Gaussian inputs with random labels (default), or
with ``--checkpoint PATH`` a trained model rebuilt by ``kdbounds.distill.load_checkpoint_model`` on
real CIFAR-10 images (``kdbounds.data.load_cifar("cifar10")``, normalised as in training; the data
root comes from $KDBOUNDS_DATA). ``--estimators-only`` skips the HVP timing part.

Prints a table and writes JSON to --out (default results/benchmarks/hvp.json).
Usage: python benchmarks/hvp.py [--repeats 5] [--block 8] [--device cpu] [--quick]
       KDBOUNDS_DATA=/path/to/data python benchmarks/hvp.py --checkpoint model.pt --estimators-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdbounds.curvature import (  # noqa: E402
    HessianOperator,
    hutchinson_trace,
    hutchpp_trace,
    power_iteration,
    top_eigenvalues,
)


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


# ------------------------------------------------------------------------------------------
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--block", type=int, default=16, help="vectors per matmat block")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hutch-max", type=int, default=96, help="Hutchinson product cap")
    ap.add_argument("--hutchpp-budget", type=int, default=48)
    ap.add_argument("--lanczos-max", type=int, default=40)
    ap.add_argument("--power-max", type=int, default=60)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's default)")
    ap.add_argument("--timer", choices=("wall", "process"), default="wall",
                    help="process = CPU time of this process (use with --threads 1 on a busy machine)")
    ap.add_argument("--est-batch", type=int, default=32,
                    help="batch size of the estimator-cost part (product counts only)")
    ap.add_argument("--vmap-block", type=int, default=4)
    ap.add_argument("--lanczos-ref-max", type=int, default=150,
                    help="product cap of the long reference Lanczos run (other start vector, tol 1e-9)")
    ap.add_argument("--ref-dtype", choices=("float64", "float32"), default="float64",
                    help="dtype of the reference Lanczos run")
    ap.add_argument("--checkpoint", default=None, metavar="PATH",
                    help="trained model file / training checkpoint, loaded with "
                         "kdbounds.distill.load_checkpoint_model; must be a resnet20-style 10-class "
                         "CIFAR model (3x32x32 inputs). Uses real CIFAR-10 images (load_cifar('cifar10'), "
                         "root from $KDBOUNDS_DATA) instead of random inputs. Default: random-init ResNet-20")
    ap.add_argument("--split", choices=("train", "test"), default="train",
                    help="CIFAR-10 split the batch is drawn from (with --checkpoint)")
    ap.add_argument("--n-per-class", type=int, default=None,
                    help="with --checkpoint: draw from the trainer's stratified subset of this many "
                         "images per class (kdbounds.data.stratified_subset, --subset-seed)")
    ap.add_argument("--subset-seed", type=int, default=0)
    ap.add_argument("--estimators-only", action="store_true",
                    help="skip the HVP timing part; measure only the estimator costs")
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller estimator caps")
    ap.add_argument("--out", default="results/benchmarks/hvp.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.repeats, a.hutch_max, a.lanczos_max, a.power_max, a.hutchpp_budget = 1, 32, 20, 20, 12
    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    t_start = time.perf_counter()

    if a.checkpoint:
        model, source, x, y, setup = checkpoint_setup(a.checkpoint, a.batch, a.seed, device, a.split,
                                                      a.n_per_class, a.subset_seed)
    else:
        model, source, x, y, setup = random_setup(a.batch, a.seed, device)
    gen = torch.Generator().manual_seed(a.seed + 1)
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    data = [(x, y)]
    loss_fn = F.cross_entropy
    rows: list[dict] = []
    mode_err: dict = {}
    if not a.estimators_only:
        v = torch.randn(n, generator=gen).to(device)
        V = torch.randn(n, a.block, generator=gen).to(device)
        vs = [t.view_as(p) for t, p in zip(torch.split(v, [p.numel() for p in params]), params)]

        def record(name, fn, per, note="", warmup=1):
            with PeakMemory(device) as pm:
                med, best = timeit(fn, a.repeats, device, warmup=warmup, timer=a.timer)
            rows.append({"name": name, "median_s": med / per, "min_s": best / per,
                         "vectors_per_call": per, "peak_mem_mib": pm.peak_mib, "note": note})
            print(f"  {name}: {med / per:.4f} s/vector (min {best / per:.4f})", flush=True)

        def grad_only():
            loss = loss_fn(model(x), y)
            return torch.autograd.grad(loss, params)

        def pyhessian_hvp():
            loss = loss_fn(model(x), y)
            g = torch.autograd.grad(loss, params, create_graph=True)
            gv = sum((gi * vi).sum() for gi, vi in zip(g, vs))
            return torch.autograd.grad(gv, params)

        record("gradient", grad_only, 1, "autograd.grad of the loss")
        record("baseline_pyhessian_hvp", pyhessian_hvp, 1, "create_graph grad, then grad of g.v")
        ops = {m: HessianOperator(model, loss_fn, data, mode=m) for m in ("rev-rev", "fwd-rev", "vmap")}
        Vv = V[:, : a.vmap_block].contiguous()
        record("kdbounds_rev-rev_single", lambda: ops["rev-rev"].matvec(v), 1)
        record("kdbounds_fwd-rev_single", lambda: ops["fwd-rev"].matvec(v), 1)
        record(f"kdbounds_rev-rev_block{a.block}", lambda: ops["rev-rev"].matmat(V), a.block,
               "one forward+grad graph reused for the block", warmup=0)
        record(f"kdbounds_vmap_block{a.vmap_block}", lambda: ops["vmap"].matmat(Vv), a.vmap_block,
               "vmap over fwd-rev", warmup=0)

        by = {r["name"]: r for r in rows}
        t_grad = by["gradient"]["median_s"]
        t_base = by["baseline_pyhessian_hvp"]["median_s"]
        for r in rows:
            r["ratio_to_gradient"] = r["median_s"] / t_grad
            r["ratio_to_baseline_hvp"] = r["median_s"] / t_base

        # consistency of modes (float32 rounding only)
        ref = ops["rev-rev"].matvec(v)
        mode_err = {m: float((ops[m].matvec(v) - ref).norm() / ref.norm()) for m in ("fwd-rev", "vmap")}
        base = torch.cat([t.reshape(-1) for t in pyhessian_hvp()])
        mode_err["baseline_pyhessian"] = float((base - ref).norm() / ref.norm())

        del ops

    # estimators (default operator: rev-rev with blocks), on the first est_batch examples
    eb = min(a.est_batch, a.batch)
    op = HessianOperator(model, loss_fn, [(x[:eb], y[:eb])])
    est: dict = {}
    with PeakMemory(device) as pm:
        t0 = time.perf_counter()
        tr = hutchinson_trace(op, target_rel_se=0.05, max_matvecs=a.hutch_max, min_matvecs=10,
                              block_size=a.block, seed=a.seed)
        est["hutchinson_seconds"] = time.perf_counter() - t0
    est["hutchinson"] = {"value": tr.value, "stderr": tr.stderr, "n_matvecs_run": tr.n_matvecs,
                         "converged": tr.converged, "peak_mem_mib": pm.peak_mib,
                         "matvecs_to_5pct_rel_se": first_rel_se(tr.samples, 0.05, 10)}
    sd = float(torch.tensor(tr.samples, dtype=torch.float64).std())
    est["hutchinson"]["matvecs_to_5pct_rel_se_extrapolated"] = int((sd / (0.05 * abs(tr.value))) ** 2) + 1
    with PeakMemory(device) as pm:
        t0 = time.perf_counter()
        hpp = hutchpp_trace(op, a.hutchpp_budget, seed=a.seed)
        est["hutchpp_seconds"] = time.perf_counter() - t0
    est["hutchpp"] = {"value": hpp.value, "stderr_conditional": hpp.stderr,
                      "n_matvecs": hpp.n_matvecs, "rel_se": hpp.rel_stderr,
                      "peak_mem_mib": pm.peak_mib}
    with PeakMemory(device) as pm:
        t0 = time.perf_counter()
        lz = top_eigenvalues(op, 1, tol=1e-7, max_matvecs=a.lanczos_max, seed=a.seed)
        est["lanczos_seconds"] = time.perf_counter() - t0
    lz_mem = pm.peak_mib
    with PeakMemory(device) as pm:
        t0 = time.perf_counter()
        pw = power_iteration(op, max_matvecs=a.power_max, tol=1e-12, seed=a.seed)
        est["power_seconds"] = time.perf_counter() - t0
    # converged reference: a long Lanczos run from another start vector, residual tolerance 1e-9,
    # in float64 by default (float32 products put a ~1e-5 relative noise floor on Rayleigh quotients)
    t0 = time.perf_counter()
    ref_dtype = getattr(torch, a.ref_dtype)
    op_ref = op if ref_dtype == torch.float32 else HessianOperator(
        model, loss_fn, [(x[:eb].to(ref_dtype), y[:eb])], dtype=ref_dtype)
    lref = top_eigenvalues(op_ref, 1, tol=1e-9, max_matvecs=a.lanczos_ref_max, seed=a.seed + 7919)
    del op_ref
    est["reference_seconds"] = time.perf_counter() - t0
    if lref.converged:
        ref_top, ref_how = lref.value, f"long {a.ref_dtype} Lanczos run (converged, tol 1e-9)"
    else:
        ref_top = max(lref.value, lz.value, pw.value)
        ref_how = (f"NOT converged: long Lanczos run stopped at {lref.n_matvecs} products "
                   f"(residual {lref.stderr:.2g}); max of all runs used")
    n_lz = first_reach(lz.history, ref_top, 1e-3)
    n_pw = first_reach(pw.history, ref_top, 1e-3)
    # top-3 (tol 1e-4) for the gap ratio lambda_2 / lambda_1 that governs power iteration
    t3 = top_eigenvalues(op, 3, tol=1e-4, max_matvecs=max(60, a.lanczos_max), seed=a.seed + 1)
    est["top3"] = {"eigenvalues": [float(e) for e in t3.eigenvalues], "converged_tol1e-4": t3.converged,
                   "n_matvecs_run": t3.n_matvecs,
                   "lambda2_over_lambda1": float(t3.eigenvalues[1] / t3.eigenvalues[0])}
    est["top_eigenvalue_reference"] = ref_top
    est["reference"] = {"value": lref.value, "residual": lref.stderr, "n_matvecs_run": lref.n_matvecs,
                        "converged_tol1e-9": lref.converged, "how": ref_how,
                        "lanczos_rel_diff": abs(lz.value - ref_top) / abs(ref_top),
                        "power_rel_diff": abs(pw.value - ref_top) / abs(ref_top)}
    est["lanczos"] = {"value": lz.value, "residual": lz.stderr, "n_matvecs_run": lz.n_matvecs,
                      "converged_tol1e-7": lz.converged, "matvecs_to_rtol_1e-3": n_lz,
                      "peak_mem_mib": lz_mem}
    est["power_iteration"] = {"value": pw.value, "n_matvecs_run": pw.n_matvecs,
                              "matvecs_to_rtol_1e-3": n_pw, "peak_mem_mib": pm.peak_mib,
                              "note": None if n_pw else f"not reached within {a.power_max}"}
    # each method with its own stopping rule at 1e-3 (what a user would run)
    lz3 = top_eigenvalues(op, 1, tol=1e-3, max_matvecs=a.lanczos_max, seed=a.seed)
    pw_stop = next((i + 1 for i in range(1, len(pw.history))
                    if abs(pw.history[i] - pw.history[i - 1]) <= 1e-3 * abs(pw.history[i])), None)
    est["own_stopping_rule_1e-3"] = {
        "lanczos_matvecs": lz3.n_matvecs,
        "lanczos_rel_error": abs(lz3.value - ref_top) / abs(ref_top),
        "power_matvecs": pw_stop,
        "power_rel_error": (abs(pw.history[pw_stop - 1] - ref_top) / abs(ref_top)) if pw_stop else None,
    }
    est["lanczos_over_power_matvecs"] = (n_lz / n_pw) if (n_lz and n_pw) else (
        f"<= {n_lz}/{a.power_max} = {n_lz / a.power_max:.3f} (power did not reach rtol)"
        if n_lz else None)

    out = {
        "benchmark": "hvp", "model": source, "setup": setup, "num_params": n, "batch": a.batch,
        "estimators_only": a.estimators_only,
        "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "platform": platform.platform(), "python": platform.python_version(),
        "repeats": a.repeats, "block": a.block, "vmap_block": a.vmap_block, "timer": a.timer,
        "estimator_batch": eb, "rows": rows, "mode_rel_error_vs_rev-rev": mode_err,
        "estimators": est, "max_rss_mib_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_seconds": time.perf_counter() - t_start,
    }
    print(f"HVP benchmark: {source}, {n} params, batch {a.batch}, {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, {a.timer} time; "
          f"estimator costs on batch {eb}")
    print(f"data: {setup}")
    if rows:
        print(f"{'what':34s} {'s/vector':>9s} {'/grad':>7s} {'/baseline':>9s} {'peak MiB':>9s}")
        for r in rows:
            print(f"{r['name']:34s} {r['median_s']:9.4f} {r['ratio_to_gradient']:7.2f} "
                  f"{r['ratio_to_baseline_hvp']:9.2f} {r['peak_mem_mib']:9.1f}")
        print(f"mode agreement (rel. error vs rev-rev): {mode_err}")
    else:
        print("HVP timing part skipped (--estimators-only)")
    h = est["hutchinson"]
    print(f"Hutchinson: trace {h['value']:.4g} ± {h['stderr']:.2g}; products to 5% rel SE: "
          f"{h['matvecs_to_5pct_rel_se']} (run {h['n_matvecs_run']}, {est['hutchinson_seconds']:.1f} s)")
    print(f"  (extrapolated: {h['matvecs_to_5pct_rel_se_extrapolated']} products); Hutch++ with "
          f"{est['hutchpp']['n_matvecs']} products: {est['hutchpp']['value']:.4g} ± "
          f"{est['hutchpp']['stderr_conditional']:.2g} (rel SE {est['hutchpp']['rel_se']:.3f})")
    r_ = est["reference"]
    print(f"reference top eigenvalue {ref_top:.7g}: {r_['how']}, {r_['n_matvecs_run']} products, "
          f"residual {r_['residual']:.2g}; Lanczos run final {lz.value:.7g} ({lz.n_matvecs} products), "
          f"power final {pw.value:.7g} ({pw.n_matvecs} products)")
    print(f"top-3 eigenvalues {[round(e, 3) for e in est['top3']['eigenvalues']]} "
          f"(lambda2/lambda1 = {est['top3']['lambda2_over_lambda1']:.3f}, converged "
          f"{est['top3']['converged_tol1e-4']}, {est['top3']['n_matvecs_run']} products)")
    print(f"top eigenvalue {ref_top:.6g}: Lanczos reaches rtol 1e-3 after {n_lz} products, power "
          f"iteration after {n_pw}; ratio {est['lanczos_over_power_matvecs']}")
    o = est["own_stopping_rule_1e-3"]
    print(f"own stopping rules at 1e-3: Lanczos (residual) {o['lanczos_matvecs']} products, rel. error "
          f"{o['lanczos_rel_error']:.1e}; power (relative change) {o['power_matvecs']} products, rel. "
          f"error {o['power_rel_error']}")
    print(f"wall time {out['wall_seconds']:.1f} s")
    path = Path(a.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
