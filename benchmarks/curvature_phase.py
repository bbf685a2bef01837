"""The flagship's curvature phase (``measure_teacher_curvature``) against the sequence it replaced, in one process.

Issue 25's goal: the curvature phase of the flagship at <= 0.6 x its earlier CPU-seconds. The earlier sequence
(kept here as the baseline, measured in the same run) drew separate probes for ``tr ∇²L_train``, so it paid
``trace_matvecs`` training-Hessian products that the gap's own products already contain; the library now reads
the training trace off the gap's probes. Same model, kernel sample, batch, probes and Lanczos steps; process CPU
time at one thread, repeats interleaved, median::

    python benchmarks/curvature_phase.py --json benchmarks/results/curvature_phase.json

Prints strict JSON: ``curvature_phase_over_before`` (median CPU-s ratio), both medians, product counts, the preset's
sizes. With ``--malloc-compare`` it also measures what the flagship's runs do today against what they did before
both changes: the phase in fresh processes, the earlier sequence under glibc's default malloc against the library's
sequence under the tuned one (``kdbounds.runs.allocator``, which the sweep runner applies to every run), alternating,
``--repeats`` of each: ``curvature_phase_tuned_over_before_default``. Inputs: the cpu preset's kernel sample sizes (``--per-class`` images per class of CIFAR-10's training and test
sets when ``$KDBOUNDS_DATA`` or ``--data`` finds it; otherwise Gaussian inputs — the cost does not depend on the
pixel values, and the JSON says which) and a ResNet-8 at initialisation with calibrated BatchNorm statistics.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _inputs(per_class: int, data: str | None, seed: int):
    """Training and test kernel samples and where they came from."""
    g = torch.Generator().manual_seed(seed)
    try:
        from kdbounds.data import load_cifar, stratified_subset

        out = []
        for split in ("train", "test"):
            x, y = load_cifar("cifar10", data, split=split)
            idx = stratified_subset(y, per_class, seed=seed)
            out.append((torch.as_tensor(x[idx]).float().div(255).permute(0, 3, 1, 2).contiguous(),
                        torch.as_tensor(y[idx]).long()))
        return out[0], out[1], "CIFAR-10"
    except (FileNotFoundError, ValueError):
        n = 10 * per_class
        mk = lambda: (torch.randn(n, 3, 32, 32, generator=g), torch.arange(n) % 10)  # noqa: E731
        return mk(), mk(), "Gaussian inputs (CIFAR-10 not found; the cost does not depend on pixel values)"


def _before(teacher, train, test, *, batch_size: int, m: int, steps: int, seed: int) -> int:
    """The earlier sequence: separate Hutchinson probes for the training trace, then the gap's probes and Lanczos."""
    from kdbounds.checks.losses import clipped_ce_differentiable
    from kdbounds.curvature import (GapHessianOperator, HessianOperator, hutchinson_trace, make_generator,
                                    probe_vectors, top_eigenvalues)

    def loss_fn(out, y):
        return clipped_ce_differentiable(out, y, 1e-3).mean()

    batches = lambda d: [(d[0][i:i + batch_size], d[1][i:i + batch_size]) for i in range(0, len(d[1]), batch_size)]  # noqa: E731
    h_tr, h_te = HessianOperator(teacher, loss_fn, batches(train)), HessianOperator(teacher, loss_fn, batches(test))
    gap = GapHessianOperator.from_operators(h_te, h_tr)
    hutchinson_trace(h_tr, m, seed=seed)
    Z = probe_vectors(gap.shape[0], m, "rademacher", make_generator(seed + 1), gap.dtype, gap.device)
    gap.matmat(Z)
    top_eigenvalues(gap, 1, which="both", max_matvecs=steps, seed=seed + 2)
    gap.gradient()
    return int(h_tr.num_matvecs + h_te.num_matvecs)


def _teacher(train):
    """A ResNet-8 at initialisation, BatchNorm statistics from the training sample, eval mode (as in the study)."""
    from kdbounds.models import build_model

    torch.manual_seed(0)
    teacher = build_model("resnet8")
    with torch.no_grad():
        teacher.train()
        teacher(train[0])
    return teacher.eval()


