"""A tiny float64 classifier pair on which every term of the checks can be computed independently."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn


def make_mlp(seed: int, d: int = 3, h: int = 4, k: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, k)).double()


@pytest.fixture(scope="module")
def tiny_pair():
    """Teacher MLP (3-4-3, 31 parameters, float64), a same-architecture student near it, and data."""
    g = torch.Generator().manual_seed(0)
    n, m, d = 40, 40, 3
    w_star = torch.randn(d, 3, generator=g, dtype=torch.float64)
    xtr = torch.randn(n, d, generator=g, dtype=torch.float64)
    xte = torch.randn(m, d, generator=g, dtype=torch.float64)
    ytr = (xtr @ w_star + 0.8 * torch.randn(n, 3, generator=g, dtype=torch.float64)).argmax(1)
    yte = (xte @ w_star + 0.8 * torch.randn(m, 3, generator=g, dtype=torch.float64)).argmax(1)
    teacher = make_mlp(1)
    opt = torch.optim.SGD(teacher.parameters(), lr=0.5)
    for _ in range(60):  # a few steps: a teacher that fits the training set somewhat
        opt.zero_grad()
        nn.functional.cross_entropy(teacher(xtr), ytr).backward()
        opt.step()
    student = copy.deepcopy(teacher)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return teacher, student, (xtr, ytr), (xte, yte)
