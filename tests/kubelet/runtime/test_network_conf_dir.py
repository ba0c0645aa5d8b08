"""A CNI network the user installs (--flannel-backend none, /etc/cni/net.d) wires the pods instead of the
built-in bridge, as upstream's runtimes pick the first configuration by file name."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from kubelite.kubelet.network import PodNetwork


def write(path, obj):
    with open(path, "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def test_no_directory_or_no_network_means_the_built_in_bridge(tmp_path):
    assert PodNetwork(str(tmp_path)).user_conf() is None
    net = PodNetwork(str(tmp_path), conf_dir=str(tmp_path / "missing"))
    assert net.user_conf() is None
    assert net._conf("10.244.1.0/24")["plugins"][0]["bridge"] == "kubelite0"


def test_the_first_valid_network_by_name_wins(tmp_path):
    d = tmp_path / "net.d"
    d.mkdir()
    write(d / "00-broken.conflist", "{not json")
    write(d / "05-empty.conflist", {"cniVersion": "0.4.0", "name": "x", "plugins": []})
    write(d / "10-calico.conflist", {"cniVersion": "0.3.1", "name": "k8s-pod-network",
                                     "plugins": [{"type": "calico"}, {"type": "portmap",
                                                                      "capabilities": {"portMappings": True}}]})
    write(d / "20-other.conf", {"cniVersion": "0.4.0", "name": "other", "type": "bridge"})
    write(d / "README", "not a network")
    conf = PodNetwork(str(tmp_path), conf_dir=str(d)).user_conf()
    assert conf["name"] == "k8s-pod-network" and [p["type"] for p in conf["plugins"]] == ["calico", "portmap"]
    os.unlink(d / "10-calico.conflist")
    conf = PodNetwork(str(tmp_path), conf_dir=str(d)).user_conf()
    assert conf == {"cniVersion": "0.4.0", "name": "other",
                    "plugins": [{"cniVersion": "0.4.0", "name": "other", "type": "bridge"}]}


SCRIPT = """
import asyncio, json, sys
from kubelite.kubelet.network import PodNetwork
async def main():
    net = PodNetwork(sys.argv[1], conf_dir=sys.argv[2])
    pod = {"metadata": {"uid": sys.argv[3], "name": "p", "namespace": "default"}, "spec": {"containers": []}}
    path, ip = await net.setup(pod, "10.244.9.0/24")
    print(json.dumps({"path": path, "ip": ip}), flush=True)
    await net.teardown(sys.argv[3])
asyncio.run(main())
"""


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/lib/cni/bridge"),
                    reason="needs root and containernetworking-plugins")
def test_pods_get_their_address_from_the_users_network(tmp_path):
    d = tmp_path / "net.d"
    d.mkdir()
    write(d / "10-mynet.conflist", {"cniVersion": "0.4.0", "name": "mynet", "plugins": [
        {"type": "bridge", "bridge": "userbr0", "isGateway": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]],
                  "dataDir": str(tmp_path / "ipam")}}]})
    host = f"kltest-cni-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", host], check=True)
    try:
        r = subprocess.run(["nsenter", f"--net=/run/netns/{host}", "python3", "-c", SCRIPT, str(tmp_path / "node"),
                            str(d), str(uuid.uuid4())], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["ip"].startswith("10.88.")  # the user's range, not the node's podCIDR
        assert not os.path.exists(out["path"])  # torn down through the same network
        links = subprocess.run(["ip", "-n", host, "link"], capture_output=True, text=True).stdout
        assert "userbr0" in links and "kubelite0" not in links
    finally:
        subprocess.run(["ip", "netns", "del", host])
