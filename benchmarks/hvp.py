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
With ``--peers`` it instead compares against the real PyHessian, curvlinops and dit in one process
(see benchmarks/peers.py; process CPU time, one thread) and writes the ratios hvp_over_pyhessian,
hvp_over_curvlinops, hvp_over_gradient, topeig_matvecs_over_power, broja_time_over_dit to --json:
    python benchmarks/hvp.py --peers --quick --json results/benchmarks/hvp_peers.json   (~2 min CPU)
  plus, per backend: hvp_fwdrev_over_pyhessian, hvp_block_over_pyhessian (fwd-rev blocks, per vector),
  topeig_matvecs_over_power_median / _worst (5 seeds; kdbounds' median / worst count over PyHessian's
  median count), topeig_gradient_start_matvecs_over_power_median / _worst (start='gradient'),
  peak_memory_over_pyhessian; --peer-parts top_eigenvalue runs only that part;
    python benchmarks/hvp.py --peers --checkpoint model.pt --n-per-class 100 --batch 64 --block 8 \
        --json results/benchmarks/hvp_peers_b64.json        (trained model; KDBOUNDS_DATA needed)

Usage: python benchmarks/hvp.py [--repeats 5] [--block 8] [--device cpu] [--quick]
       KDBOUNDS_DATA=/path/to/data python benchmarks/hvp.py --checkpoint model.pt --estimators-only
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdbounds.curvature import (  # noqa: E402
    HessianOperator,
    hutchinson_trace,
    hutchpp_trace,
    power_iteration,
    top_eigenvalues,
)


from _measure import (  # noqa: E402
    PeakMemory,
    change_stop,
    checkpoint_setup,
    first_reach,
    first_rel_se,
    random_setup,
    timeit,
)


PEER_PARTS = ("hvp", "top_eigenvalue", "trace", "broja")


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
    ap.add_argument("--peers", action="store_true",
                    help="compare with the real PyHessian, curvlinops and dit in this process "
                         "(process CPU time; one thread unless --threads) and write the ratios "
                         "hvp_over_pyhessian, hvp_over_curvlinops, hvp_over_gradient, "
                         "topeig_matvecs_over_power, broja_time_over_dit to --json")
    ap.add_argument("--json", default=None, metavar="PATH",
                    help="with --peers: output JSON (default results/benchmarks/hvp_peers.json)")
    ap.add_argument("--eig-seeds", type=int, default=None,
                    help="with --peers: start vectors for the top-eigenvalue comparison "
                         "(default 5; the median and the worst ratio are reported)")
    ap.add_argument("--peer-parts", default=",".join(PEER_PARTS), metavar="LIST",
                    help="with --peers: comma-separated parts to run, of " + ",".join(PEER_PARTS)
                         + " (default all); the ratios of parts not run are null")
    ap.add_argument("--broja-laws", type=int, default=None,
                    help="with --peers: random laws per alphabet shape in the dit comparison "
                         "(default 2 with --quick, else 10)")
    a = ap.parse_args(argv)
    wanted = [w for w in a.peer_parts.split(",") if w]
    if not wanted or any(w not in PEER_PARTS for w in wanted):
        ap.error(f"--peer-parts: a comma-separated subset of {','.join(PEER_PARTS)}, got {a.peer_parts!r}")
    a.peer_parts = wanted
    if a.peers:
        return peers_main(a)
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
    pw_stop = change_stop(pw.history, 1e-3)
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


