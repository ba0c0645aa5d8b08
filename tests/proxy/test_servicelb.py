"""The built-in service load balancer: LoadBalancer Services get addresses from nodes, a pool or externalIPs."""

from __future__ import annotations

import asyncio
import json
import time

from kubelite.api.resources import Registry
from kubelite.client import ApiClient
from kubelite.proxy.catalog import NODES, SERVICES
from kubelite.proxy.servicelb import ServiceLBConfig, ServiceLBController, desired_ingress, node_addresses

EVENTS = Registry().get("", "v1", "events")


def node(name, ip, ready=True, labels=None):
    return {"metadata": {"name": name, "labels": labels or {}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_address_choice():
    nodes = [node("a", "192.0.2.11"), node("b", "192.0.2.10"), node("c", "192.0.2.12", ready=False),
             node("d", "192.0.2.13", labels={"node.kubernetes.io/exclude-from-external-load-balancers": ""})]
    assert node_addresses(nodes) == ["192.0.2.10", "192.0.2.11"]
    assert node_addresses([node("c", "192.0.2.12", ready=False)]) == ["192.0.2.12"]
    cfg = ServiceLBConfig()
    lb = {"spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"]}}
    assert desired_ingress(lb, ["192.0.2.10", "fd00::1"], cfg) == [{"ip": "192.0.2.10", "ipMode": "VIP"}]
    lb["spec"]["externalIPs"] = ["198.51.100.7"]
    assert desired_ingress(lb, ["192.0.2.10"], cfg) == [{"ip": "198.51.100.7", "ipMode": "VIP"}]


async def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def lb_ips(api, name):
    svc = await api.get(SERVICES, "default", name)
    return [i.get("ip") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


async def test_loadbalancer_services(fresh_cluster):
    cluster = fresh_cluster
    api = ApiClient.from_kubeconfig(cluster.kubeconfig)
    kubectl = lambda *a: asyncio.to_thread(cluster.kubectl, *a, check=True)  # noqa: E731
    stop = asyncio.Event()
    controller = ServiceLBController(api, ServiceLBConfig())
    task = asyncio.create_task(controller.run(stop))
    try:
        n = await api.create(NODES, {"metadata": {"name": "node01"}})
        n["status"] = node("node01", "192.0.2.2")["status"]
        await api.update_status(NODES, n)
        await api.create(SERVICES, {"metadata": {"name": "nginx"}, "spec": {
            "type": "NodePort", "selector": {"app": "nginx"},
            "ports": [{"port": 8068, "targetPort": 80, "nodePort": 30068}]}}, "default")
        await api.create(SERVICES, {"metadata": {"name": "plain"}, "spec": {
            "selector": {"app": "plain"}, "ports": [{"port": 80}]}}, "default")

        # the tutorial's patch (C.9): the externalIP becomes the load balancer's address
        patch = {"spec": {"type": "LoadBalancer", "externalIPs": ["192.0.2.2"]}}
        await kubectl("patch", "svc", "nginx", "-n", "default", "-p", json.dumps(patch))
        await wait_for(lambda: lb_ips(api, "nginx"), what="nginx's ingress")
        assert await lb_ips(api, "nginx") == ["192.0.2.2"]
        svc = await api.get(SERVICES, "default", "nginx")
        assert svc["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.2", "ipMode": "VIP"}]
        out = (await kubectl("get", "svc", "nginx")).stdout
        header, row = out.splitlines()[:2]
        assert header.split()[:5] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
        assert row.split()[1] == "LoadBalancer" and "192.0.2.2" in row.split()[3]
        assert row.split()[4] == "8068:30068/TCP"

        # without externalIPs: the node addresses
        await kubectl("patch", "svc", "plain", "-p", '{"spec":{"type":"LoadBalancer"}}')
        await wait_for(lambda: lb_ips(api, "plain"), what="plain's ingress")
        assert await lb_ips(api, "plain") == ["192.0.2.2"]
        row = (await kubectl("get", "svc", "plain", "--no-headers")).stdout.split()
        assert row[3] == "192.0.2.2"

        # a new node address reaches the Services that use node addresses
        n2 = await api.create(NODES, {"metadata": {"name": "node02"}})
        n2["status"] = node("node02", "192.0.2.3")["status"]
        await api.update_status(NODES, n2)

        async def two():
            return await lb_ips(api, "plain") == ["192.0.2.2", "192.0.2.3"]
        await wait_for(two, what="both node addresses")

        # back to ClusterIP: the ingress list goes away
        await kubectl("patch", "svc", "plain", "-p", '{"spec":{"type":"ClusterIP"}}')

        async def cleared():
            return await lb_ips(api, "plain") == []
        await wait_for(cleared, what="cleared status")

        # a Service of another load balancer class is left alone
        await api.create(SERVICES, {"metadata": {"name": "other"}, "spec": {
            "type": "LoadBalancer", "loadBalancerClass": "example.com/lb", "selector": {"app": "x"},
            "ports": [{"port": 80}]}}, "default")
        await asyncio.sleep(0.5)
        assert await lb_ips(api, "other") == []

        async def reasons():
            await controller.recorder.flush()
            evs = (await api.list(EVENTS, "default"))["items"]
            return {(e["involvedObject"]["name"], e["reason"]) for e in evs}
        got = await wait_for(lambda: _has(reasons, {("nginx", "EnsuringLoadBalancer"),
                                                    ("nginx", "EnsuredLoadBalancer"),
                                                    ("plain", "DeletedLoadBalancer"), ("plain", "Type")}),
                             what="events")
        assert got
        out = (await kubectl("describe", "svc", "nginx")).stdout
        assert "EnsuredLoadBalancer" in out and "LoadBalancer Ingress:" in out
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await api.close()


async def _has(reasons, wanted):
    got = await reasons()
    return wanted <= got
