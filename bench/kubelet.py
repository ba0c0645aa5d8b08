"""The real kubelet's figures (issue 5) on one runc node with a cached image: pod create → Running p50/p99 over
50 pods, a 100-replica Deployment all Ready, the agent's idle RSS, and the exec round trip.

`kubelite up --node-runtime none` runs the API server, controllers and scheduler; the node is `kubelite agent
--runtime runc` in a process of its own (so its RSS is its own), pulling busybox from a local registry that
mirrors docker.io (tests/images).  Needs root, runc, conmon, the CNI plugins and docker-registry; it changes host
state (bridge kubelite0, 10.244/16), so run it under the real-node lock:

    flock /tmp/kubelite-realnode.lock python bench/kubelet.py [--pods 50] [--replicas 100] [--execs 20]

Exec round trip: one `exec POD -- true` over the websocket (v5.channel.k8s.io) through the API server, from the
upgrade request to the exit Status; the median of N.  `--profile-agent DIR` records the agent with py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "images"))

import aiohttp  # noqa: E402

from kubelite_cluster import Cluster, free_port  # noqa: E402

TARGETS = {"pod_running_p50_s": 0.3, "pod_running_p99_s": 1.0, "deployment_100_ready_s": 20.0,
           "agent_idle_rss_mib": 40.0, "exec_rtt_ms": 50.0}


# `--trace-memory`: the agent under tracemalloc; on SIGUSR1 it writes where its Python memory is, and how much
# of its heap glibc gives back after a collection and malloc_trim (memory freed but kept by the allocator)
TRACE_WRAPPER = """
import ctypes, gc, os, signal, sys, tracemalloc
def rss():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) / 1024 for x in f if x.startswith("VmRSS"))
def dump(*_):
    out = f"/tmp/kubelite-agent-{os.getpid()}.tracemalloc"
    lines = [f"modules {len(sys.modules)}, threads {len(os.listdir('/proc/self/task'))}"]
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot()
        stats = snap.statistics("filename")
        lines.append(f"python heap traced: {sum(s.size for s in stats) / 2**20:.1f} MiB")
        lines += [f"  {s.size / 2**20:6.2f} MiB  {s.traceback[0].filename}" for s in stats[:20]]
        del snap, stats
        tracemalloc.stop()
    before = rss()
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    lines.append(f"rss {before:.1f} MiB -> {rss():.1f} MiB after gc + malloc_trim (tracing stopped)")
    with open(out + ".part", "w") as f:
        f.write("\\n".join(lines) + "\\n")
    os.rename(out + ".part", out)
signal.signal(signal.SIGUSR1, dump)
from kubelite.cli import main
sys.exit(main(sys.argv[1:]))
"""


def report(name: str, value: float, fmt: str = "{:.3f}") -> None:
    target = TARGETS.get(name)
    verdict = "" if target is None else f"  (target <= {target}: {'MET' if value <= target else 'MISSED'})"
    print(f"{name:<28} {fmt.format(value)}{verdict}", flush=True)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def memory_breakdown(pid: int) -> str:
    """Anonymous (heap) vs file-backed (code, shared libraries) resident memory."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return (f"rss anon {fields.get('Anonymous', 0):.1f} MiB, file {fields.get('Rss', 0) - fields.get('Anonymous', 0):.1f}"
            f" MiB (shared-clean {fields.get('Shared_Clean', 0):.1f}); pss {fields.get('Pss', 0):.1f} MiB")


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


class Api:
    def __init__(self, cluster: Cluster) -> None:
        pki = os.path.join(cluster.data_dir, "pki")
        self.ssl = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.ssl.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        self.url = cluster.url
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl, limit=32))

    async def req(self, method: str, path: str, body: dict | None = None, ok=(200, 201, 202, 404)) -> dict:
        async with self.session.request(method, self.url + path, json=body) as r:
            data = await r.json(content_type=None)
            if r.status not in ok:
                raise RuntimeError(f"{method} {path}: {r.status} {data}")
            return data

    async def watch_pods(self, on_event) -> None:
        rv = (await self.req("GET", "/api/v1/namespaces/default/pods"))["metadata"]["resourceVersion"]
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(self.url + f"/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}"
                                               "&allowWatchBookmarks=false", timeout=timeout) as r:
            async for line in r.content:
                if line.strip():
                    on_event(json.loads(line))


