"""Patch benchmark: strategic merge patch and server-side apply of a Deployment (issue 3: ≤ 5 ms median).

Runs `kubelite`'s API server in this process (fresh data dir, free port, HTTPS) and drives it with a
keep-alive client. "server" is the time spent in the PATCH handler (decode, merge, managedFields,
validation, admission, the store's commit), "client" the request latency seen over HTTPS. Measured with
the store's fsync on (the default) and off, and in-process without HTTP or storage.

    python bench/apply.py [--n 300]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import socket
import ssl
import statistics
import tempfile
import time

import aiohttp

from kubelite.api import apply as ssa
from kubelite.api import patch
from kubelite.api.resources import Registry
from kubelite.apiserver import patching, server
from kubelite.apiserver.config import ServerConfig

TARGET_MS = 5.0
NS = "bench-apply"
DEPLOY = Registry().get("apps", "v1", "deployments")


def deployment(replicas: int, image: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS,
                                                                        "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                         {"name": "nginx", "image": image, "ports": [{"containerPort": 80}],
                          "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                          "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}},
                         {"name": "sidecar", "image": "busybox", "args": ["sleep", "3600"]}]}}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report(name: str, values: list[float]) -> None:
    median = statistics.median(values)
    p90 = sorted(values)[int(0.9 * (len(values) - 1))]
    verdict = "OK" if median <= TARGET_MS else "OVER"
    print(f"{name:34s} median {median:6.2f} ms  p90 {p90:6.2f} ms  (target ≤ {TARGET_MS} ms median: {verdict})")


async def over_http(url: str, pki: str, n: int) -> None:
    ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
    ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    base = f"{url}/apis/apps/v1/namespaces/{NS}/deployments"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=1)) as s:
        async with s.post(f"{url}/api/v1/namespaces", json={"metadata": {"name": NS}}) as r:
            assert r.status in (201, 409), await r.text()
        async with s.post(base + "?fieldManager=bench", json=deployment(1, "nginx:1")) as r:
            assert r.status == 201, await r.text()
        smp, apply, gets = [], [], []
        for i in range(n):
            t = time.perf_counter()
            async with s.get(base + "/web") as r:
                await r.read()
            gets.append((time.perf_counter() - t) * 1000)
            body = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"},
                                                                                   {"name": "sidecar"}],
                                                   "containers": [{"name": "nginx", "image": f"nginx:{i}"}]}}}}
            t = time.perf_counter()
            async with s.patch(base + "/web?fieldManager=kubectl-edit", json=body,
                               headers={"Content-Type": "application/strategic-merge-patch+json"}) as r:
                await r.read()
                assert r.status == 200
            smp.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            async with s.patch(base + "/web?fieldManager=kubectl&force=true", json=deployment(i % 5 + 1, f"nginx:{i}"),
                               headers={"Content-Type": "application/apply-patch+yaml"}) as r:
                await r.read()
                assert r.status == 200, await r.text()
            apply.append((time.perf_counter() - t) * 1000)
    report("client GET (baseline, no write)", gets)
    report("client strategic merge patch", smp)
    report("client server-side apply (force)", apply)
    report("client SMP + SSA pair", [a + b for a, b in zip(smp, apply, strict=True)])


def in_process(n: int) -> None:
    live = deployment(1, "nginx:1")
    ssa.record_update(DEPLOY, None, live, "bench")
    smp, apply = [], []
    for i in range(n):
        t = time.perf_counter()
        new = patch.strategic_merge_patch(copy.deepcopy(live), {"spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": f"nginx:{i}"}]}}}}, DEPLOY.schema_name)
        ssa.record_update(DEPLOY, live, new, "kubectl-edit")
        smp.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        live = ssa.server_side_apply(DEPLOY, new, deployment(i % 5 + 1, f"nginx:{i}"), "kubectl", force=True)
        apply.append((time.perf_counter() - t) * 1000)
    report("in-process SMP + managedFields", smp)
    report("in-process server-side apply", apply)


async def run_server(n: int, fsync: bool) -> None:
    handler_ms: list[float] = []
    original = patching.patch_resource

    async def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            handler_ms.append((time.perf_counter() - t) * 1000)

    with tempfile.TemporaryDirectory() as tmp:
        config = ServerConfig(data_dir=os.path.join(tmp, "data"), port=free_port(), fsync=fsync)
        running = await server.start(config)
        patching.patch_resource = timed
        try:
            print(f"-- server in process, fsync={'on' if fsync else 'off'}")
            await over_http(running.url, os.path.join(config.data_dir, "pki"), n)
            smp, apply = handler_ms[0::2][-n:], handler_ms[1::2][-n:]
            report("server strategic merge patch", smp)
            report("server server-side apply", apply)
            report("server SMP + SSA pair", [a + b for a, b in zip(smp, apply, strict=True)])
        finally:
            patching.patch_resource = original
            await running.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    print("-- in process, no HTTP or storage")
    in_process(args.n)
    asyncio.run(run_server(args.n, fsync=True))
    asyncio.run(run_server(args.n, fsync=False))


if __name__ == "__main__":
    main()
