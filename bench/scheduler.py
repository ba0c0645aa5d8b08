"""Scheduler throughput: 1,000 nodes, 10,000 pending pods, pods bound per second.

Starts `kubelite server` on a free port with a fresh data dir, creates the Node objects (allocatable + Ready
condition; no kubelet needed) and the pods through the API, then runs the scheduler in this process and
times from the informers' sync to the last binding.

    python bench/scheduler.py [--nodes 1000] [--pods 10000] [--fake-bind] [--profile out.html]

--fake-bind replaces the POST pods/<name>/binding with a no-op (the scheduler's own cost: informers, queue,
filter, score, assume); it is chosen automatically when the API server does not serve pods/binding.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time

from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError, SharedInformerFactory
from kubelite.scheduler import Scheduler, SchedulerConfig

R = Registry()
PODS = R.get("", "v1", "pods")
NODES = R.get("", "v1", "nodes")
NAMESPACES = R.get("", "v1", "namespaces")
TARGET = 1000.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: str, port: int) -> subprocess.Popen:
    log = open(data_dir + ".log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "kubelite.cli", "server", "--data-dir", data_dir,
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if os.path.exists(os.path.join(data_dir, "admin.kubeconfig")):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return proc
            except OSError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("kubelite server did not start")


def node(i: int) -> dict:
    name = f"node-{i:04d}"
    res = {"cpu": "32", "memory": "128Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  "topology.kubernetes.io/zone": f"zone-{i % 3}"}},
            "spec": {}, "status": {"allocatable": res, "capacity": res,
                                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


def pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"pod-{i:05d}", "namespace": "bench",
                                                            "labels": {"app": f"app-{i % 50}"}},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


async def create_all(client: ApiClient, rt, objs: list[dict], concurrency: int = 32) -> None:
    it = iter(objs)

    async def worker() -> None:
        for obj in it:
            created = await client.create(rt, obj)
            if rt is NODES and not (created.get("status") or {}).get("allocatable"):
                created["status"] = obj["status"]
                await client.update_status(NODES, created)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def binding_served(client: ApiClient) -> bool:
    try:
        await client.bind("bench", "no-such-pod", "no-such-node")
    except ClientError as e:
        return e.code != 503
    return True


async def run(args: argparse.Namespace, kubeconfig: str) -> None:
    async with ApiClient.from_kubeconfig(kubeconfig) as client:
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
        t0 = time.perf_counter()
        await create_all(client, NODES, [node(i) for i in range(args.nodes)])
        t1 = time.perf_counter()
        await create_all(client, PODS, [pod(i) for i in range(args.pods)])
        t2 = time.perf_counter()
        print(f"created {args.nodes} nodes in {t1 - t0:.1f}s, {args.pods} pods in {t2 - t1:.1f}s")
        fake = args.fake_bind or not await binding_served(client)
        if fake and not args.fake_bind:
            print("the API server does not serve pods/binding (503): measuring with --fake-bind")

        config = SchedulerConfig(leader_elect=False, seed=1, max_inflight_bindings=args.inflight)
        sched = Scheduler(client, config)
        if args.no_events:  # diagnosis only: how much the Scheduled events cost the server
            sched.recorder.event = lambda *a, **k: None
        if fake:
            async def no_bind(namespace, name, node_name, **kw):
                return {}
            sched.client = _FakeBindClient(client, no_bind)
            sched.recorder.client = client
        factory = SharedInformerFactory(client)
        sched.register(factory)
        factory.start()
        t3 = time.perf_counter()
        await factory.wait_for_sync()
        t4 = time.perf_counter()
        print(f"informers synced in {t4 - t3:.1f}s: {len(sched.cache.node_list)} nodes, "
              f"{len(sched.queue)} pods pending")
        stop = asyncio.Event()
        profiler = None
        if args.profile:
            from pyinstrument import Profiler  # profiling only
            profiler = Profiler(async_mode="disabled")
            profiler.start()
        start = time.perf_counter()
        runner = asyncio.ensure_future(sched.run(stop))
        while sched.bound < args.pods:
            await asyncio.sleep(0.05)
            if runner.done():
                break
            if time.perf_counter() - start > args.timeout:
                print(f"timeout: {sched.bound} bound, queue {sched.queue.stats()}")
                break
        elapsed = time.perf_counter() - start
        if profiler is not None:
            profiler.stop()
            with open(args.profile, "w") as f:
                f.write(profiler.output_text(unicode=False, color=False) if args.profile.endswith(".txt")
                        else profiler.output_html())
        stop.set()
        await runner
        rate = sched.bound / elapsed if elapsed else 0.0
        mode = "decisions (fake bind)" if fake else "pods bound"
        print(f"scheduler: {sched.bound} {mode} in {elapsed:.2f}s = {rate:.0f} pods/s "
              f"(target >= {TARGET:.0f}) {'OK' if rate >= TARGET else 'BELOW TARGET'}")
        per_node = sorted(len(n.pods) for n in sched.cache.node_list)
        print(f"pods per node: min {per_node[0]}, max {per_node[-1]}")
        if not fake:
            items = (await client.list(PODS, "bench", limit=1000))["items"]
            bound = sum(1 for p in items if p["spec"].get("nodeName"))
            print(f"API check: {bound}/{len(items)} pods have spec.nodeName")
        await sched.recorder.stop(timeout=2)
        await factory.stop()


class _FakeBindClient:
    """The real client, except that binding does nothing."""

    def __init__(self, client: ApiClient, bind) -> None:
        self._client = client
        self.bind = bind

    def __getattr__(self, name: str):
        return getattr(self._client, name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--fake-bind", action="store_true")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--profile", default="")
    ap.add_argument("--inflight", type=int, default=SchedulerConfig.max_inflight_bindings)
    ap.add_argument("--no-events", action="store_true")
    args = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="kubelite-bench-sched-") as tmp:
        data = os.path.join(tmp, "data")
        proc = start_server(data, free_port())
        try:
            asyncio.run(run(args, os.path.join(data, "admin.kubeconfig")))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
