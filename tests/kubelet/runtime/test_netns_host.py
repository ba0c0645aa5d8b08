"""A node agent started under `ip netns exec` (a "machine" that is a network namespace: `ip netns exec` also
unshares a mount namespace and remounts /sys, hiding /sys/fs/cgroup): the agent mounts the host's cgroup
hierarchies in its own mount namespace and a pod runs (issue 11 item 5).  The test builds the namespace and a
veth pair with 169.254.x addresses, the API server and the registry listen on the root side's address, and
all of it is removed afterwards.  Needs root and the packages .ci/run installs."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from kubelite_cluster import Cluster, free_port
from real_node import requirements, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "images"))

pytestmark = requirements()

AGENT = """
import asyncio, logging, signal, sys
from kubelite.kubelet.runtime.node_agent import AgentConfig, run_agent
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
cfg = AgentConfig(**__import__("json").loads(sys.argv[1]))
async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await run_agent(cfg, stop)
    finally:
        from kubelite.kubelet.network import PodNetwork
        await PodNetwork(cfg.data_dir).cleanup_node()
asyncio.run(main())
"""


class VethCluster(Cluster):
    """The API server on the root side of the veth: the machine reaches it there, the test too."""

    address: str = ""

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"

    def kubectl(self, *args: str, **kw):
        return super().kubectl("--server", self.url, *args, **kw)


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def machine():
    from build_test_image import LocalRegistry, push_standard_images

    tag = secrets.token_hex(2)
    netns, outer, inner = f"kltest-nh-{tag}", f"klnh{tag}a", f"klnh{tag}b"
    octet = 100 + int(tag, 16) % 150
    host_ip, node_ip = f"169.254.{octet}.1", f"169.254.{octet}.2"
    base = tempfile.mkdtemp(prefix="kubelite-netns-host-")
    cluster = registry = agent = None

    class VethRegistry(LocalRegistry):
        @property
        def host(self) -> str:
            return f"{host_ip}:{self.port}"

    try:
        _ip("netns", "add", netns)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", netns)
        _ip("addr", "add", f"{host_ip}/30", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("-n", netns, "addr", "add", f"{node_ip}/30", "dev", inner)
        _ip("-n", netns, "link", "set", inner, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        # pushed on loopback (the client speaks plain HTTP to 127.0.0.1 only), then served on the veth
        loopback = LocalRegistry(root=f"{base}/registry").start()
        try:
            asyncio.run(push_standard_images(loopback.host))
        finally:
            loopback.stop()
        registry = VethRegistry(root=f"{base}/registry").start()
        regfile = f"{base}/registries.yaml"
        with open(regfile, "w") as f:
            f.write(f"mirrors:\n  docker.io:\n    endpoint:\n      - http://{registry.host}\n")
        cluster = VethCluster(data_dir=f"{base}/data", port=free_port(), cache_dir=f"{base}/cache", command="up",
                              extra_args=["--node-runtime", "none", "--disable", "dns,servicelb,ingress",
                                          "--bind-address", host_ip, "--tls-san", host_ip])
        cluster.address = host_ip
        cluster.start(timeout=60)
        node = f"netns-node-{tag}"
        cfg = {"kubeconfig": cluster.kubeconfig, "server": cluster.url, "node_name": node,
               "data_dir": f"{base}/agent", "runtime": "runc", "node_ip": node_ip, "kubelet_address": node_ip,
               "kubelet_port": free_port(), "registries": regfile, "stop_containers_on_exit": True}
        log = open(f"{base}/agent.log", "wb")
        agent = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", AGENT, json.dumps(cfg)],
                                 stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: json.loads(cluster.kubectl("get", "node", node, "-o", "json").stdout or "{}")
                 .get("spec", {}).get("podCIDR"), timeout=30, interval=0.2)
        yield cluster, node, f"{base}/agent", f"{base}/agent.log"
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(5)
        left = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
        for pid in left:  # nothing should be left; never leave a process behind if something is
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        if cluster is not None:
            cluster.stop()
        if registry is not None:
            registry.stop()
        _ip("netns", "delete", netns, check=False)
        _ip("link", "delete", outer, check=False)
        time.sleep(0.1)
        shutil.rmtree(base, ignore_errors=True)


POD = """apiVersion: v1
kind: Pod
metadata:
  name: in-netns
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo hello from the netns node; exec sleep 3600"]
"""


def test_pod_runs_on_an_agent_under_ip_netns_exec(machine):
    cluster, node, data_dir, log_path = machine
    cluster.kubectl("apply", "-f", "-", input=POD, check=True)

    def running():
        pod = json.loads(cluster.kubectl("get", "pod", "in-netns", "-o", "json").stdout or "{}")
        st = pod.get("status") or {}
        cs = (st.get("containerStatuses") or [{}])[0]
        return st.get("phase") == "Running" and "running" in (cs.get("state") or {}) and pod
    try:
        pod = wait_for(running, timeout=60, interval=0.3)
    except AssertionError:
        with open(log_path, errors="replace") as f:
            raise AssertionError(f"pod not running; agent log:\n{f.read()[-4000:]}") from None
    assert pod["spec"]["nodeName"] == node
    with open(log_path, errors="replace") as f:
        log = f.read()
    assert "mounted the host's cgroup filesystems in this mount namespace" in log
    events = json.loads(cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=in-netns",
                                        "-o", "json", check=True).stdout)["items"]
    assert not [e for e in events if e["reason"] == "Failed"], events
    # the kubelet API in the machine answers: logs and exec through the API server
    wait_for(lambda: cluster.kubectl("logs", "in-netns").stdout == "hello from the netns node\n", timeout=10)
    assert cluster.kubectl("exec", "in-netns", "--", "sh", "-c", "echo $((6 * 7))", check=True).stdout == "42\n"
    # the container sits in a cgroup of this node (cgroupsPath /kubelite/<node>/pod<uid>/…), on the host's
    # hierarchies (the mounts in the agent's namespace are the host's)
    uid = pod["metadata"]["uid"]
    assert os.path.isdir(f"/sys/fs/cgroup/memory/kubelite/{node}/pod{uid}") or \
        os.path.isdir(f"/sys/fs/cgroup/kubelite/{node}/pod{uid}")
    # its network namespace carries the node's tag
    from kubelite.kubelet.network import PodNetwork
    name = PodNetwork(data_dir, node=node).netns_name(uid)
    assert os.path.lexists(f"/run/netns/{name}")
    cluster.kubectl("delete", "pod", "in-netns", "--timeout=30s", check=True)
    wait_for(lambda: not os.path.lexists(f"/run/netns/{name}"), timeout=10, interval=0.1)
