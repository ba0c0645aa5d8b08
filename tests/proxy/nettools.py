"""Helpers for the proxy tests: "pods" made of network namespaces on a test bridge, each running a tiny TCP+UDP
server that answers with its name and the client address it saw.

Everything is named with a per-test tag (netns `kpt<tag>-<pod>`, bridge `kpt<tag>br`, veths `kpt<tag>v<i>`),
chains use the test prefix `KTEST-` (so a real kube-proxy or kubelite proxy on the host is never touched), and
teardown removes all of it and asserts nothing is left. Needs root and iptables; skipped otherwise.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

PREFIX = "KTEST-"

SERVER = r"""
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", port)); t.listen(256)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", port))
def udp():
    while True:
        data, addr = u.recvfrom(2048)
        u.sendto(f"{name} from {addr[0]}".encode(), addr)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
while True:
    c, addr = t.accept()
    try:
        c.settimeout(2)
        c.recv(4096)
        body = f"{name} from {addr[0]}".encode()
        c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    except OSError:
        pass
    finally:
        c.close()
"""

CLIENT = r"""
import socket, sys
host, port, n, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
for _ in range(n):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        print(data.split(b"\r\n\r\n", 1)[-1].decode(), flush=True)
    except ConnectionRefusedError:
        print("REFUSED", flush=True)
    except OSError as e:
        print("ERROR " + type(e).__name__, flush=True)
"""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=check)


def http_get(ip: str, port: int, timeout: float = 1.0) -> str:
    """One HTTP/1.0 request from the host; returns the body ("<pod> from <client ip>")."""
    with socket.create_connection((ip, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[-1].decode()


def outcome(ip: str, port: int, timeout: float = 0.5) -> str:
    try:
        return http_get(ip, port, timeout)
    except ConnectionRefusedError:
        return "REFUSED"
    except OSError as e:
        return "ERROR " + type(e).__name__


def chains_left(prefix: str = PREFIX) -> list[str]:
    """Chains with the test prefix and rules jumping to them, in any table."""
    out = _run("iptables-save").stdout
    return [ln for ln in out.splitlines() if (ln.startswith(":" + prefix) or f"-j {prefix}" in ln)]




@dataclass
class Pod:
    name: str
    netns: str
    ip: str
    veth: str
    server: subprocess.Popen | None = None

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True,
                              timeout=timeout)

    def requests(self, host: str, port: int, n: int = 1, timeout: float = 1.0) -> list[str]:
        """`n` HTTP requests made from inside this pod's network namespace."""
        r = self.run(sys.executable, "-c", CLIENT, host, str(port), str(n), str(timeout))
        return r.stdout.splitlines()


@dataclass
class Topology:
    tag: str
    subnet: str  # "10.251.N"
    bridge: str
    pods: dict[str, Pod] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    @property
    def cidr(self) -> str:
        return f"{self.subnet}.0/24"

    def add_pod(self, name: str, port: int = 8080) -> Pod:
        i = len(self.pods) + 1
        netns, veth = f"kpt{self.tag}-{name}", f"kpt{self.tag}v{i}"
        ip = f"{self.subnet}.{10 + i}"
        pod = Pod(name, netns, ip, veth)
        self.pods[name] = pod
        _run("ip", "netns", "add", netns)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _run("ip", "link", "set", veth, "master", self.bridge, "up")
        # as the CNI bridge plugin's hairpinMode: a pod may reach itself through a service
        _run("ip", "link", "set", veth, "type", "bridge_slave", "hairpin", "on")
        _run("ip", "-n", netns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _run("ip", "-n", netns, "link", "set", "lo", "up")
        _run("ip", "-n", netns, "link", "set", "eth0", "up")
        _run("ip", "-n", netns, "route", "add", "default", "via", self.gateway)
        pod.server = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", SERVER, name, str(port)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert pod.server.stdout is not None and pod.server.stdout.readline().strip() == "ready"
        return pod

    def teardown(self) -> None:
        for pod in self.pods.values():
            if pod.server is not None:
                pod.server.kill()
                pod.server.wait()
            _run("ip", "netns", "del", pod.netns, check=False)
            _run("ip", "link", "del", pod.veth, check=False)
        _run("ip", "link", "del", self.bridge, check=False)
        for name, value in self.sysctls.items():
            with contextlib.suppress(OSError), open("/proc/sys/" + name.replace(".", "/"), "w") as f:
                f.write(value)


def _sysctl(name: str) -> str:
    with open("/proc/sys/" + name.replace(".", "/")) as f:
        return f.read().strip()


def free_subnet() -> str:
    routes = _run("ip", "-4", "route", "show").stdout
    for _ in range(50):
        subnet = f"10.251.{random.randint(1, 250)}"
        if f"{subnet}." not in routes:
            return subnet
    raise RuntimeError("no free test subnet")


def requirements() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("iptables", "iptables-restore", "iptables-save", "ip", "conntrack"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None




def wait_until(pred, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out (last: {last!r})")


def remove_test_chains(prefix: str = PREFIX) -> None:
    """Synchronous `cleanup_rules` for fixtures (no event loop needed)."""
    from kubelite.proxy.iptables import cleanup_payload, is_proxy_chain
    from kubelite.proxy.netpol import is_netpol_chain

    proxy, netpol = is_proxy_chain(prefix), is_netpol_chain(prefix)
    payload = cleanup_payload(_run("iptables-save").stdout, lambda t, c: proxy(t, c) or netpol(t, c))
    if payload:
        subprocess.run(["iptables-restore", "-w", "--noflush"], input=payload, text=True, check=True)
