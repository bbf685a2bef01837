"""Shared test configuration.

Hypothesis profiles: ``ci`` (derandomized) when ``CI`` is set, else ``dev``.
Every test runs with one torch intra-op thread (restored afterwards): the suite runs as two pytest
workers on two cores, and oversubscribed threads made small ops up to 100x slower on this machine.

Shared toy models (defined once): :class:`TinyCifarNet`, handed to tests by the ``tiny_net`` fixture.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings
from torch import nn

from kdbounds.models import CifarModel

# CI (CI=true) draws the same hypothesis examples on every run, so a red CI always reproduces;
# local runs keep exploring new examples. Timing health checks are off: the 2 cores are shared.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TinyCifarNet(CifarModel):
    """Conv-BN-ReLU stages with the feature API of ``CifarModel`` (stage maps 8x8 and 4x4 on 8x8 inputs).

    Args:
        widths: channels of each stage.
        strides: stride of each stage's 3x3 convolution.
        num_classes: outputs of the linear head.
        seed: ``None`` keeps torch's default initialisation (drawn from the global generator);
            an integer draws the convolution weights from ``N(0, 0.3^2)`` with its own generator.
    """

    def __init__(self, widths=(2, 3), strides=(1, 2), num_classes=4, seed=None):
        super().__init__()
        g = None if seed is None else torch.Generator().manual_seed(seed)
        self.arch, self.num_classes = "tiny", num_classes
        self.stage_channels, self.feature_dim = tuple(widths), widths[-1]
        blocks, c = [], 3
        for w, s in zip(widths, strides):
            conv = nn.Conv2d(c, w, 3, s, 1, bias=False)
            if g is not None:
                with torch.no_grad():
                    conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.3)
            blocks.append(nn.Sequential(conv, nn.BatchNorm2d(w), nn.ReLU()))
            c = w
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Linear(c, num_classes)

    def forward_features(self, x):
        stages = []
        for b in self.blocks:
            x = b(x)
            stages.append(x)
        return stages, x.mean((2, 3))


@pytest.fixture(scope="session")  # a class (stateless): also usable under hypothesis @given
def tiny_net():
    """The :class:`TinyCifarNet` factory: ``tiny_net(widths, strides=..., num_classes=..., seed=...)``."""
    return TinyCifarNet
