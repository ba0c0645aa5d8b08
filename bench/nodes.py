"""Simulated-node benchmark: N nodes and P pods (bound directly with spec.nodeName) until all are Running and
Ready, in the agent's own process; reports time, status writes and the agent's RSS.

Starts `kubelite server` as a subprocess on a free port with a fresh data dir.

    python bench/nodes.py [--nodes 100] [--pods 3000] [--events]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

from kubelite.api.resources import Registry
from kubelite.client import ApiClient
from kubelite.kubelet.agent import SimulatedNodes
from kubelite.kubelet.simulated import SimulatedConfig

PODS = Registry().get("", "v1", "pods")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_server(data: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "kubelite.cli", "server", "--data-dir", data, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=1):
                if os.path.exists(os.path.join(data, "admin.kubeconfig")):
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


async def run(args: argparse.Namespace, kubeconfig: str, server_pid: int) -> None:
    client = ApiClient.from_kubeconfig(kubeconfig)
    cfg = SimulatedConfig(start_seconds=0.05, events=args.events, workers=args.workers)
    names = [f"sim-node-{i}" for i in range(args.nodes)]
    t0 = time.monotonic()
    nodes = SimulatedNodes(client, names, cfg)
    await nodes.start()
    print(f"register {args.nodes} nodes: {time.monotonic() - t0:.2f} s")

    sem = asyncio.Semaphore(16)

    async def create(i: int) -> None:
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"bench-{i}", "labels": {"app": "bench"}},
                "spec": {"nodeName": names[i % len(names)], "containers": [{"name": "c", "image": "nginx:1.27"}]}}
        async with sem:
            await client.create(PODS, body, "default")

    t1 = time.monotonic()
    creating = asyncio.gather(*(create(i) for i in range(args.pods)))
    inf = nodes.pod_informer

    def done() -> int:
        n = 0
        for p in inf.list("default"):
            st = p.get("status") or {}
            if st.get("phase") == "Running" and any(c["type"] == "Ready" and c["status"] == "True"
                                                    for c in st.get("conditions") or ()):
                n += 1
        return n

    await creating
    t_created = time.monotonic() - t1
    while done() < args.pods:
        await asyncio.sleep(0.1)
        if time.monotonic() - t1 > 300:
            break
    total = time.monotonic() - t1
    print(f"create {args.pods} pods: {t_created:.2f} s; all Running+Ready after {total:.2f} s "
          f"(target ≤ 10 s for 3000 on 100 nodes); status writes {nodes.status_writes}")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open(f"/proc/{server_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    server_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    print(f"CPU: agent+client {ru.ru_utime + ru.ru_stime:.1f} s, server {server_cpu:.1f} s")
    print(f"agent RSS {rss_mib():.0f} MiB (max {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB), "
          f"server RSS {rss_mib(server_pid):.0f} MiB")
    await nodes.stop()
    await client.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--events", action="store_true", help="also write the kubelet's Events")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        port = free_port()
        proc = start_server(data, port)
        try:
            asyncio.run(run(args, os.path.join(data, "admin.kubeconfig"), proc.pid))
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
