"""HessianOperator / GapHessianOperator / dense_hessian against analytic and dense oracles (float64)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from kdbounds.curvature import (
    HVP_MODES,
    GapHessianOperator,
    HessianOperator,
    dense_hessian,
    gradient_norm,
    select_parameters,
)

D64 = torch.float64




def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batches(X: torch.Tensor, Y: torch.Tensor, sizes: list[int]) -> list:
    out, i = [], 0
    for s in sizes:
        out.append((X[i:i + s], Y[i:i + s]))
        i += s
    assert i == len(X)
    return out


# ------------------------------------------------------------------------------------------
# Analytic Hessians of generalised linear models, written by hand.
# For a linear layer z = W x + b (W: k x d, flattened row-major, then b), and a per-sample
# Hessian A_i of the loss w.r.t. z, the parameter Hessian is (1/n) sum_i A_i (x) x~ x~^T with
# x~ = [x, 1], re-ordered from (class, [x,1]) to [vec W, b].
# ------------------------------------------------------------------------------------------
def _glm_hessian(X: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    n, d = X.shape
    k = A.shape[1]
    Xt = torch.cat([X, torch.ones(n, 1, dtype=X.dtype)], dim=1)
    H = sum(torch.kron(A[i], torch.outer(Xt[i], Xt[i])) for i in range(n)) / n
    perm = [c * (d + 1) + j for c in range(k) for j in range(d)] + [c * (d + 1) + d for c in range(k)]
    perm = torch.tensor(perm)
    return H[perm][:, perm]


def _linear_model(d: int, k: int, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, k).to(D64)


def test_linear_regression_analytic():
    g = _gen(0)
    n, d, k = 23, 4, 3
    X = torch.randn(n, d, generator=g, dtype=D64)
    Y = torch.randn(n, k, generator=g, dtype=D64)
    model = _linear_model(d, k, 1)
    data = _batches(X, Y, [5, 10, 8])  # unequal batches: weighting by batch size matters
    # mse_loss mean over n*k entries: Hessian w.r.t. z_i is 2/k I_k for each sample
    A = torch.stack([2.0 / k * torch.eye(k, dtype=D64)] * n)
    H_true = _glm_hessian(X, A)
    for mode in HVP_MODES:
        op = HessianOperator(model, F.mse_loss, data, mode=mode)
        torch.testing.assert_close(op.to_dense(), H_true, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(dense_hessian(model, F.mse_loss, data), H_true, rtol=1e-10, atol=1e-12)


def test_logistic_regression_analytic():
    g = _gen(1)
    n, d = 31, 5
    X = torch.randn(n, d, generator=g, dtype=D64)
    Y = torch.randint(0, 2, (n, 1), generator=g).to(D64)
    model = _linear_model(d, 1, 2)
    with torch.no_grad():
        s = torch.sigmoid(model(X))[:, 0]
    A = (s * (1 - s))[:, None, None]
    H_true = _glm_hessian(X, A)
    data = _batches(X, Y, [7, 24])
    for mode in HVP_MODES:
        op = HessianOperator(model, F.binary_cross_entropy_with_logits, data, mode=mode)
        torch.testing.assert_close(op.to_dense(), H_true, rtol=1e-10, atol=1e-12)


def _softmax_A(logits: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits, dim=1)
    return torch.diag_embed(p) - p[:, :, None] * p[:, None, :]


def test_softmax_regression_analytic():
    g = _gen(2)
    n, d, k = 29, 4, 5
    X = torch.randn(n, d, generator=g, dtype=D64)
    Y = torch.randint(0, k, (n,), generator=g)
    model = _linear_model(d, k, 3)
    with torch.no_grad():
        H_true = _glm_hessian(X, _softmax_A(model(X)))
    data = _batches(X, Y, [10, 10, 9])
    for mode in HVP_MODES:
        op = HessianOperator(model, F.cross_entropy, data, mode=mode)
        torch.testing.assert_close(op.to_dense(), H_true, rtol=1e-10, atol=1e-12)
    # parameter subset: the weight block only
    op_w = HessianOperator(model, F.cross_entropy, data, params="weight")
    torch.testing.assert_close(op_w.to_dense(), H_true[: d * k, : d * k], rtol=1e-10, atol=1e-12)


def kd_loss(T: float):
    """Temperature-scaled KD loss T^2 KL(softmax(t/T) || softmax(s/T)); targets = teacher logits."""

    def loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        q = torch.softmax(teacher_logits / T, dim=1)
        logp = torch.log_softmax(student_logits / T, dim=1)
        return T * T * F.kl_div(logp, q, reduction="batchmean")

    return loss


def test_kd_loss_softmax_student_analytic():
    # d^2/dz^2 of T^2 KL(q || softmax(z/T)) = diag(p) - p p^T with p = softmax(z/T)
    g = _gen(3)
    n, d, k, T = 26, 3, 4, 3.0
    X = torch.randn(n, d, generator=g, dtype=D64)
    teacher = torch.randn(n, k, generator=g, dtype=D64) * 4  # precomputed teacher logits
    model = _linear_model(d, k, 4)
    with torch.no_grad():
        H_true = _glm_hessian(X, _softmax_A(model(X) / T))
    data = _batches(X, teacher, [13, 13])
    op = HessianOperator(model, kd_loss(T), data)
    torch.testing.assert_close(op.to_dense(), H_true, rtol=1e-10, atol=1e-12)


def test_kd_loss_soft_labels_mlp_against_dense():
    g = _gen(4)
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    X = torch.randn(20, 4, generator=g)
    teacher_soft = torch.softmax(torch.randn(20, 3, generator=g) * 3, dim=1)
    T = 4.0

    def loss(s, q):  # targets are teacher soft labels at temperature T
        return T * T * (q * (q.log() - torch.log_softmax(s / T, dim=1))).sum(1).mean()

    data = _batches(X, teacher_soft, [8, 12])
    op = HessianOperator(model, loss, data, dtype=D64)
    H = dense_hessian(model, loss, data, dtype=D64)
    torch.testing.assert_close(op.to_dense(), H, rtol=1e-9, atol=1e-12)
    assert next(model.parameters()).dtype == torch.float32  # float64 used a copy


# ------------------------------------------------------------------------------------------
# Dense oracles on small networks
# ------------------------------------------------------------------------------------------
class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3)
        self.conv2 = nn.Conv2d(3, 4, 3, stride=2)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.tanh(self.bn1(self.conv1(x)))
        x = F.softplus(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


def _cnn_setup():
    g = _gen(6)
    torch.manual_seed(6)
    model = SmallCNN().to(D64)
    X = torch.randn(12, 2, 6, 6, generator=g, dtype=D64)
    Y = torch.randint(0, 3, (12,), generator=g)
    with torch.no_grad():  # non-trivial running statistics
        model.train()
        model(X)
        model(X * 2 + 1)
    return model, _batches(X, Y, [5, 7])


def _manual_eval_hessian(model, data, names):
    """Independent oracle: torch.func.hessian of a hand-written eval-mode loss per batch."""
    model = model.eval()
    allp = {k: v.detach() for k, v in model.named_parameters()}
    shapes = [allp[n].shape for n in names]
    sizes = [allp[n].numel() for n in names]
    theta = torch.cat([allp[n].reshape(-1) for n in names])
    N = sum(len(y) for _, y in data)
    H = 0
    for x, y in data:
        def f(flat):
            ps = {n: t.view(s) for n, t, s in zip(names, torch.split(flat, sizes), shapes)}
            out = torch.func.functional_call(model, {**allp, **ps}, (x,))
            return F.cross_entropy(out, y)
        H = H + len(y) / N * torch.func.hessian(f)(theta)
    return H


@pytest.mark.parametrize("mode", HVP_MODES)
def test_cnn_batchnorm_eval_against_dense(mode):
    model, data = _cnn_setup()
    model.train()  # the operator must use eval mode and restore this flag
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    op = HessianOperator(model, F.cross_entropy, data, mode=mode)
    if mode == "rev-rev":
        H_op = op.to_dense()
    else:  # torch.func modes are slow per product on CPU: check 6 random products
        V = torch.randn(op.shape[0], 6, generator=_gen(60), dtype=D64)
        HV = op @ V
    assert model.training and model.bn1.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, stats[k], rtol=0, atol=0)  # running stats untouched
    names = [n for n, _ in model.named_parameters()]
    H_ref = _manual_eval_hessian(model, data, names)
    if mode != "rev-rev":
        torch.testing.assert_close(HV, H_ref @ V, rtol=1e-9, atol=1e-11)
        return
    torch.testing.assert_close(H_op, H_ref, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(H_op, H_op.T, rtol=1e-9, atol=1e-11)
    model.train()
    torch.testing.assert_close(dense_hessian(model, F.cross_entropy, data), H_ref, rtol=1e-9,
                               atol=1e-11)


def test_cnn_parameter_subsets():
    model, data = _cnn_setup()
    names = [n for n, _ in model.named_parameters()]
    H_full = _manual_eval_hessian(model, data, names)
    sizes = {n: p.numel() for n, p in model.named_parameters()}
    offsets, o = {}, 0
    for n in names:
        offsets[n] = o
        o += sizes[n]

    def block(sel):
        idx = torch.cat([torch.arange(offsets[n], offsets[n] + sizes[n]) for n in sel])
        return H_full[idx][:, idx]

    cases = [
        ("conv2.*", ["conv2.weight", "conv2.bias"]),
        (model.bn1, ["bn1.weight", "bn1.bias"]),
        (["fc.weight", model.conv1], ["conv1.weight", "conv1.bias", "fc.weight"]),
        (model.fc.bias, ["fc.bias"]),
    ]
    for spec, expect in cases:
        assert select_parameters(model, spec) == expect
        op = HessianOperator(model, F.cross_entropy, data, params=spec)
        assert op.param_names == tuple(expect)
        torch.testing.assert_close(op.to_dense(), block(expect), rtol=1e-9, atol=1e-11)


def test_gradient_flatten_and_scipy():
    model, data = _cnn_setup()
    op = HessianOperator(model, F.cross_entropy, data)
    model.eval()
    loss = sum(len(y) * F.cross_entropy(model(x), y) for x, y in data) / 12
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, list(model.parameters()))])
    torch.testing.assert_close(op.gradient(), g, rtol=1e-10, atol=1e-12)
    assert abs(op.loss() - float(loss.detach())) < 1e-12
    assert abs(gradient_norm(op).value - float(g.norm())) < 1e-10
    v = torch.randn(op.shape[0], generator=_gen(7), dtype=D64)
    d = op.unflatten(v)
    assert list(d) == [n for n, _ in model.named_parameters()]
    torch.testing.assert_close(op.flatten(d), v)
    A = op.to_scipy()
    np.testing.assert_allclose(A.matvec(v.numpy()), (op @ v).numpy(), rtol=1e-12, atol=1e-14)
    V = torch.randn(op.shape[0], 3, generator=_gen(8), dtype=D64)
    np.testing.assert_allclose(A.matmat(V.numpy()), (op @ V).numpy(), rtol=1e-12, atol=1e-14)
    from scipy.sparse.linalg import eigsh

    top = eigsh(A, k=1, which="LA", return_eigenvectors=False)[0]
    assert abs(top - torch.linalg.eigvalsh(op.to_dense())[-1].item()) < 1e-8


class Out(NamedTuple):
    logits: torch.Tensor
    features: torch.Tensor


class TupleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 5)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        h = torch.tanh(self.body(x))
        return Out(self.head(h), h)


def test_tuple_output_and_output_fn():
    torch.manual_seed(9)
    model = TupleNet().to(D64)
    g = _gen(9)
    data = [(torch.randn(6, 3, generator=g, dtype=D64), torch.randint(0, 2, (6,), generator=g))]
    op_default = HessianOperator(model, F.cross_entropy, data)
    op_fn = HessianOperator(model, F.cross_entropy, data, output_fn=lambda o: o.logits)
    H = dense_hessian(model, F.cross_entropy, data, output_fn=lambda o: o.logits)
    torch.testing.assert_close(op_default.to_dense(), H)
    torch.testing.assert_close(op_fn.to_dense(), H)
    # a loss on the features (second output) gives a different Hessian
    op_feat = HessianOperator(model, lambda h, y: (h ** 2).sum(1).mean(), data,
                              output_fn=lambda o: o.features)
    assert (op_feat.to_dense() - H).abs().max() > 1e-3


def test_gap_operator_is_difference_of_dense():
    torch.manual_seed(10)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).to(D64)
    g = _gen(10)
    train = [(torch.randn(9, 3, generator=g, dtype=D64), torch.randint(0, 3, (9,), generator=g))]
    held = _batches(torch.randn(11, 3, generator=g, dtype=D64),
                    torch.randint(0, 3, (11,), generator=g), [4, 7])
    gap = GapHessianOperator(model, F.cross_entropy, train, held)
    H_gap = dense_hessian(model, F.cross_entropy, held) - dense_hessian(model, F.cross_entropy, train)
    torch.testing.assert_close(gap.to_dense(), H_gap, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gap.gradient(), gap.heldout.gradient() - gap.train.gradient())
    assert abs(gap.gap() - (gap.heldout.loss() - gap.train.loss())) < 1e-15
    gap2 = GapHessianOperator.from_operators(gap.heldout, gap.train)
    v = torch.randn(gap.shape[0], generator=g, dtype=D64)
    torch.testing.assert_close(gap2 @ v, H_gap @ v)
    ev = torch.linalg.eigvalsh(H_gap)
    assert ev[0] < 0 < ev[-1]  # indefinite, both signs matter


def test_float32_operator_close_to_float64():
    model, data = _cnn_setup()
    m32 = model.float()
    data32 = [(x.float(), y) for x, y in data]
    op32 = HessianOperator(m32, F.cross_entropy, data32)
    op64 = HessianOperator(m32, F.cross_entropy, data32, dtype=D64)
    assert op32.dtype == torch.float32 and op64.dtype == D64
    v = torch.randn(op32.shape[0], generator=_gen(11), dtype=D64)
    ref = op64 @ v
    assert float((op32 @ v.float() - ref).norm() / ref.norm()) < 1e-4


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------
def _mlp_data():
    torch.manual_seed(12)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    g = _gen(12)
    return model, [(torch.randn(5, 3, generator=g), torch.randint(0, 2, (5,), generator=g))]


def test_bad_inputs():
    model, data = _mlp_data()
    with pytest.raises(ValueError, match="no batches"):
        HessianOperator(model, F.cross_entropy, [])
    with pytest.raises(ValueError, match="no batches"):
        torch_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
            torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)), batch_size=4)
        HessianOperator(model, F.cross_entropy, torch_loader)
    with pytest.raises(ValueError, match="scalar"):
        HessianOperator(model, lambda o, y: F.cross_entropy(o, y, reduction="none"), data)
    with pytest.raises(TypeError, match="scalar torch.Tensor"):
        HessianOperator(model, lambda o, y: 1.0, data)
    with pytest.raises(ValueError, match="matches no parameter"):
        HessianOperator(model, F.cross_entropy, data, params="layer9.*")
    with pytest.raises(ValueError, match="matches no parameter"):
        HessianOperator(model, F.cross_entropy, data, params=["0.weight", "nothing*"])
    with pytest.raises(ValueError, match="no parameters belonging"):
        HessianOperator(model, F.cross_entropy, data, params=nn.Linear(2, 2))
    with pytest.raises(ValueError, match="params is empty"):
        HessianOperator(model, F.cross_entropy, data, params=[])
    # a one-shot generator of batches is read once and kept (the data convention of kdbounds._data)
    gen_op = HessianOperator(model, F.cross_entropy, (b for b in data))
    assert gen_op.num_examples == sum(len(y) for _, y in data)
    with pytest.raises(TypeError, match=r"data: batch 0 .*\(x, y\) pair"):
        HessianOperator(model, F.cross_entropy, [(data[0][0],)])
    with pytest.raises(TypeError, match=r"data: expected \(x, y\) tensors, an iterable of \(x, y\) batches, or a DataLoader"):
        HessianOperator(model, F.cross_entropy, data[0][0])
    with pytest.raises(ValueError, match="mode"):
        HessianOperator(model, F.cross_entropy, data, mode="fast")
    with pytest.raises(TypeError, match="dtype"):
        HessianOperator(model, F.cross_entropy, data, dtype=torch.int64)
    op = HessianOperator(model, F.cross_entropy, data)
    n = op.shape[0]
    with pytest.raises(ValueError, match="shape"):
        op @ torch.zeros(n + 1)
    with pytest.raises(ValueError, match="shape"):
        op.matvec(torch.zeros(n, 2))
    with pytest.raises(ValueError, match="shape"):
        op.matmat(torch.zeros(n - 1, 2))
    with pytest.raises(ValueError):
        op @ torch.zeros(n, 2, 2)
    with pytest.raises(TypeError):
        op @ np.zeros(n)
    with pytest.raises(ValueError, match="NaN"):
        op @ torch.full((n,), float("nan"))
    with pytest.raises(ValueError, match="flatten"):
        op.flatten({"0.weight": torch.zeros(4, 3)})


def test_determinism_check():
    model, data = _mlp_data()

    class Noisy:
        def __iter__(self):
            x, y = data[0]
            yield x + torch.randn(x.shape), y

    with pytest.raises(ValueError, match="determinism"):
        HessianOperator(model, F.cross_entropy, Noisy())
    HessianOperator(model, F.cross_entropy, Noisy(), check_deterministic=False)  # allowed
    ds = torch.utils.data.TensorDataset(torch.randn(40, 3), torch.randint(0, 2, (40,)))
    # shuffling only reorders a batch-size-weighted sum: allowed (agrees to rounding)
    shuffled = torch.utils.data.DataLoader(ds, batch_size=7, shuffle=True)
    HessianOperator(model, F.cross_entropy, shuffled)
    fixed = torch.utils.data.DataLoader(ds, batch_size=7, shuffle=False)
    op = HessianOperator(model, F.cross_entropy, fixed)  # a DataLoader is fine
    assert op.num_examples == 40


# ------------------------------------------------------------------------------------------
# Property test and estimators on real operators
# ------------------------------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 25), d=st.integers(1, 4), k=st.integers(2, 4), seed=st.integers(0, 10_000),
       nb=st.integers(1, 4))
def test_softmax_regression_analytic_property(n, d, k, seed, nb):
    g = _gen(seed)
    X = torch.randn(n, d, generator=g, dtype=D64)
    Y = torch.randint(0, k, (n,), generator=g)
    model = _linear_model(d, k, seed)
    with torch.no_grad():
        H_true = _glm_hessian(X, _softmax_A(model(X)))
    cuts = sorted(torch.randperm(n - 1, generator=g)[: min(nb, n) - 1].add(1).tolist())
    sizes = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    op = HessianOperator(model, F.cross_entropy, _batches(X, Y, sizes))
    torch.testing.assert_close(op.to_dense(), H_true, rtol=1e-10, atol=1e-12)


def test_estimators_on_gap_operator():
    from kdbounds.curvature import frobenius_norm_sq, hutchinson_trace, top_eigenvalues

    torch.manual_seed(14)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3)).to(D64)
    g = _gen(14)
    train = [(torch.randn(15, 3, generator=g, dtype=D64), torch.randint(0, 3, (15,), generator=g))]
    held = [(torch.randn(15, 3, generator=g, dtype=D64), torch.randint(0, 3, (15,), generator=g))]
    gap = GapHessianOperator(model, F.cross_entropy, train, held)
    H = gap.to_dense()
    ev = torch.linalg.eigvalsh(H).numpy()
    r = top_eigenvalues(gap, 1, which="both", tol=1e-8, max_matvecs=gap.shape[0], seed=0)
    np.testing.assert_allclose(r.eigenvalues, [ev[-1], ev[0]], rtol=1e-6, atol=1e-9)
    t = hutchinson_trace(gap, 300, seed=1)
    assert abs(t.value - float(torch.trace(H))) < 4 * t.stderr
    f = frobenius_norm_sq(gap, 300, seed=2)
    assert abs(f.value - float((H * H).sum())) < 4 * f.stderr
