"""Linear-Gaussian distillation trade-offs (theory.md §3-§4): sweeps over the student's rank r, the
sample size n, the temperature ratio tau_S/tau_T and the student ridge lam_S; writes the three terms
of K = B + R_r + V (R_r = Theta(n), B = O(1/n), V = O(1)) and every bound next to the exact gap
difference (tightness ratios) as CSV + JSON + PNG to --out (default results/linear_gaussian_tradeoffs).
One run per (seed, sweep) on the sweep runner: --executor ray --workers N spreads them over Ray workers
(the same rows, docs/sweeps.md); the default runs them here, one after the other.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kdbounds import _cli_types as T
from kdbounds._io import atomic_write_csv, atomic_write_json
from kdbounds.studies._plots import save_figure
from linear_gaussian.plots import plot_bounds, plot_terms
from kdbounds.runs.sweep import RunSpec, add_sweep_arguments, run_sweep, sweep_options
from linear_gaussian.sweeps import SWEEPS, TradeoffConfig, summarize, sweep_rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=T.writable_dir, default="results/linear_gaussian_tradeoffs")
    ap.add_argument("--quick", action="store_true", help="small CI smoke run (< 10 s)")
    ap.add_argument("--seeds", type=T.seed, nargs="+", help="override the seeds")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--no-plots", action="store_true")
    add_sweep_arguments(ap)
    args = ap.parse_args(argv)
    try:
        sweep = sweep_options(args)
    except ValueError as e:
        ap.error(str(e))
    try:  # the default --out is not converted by argparse: check it before the sweep too
        T.writable_dir(args.out)
    except argparse.ArgumentTypeError as e:
        ap.error(f"argument --out: {e}")

    cfg = TradeoffConfig.quick() if args.quick else TradeoffConfig()
    if args.seeds:
        cfg = TradeoffConfig(**{**cfg.to_dict(), "seeds": tuple(args.seeds)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    specs = [RunSpec(f"{name}-seed{seed}", sweep_rows, {"config": cfg.to_dict(), "sweep": name, "seed": seed})
             for seed in cfg.seeds for name in SWEEPS]
    done = run_sweep(specs, progress=not args.no_progress, desc="linear-Gaussian sweeps", **sweep)
    rows = [r for s in specs for r in done[s.key]]  # the order of run_sweeps: seeds, then sweeps, then x
    summary = summarize(rows)
    summary["seconds"] = time.perf_counter() - t0

    atomic_write_json(out / "config.json", {"config": cfg.to_dict(), "quick": args.quick,
                                            "executor": sweep["executor"], "threads": sweep["threads"]})
    atomic_write_csv(out / "results.csv", rows)
    atomic_write_json(out / "results.json", {"config": cfg.to_dict(), "summary": summary, "rows": rows})
    if not args.no_plots:
        for sweep, logx in (("rank", False), ("n", True), ("tau_ratio", True), ("lam_S", True)):
            save_figure(plot_terms(rows, sweep, logx=logx), out / f"terms_vs_{sweep}.png", dpi=120)
            save_figure(plot_bounds(rows, sweep, logx=logx), out / f"bounds_vs_{sweep}.png", dpi=120)
    print(json.dumps(summary, indent=2, default=str))
    print(f"wrote {out}")
    return summary


if __name__ == "__main__":
    main()
