"""The scheduler against a real API server: nodes and pods through the API, bindings, events, conditions."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError
from kubelite.scheduler import SchedulerConfig, run_scheduler

R = Registry()
PODS = R.get("", "v1", "pods")
NODES = R.get("", "v1", "nodes")
EVENTS = R.get("", "v1", "events")
NAMESPACES = R.get("", "v1", "namespaces")

FAST = SchedulerConfig(pod_initial_backoff=0.2, pod_max_backoff=0.5, flush_backoff_interval=0.1,
                       leader_elect=True, lease_duration=3, renew_deadline=2, retry_period=0.5, seed=1)


def node(name, cpu="2", taints=None):
    spec = {"taints": taints} if taints else {}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                       "capacity": {"cpu": cpu, "memory": "4Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


def pod(name, cpu="100m"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "sched"},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}}


async def add_node(client, n):
    created = await client.create(NODES, n)
    if not (created.get("status") or {}).get("allocatable"):
        created["status"] = n["status"]
        await client.update_status(NODES, created)


async def wait_for(fn, timeout=15.0, interval=0.1):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await fn()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(interval)


async def binding_served(client) -> bool:
    try:
        await client.bind("sched", "no-such-pod", "no-such-node")
    except ClientError as e:
        return e.code != 503
    return True


@contextlib.asynccontextmanager
async def scheduler(client, config=FAST):
    stop = asyncio.Event()
    task = asyncio.ensure_future(run_scheduler(client, stop=stop, config=config))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_unschedulable_then_bound_when_a_node_fits(fresh_cluster):
    async with ApiClient.from_kubeconfig(fresh_cluster.kubeconfig) as client:
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sched"}})
        await add_node(client, node("cp", taints=[{"key": "node-role.kubernetes.io/control-plane",
                                                   "effect": "NoSchedule"}]))
        await add_node(client, node("small-1", cpu="1"))
        await add_node(client, node("small-2", cpu="1"))
        can_bind = await binding_served(client)
        async with scheduler(client):
            await client.create(PODS, pod("big", cpu="1500m"))

            async def failed_event():
                evs = (await client.list(EVENTS, "sched", field_selector="involvedObject.name=big"))["items"]
                return [e for e in evs if e["reason"] == "FailedScheduling"]

            events = await wait_for(failed_event)
            msg = events[0]["message"]
            assert events[0]["type"] == "Warning"
            assert events[0]["source"]["component"] == "default-scheduler"
            assert msg == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                           "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes "
                           "are available: 3 Preemption is not helpful for scheduling.")

            async def condition():
                p = await client.get(PODS, "sched", "big")
                return [c for c in p["status"].get("conditions") or [] if c["type"] == "PodScheduled"]

            cond = (await wait_for(condition))[0]
            assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", msg)
            lease = await client.get(R.get("coordination.k8s.io", "v1", "leases"), "kube-system", "kube-scheduler")
            assert lease["spec"]["holderIdentity"]

            if not can_bind:
                pytest.skip("the API server does not serve pods/binding yet (503); bindings not testable")

            for i in range(5):
                await client.create(PODS, pod(f"small-{i}"))
            await add_node(client, node("big-node", cpu="4"))

            async def all_bound():
                items = (await client.list(PODS, "sched"))["items"]
                return all(p["spec"].get("nodeName") for p in items) and items

            items = await wait_for(all_bound)
            by_name = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in items}
            assert by_name["big"] == "big-node"
            assert all(n != "cp" for n in by_name.values())

            async def scheduled_event():
                evs = (await client.list(EVENTS, "sched", field_selector="involvedObject.name=big"))["items"]
                return [e for e in evs if e["reason"] == "Scheduled"]

            ev = (await wait_for(scheduled_event))[0]
            assert ev["message"] == "Successfully assigned sched/big to big-node"
