"""kdbounds against the packages a researcher would install instead, in one process.

* Curvature: PyHessian (PyPI ``pyhessian``, its single-batch path: the first-order graph is built
  once at construction and every product back-propagates through it) and curvlinops
  (``curvlinops-for-pytorch``, ``HessianLinearOperator``), on the same model, batch, dtype
  (float32) and thread count as ``kdbounds.curvature.HessianOperator``: seconds per
  Hessian-vector product (single and blocked, graph build counted separately), a gradient,
  products and CPU time to the top eigenvalue at rtol 1e-3 against a float64 Lanczos reference
  (PyHessian's real ``hessian.eigenvalues`` power iteration, instrumented to record its Rayleigh
  quotient after every product), products to a 5 % relative standard error on the trace, peak
  memory per phase.
* PID: ``kdbounds.pid.broja_pid`` against dit's BROJA solvers (``PID_BROJA(..., method=...)``):
  atoms and CPU time per law on random joint laws. dit's default ``method="auto"`` (SLSQP for
  small alphabets) returns wrong atoms on many random laws (issue 16: down to -0.21 bits on 64 of
  90 laws); it is timed and compared too, but the time ratio is taken against ``"cone"`` (the
  exponential-cone program, the accurate dit solver).

Timings are process CPU time (``time.process_time``) because the machine is shared: with one
intra-op thread this is the work done, independent of other jobs. The peers are imported lazily;
a missing peer is recorded as ``{"error": ...}`` instead of aborting.

Install the peers without letting torch change (``--no-deps``, see pyproject's ``bench`` extra):
    pip install --no-deps pyhessian==0.1 curvlinops-for-pytorch==3.0.1 backpack-for-pytorch==1.7.1 \\
        einconv==0.1.0 linear_operator==0.6.1 unfoldNd==0.2.3
    pip install ".[bench]"
"""

from __future__ import annotations

import math
import statistics
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _measure import PeakMemory, change_stop, first_reach, first_rel_se, peak_tensor_mib

from kdbounds.curvature import HessianOperator, hutchinson_trace, top_eigenvalues

CLOCK = time.process_time
# PyHessian calls loss.backward(create_graph=True) by design; its reference-cycle warning is noise here
warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")


def _now(device: torch.device) -> float:
    """Process CPU time on the CPU; on CUDA wall time after a synchronize (GPU work is async)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return CLOCK()


def _interleaved(fns: dict[str, Any], repeats: int, device: torch.device) -> dict[str, dict]:
    """Median / min process time of each callable, the repeats interleaved across callables (so
    slow drifts of the machine hit every method alike). Each callable returns how many vectors it
    multiplied; times are per vector."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    per: dict[str, int] = {}
    for k, fn in fns.items():  # warm-up (builds kept graphs, allocator pools)
        per[k] = fn()
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = _now(device)
            fn()
            t1 = _now(device)
            times[k].append((t1 - t0) / per[k])
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "vectors_per_call": per[k],
                "samples_s": v} for k, v in times.items()}


def _pyhessian_module():
    import pyhessian  # noqa: F401  (registers pyhessian.hessian)

    return sys.modules["pyhessian.hessian"]


