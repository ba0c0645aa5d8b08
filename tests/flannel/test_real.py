"""The pod network on real kernels: hosts are network namespaces on a bridge in a "switch" namespace, each
with a pod namespace behind its `kubelite0` bridge; the computed state is applied inside each host through
`command_prefix = nsenter --net=…`. Nothing in the root namespace is touched."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from flannel.netlab import SINK, Lab, requirements
from flannel.nodes import node
from kubelite.flannel import FlannelConfig, FlannelNetwork

PORT = 8080


@pytest.fixture
def lab():
    reason = requirements()
    if reason:
        pytest.skip(reason)
    before = _root_state()
    lab = Lab()
    try:
        yield lab
    finally:
        lab.teardown()
    assert not lab.leftovers()
    assert _root_state() == before


def _root_state() -> tuple:
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout or "[]")
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return ("flannel.1" in {ln["ifname"] for ln in links}, "KUBELITE-FLANNEL" in saved)


def build(lab: Lab, *, routed: bool = False, pod_mtu: int = 1500):
    if routed:
        sw1, sw2 = lab.switch("sw1"), lab.switch("sw2")
        lab.router("r", [(sw1, "192.168.71.1/24"), (sw2, "192.168.72.1/24")])
        h1 = lab.host("h1", sw1, "192.168.71.11/24", "192.168.71.1")
        h2 = lab.host("h2", sw2, "192.168.72.12/24", "192.168.72.1")
        ips = ("192.168.71.11", "192.168.72.12")
    else:
        sw = lab.switch("sw")
        h1 = lab.host("h1", sw, "192.168.77.11/24")
        h2 = lab.host("h2", sw, "192.168.77.12/24")
        ips = ("192.168.77.11", "192.168.77.12")
    p1, ip1 = lab.pod(h1, "p1", "10.244.1.0/24", pod_mtu)
    p2, ip2 = lab.pod(h2, "p2", "10.244.2.0/24", pod_mtu)
    nodes = [node("node01", "10.244.1.0/24", ips[0]), node("node02", "10.244.2.0/24", ips[1])]
    return (h1, h2), (p1, p2), (ip1, ip2), nodes


def networks(lab: Lab, hosts, backend: str) -> list[FlannelNetwork]:
    return [FlannelNetwork(FlannelConfig(name, backend=backend, command_prefix=lab.prefix(h)))
            for name, h in zip(("node01", "node02"), hosts, strict=True)]


def sync_all(nets: list[FlannelNetwork], nodes: list[dict], rounds: int = 2):
    """Sync every node, then write its annotations into its Node (as the agent's patch does); repeat."""
    results = []
    for _ in range(rounds):
        results = [asyncio.run(n.sync(nodes)) for n in nets]
        for res, n in zip(results, nodes, strict=True):
            n["metadata"]["annotations"].update(res.annotations)
    return results


def cleanup_all(lab: Lab, nets: list[FlannelNetwork], hosts) -> None:
    for net, h in zip(nets, hosts, strict=True):
        removed = asyncio.run(net.cleanup())
        assert removed, "cleanup removed nothing"
        assert asyncio.run(net.cleanup()) == []  # twice is harmless
        assert "proto 75" not in lab.run(h, "ip", "route").stdout
        assert "flannel.1" not in lab.run(h, "ip", "link").stdout
        assert "KUBELITE-FLANNEL" not in lab.run(h, "iptables-save").stdout


def check_pod_traffic(lab: Lab, hosts, pods, pod_ips, underlay_ips) -> None:
    (h1, h2), (p1, p2), (ip1, ip2) = hosts, pods, pod_ips
    lab.echo_server(p2, PORT)
    lab.echo_server(p1, PORT)
    lab.echo_server(h2, PORT)
    # pod → pod across, both ways, source address kept (no masquerade inside the cluster CIDR)
    assert lab.connect(p1, ip2, PORT) == ip1
    assert lab.connect(p2, ip1, PORT) == ip2
    # pod → outside the cluster CIDR (the other host's address): masqueraded to this host's address
    assert lab.connect(p1, underlay_ips[1], PORT) == underlay_ips[0]
    # host → remote pod
    assert lab.connect(h1, ip2, PORT) is not None


def test_host_gw_two_hosts_one_switch(lab):
    hosts, pods, pod_ips, nodes = build(lab)
    nets = networks(lab, hosts, "host-gw")
    try:
        results = sync_all(nets, nodes)
        assert results[0].desired.skipped == []
        assert "10.244.2.0/24 via 192.168.77.12" in lab.run(hosts[0], "ip", "route").stdout
        assert nodes[0]["metadata"]["annotations"]["flannel.alpha.coreos.com/backend-data"] == "null"
        assert lab.run(hosts[0], "sysctl", "-n", "net.ipv4.ip_forward").stdout.strip() == "0"  # the agent sets it
        for h in hosts:
            lab.run(h, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        check_pod_traffic(lab, hosts, pods, pod_ips, ("192.168.77.11", "192.168.77.12"))
        # nothing left to do: a resync only reads
        again = [asyncio.run(n.sync(nodes)) for n in nets]
        assert [(r.commands, r.rules_payload) for r in again] == [([], ""), ([], "")]
        # a node removed: its route goes
        res = asyncio.run(nets[0].sync(nodes[:1]))
        assert res.commands == [["ip", "route", "del", "10.244.2.0/24", "via", "192.168.77.12", "dev", "eth0"]]
        assert "10.244.2.0/24" not in lab.run(hosts[0], "ip", "route").stdout
    finally:
        cleanup_all(lab, nets, hosts)


def test_vxlan_two_hosts_one_switch(lab):
    hosts, pods, pod_ips, nodes = build(lab, pod_mtu=1450)
    nets = networks(lab, hosts, "vxlan")
    try:
        for n in nets:
            asyncio.run(n.prepare_host())
        results = sync_all(nets, nodes)
        mac1, mac2 = nets[0].vtep_mac, nets[1].vtep_mac
        assert json.loads(nodes[1]["metadata"]["annotations"]["flannel.alpha.coreos.com/backend-data"]) == \
            {"VNI": 1, "VtepMAC": mac2}
        assert results[0].desired.skipped == []
        link = json.loads(lab.run(hosts[0], "ip", "-j", "-d", "addr", "show", "dev", "flannel.1").stdout)[0]
        assert (link["address"], link["mtu"], link["linkinfo"]["info_data"]["port"]) == (mac1, 1450, 8472)
        assert [a["local"] for a in link["addr_info"] if a["family"] == "inet"] == ["10.244.1.0"]
        assert "10.244.2.0/24 via 10.244.2.0 dev flannel.1 proto 75 onlink" in lab.run(hosts[0], "ip", "route").stdout
        assert f"10.244.2.0 lladdr {mac2} PERMANENT" in lab.run(hosts[0], "ip", "neigh", "show", "dev", "flannel.1").stdout
        assert f"{mac2} dst 192.168.77.12 self permanent" in lab.run(hosts[0], "bridge", "fdb", "show", "dev",
                                                                       "flannel.1").stdout
        check_pod_traffic(lab, hosts, pods, pod_ips, ("192.168.77.11", "192.168.77.12"))
        # a full-size TCP segment crosses (pod MTU 1450 fits the overlay)
        lab.echo_server(pods[1], PORT + 1, SINK)
        assert lab.send(pods[0], pod_ips[1], PORT + 1, 2_000_000) == 2_000_000
        again = [asyncio.run(n.sync(nodes)) for n in nets]
        assert [(r.commands, r.rules_payload) for r in again] == [([], ""), ([], "")]
        # node02 leaves: route, neighbour and FDB entry go
        asyncio.run(nets[0].sync(nodes[:1]))
        assert "10.244.2.0" not in lab.run(hosts[0], "ip", "route").stdout
        assert lab.run(hosts[0], "bridge", "fdb", "show", "dev", "flannel.1").stdout.count("dst") == 0
        assert lab.connect(pods[0], pod_ips[1], PORT, timeout=0.5) is None
        # ... and comes back
        asyncio.run(nets[0].sync(nodes))
        assert lab.connect(pods[0], pod_ips[1], PORT) == pod_ips[0]
    finally:
        cleanup_all(lab, nets, hosts)


def test_routed_underlay_vxlan_works_host_gw_cannot(lab):
    hosts, pods, pod_ips, nodes = build(lab, routed=True, pod_mtu=1450)
    lab.echo_server(pods[1], PORT)
    hg = networks(lab, hosts, "host-gw")
    try:
        results = sync_all(hg, nodes)
        assert [name for name, _ in results[0].desired.skipped] == ["node02"]
        assert "directly connected" in results[0].desired.skipped[0][1]
        assert "10.244.2.0/24" not in lab.run(hosts[0], "ip", "route").stdout
        for n in hg:
            asyncio.run(n.prepare_host())
        assert lab.connect(pods[0], pod_ips[1], PORT, timeout=0.5) is None
    finally:
        cleanup_all(lab, hg, hosts)
    for n in nodes:
        n["metadata"]["annotations"].clear()
    vx = networks(lab, hosts, "vxlan")
    try:
        results = sync_all(vx, nodes)
        assert results[0].desired.skipped == []
        lab.echo_server(pods[0], PORT)
        assert lab.connect(pods[0], pod_ips[1], PORT) == pod_ips[0]
        assert lab.connect(pods[1], pod_ips[0], PORT) == pod_ips[1]
    finally:
        cleanup_all(lab, vx, hosts)


def test_backend_switch_and_foreign_device(lab):
    hosts, _, _, nodes = build(lab)
    vx = networks(lab, hosts, "vxlan")
    sync_all(vx, nodes)
    hg = networks(lab, hosts, "host-gw")
    res = asyncio.run(hg[0].sync(nodes))  # node02 still says vxlan: skipped, and our device goes
    assert ["ip", "link", "del", "flannel.1"] in res.commands
    assert [n for n, _ in res.desired.skipped] == ["node02"]
    asyncio.run(vx[1].cleanup())
    # a flannel.1 someone else made (another MAC) is left alone by cleanup
    lab.run(hosts[1], "ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "dstport", "8472")
    assert "link flannel.1" not in asyncio.run(vx[1].cleanup())
    assert "flannel.1" in lab.run(hosts[1], "ip", "link").stdout
    cleanup_all(lab, hg[:1], hosts[:1])


def test_a_failing_command_is_reported_and_the_rest_applied(lab):
    sw = lab.switch("sw")
    h1 = lab.host("h1", sw, "192.168.77.11/24")
    net = FlannelNetwork(FlannelConfig("node01", command_prefix=lab.prefix(h1)))
    errors = asyncio.run(net.apply([
        ["ip", "route", "replace", "10.244.8.0/24", "via", "10.9.9.9", "proto", "75"],  # gateway unreachable
        ["ip", "route", "replace", "10.244.9.0/24", "via", "192.168.77.19", "proto", "75"],
    ]))
    assert len(errors) == 1 and "ip -batch" in errors[0]
    routes = lab.run(h1, "ip", "route").stdout
    assert "10.244.9.0/24 via 192.168.77.19" in routes and "10.244.8.0" not in routes
    assert asyncio.run(net.cleanup()) == ["route 10.244.9.0/24 via 192.168.77.19"]
