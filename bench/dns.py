"""Cluster DNS throughput: answered queries per second over UDP.

Runs the DNS server in a child process (so the client does not share its CPU) with a catalog of --services
ClusterIP Services and --headless headless Services of 3 endpoints each, fed directly (no API server: the
catalog is what the informers would fill), then a simple asyncio UDP client keeps --window queries in flight
for --seconds and counts answers.  Names cycle over all services (A), headless services (A) and SRV names.

    python bench/dns.py [--services 1000] [--seconds 3] [--window 64] [--no-cache]

--no-cache turns the server's answer cache off: plain A/AAAA questions for Service and endpoint names are
then answered by the struct-built fast path, everything else (SRV, NXDOMAIN) parsed and built with dnslib.
Target: 5,000/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time

from dnslib import DNSRecord

TARGET = 5000.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def names(services: int, headless: int) -> list[tuple[str, str]]:
    out = [(f"svc-{i}.bench.svc.cluster.local", "A") for i in range(services)]
    out += [(f"hl-{i}.bench.svc.cluster.local", "A") for i in range(headless)]
    out += [(f"_http._tcp.svc-{i}.bench.svc.cluster.local", "SRV") for i in range(0, services, 10)]
    out += [(f"missing-{i}.bench.svc.cluster.local", "A") for i in range(0, services, 20)]
    return out


async def serve(port: int, services: int, headless: int, cache: bool) -> None:
    from kubelite.proxy.catalog import ServiceCatalog
    from kubelite.proxy.dns import DNSConfig, DNSServer, build_handler

    catalog = ServiceCatalog()
    for i in range(services):
        ip = f"10.96.{i // 250}.{i % 250 + 2}"
        catalog.apply("Service", {"metadata": {"namespace": "bench", "name": f"svc-{i}"},
                                  "spec": {"clusterIP": ip, "clusterIPs": [ip],
                                           "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
    for i in range(headless):
        catalog.apply("Service", {"metadata": {"namespace": "bench", "name": f"hl-{i}"},
                                  "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}})
        catalog.apply("EndpointSlice", {
            "metadata": {"namespace": "bench", "name": f"hl-{i}-x", "labels": {"kubernetes.io/service-name": f"hl-{i}"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80}],
            "endpoints": [{"addresses": [f"10.244.{i % 250}.{j + 2}"], "hostname": f"hl-{i}-{j}"} for j in range(3)]})
    handler = build_handler(catalog, DNSConfig(port=port, upstreams=[], cache_size=10000 if cache else 0))
    server = DNSServer(handler, "127.0.0.1", port, tcp=False)
    await server.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


class Client(asyncio.DatagramProtocol):
    def __init__(self, queries: list[bytes], window: int, deadline: float) -> None:
        self.queries = queries
        self.window = window
        self.deadline = deadline
        self.answered = 0
        self.sent = 0
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        for _ in range(self.window):
            self._send()

    def _send(self) -> None:
        q = self.queries[self.sent % len(self.queries)]
        self.sent += 1
        self.transport.sendto(q)

    def datagram_received(self, data: bytes, addr) -> None:
        self.answered += 1
        if time.monotonic() < self.deadline:
            self._send()
        elif not self.done.done() and self.answered >= self.sent - self.window:
            self.done.set_result(None)


async def measure(port: int, services: int, headless: int, seconds: float, window: int) -> float:
    qs = []
    for i, (name, qtype) in enumerate(names(services, headless)):
        q = DNSRecord.question(name, qtype)
        q.header.id = i % 65536
        qs.append(q.pack())
    random.Random(1).shuffle(qs)
    loop = asyncio.get_running_loop()
    # warm-up
    deadline = time.monotonic() + 0.5
    transport, proto = await loop.create_datagram_endpoint(lambda: Client(qs, window, deadline),
                                                           remote_addr=("127.0.0.1", port))
    await asyncio.sleep(0.6)
    transport.close()
    start = time.monotonic()
    deadline = start + seconds
    transport, proto = await loop.create_datagram_endpoint(lambda: Client(qs, window, deadline),
                                                           remote_addr=("127.0.0.1", port))
    await asyncio.sleep(seconds)
    answered = proto.answered
    elapsed = time.monotonic() - start
    transport.close()
    return answered / elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--headless", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.services, args.headless, not args.no_cache))
        return 0
    port = free_port()
    cmd = [sys.executable, os.path.abspath(__file__), "--serve", str(port), "--services", str(args.services),
           "--headless", str(args.headless)] + (["--no-cache"] if args.no_cache else [])
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        if child.stdout.readline().strip() != "ready":
            print("server did not start", file=sys.stderr)
            return 1
        qps = asyncio.run(measure(port, args.services, args.headless, args.seconds, args.window))
    finally:
        child.terminate()
        child.wait(5)
    mode = "no cache" if args.no_cache else "answer cache"
    verdict = "OK" if qps >= TARGET else "BELOW TARGET"
    print(f"dns: {qps:,.0f} queries/s ({mode}; {args.services} services, {args.headless} headless, "
          f"window {args.window}) — target {TARGET:,.0f}/s: {verdict}")
    return 0 if qps >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
