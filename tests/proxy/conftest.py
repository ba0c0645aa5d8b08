"""Fixtures for the proxy tests (helpers in proxy/nettools.py)."""

from __future__ import annotations

import contextlib
import random
import subprocess

import pytest

from proxy.nettools import (
    Topology,
    _run,
    _sysctl,
    chains_left,
    free_subnet,
    remove_test_chains,
    requirements,
)


@pytest.fixture
def topo():
    """A bridge with pods on it (add them with `topo.add_pod(name)`); everything removed afterwards."""
    reason = requirements()
    if reason:
        pytest.skip(reason)
    tag = f"{random.randrange(16**4):04x}"
    subnet = free_subnet()
    t = Topology(tag, subnet, f"kpt{tag}br")
    for name in ("net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet"):
        t.sysctls[name] = _sysctl(name)
    try:
        _run("ip", "link", "add", t.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{t.gateway}/24", "dev", t.bridge)
        _run("ip", "link", "set", t.bridge, "up")
        # pod → service → pod is routed through the host (the CNI bridge plugin's isGateway does the same)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1")
        yield t
    finally:
        t.teardown()
        with contextlib.suppress(Exception):
            subprocess.run(["conntrack", "-D", "-s", t.cidr], capture_output=True)
            subprocess.run(["conntrack", "-D", "-d", t.cidr], capture_output=True)
    leftovers = [ln for ln in _run("ip", "-o", "link").stdout.splitlines() if f"kpt{tag}" in ln]
    leftovers += [ln for ln in _run("ip", "netns", "list").stdout.splitlines() if f"kpt{tag}" in ln]
    assert not leftovers, f"left behind: {leftovers}"


@pytest.fixture
def clean_chains():
    """Removes every KTEST- chain after the test (even when it failed) and asserts none is left."""
    reason = requirements()
    if reason:
        pytest.skip(reason)
    yield
    remove_test_chains()
    left = chains_left()
    assert not left, f"chains left behind: {left}"
