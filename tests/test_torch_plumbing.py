"""kdbounds._torch: device resolution errors and the eval-mode context manager."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kdbounds._torch import eval_mode, resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    with pytest.raises(ValueError, match="device"):
        resolve_device("not-a-device")
    with pytest.raises(TypeError, match="device"):
        resolve_device(3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_resolve_device_cuda_missing_is_clear():
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")


def test_eval_mode_restores_mixed_flags_and_disables_grad():
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.BatchNorm1d(2))
    m.train()
    m[1].eval()  # a mixed state must come back exactly
    before = [s.training for s in m.modules()]
    with eval_mode(m):
        assert not any(s.training for s in m.modules())
        assert not m(torch.ones(3, 2)).requires_grad
    assert [s.training for s in m.modules()] == before
    with pytest.raises(RuntimeError), eval_mode(m):
        raise RuntimeError("body failed")
    assert [s.training for s in m.modules()] == before
    with pytest.raises(TypeError, match="modules"):
        with eval_mode(m, "x"):
            pass


def test_collect_logits_matches_a_direct_forward_for_tensors_and_loaders():
    """Oracle: one full-batch forward of each model in eval mode, done by hand."""
    from kdbounds._torch import collect_logits

    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Dropout(0.5))
    b = nn.Sequential(nn.Linear(4, 5))
    x = torch.randn(23, 4)
    a.train()
    before = [s.training for s in a.modules()]
    za, zb = collect_logits([a, b], x, batch_size=5)
    assert [s.training for s in a.modules()] == before
    a.eval()
    with torch.no_grad():
        assert torch.allclose(za, a(x), atol=1e-6) and torch.allclose(zb, b(x), atol=1e-6)
    loader = [(x[i:i + 7], torch.zeros(len(x[i:i + 7]))) for i in range(0, 23, 7)]
    (zl,) = collect_logits(b, loader)
    assert torch.allclose(zl, zb, atol=1e-6)
    (zn,) = collect_logits(b, x.numpy(), batch_size=100, device="cpu")
    assert torch.allclose(zn, zb, atol=1e-6)


def test_collect_logits_reads_structured_outputs_and_rejects_bad_input():
    from kdbounds._torch import collect_logits

    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 3)

        def forward(self, x):
            return self.lin(x), x  # logits first, like a FeatureOutput

    m = Pair()
    x = torch.randn(4, 2)
    (z,) = collect_logits(m, x)
    with torch.no_grad():
        assert torch.equal(z, m.lin(x))
    with pytest.raises(ValueError, match="batch_size"):
        collect_logits(m, x, batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        collect_logits(m, [])
    with pytest.raises(TypeError, match="models"):
        collect_logits([m, "teacher"], x)
    with pytest.raises(TypeError, match="batch 0"):
        collect_logits(m, ["not a tensor"])
    with pytest.raises(ValueError, match="shape"):
        collect_logits(nn.Flatten(0), x)


def test_eval_mode_with_grad_keeps_gradients_and_restores_flags():
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    m.train()
    stats = m[1].running_mean.clone()
    with eval_mode(m, grad=True):
        assert not any(s.training for s in m.modules())
        out = m(torch.randn(4, 2))
        assert out.requires_grad  # a training step through frozen statistics
    assert torch.equal(m[1].running_mean, stats)
    assert all(s.training for s in m.modules())
