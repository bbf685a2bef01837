"""Kept first-order graphs (``reuse_graph``) against the float64 dense Hessian (torch.func.hessian
of a hand-written eval-mode loss, an oracle independent of the operator's autograd plumbing)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdbounds.curvature import HessianOperator, MatrixOperator

D64 = torch.float64


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 4, 3, stride=2)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.tanh(self.bn1(self.conv1(x)))
        x = F.softplus(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


def _setup(sizes=(5, 4, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SmallCNN().to(D64)
    n = sum(sizes)
    X = torch.randn(n, 2, 6, 6, generator=g, dtype=D64)
    Y = torch.randint(0, 3, (n,), generator=g)
    with torch.no_grad():
        model.train()
        model(X)
    model.eval()
    data, i = [], 0
    for s in sizes:
        data.append((X[i:i + s], Y[i:i + s]))
        i += s
    return model, data


def _dense_oracle(model, data):
    allp = {k: v.detach() for k, v in model.named_parameters()}
    names = list(allp)
    shapes = [allp[k].shape for k in names]
    sizes = [allp[k].numel() for k in names]
    theta = torch.cat([allp[k].reshape(-1) for k in names])
    N = sum(len(y) for _, y in data)
    H = 0
    for x, y in data:
        def f(flat):
            ps = {k: t.view(s) for k, t, s in zip(names, torch.split(flat, sizes), shapes)}
            return F.cross_entropy(torch.func.functional_call(model, ps, (x,)), y)
        H = H + len(y) / N * torch.func.hessian(f)(theta)
    return H


def test_reuse_matches_dense_and_keeps_graphs():
    model, data = _setup()
    H = _dense_oracle(model, data)
    op = HessianOperator(model, F.cross_entropy, data)
    assert op.reuse_graph and op.num_kept_graphs == 0 and op.graph_bytes == 0
    V = torch.randn(op.shape[0], 5, generator=torch.Generator().manual_seed(1), dtype=D64)
    torch.testing.assert_close(op @ V, H @ V, rtol=1e-10, atol=1e-12)
    assert op.num_kept_graphs == 3 and op.graph_bytes > 0
    # second and third products go through the kept graphs only (single and blocked)
    torch.testing.assert_close(op @ V[:, 0], H @ V[:, 0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(op.to_dense(chunk_size=7), H, rtol=1e-10, atol=1e-12)
    assert op.num_kept_graphs == 3
    op.clear_graphs()
    assert op.num_kept_graphs == 0 and op.graph_bytes == 0
    torch.testing.assert_close(op @ V, H @ V, rtol=1e-10, atol=1e-12)


def test_memory_limit_keeps_a_prefix_of_batches():
    model, data = _setup()
    H = _dense_oracle(model, data)
    probe = HessianOperator(model, F.cross_entropy, data[:1])
    probe @ torch.zeros(probe.shape[0], dtype=D64)
    one = probe.graph_bytes
    assert one > 0
    # room for exactly the first batch (the others are smaller but come later: prefix rule)
    op = HessianOperator(model, F.cross_entropy, data, graph_memory_limit=one)
    V = torch.randn(op.shape[0], 3, generator=torch.Generator().manual_seed(2), dtype=D64)
    for _ in range(2):
        torch.testing.assert_close(op @ V, H @ V, rtol=1e-10, atol=1e-12)
        assert op.num_kept_graphs == 1 and op.graph_bytes == one
    none = HessianOperator(model, F.cross_entropy, data, graph_memory_limit=0)
    torch.testing.assert_close(none @ V, H @ V, rtol=1e-10, atol=1e-12)
    assert none.num_kept_graphs == 0
    off = HessianOperator(model, F.cross_entropy, data, reuse_graph=False)
    torch.testing.assert_close(off @ V, H @ V, rtol=1e-10, atol=1e-12)
    assert off.num_kept_graphs == 0 and not off.reuse_graph


def test_in_place_update_rebuilds_the_graphs():
    model, data = _setup()
    op = HessianOperator(model, F.cross_entropy, data)
    V = torch.randn(op.shape[0], 2, generator=torch.Generator().manual_seed(3), dtype=D64)
    op @ V  # keeps the graphs at the old parameters
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.3).add_(0.05)
        model.bn1.running_var.mul_(2.0)  # a buffer change must be seen too
    H_new = _dense_oracle(model, data)
    torch.testing.assert_close(op @ V, H_new @ V, rtol=1e-10, atol=1e-12)


def test_other_modes_ignore_reuse_and_bad_arguments():
    model, data = _setup(sizes=(4,))
    assert not HessianOperator(model, F.cross_entropy, data, mode="fwd-rev").reuse_graph
    with pytest.raises(TypeError, match="reuse_graph"):
        HessianOperator(model, F.cross_entropy, data, reuse_graph="yes")
    for bad in (-1, float("nan"), float("inf"), "2GB", True):
        with pytest.raises(ValueError, match="graph_memory_limit"):
            HessianOperator(model, F.cross_entropy, data, graph_memory_limit=bad)


@settings(max_examples=12, deadline=None)
@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 10_000),
       k=st.integers(1, 3), keep=st.integers(0, 3))
def test_reuse_property_any_batches_any_limit(sizes, seed, k, keep):
    """Kept graphs for any prefix of the batches give the same products as the dense Hessian."""
    model, data = _setup(tuple(sizes), seed)
    H = _dense_oracle(model, data)
    probe = HessianOperator(model, F.cross_entropy, data, check_deterministic=False)
    probe @ torch.zeros(probe.shape[0], dtype=D64)
    sizes_b = [g.nbytes for g in probe._graphs.values()]
    limit = sum(sizes_b[:keep])
    op = HessianOperator(model, F.cross_entropy, data, graph_memory_limit=limit,
                         check_deterministic=False)
    V = torch.randn(op.shape[0], k, generator=torch.Generator().manual_seed(seed), dtype=D64)
    for _ in range(2):
        torch.testing.assert_close(op @ V, H @ V, rtol=1e-9, atol=1e-11)
    assert op.num_kept_graphs == min(keep, len(sizes))
    # symmetric: v^T H w = w^T H v through the kept graphs
    a, b = op @ V[:, 0], MatrixOperator(H) @ V[:, -1]
    torch.testing.assert_close(V[:, -1] @ a, V[:, 0] @ b, rtol=1e-9, atol=1e-11)
