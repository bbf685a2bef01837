"""``gentle_student``: the teacher moved by full-batch gradient descent on the mean cross-entropy, BatchNorm in
evaluation mode, every buffer the teacher's.

Oracles: the update written out with ``torch.func.grad`` of the mean loss over all examples in one batch (float64),
``torch.nn.functional.cross_entropy`` for the loss; the tightness claim of the module docstring on a network where
the gap's gradient is known.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdbounds.checks import gentle_student, student_in_teacher_space


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 5)).double()
    net.train()
    with torch.no_grad():  # running statistics away from their initial values
        net(torch.randn(64, 3, 8, 8, dtype=torch.float64) * 2 + 1)
    return net.eval()


def _data(n: int = 30, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 5, (n,), generator=g)


def _by_hand(net: nn.Module, x, y, steps: int, lr: float) -> dict[str, torch.Tensor]:
    params = {n: p.detach().clone() for n, p in net.named_parameters()}
    buffers = dict(net.named_buffers())
    net = net.eval()

    def loss(p):
        return nn.functional.cross_entropy(torch.func.functional_call(net, {**p, **buffers}, (x,)), y)

    for _ in range(steps):
        g = torch.func.grad(loss)(params)
        params = {n: params[n] - lr * g[n] for n in params}
    return params


@pytest.mark.parametrize("steps, batch_size", [(1, 500), (3, 7), (2, 1)])
def test_steps_are_full_batch_gradient_descent(steps, batch_size):
    """The chunked full-batch gradient equals the one-batch gradient (float64, 1e-12), buffers and mode kept."""
    net, (x, y) = _net(), _data()
    before = {n: b.clone() for n, b in net.named_buffers()}
    student = gentle_student(net, x, y, steps=steps, lr=0.3, batch_size=batch_size)
    want = _by_hand(net, x, y, steps, 0.3)
    for n, p in student.named_parameters():
        torch.testing.assert_close(p, want[n], rtol=1e-12, atol=1e-12)
        assert not torch.equal(p, dict(net.named_parameters())[n])  # it moved
    assert not student.training and all(torch.equal(b, before[n]) for n, b in student.named_buffers())
    assert all(torch.equal(b, before[n]) for n, b in net.named_buffers())  # the teacher is untouched


def test_zero_steps_is_the_teacher_and_the_displacement_scales_with_lr():
    net, (x, y) = _net(), _data()
    same = gentle_student(net, x, y, steps=0, lr=1.0)
    params, reason = student_in_teacher_space(same, net)
    assert reason is None and all(torch.equal(params[n], p) for n, p in net.named_parameters())

    def norm(lr):
        p, _ = student_in_teacher_space(gentle_student(net, x, y, steps=1, lr=lr), net)
        return math.sqrt(sum(float((p[n] - q.detach()).pow(2).sum()) for n, q in net.named_parameters()))

    assert norm(2e-3) == pytest.approx(2 * norm(1e-3), rel=1e-9)  # one step: exactly linear in lr


def test_one_step_moves_along_the_gap_gradient():
    """The displacement is -lr * grad L_train, so with f = L_test - L_train its first-order gap change is
    lr * (|g_train|^2 - g_test . g_train): the oracle of the module docstring's tightness claim."""
    net, (x, y) = _net(), _data()
    xt, yt = _data(seed=2)
    params = dict(net.named_parameters())
    buffers = dict(net.named_buffers())

    def mean_ce(p, a, b):
        return nn.functional.cross_entropy(torch.func.functional_call(net, {**p, **buffers}, (a,)), b)

    g_tr, g_te = torch.func.grad(mean_ce)(params, x, y), torch.func.grad(mean_ce)(params, xt, yt)
    lr = 1e-6
    p, _ = student_in_teacher_space(gentle_student(net, x, y, steps=1, lr=lr), net)

    def f(q):
        return float((mean_ce(q, xt, yt) - mean_ce(q, x, y)).detach())

    predicted = lr * sum(float(((g_tr[n] - g_te[n]) * g_tr[n]).sum().detach()) for n in params)
    assert f(p) - f(params) == pytest.approx(predicted, rel=1e-4)


@pytest.mark.parametrize("kw, msg", [({"steps": -1}, "steps"), ({"lr": 0.0}, "lr"), ({"batch_size": 0}, "batch_size")])
def test_bad_arguments_are_named(kw, msg):
    net, (x, y) = _net(), _data()
    with pytest.raises(ValueError, match=msg):
        gentle_student(net, x, y, **{"steps": 1, "lr": 0.1, **kw})


def test_bad_data_and_a_diverging_step_are_named():
    net, (x, y) = _net(), _data()
    with pytest.raises(TypeError, match="teacher"):
        gentle_student("net", x, y, steps=1, lr=0.1)
    with pytest.raises(ValueError, match="inputs, labels"):
        gentle_student(net, x, y[:-1], steps=1, lr=0.1)
    with pytest.raises(TypeError, match="labels: the labels must be class indices"):
        gentle_student(net, x, y.double(), steps=1, lr=0.1)
    with pytest.raises(ValueError, match="inputs"):
        gentle_student(net, x * float("nan"), y, steps=1, lr=0.1)
    with pytest.raises(ValueError, match="cross-entropy at step"):
        gentle_student(net, x, y, steps=5, lr=1e200)