def hvp_costs(model, x, y, *, block: int, repeats: int, device: torch.device,
              without_reuse: bool = True) -> dict:
    """Seconds per Hessian-vector product of every implementation on one batch."""
    params = [p for p in model.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    gen = torch.Generator().manual_seed(123)
    v = torch.randn(n, generator=gen).to(device)
    V = torch.randn(n, block, generator=gen).to(device)
    vs = [t.view_as(p) for t, p in zip(torch.split(v, [p.numel() for p in params]), params)]
    out: dict[str, Any] = {"num_params": n, "block": block, "repeats": repeats}
    fns: dict[str, Any] = {}
    build: dict[str, float] = {}
    memory: dict[str, float] = {}

    def gradient():
        torch.autograd.grad(F.cross_entropy(model(x), y), params)
        return 1

    fns["gradient"] = gradient

    # kdbounds: default operator (kept graph), and without graph reuse
    with PeakMemory(device) as pm:
        t0 = _now(device)
        op = HessianOperator(model, F.cross_entropy, [(x, y)], check_deterministic=False)
        op @ torch.zeros(n, device=device)  # builds and keeps the first-order graph
        build["kdbounds"] = _now(device) - t0
    memory["kdbounds_kept_graph_rss_mib"] = pm.peak_mib
    out["kdbounds_graph_bytes"] = op.graph_bytes
    out["kdbounds_default_backend"] = op.backend
    op_nr = HessianOperator(model, F.cross_entropy, [(x, y)], check_deterministic=False,
                            reuse_graph=False)
    op_fr = HessianOperator(model, F.cross_entropy, [(x, y)], check_deterministic=False,
                            backend="fwd-rev")
    fns["kdbounds_single"] = lambda: (op.matvec(v), 1)[1]
    fns["kdbounds_block"] = lambda: (op.matmat(V), block)[1]
    fns["kdbounds_fwdrev_single"] = lambda: (op_fr.matvec(v), 1)[1]
    fns["kdbounds_fwdrev_block"] = lambda: (op_fr.matmat(V), block)[1]
    if without_reuse:
        fns["kdbounds_noreuse_single"] = lambda: (op_nr.matvec(v), 1)[1]
        fns["kdbounds_noreuse_block"] = lambda: (op_nr.matmat(V), block)[1]
    ref = op.matvec(v)
    agreement: dict[str, float] = {
        "kdbounds_fwdrev": float((op_fr.matvec(v) - ref).norm() / ref.norm()),
        "kdbounds_fwdrev_block": float((op_fr.matmat(V) - op.matmat(V)).norm() / op.matmat(V).norm())}
    # peak tensor memory to build the operator and compute one product (kept graph included)
    memory["peak_mib_kdbounds_default"] = peak_tensor_mib(lambda: HessianOperator(
        model, F.cross_entropy, [(x, y)], check_deterministic=False).matvec(v), device)
    for b in ("rev-rev", "fwd-rev"):
        memory[f"peak_mib_kdbounds_{b}"] = peak_tensor_mib(lambda: HessianOperator(
            model, F.cross_entropy, [(x, y)], check_deterministic=False, backend=b).matvec(v), device)
    memory["peak_mib_kdbounds_fwd-rev_block"] = peak_tensor_mib(lambda: HessianOperator(
        model, F.cross_entropy, [(x, y)], check_deterministic=False, backend="fwd-rev").matmat(V),
        device) / block
    memory["peak_mib_gradient"] = peak_tensor_mib(gradient, device)

    try:
        mod = _pyhessian_module()
        with PeakMemory(device) as pm:
            t0 = _now(device)
            hess = mod.hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y),
                               cuda=device.type == "cuda")
            build["pyhessian"] = _now(device) - t0
        memory["pyhessian_graph_rss_mib"] = pm.peak_mib

        def pyh_single():
            mod.hessian_vector_product(hess.gradsH, hess.params, vs)
            return 1

        fns["pyhessian_single"] = pyh_single

        def pyh_build_and_product():
            model.zero_grad(set_to_none=True)
            h = mod.hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=device.type == "cuda")
            mod.hessian_vector_product(h.gradsH, h.params, vs)
            model.zero_grad(set_to_none=True)

        memory["peak_mib_pyhessian"] = peak_tensor_mib(pyh_build_and_product, device)
        hv = mod.hessian_vector_product(hess.gradsH, hess.params, vs)
        agreement["pyhessian"] = float((torch.cat([h.reshape(-1) for h in hv]) - ref).norm()
                                       / ref.norm())
    except Exception as e:  # noqa: BLE001 - a missing peer is recorded, not fatal
        out["pyhessian_error"] = f"{type(e).__name__}: {e}"
    try:
        from curvlinops import HessianLinearOperator

        t0 = _now(device)
        H = HessianLinearOperator(model, torch.nn.CrossEntropyLoss(), params, [(x, y)],
                                  check_deterministic=False)
        build["curvlinops"] = _now(device) - t0
        fns["curvlinops_single"] = lambda: (H @ v, 1)[1]
        fns["curvlinops_block"] = lambda: (H @ V, block)[1]
        agreement["curvlinops"] = float(((H @ v) - ref).norm() / ref.norm())
    except Exception as e:  # noqa: BLE001
        out["curvlinops_error"] = f"{type(e).__name__}: {e}"
    with PeakMemory(device) as pm:
        rows = _interleaved(fns, repeats, device)
    memory["all_products_rss_mib"] = pm.peak_mib
    if "pyhessian" in build:
        model.zero_grad(set_to_none=True)  # PyHessian's backward(create_graph=True) filled .grad
    out.update(rows=rows, graph_build_s=build, peak_memory=memory,
               rel_diff_vs_kdbounds=agreement)
    return out


