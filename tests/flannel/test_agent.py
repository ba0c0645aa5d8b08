"""run_flannel against a real API server: Nodes → routes and VXLAN entries inside namespace "hosts", this
node's annotations written back, a deleted Node's entries removed, everything removed on exit."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from flannel.netlab import Lab, requirements
from kubelite.api.resources import Registry
from kubelite.client import ApiClient
from kubelite.flannel import FlannelConfig, run_flannel

NODES = Registry().get("", "v1", "nodes")
PORT = 8080


@pytest.fixture
def lab():
    reason = requirements()
    if reason:
        pytest.skip(reason)
    lab = Lab()
    try:
        yield lab
    finally:
        lab.teardown()
    assert not lab.leftovers()


async def eventually(fn, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out; last: {last!r}")


async def make_node(client: ApiClient, name: str, cidr: str, ip: str) -> None:
    await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                                "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}, None)
    await client.patch(NODES, None, name, {"status": {"addresses": [{"type": "InternalIP", "address": ip},
                                                                    {"type": "Hostname", "address": name}]}},
                       subresource="status")


def test_run_flannel_vxlan_with_api_server(lab, cluster):
    sw = lab.switch("sw")
    h1, h2 = lab.host("h1", sw, "192.168.77.11/24"), lab.host("h2", sw, "192.168.77.12/24")
    p1, ip1 = lab.pod(h1, "p1", "10.244.1.0/24", 1450)
    p2, ip2 = lab.pod(h2, "p2", "10.244.2.0/24", 1450)
    lab.echo_server(p2, PORT)
    names = [f"kfl{lab.tag}-node01", f"kfl{lab.tag}-node02"]

    async def main():
        admin = ApiClient.from_kubeconfig(cluster.kubeconfig)
        clients = [ApiClient.from_kubeconfig(cluster.kubeconfig) for _ in range(2)]
        stops = [asyncio.Event(), asyncio.Event()]
        tasks = []
        try:
            await make_node(admin, names[0], "10.244.1.0/24", "192.168.77.11")
            await make_node(admin, names[1], "10.244.2.0/24", "192.168.77.12")
            for name, host, client, stop in zip(names, (h1, h2), clients, stops, strict=True):
                cfg = FlannelConfig(name, backend="vxlan", command_prefix=lab.prefix(host), resync_period=5,
                                    cleanup_on_exit=True)
                tasks.append(asyncio.ensure_future(run_flannel(client, stop=stop, config=cfg)))

            async def annotated():
                nodes = [await admin.get(NODES, None, n) for n in names]
                return all(n["metadata"].get("annotations", {}).get("flannel.alpha.coreos.com/backend-type")
                           == "vxlan" for n in nodes)
            await eventually(annotated)
            n2 = await admin.get(NODES, None, names[1])
            assert n2["metadata"]["annotations"]["flannel.alpha.coreos.com/public-ip"] == "192.168.77.12"
            assert n2["metadata"]["annotations"]["flannel.alpha.coreos.com/kube-subnet-manager"] == "true"

            async def connected():
                return await asyncio.to_thread(lab.connect, p1, ip2, PORT, 0.5)
            assert await eventually(connected) == ip1
            assert lab.run(h1, "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "1"

            # node02 deleted: node01 drops its route, neighbour and FDB entry
            await admin.delete(NODES, None, names[1])

            async def route_gone():
                return "10.244.2.0/24" not in lab.run(h1, "ip", "route").stdout
            await eventually(route_gone)
            assert "dst" not in lab.run(h1, "bridge", "fdb", "show", "dev", "flannel.1").stdout
        finally:
            for s in stops:
                s.set()
            if tasks:
                done, _ = await asyncio.wait(tasks, timeout=15)
                for t in done:
                    t.result()
            for n in names:
                with contextlib.suppress(Exception):
                    await admin.delete(NODES, None, n)
            for c in [admin, *clients]:
                await c.close()
        # cleanup_on_exit: nothing of ours is left in either host
        for h in (h1, h2):
            assert "flannel.1" not in lab.run(h, "ip", "link").stdout
            assert "proto 75" not in lab.run(h, "ip", "route").stdout
            assert "KUBELITE-FLANNEL" not in lab.run(h, "iptables-save").stdout

    asyncio.run(main())


def test_backend_none_touches_nothing(lab, cluster):
    sw = lab.switch("sw")
    h1 = lab.host("h1", sw, "192.168.77.11/24")
    name = f"kfl{lab.tag}-none"
    before = (lab.run(h1, "ip", "route").stdout, lab.run(h1, "iptables-save").stdout,
              lab.run(h1, "sysctl", "-n", "net.ipv4.ip_forward").stdout)

    async def main():
        admin = ApiClient.from_kubeconfig(cluster.kubeconfig)
        stop = asyncio.Event()
        try:
            await make_node(admin, name, "10.244.1.0/24", "192.168.77.11")
            cfg = FlannelConfig(name, backend="none", command_prefix=lab.prefix(h1), cleanup_on_exit=True)
            task = asyncio.ensure_future(run_flannel(admin, stop=stop, config=cfg))
            await asyncio.sleep(0.5)
            assert not task.done()
            stop.set()
            await asyncio.wait_for(task, 5)
            node = await admin.get(NODES, None, name)
            assert not (node["metadata"].get("annotations") or {})
        finally:
            with contextlib.suppress(Exception):
                await admin.delete(NODES, None, name)
            await admin.close()

    asyncio.run(main())
    assert (lab.run(h1, "ip", "route").stdout, lab.run(h1, "iptables-save").stdout,
            lab.run(h1, "sysctl", "-n", "net.ipv4.ip_forward").stdout) == before