def pod(name: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}}


async def wait_gone(api: Api, selector: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = (await api.req("GET", f"/api/v1/namespaces/default/pods?labelSelector={selector}"))["items"]
        if not items:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"pods {selector} still there after {timeout}s")


async def containers_gone(agent_dir: str, timeout: float = 120) -> None:
    """The node has torn every container and pod network down (the API may forget a pod first)."""
    deadline = time.monotonic() + timeout
    root, results = os.path.join(agent_dir, "runc"), os.path.join(agent_dir, "cni", "results")
    while time.monotonic() < deadline:
        out = subprocess.run(["runc", "--root", root, "list", "-q"], capture_output=True, text=True).stdout
        if not out.split() and not (os.path.isdir(results) and os.listdir(results)):
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"containers left under {root} after {timeout}s")


async def exec_once(api: Api, name: str) -> float:
    url = api.url + f"/api/v1/namespaces/default/pods/{name}/exec?command=true&stdout=true&stderr=true"
    began = time.perf_counter()
    async with api.session.ws_connect(url, protocols=("v5.channel.k8s.io",)) as ws:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data[:1] == b"\x03":
                elapsed = time.perf_counter() - began
                assert json.loads(msg.data[1:])["status"] == "Success", msg.data
                return elapsed
    raise RuntimeError("no exit status")


