"""Shared test configuration.

Every test runs with one torch intra-op thread (restored afterwards): the suite runs as two pytest
workers on two cores, and oversubscribed threads made small ops up to 100x slower on this machine.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
