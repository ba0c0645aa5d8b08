"""Node operations on real containers, with the real kubectl: `kubectl top` (the kubelet's /stats/summary and the
metrics.k8s.io API), in-pod networking tools, failing probes, OOMKilled, configMap updates, `logs -f`, `cp`.
Needs root, runc, conmon, the CNI plugins and docker-registry (see .ci)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from kubectl_output import rows
from kubelite_cluster import KUBECTL, Cluster, free_port
from real_node import AgentThread

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "images"))

from test_real_containers import pytestmark  # noqa: E402,F401  (same requirements)


@pytest.fixture(scope="module")
def node():
    from build_test_image import LocalRegistry, push_standard_images

    from kubelite.kubelet.runtime.node_agent import AgentConfig

    base = tempfile.mkdtemp(prefix="kubelite-ops-")
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        ip_forward = f.read()
    cluster = Cluster(data_dir=f"{base}/data", port=free_port(), cache_dir=f"{base}/kube-cache")
    cluster.start()
    registry = LocalRegistry().start()
    runner = AgentThread()
    try:
        asyncio.run(push_standard_images(registry.host))
        regfile = f"{base}/registries.yaml"
        with open(regfile, "w") as f:
            f.write(f"mirrors:\n  docker.io:\n    endpoint:\n      - http://{registry.host}\n")
        cfg = AgentConfig(kubeconfig=cluster.kubeconfig, node_name="ops-node", data_dir=f"{base}/agent",
                          runtime="runc", node_ip="127.0.0.1", kubelet_address="127.0.0.1", kubelet_port=0,
                          registries=regfile, backoff_initial=1.0, backoff_max=4.0)
        runner.start(cfg)
        yield cluster, runner
    finally:
        runner.stop(stop_containers=True, timeout=180)
        runner.close()
        registry.stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(ip_forward)


def wait_for(fn, timeout: float = 30, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out; last: {last!r}")


def apply(cluster: Cluster, manifest: str) -> None:
    r = cluster.kubectl("apply", "-f", "-", input=manifest)
    assert r.returncode == 0, r.stderr


def pod(name: str, containers: str, extra: str = "") -> str:
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: ops-node
  terminationGracePeriodSeconds: 1
{extra}  containers:
{containers}
"""


def pod_json(cluster: Cluster, name: str) -> dict:
    r = cluster.kubectl("get", "pod", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def running(cluster: Cluster, name: str) -> bool:
    return (pod_json(cluster, name).get("status") or {}).get("phase") == "Running"


def test_top_nodes_and_pods(node):
    cluster, _ = node
    apply(cluster, pod("burn", """  - name: spin
    image: busybox
    command: ["sh", "-c", "while :; do :; done"]
  - name: idle
    image: busybox
    command: ["sleep", "3600"]"""))
    wait_for(lambda: running(cluster, "burn"))
    # discovery lists the group, so kubectl finds it
    assert "metrics.k8s.io/v1beta1" in wait_for(
        lambda: (r := cluster.kubectl("api-versions")).returncode == 0 and "metrics.k8s.io" in r.stdout and r.stdout)
    out = cluster.kubectl("top", "nodes", check=True).stdout
    table = rows(out)
    assert out.split()[:5] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"] or \
        out.split()[:5] == ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"], out
    assert table[0][0] == "ops-node" and table[0][1].endswith("m") and table[0][3].endswith("Mi"), out

    def spinning():
        r = cluster.kubectl("top", "pod", "burn", "--containers")
        if r.returncode != 0:
            return None
        usage = {row[1]: row for row in rows(r.stdout)}
        return "spin" in usage and int(usage["spin"][2].rstrip("m")) > 100 and usage
    usage = wait_for(spinning, timeout=20, interval=1)
    assert int(usage["idle"][2].rstrip("m")) < 50 and usage["idle"][3].endswith("Mi")
    out = cluster.kubectl("top", "pods", check=True).stdout
    assert [r[0] for r in rows(out)] == ["burn"]
    raw = json.loads(cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/burn",
                                     check=True).stdout)
    assert raw["kind"] == "PodMetrics" and {c["name"] for c in raw["containers"]} == {"spin", "idle"}
    cluster.kubectl("delete", "pod", "burn", "--wait=false")


