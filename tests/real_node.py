"""What the tests of real containers share: the skip conditions, waiting, HTTP without proxies, and the
host state they must leave as they found it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

NEEDED = ("runc", "conmon", "docker-registry", "iptables", "conntrack")


def requirements(needed: tuple[str, ...] = NEEDED) -> list:
    """pytest marks: these tests need root, the binaries and the CNI plugins that .ci/run installs."""
    return [
        pytest.mark.skipif(os.geteuid() != 0, reason="real containers need root (runc, network namespaces, iptables)"),
        pytest.mark.skipif(any(shutil.which(b) is None and not os.path.exists(f"/usr/sbin/{b}") for b in needed)
                           or not os.path.exists("/usr/lib/cni/bridge"),
                           reason=f"needs {', '.join(needed)} and containernetworking-plugins"),
    ]


def wait_for(fn, timeout=60.0, interval=0.5):
    """fn() until it returns something true; connection errors count as not yet."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except OSError as e:  # not serving yet (rules being programmed, container starting)
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"not met in {timeout}s; last: {last!r}")


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def http_get(url: str, headers: dict | None = None) -> str:
    req = urllib.request.Request(url, headers=headers or {})
    with _OPENER.open(req, timeout=5) as r:
        return r.read().decode()


def iptables_chains() -> set[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {line.split()[0][1:] for line in out.splitlines() if line.startswith(":KUBE-")}


class AgentThread:
    """A node agent on an event loop of its own, so the tests can block on kubectl (and restart the agent)."""

    def __init__(self, config=None) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.agent = None

    def call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, config=None) -> None:
        from kubelite.kubelet.runtime.node_agent import start_agent

        self.config = config or self.config
        self.agent = self.call(start_agent(self.config))

    def stop(self, *, stop_containers: bool, timeout: float = 60) -> None:
        agent, self.agent = self.agent, None
        if agent is not None:
            self.call(agent.stop(stop_containers=stop_containers), timeout)
            if stop_containers:
                self.call(agent.runtime.network.cleanup_node(), timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


SYSCTLS = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/conf/all/route_localnet")


@contextlib.contextmanager
def up_with_real_node(prefix: str, node_name: str, extra_args: list[str]):
    """`kubelite up` with a runc node named `node_name` whose docker.io is a local registry holding our test
    images; afterwards the cluster is stopped, its files removed and the sysctls it turned on put back."""
    import kubelite_cluster

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "images"))
    from build_test_image import LocalRegistry, push_standard_images

    base = tempfile.mkdtemp(prefix=prefix)
    saved = {}
    for path in SYSCTLS:
        with open(path) as f:
            saved[path] = f.read()
    registry = LocalRegistry().start()
    cluster = None
    try:
        asyncio.run(push_standard_images(registry.host))
        regfile = f"{base}/registries.yaml"
        with open(regfile, "w") as f:
            f.write(f"mirrors:\n  docker.io:\n    endpoint:\n      - http://{registry.host}\n")
        cluster = kubelite_cluster.Cluster(
            data_dir=f"{base}/data", port=kubelite_cluster.free_port(), cache_dir=f"{base}/cache", command="up",
            extra_args=["--node-runtime", "runc", "--node-name", node_name, "--registries", regfile,
                        "--kubelet-port", str(kubelite_cluster.free_port()), "--cluster-dns-port", "0",
                        "--cleanup-on-exit", *extra_args])
        cluster.start(timeout=60)
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        registry.stop()
        for path, value in saved.items():
            with open(path, "w") as f:
                f.write(value)
        shutil.rmtree(base, ignore_errors=True)
