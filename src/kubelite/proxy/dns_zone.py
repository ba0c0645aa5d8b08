"""The cluster zone: answers for `<cluster domain>` names as CoreDNS's kubernetes plugin gives them.

Names served (relative to the cluster domain, default cluster.local):

- `<svc>.<ns>.svc`: A/AAAA of the Service's clusterIPs; for a headless Service one record per ready endpoint
  address (NXDOMAIN when it has none, as CoreDNS); an ExternalName Service answers a CNAME to its target.
- `<hostname>.<svc>.<ns>.svc`: the endpoint whose hostname (StatefulSet pods) or dashed address matches.
- `_<port>._<proto>.<svc>.<ns>.svc` SRV for named ports (targets: the Service's name, or per endpoint
  `<hostname or dashed ip>.<svc>.<ns>.svc` for headless Services) with the addresses as additional records;
  `<svc>.<ns>.svc` SRV lists every named port.
- `<a-b-c-d>.<ns>.pod`: A a.b.c.d (CoreDNS's `pods insecure`, kubeadm's default).
- `dns-version` TXT "1.1.0" (the DNS schema version of the Kubernetes DNS specification).
- PTR for clusterIPs and named endpoint addresses under in-addr.arpa / ip6.arpa; other reverse names are not
  ours (forwarded).

A name in the zone that does not exist is NXDOMAIN, a name that exists without records of the asked type is
NOERROR with no answer; both carry the zone's SOA in the authority section, as CoreDNS does.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from dnslib import AAAA, CNAME, PTR, QTYPE, RCODE, RR, SOA, SRV, TXT, A, DNSLabel, DNSRecord
from dnslib import NS as NSRecord

from .catalog import Endpoint, ServiceCatalog, cluster_ips, is_headless

DNS_SCHEMA_VERSION = "1.1.0"


@dataclass
class ZoneAnswer:
    reply: DNSRecord
    chase: str | None = None  # ExternalName target outside the zone: resolve it upstream and append
    cacheable: bool = True
    # what the answer depends on: (namespace, service), "*" (anything), or () (nothing: pod names)
    depends: tuple | str = "*"


def dashed(address: str) -> str:
    """The DNS label of an address: 10-244-1-5, or fd00--1 for IPv6 (`:` → `-`)."""
    return address.replace(":", "-").replace(".", "-")


def undashed(label: str) -> str | None:
    for text in (label.replace("-", "."), label.replace("-", ":")):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            continue
    return None


class ClusterZone:
    def __init__(self, catalog: ServiceCatalog, domain: str = "cluster.local", ttl: int = 30) -> None:
        self.catalog = catalog
        self.domain = domain.strip(".").lower()
        self.domain_labels = self.domain.split(".")
        self.ttl = ttl
        self._serial = int(time.time())
        self._serial_version = catalog.version

    # -- helpers ----------------------------------------------------------------------------------------

    def in_zone(self, name: str) -> bool:
        return name == self.domain or name.endswith("." + self.domain)

    def serial(self) -> int:
        if self.catalog.version != self._serial_version:
            self._serial_version = self.catalog.version
            self._serial = max(self._serial + 1, int(time.time()))
        return self._serial & 0xFFFFFFFF

    def soa(self) -> RR:
        return RR(self.domain + ".", QTYPE.SOA, ttl=self.ttl,
                  rdata=SOA(f"ns.dns.{self.domain}.", f"hostmaster.{self.domain}.",
                            (self.serial(), 7200, 1800, 86400, self.ttl)))

    def svc_fqdn(self, svc: str, ns: str) -> str:
        return f"{svc}.{ns}.svc.{self.domain}."

    def _addr_rr(self, name, address: str) -> RR:
        if ":" in address:
            return RR(name, QTYPE.AAAA, ttl=self.ttl, rdata=AAAA(address))
        return RR(name, QTYPE.A, ttl=self.ttl, rdata=A(address))

    # -- resolving --------------------------------------------------------------------------------------

    def is_ours(self, qname: str) -> bool:
        """Zone names always; reverse names only for addresses we know (the rest are forwarded)."""
        if self.in_zone(qname):
            return True
        return self._reverse(qname) is not None

    def answer(self, request: DNSRecord) -> ZoneAnswer | None:
        """The reply to `request`, or None when the name is not ours (forward it)."""
        q = request.q
        qname = str(q.qname).rstrip(".").lower()
        reply = request.reply()
        reply.header.ra = 1
        if not self.in_zone(qname):
            target = self._reverse(qname)
            if target is None:
                return None
            if q.qtype in (QTYPE.PTR, QTYPE.ANY):
                reply.add_answer(RR(q.qname, QTYPE.PTR, ttl=self.ttl, rdata=PTR(target)))
            return ZoneAnswer(reply, depends="*")
        rel = qname[: -len(self.domain)].rstrip(".")
        labels = rel.split(".") if rel else []
        chase = self._records(labels, q.qname, q.qtype, reply)
        if chase is False:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self.soa())
        elif not reply.rr:
            reply.add_auth(self.soa())
        depends: tuple | str = "*"
        if len(labels) >= 3 and labels[-1] == "svc" and not any(rr.rtype == QTYPE.CNAME for rr in reply.rr):
            depends = (labels[-2], labels[-3])
        elif labels and labels[-1] == "pod":
            depends = ()
        return ZoneAnswer(reply, chase if isinstance(chase, str) else None, depends=depends)

    def service_addresses(self, labels: list[str]) -> tuple[tuple[str, str], list[str]] | None:
        """For `<svc>.<ns>.svc` and `<host>.<svc>.<ns>.svc` (labels relative to the domain): the Service's key
        and the addresses its A/AAAA answer holds, as `answer` would give them; None for every other case
        (names that do not exist, ExternalName, …), which only the full path answers."""
        if len(labels) not in (3, 4) or labels[-1] != "svc":
            return None
        ns, name = labels[-2], labels[-3]
        svc = self.catalog.service(ns, name)
        if svc is None or (svc.get("spec") or {}).get("type") == "ExternalName":
            return None
        if len(labels) == 3:
            addresses = self.catalog.ready_addresses(ns, name) if is_headless(svc) else cluster_ips(svc)
        else:
            addresses = []
            for ep in self.catalog.ready_endpoints(ns, name):
                if self._ep_label(ep) == labels[0] and ep.address not in addresses:
                    addresses.append(ep.address)
        return ((ns, name), addresses) if addresses else None

    def _records(self, labels: list[str], qname: DNSLabel, qtype: int, reply: DNSRecord) -> bool | str:
        """Add answers to `reply`. False: the name does not exist; True: it does; a str: CNAME target to
        chase outside the zone."""
        if not labels:
            if qtype in (QTYPE.SOA, QTYPE.ANY):
                reply.add_answer(self.soa())
            if qtype in (QTYPE.NS, QTYPE.ANY):
                reply.add_answer(RR(qname, QTYPE.NS, ttl=self.ttl, rdata=NSRecord(f"ns.dns.{self.domain}.")))
            return True
        if labels == ["dns-version"]:
            if qtype in (QTYPE.TXT, QTYPE.ANY):
                reply.add_answer(RR(qname, QTYPE.TXT, ttl=self.ttl, rdata=TXT(DNS_SCHEMA_VERSION)))
            return True
        kind = labels[-1]
        if kind == "pod":
            return self._pod(labels[:-1], qname, qtype, reply)
        if kind != "svc":
            return False
        labels = labels[:-1]
        if not labels:
            return True
        ns = labels[-1]
        if not self.catalog.namespace_exists(ns):
            return False
        if len(labels) == 1:
            return True
        name = labels[-2]
        svc = self.catalog.service(ns, name)
        if svc is None:
            return False
        if len(labels) == 2:
            return self._service(svc, ns, name, qname, qtype, reply)
        if len(labels) == 3:
            return self._endpoint(svc, ns, name, labels[0], qname, qtype, reply)
        if len(labels) == 4 and labels[0].startswith("_") and labels[1].startswith("_"):
            if qtype not in (QTYPE.SRV, QTYPE.ANY):
                return self._srv_exists(svc, ns, name, labels[0][1:], labels[1][1:])
            return self._srv(svc, ns, name, labels[0][1:], labels[1][1:], qname, reply)
        return False

    def _pod(self, labels: list[str], qname: DNSLabel, qtype: int, reply: DNSRecord) -> bool:
        # CoreDNS's `pods insecure`: any dashed address answers, without looking the pod up
        if len(labels) < 2:
            return True
        if len(labels) != 2:
            return False
        address = undashed(labels[0])
        if address is None:
            return False
        want = QTYPE.AAAA if ":" in address else QTYPE.A
        if qtype in (want, QTYPE.ANY):
            reply.add_answer(self._addr_rr(qname, address))
        return True

    def _service(self, svc: dict, ns: str, name: str, qname: DNSLabel, qtype: int, reply: DNSRecord) -> bool | str:
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            target = (spec.get("externalName") or "").rstrip(".").lower()
            if not target:
                return False
            reply.add_answer(RR(qname, QTYPE.CNAME, ttl=self.ttl, rdata=CNAME(target + ".")))
            if qtype in (QTYPE.CNAME,):
                return True
            if self.in_zone(target):
                rel = target[: -len(self.domain)].rstrip(".")
                inner = DNSRecord()
                self._records(rel.split(".") if rel else [], DNSLabel(target + "."), qtype, inner)
                for rr in inner.rr:
                    reply.add_answer(rr)
                return True
            return target
        if qtype == QTYPE.SRV:
            return self._srv(svc, ns, name, None, None, qname, reply)
        if is_headless(svc):
            addresses = self.catalog.ready_addresses(ns, name)
            if not addresses:
                return False
        else:
            addresses = cluster_ips(svc)
        for address in addresses:
            want = QTYPE.AAAA if ":" in address else QTYPE.A
            if qtype in (want, QTYPE.ANY):
                reply.add_answer(self._addr_rr(qname, address))
        return True

    def _ep_label(self, ep: Endpoint) -> str:
        return ep.hostname.lower() if ep.hostname else dashed(ep.address)

    def _endpoint(self, svc: dict, ns: str, name: str, label: str, qname: DNSLabel, qtype: int,
                  reply: DNSRecord) -> bool:
        found = False
        seen: set[str] = set()
        for ep in self.catalog.ready_endpoints(ns, name):
            if self._ep_label(ep) != label or ep.address in seen:
                continue
            seen.add(ep.address)
            found = True
            want = QTYPE.AAAA if ep.is_ipv6 else QTYPE.A
            if qtype in (want, QTYPE.ANY):
                reply.add_answer(self._addr_rr(qname, ep.address))
        return found

    def _srv_targets(self, svc: dict, ns: str, name: str, port_name: str | None, proto: str | None):
        """(target fqdn, port, address) per matching named port."""
        out = []
        ports = [p for p in (svc.get("spec") or {}).get("ports") or [] if p.get("name")]
        ports = [p for p in ports if (port_name is None or p["name"].lower() == port_name)
                 and (proto is None or (p.get("protocol") or "TCP").lower() == proto)]
        if not ports:
            return out
        if is_headless(svc):
            for ep in self.catalog.ready_endpoints(ns, name):
                for p in ports:
                    found = ep.ports.get(p["name"])
                    if found is None:
                        continue
                    target = f"{self._ep_label(ep)}.{name}.{ns}.svc.{self.domain}."
                    out.append((target, found[0], ep.address))
        else:
            ips = cluster_ips(svc)
            for p in ports:
                out.append((self.svc_fqdn(name, ns), int(p["port"]), ips[0] if ips else None))
        return out

    def _srv_exists(self, svc: dict, ns: str, name: str, port_name: str, proto: str) -> bool:
        return bool(self._srv_targets(svc, ns, name, port_name, proto))

    def _srv(self, svc: dict, ns: str, name: str, port_name: str | None, proto: str | None, qname: DNSLabel,
             reply: DNSRecord) -> bool:
        targets = self._srv_targets(svc, ns, name, port_name, proto)
        if not targets:
            return port_name is None  # the Service name exists even without named ports
        weight = max(1, 100 // len(targets))
        extra: dict[str, str] = {}
        for target, port, address in targets:
            reply.add_answer(RR(qname, QTYPE.SRV, ttl=self.ttl, rdata=SRV(0, weight, port, target)))
            if address:
                extra.setdefault(target + address, (target, address))
        for target, address in extra.values():
            reply.add_ar(self._addr_rr(target, address))
        return True

    def _reverse(self, qname: str) -> str | None:
        address = _reverse_address(qname)
        if address is None:
            return None
        owner = self.catalog.by_ip.get(address)
        if owner is not None:
            return self.svc_fqdn(owner[1], owner[0])
        for (ns, name), _svc in self.catalog.services.items():
            if not is_headless(_svc):
                continue
            for ep in self.catalog.ready_endpoints(ns, name):
                if ep.address == address and ep.hostname:
                    return f"{ep.hostname}.{name}.{ns}.svc.{self.domain}."
        return None


def _reverse_address(qname: str) -> str | None:
    try:
        if qname.endswith(".in-addr.arpa"):
            parts = qname[: -len(".in-addr.arpa")].split(".")
            if len(parts) != 4:
                return None
            return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        if qname.endswith(".ip6.arpa"):
            nibbles = qname[: -len(".ip6.arpa")].split(".")
            if len(nibbles) != 32:
                return None
            hexa = "".join(reversed(nibbles))
            return str(ipaddress.IPv6Address(int(hexa, 16)))
    except ValueError:
        return None
    return None
