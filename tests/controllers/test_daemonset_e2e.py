"""DaemonSets against a real API server with the controller-manager, scheduler and simulated nodes: one
pod per eligible node (bound by the scheduler through the node affinity the controller sets), nodes joining
or leaving eligibility by label and taint, a rolling update, and what kubectl shows."""

from __future__ import annotations

import asyncio
import contextlib
import time

from kubectl_output import header, rows
from kubelite.api.resources import Registry
from kubelite.client import ApiClient
from kubelite.controllers.manager import ControllerManagerConfig, run_controller_manager
from kubelite.kubelet.agent import run_simulated_nodes
from kubelite.kubelet.simulated import SimulatedConfig
from kubelite.scheduler import SchedulerConfig, run_scheduler

R = Registry()
PODS = R.get("", "v1", "pods")
NODES = R.get("", "v1", "nodes")
DS = R.get("apps", "v1", "daemonsets")

SIM = SimulatedConfig(start_seconds=0.05, termination_seconds=0.2, status_coalesce_seconds=0.0)
NODE_NAMES = ["sim-a", "sim-b", "sim-c"]


@contextlib.asynccontextmanager
async def control_plane(cluster):
    client = ApiClient.from_kubeconfig(cluster.kubeconfig)
    stop = asyncio.Event()
    config = ControllerManagerConfig(leader_elect=False)
    tasks = [asyncio.ensure_future(run_controller_manager(client, stop=stop, config=config,
                                                          controllers=["daemonset-controller"])),
             asyncio.ensure_future(run_scheduler(client, stop=stop, config=SchedulerConfig(leader_elect=False))),
             asyncio.ensure_future(run_simulated_nodes(client, names=NODE_NAMES, stop=stop, config=SIM))]
    try:
        yield client
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=15)
        for t in tasks:
            t.cancel()
        await client.close()


async def wait_for(fn, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out; last: {last!r}")


def agent(image="fluentd:v1", **template_spec):
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "agent", "image": image}], **template_spec}}}}


def ready(p):
    return (p.get("status") or {}).get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])


async def live_pods(client):
    return [p for p in (await client.list(PODS, "default"))["items"] if not p["metadata"].get("deletionTimestamp")]


async def nodes_registered(client):
    return len((await client.list(NODES))["items"]) == len(NODE_NAMES)


async def test_one_pod_per_node_and_rolling_update(fresh_cluster):
    async with control_plane(fresh_cluster) as client:
        await wait_for(lambda: nodes_registered(client))
        await client.create(DS, agent(), "default")

        async def one_per_node(image="fluentd:v1"):
            pods = await live_pods(client)
            nodes = sorted(p["spec"].get("nodeName") or "" for p in pods)
            ok = nodes == NODE_NAMES and all(ready(p) and p["spec"]["containers"][0]["image"] == image for p in pods)
            return ok and pods

        pods = await wait_for(one_per_node)
        for p in pods:
            terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"]
            assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                               "values": [p["spec"]["nodeName"]]}]}]
            assert p["metadata"]["name"].startswith("agent-")
            assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"} in \
                p["spec"]["tolerations"]
            assert p["metadata"]["labels"]["pod-template-generation"] == "1"

        async def status_ok(n=3):
            s = (await client.get(DS, "default", "agent")).get("status") or {}
            want = {"desiredNumberScheduled": n, "currentNumberScheduled": n, "numberReady": n,
                    "numberAvailable": n, "updatedNumberScheduled": n, "numberMisscheduled": 0}
            return all(s.get(k) == v for k, v in want.items()) and s

        st = await wait_for(status_ok)
        assert st["observedGeneration"] == 1 and "numberUnavailable" not in st
        out = fresh_cluster.kubectl("get", "daemonsets", check=True).stdout
        assert header(out)[:6] == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE"]
        assert rows(out)[0][:6] == ["agent", "3", "3", "3", "3", "3"]

        # rolling update, at most one node without a ready pod at a time
        await client.patch(DS, "default", "agent", {"spec": {"template": {"spec": {"containers": [
            {"name": "agent", "image": "fluentd:v2"}]}}}}, patch_type="strategic")
        worst = 0

        async def rolled():
            nonlocal worst
            pods = await live_pods(client)
            ready_nodes = {p["spec"].get("nodeName") for p in pods if ready(p)}
            worst = max(worst, len(NODE_NAMES) - len(ready_nodes))
            return await one_per_node("fluentd:v2")

        await wait_for(rolled, timeout=30)
        assert worst <= 1
        await wait_for(status_ok)
        out = fresh_cluster.kubectl("rollout", "status", "daemonset/agent", "--timeout=10s", check=True).stdout
        assert "successfully rolled out" in out


async def test_node_selector_and_taints(fresh_cluster):
    async with control_plane(fresh_cluster) as client:
        await wait_for(lambda: nodes_registered(client))
        await client.patch(NODES, None, "sim-a", {"metadata": {"labels": {"disk": "ssd"}}}, patch_type="merge")
        await client.create(DS, agent(nodeSelector={"disk": "ssd"}), "default")

        async def on_nodes(want):
            pods = await live_pods(client)
            return sorted(p["spec"].get("nodeName") or "?" for p in pods if ready(p)) == want and len(pods) == len(want)

        await wait_for(lambda: on_nodes(["sim-a"]))
        await client.patch(NODES, None, "sim-b", {"metadata": {"labels": {"disk": "ssd"}}}, patch_type="merge")
        await wait_for(lambda: on_nodes(["sim-a", "sim-b"]))
        # an untolerated NoExecute taint evicts the daemon pod; NoSchedule would keep it
        await client.patch(NODES, None, "sim-b", {"spec": {"taints": [
            {"key": "maintenance", "value": "true", "effect": "NoExecute"}]}}, patch_type="merge")
        await wait_for(lambda: on_nodes(["sim-a"]))
        await client.patch(NODES, None, "sim-a", {"spec": {"taints": [
            {"key": "maintenance", "value": "true", "effect": "NoSchedule"}]}}, patch_type="merge")
        await asyncio.sleep(0.5)
        assert await on_nodes(["sim-a"])
        s = (await client.get(DS, "default", "agent"))["status"]
        assert (s["desiredNumberScheduled"], s["currentNumberScheduled"], s["numberMisscheduled"]) == (0, 0, 1)