async def bench(cluster: Cluster, agent: subprocess.Popen, args: argparse.Namespace) -> None:
    api = Api(cluster)
    running: dict[str, float] = {}
    waiters: dict[str, asyncio.Future] = {}

    def on_event(ev: dict) -> None:
        obj = ev.get("object") or {}
        name = (obj.get("metadata") or {}).get("name", "")
        if (obj.get("status") or {}).get("phase") == "Running" and name not in running:
            running[name] = time.perf_counter()
            fut = waiters.get(name)
            if fut is not None and not fut.done():
                fut.set_result(None)
    watcher = asyncio.ensure_future(api.watch_pods(on_event))
    try:
        deadline = time.monotonic() + 60
        while not any(c["type"] == "Ready" and c["status"] == "True"
                      for n in (await api.req("GET", "/api/v1/nodes"))["items"]
                      for c in n["status"].get("conditions", [])):
            if time.monotonic() > deadline:
                raise RuntimeError("the node did not become Ready")
            await asyncio.sleep(0.2)

        async def create_and_wait(name: str, labels: dict) -> float:
            waiters[name] = asyncio.get_running_loop().create_future()
            began = time.perf_counter()
            await api.req("POST", "/api/v1/namespaces/default/pods", pod(name, labels))
            await asyncio.wait_for(waiters[name], 120)
            return running[name] - began

        # the image pulled once (cached afterwards), and the exec target
        first = await create_and_wait("warm", {"bench": "warm"})
        print(f"first pod (image pull)       {first:.3f}", flush=True)
        await asyncio.sleep(3)
        report("agent_idle_rss_mib", rss_mib(agent.pid), "{:.1f}")
        print(f"  {memory_breakdown(agent.pid)}", flush=True)
        if args.trace_memory:
            agent.send_signal(signal.SIGUSR1)
            dump = f"/tmp/kubelite-agent-{agent.pid}.tracemalloc"
            while not os.path.exists(dump):
                await asyncio.sleep(0.2)
            with open(dump) as f:
                print(f.read(), flush=True)
            os.unlink(dump)
        if args.idle_only:
            return

        rtts = [await exec_once(api, "warm") for _ in range(args.execs + 2)][2:]  # 2 warm-up rounds
        report("exec_rtt_ms", statistics.median(rtts) * 1000, "{:.1f}")
        print(f"  exec rtt min/max ms        {min(rtts) * 1000:.1f} / {max(rtts) * 1000:.1f}", flush=True)

        lat = [await create_and_wait(f"p{i}", {"bench": "pods"}) for i in range(args.pods)]
        report("pod_running_p50_s", statistics.median(lat))
        report("pod_running_p99_s", percentile(lat, 0.99))
        await api.req("DELETE", "/api/v1/namespaces/default/pods?labelSelector=bench%3Dpods")
        await wait_gone(api, "bench%3Dpods")

        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big"},
               "spec": {"replicas": args.replicas, "selector": {"matchLabels": {"app": "big"}},
                        "template": {"metadata": {"labels": {"app": "big"}}, "spec": pod("x")["spec"]}}}
        began = time.perf_counter()
        await api.req("POST", "/apis/apps/v1/namespaces/default/deployments", dep)
        last = None
        while True:
            st = (await api.req("GET", "/apis/apps/v1/namespaces/default/deployments/big")).get("status", {})
            seen = (st.get("replicas"), st.get("readyReplicas"))
            if seen != last:
                print(f"  t={time.perf_counter() - began:6.2f}s replicas/ready = {seen}", flush=True)
                last = seen
            if st.get("readyReplicas") == args.replicas:
                break
            if time.perf_counter() - began > 300:
                raise RuntimeError("the Deployment was not Ready after 300 s")
            await asyncio.sleep(0.1)
        report(f"deployment_{args.replicas}_ready_s", time.perf_counter() - began, "{:.2f}")
        print(f"agent_rss_mib_{args.replicas}_pods     {rss_mib(agent.pid):.1f}", flush=True)
        await api.req("DELETE", "/apis/apps/v1/namespaces/default/deployments/big")
    finally:
        with_cleanup = [api.req("DELETE", "/api/v1/namespaces/default/pods?labelSelector=bench"),
                        api.req("DELETE", "/apis/apps/v1/namespaces/default/deployments/big")]
        for c in with_cleanup:
            try:
                await c
            except Exception as e:  # noqa: BLE001 — best effort, then wait for the node to empty
                print(f"cleanup: {e}", file=sys.stderr)
        try:
            await wait_gone(api, "bench")
            await wait_gone(api, "app%3Dbig")
            await containers_gone(args.agent_dir)
        finally:
            watcher.cancel()
            await api.session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--execs", type=int, default=20)
    parser.add_argument("--trace-memory", choices=("python", "trim"),
                        help="python: where the agent's Python memory is (tracemalloc); trim: how much of its RSS "
                             "is freed heap glibc keeps")
    parser.add_argument("--idle-only", action="store_true", help="stop after the idle RSS")
    parser.add_argument("--profile-agent", metavar="DIR", help="record the agent with py-spy into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (runc, network namespaces)")
    from build_test_image import LocalRegistry, push_standard_images

    tmp = tempfile.mkdtemp(prefix="kubelite-bench-kubelet-")
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        ip_forward = f.read()
    cluster = Cluster(data_dir=os.path.join(tmp, "data"), port=free_port(), cache_dir=os.path.join(tmp, "cache"),
                      command="up", extra_args=["--node-runtime", "none", "--disable", "dns,servicelb,ingress"])
    registry = LocalRegistry().start()
    agent = spy = None
    try:
        asyncio.run(push_standard_images(registry.host))
        regfile = os.path.join(tmp, "registries.yaml")
        with open(regfile, "w") as f:
            f.write(f"mirrors:\n  docker.io:\n    endpoint:\n      - http://{registry.host}\n")
        cluster.start(timeout=120)
        agent_log = open(os.path.join(tmp, "agent.log"), "ab")  # noqa: SIM115 — lives as long as the agent
        launcher = ["-m", "kubelite.cli"]
        if args.trace_memory:
            launcher = ["-X", f"tracemalloc={int(args.trace_memory == 'python')}", "-c", TRACE_WRAPPER]
        agent = subprocess.Popen([sys.executable, *launcher, "agent", "--kubeconfig", cluster.kubeconfig,
                                  "--runtime", "runc", "--node-name", "bench-node", "--data-dir",
                                  os.path.join(tmp, "agent"), "--kubelet-port", str(free_port()),
                                  "--registries", regfile], stdout=agent_log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        if args.profile_agent:
            os.makedirs(args.profile_agent, exist_ok=True)
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(agent.pid), "--rate", "200", "--format",
                                    "speedscope", "-o", os.path.join(args.profile_agent, "agent.speedscope.json")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        args.agent_dir = os.path.join(tmp, "agent")
        asyncio.run(bench(cluster, agent, args))
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(20)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(5)
        cluster.stop()
        registry.stop()
        from kubelite.kubelet.network import PodNetwork
        asyncio.run(PodNetwork(os.path.join(tmp, "agent")).cleanup_node())
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write(ip_forward)
        if args.keep:
            print(f"logs in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
