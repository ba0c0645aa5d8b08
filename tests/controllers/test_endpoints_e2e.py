"""Endpoints and EndpointSlices follow pod readiness on a real API server with simulated nodes."""

from __future__ import annotations

import asyncio
import time

import pytest

from kubectl_output import header, rows
from kubelite.api.resources import Registry
from kubelite.client import ApiClient, ClientError
from kubelite.controllers.manager import ControllerManager, ControllerManagerConfig
from kubelite.kubelet.agent import SimulatedNodes
from kubelite.kubelet.simulated import SimulatedConfig

REG = Registry()
PODS = REG.get("", "v1", "pods")
SERVICES = REG.get("", "v1", "services")
ENDPOINTS = REG.get("", "v1", "endpoints")
SLICES = REG.get("discovery.k8s.io", "v1", "endpointslices")
CONTROLLERS = ["endpoints-controller", "endpointslice-controller", "endpointslice-mirroring-controller",
               "node-ipam-controller"]


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
    manager = ControllerManager(client, ControllerManagerConfig(leader_elect=False), CONTROLLERS)
    task = asyncio.create_task(manager.run(stop))
    nodes = SimulatedNodes(client, ["sim-a"], SimulatedConfig(start_seconds=0.05, termination_seconds=0.2))
    await nodes.start()
    yield fresh_cluster, client
    await nodes.stop()
    stop.set()
    await asyncio.wait_for(task, 10)
    await client.close()


def pod(name: str, **annotations: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web"}, "annotations": annotations},
            "spec": {"nodeName": "sim-a", "containers": [{"name": "nginx", "image": "nginx",
                                                          "ports": [{"name": "http", "containerPort": 80}]}]}}


async def get(client, rt, name, ns="default"):
    try:
        return await client.get(rt, ns, name)
    except ClientError as e:
        if e.is_not_found:
            return None
        raise


async def test_endpoints_and_slices_follow_readiness(env):
    cluster, client = env
    await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                   "spec": {"selector": {"app": "web"},
                                            "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]}},
                        "default")
    # no pods yet: an empty Endpoints and one placeholder slice
    ep = await wait_for(lambda: get(client, ENDPOINTS, "web"))
    assert not ep.get("subsets")

    async def slices():
        out = await client.list(SLICES, "default", label_selector="kubernetes.io/service-name=web")
        return out["items"]

    placeholder = (await wait_for(slices))[0]
    assert placeholder["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslice-controller.k8s.io"
    assert placeholder["metadata"]["generateName"] == "web-"
    assert placeholder["metadata"]["ownerReferences"][0]["kind"] == "Service"

    await client.create(PODS, pod("web-1"), "default")
    await client.create(PODS, pod("web-2", **{"kubelite.io/simulate-not-ready": "true"}), "default")

    async def populated():
        e = await get(client, ENDPOINTS, "web")
        s = (e or {}).get("subsets") or []
        return e if s and s[0].get("addresses") and s[0].get("notReadyAddresses") else None

    ep = await wait_for(populated)
    (subset,) = ep["subsets"]
    ready, = subset["addresses"]
    not_ready, = subset["notReadyAddresses"]
    assert ready["targetRef"]["name"] == "web-1" and ready["nodeName"] == "sim-a"
    assert not_ready["targetRef"]["name"] == "web-2"
    assert subset["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert ready["ip"].startswith("10.244.")
    assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"]["annotations"]

    async def slice_ready():
        items = await slices()
        eps = [e for s in items for e in s.get("endpoints") or []]
        return items if len(items) == 1 and len(eps) == 2 else None

    (sl,) = await wait_for(slice_ready)
    conds = {e["targetRef"]["name"]: e["conditions"] for e in sl["endpoints"]}
    assert conds == {"web-1": {"ready": True, "serving": True, "terminating": False},
                     "web-2": {"ready": False, "serving": False, "terminating": False}}
    assert sl["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert sl["addressType"] == "IPv4"

    r = cluster.kubectl("get", "endpoints", "web", check=True)
    row = dict(zip(header(r.stdout), rows(r.stdout)[0], strict=False))
    assert row["ENDPOINTS"] == f"{ready['ip']}:80"

    # the ready pod goes away: its address leaves; the not-ready one stays not ready
    await client.delete(PODS, "default", "web-1", grace_period_seconds=0)

    async def only_not_ready():
        e = await get(client, ENDPOINTS, "web")
        s = (e or {}).get("subsets") or []
        return e if len(s) == 1 and not s[0].get("addresses") else None

    await wait_for(only_not_ready)
    r = cluster.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=web", check=True)
    assert rows(r.stdout)[0][1:3] == ["IPv4", "80"]

    # the API server's `kubernetes` Endpoints are mirrored into the slice `kubernetes`
    k = await wait_for(lambda: get(client, SLICES, "kubernetes"))
    assert k["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert k["endpoints"][0]["conditions"] == {"ready": True}
    assert k["ports"][0]["name"] == "https"

    # deleting the service removes its Endpoints and slices
    await client.delete(SERVICES, "default", "web")

    async def gone():
        return await get(client, ENDPOINTS, "web") is None and not await slices()

    await wait_for(gone)


async def test_headless_service_hostnames_and_selectorless_mirroring(env):
    _, client = env
    await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
                                   "spec": {"clusterIP": "None", "selector": {"app": "web"}}}, "default")
    p = pod("db-0")
    p["spec"].update(hostname="db-0", subdomain="db")
    await client.create(PODS, p, "default")

    async def has_address():
        e = await get(client, ENDPOINTS, "db")
        s = (e or {}).get("subsets") or []
        return e if s and s[0].get("addresses") else None

    ep = await wait_for(has_address)
    assert ep["subsets"][0]["addresses"][0]["hostname"] == "db-0"
    assert "ports" not in ep["subsets"][0]
    assert ep["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}

    # a selector-less service's hand-made Endpoints are mirrored, not touched
    await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
                                   "spec": {"ports": [{"port": 443}]}}, "default")
    await client.create(ENDPOINTS, {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext"},
                                    "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 443}]}]},
                        "default")

    async def mirrored():
        out = await client.list(SLICES, "default", label_selector="kubernetes.io/service-name=ext")
        return out["items"]

    (sl,) = await wait_for(mirrored)
    assert sl["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == \
        "endpointslicemirroring-controller.k8s.io"
    assert sl["endpoints"] == [{"addresses": ["192.0.2.10"], "conditions": {"ready": True}}]
    ep = await client.get(ENDPOINTS, "default", "ext")
    assert ep["subsets"][0]["addresses"] == [{"ip": "192.0.2.10"}]
