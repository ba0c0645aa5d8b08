"""Real traffic through the generated rules: pods are network namespaces on a test bridge (see nettools.py).

The Proxier is fed Service/EndpointSlice dicts through its handlers and synced directly (no API server);
chains carry the KTEST- prefix and are removed afterwards (the fixture asserts nothing is left)."""

from __future__ import annotations

import random
import socket
import threading
from collections import Counter

import pytest

from kubelite.proxy import Proxier, ProxyConfig, cleanup_rules
from kubelite.proxy.proxier import set_sysctl
from proxy.nettools import PREFIX, chains_left, http_get, outcome

pytestmark = pytest.mark.usefixtures("clean_chains")


def service(name, ip, ports, ns="default", type_="ClusterIP", **spec):
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"type": type_, "clusterIP": ip, "clusterIPs": [ip], "ports": ports, **spec}}


def eslice(svc_name, ips, port=8080, ns="default", proto="TCP", node="test-node", name=None):
    return {"metadata": {"namespace": ns, "name": name or f"{svc_name}-x1",
                         "labels": {"kubernetes.io/service-name": svc_name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": proto}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": node} for ip in ips]}


def http_port(port=80, node_port=None, proto="TCP"):
    p = {"name": "http", "port": port, "protocol": proto, "targetPort": 8080}
    if node_port:
        p["nodePort"] = node_port
    return p


def make_proxier(topo, **kw) -> Proxier:
    set_sysctl("net.ipv4.conf.all.route_localnet", "1")  # the topo fixture restores it
    cfg = ProxyConfig(node_name="test-node", cluster_cidr=topo.cidr, chain_prefix=PREFIX, network_policy=False, **kw)
    return Proxier(cfg)


def vip(topo, last: int) -> str:
    return f"10.97.{topo.subnet.rsplit('.', 1)[1]}.{last}"


async def test_clusterip_balances_across_two_ready_backends(topo):
    a, b, c = topo.add_pod("a"), topo.add_pod("b"), topo.add_pod("client")
    p = make_proxier(topo)
    ip = vip(topo, 10)
    p.on_service(service("web", ip, [http_port()]))
    p.on_slice(eslice("web", [a.ip, b.ip]))
    await p.sync()
    # from the host: both backends answer; the host's address is masqueraded to the bridge's
    got = Counter(http_get(ip, 80).split()[0] for _ in range(40))
    assert set(got) == {"a", "b"}, got
    assert http_get(ip, 80).endswith(f"from {topo.gateway}")
    # from a pod: routed through the host, both hit, the pod's own address is kept
    replies = c.requests(ip, 80, n=30)
    assert {r.split()[0] for r in replies} == {"a", "b"}, replies
    assert all(r.endswith(f"from {c.ip}") for r in replies)


async def test_nodeport_on_localhost_and_node_addresses(topo):
    a = topo.add_pod("a")
    p = make_proxier(topo)
    node_port = random.randint(30100, 32700)
    p.on_service(service("np", vip(topo, 11), [http_port(node_port=node_port)], type_="NodePort"))
    p.on_slice(eslice("np", [a.ip]))
    await p.sync()
    assert http_get("127.0.0.1", node_port).startswith("a from ")
    assert http_get(topo.gateway, node_port).startswith("a from ")
    assert http_get(vip(topo, 11), 80).startswith("a from ")


async def test_service_without_endpoints_is_rejected(topo):
    p = make_proxier(topo)
    node_port = random.randint(30100, 32700)
    p.on_service(service("empty", vip(topo, 12), [http_port(node_port=node_port)], type_="NodePort"))
    p.on_slice(eslice("empty", []))
    await p.sync()
    assert outcome(vip(topo, 12), 80) == "REFUSED"
    assert outcome("127.0.0.1", node_port) == "REFUSED"
    c = topo.add_pod("client")
    assert c.requests(vip(topo, 12), 80) == ["REFUSED"]