def _pyhessian_power(mod, model, x, y, *, seed: int, max_iter: int, tol: float,
                     device: torch.device) -> tuple[list[float], float, int]:
    """PyHessian's own power iteration; returns the Rayleigh quotient after each product, the
    process time (construction included) and the number of products it used."""
    history: list[float] = []
    original = mod.hessian_vector_product

    def recording(gradsH, params, v):
        Hv = original(gradsH, params, v)
        num = sum(float((h * vi).sum()) for h, vi in zip(Hv, v))
        den = sum(float((vi * vi).sum()) for vi in v)
        history.append(num / den)
        return Hv

    mod.hessian_vector_product = recording
    try:
        torch.manual_seed(seed)
        t0 = _now(device)
        hess = mod.hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y),
                           cuda=device.type == "cuda")
        hess.eigenvalues(maxIter=max_iter, tol=tol, top_n=1)
        dt = _now(device) - t0
    finally:
        mod.hessian_vector_product = original
        model.zero_grad(set_to_none=True)
    return history, dt, len(history)


def top_eigenvalue_costs(model, x, y, *, seeds: list[int], power_max: int, lanczos_max: int,
                         device: torch.device, rtol: float = 1e-3) -> dict:
    """Products and CPU time to the top eigenvalue at ``rtol``, kdbounds Lanczos (random and
    gradient start) vs PyHessian power iteration, against a float64 Lanczos reference (residual
    <= 1e-9 * lambda).

    Per seed, every method is run long and the products until its estimate is within ``rtol`` of the
    reference and stays there (``first_reach``) are counted -- the same criterion for all, so the
    stopping rules do not enter the ratio. The long runs stop where later estimates can no longer
    leave the band: Lanczos at residual <= 1e-4 * theta (Ritz values only grow and stay within the
    residual of an eigenvalue), PyHessian at a relative change <= 1e-6 (or ``power_max``). Each
    method's own stopping rule at ``rtol`` is also run and timed (kdbounds: residual rule, random
    start; the change rule's stop is read off the long runs' histories), construction included.
    """
    t0 = _now(device)
    op64 = HessianOperator(model, F.cross_entropy, [(x.double(), y)], dtype=torch.float64,
                           check_deterministic=False)
    ref = top_eigenvalues(op64, 1, tol=1e-9, max_matvecs=80, seed=7919, start="gradient")
    out: dict[str, Any] = {"reference": {"value": ref.value, "residual": ref.stderr,
                                         "n_matvecs": ref.n_matvecs, "converged": ref.converged,
                                         "dtype": "float64", "start": "gradient",
                                         "seconds": _now(device) - t0}}
    del op64
    lam = ref.value
    try:
        mod = _pyhessian_module()
    except Exception as e:  # noqa: BLE001
        mod = None
        out["pyhessian_error"] = f"{type(e).__name__}: {e}"
    runs = []
    for seed in seeds:
        r: dict[str, Any] = {"seed": seed}
        # kdbounds, its own stopping rule (residual <= rtol * |theta|), default (random) start
        t0 = _now(device)
        op = HessianOperator(model, F.cross_entropy, [(x, y)])
        own = top_eigenvalues(op, 1, tol=rtol, max_matvecs=lanczos_max, seed=seed)
        r["kdbounds_own_rule"] = {"n_matvecs": own.n_matvecs, "seconds": _now(device) - t0,
                                  "rel_error": abs(own.value - lam) / abs(lam),
                                  "start": "random", "stop": "residual",
                                  "includes": "operator construction with determinism check "
                                              "(2 gradients) and graph build"}
        for start in ("gradient", "random"):
            long = top_eigenvalues(op, 1, tol=1e-4, max_matvecs=lanczos_max, seed=seed, start=start)
            r[f"kdbounds_{start}_first_within_rtol"] = first_reach(long.history, lam, rtol)
            n_change = change_stop(long.history, rtol)
            r[f"kdbounds_{start}_change_rule"] = {
                "n_matvecs": n_change,
                "rel_error": abs(long.history[n_change - 1] - lam) / abs(lam) if n_change else None}
            r[f"kdbounds_{start}_history"] = list(long.history)
        r["kdbounds_first_within_rtol"] = r["kdbounds_random_first_within_rtol"]  # the default start
        if mod is not None:
            hist, dt, used = _pyhessian_power(mod, model, x, y, seed=seed, max_iter=power_max,
                                              tol=rtol, device=device)
            r["pyhessian_own_rule"] = {"n_matvecs": used, "seconds": dt,
                                       "rel_error": abs(hist[-1] - lam) / abs(lam),
                                       "stopped_within_rtol": abs(hist[-1] - lam) <= rtol * abs(lam)}
            hist_long, _, _ = _pyhessian_power(mod, model, x, y, seed=seed, max_iter=power_max,
                                               tol=1e-6, device=device)
            r["pyhessian_first_within_rtol"] = first_reach(hist_long, lam, rtol)
            r["pyhessian_history"] = hist_long
            b = r["pyhessian_first_within_rtol"]
            for start in ("random", "gradient"):
                a = r[f"kdbounds_{start}_first_within_rtol"]
                r[f"paired_ratio_{start}_start"] = a / b if (a and b) else None
            r["time_ratio_own_rules"] = r["kdbounds_own_rule"]["seconds"] / dt
        runs.append(r)
    out["runs"] = runs
    # Seed s of kdbounds (a Rademacher probe) and seed s of PyHessian (torch.randn) are unrelated
    # vectors, so a per-seed ratio pairs one method's luck with the other's: the ratios below divide
    # kdbounds' median / worst count over the seeds by PyHessian's median count (the per-seed,
    # paired ratios are kept as paired_ratio_*).
    pyh = [r.get("pyhessian_first_within_rtol") for r in runs]
    pyh_med = statistics.median(pyh) if pyh and all(pyh) else None
    out["pyhessian_matvecs"] = {"median": pyh_med, "max": max(pyh) if pyh_med else None,
                                "min": min(pyh) if pyh_med else None, "per_seed": pyh}
    for start, name in (("random", "matvecs_ratio"), ("gradient", "matvecs_ratio_gradient_start")):
        kd = [r[f"kdbounds_{start}_first_within_rtol"] for r in runs]
        ok = bool(kd) and all(kd) and pyh_med
        out[f"kdbounds_{start}_start_matvecs"] = {"median": statistics.median(kd) if ok else None,
                                                 "max": max(kd) if ok else None, "per_seed": kd}
        out[f"{name}_median"] = statistics.median(kd) / pyh_med if ok else None
        out[f"{name}_worst"] = max(kd) / pyh_med if ok else None
        paired = [r.get(f"paired_ratio_{start}_start") for r in runs]
        out[f"paired_ratio_{start}_start_median"] = statistics.median(paired) if all(paired) else None
        out[f"paired_ratio_{start}_start_worst"] = max(paired) if all(paired) else None
    tr = [r["time_ratio_own_rules"] for r in runs if r.get("time_ratio_own_rules")]
    out["time_ratio_median"] = statistics.median(tr) if tr else None

    def counts(get):
        vals = [get(r) for r in runs]
        vals = [v for v in vals if v]
        return {"median": statistics.median(vals), "max": max(vals), "n": len(vals)} if vals else None

    out["own_rule_matvecs"] = {  # each method stopped by its own rule at rtol (products)
        "kdbounds_residual_random_start": counts(lambda r: r["kdbounds_own_rule"]["n_matvecs"]),
        "kdbounds_change_gradient_start": counts(lambda r: r["kdbounds_gradient_change_rule"]["n_matvecs"]),
        "kdbounds_change_random_start": counts(lambda r: r["kdbounds_random_change_rule"]["n_matvecs"]),
        "pyhessian_change_random_start": counts(lambda r: (r.get("pyhessian_own_rule") or {}).get("n_matvecs")),
    }
    return out


