"""Machines as network namespaces for the pod network tests and bench/podnetwork.py.

`Lab(tag)` makes "switch" namespaces holding a bridge, "hosts" plugged into a switch by a veth pair, pod
namespaces behind a `kubelite0` bridge inside a host, and routers with a leg on several switches. Every
link is created inside a namespace (never in the root namespace); `teardown()` kills what it started and
deletes the namespaces, which takes their links along. Commands run under `nsenter --net=…` (not
`ip netns exec`, which remounts /sys)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import shutil
import subprocess
import sys
import time

NETNS_DIR = "/run/netns"

# answers every connection with the peer's address: what a pod sees as the client's source
ECHO_PEER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(64)
while True:
    c, a = s.accept()
    with c:
        c.sendall(a[0].encode() + b"\\n")
"""

# reads until the client shuts its side, answers the byte count
SINK = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(64)
while True:
    c, a = s.accept()
    with c:
        n = 0
        while (b := c.recv(65536)):
            n += len(b)
        c.sendall(str(n).encode())
"""

SEND = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:
    c.sendall(b"x" * int(sys.argv[3])); c.shutdown(socket.SHUT_WR)
    print(c.recv(100).decode())
"""

CONNECT = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
    print(c.recv(100).decode().strip())
"""


def requirements() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    for tool in ("ip", "bridge", "nsenter", "iptables-restore", "iptables-save"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


def new_tag() -> str:
    return f"{random.randrange(16**4):04x}"


class Lab:
    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or new_tag()
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def name(self, short: str) -> str:
        return f"kfl{self.tag}-{short}"

    def prefix(self, ns: str) -> list[str]:
        return ["nsenter", f"--net={NETNS_DIR}/{ns}"]

    def run(self, ns: str, *argv: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess:
        p = subprocess.run([*self.prefix(ns), *argv], capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"[{ns}] {' '.join(argv)}: {p.stderr.strip() or p.stdout.strip()}")
        return p

    def netns(self, short: str) -> str:
        ns = self.name(short)
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        self.namespaces.append(ns)
        self.run(ns, "ip", "link", "set", "lo", "up")
        return ns

    def switch(self, short: str) -> str:
        ns = self.netns(short)
        self.run(ns, "ip", "link", "add", "br0", "type", "bridge")
        self.run(ns, "ip", "link", "set", "br0", "up")
        return ns

    def plug(self, switch: str, ns: str, ifname: str, cidr: str, mtu: int = 1500) -> None:
        """A veth from the switch's bridge to `ns` (named `ifname` there) with address `cidr`."""
        port = f"p{len(self.namespaces)}{ifname}"[:15]
        self.run(switch, "ip", "link", "add", port, "mtu", str(mtu), "type", "veth", "peer", "name", ifname,
                 "netns", ns)
        self.run(switch, "ip", "link", "set", port, "master", "br0", "up")
        self.run(ns, "ip", "link", "set", ifname, "mtu", str(mtu), "up")
        self.run(ns, "ip", "addr", "add", cidr, "dev", ifname)

    def host(self, short: str, switch: str, cidr: str, gateway: str | None = None) -> str:
        ns = self.netns(short)
        # a new namespace copies the root namespace's forwarding setting, which other tests may have turned on
        self.run(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
        self.plug(switch, ns, "eth0", cidr)
        if gateway:
            self.run(ns, "ip", "route", "add", "default", "via", gateway)
        return ns

    def router(self, short: str, legs: list[tuple[str, str]]) -> str:
        ns = self.netns(short)
        for i, (switch, cidr) in enumerate(legs):
            self.plug(switch, ns, f"eth{i}", cidr)
        self.run(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        return ns

    def pod(self, host: str, short: str, pod_cidr: str, mtu: int = 1500) -> tuple[str, str]:
        """A pod namespace behind the host's `kubelite0` bridge (gateway .1, as the CNI bridge plugin makes it);
        returns (netns, pod IP)."""
        net = ipaddress.ip_network(pod_cidr)
        gw, ip = str(net.network_address + 1), str(net.network_address + 2)
        ns = self.netns(short)
        if self.run(host, "ip", "link", "show", "kubelite0", check=False).returncode != 0:
            self.run(host, "ip", "link", "add", "kubelite0", "mtu", str(mtu), "type", "bridge")
            self.run(host, "ip", "addr", "add", f"{gw}/{net.prefixlen}", "dev", "kubelite0")
            self.run(host, "ip", "link", "set", "kubelite0", "up")
        veth = f"veth{short}"[:15]
        self.run(host, "ip", "link", "add", veth, "mtu", str(mtu), "type", "veth", "peer", "name", "eth0",
                 "netns", ns)
        self.run(host, "ip", "link", "set", veth, "master", "kubelite0", "up")
        self.run(ns, "ip", "link", "set", "eth0", "up")
        self.run(ns, "ip", "addr", "add", f"{ip}/{net.prefixlen}", "dev", "eth0")
        self.run(ns, "ip", "route", "add", "default", "via", gw)
        return ns, ip

    def start(self, ns: str, *argv: str) -> subprocess.Popen:
        p = subprocess.Popen([*self.prefix(ns), *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def echo_server(self, ns: str, port: int, program: str = ECHO_PEER) -> None:
        self.start(ns, sys.executable, "-c", program, str(port))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if f":{port} " in self.run(ns, "ss", "-Hltn", check=False).stdout:
                return
            time.sleep(0.02)
        raise RuntimeError(f"echo server on {ns}:{port} did not start")

    def connect(self, ns: str, ip: str, port: int, timeout: float = 2.0) -> str | None:
        """The source address the server saw, or None when the connection failed."""
        p = self.run(ns, sys.executable, "-c", CONNECT, ip, str(port), str(timeout), check=False,
                     timeout=timeout + 10)
        return p.stdout.strip() if p.returncode == 0 else None

    def send(self, ns: str, ip: str, port: int, size: int) -> int | None:
        """Bytes the sink at ip:port received from a stream of `size` bytes, None on failure."""
        p = self.run(ns, sys.executable, "-c", SEND, ip, str(port), str(size), check=False)
        return int(p.stdout) if p.returncode == 0 and p.stdout.strip().isdigit() else None

    def teardown(self) -> None:
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()

    def leftovers(self) -> list[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return [ln for ln in out.splitlines() if f"kfl{self.tag}-" in ln]
