"""An unreachable Ray address ends the sweep at once with one sentence (issue 26 item 2): Ray itself would
retry the connection for minutes."""

from __future__ import annotations

import time

import pytest

from kdbounds.runs.sweep import RunSpec, probe_address, run_sweep


def _never(**kw):
    raise AssertionError("no run may start")


def test_unreachable_address_refused_before_ray_starts():
    pytest.importorskip("ray")
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match="127.0.0.1:1: no Ray cluster answers there.*ray start --head"):
        run_sweep([RunSpec("a", _never, {})], executor="ray", address="127.0.0.1:1", progress=False)
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("address", ["auto", "ray://10.0.0.1:10001"])
def test_addresses_left_to_ray_are_not_probed(address):
    assert probe_address(address, timeout=0.01) is None


def test_probe_names_the_address_and_the_fix():
    with pytest.raises(ValueError, match=r"address 127\.0\.0\.1:1: .*drop --address"):
        probe_address("127.0.0.1:1")


@pytest.mark.xdist_group("ray")
def test_unreachable_address_refused_when_this_process_is_already_connected():
    """Refused also when Ray is already up in this process (another sweep, a notebook): the address is probed
    before the existing connection would be reused."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=1, include_dashboard=False)
    try:
        with pytest.raises(ConnectionError, match="127.0.0.1:1: no Ray cluster answers there"):
            run_sweep([RunSpec("a", _never, {})], executor="ray", address="127.0.0.1:1", progress=False)
    finally:
        if started:
            ray.shutdown()
