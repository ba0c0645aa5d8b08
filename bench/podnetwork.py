"""Pod-to-pod network benchmark: TCP throughput and connect latency between pods on one host, and across two
hosts through the pod network's host-gw routes and its VXLAN overlay.

Needs root, iproute2, iptables and iperf3. The "hosts" are network namespaces on a bridge in a "switch"
namespace, each with pods behind its `kubelite0` bridge (tests/flannel/netlab.py); the pod network is
programmed inside them by `kubelite.flannel.FlannelNetwork` through `nsenter`. Nothing in the root
namespace is touched; everything is removed at the end.

    python bench/podnetwork.py [--seconds 3] [--connects 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from flannel.netlab import Lab, requirements  # noqa: E402
from flannel.nodes import node  # noqa: E402
from kubelite.flannel import FlannelConfig, FlannelNetwork  # noqa: E402

ACCEPT_PORT = 8080
IPERF_PORT = 5201

CONNECTS = """
import json, socket, sys, time
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    t = time.perf_counter()
    s = socket.create_connection((ip, port), timeout=2)
    out.append(time.perf_counter() - t)
    s.close()
print(json.dumps(out))
"""

ACCEPT = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(512)
while True:
    c, _ = s.accept(); c.close()
"""


def connect_latency(lab: Lab, client: str, ip: str, n: int) -> tuple[float, float]:
    """(median, p99) of TCP connect time in ms (SYN → SYN-ACK seen by the client)."""
    out = lab.run(client, sys.executable, "-c", CONNECTS, ip, str(ACCEPT_PORT), str(n), timeout=120).stdout
    samples = sorted(json.loads(out))
    return statistics.median(samples) * 1e3, samples[int(len(samples) * 0.99) - 1] * 1e3


def throughput(lab: Lab, server: str, client: str, ip: str, seconds: float) -> float:
    """iperf3 TCP throughput in Gbit/s (one stream, received bytes)."""
    srv = subprocess.Popen([*lab.prefix(server), "iperf3", "-s", "-1", "-p", str(IPERF_PORT)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while f":{IPERF_PORT} " not in lab.run(server, "ss", "-Hltn").stdout:
            if time.monotonic() > deadline:
                raise RuntimeError("iperf3 server did not start")
            time.sleep(0.02)
        out = lab.run(client, "iperf3", "-c", ip, "-p", str(IPERF_PORT), "-t", str(seconds), "-J",
                      timeout=seconds + 30).stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        srv.wait(timeout=10)


def program(lab: Lab, hosts: list[str], nodes: list[dict], backend: str) -> list[FlannelNetwork]:
    nets = [FlannelNetwork(FlannelConfig(n["metadata"]["name"], backend=backend, command_prefix=lab.prefix(h)))
            for n, h in zip(nodes, hosts, strict=True)]
    for n in nodes:
        n["metadata"]["annotations"] = {}
    for _ in range(2):  # the second round sees the annotations the first wrote
        for net, n in zip(nets, nodes, strict=True):
            res = asyncio.run(net.sync(nodes))
            n["metadata"]["annotations"].update(res.annotations)
    for net in nets:
        asyncio.run(net.prepare_host())
    return nets


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="iperf3 duration per case")
    ap.add_argument("--connects", type=int, default=1000, help="TCP connects per case")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions (the VM is noisy)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the first sync round's "not annotated yet" is expected
    reason = requirements()
    if reason:
        print(f"skipped: {reason}")
        return 0
    lab = Lab()
    try:
        sw = lab.switch("sw")
        h1, h2 = lab.host("h1", sw, "192.168.77.11/24"), lab.host("h2", sw, "192.168.77.12/24")
        pa, _ = lab.pod(h1, "pa", "10.244.1.0/24")
        pb = lab.netns("pb")  # a second pod on h1
        lab.run(h1, "ip", "link", "add", "vethpb", "type", "veth", "peer", "name", "eth0", "netns", pb)
        lab.run(h1, "ip", "link", "set", "vethpb", "master", "kubelite0", "up")
        lab.run(pb, "ip", "link", "set", "eth0", "up")
        lab.run(pb, "ip", "addr", "add", "10.244.1.3/24", "dev", "eth0")
        lab.run(pb, "ip", "route", "add", "default", "via", "10.244.1.1")
        pc, ip_c = lab.pod(h2, "pc", "10.244.2.0/24")
        for ns in (pb, pc):
            lab.start(ns, sys.executable, "-c", ACCEPT, str(ACCEPT_PORT))
        time.sleep(0.3)
        nodes = [node("node01", "10.244.1.0/24", "192.168.77.11"), node("node02", "10.244.2.0/24", "192.168.77.12")]
        samples: dict[str, list[tuple[float, float, float]]] = {}
        labels = ["same host (bridge kubelite0)", "across hosts, host-gw (MTU 1500)",
                  "across hosts, vxlan (pod MTU 1450)"]

        def measure(label: str, server: str, ip: str) -> None:
            gbps = throughput(lab, server, pa, ip, args.seconds)
            p50, p99 = connect_latency(lab, pa, ip, args.connects)
            samples.setdefault(label, []).append((gbps, p50, p99))

        print(f"pod → pod, TCP: iperf3 {args.seconds:g} s one stream; {args.connects} connects; {args.rounds} "
              f"interleaved rounds, medians ({os.cpu_count()} CPUs, kernel {os.uname().release})", flush=True)
        for _ in range(args.rounds):
            measure(labels[0], pb, "10.244.1.3")
            nets = program(lab, [h1, h2], nodes, "host-gw")
            measure(labels[1], pc, ip_c)
            for net in nets:
                asyncio.run(net.cleanup())
            for ns in (pa, pc):
                lab.run(ns, "ip", "link", "set", "eth0", "mtu", "1450")
            nets = program(lab, [h1, h2], nodes, "vxlan")
            measure(labels[2], pc, ip_c)
            for net in nets:
                asyncio.run(net.cleanup())
            for ns in (pa, pc):
                lab.run(ns, "ip", "link", "set", "eth0", "mtu", "1500")
        med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in samples.items()}
        for label in labels:
            gbps, p50, p99 = med[label]
            spread = [f"{x[0]:.1f}" for x in samples[label]]
            print(f"{label:<36} {gbps:6.2f} Gbit/s (rounds {', '.join(spread)})   "
                  f"connect p50 {p50 * 1e3:5.0f} µs  p99 {p99 * 1e3:5.0f} µs", flush=True)
        base = med[labels[0]]
        for label in labels[1:]:
            print(f"{label:<36} {med[label][0] / base[0] * 100:5.1f}% of same-host throughput, "
                  f"connect p50 {(med[label][1] - base[1]) * 1e3:+5.0f} µs")
    finally:
        lab.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