def test_service_account_token_in_pod_passes_token_review(node):
    cluster, _ = node
    apply(cluster, pod("sa", """  - name: main
    image: busybox
    command: ["sleep", "3600"]"""))
    wait_for(lambda: running(cluster, "sa"))
    token = cluster.kubectl("exec", "sa", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token",
                            check=True).stdout.strip()
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    out = json.loads(cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review), check=True).stdout)
    assert out["status"]["authenticated"] is True
    assert out["status"]["user"]["username"] == "system:serviceaccount:default:default"
    assert out["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["sa"]
    # busybox wget with a plain IP URL works inside the pod (no segfault): a refused port is exit 1
    r = cluster.kubectl("exec", "sa", "--", "wget", "-q", "-O-", "http://127.0.0.1:9/")
    assert r.returncode == 1 and "Connection refused" in r.stderr, r.stderr
    cluster.kubectl("delete", "pod", "sa", "--wait=false")


def test_liveness_probe_failure_restarts(node):
    cluster, _ = node
    apply(cluster, pod("live", """  - name: main
    image: busybox
    command: ["sleep", "3600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/healthy"]}
      periodSeconds: 1
      failureThreshold: 1"""))

    def restarted():
        st = (pod_json(cluster, "live").get("status") or {}).get("containerStatuses") or [{}]
        return st[0].get("restartCount", 0) >= 2 and st[0]
    wait_for(restarted, timeout=40, interval=0.5)
    events = cluster.kubectl("describe", "pod", "live", check=True).stdout
    assert "Liveness probe failed" in events and "Unhealthy" in events, events
    assert "will be restarted" in events, events
    cluster.kubectl("delete", "pod", "live", "--wait=false")


def test_oom_killed(node):
    cluster, _ = node
    apply(cluster, pod("oom", """  - name: hog
    image: busybox
    command: ["sh", "-c", "x=a; while :; do x=$x$x; done"]
    resources:
      limits: {memory: 16Mi}""", extra="  restartPolicy: Never\n"))

    def terminated():
        st = (pod_json(cluster, "oom").get("status") or {}).get("containerStatuses") or [{}]
        return (st[0].get("state") or {}).get("terminated")
    t = wait_for(terminated, timeout=40, interval=0.3)
    assert t["reason"] == "OOMKilled" and t["exitCode"] == 137, t
    out = cluster.kubectl("get", "pod", "oom", check=True).stdout
    assert "OOMKilled" in out
    cluster.kubectl("delete", "pod", "oom", "--wait=false")


def test_logs_follow_and_cp(node, tmp_path):
    cluster, _ = node
    apply(cluster, pod("talk", """  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while [ $i -lt 3 ]; do echo tick-$i; i=$((i+1)); sleep 0.3; done; sleep 3600"]"""))
    wait_for(lambda: running(cluster, "talk"))
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", cluster.kubeconfig, "--cache-dir", cluster.cache_dir, "logs",
                             "-f", "talk"], stdout=subprocess.PIPE, text=True)
    try:
        got = [proc.stdout.readline() for _ in range(3)]
        assert got == ["tick-0\n", "tick-1\n", "tick-2\n"]
    finally:
        proc.terminate()
        proc.wait(5)
    local = tmp_path / "in.txt"
    local.write_text("to the pod\n")
    r = cluster.kubectl("cp", str(local), "talk:/tmp/in.txt")
    assert r.returncode == 0, r.stderr
    assert cluster.kubectl("exec", "talk", "--", "cat", "/tmp/in.txt", check=True).stdout == "to the pod\n"
    back = tmp_path / "back.txt"
    r = cluster.kubectl("cp", "talk:/tmp/in.txt", str(back))
    assert r.returncode == 0, r.stderr
    assert back.read_text() == "to the pod\n"
    cluster.kubectl("delete", "pod", "talk", "--wait=false")
