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
