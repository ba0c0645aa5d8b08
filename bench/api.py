"""API server benchmark: start time, create throughput, GET latency, LIST, watch fan-out, memory.

Starts `kubelite server` as a subprocess on a free port with a fresh data dir and measures it over HTTPS
with keep-alive, using raw aiohttp and the official `kubernetes` client. Prints one line per figure and
the target it must meet (the figures a real kube-apiserver v1.36 + etcd 3.4 reached on this machine).

    python bench/api.py [--quick] [--etcd URLS]

KUBELITE_ETCD_WATCH_CACHE=0 in the environment runs the etcd store without its watch cache (reads from etcd).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import aiohttp
import orjson

TARGETS = {
    "start_to_readyz_s": 1.0,
    "create_1000_1client_s": 1.95,
    "create_1000_8clients_s": 1.02,
    "get_p99_ms": 2.9,
    "idle_rss_mib": 80,
    "list_10000_s": 0.5,
    "watch_100_p99_ms": 50,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def report(name: str, value: float, unit: str) -> None:
    target = TARGETS.get(name)
    verdict = ""
    if target is not None:
        verdict = f"  (target <= {target}{unit}: {'ok' if value <= target else 'MISSED'})"
    print(f"{name:28s} {value:10.3f} {unit}{verdict}", flush=True)


class Server:
    def __init__(self, data_dir: str, extra_args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_args = list(extra_args or [])
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> float:
        began = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "kubelite.cli", "server", "--data-dir", self.data_dir,
                                      "--port", str(self.port), *self.extra_args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("kubelite exited during start")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
                    with ctx.wrap_socket(raw) as s:
                        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        if s.recv(64).startswith(b"HTTP/1.1 200"):
                            return time.monotonic() - began
            except OSError:
                pass
            time.sleep(0.005)

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)

    def ssl_context(self) -> ssl.SSLContext:
        pki = os.path.join(self.data_dir, "pki")
        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        return ctx


def configmap(name: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                         "data": {"key": "value " * 40}})


async def raw_benchmarks(server: Server, quick: bool) -> None:
    ctx = server.ssl_context()
    conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    async with aiohttp.ClientSession(server.url, connector=conn, headers=headers) as http:
        async def create(ns: str, name: str) -> None:
            async with http.post(f"/api/v1/namespaces/{ns}/configmaps", data=configmap(name)) as r:
                if r.status != 201:
                    raise SystemExit(f"create failed: {r.status} {await r.text()}")
                await r.read()

        async def make_ns(ns: str) -> None:
            async with http.post("/api/v1/namespaces", data=orjson.dumps(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})) as r:
                await r.read()

        n = 200 if quick else 1000
        await make_ns("bench-seq")
        began = time.perf_counter()
        for i in range(n):
            await create("bench-seq", f"cm-{i}")
        report("create_1000_1client_s", (time.perf_counter() - began) * 1000 / n, "s")

        await make_ns("bench-par")
        began = time.perf_counter()

        async def worker(w: int) -> None:
            for i in range(n // 8):
                await create("bench-par", f"cm-{w}-{i}")

        await asyncio.gather(*(worker(w) for w in range(8)))
        report("create_1000_8clients_s", (time.perf_counter() - began) * 1000 / n, "s")

        latencies = []
        for i in range(n):
            t = time.perf_counter()
            async with http.get(f"/api/v1/namespaces/bench-seq/configmaps/cm-{i % n}") as r:
                await r.read()
            latencies.append((time.perf_counter() - t) * 1000)
        report("get_p50_ms", statistics.median(latencies), "ms")
        report("get_p99_ms", pct(latencies, 99), "ms")

        total = 2000 if quick else 10000
        await make_ns("bench-list")
        sem = asyncio.Semaphore(16)

        async def bounded(i: int) -> None:
            async with sem:
                await create("bench-list", f"item-{i:05d}")

        await asyncio.gather(*(bounded(i) for i in range(total)))
        times = []
        for _ in range(3):
            t = time.perf_counter()
            async with http.get("/api/v1/namespaces/bench-list/configmaps") as r:
                body = await r.read()
            times.append(time.perf_counter() - t)
        items = len(orjson.loads(body)["items"])
        assert items == total, items
        report("list_10000_s", min(times) * 10000 / total, "s")

        await make_ns("bench-watch")
        watchers = 100
        received: list[list[float]] = [[] for _ in range(watchers)]
        ready = asyncio.Event()
        connected = 0

        async def watch(idx: int) -> None:
            nonlocal connected
            async with http.get("/api/v1/namespaces/bench-watch/configmaps",
                                params={"watch": "true", "resourceVersion": "1",
                                        "timeoutSeconds": "60"} if False else
                                {"watch": "true", "timeoutSeconds": "60"}, timeout=aiohttp.ClientTimeout(None)) as r:
                connected += 1
                if connected == watchers:
                    ready.set()
                async for line in r.content:
                    event = orjson.loads(line)
                    sent = float(event["object"]["data"]["sent"])
                    received[idx].append((time.time() - sent) * 1000)
                    if len(received[idx]) >= events:
                        return

        events = 10
        tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
        await asyncio.wait_for(ready.wait(), 30)
        await asyncio.sleep(0.3)
        for i in range(events):
            async with http.post("/api/v1/namespaces/bench-watch/configmaps", data=orjson.dumps(
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"w-{i}"},
                     "data": {"sent": repr(time.time())}})) as r:
                await r.read()
            await asyncio.sleep(0.1)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        all_latencies = [x for per in received for x in per]
        report("watch_100_p50_ms", statistics.median(all_latencies), "ms")
        report("watch_100_p99_ms", pct(all_latencies, 99), "ms")


def official_client_benchmarks(server: Server, quick: bool) -> None:
    from kubernetes import client, config

    kubeconfig = os.path.join(server.data_dir, "admin.kubeconfig")
    api_client = config.new_client_from_config(config_file=kubeconfig)
    v1 = client.CoreV1Api(api_client)
    v1.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-client"}})
    n = 200 if quick else 1000
    body = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"key": "value " * 40}}
    began = time.perf_counter()
    for i in range(n):
        v1.create_namespaced_config_map("bench-client", {**body, "metadata": {"name": f"seq-{i}"}})
    report("client_create_1000_1client_s", (time.perf_counter() - began) * 1000 / n, "s")

    def worker(w: int) -> None:
        c = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        for i in range(n // 8):
            c.create_namespaced_config_map("bench-client", {**body, "metadata": {"name": f"par-{w}-{i}"}})

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report("client_create_1000_8clients_s", (time.perf_counter() - began) * 1000 / n, "s")
    latencies = []
    for i in range(n):
        t = time.perf_counter()
        v1.read_namespaced_config_map(f"seq-{i}", "bench-client")
        latencies.append((time.perf_counter() - t) * 1000)
    report("client_get_p50_ms", statistics.median(latencies), "ms")
    report("client_get_p99_ms", pct(latencies, 99), "ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts, scaled to the same units")
    parser.add_argument("--etcd", default="", metavar="URLS",
                        help="run the server on the etcd at these endpoints (a fresh --etcd-prefix)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubelite-bench-") as tmp:
        extra = ["--etcd-servers", args.etcd, "--etcd-prefix", f"/bench-{os.getpid()}-{time.time_ns()}"] \
            if args.etcd else []
        server = Server(os.path.join(tmp, "data"), extra)
        try:
            report("start_to_readyz_s", server.start(), "s")
            time.sleep(1.0)
            report("idle_rss_mib", rss_mib(server.proc.pid), "MiB")
            asyncio.run(raw_benchmarks(server, args.quick))
            official_client_benchmarks(server, args.quick)
            report("rss_after_load_mib", rss_mib(server.proc.pid), "MiB")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
