"""Hessian-vector product backends (``backend="fwd-rev" | "rev-rev" | "auto"``) against the float64
dense Hessian of a hand-written eval-mode loss (torch.func.hessian of functional_call with the
native BatchNorm, an oracle independent of the operator's plumbing); the vmapped block form against
single products; the fallback when an operation has no forward-mode formula."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdbounds.curvature import HVP_BACKENDS, GapHessianOperator, HessianOperator, resolve_backend

D64 = torch.float64


class BNNet(nn.Module):
    """Conv + BatchNorm2d (affine), BatchNorm1d without affine parameters, a linear head."""

    def __init__(self, act=torch.tanh) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(2)
        self.conv2 = nn.Conv2d(2, 3, 3, stride=2)
        self.bn2 = nn.BatchNorm1d(3, affine=False)
        self.fc = nn.Linear(3, 3)
        self.act = act

    def forward(self, x):
        x = self.act(self.bn1(self.conv1(x)))
        x = F.softplus(self.conv2(x)).mean(dim=(2, 3))
        return self.fc(self.bn2(x))


def _setup(sizes=(5, 4, 3), seed=0, act=torch.tanh):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = BNNet(act).to(D64)
    n = sum(sizes)
    X = torch.randn(n, 2, 5, 5, generator=g, dtype=D64)
    Y = torch.randint(0, 3, (n,), generator=g)
    with torch.no_grad():  # running statistics far from any batch's own statistics
        model.train()
        model(3.0 * X + 1.0)
    model.train()  # left in train mode on purpose: the products must use eval-mode BatchNorm
    data, i = [], 0
    for s in sizes:
        data.append((X[i:i + s], Y[i:i + s]))
        i += s
    return model, data


def _dense_oracle(model, data, vectorized=True):
    """sum_b n_b/N * hessian of the eval-mode cross-entropy of batch b (native F.batch_norm):
    torch.func.hessian, or torch.autograd.functional.hessian (a loop of double backwards, no vmap)
    for models whose custom autograd.Function has no vmap rule."""
    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v for k, v in model.named_buffers()}
    names = list(params)
    sizes = [params[k].numel() for k in names]
    theta = torch.cat([params[k].reshape(-1) for k in names])
    N = sum(len(y) for _, y in data)
    H = torch.zeros(len(theta), len(theta), dtype=D64)
    for x, y in data:
        def f(flat, x=x, y=y):
            ps = {k: t.view(params[k].shape) for k, t in zip(names, torch.split(flat, sizes))}
            return F.cross_entropy(torch.func.functional_call(model, {**ps, **buffers}, (x,)), y)
        hess = torch.func.hessian(f)(theta) if vectorized else torch.autograd.functional.hessian(f, theta)
        H += len(y) / N * hess
    model.train()
    return H


@pytest.mark.parametrize("backend,chunk,reuse", [
    ("rev-rev", 4, True), ("rev-rev", 4, False), ("fwd-rev", 1, True), ("fwd-rev", 3, True),
    ("fwd-rev", None, False), ("auto", 4, False)])
def test_backends_match_dense_float64(backend, chunk, reuse):
    model, data = _setup()
    H = _dense_oracle(model, data)
    op = HessianOperator(model, F.cross_entropy, data, backend=backend, vmap_chunk_size=chunk,
                         reuse_graph=reuse)
    assert op.backend == resolve_backend(backend, "cpu") == ("rev-rev" if backend == "auto" else backend)
    torch.testing.assert_close(op.to_dense(chunk_size=37), H, rtol=1e-10, atol=1e-12)
    assert model.training and model.bn1.training  # training flags restored
    assert "forward" not in model.bn1.__dict__  # the affine BatchNorm is undone


def test_block_form_equals_single_products():
    model, data = _setup(seed=1)
    op = HessianOperator(model, F.cross_entropy, data, backend="fwd-rev", vmap_chunk_size=None)
    V = torch.randn(op.shape[0], 5, generator=torch.Generator().manual_seed(3), dtype=D64)
    block = op.matmat(V)
    singles = torch.stack([op.matvec(V[:, j]) for j in range(5)], dim=1)
    torch.testing.assert_close(block, singles, rtol=1e-12, atol=1e-13)
    assert op.num_matvecs == 10


def test_gap_operator_backends_agree():
    model, data = _setup(sizes=(4, 4, 4, 4), seed=2)
    ops = {b: GapHessianOperator(model, F.cross_entropy, data[:2], data[2:], backend=b)
           for b in ("fwd-rev", "rev-rev")}
    torch.testing.assert_close(ops["fwd-rev"].to_dense(), ops["rev-rev"].to_dense(),
                               rtol=1e-10, atol=1e-12)


def test_resnet20_backends_agree_float32():
    from kdbounds.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet20", 10)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (4,), generator=g)
    with torch.no_grad():
        model.train()
        model(x)
    model.eval()
    ops = {b: HessianOperator(model, F.cross_entropy, [(x, y)], backend=b, check_deterministic=False)
           for b in ("fwd-rev", "rev-rev")}
    V = torch.randn(ops["rev-rev"].shape[0], 2, generator=g)
    a, b = ops["fwd-rev"] @ V, ops["rev-rev"] @ V
    assert float((a - b).norm() / b.norm()) < 1e-5


# ------------------------------------------------------------------------------------------
# operations without a forward-mode formula / without a vmap rule
# ------------------------------------------------------------------------------------------
class _SquareNoJvp(torch.autograd.Function):
    """x**2 with a differentiable backward but no jvp (no forward-mode formula)."""

    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.save_for_forward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class _SquareNoVmap(_SquareNoJvp):
    """x**2 with a jvp but no vmap rule (generate_vmap_rule stays False)."""

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return 2 * x * t


def _square_setup(fn):
    return _setup(seed=4, act=lambda t: fn.apply(torch.tanh(t)))


def test_missing_forward_formula_falls_back_under_auto(monkeypatch):
    import kdbounds.curvature.hessian as hessian_module

    model, data = _square_setup(_SquareNoJvp)
    H = _dense_oracle(model, data, vectorized=False)
    # "auto" means fwd-rev on CUDA; here the rule is made to pick fwd-rev on the CPU
    monkeypatch.setattr(hessian_module, "resolve_backend", lambda b, d: "fwd-rev")
    op = HessianOperator(model, F.cross_entropy, data, backend="auto", reuse_graph=False)
    assert op.backend == "fwd-rev"
    with pytest.warns(RuntimeWarning, match="reverse-over-reverse"):
        D = op.to_dense(chunk_size=37)
    assert op.backend == "rev-rev" and op.fallback_reason
    torch.testing.assert_close(D, H, rtol=1e-10, atol=1e-12)


def test_missing_forward_formula_fails_clearly_when_fwd_rev_is_asked_for():
    model, data = _square_setup(_SquareNoJvp)
    op = HessianOperator(model, F.cross_entropy, data, backend="fwd-rev")
    with pytest.raises(ValueError, match="backend='fwd-rev'.*forward-mode"):
        op.matvec(torch.ones(op.shape[0], dtype=D64))


def test_missing_vmap_rule_drops_to_one_jvp_per_vector():
    model, data = _square_setup(_SquareNoVmap)
    H = _dense_oracle(model, data, vectorized=False)
    op = HessianOperator(model, F.cross_entropy, data, backend="fwd-rev", vmap_chunk_size=4)
    with pytest.warns(RuntimeWarning, match="vmap"):
        D = op.to_dense(chunk_size=37)
    assert op.vmap_chunk_size == 1 and op.backend == "fwd-rev"
    torch.testing.assert_close(D, H, rtol=1e-10, atol=1e-12)


def test_backend_arguments_are_checked():
    model, data = _setup()
    assert HVP_BACKENDS == ("auto", "fwd-rev", "rev-rev")
    with pytest.raises(ValueError, match="backend must be one of"):
        HessianOperator(model, F.cross_entropy, data, backend="fast")
    with pytest.raises(ValueError, match="contradicts"):
        HessianOperator(model, F.cross_entropy, data, backend="rev-rev", mode="vmap")
    with pytest.raises(ValueError, match="vmap_chunk_size"):
        HessianOperator(model, F.cross_entropy, data, vmap_chunk_size=0)
    with pytest.raises(TypeError, match="compile"):
        HessianOperator(model, F.cross_entropy, data, compile="yes")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("jvp", "cpu")
    assert resolve_backend("auto", "cuda") == "fwd-rev" and resolve_backend("auto", "cpu") == "rev-rev"
    assert HessianOperator(model, F.cross_entropy, data, mode="vmap").backend == "fwd-rev"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning on a model with forward formulas
        op = HessianOperator(model, F.cross_entropy, data, backend="fwd-rev")
        op.matvec(torch.ones(op.shape[0], dtype=D64))