def peers_main(a: argparse.Namespace) -> dict:
    """``--peers``: kdbounds vs PyHessian / curvlinops / dit in one process; ratios to JSON."""
    import peers

    from kdbounds._io import atomic_write_json

    device = torch.device(a.device)
    threads = a.threads or 1
    torch.set_num_threads(threads)
    batch = 16 if (a.quick and a.batch == 128) else a.batch
    block = 4 if (a.quick and a.block == 16) else a.block
    repeats = 1 if a.quick else max(a.repeats, 3)
    seeds = list(range(a.eig_seeds if a.eig_seeds is not None else 5))
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    if a.checkpoint:
        model, source, x, y, setup = checkpoint_setup(a.checkpoint, batch, a.seed, device, a.split,
                                                      a.n_per_class, a.subset_seed)
    else:
        model, source, x, y, setup = random_setup(batch, a.seed, device)
    print(f"peers: {source}, batch {batch}, {device}, {threads} thread(s), process CPU time",
          flush=True)
    parts: dict = {}
    timings: dict = {}

    def part(name, fn):
        if name not in a.peer_parts:
            return
        t0 = time.process_time()
        try:
            parts[name] = fn()
        except Exception as e:  # noqa: BLE001 - one failing part is recorded, not fatal
            parts[name] = {"error": f"{type(e).__name__}: {e}"}
        timings[name] = time.process_time() - t0
        print(f"  {name}: {timings[name]:.1f} s CPU", flush=True)

    part("hvp", lambda: peers.hvp_costs(model, x, y, block=block, repeats=repeats, device=device,
                                        without_reuse=not a.quick))
    part("top_eigenvalue", lambda: peers.top_eigenvalue_costs(
        model, x, y, seeds=seeds, power_max=a.power_max if not a.quick else 25,
        lanczos_max=a.lanczos_max, device=device))
    part("trace", lambda: peers.trace_cost(model, x, y, max_matvecs=32 if a.quick else a.hutch_max,
                                           block=block, seed=a.seed))
    part("broja", lambda: peers.broja_vs_dit(
        shapes=[(2, 2, 2), (3, 3, 3)] if a.quick else [(2, 2, 2), (3, 3, 3), (4, 5, 5)],
        laws_per_shape=a.broja_laws or (2 if a.quick else 10), seed=a.seed,
        auto_laws=1 if a.quick else 2))

    def med(part_name, row):
        try:
            return parts[part_name]["rows"][row]["median_s"]
        except (KeyError, TypeError):
            return None

    def ratio(num, den):
        return num / den if (num is not None and den) else None

    k1, kb = med("hvp", "kdbounds_single"), med("hvp", "kdbounds_block")
    pyh = med("hvp", "pyhessian_single")
    mem = (parts.get("hvp") or {}).get("peak_memory") or {}
    eig = parts.get("top_eigenvalue") or {}
    ratios = {
        "hvp_over_pyhessian": ratio(k1, med("hvp", "pyhessian_single")),
        "hvp_over_curvlinops": ratio(k1, med("hvp", "curvlinops_single")),
        "hvp_block_over_curvlinops_block": ratio(kb, med("hvp", "curvlinops_block")),
        "hvp_over_gradient": ratio(kb, med("hvp", "gradient")),
        "hvp_single_over_gradient": ratio(k1, med("hvp", "gradient")),
        "topeig_matvecs_over_power": (parts.get("top_eigenvalue") or {}).get("matvecs_ratio_median"),
        "topeig_time_over_power": (parts.get("top_eigenvalue") or {}).get("time_ratio_median"),
        "broja_time_over_dit": (parts.get("broja") or {}).get("time_ratio_vs_cone_median"),
        "hvp_fwdrev_over_pyhessian": ratio(med("hvp", "kdbounds_fwdrev_single"), pyh),
        "hvp_block_over_pyhessian": ratio(med("hvp", "kdbounds_fwdrev_block"), pyh),
        "hvp_revrev_block_over_pyhessian": ratio(kb, pyh),
        "topeig_matvecs_over_power_median": eig.get("matvecs_ratio_median"),
        "topeig_matvecs_over_power_worst": eig.get("matvecs_ratio_worst"),
        "topeig_gradient_start_matvecs_over_power_median": eig.get("matvecs_ratio_gradient_start_median"),
        "topeig_gradient_start_matvecs_over_power_worst": eig.get("matvecs_ratio_gradient_start_worst"),
        "peak_memory_over_pyhessian": ratio(mem.get("peak_mib_kdbounds_default"),
                                            mem.get("peak_mib_pyhessian")),
        "peak_memory_fwdrev_over_pyhessian": ratio(mem.get("peak_mib_kdbounds_fwd-rev"),
                                                   mem.get("peak_mib_pyhessian")),
    }
    goals = {"hvp_over_pyhessian": 0.6, "hvp_over_curvlinops": 1.0, "hvp_over_gradient": 2.0,
             "topeig_matvecs_over_power": 0.5, "broja_time_over_dit": 1.0,
             "topeig_matvecs_over_power_median": 0.5, "topeig_matvecs_over_power_worst": 0.7,
             "peak_memory_over_pyhessian": 0.7}
    out = {
        "benchmark": "hvp_peers", **ratios,
        "goals_le": goals,
        "goals_met": {k: (ratios[k] <= g if ratios[k] is not None else None) for k, g in goals.items()},
        "definitions": {
            "hvp_over_pyhessian": "kdbounds single-vector product (kept graph) / PyHessian "
                                  "hessian_vector_product on its kept graph, median s per vector",
            "hvp_over_curvlinops": "kdbounds single / curvlinops HessianLinearOperator @ v",
            "hvp_over_gradient": f"kdbounds block of {block}, per vector / one gradient",
            "topeig_matvecs_over_power": "products until the estimate stays within rtol 1e-3 of "
                                         "the float64 reference (the same criterion for both, no "
                                         "stopping rule involved): median over seeds of kdbounds "
                                         "Lanczos (default start='random') / median over seeds of "
                                         "PyHessian power iteration (not per-seed pairs: the two "
                                         "methods' seed-s start vectors are unrelated)",
            "topeig_time_over_power": "CPU time with each method's own stopping rule at 1e-3 "
                                      "(kdbounds: residual <= 1e-3 * theta, start='random'; "
                                      "PyHessian: relative change <= 1e-3), construction included",
            "broja_time_over_dit": "kdbounds.pid.broja_pid / dit PID_BROJA(method='cone'), "
                                   "median CPU time per law",
            "hvp_fwdrev_over_pyhessian": "kdbounds backend='fwd-rev' single vector (jvp of grad) / "
                                         "PyHessian's kept-graph product",
            "hvp_block_over_pyhessian": f"kdbounds backend='fwd-rev' block of {block} (vmapped "
                                        "jvps, chunks of vmap_chunk_size), per vector / PyHessian",
            "hvp_revrev_block_over_pyhessian": f"kdbounds default backend, block of {block}, per "
                                               "vector / PyHessian",
            "topeig_matvecs_over_power_median": "= topeig_matvecs_over_power",
            "topeig_matvecs_over_power_worst": "kdbounds' largest count over the seeds / "
                                               "PyHessian's median count (per-seed paired ratios: "
                                               "parts.top_eigenvalue.paired_ratio_*)",
            "topeig_gradient_start_matvecs_over_power_median": "the same with start='gradient' "
                                                               "(normalised loss gradient + the "
                                                               "seeded probe; the gradient is "
                                                               "computed at construction: no "
                                                               "extra product)",
            "topeig_gradient_start_matvecs_over_power_worst": "its worst count / PyHessian's median",
            "peak_memory_over_pyhessian": "peak bytes of live tensors to build the default operator "
                                          "and compute one product (kept graph included) / the same "
                                          "for PyHessian's hessian(...) + one product (CPU: "
                                          "torch.profiler allocation events; CUDA: "
                                          "max_memory_allocated)",
            "peak_memory_fwdrev_over_pyhessian": "the same for backend='fwd-rev'",
        },
        "model": source, "setup": setup, "batch": batch, "block": block, "repeats": repeats,
        "device": str(device), "dtype": "float32", "threads": threads,
        "timer": "process CPU time (time.process_time); CUDA: wall time with synchronize",
        "torch": torch.__version__, "platform": platform.platform(), "quick": bool(a.quick),
        "parts": parts, "part_cpu_seconds": timings,
        "wall_seconds": time.perf_counter() - t_wall, "cpu_seconds": time.process_time() - t_cpu,
        "max_rss_mib_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": _peer_versions(),
    }
    path = Path(a.json or "results/benchmarks/hvp_peers.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, out)
    for k, v in ratios.items():
        print(f"{k:34s} {v if v is None else round(v, 3)}")
    print(f"wall {out['wall_seconds']:.1f} s, CPU {out['cpu_seconds']:.1f} s; wrote {path}")
    return out


def _peer_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("pyhessian", "curvlinops-for-pytorch", "backpack-for-pytorch", "dit", "ecos",
                 "cvxpy", "clarabel", "torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


if __name__ == "__main__":
    main()
