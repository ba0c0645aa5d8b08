"""Cluster DNS: a UDP + TCP DNS server for the cluster domain that forwards other names, like CoreDNS.

    config = DNSConfig(listen_host="192.0.2.2", port=53, endpoint_address="192.0.2.2")
    await run_dns(client, stop=stop_event, config=config)

`run_dns` watches Services, EndpointSlices, Endpoints and Namespaces through `kubelite.client` informers,
serves the zone described in `dns_zone` on `listen_host:port` (UDP and TCP), forwards names outside the
cluster domain to the host's resolvers (/etc/resolv.conf, or `config.upstreams`) with a timeout, and — with
`register_service` — keeps the `kube-system/kube-dns` Service (clusterIP 10.96.0.10, labelled as kubeadm's
CoreDNS so `kubectl cluster-info` lists it) with Endpoints and an EndpointSlice pointing at
`endpoint_address:port`.  Pods reach 10.96.0.10:53 through the service proxy.

Answers from the zone are cached as wire bytes keyed by the question (case-folded), so repeated queries skip
parsing and building altogether; a change to a Service or its endpoints drops the answers about that Service
(names under `<svc>.<ns>.svc`), any other change (namespaces, reverse names) drops them all.  A cache miss
for the common question — A/AAAA of a Service or endpoint name that has such records — is answered by
`DNSHandler.fast`, which reads the header and question with struct and builds the same bytes dnslib would,
without a task; everything else goes through dnslib.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from dataclasses import dataclass, field

from dnslib import EDNS0, QTYPE, RCODE, DNSError, DNSRecord

from kubelite.client import ApiClient, ClientError, SharedInformerFactory

from .catalog import ENDPOINTS, ENDPOINTSLICES, SERVICES, ServiceCatalog
from .dns_zone import ClusterZone

log = logging.getLogger("kubelite.proxy.dns")

KUBE_DNS_LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
MANAGED_BY = "dns.kubelite.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"


@dataclass
class DNSConfig:
    cluster_domain: str = "cluster.local"  # kubelet --cluster-domain, kubeadm dnsDomain
    listen_host: str = "127.0.0.1"  # where the node (and the proxy's DNAT) reaches the server
    port: int = 53
    tcp: bool = True
    ttl: int = 30  # kubeadm's Corefile: `kubernetes cluster.local … { ttl 30 }`
    upstreams: list[tuple[str, int]] | None = None  # None: the nameservers of resolv_conf
    resolv_conf: str = "/etc/resolv.conf"
    forward_timeout: float = 2.0  # per upstream
    cache_size: int = 10000
    register_service: bool = True
    service_namespace: str = "kube-system"
    service_name: str = "kube-dns"
    service_ip: str = "10.96.0.10"
    endpoint_address: str | None = None  # address in kube-dns's Endpoints (default: listen_host)
    node_name: str | None = None
    informer_sync_timeout: float = 60.0
    extra_labels: dict[str, str] = field(default_factory=dict)


def read_resolv_conf(path: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    servers = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    servers.append((parts[1].split("%")[0], 53))
    except OSError:
        pass
    return servers


def pod_resolv_conf(namespace: str, nameserver: str = "10.96.0.10", cluster_domain: str = "cluster.local",
                    host_search: list[str] | None = None, ndots: int = 5) -> str:
    """The resolv.conf of a pod with dnsPolicy ClusterFirst, as the kubelet writes it."""
    search = [f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain, *(host_search or [])]
    return f"search {' '.join(search[:32])}\nnameserver {nameserver}\noptions ndots:{ndots}\n"


def _question_end(data: bytes) -> int:
    """Offset just past the (single, uncompressed) question of a query; 0 if it is not one."""
    i = 12
    n = len(data)
    while i < n:
        length = data[i]
        if length == 0:
            end = i + 5
            return end if end <= n else 0
        if length & 0xC0:
            return 0
        i += 1 + length
    return 0


_HEADER = struct.Struct("!HHHHHH")
_QTAIL = struct.Struct("!HH")
_ADDR_RR = struct.Struct("!HHHIH")  # name pointer, type, class, ttl, rdlength
_QTYPE_A, _QTYPE_AAAA, _QTYPE_OPT, _CLASS_IN = 1, 28, 41, 1
# the OPT record every EDNS answer carries: root name, type OPT, payload 1232, no extended flags
_OPT_1232 = b"\x00" + struct.pack("!HHIH", _QTYPE_OPT, 1232, 0, 0)


def _question_labels(data: bytes, end: int) -> list[str] | None:
    """The labels of the question name (lower case) of a query whose question ends at `end`."""
    labels = []
    i = 12
    stop = end - 5
    while i < stop:
        length = data[i]
        labels.append(data[i + 1:i + 1 + length].decode("ascii", "replace").lower())
        i += 1 + length
    return labels


class Forwarder:
    """Sends a query unchanged to the upstream resolvers in turn; the first answer wins."""

    def __init__(self, upstreams: list[tuple[str, int]], timeout: float) -> None:
        self.upstreams = upstreams
        self.timeout = timeout

    async def query(self, data: bytes, tcp: bool = False) -> bytes | None:
        for host, port in self.upstreams:
            try:
                if tcp:
                    return await asyncio.wait_for(self._tcp(host, port, data), self.timeout)
                return await asyncio.wait_for(self._udp(host, port, data), self.timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as e:
                log.debug("forwarding to %s:%s failed: %s", host, port, e)
        return None

    async def _udp(self, host: str, port: int, data: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes] = loop.create_future()
        qid = data[:2]

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, reply: bytes, addr) -> None:
                if reply[:2] == qid and not done.done():
                    done.set_result(reply)

            def error_received(self, exc: Exception) -> None:
                if not done.done():
                    done.set_exception(exc)

        transport, _ = await loop.create_datagram_endpoint(Proto, remote_addr=(host, port))
        try:
            transport.sendto(data)
            return await done
        finally:
            transport.close()

    async def _tcp(self, host: str, port: int, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            return await reader.readexactly(length)
        finally:
            writer.close()


class DNSHandler:
    """Turns one query (wire bytes) into one answer (wire bytes): cache, zone, forwarder."""

    def __init__(self, zone: ClusterZone, forwarder: Forwarder, cache_size: int = 10000) -> None:
        self.zone = zone
        self.forwarder = forwarder
        self.cache: dict[tuple, bytes] = {}
        self.deps: dict[tuple | str, set[tuple]] = {}  # (ns, svc) or "*" → cache keys
        self.cache_size = cache_size
        self.queries = 0
        self.forwarded = 0
        zone.catalog.listeners.append(self.invalidate)

    def invalidate(self, key: tuple[str, str] | None) -> None:
        if key is None:
            self.cache.clear()
            self.deps.clear()
            return
        for dep in (key, "*"):
            for ck in self.deps.pop(dep, ()):
                self.cache.pop(ck, None)

    def cached(self, data: bytes) -> bytes | None:
        """The answer from the cache, with this query's ID and question spelling, or None."""
        qend = _question_end(data)
        if not qend:
            return None
        hit = self.cache.get((data[2:12], data[12:qend].lower(), data[qend:]))
        if hit is None:
            return None
        self.queries += 1
        return data[:2] + hit[2:12] + data[12:qend] + hit[qend:]

    def fast(self, data: bytes, tcp: bool = False) -> bytes | None:
        """The answer to a plain A/AAAA query for a Service or endpoint name that has such records, built
        with struct (byte for byte what `handle` builds with dnslib); None for anything else."""
        if len(data) < 17:
            return None
        _id, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
        if flags & 0xF800 or qd != 1 or an or ns or ar > 1:  # a reply, or not a standard query
            return None
        qend = _question_end(data)
        if not qend:
            return None
        qtype, qclass = _QTAIL.unpack_from(data, qend - 4)
        if qtype not in (_QTYPE_A, _QTYPE_AAAA) or qclass != _CLASS_IN:
            return None
        limit = 512
        if ar:
            # only a bare OPT record (root name, no options) is understood here
            if len(data) != qend + 11 or data[qend] != 0 or data[qend + 1:qend + 3] != b"\x00\x29":
                return None
            limit = max(512, min(int.from_bytes(data[qend + 3:qend + 5], "big"), 4096))
        elif len(data) != qend:
            return None
        labels = _question_labels(data, qend)
        zone = self.zone
        n = len(zone.domain_labels)
        if len(labels) <= n + 2 or labels[-n:] != zone.domain_labels:
            return None
        found = zone.service_addresses(labels[:-n])
        if found is None:
            return None
        key, addresses = found
        family = socket.AF_INET6 if qtype == _QTYPE_AAAA else socket.AF_INET
        size = 16 if qtype == _QTYPE_AAAA else 4
        rrs = [_ADDR_RR.pack(0xC00C, qtype, _CLASS_IN, zone.ttl, size) + socket.inet_pton(family, a)
               for a in addresses if (":" in a) == (qtype == _QTYPE_AAAA)]
        if not rrs:
            return None  # NOERROR without records carries the SOA: the full path builds it
        # reply flags as dnslib's reply(): the query's bits plus QR, AA and RA
        head = _HEADER.pack(_id, flags | 0x8480, 1, len(rrs), 0, 1 if ar else 0)
        wire = b"".join((head, data[12:qend], *rrs, _OPT_1232 if ar else b""))
        if not tcp and len(wire) > limit:
            return None
        self.queries += 1
        if self.cache_size > 0 and len(wire) <= limit:  # a large TCP answer must not serve UDP from the cache
            if len(self.cache) >= self.cache_size:
                self.invalidate(None)
            ck = (data[2:12], data[12:qend].lower(), data[qend:])
            self.cache[ck] = wire
            self.deps.setdefault(key, set()).add(ck)
        return wire

    async def handle(self, data: bytes, tcp: bool = False) -> bytes | None:
        self.queries += 1
        try:
            request = DNSRecord.parse(data)
        except (DNSError, Exception):
            return _formerr(data)
        if request.header.qr or request.header.opcode != 0 or len(request.questions) != 1:
            reply = request.reply()
            reply.header.rcode = RCODE.NOTIMP if request.header.opcode != 0 else RCODE.FORMERR
            return reply.pack()
        ans = self.zone.answer(request)
        if ans is None:
            return await self._forward(request, data, tcp)
        reply = ans.reply
        if ans.chase:
            ans.cacheable = False
            await self._chase(reply, ans.chase, request.q.qtype)
        edns = next((r for r in request.ar if r.rtype == QTYPE.OPT), None)
        limit = 512
        if edns is not None:
            limit = max(512, min(int(edns.rclass), 4096))
            reply.add_ar(EDNS0(udp_len=1232))
        wire = reply.pack()
        if not tcp and len(wire) > limit:
            reply = reply.truncate()
            wire = reply.pack()
            ans.cacheable = False
        if ans.cacheable and self.cache_size > 0:
            qend = _question_end(data)
            if qend:
                if len(self.cache) >= self.cache_size:
                    self.invalidate(None)
                ck = (data[2:12], data[12:qend].lower(), data[qend:])
                self.cache[ck] = wire
                if ans.depends != ():
                    self.deps.setdefault(ans.depends, set()).add(ck)
        return wire

    async def _forward(self, request: DNSRecord, data: bytes, tcp: bool) -> bytes:
        self.forwarded += 1
        answer = await self.forwarder.query(data, tcp)
        if answer is None:
            reply = request.reply()
            reply.header.rcode = RCODE.SERVFAIL
            return reply.pack()
        return answer

    async def _chase(self, reply: DNSRecord, target: str, qtype: int) -> None:
        if qtype not in (QTYPE.A, QTYPE.AAAA):
            return
        query = DNSRecord.question(target, QTYPE.get(qtype))
        answer = await self.forwarder.query(query.pack())
        if answer is None:
            return
        with contextlib.suppress(Exception):
            for rr in DNSRecord.parse(answer).rr:
                reply.add_answer(rr)


