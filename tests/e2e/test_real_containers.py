"""Real containers end to end: an API server, a local registry with our busybox/httpd images, and one node
agent with the runc runtime; checked with the real kubectl (logs, exec, port-forward, CrashLoopBackOff,
graceful deletion).  Needs root, runc, conmon, the CNI plugins and docker-registry (see .ci)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from kubelite_cluster import KUBECTL, Cluster, free_port
from real_node import AgentThread

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "images"))

NEEDED = ("runc", "conmon", "docker-registry", "iptables")
CNI = ("/usr/lib/cni/bridge", "/opt/cni/bin/bridge")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="real containers need root (runc, network namespaces, mounts)"),
    pytest.mark.skipif(any(shutil.which(b) is None and not os.path.exists(f"/usr/sbin/{b}") for b in NEEDED)
                       or not any(os.path.exists(p) for p in CNI),
                       reason=f"needs {', '.join(NEEDED)} and containernetworking-plugins installed"),
]


@pytest.fixture(scope="module")
def node():
    from build_test_image import LocalRegistry, push_standard_images

    from kubelite.kubelet.runtime.node_agent import AgentConfig

    base = tempfile.mkdtemp(prefix="kubelite-real-")
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        ip_forward = f.read()  # the bridge plugin turns forwarding on; put it back as it was
    cluster = Cluster(data_dir=f"{base}/data", port=free_port(), cache_dir=f"{base}/kube-cache")
    cluster.start()
    registry = LocalRegistry().start()
    runner = AgentThread()
    try:
        asyncio.run(push_standard_images(registry.host))
        regfile = f"{base}/registries.yaml"
        with open(regfile, "w") as f:
            f.write(f"mirrors:\n  docker.io:\n    endpoint:\n      - http://{registry.host}\n")
        cfg = AgentConfig(kubeconfig=cluster.kubeconfig, node_name="real-node", data_dir=f"{base}/agent",
                          runtime="runc", node_ip="127.0.0.1", kubelet_address="127.0.0.1", kubelet_port=0,
                          registries=regfile, backoff_initial=1.0, backoff_max=4.0)
        runner.start(cfg)
        yield cluster, runner
    finally:
        runner.stop(stop_containers=True)
        runner.close()
        registry.stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(ip_forward)


def kubectl(cluster: Cluster, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return cluster.kubectl(*args, timeout=timeout)


def apply_pod(cluster: Cluster, name: str, container: str, grace: int = 5) -> None:
    manifest = f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: real-node
  terminationGracePeriodSeconds: {grace}
  containers:
{container}
"""
    r = cluster.kubectl("apply", "-f", "-", input=manifest)
    assert r.returncode == 0, r.stderr


def wait_for(fn, timeout: float = 30, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out; last: {last!r}")


def pod_json(cluster: Cluster, name: str) -> dict:
    import json
    r = kubectl(cluster, "get", "pod", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def phase(cluster: Cluster, name: str) -> str:
    return (pod_json(cluster, name).get("status") or {}).get("phase", "")


def test_logs_and_exec(node):
    cluster, _ = node
    t0 = time.monotonic()
    apply_pod(cluster, "bb", """  - name: main
    image: busybox
    command: ["sh", "-c", "echo line-1; echo line-2; echo line-3; exec sleep 3600"]""")
    wait_for(lambda: phase(cluster, "bb") == "Running")
    print(f"create -> Running (kubectl apply included): {time.monotonic() - t0:.3f}s")
    logs = wait_for(lambda: (r := kubectl(cluster, "logs", "bb")).returncode == 0 and "line-3" in r.stdout and r)
    assert logs.stdout == "line-1\nline-2\nline-3\n"
    tail = kubectl(cluster, "logs", "bb", "--tail", "1")
    assert tail.stdout == "line-3\n"
    ts = kubectl(cluster, "logs", "bb", "--timestamps")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line-1$", ts.stdout.splitlines()[0]), ts.stdout
    r = kubectl(cluster, "exec", "bb", "--", "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    r = kubectl(cluster, "exec", "bb", "--", "sh", "-c", "exit 3")
    assert r.returncode == 3
    assert "command terminated with exit code 3" in r.stderr
    r = subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, "--cache-dir", cluster.cache_dir, "exec", "-i",
                        "bb", "--", "cat"], input="via-stdin\n", capture_output=True, text=True, timeout=30)
    assert r.stdout == "via-stdin\n", r.stderr
    r = kubectl(cluster, "exec", "bb", "--", "cat", "/etc/resolv.conf")
    assert "nameserver 10.96.0.10" in r.stdout
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in r.stdout
    assert "options ndots:5" in r.stdout
    r = kubectl(cluster, "exec", "bb", "--", "hostname")
    assert r.stdout.strip() == "bb"
    kubectl(cluster, "delete", "pod", "bb", "--wait=false")


def test_port_forward_httpd(node):
    cluster, _ = node
    apply_pod(cluster, "web", """  - name: web
    image: nginx:latest
    ports:
    - containerPort: 80""")
    wait_for(lambda: phase(cluster, "web") == "Running")
    port = free_port()
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", cluster.kubeconfig, "--cache-dir", cluster.cache_dir,
                             "port-forward", "pod/web", f"{port}:80"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "Forwarding from 127.0.0.1" in line, (line, proc.stderr.read() if proc.poll() is not None else "")

        def get() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    return r.read().decode()
            except OSError:
                return None
        page = None
        with contextlib.suppress(AssertionError):
            page = wait_for(get, timeout=15, interval=0.2)
        if page is None:
            proc.terminate()
            raise AssertionError(f"no page through port-forward: {proc.communicate(timeout=5)}")
        assert "hello from kubelite httpd" in page
        assert "hello from kubelite httpd" in (get() or "")  # a second connection over the same session
    finally:
        proc.terminate()
        proc.wait(5)
    kubectl(cluster, "delete", "pod", "web", "--wait=false")


def test_crash_loop_back_off(node):
    cluster, _ = node
    apply_pod(cluster, "crash", """  - name: crash
    image: busybox
    command: ["sh", "-c", "echo crashing; exit 2"]""")

    def in_backoff():
        st = (pod_json(cluster, "crash").get("status") or {}).get("containerStatuses") or [{}]
        waiting = (st[0].get("state") or {}).get("waiting") or {}
        return waiting.get("reason") == "CrashLoopBackOff" and st[0]
    cs = wait_for(in_backoff, timeout=30, interval=0.2)
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["restartCount"] >= 1
    r = kubectl(cluster, "get", "pod", "crash")
    assert "CrashLoopBackOff" in r.stdout
    prev = kubectl(cluster, "logs", "crash", "--previous")
    assert prev.stdout == "crashing\n", prev.stderr
    kubectl(cluster, "delete", "pod", "crash", "--wait=false")


def test_delete_within_grace_removes_netns(node):
    cluster, runner = node
    apply_pod(cluster, "term", """  - name: main
    image: busybox
    command: ["sh", "-c", "sleep 3600"]""", grace=2)
    wait_for(lambda: phase(cluster, "term") == "Running")
    pod = runner.agent.runtime.find("default", "term")
    netns = pod.netns
    cid = pod.container_id("main")
    assert netns and os.path.exists(netns)
    t0 = time.monotonic()
    r = kubectl(cluster, "delete", "pod", "term", timeout=30)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    # sh as PID 1 ignores SIGTERM: the kubelet kills it when the 2 s grace period ends
    assert took < 2 + 2.0, took
    assert not os.path.exists(netns)
    assert runner.call(runner.agent.runtime.runc.state(cid)) is None
