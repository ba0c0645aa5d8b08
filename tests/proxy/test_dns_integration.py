"""Cluster DNS against a real API server: records follow Services and EndpointSlices; kube-dns is registered."""

from __future__ import annotations

import asyncio
import time

from dnslib import RCODE, DNSRecord

from kubelite.client import ApiClient
from kubelite.proxy.catalog import ENDPOINTS, ENDPOINTSLICES, SERVICES
from kubelite.proxy.dns import ClusterDNS, DNSConfig


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


async def ask(port, name, qtype="A"):
    q = DNSRecord.question(name, qtype)
    return DNSRecord.parse(await asyncio.to_thread(q.send, "127.0.0.1", port, False, 3))


def addrs(reply):
    return sorted(str(rr.rdata) for rr in reply.rr)


async def test_dns_follows_the_cluster(fresh_cluster):
    cluster = fresh_cluster
    api = ApiClient.from_kubeconfig(cluster.kubeconfig)
    dns = ClusterDNS(api, DNSConfig(listen_host="127.0.0.1", port=0, upstreams=[], endpoint_address="192.0.2.53"))
    try:
        nginx = await api.create(SERVICES, {"metadata": {"name": "nginx"}, "spec": {
            "selector": {"app": "nginx"}, "ports": [{"name": "http", "port": 8068, "targetPort": 80}]}}, "default")
        await api.create(SERVICES, {"metadata": {"name": "web"}, "spec": {
            "clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}, "default")
        await api.create(ENDPOINTSLICES, {
            "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.0.10"], "hostname": "web-0", "conditions": {"ready": True}}]},
            "default")
        await dns.start()
        port = dns.port
        cip = nginx["spec"]["clusterIP"]
        assert addrs(await ask(port, "nginx.default.svc.cluster.local")) == [cip]
        assert addrs(await ask(port, "web-0.web.default.svc.cluster.local")) == ["10.244.0.10"]
        r = await ask(port, "_http._tcp.nginx.default.svc.cluster.local", "SRV")
        assert [rr.rdata.port for rr in r.rr] == [8068]

        # a second StatefulSet pod becomes ready: its name resolves, the headless name lists both
        await api.patch(ENDPOINTSLICES, "default", "web-1", {"endpoints": [
            {"addresses": ["10.244.0.10"], "hostname": "web-0", "conditions": {"ready": True}},
            {"addresses": ["10.244.0.11"], "hostname": "web-1", "conditions": {"ready": True}}]})

        async def both():
            return addrs(await ask(port, "web.default.svc.cluster.local")) == ["10.244.0.10", "10.244.0.11"]
        await wait_for(both, what="the new endpoint in DNS")
        assert addrs(await ask(port, "web-1.web.default.svc.cluster.local")) == ["10.244.0.11"]

        # a deleted Service is gone from DNS
        await api.delete(SERVICES, "default", "nginx")

        async def gone():
            return (await ask(port, "nginx.default.svc.cluster.local")).header.rcode == RCODE.NXDOMAIN
        await wait_for(gone, what="NXDOMAIN after delete")

        # kube-dns: the Service kubeadm's CoreDNS has, its endpoints at our address and port
        svc = await api.get(SERVICES, "kube-system", "kube-dns")
        assert svc["spec"]["clusterIP"] == "10.96.0.10"
        assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
            ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
        assert svc["metadata"]["labels"]["kubernetes.io/cluster-service"] == "true"
        eps = await api.get(ENDPOINTS, "kube-system", "kube-dns")
        assert eps["subsets"][0]["addresses"][0]["ip"] == "192.0.2.53"
        assert {p["port"] for p in eps["subsets"][0]["ports"]} == {port}
        sl = await api.get(ENDPOINTSLICES, "kube-system", "kube-dns-kubelite")
        assert sl["endpoints"][0]["addresses"] == ["192.0.2.53"]
        # kube-dns itself resolves, and kubectl cluster-info lists it as CoreDNS
        assert addrs(await ask(port, "kube-dns.kube-system.svc.cluster.local")) == ["10.96.0.10"]
        out = (await asyncio.to_thread(cluster.kubectl, "cluster-info", check=True)).stdout
        assert "CoreDNS" in out and "/api/v1/namespaces/kube-system/services/kube-dns:dns/proxy" in out
        out = (await asyncio.to_thread(cluster.kubectl, "get", "svc", "-n", "kube-system", check=True)).stdout
        assert "kube-dns" in out and "53/UDP,53/TCP,9153/TCP" in out

        # a restart finds the Service in place and re-points the endpoints
        await dns.stop()
        dns = ClusterDNS(api, DNSConfig(listen_host="127.0.0.1", port=0, upstreams=[],
                                        endpoint_address="192.0.2.54"))
        await dns.start()
        eps = await api.get(ENDPOINTS, "kube-system", "kube-dns")
        assert eps["subsets"][0]["addresses"][0]["ip"] == "192.0.2.54"
    finally:
        await dns.stop()
        await api.close()
