"""Shared test configuration.

Hypothesis profiles: ``ci`` (derandomized) when ``CI`` is set, else ``dev``.
Every test runs with one torch intra-op thread (restored afterwards): the suite runs as two pytest
workers on two cores, and oversubscribed threads made small ops up to 100x slower on this machine.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

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
