"""Cluster DNS without an API server: the zone's answers, the wire-level cache, forwarding, UDP and TCP."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from kubelite.proxy.catalog import ServiceCatalog
from kubelite.proxy.dns import DNSConfig, DNSServer, build_handler, pod_resolv_conf, read_resolv_conf
from kubelite.proxy.dns_zone import ClusterZone, dashed, undashed


def svc(ns, name, ip="10.96.0.50", ports=(("http", 80, "TCP"),), **spec):
    body = {"clusterIP": ip, "clusterIPs": [ip] if ip != "None" else ["None"],
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports], **spec}
    return {"metadata": {"namespace": ns, "name": name}, "spec": body}


def eps_slice(ns, name, svc_name, endpoints, ports=(("http", 8080),)):
    return {"metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": svc_name}},
            "addressType": "IPv4", "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
            "endpoints": endpoints}


@pytest.fixture
def catalog():
    c = ServiceCatalog()
    c.apply("Service", svc("default", "nginx", "10.96.0.50"))
    c.apply("Service", svc("default", "dual", "10.96.0.51", clusterIPs=["10.96.0.51", "fd00::51"]))
    c.apply("Service", svc("default", "web", "None"))
    c.apply("EndpointSlice", eps_slice("default", "web-a", "web", [
        {"addresses": ["10.244.0.5"], "hostname": "web-0", "conditions": {"ready": True}},
        {"addresses": ["10.244.0.6"], "hostname": "web-1"},
        {"addresses": ["10.244.0.7"], "hostname": "web-2", "conditions": {"ready": False}}]))
    c.apply("Service", svc("default", "empty", "None"))
    c.apply("Service", svc("default", "legacy", "None"))
    c.apply("Endpoints", {"metadata": {"namespace": "default", "name": "legacy"}, "subsets": [
        {"addresses": [{"ip": "10.244.1.1"}], "notReadyAddresses": [{"ip": "10.244.1.2"}],
         "ports": [{"name": "http", "port": 80}]}]})
    c.apply("Service", {"metadata": {"namespace": "default", "name": "ext"},
                        "spec": {"type": "ExternalName", "externalName": "nginx.default.svc.cluster.local"}})
    c.apply("Namespace", {"metadata": {"name": "default"}})
    c.track_namespaces = True
    return c


def ask(zone, name, qtype="A"):
    ans = zone.answer(DNSRecord.question(name, qtype))
    return None if ans is None else ans.reply


def values(reply, rtype=None):
    return sorted(str(rr.rdata) for rr in reply.rr if rtype is None or rr.rtype == rtype)


def test_cluster_ip_service(catalog):
    zone = ClusterZone(catalog)
    r = ask(zone, "nginx.default.svc.cluster.local")
    assert r.header.rcode == RCODE.NOERROR and r.header.aa
    assert values(r) == ["10.96.0.50"] and r.rr[0].ttl == 30
    # AAAA of an IPv4-only service: NOERROR, no answer, SOA in authority
    r = ask(zone, "NGINX.Default.svc.cluster.local", "AAAA")
    assert r.header.rcode == RCODE.NOERROR and not r.rr
    assert r.auth[0].rtype == QTYPE.SOA and str(r.auth[0].rname) == "cluster.local."
    assert str(r.q.qname) == "NGINX.Default.svc.cluster.local."  # the question is echoed as asked
    assert values(ask(zone, "dual.default.svc.cluster.local", "AAAA")) == ["fd00::51"]


def test_unknown_names_are_nxdomain_with_soa(catalog):
    zone = ClusterZone(catalog)
    for name in ("nope.default.svc.cluster.local", "nginx.nons.svc.cluster.local", "a.b.c.cluster.local",
                 "x.nginx.default.svc.cluster.local", "empty.default.svc.cluster.local"):
        r = ask(zone, name)
        assert r.header.rcode == RCODE.NXDOMAIN, name
        soa = r.auth[0]
        assert soa.rtype == QTYPE.SOA
        assert str(soa.rdata.mname) == "ns.dns.cluster.local." and str(soa.rdata.rname) == "hostmaster.cluster.local."
    # names that exist without records
    for name in ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"):
        r = ask(zone, name)
        assert r.header.rcode == RCODE.NOERROR and not r.rr, name
    assert ask(zone, "example.com") is None  # not ours: forwarded


def test_headless_and_endpoint_names(catalog):
    zone = ClusterZone(catalog)
    assert values(ask(zone, "web.default.svc.cluster.local")) == ["10.244.0.5", "10.244.0.6"]
    assert values(ask(zone, "web-1.web.default.svc.cluster.local")) == ["10.244.0.6"]
    assert ask(zone, "web-2.web.default.svc.cluster.local").header.rcode == RCODE.NXDOMAIN  # not ready
    assert values(ask(zone, "legacy.default.svc.cluster.local")) == ["10.244.1.1"]  # Endpoints fallback
    assert values(ask(zone, "10-244-1-1.legacy.default.svc.cluster.local")) == ["10.244.1.1"]


def test_srv(catalog):
    zone = ClusterZone(catalog)
    r = ask(zone, "_http._tcp.nginx.default.svc.cluster.local", "SRV")
    assert [(rr.rdata.port, str(rr.rdata.target)) for rr in r.rr] == [(80, "nginx.default.svc.cluster.local.")]
    assert values(r) and [str(a.rdata) for a in r.ar] == ["10.96.0.50"]
    r = ask(zone, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert sorted((rr.rdata.port, str(rr.rdata.target)) for rr in r.rr) == [
        (8080, "web-0.web.default.svc.cluster.local."), (8080, "web-1.web.default.svc.cluster.local.")]
    assert sorted(str(a.rdata) for a in r.ar) == ["10.244.0.5", "10.244.0.6"]
    assert ask(zone, "_https._tcp.nginx.default.svc.cluster.local", "SRV").header.rcode == RCODE.NXDOMAIN
    assert ask(zone, "_http._udp.nginx.default.svc.cluster.local", "SRV").header.rcode == RCODE.NXDOMAIN


def test_external_name_pod_records_ptr_and_version(catalog):
    zone = ClusterZone(catalog)
    r = ask(zone, "ext.default.svc.cluster.local")
    assert r.rr[0].rtype == QTYPE.CNAME and str(r.rr[0].rdata) == "nginx.default.svc.cluster.local."
    assert values(r, QTYPE.A) == ["10.96.0.50"]  # an in-cluster target is resolved in the same answer
    assert values(ask(zone, "10-244-3-4.default.pod.cluster.local")) == ["10.244.3.4"]
    assert ask(zone, "not-an-ip.default.pod.cluster.local").header.rcode == RCODE.NXDOMAIN
    assert values(ask(zone, "50.0.96.10.in-addr.arpa", "PTR")) == ["nginx.default.svc.cluster.local."]
    assert values(ask(zone, "5.0.244.10.in-addr.arpa", "PTR")) == ["web-0.web.default.svc.cluster.local."]
    assert ask(zone, "9.9.9.9.in-addr.arpa", "PTR") is None
    assert values(ask(zone, "dns-version.cluster.local", "TXT")) == ['"1.1.0"']
    assert values(ask(zone, "cluster.local", "SOA"))


def test_other_cluster_domain():
    c = ServiceCatalog()
    c.apply("Service", svc("default", "nginx"))
    zone = ClusterZone(c, "corp.example")
    assert values(ask(zone, "nginx.default.svc.corp.example")) == ["10.96.0.50"]
    assert ask(zone, "nginx.default.svc.cluster.local") is None


def test_helpers(tmp_path):
    assert dashed("10.1.2.3") == "10-1-2-3" and undashed("10-1-2-3") == "10.1.2.3"
    assert undashed("fd00--1") == "fd00::1" and undashed("foo") is None
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n")
    assert read_resolv_conf(str(conf)) == [("10.0.0.2", 53), ("fe80::1", 53)]
    assert pod_resolv_conf("team") == ("search team.svc.cluster.local svc.cluster.local cluster.local\n"
                                       "nameserver 10.96.0.10\noptions ndots:5\n")


class FakeUpstream(asyncio.DatagramProtocol):
    """A resolver that knows one name."""

    def connection_made(self, transport):
        self.transport = transport
        self.asked = []

    def datagram_received(self, data, addr):
        q = DNSRecord.parse(data)
        self.asked.append(str(q.q.qname))
        reply = q.reply()
        if str(q.q.qname).rstrip(".") in ("example.com", "upstream.test"):
            reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("203.0.113.7"), ttl=60))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        self.transport.sendto(reply.pack(), addr)


async def query_udp(port, name, qtype="A", qid=None):
    q = DNSRecord.question(name, qtype)
    if qid is not None:
        q.header.id = qid
    return DNSRecord.parse(await asyncio.to_thread(q.send, "127.0.0.1", port, False, 3))


async def query_tcp(port, name, qtype="A"):
    q = DNSRecord.question(name, qtype)
    return DNSRecord.parse(await asyncio.to_thread(q.send, "127.0.0.1", port, True, 3))


async def test_server_udp_tcp_cache_and_forwarding(catalog):
    loop = asyncio.get_running_loop()
    up_transport, upstream = await loop.create_datagram_endpoint(FakeUpstream, local_addr=("127.0.0.1", 0))
    up_port = up_transport.get_extra_info("sockname")[1]
    # a dead upstream first: the forwarder times out on it and moves on
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    config = DNSConfig(port=0, upstreams=[dead.getsockname(), ("127.0.0.1", up_port)], forward_timeout=0.3)
    handler = build_handler(catalog, config)
    server = DNSServer(handler, "127.0.0.1", 0)
    await server.start()
    try:
        r = await query_udp(server.port, "nginx.default.svc.cluster.local", qid=1234)
        assert r.header.id == 1234 and values(r) == ["10.96.0.50"]
        # the second one comes from the wire cache, with its own ID and spelling of the name
        r = await query_udp(server.port, "NGINX.default.svc.cluster.local", qid=4321)
        assert r.header.id == 4321 and str(r.q.qname) == "NGINX.default.svc.cluster.local."
        assert str(r.rr[0].rname).lower() == "nginx.default.svc.cluster.local." and values(r) == ["10.96.0.50"]
        assert handler.cache
        r = await query_tcp(server.port, "web.default.svc.cluster.local")
        assert values(r) == ["10.244.0.5", "10.244.0.6"]
        # a change drops the answers about that Service (only): new answers at once
        cached = len(handler.cache)
        catalog.apply("Service", svc("default", "nginx", "10.96.0.60"))
        assert len(handler.cache) == cached - 1
        # a new Service drops its cached NXDOMAIN
        assert (await query_udp(server.port, "late.default.svc.cluster.local")).header.rcode == RCODE.NXDOMAIN
        catalog.apply("Service", svc("default", "late", "10.96.0.61"))
        assert values(await query_udp(server.port, "late.default.svc.cluster.local")) == ["10.96.0.61"]
        # a namespace change drops everything
        catalog.apply("Namespace", {"metadata": {"name": "other"}})
        assert not handler.cache
        assert values(await query_udp(server.port, "nginx.default.svc.cluster.local")) == ["10.96.0.60"]
        # other names go upstream; cluster names never do
        r = await query_udp(server.port, "example.com")
        assert values(r) == ["203.0.113.7"]
        r = await query_udp(server.port, "missing.example.org")
        assert r.header.rcode == RCODE.NXDOMAIN
        await query_udp(server.port, "gone.default.svc.cluster.local")
        assert all("cluster.local" not in n for n in upstream.asked)
        # an ExternalName outside the cluster: CNAME plus the target's addresses from upstream
        catalog.apply("Service", {"metadata": {"namespace": "default", "name": "out"},
                                  "spec": {"type": "ExternalName", "externalName": "upstream.test"}})
        r = await query_udp(server.port, "out.default.svc.cluster.local")
        assert [rr.rtype for rr in r.rr] == [QTYPE.CNAME, QTYPE.A] and values(r, QTYPE.A) == ["203.0.113.7"]
        # garbage gets FORMERR, not silence
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.settimeout(2)
        raw.sendto(struct.pack("!HHHHHH", 77, 0x0100, 1, 0, 0, 0) + b"\x05abc", ("127.0.0.1", server.port))
        data = await asyncio.to_thread(raw.recv, 512)
        raw.close()
        assert data[:2] == struct.pack("!H", 77) and data[3] & 0x0F == RCODE.FORMERR
    finally:
        await server.stop()
        up_transport.close()
        dead.close()


async def test_all_upstreams_down_is_servfail(catalog):
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    handler = build_handler(catalog, DNSConfig(port=0, upstreams=[dead.getsockname()], forward_timeout=0.2))
    server = DNSServer(handler, "127.0.0.1", 0, tcp=False)
    await server.start()
    try:
        r = await query_udp(server.port, "example.com")
        assert r.header.rcode == RCODE.SERVFAIL
    finally:
        await server.stop()
        dead.close()