def _phase(which: str, teacher, train, test, a: argparse.Namespace) -> int:
    """One curvature phase, the earlier sequence (``"before"``) or the library's (``"now"``); its product count."""
    if which == "before":
        return _before(teacher, train, test, batch_size=a.batch_size, m=a.trace_matvecs, steps=a.lanczos_matvecs,
                       seed=0)
    from kdbounds.checks import measure_teacher_curvature

    return measure_teacher_curvature(teacher, train, test, batch_size=a.batch_size, trace_matvecs=a.trace_matvecs,
                                     lanczos_matvecs=a.lanczos_matvecs, seed=0).n_matvecs


def _spawn(which: str, argv: list[str] | None) -> float:
    """The CPU seconds of one phase in a fresh process: ``before`` under glibc's default malloc, ``now`` tuned."""
    from _child import malloc_env, run_child

    args = [x for x in (sys.argv[1:] if argv is None else argv) if x != "--malloc-compare"]
    if "--json" in args:
        i = args.index("--json")
        del args[i:i + 2]
    return float(run_child([__file__, *args, "--child", which], malloc_env(which == "now"), which)["cpu_s"])


def main(argv: list[str] | None = None) -> int:
    """Measure and print the JSON record.

    Args:
        argv: arguments.

    Returns:
        The exit code.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--per-class", type=int, default=10, help="kernel sample images per class (cpu preset: 10)")
    p.add_argument("--batch-size", type=int, default=200, help="product batch size (cpu preset: 200)")
    p.add_argument("--trace-matvecs", type=int, default=32, help="probes (cpu preset: 32)")
    p.add_argument("--lanczos-matvecs", type=int, default=10, help="Lanczos steps (cpu preset: 10)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of each (median reported)")
    p.add_argument("--data", default=None, help="CIFAR-10 location (default: $KDBOUNDS_DATA, standard places)")
    p.add_argument("--json", default=None, help="also write the record here")
    p.add_argument("--malloc-compare", action="store_true",
                   help="also: earlier sequence + default malloc vs today's + tuned malloc, in fresh processes")
    p.add_argument("--child", choices=("before", "now"), default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for name in ("per_class", "batch_size", "trace_matvecs", "lanczos_matvecs", "repeats"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')}: expected an integer >= 1, got {getattr(a, name)}")
    torch.set_num_threads(1)
    if a.child == "now":
        from kdbounds.runs.allocator import tune_cpu_allocator

        if not tune_cpu_allocator().applied:
            raise SystemExit("the tuned child could not tune glibc's malloc (not Linux/glibc?)")
    train, test, source = _inputs(a.per_class, a.data, 0)
    teacher = _teacher(train)
    if a.child is not None:
        t = time.process_time()
        _phase(a.child, teacher, train, test, a)
        print(json.dumps({"cpu_s": time.process_time() - t}))
        return 0
    times: dict[str, list[float]] = {"before": [], "now": []}
    products: dict[str, int] = {}
    for _ in range(a.repeats):
        for which in ("before", "now"):
            t = time.process_time()
            products[which] = _phase(which, teacher, train, test, a)
            times[which].append(time.process_time() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    rec = {"curvature_phase_over_before": med["now"] / med["before"], "cpu_s_median": med, "cpu_s": times,
           "products": products, "inputs": source, "model": "resnet8 (initialisation, BatchNorm calibrated)",
           "sizes": {"per_class": a.per_class, "batch_size": a.batch_size, "trace_matvecs": a.trace_matvecs,
                     "lanczos_matvecs": a.lanczos_matvecs}, "threads": 1, "torch": torch.__version__}
    if a.malloc_compare:
        fresh: dict[str, list[float]] = {"before_default_malloc": [], "now_tuned_malloc": []}
        for r in range(a.repeats):
            for which in (("before", "now") if r % 2 == 0 else ("now", "before")):
                fresh["before_default_malloc" if which == "before" else "now_tuned_malloc"].append(_spawn(which, argv))
        fm = {k: statistics.median(v) for k, v in fresh.items()}
        rec["fresh_processes"] = {"cpu_s": fresh, "cpu_s_median": fm}
        rec["curvature_phase_tuned_over_before_default"] = fm["now_tuned_malloc"] / fm["before_default_malloc"]
    text = json.dumps(rec, indent=1, allow_nan=False)
    print(text)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