def _formerr(data: bytes) -> bytes | None:
    if len(data) < 12:
        return None
    flags = 0x8000 | (data[2] & 0x79) << 8 | RCODE.FORMERR
    return data[:2] + struct.pack("!HHHHH", flags, 0, 0, 0, 0)


class _UDPServer(asyncio.DatagramProtocol):
    def __init__(self, handler: DNSHandler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task] = set()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        hit = self.handler.cached(data) or self.handler.fast(data)
        if hit is not None:
            self.transport.sendto(hit, addr)
            return
        task = asyncio.ensure_future(self._answer(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, data: bytes, addr) -> None:
        try:
            wire = await self.handler.handle(data)
        except Exception:
            log.exception("DNS query from %s failed", addr)
            wire = _formerr(data)
        if wire is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)


class DNSServer:
    """The listening sockets (UDP, and TCP when `tcp`) around a `DNSHandler`."""

    def __init__(self, handler: DNSHandler, host: str, port: int, tcp: bool = True) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.tcp = tcp
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_proto: _UDPServer | None = None
        self._tcp: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # with port 0 the UDP port picked may be taken for TCP: pick again until both are ours
        for attempt in range(20 if self.port == 0 else 1):
            udp, proto = await loop.create_datagram_endpoint(
                lambda: _UDPServer(self.handler), local_addr=(self.host, self.port))
            port = udp.get_extra_info("sockname")[1]
            if self.tcp:
                try:
                    self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
                except OSError:
                    udp.close()
                    if self.port != 0 or attempt == 19:
                        raise
                    continue
            self._udp, self._udp_proto, self.port = udp, proto, port
            return

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), 10.0)
                    (length,) = struct.unpack("!H", head)
                    data = await asyncio.wait_for(reader.readexactly(length), 10.0)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                wire = (self.handler.cached(data) or self.handler.fast(data, tcp=True)
                        or await self.handler.handle(data, tcp=True))
                if wire is None:
                    return
                writer.write(struct.pack("!H", len(wire)) + wire)
                await writer.drain()
        except Exception:
            log.exception("DNS over TCP failed")
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._udp_proto is not None:
            for t in list(self._udp_proto.tasks):
                t.cancel()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()