def trace_cost(model, x, y, *, max_matvecs: int, block: int, seed: int) -> dict:
    """Hutchinson products until the running relative standard error first reaches 5 %."""
    op = HessianOperator(model, F.cross_entropy, [(x, y)])
    device = op.device
    with PeakMemory(op.device) as pm:
        t0 = _now(device)
        tr = hutchinson_trace(op, target_rel_se=0.05, max_matvecs=max_matvecs, min_matvecs=10,
                              block_size=block, seed=seed)
        dt = _now(device) - t0
    sd = float(np.std(tr.samples, ddof=1))
    return {"value": tr.value, "stderr": tr.stderr, "n_matvecs_run": tr.n_matvecs,
            "matvecs_to_5pct_rel_se": first_rel_se(tr.samples, 0.05, 10), "seconds": dt,
            "matvecs_to_5pct_rel_se_extrapolated": int((sd / (0.05 * abs(tr.value))) ** 2) + 1,
            "peak_rss_mib": pm.peak_mib,
            "note": "PyHessian's trace() is the same Rademacher Hutchinson estimator one vector at "
                    "a time (stopping on a relative change of the mean, not on a standard error): "
                    "its products to 5 % SE are equal in distribution; the cost per product is "
                    "in hvp_costs"}


# ------------------------------------------------------------------------------------------
# PID: kdbounds.pid.broja_pid against dit
# ------------------------------------------------------------------------------------------
def _dit_atoms(p: np.ndarray, method: str) -> tuple[dict[str, float], float]:
    import dit
    from dit.pid import PID_BROJA

    ny, nt, ns = p.shape
    outcomes, pmf = [], []
    for a in range(ny):
        for b in range(nt):
            for c in range(ns):
                if p[a, b, c] > 0:
                    outcomes.append((b, c, a))
                    pmf.append(float(p[a, b, c]))
    d = dit.Distribution(outcomes, pmf)
    t0 = CLOCK()
    r = PID_BROJA(d, [[0], [1]], [2], method=method)
    dt = CLOCK() - t0
    atoms = {"redundancy": r.get_pi(((0,), (1,))), "unique_t": r.get_pi(((0,),)),
             "unique_s": r.get_pi(((1,),)), "synergy": r.get_pi(((0, 1),))}
    return {k: float(v) for k, v in atoms.items()}, dt