async def test_session_affinity_client_ip(topo):
    a, b = topo.add_pod("a"), topo.add_pod("b")
    p = make_proxier(topo)
    ip = vip(topo, 13)
    p.on_service(service("sticky", ip, [http_port()], sessionAffinity="ClientIP",
                         sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    p.on_slice(eslice("sticky", [a.ip, b.ip]))
    await p.sync()
    assert len({http_get(ip, 80).split()[0] for _ in range(25)}) == 1


async def test_hairpin_pod_reaches_itself_through_its_service(topo):
    a = topo.add_pod("a")
    p = make_proxier(topo)
    ip = vip(topo, 14)
    p.on_service(service("self", ip, [http_port()]))
    p.on_slice(eslice("self", [a.ip]))
    await p.sync()
    # masqueraded to the bridge address, or the reply would go straight back inside the pod
    assert a.requests(ip, 80) == [f"a from {topo.gateway}"]


async def test_external_ips_and_load_balancer_ips(topo):
    a = topo.add_pod("a")
    p = make_proxier(topo)
    ext, lb = f"10.253.{topo.subnet.rsplit('.', 1)[1]}.5", f"10.253.{topo.subnet.rsplit('.', 1)[1]}.6"
    node_port = random.randint(30100, 32700)
    svc = service("lb", vip(topo, 15), [http_port(node_port=node_port)], type_="LoadBalancer", externalIPs=[ext])
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": lb}]}}
    p.on_service(svc)
    p.on_slice(eslice("lb", [a.ip]))
    await p.sync()
    assert http_get(ext, 80).startswith("a from ")
    assert http_get(lb, 80).startswith("a from ")
    c = topo.add_pod("client")
    assert c.requests(ext, 80)[0].startswith("a from ")


async def test_kubernetes_service_reaches_api_server_on_loopback(topo):
    """The `kubernetes` Service's endpoint is the API server's address, here 127.0.0.1 (route_localnet)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]

    def serve():
        conn, addr = srv.accept()
        with conn:
            conn.recv(1024)
            body = f"apiserver from {addr[0]}".encode()
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        c = topo.add_pod("client")
        p = make_proxier(topo)
        ip = vip(topo, 1)
        p.on_service(service("kubernetes", ip, [{"name": "https", "port": 443, "protocol": "TCP",
                                                 "targetPort": port}]))
        sl = eslice("kubernetes", ["127.0.0.1"], port=port)
        sl["ports"][0]["name"] = "https"
        p.on_slice(sl)
        await p.sync()
        assert c.requests(ip, 443, timeout=2) == [f"apiserver from {c.ip}"]
    finally:
        srv.close()
        t.join(timeout=2)


async def test_endpoint_removal_updates_rules_and_flushes_udp_conntrack(topo):
    a, b = topo.add_pod("a"), topo.add_pod("b")
    p = make_proxier(topo, partial_sync_threshold=0)  # exercise partial syncs
    ip = vip(topo, 16)
    p.on_service(service("dns", ip, [http_port(53, proto="UDP")]))
    p.on_service(service("web", vip(topo, 17), [http_port()]))
    p.on_slice(eslice("dns", [a.ip, b.ip], proto="UDP"))
    p.on_slice(eslice("web", [a.ip]))
    await p.sync()
    assert p.stats["last_full"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1)
    try:
        sock.sendto(b"q", (ip, 53))
        first = sock.recv(100).decode().split()[0]
        sock.sendto(b"q", (ip, 53))
        assert sock.recv(100).decode().split()[0] == first  # one conntrack flow: same backend
        remaining = b if first == "a" else a
        p.on_slice_update(eslice("dns", [a.ip, b.ip], proto="UDP"), eslice("dns", [remaining.ip], proto="UDP"))
        await p.sync()
        assert not p.stats["last_full"]
        # the stale flow was deleted, so the same socket now reaches the remaining backend
        sock.sendto(b"q", (ip, 53))
        assert sock.recv(100).decode().split()[0] == remaining.name
    finally:
        sock.close()
    assert http_get(vip(topo, 17), 80).startswith("a from ")  # the unchanged service kept its chains
    # deleting the service removes its chains; then cleanup removes everything
    p.on_service_delete(service("dns", ip, []))
    await p.sync()
    assert not any(ip in ln for ln in chains_left())
    removed = await cleanup_rules(PREFIX)
    assert f"nat/{PREFIX}SERVICES" in removed and not chains_left()
