"""Service proxy benchmark: ClusterIP overhead, rule sync time at 1,000 services, endpoint-change latency.

Needs root, iptables, conntrack and iproute2. Everything it creates (a test bridge, network namespaces,
KBENCH- chains, a `kubelite server` subprocess on a free port with a temp data dir) is removed at the end.

    python bench/proxy.py [--services 1000] [--requests 400] [--changes 10]

1. ClusterIP overhead: fresh TCP connection + HTTP/1.0 request from the host to a pod (a netns behind a
   bridge), directly and through its ClusterIP; the difference of the medians (target ≤ 0.1 ms).
2. Rule sync: N services × 2 endpoints fed to the Proxier; full sync (generation + iptables-restore + jump
   checks) and a partial sync after one endpoint change (target ≤ 0.5 s for 1,000 services).
3. Endpoint change → rules: an EndpointSlice update through the API server until the restore that carries
   it has returned (and the rule is verified in the kernel) (target ≤ 200 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# the test helpers (netns pods on a bridge); this file is itself named proxy.py, hence the direct path
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "proxy"))

from nettools import Topology, free_subnet, remove_test_chains  # noqa: E402

from kubelite.api.resources import Registry  # noqa: E402
from kubelite.client import ApiClient  # noqa: E402
from kubelite.proxy import Proxier, ProxyConfig, ProxyServer  # noqa: E402
from kubelite.proxy.proxier import set_sysctl  # noqa: E402

PREFIX = "KBENCH-"
R = Registry()
SERVICES = R.get("", "v1", "services")
SLICES = R.get("discovery.k8s.io", "v1", "endpointslices")
NAMESPACES = R.get("", "v1", "namespaces")


def report(name: str, value: float, unit: str, target: str) -> None:
    print(f"{name:<58} {value:10.3f} {unit:<4} (target {target})", flush=True)


def service(name: str, ip: str, ns: str = "bench") -> dict:
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}}


def eslice(svc: str, ips: list[str], ns: str = "bench") -> dict:
    return {"metadata": {"namespace": ns, "name": f"{svc}-1", "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def one_request(ip: str, port: int) -> float:
    t0 = time.perf_counter()
    with socket.create_connection((ip, port), timeout=2) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while s.recv(4096):
            pass
    return (time.perf_counter() - t0) * 1000


def make_topology() -> Topology:
    tag = f"{random.randrange(16**4):04x}"
    t = Topology(tag, free_subnet(), f"kpt{tag}br")
    for name in ("net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet"):
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            t.sysctls[name] = f.read().strip()
    subprocess.run(["ip", "link", "add", t.bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", f"{t.gateway}/24", "dev", t.bridge], check=True)
    subprocess.run(["ip", "link", "set", t.bridge, "up"], check=True)
    set_sysctl("net.ipv4.ip_forward", "1")
    return t


async def bench_overhead(topo: Topology, n: int) -> None:
    pod = topo.add_pod("web")
    p = Proxier(ProxyConfig(node_name="bench", cluster_cidr=topo.cidr, chain_prefix=PREFIX, network_policy=False))
    vip = f"10.97.{topo.subnet.rsplit('.', 1)[1]}.10"
    p.on_service(service("web", vip))
    p.on_slice(eslice("web", [pod.ip]))
    await p.sync()
    direct, via = [], []
    for _ in range(20):
        one_request(pod.ip, 8080), one_request(vip, 80)
    for _ in range(n):
        direct.append(one_request(pod.ip, 8080))
        via.append(one_request(vip, 80))
    md, mv = statistics.median(direct), statistics.median(via)
    report("request to pod IP, median", md, "ms", "reference")
    report("request to ClusterIP, median", mv, "ms", "reference")
    report("ClusterIP overhead (median difference)", mv - md, "ms", "<= 0.1")


async def bench_sync(count: int) -> None:
    p = Proxier(ProxyConfig(node_name="bench", cluster_cidr="10.244.0.0/16", chain_prefix=PREFIX,
                            network_policy=False))
    for i in range(count):
        ip = f"10.98.{i // 250}.{i % 250 + 1}"
        p.on_service(service(f"svc-{i}", ip))
        p.on_slice(eslice(f"svc-{i}", [f"10.200.{i // 125}.{(i % 125) * 2 + 1}", f"10.200.{i // 125}.{(i % 125) * 2 + 2}"]))
    t0 = time.perf_counter()
    await p.sync()
    first = time.perf_counter() - t0
    fulls = []
    for _ in range(3):
        p.request_sync(full=True)
        t0 = time.perf_counter()
        await p.sync()
        fulls.append(time.perf_counter() - t0)
    full_rules = p.stats["nat_rules"]
    partials = []
    for k in range(5):
        p.on_slice_update({}, eslice("svc-7", [f"10.201.0.{k + 1}", "10.201.1.1"]))
        t0 = time.perf_counter()
        await p.sync()
        assert not p.stats["last_full"]
        partials.append(time.perf_counter() - t0)
    print(f"  ({count} services × 2 endpoints: {full_rules} nat rules in a full sync, "
          f"{p.stats['nat_rules']} in a partial one)")
    report(f"first sync, {count} services (creates every chain)", first, "s", "<= 0.5")
    report(f"full resync, {count} services, median", statistics.median(fulls), "s", "<= 0.5")
    report(f"partial sync after one endpoint change, {count} services", statistics.median(partials), "s", "<= 0.5")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def bench_latency(changes: int) -> None:
    data = tempfile.mkdtemp(prefix="kubelite-proxy-bench-")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kubelite.cli", "server", "--data-dir", f"{data}/d",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        kubeconfig = f"{data}/d/admin.kubeconfig"
        deadline = time.monotonic() + 30
        while not os.path.exists(kubeconfig) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        async with ApiClient.from_kubeconfig(kubeconfig) as api:
            for _ in range(100):
                try:
                    await api.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": "bench"}})
                    break
                except Exception:  # noqa: BLE001 - server still starting
                    await asyncio.sleep(0.2)
            svc = await api.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                              "spec": {"ports": [{"name": "http", "port": 80}]}}, "bench")
            body = eslice("web", ["10.202.0.1"])
            body.update(apiVersion="discovery.k8s.io/v1", kind="EndpointSlice")
            sl = await api.create(SLICES, body, "bench")
            server = ProxyServer(api, ProxyConfig(node_name="bench", chain_prefix=PREFIX, network_policy=False))
            stop = asyncio.Event()
            task = asyncio.ensure_future(server.run(stop))
            while server.proxier.stats["syncs"] == 0:
                await asyncio.sleep(0.05)
            lat = []
            for k in range(changes):
                await asyncio.sleep(1.05)  # past min-sync-period: the change is not rate limited
                new_ip = f"10.202.1.{k + 1}"
                sl["endpoints"] = [{"addresses": [new_ip], "conditions": {"ready": True}}]
                gen = server.proxier.synced.generation
                t0 = time.perf_counter()
                sl = await api.update(SLICES, sl)
                while True:
                    await server.proxier.synced.wait_past(gen, timeout=5)
                    gen = server.proxier.synced.generation
                    if any(new_ip in str(e) for eps in server.proxier._programmed.values() for e in eps):
                        break
                lat.append((time.perf_counter() - t0) * 1000)
                out = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
                assert f"--to-destination {new_ip}:8080" in out
            stop.set()
            await task
            report("endpoint change → rules in the kernel, median", statistics.median(lat), "ms", "<= 200")
            report("endpoint change → rules in the kernel, max", max(lat), "ms", "")
            del svc
    finally:
        proc.terminate()
        proc.wait()
        subprocess.run(["rm", "-rf", data])


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--changes", type=int, default=10)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/proxy.py needs root")
    topo = make_topology()
    try:
        await bench_overhead(topo, args.requests)
    finally:
        topo.teardown()
        remove_test_chains(PREFIX)
    try:
        await bench_sync(args.services)
    finally:
        remove_test_chains(PREFIX)
    try:
        await bench_latency(args.changes)
    finally:
        remove_test_chains(PREFIX)
        saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert PREFIX not in saved, "benchmark chains left behind"


if __name__ == "__main__":
    asyncio.run(main())
