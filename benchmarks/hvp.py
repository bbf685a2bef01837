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

Prints a table and writes JSON to --out (default results/benchmarks/hvp.json).
Usage: python benchmarks/hvp.py [--repeats 5] [--block 8] [--device cpu] [--quick]
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
    for i, v in enumerate(history):
        if abs(v - ref) <= rtol * abs(ref):
            return i + 1
    return None


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
    ap.add_argument("--quick", action="store_true", help="fewer repeats, smaller estimator caps")
    ap.add_argument("--out", default="results/benchmarks/hvp.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.repeats, a.hutch_max, a.lanczos_max, a.power_max, a.hutchpp_budget = 1, 32, 20, 20, 12
    device = torch.device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    t_start = time.perf_counter()

    torch.manual_seed(a.seed)
    model, source = build_resnet20()
    model = model.to(device)
    gen = torch.Generator().manual_seed(a.seed)
    x = torch.randn(a.batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (a.batch,), generator=gen).to(device)
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        model.train()
        for _ in range(3):
            model(x + 0.1 * torch.randn(x.shape, generator=gen).to(device))
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    data = [(x, y)]
    loss_fn = F.cross_entropy
    v = torch.randn(n, generator=gen).to(device)
    V = torch.randn(n, a.block, generator=gen).to(device)
    vs = [t.view_as(p) for t, p in zip(torch.split(v, [p.numel() for p in params]), params)]

    rows: list[dict] = []

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

    # estimators (default operator: rev-rev with blocks), on the first est_batch examples
    del ops
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
    ref_top = lz.value if lz.converged else max(lz.value, pw.value)
    n_lz = first_reach(lz.history, ref_top, 1e-3)
    n_pw = first_reach(pw.history, ref_top, 1e-3)
    est["top_eigenvalue_reference"] = ref_top
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
        "benchmark": "hvp", "model": source, "num_params": n, "batch": a.batch,
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
    print(f"{'what':34s} {'s/vector':>9s} {'/grad':>7s} {'/baseline':>9s} {'peak MiB':>9s}")
    for r in rows:
        print(f"{r['name']:34s} {r['median_s']:9.4f} {r['ratio_to_gradient']:7.2f} "
              f"{r['ratio_to_baseline_hvp']:9.2f} {r['peak_mem_mib']:9.1f}")
    print(f"mode agreement (rel. error vs rev-rev): {mode_err}")
    h = est["hutchinson"]
    print(f"Hutchinson: trace {h['value']:.4g} ± {h['stderr']:.2g}; products to 5% rel SE: "
          f"{h['matvecs_to_5pct_rel_se']} (run {h['n_matvecs_run']}, {est['hutchinson_seconds']:.1f} s)")
    print(f"  (extrapolated: {h['matvecs_to_5pct_rel_se_extrapolated']} products); Hutch++ with "
          f"{est['hutchpp']['n_matvecs']} products: {est['hutchpp']['value']:.4g} ± "
          f"{est['hutchpp']['stderr_conditional']:.2g} (rel SE {est['hutchpp']['rel_se']:.3f})")
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
