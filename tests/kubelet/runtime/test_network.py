"""A pod network namespace through the real CNI plugins, and its complete teardown (root only)."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from kubelite.kubelet.network import PodNetwork, netns_path

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and CNI plugins need root"),
    pytest.mark.skipif(not any(os.path.exists(p) for p in ("/usr/lib/cni/bridge", "/opt/cni/bin/bridge")),
                       reason="needs containernetworking-plugins"),
]


async def test_setup_and_teardown(tmp_path):
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forward = f.read()
    net = PodNetwork(str(tmp_path), bridge="kltest0")
    uid = str(uuid.uuid4())
    pod = {"metadata": {"uid": uid, "name": "p", "namespace": "default"},
           "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 39080}]}]}}
    try:
        path, ip = await net.setup(pod, "10.251.7.0/24")
        assert path == netns_path(uid) and os.path.exists(path)
        assert ip.startswith("10.251.7.")
        out = subprocess.run(["ip", "netns", "exec", os.path.basename(path), "ip", "-4", "addr"],
                             capture_output=True, text=True).stdout
        assert ip in out and "127.0.0.1" in out
        assert await net.setup(pod, "10.251.7.0/24") == (path, ip)  # idempotent (cached result)
        nat = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True).stdout
        assert "39080" in nat
    finally:
        await net.teardown(uid)
        await net.cleanup_node()
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(forward)
    assert not os.path.exists(netns_path(uid))
    assert subprocess.run(["ip", "link", "show", "kltest0"], capture_output=True).returncode != 0
    nat = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    # this pod's rules are gone (the plugins name their per-container rules after the container id, the pod's
    # uid here); other tests' pods of the root namespace are not this test's to judge
    assert "39080" not in nat and uid not in nat