def broja_vs_dit(*, shapes: list[tuple[int, int, int]], laws_per_shape: int, seed: int,
                 auto_laws: int) -> dict:
    """Atoms (bits) and process time of kdbounds.pid.broja_pid vs dit's BROJA solvers."""
    from kdbounds.pid import broja_pid

    out: dict[str, Any] = {"units": "bits", "shapes": [list(s) for s in shapes]}
    try:
        import dit  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {e}"}
    rng = np.random.default_rng(seed)
    warm = rng.dirichlet(np.ones(8)).reshape(2, 2, 2)
    broja_pid(warm, units="bits")  # cvxpy's first solve compiles; not what a user pays per law
    _dit_atoms(warm, "cone")
    rows = []
    for shape in shapes:
        for i in range(laws_per_shape):
            p = rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
            t0 = CLOCK()
            k = broja_pid(p, units="bits")
            tk = CLOCK() - t0
            ka = {"redundancy": k.redundancy, "unique_t": k.unique_t, "unique_s": k.unique_s,
                  "synergy": k.synergy}
            row = {"shape": list(shape), "kdbounds_s": tk, "kdbounds": ka}
            for method in ("cone", "admui") + (("auto",) if i < auto_laws else ()):
                try:
                    atoms, dt = _dit_atoms(p, method)
                    row[f"dit_{method}_s"] = dt
                    row[f"dit_{method}_max_abs_diff_bits"] = max(abs(atoms[a] - ka[a]) for a in ka)
                    row[f"dit_{method}_min_atom_bits"] = min(atoms.values())
                except Exception as e:  # noqa: BLE001
                    row[f"dit_{method}_error"] = f"{type(e).__name__}: {e}"
            rows.append(row)
    out["laws"] = rows

    def agg(key):
        vals = [r[key] for r in rows if key in r]
        return {"median": statistics.median(vals), "max": max(vals), "n": len(vals)} if vals else None

    out["kdbounds_s"] = agg("kdbounds_s")
    for m in ("cone", "admui", "auto"):
        out[f"dit_{m}_s"] = agg(f"dit_{m}_s")
        out[f"dit_{m}_max_abs_diff_bits"] = agg(f"dit_{m}_max_abs_diff_bits")
    nat = math.log(2)
    auto = [r for r in rows if "dit_auto_max_abs_diff_bits" in r]
    out["dit_auto_wrong_laws"] = sum(r["dit_auto_max_abs_diff_bits"] * nat > 1e-5 for r in auto)
    out["dit_auto_laws"] = len(auto)
    ratios = [r["kdbounds_s"] / r["dit_cone_s"] for r in rows if r.get("dit_cone_s")]
    out["time_ratio_vs_cone_median"] = statistics.median(ratios) if ratios else None
    return out