def build_handler(catalog: ServiceCatalog, config: DNSConfig) -> DNSHandler:
    upstreams = config.upstreams if config.upstreams is not None else read_resolv_conf(config.resolv_conf)
    # never forward to ourselves (a node whose resolv.conf points at the cluster DNS would loop)
    own = {(config.listen_host, config.port), (config.service_ip, 53)}
    if config.endpoint_address:
        own.add((config.endpoint_address, config.port))
    upstreams = [u for u in upstreams if u not in own]
    zone = ClusterZone(catalog, config.cluster_domain, config.ttl)
    return DNSHandler(zone, Forwarder(upstreams, config.forward_timeout), config.cache_size)


# -- the kube-dns Service -------------------------------------------------------------------------------

def kube_dns_objects(config: DNSConfig, address: str, port: int) -> tuple[dict, dict, dict]:
    """(Service, Endpoints, EndpointSlice) for kube-system/kube-dns as kubeadm's CoreDNS add-on shapes it."""
    labels = {**KUBE_DNS_LABELS, **config.extra_labels}
    ns, name = config.service_namespace, config.service_name
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels,
                     "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
        "spec": {"clusterIP": config.service_ip, "clusterIPs": [config.service_ip], "type": "ClusterIP",
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                           {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}}
    if not config.service_ip:
        del service["spec"]["clusterIP"], service["spec"]["clusterIPs"]
    ports = [{"name": "dns", "port": port, "protocol": "UDP"}, {"name": "dns-tcp", "port": port, "protocol": "TCP"}]
    ep_addr: dict = {"ip": address}
    if config.node_name:
        ep_addr["nodeName"] = config.node_name
    endpoints = {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns, "labels": {**labels, SKIP_MIRROR_LABEL: "true"}},
        "subsets": [{"addresses": [ep_addr], "ports": ports}]}
    endpoint: dict = {"addresses": [address], "conditions": {"ready": True, "serving": True, "terminating": False}}
    if config.node_name:
        endpoint["nodeName"] = config.node_name
    family = "IPv6" if ":" in address else "IPv4"
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-kubelite", "namespace": ns,
                     "labels": {**labels, "kubernetes.io/service-name": name,
                                "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
        "addressType": family, "endpoints": [endpoint], "ports": ports}
    return service, endpoints, endpoint_slice


