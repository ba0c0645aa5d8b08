"""Node failure end to end: a stopped simulated node goes NotReady after a short grace, gets the
unreachable taints, and its pods are evicted after their tolerations; it recovers when started again.
Node IPAM gives each node a /24 of 10.244.0.0/16 and pods get addresses from it."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from kubectl_output import header, rows
from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError
from kubelite.controllers.manager import ControllerManager, ControllerManagerConfig
from kubelite.controllers.nodelifecycle import NodeLifecycleConfig, TaintEvictionConfig
from kubelite.controllers.podgc import PodGCConfig
from kubelite.kubelet.agent import SimulatedNodes
from kubelite.kubelet.simulated import SimulatedConfig

REG = Registry()
PODS = REG.get("", "v1", "pods")
NODES = REG.get("", "v1", "nodes")
EVENTS = REG.get("", "v1", "events")
CONTROLLERS = ["node-lifecycle-controller", "taint-eviction-controller", "node-ipam-controller",
               "pod-garbage-collector-controller"]
GRACE = 1.5


async def wait_for(fn, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out; last value: {last!r}")


@pytest.fixture
async def env(fresh_cluster):
    client = ApiClient.from_kubeconfig(fresh_cluster.kubeconfig)
    stop = asyncio.Event()
    config = ControllerManagerConfig(leader_elect=False, extra={
        "node-lifecycle-controller": NodeLifecycleConfig(node_monitor_period=0.2, node_monitor_grace_period=GRACE,
                                                         node_startup_grace_period=GRACE, node_eviction_rate=100.0),
        "taint-eviction-controller": TaintEvictionConfig(),
        "pod-garbage-collector-controller": PodGCConfig(gc_check_period=0.2, quarantine_time=0.5),
    })
    manager = ControllerManager(client, config, CONTROLLERS)
    task = asyncio.create_task(manager.run(stop))
    nodes = SimulatedNodes(client, ["sim-a", "sim-b"],
                           SimulatedConfig(start_seconds=0.05, termination_seconds=0.2, lease_renew_seconds=0.2))
    await nodes.start()
    yield fresh_cluster, client, nodes, manager
    await nodes.stop()
    stop.set()
    await asyncio.wait_for(task, 10)
    await client.close()


def pod(name: str, node: str, tolerations: list | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}],
                     "tolerations": tolerations or []}}


def cond(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


async def get(client, rt, ns, name):
    try:
        return await client.get(rt, ns, name)
    except ClientError as e:
        if e.is_not_found:
            return None
        raise


async def test_node_ipam_assigns_pod_cidrs(env):
    _, client, _, _ = env

    async def cidrs():
        items = (await client.list(NODES))["items"]
        got = {n["metadata"]["name"]: (n.get("spec") or {}).get("podCIDR") for n in items}
        return got if all(got.values()) else None

    got = await wait_for(cidrs)
    assert sorted(got.values()) == ["10.244.0.0/24", "10.244.1.0/24"]
    node = await client.get(NODES, None, "sim-a")
    assert node["spec"]["podCIDRs"] == [node["spec"]["podCIDR"]]
    await client.create(PODS, pod("ipam-1", "sim-a"), "default")

    async def ip():
        p = await client.get(PODS, "default", "ipam-1")
        return (p.get("status") or {}).get("podIP")

    assert ipaddress.ip_address(await wait_for(ip)) in ipaddress.ip_network(got["sim-a"])


async def test_stopped_node_goes_not_ready_is_tainted_and_evicted(env):
    cluster, client, nodes, _ = env
    unreachable = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}
    # tolerationSeconds 0: evicted at once
    await client.create(PODS, pod("plain", "sim-b", [dict(unreachable, tolerationSeconds=0)]), "default")
    # no tolerations: the DefaultTolerationSeconds admission gives it 300 s
    await client.create(PODS, pod("defaulted", "sim-b"), "default")
    await client.create(PODS, pod("tolerant", "sim-b", [dict(unreachable, tolerationSeconds=4)]), "default")
    await client.create(PODS, pod("forever", "sim-b", [unreachable]), "default")
    await client.create(PODS, pod("elsewhere", "sim-a"), "default")

    async def all_ready():
        ps = (await client.list(PODS, "default"))["items"]
        return len(ps) == 5 and all(cond(p, "Ready").get("status") == "True" for p in ps)

    await wait_for(all_ready)
    # healthy nodes stay Ready well past the grace period
    await asyncio.sleep(GRACE + 0.5)
    assert cond(await client.get(NODES, None, "sim-a"), "Ready")["status"] == "True"

    nodes.stop_node("sim-b")
    stopped = time.monotonic()

    async def unknown():
        n = await client.get(NODES, None, "sim-b")
        return n if cond(n, "Ready").get("status") == "Unknown" else None

    node = await wait_for(unknown, timeout=GRACE + 5)
    assert time.monotonic() - stopped >= GRACE - 0.3
    ready = cond(node, "Ready")
    assert ready["reason"] == "NodeStatusUnknown" and ready["message"] == "Kubelet stopped posting node status."
    for t in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        assert cond(node, t)["status"] == "Unknown"

    async def tainted():
        n = await client.get(NODES, None, "sim-b")
        taints = {(t["key"], t["effect"]) for t in (n.get("spec") or {}).get("taints") or []}
        return taints if {("node.kubernetes.io/unreachable", "NoSchedule"),
                          ("node.kubernetes.io/unreachable", "NoExecute")} <= taints else None

    await wait_for(tainted)
    tainted_at = time.monotonic()

    async def deleting(name):
        p = await get(client, PODS, "default", name)
        return p is None or bool(p["metadata"].get("deletionTimestamp"))

    # tolerationSeconds=0: evicted at once; tolerationSeconds=4: four seconds after the taint (which is
    # stamped to the second)
    await wait_for(lambda: deleting("plain"), timeout=3)
    assert not await deleting("tolerant")
    r = cluster.kubectl("get", "nodes", check=True)
    status = {row[0]: row[1] for row in rows(r.stdout)}
    assert status == {"sim-a": "Ready", "sim-b": "NotReady"}
    assert header(r.stdout)[:2] == ["NAME", "STATUS"]
    defaulted = await client.get(PODS, "default", "defaulted")
    assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 300} in defaulted["spec"]["tolerations"]
    await wait_for(lambda: deleting("tolerant"), timeout=8)
    assert time.monotonic() - tainted_at >= 2.5
    p = await get(client, PODS, "default", "tolerant")
    if p is not None:
        assert cond(p, "DisruptionTarget")["reason"] == "DeletionByTaintManager"
    await asyncio.sleep(0.5)
    assert not await deleting("forever") and not await deleting("elsewhere") and not await deleting("defaulted")
    forever = await client.get(PODS, "default", "forever")
    assert cond(forever, "Ready")["status"] == "False"  # marked not ready with its node

    async def events():
        evs = (await client.list(EVENTS, "default"))["items"]
        got = {(e["reason"], e["message"]) for e in evs}
        want = {("NodeNotReady", "Node sim-b status is now: NodeNotReady"),
                ("TaintManagerEviction", "Marking for deletion Pod default/plain"),
                ("TaintManagerEviction", "Marking for deletion Pod default/tolerant")}
        return want <= got

    await wait_for(events)

    # the node comes back: Ready, taints gone, the evicted pods finish terminating
    nodes.start_node("sim-b")

    async def recovered():
        n = await client.get(NODES, None, "sim-b")
        taints = [t for t in (n.get("spec") or {}).get("taints") or [] if t["key"].startswith("node.kubernetes.io/")]
        return cond(n, "Ready").get("status") == "True" and not taints

    await wait_for(recovered)
    await wait_for(lambda: _absent(client, "plain"))


async def _absent(client, name):
    return await get(client, PODS, "default", name) is None


async def test_pod_gc_removes_pods_of_deleted_nodes(env):
    _, client, nodes, manager = env
    await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ghost"}})
    await client.create(PODS, pod("orphan", "ghost"), "default")
    await client.delete(NODES, None, "ghost")
    await wait_for(lambda: _absent(client, "orphan"), timeout=5)
    assert "default/orphan" in manager.controller("podgc").deleted
