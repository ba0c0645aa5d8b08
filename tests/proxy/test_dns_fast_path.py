"""The struct-built answers of `DNSHandler.fast` are byte for byte what the dnslib path builds, and it declines
every query it does not fully understand."""

from __future__ import annotations

import asyncio

import pytest
from dnslib import EDNS0, DNSRecord

from kubelite.proxy.catalog import ServiceCatalog
from kubelite.proxy.dns import DNSConfig, build_handler


def svc(ns, name, ip, **spec):
    body = {"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}
    return {"metadata": {"namespace": ns, "name": name}, "spec": body}


def eps_slice(ns, name, svc_name, endpoints):
    return {"metadata": {"namespace": ns, "name": name, "labels": {"kubernetes.io/service-name": svc_name}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}


@pytest.fixture
def handler():
    c = ServiceCatalog()
    c.apply("Service", svc("default", "nginx", "10.96.0.50"))
    c.apply("Service", svc("default", "dual", "10.96.0.51", clusterIPs=["10.96.0.51", "fd00::51"]))
    c.apply("Service", svc("default", "web", "None"))
    c.apply("EndpointSlice", eps_slice("default", "web-a", "web", [
        {"addresses": ["10.244.0.5"], "hostname": "web-0", "conditions": {"ready": True}},
        {"addresses": ["10.244.0.6"], "hostname": "web-1"},
        {"addresses": ["10.244.0.7"], "hostname": "web-2", "conditions": {"ready": False}}]))
    c.apply("Service", svc("default", "empty", "None"))
    c.apply("Service", {"metadata": {"namespace": "default", "name": "ext"},
                        "spec": {"type": "ExternalName", "externalName": "nginx.default.svc.cluster.local"}})
    c.apply("Namespace", {"metadata": {"name": "default"}})
    c.track_namespaces = True
    return build_handler(c, DNSConfig(upstreams=[], cache_size=0))


def query(name: str, qtype: str = "A", qid: int = 4242, edns: int | None = None, rd: bool = True) -> bytes:
    q = DNSRecord.question(name, qtype)
    q.header.id = qid
    q.header.rd = int(rd)
    if edns is not None:
        q.add_ar(EDNS0(udp_len=edns))
    return bytes(q.pack())


FAST = [
    ("nginx.default.svc.cluster.local", "A"),
    ("NGINX.Default.svc.cluster.local", "A"),  # the question keeps its spelling, answers point at it
    ("dual.default.svc.cluster.local", "AAAA"),
    ("dual.default.svc.cluster.local", "A"),
    ("web.default.svc.cluster.local", "A"),  # headless: the ready endpoints
    ("web-0.web.default.svc.cluster.local", "A"),  # a StatefulSet pod's stable name
    ("web-1.web.default.svc.cluster.local", "A"),
]

SLOW = [
    ("nginx.default.svc.cluster.local", "AAAA"),  # no such records: NOERROR with the SOA
    ("missing.default.svc.cluster.local", "A"),  # NXDOMAIN
    ("empty.default.svc.cluster.local", "A"),  # headless without endpoints: NXDOMAIN
    ("web-2.web.default.svc.cluster.local", "A"),  # not ready
    ("ext.default.svc.cluster.local", "A"),  # CNAME
    ("_http._tcp.nginx.default.svc.cluster.local", "SRV"),
    ("nginx.default.svc.cluster.local", "MX"),
    ("10-244-0-5.default.pod.cluster.local", "A"),
    ("example.com", "A"),
    ("default.svc.cluster.local", "A"),
]


@pytest.mark.parametrize("name,qtype", FAST)
@pytest.mark.parametrize("edns", [None, 1232, 4096])
def test_fast_answers_equal_the_dnslib_ones(handler, name, qtype, edns):
    data = query(name, qtype, edns=edns)
    fast = handler.fast(data)
    assert fast is not None
    assert fast == asyncio.run(handler.handle(data))
    reply = DNSRecord.parse(fast)
    assert reply.header.id == 4242 and reply.header.rd == 1 and reply.header.aa == 1
    assert str(reply.q.qname) == name + "."
    assert all(str(rr.rname) == name + "." for rr in reply.rr)


def test_fast_answer_values(handler):
    def values(name, qtype="A"):
        return sorted(str(rr.rdata) for rr in DNSRecord.parse(handler.fast(query(name, qtype))).rr)

    assert values("nginx.default.svc.cluster.local") == ["10.96.0.50"]
    assert values("dual.default.svc.cluster.local", "AAAA") == ["fd00::51"]
    assert values("web.default.svc.cluster.local") == ["10.244.0.5", "10.244.0.6"]
    assert values("web-0.web.default.svc.cluster.local") == ["10.244.0.5"]
    # without recursion desired the flag stays off, as dnslib's reply copies it
    assert DNSRecord.parse(handler.fast(query("nginx.default.svc.cluster.local", rd=False))).header.rd == 0


@pytest.mark.parametrize("name,qtype", SLOW)
def test_fast_declines_what_it_does_not_answer(handler, name, qtype):
    assert handler.fast(query(name, qtype)) is None


def test_fast_declines_odd_messages(handler):
    good = query("nginx.default.svc.cluster.local")
    assert handler.fast(good[:10]) is None
    reply = bytearray(good)
    reply[2] |= 0x80  # QR: an answer, not a query
    assert handler.fast(bytes(reply)) is None
    assert handler.fast(good + b"\x00") is None  # trailing bytes
    notify = bytearray(good)
    notify[2] |= 0x20  # opcode 4 (NOTIFY)
    assert handler.fast(bytes(notify)) is None


def test_fast_answers_fill_the_cache_and_changes_drop_them():
    c = ServiceCatalog()
    c.apply("Service", svc("default", "nginx", "10.96.0.50"))
    h = build_handler(c, DNSConfig(upstreams=[]))
    data = query("nginx.default.svc.cluster.local")
    first = h.fast(data)
    assert h.cached(query("nginx.default.svc.cluster.local", qid=7))[2:] == first[2:]
    c.apply("Service", svc("default", "nginx", "10.96.0.99"))
    assert h.cached(data) is None
    assert "10.96.0.99" in str(DNSRecord.parse(h.fast(data)).rr[0].rdata)
