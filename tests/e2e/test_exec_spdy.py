"""exec, attach and port-forward over SPDY/3.1 with the real kubectl 1.27 and 1.28 (which know nothing else),
through the API server to a node agent running runc containers; and kubectl 1.33 over websockets and, with its
websocket executor switched off, over SPDY again."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from kubelite_cluster import Cluster, free_port
from real_node import AgentThread, http_get, requirements, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "images"))

BIN = "/usr/lib/google-cloud-sdk/bin"
K127, K128, K133 = f"{BIN}/kubectl.1.27", f"{BIN}/kubectl.1.28", f"{BIN}/kubectl.1.33"

pytestmark = [*requirements(("runc", "conmon", "docker-registry", "iptables")),
              pytest.mark.skipif(not os.path.exists(K127), reason="needs kubectl 1.27")]


@pytest.fixture(scope="module")
def node():
    from build_test_image import LocalRegistry, push_standard_images

    from kubelite.kubelet.runtime.node_agent import AgentConfig

    base = tempfile.mkdtemp(prefix="kubelite-spdy-")
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
        cfg = AgentConfig(kubeconfig=cluster.kubeconfig, node_name="spdy-node", data_dir=f"{base}/agent",
                          runtime="runc", node_ip="127.0.0.1", kubelet_address="127.0.0.1", kubelet_port=0,
                          registries=regfile)
        runner.start(cfg)
        _apply(cluster, "sh1", 'command: ["sh", "-c", "exec sleep 3600"]')
        _apply(cluster, "web", "ports: [{containerPort: 80}]", image="nginx:latest")
        wait_for(lambda: _phase(cluster, "sh1") == "Running" and _phase(cluster, "web") == "Running", 60, 0.1)
        yield cluster
    finally:
        runner.stop(stop_containers=True)
        runner.close()
        registry.stop()
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(ip_forward)


def _apply(cluster: Cluster, name: str, extra: str, image: str = "busybox", restart: str = "Always") -> None:
    manifest = f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: spdy-node
  restartPolicy: {restart}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image}
    {extra}
"""
    r = cluster.kubectl("apply", "-f", "-", input=manifest)
    assert r.returncode == 0, r.stderr


def _phase(cluster: Cluster, name: str) -> str:
    r = cluster.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}")
    return r.stdout if r.returncode == 0 else ""


def run(cluster: Cluster, binary: str, *args: str, input: str | None = None, timeout: float = 30,
        env: dict | None = None) -> subprocess.CompletedProcess:
    cache = tempfile.mkdtemp(prefix="kubectl-cache-")
    try:
        return subprocess.run([binary, "--kubeconfig", cluster.kubeconfig, "--cache-dir", cache, *args],
                              input=input, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
    finally:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.parametrize("binary", [K127, K128])
def test_exec_output_and_exit_codes(node, binary):
    r = run(node, binary, "exec", "sh1", "--", "echo", "hi")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hi\n", ""), r.stderr
    r = run(node, binary, "exec", "sh1", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "out\n"
    assert r.stderr == "err\ncommand terminated with exit code 3\n"


def test_exec_stdin(node):
    r = run(node, K127, "exec", "-i", "sh1", "--", "sh", "-c", "cat; echo done", input="line-1\nline-2\n")
    assert (r.returncode, r.stdout) == (0, "line-1\nline-2\ndone\n"), r.stderr
    big = "x" * 200_000 + "\n"  # more than one SPDY window's worth
    r = run(node, K127, "exec", "-i", "sh1", "--", "wc", "-c", input=big)
    assert r.stdout.strip() == str(len(big)), r.stderr


@pytest.mark.parametrize("binary", [K127, K133])
def test_exec_tty_in_a_pseudo_terminal(node, binary):
    cache = tempfile.mkdtemp(prefix="kubectl-cache-")
    cmd = shlex.join([binary, "--kubeconfig", node.kubeconfig, "--cache-dir", cache, "exec", "-it", "sh1", "--",
                      "sh"])
    try:
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"], input="echo $((6*7)); tty; stty size\nexit 4\n",
                           capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    assert "42" in r.stdout and "/dev/pts/" in r.stdout, (r.stdout, r.stderr)
    assert r.returncode == 4, (r.stdout, r.stderr)
    assert "command terminated with exit code 4" in r.stdout + r.stderr


def test_attach_follows_output_until_the_container_ends(node):
    _apply(node, "talker", 'command: ["sh", "-c", "sleep 3; echo late-1; sleep 0.5; echo late-2"]',
           restart="Never")
    wait_for(lambda: _phase(node, "talker") == "Running", 30, 0.1)
    r = run(node, K128, "attach", "talker", timeout=30)
    assert r.returncode == 0, r.stderr
    assert "late-1\nlate-2\n" in r.stdout


def test_port_forward_native_spdy(node):
    port = free_port()
    cache = tempfile.mkdtemp(prefix="kubectl-cache-")
    proc = subprocess.Popen([K127, "--kubeconfig", node.kubeconfig, "--cache-dir", cache, "port-forward", "pod/web",
                             f"{port}:80"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "Forwarding from 127.0.0.1" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        page = wait_for(lambda: http_get(f"http://127.0.0.1:{port}/"), 15, 0.2)
        assert "hello from kubelite httpd" in page
        assert "hello from kubelite httpd" in http_get(f"http://127.0.0.1:{port}/")  # a second connection
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(cache, ignore_errors=True)


def test_kubectl_1_33_websocket_and_spdy(node):
    r = run(node, K133, "exec", "sh1", "--", "sh", "-c", "echo ws; exit 5")
    assert (r.returncode, r.stdout) == (5, "ws\n"), r.stderr
    # with its websocket executor off, 1.33 asks for SPDY the way its fallback does (v5 offered first)
    off = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    r = run(node, K133, "exec", "-i", "sh1", "-v=7", "--", "sh", "-c", "cat; exit 6", input="spdy\n", env=off)
    assert (r.returncode, r.stdout) == (6, "spdy\n"), r.stderr
    exec_calls = [line for line in r.stderr.splitlines() if "/exec?" in line and "Request" in line]
    assert exec_calls and all('verb="POST"' in line for line in exec_calls), exec_calls  # SPDY, never a GET


def test_exec_timing(node):
    began = time.monotonic()
    for _ in range(3):
        assert run(node, K127, "exec", "sh1", "--", "true").returncode == 0
    assert (time.monotonic() - began) / 3 < 5