async def _put(client: ApiClient, rt, obj: dict) -> None:
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    try:
        current = await client.get(rt, ns, name)
    except ClientError as e:
        if not e.is_not_found:
            raise
        await client.create(rt, obj, ns)
        return
    merged = dict(obj)
    merged["metadata"] = {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
    await client.update(rt, merged)


async def ensure_kube_dns(client: ApiClient, config: DNSConfig, address: str, port: int) -> None:
    """Create the kube-dns Service if absent, and point its Endpoints and EndpointSlice at `address:port`."""
    service, endpoints, endpoint_slice = kube_dns_objects(config, address, port)
    try:
        await client.create(SERVICES, service, config.service_namespace)
    except ClientError as e:
        if e.is_already_exists:
            pass
        elif e.is_invalid and config.service_ip:
            log.warning("kube-dns: clusterIP %s refused (%s); letting the API server pick one",
                        config.service_ip, e.message)
            del service["spec"]["clusterIP"], service["spec"]["clusterIPs"]
            with contextlib.suppress(ClientError):
                await client.create(SERVICES, service, config.service_namespace)
        else:
            raise
    await _put(client, ENDPOINTS, endpoints)
    await _put(client, ENDPOINTSLICES, endpoint_slice)


# -- running ----------------------------------------------------------------------------------------------

class ClusterDNS:
    """The DNS component: informers → catalog → zone → server. `start()`, then `stop()`."""

    def __init__(self, client: ApiClient, config: DNSConfig, informers: SharedInformerFactory | None = None) -> None:
        self.client = client
        self.config = config
        self.informers = informers or SharedInformerFactory(client)
        self._own_informers = informers is None
        self.catalog = ServiceCatalog()
        self.handler = build_handler(self.catalog, config)
        self.server = DNSServer(self.handler, config.listen_host, config.port, config.tcp)
        self._informers = self.catalog.attach(self.informers)

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        self.informers.start()
        for inf in self._informers:
            if not await inf.wait_for_sync(self.config.informer_sync_timeout):
                log.warning("dns: informer for %s did not sync in time", inf.rt.resource)
        await self.server.start()
        log.info("cluster DNS for %s serving on %s:%d", self.config.cluster_domain, self.config.listen_host,
                 self.server.port)
        if self.config.register_service:
            address = self.config.endpoint_address or self.config.listen_host
            try:
                await ensure_kube_dns(self.client, self.config, address, self.server.port)
            except ClientError as e:
                log.warning("dns: could not register the kube-dns Service: %s", e)

    async def stop(self) -> None:
        await self.server.stop()
        if self._own_informers:
            await self.informers.stop()


async def run_dns(client: ApiClient, *, stop: asyncio.Event, config: DNSConfig | None = None,
                  informers: SharedInformerFactory | None = None) -> None:
    """Serve cluster DNS until `stop` is set."""
    dns = ClusterDNS(client, config or DNSConfig(), informers)
    await dns.start()
    try:
        await stop.wait()
    finally:
        await dns.stop()

