"""Server-side printing cost: a Table GET of 1,000 pods against the plain JSON LIST of the same pods.

Starts `kubelite server` on a free port with a fresh data dir, creates 1,000 realistic pods (two containers,
ports, env, resources, labels) in one namespace, then times, over HTTPS with keep-alive, the LIST kubectl
sends for `get pods -o json` (Accept application/json) and the one it sends for `get pods` (the Table
Accept), both with limit=500 pages as kubectl asks for them and as one unpaged LIST. Target (issue 3): the
Table GET takes at most 2x the plain LIST.

    python bench/tables.py [--pods N] [--rounds R]
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
import time

import aiohttp
import orjson

JSON = "application/json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
NS = "bench-tables"
TARGET_RATIO = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: str, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "kubelite.cli", "server", "--data-dir", data_dir,
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("kubelite exited during start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, ctx.wrap_socket(raw) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            pass
        time.sleep(0.02)
    proc.kill()
    raise SystemExit("kubelite did not become ready")


def pod(i: int) -> bytes:
    return orjson.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"web-{i:05d}", "labels": {"app": "web", "tier": "frontend", "shard": str(i % 7)},
                     "annotations": {"example.com/owner": "bench"}},
        "spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80, "name": "http"}],
             "env": [{"name": "MODE", "value": "bench"}, {"name": "INDEX", "value": str(i)}],
             "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}},
            {"name": "sidecar", "image": "busybox:1.36", "command": ["sleep", "infinity"]}]}})


async def run(url: str, ctx: ssl.SSLContext, pods: int, rounds: int) -> dict[str, list[float]]:
    conn = aiohttp.TCPConnector(ssl=ctx, limit=16)
    async with aiohttp.ClientSession(url, connector=conn) as http:
        async with http.post("/api/v1/namespaces", data=orjson.dumps(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
                headers={"Content-Type": JSON}) as r:
            await r.read()
        sem = asyncio.Semaphore(16)

        async def create(i: int) -> None:
            async with sem, http.post(f"/api/v1/namespaces/{NS}/pods", data=pod(i),
                                      headers={"Content-Type": JSON, "Accept": JSON}) as r:
                if r.status != 201:
                    raise SystemExit(f"create failed: {r.status} {await r.text()}")
                await r.read()

        await asyncio.gather(*(create(i) for i in range(pods)))

        async def list_all(accept: str, limit: int | None) -> tuple[float, int, int]:
            began = time.perf_counter()
            count = size = 0
            cont = ""
            while True:
                params = {}
                if limit:
                    params["limit"] = str(limit)
                if cont:
                    params["continue"] = cont
                async with http.get(f"/api/v1/namespaces/{NS}/pods", params=params, headers={"Accept": accept}) as r:
                    body = await r.read()
                    if r.status != 200:
                        raise SystemExit(f"list failed: {r.status} {body[:300]!r}")
                size += len(body)
                doc = orjson.loads(body)
                count += len(doc.get("rows", doc.get("items", [])))
                cont = (doc.get("metadata") or {}).get("continue", "")
                if not cont:
                    return time.perf_counter() - began, count, size

        times: dict[str, list[float]] = {k: [] for k in ("json", "table", "json_paged", "table_paged")}
        sizes: dict[str, int] = {}
        for _ in range(2):  # warm-up
            await list_all(JSON, None)
            await list_all(TABLE, None)
        for _ in range(rounds):
            for key, accept, limit in (("json", JSON, None), ("table", TABLE, None),
                                       ("json_paged", JSON, 500), ("table_paged", TABLE, 500)):
                elapsed, count, size = await list_all(accept, limit)
                if count != pods:
                    raise SystemExit(f"{key}: expected {pods} entries, got {count}")
                times[key].append(elapsed)
                sizes[key] = size
        times["_sizes"] = [float(sizes[k]) for k in ("json", "table", "json_paged", "table_paged")]
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubelite-bench-tables-") as tmp:
        data_dir = os.path.join(tmp, "data")
        port = free_port()
        proc = start_server(data_dir, port)
        try:
            pki = os.path.join(data_dir, "pki")
            ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
            ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
            times = asyncio.run(run(f"https://127.0.0.1:{port}", ctx, args.pods, args.rounds))
        finally:
            proc.terminate()
            proc.wait(10)
    sizes = dict(zip(("json", "table", "json_paged", "table_paged"), times.pop("_sizes"), strict=True))
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    for key in ("json", "table", "json_paged", "table_paged"):
        print(f"{key + '_list_ms':24s} {med[key]:9.2f} ms  (median of {args.rounds}; "
              f"{sizes[key] / 1024:.0f} KiB)")
    for plain, table in (("json", "table"), ("json_paged", "table_paged")):
        ratio = med[table] / med[plain]
        verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
        print(f"{table + '/' + plain:24s} {ratio:9.2f} x   (target <= {TARGET_RATIO}x: {verdict})")


if __name__ == "__main__":
    main()
