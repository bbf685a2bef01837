"""Curvature operators on a device against CPU float64, on a small CNN (part of gpu_check.sh).

For a small BatchNorm CNN and one batch, compares on ``--device`` (float32 and float64) with the
CPU float64 operator: Hessian-vector products (single, blocked, kept graph and without; each backend,
``"rev-rev"`` and ``"fwd-rev"``, with its seconds per product and peak memory), the top
eigenvalues (Lanczos and block Lanczos), a Hutchinson trace with the same seed (probes are drawn
on the CPU, so the same numbers) and an SLQ trace; also seconds per product on the device.
Writes one JSON (strict; non-finite -> null).

    python benchmarks/gpu_curvature_check.py --device cuda --json OUT.json
    python benchmarks/gpu_curvature_check.py --cpu-dry-run --json /tmp/x.json   # CPU only, seconds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import peak_tensor_mib  # noqa: E402

from kdbounds._io import atomic_write_json  # noqa: E402
from kdbounds.curvature import (  # noqa: E402
    HessianOperator,
    hutchinson_trace,
    spectral_density,
    top_eigenvalues,
)


def small_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.Tanh(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--cpu-dry-run", action="store_true", help="run everything on the CPU")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--json", default="results/benchmarks/gpu_curvature_check.json")
    a = ap.parse_args(argv)
    device = torch.device("cpu" if a.cpu_dry_run else a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False; use --cpu-dry-run")
    model = small_cnn(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, 3, 16, 16, generator=g)
    y = torch.randint(0, 10, (a.batch,), generator=g)
    with torch.no_grad():
        model.train()
        model(x)
    model.eval()
    ref = HessianOperator(model, F.cross_entropy, [(x.double(), y)], dtype=torch.float64)
    n = ref.shape[0]
    V = torch.randn(n, 8, generator=g, dtype=torch.float64)
    HV_ref = ref @ V
    top_ref = top_eigenvalues(ref, 3, tol=1e-10, max_matvecs=min(n, 200), seed=1, block_size=1)
    tr_ref = hutchinson_trace(ref, 64, seed=2)
    out: dict = {"device": str(device), "num_params": n, "batch": a.batch,
                 "torch": torch.__version__,
                 "cuda_device": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
                 "reference": {"dtype": "float64", "device": "cpu",
                               "top3": top_ref.eigenvalues.tolist(), "hutchinson64": tr_ref.value},
                 "checks": {}}
    dev_model = small_cnn(0)
    dev_model.load_state_dict(model.state_dict())
    dev_model = dev_model.to(device).eval()
    for dtype in (torch.float32, torch.float64):
        name = str(dtype).replace("torch.", "")
        tol = 2e-4 if dtype == torch.float32 else 1e-9
        r: dict = {"tolerance": tol}
        for reuse in (True, False):
            op = HessianOperator(dev_model, F.cross_entropy, [(x.to(device), y.to(device))],
                                 dtype=dtype, reuse_graph=reuse)
            Vd = V.to(device=device, dtype=dtype)
            HV = (op @ Vd).double().cpu()
            hv1 = (op @ Vd[:, 0]).double().cpu()
            err = float((HV - HV_ref).norm() / HV_ref.norm())
            err1 = float((hv1 - HV_ref[:, 0]).norm() / HV_ref[:, 0].norm())
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(3):
                op @ Vd[:, 0]
            _sync(device)
            key = "kept_graph" if reuse else "no_reuse"
            r[f"hvp_rel_err_block_{key}"] = err
            r[f"hvp_rel_err_single_{key}"] = err1
            r[f"s_per_hvp_single_{key}"] = (time.perf_counter() - t0) / 3
        for backend in ("rev-rev", "fwd-rev"):
            # each backend: error vs CPU float64, seconds per product (single and block of 8), peak
            # memory to build the operator and compute one product (max_memory_allocated on CUDA)
            data_d = [(x.to(device), y.to(device))]
            Vd = V.to(device=device, dtype=dtype)

            def build_and_product(backend=backend, data_d=data_d, Vd=Vd):
                HessianOperator(dev_model, F.cross_entropy, data_d, dtype=dtype, backend=backend,
                                check_deterministic=False) @ Vd[:, 0]

            r[f"peak_mib_{backend}"] = peak_tensor_mib(build_and_product, device)
            op = HessianOperator(dev_model, F.cross_entropy, data_d, dtype=dtype, backend=backend)
            r[f"hvp_rel_err_block_{backend}"] = float(((op @ Vd).double().cpu() - HV_ref).norm()
                                                      / HV_ref.norm())
            for label, W in (("single", Vd[:, :1]), ("block8", Vd)):
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(3):
                    op @ W
                _sync(device)
                r[f"s_per_hvp_{label}_{backend}"] = (time.perf_counter() - t0) / 3 / W.shape[1]
        op = HessianOperator(dev_model, F.cross_entropy, [(x.to(device), y.to(device))], dtype=dtype)
        for b in (1, 3):
            t = top_eigenvalues(op, 3, tol=1e-6 if dtype == torch.float32 else 1e-10,
                                max_matvecs=min(n, 200), seed=1, block_size=b)
            r[f"top3_block{b}"] = t.eigenvalues.tolist()
            r[f"top3_block{b}_max_rel_err"] = float(max(
                abs(e - f) / abs(f) for e, f in zip(t.eigenvalues, top_ref.eigenvalues)))
            r[f"top3_block{b}_matvecs"] = t.n_matvecs
        tr = hutchinson_trace(op, 64, seed=2)
        r["hutchinson64_rel_diff_same_probes"] = abs(tr.value - tr_ref.value) / abs(tr_ref.value)
        sd = spectral_density(op, num_probes=4, num_steps=20, seed=3)
        r["slq_trace"] = sd.trace().value
        worst = max(r["hvp_rel_err_block_kept_graph"], r["hvp_rel_err_single_kept_graph"],
                    r["hvp_rel_err_block_no_reuse"], r["hvp_rel_err_single_no_reuse"],
                    r["hvp_rel_err_block_rev-rev"], r["hvp_rel_err_block_fwd-rev"],
                    r["hutchinson64_rel_diff_same_probes"])
        r["ok"] = bool(worst <= tol and r["top3_block1_max_rel_err"] <= 10 * tol
                       and r["top3_block3_max_rel_err"] <= 10 * tol)
        out["checks"][name] = r
    out["ok"] = all(c["ok"] for c in out["checks"].values())
    path = Path(a.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, out)
    print(f"curvature on {device} vs CPU float64: ok={out['ok']} "
          + ", ".join(f"{k}: hvp err {v['hvp_rel_err_block_kept_graph']:.1e}, top3 err "
                      f"{v['top3_block3_max_rel_err']:.1e}" for k, v in out["checks"].items()))
    return out


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
