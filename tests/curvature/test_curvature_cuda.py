"""Curvature operators on CUDA against the CPU float64 dense Hessian (skipped without a GPU;
``pytest -m cuda`` and benchmarks/gpu_check.sh run them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdbounds.curvature import HessianOperator, hutchinson_trace, top_eigenvalues

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Tanh(),
                          nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10, 2, 6, 6, generator=g)
    y = torch.randint(0, 3, (10,), generator=g)
    with torch.no_grad():
        model.train()
        model(x)
    return model.eval(), [(x[:6], y[:6]), (x[6:], y[6:])]


def _dense_cpu64(model, data):
    m = model.double()
    allp = {k: v.detach() for k, v in m.named_parameters()}
    names, shapes = list(allp), [v.shape for v in allp.values()]
    sizes = [v.numel() for v in allp.values()]
    theta = torch.cat([v.reshape(-1) for v in allp.values()])
    N = sum(len(yb) for _, yb in data)
    H = 0
    for xb, yb in data:
        def f(flat):
            ps = {k: t.view(s) for k, t, s in zip(names, torch.split(flat, sizes), shapes)}
            return F.cross_entropy(torch.func.functional_call(m, ps, (xb.double(),)), yb)
        H = H + len(yb) / N * torch.func.hessian(f)(theta)
    return H


@pytest.mark.parametrize("reuse", [True, False])
def test_cuda_float64_operator_matches_cpu_dense(reuse):
    model, data = _setup()
    import copy

    H = _dense_cpu64(copy.deepcopy(model), data)
    cuda_data = [(xb.cuda(), yb.cuda()) for xb, yb in data]
    op = HessianOperator(model.cuda(), F.cross_entropy, cuda_data, dtype=torch.float64,
                         reuse_graph=reuse)
    assert op.device.type == "cuda"
    torch.testing.assert_close(op.to_dense(chunk_size=32).cpu(), H, rtol=1e-9, atol=1e-11)
    exact = np.linalg.eigvalsh(H.numpy())
    r = top_eigenvalues(op, 2, tol=1e-10, max_matvecs=op.shape[0], seed=0, block_size=2)
    np.testing.assert_allclose(r.eigenvalues, exact[::-1][:2], rtol=1e-8)
    # probes come from a CPU generator: the same numbers as the CPU operator's
    op_cpu = HessianOperator(copy.deepcopy(model).cpu(), F.cross_entropy, data, dtype=torch.float64)
    a = hutchinson_trace(op, 16, seed=3).value
    b = hutchinson_trace(op_cpu, 16, seed=3).value
    assert a == pytest.approx(b, rel=1e-10)


def test_cuda_float32_close_to_cpu_float64():
    model, data = _setup()
    import copy

    H = _dense_cpu64(copy.deepcopy(model), data)
    op = HessianOperator(model.cuda(), F.cross_entropy, [(xb.cuda(), yb.cuda()) for xb, yb in data])
    V = torch.randn(op.shape[0], 5, generator=torch.Generator().manual_seed(1))
    HV = (op @ V.cuda()).double().cpu()
    ref = H @ V.double()
    assert float((HV - ref).norm() / ref.norm()) < 1e-4
