"""What DNS and the ingress controller read: Services and their endpoints, kept current by informers.

`ServiceCatalog` holds Services, EndpointSlices (by service), Endpoints and Namespaces, fed either by
informer handlers (`attach(factory)`) or directly (`apply(kind, obj)` / `remove(kind, obj)`, which unit tests
and benchmarks use).  `endpoints(ns, svc)` gives one `Endpoint` per address, from the Service's
EndpointSlices when it has any, else from its Endpoints object (as CoreDNS and kube-proxy prefer slices).
Every change bumps `version` and calls the listeners with the (namespace, service) it touched, or None when
it may touch anything (a namespace came or went); DNS drops the cached answers that depend on it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubelite.api.resources import Registry
from kubelite.client import SharedInformerFactory

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

_R = Registry()
SERVICES = _R.get("", "v1", "services")
ENDPOINTS = _R.get("", "v1", "endpoints")
NAMESPACES = _R.get("", "v1", "namespaces")
NODES = _R.get("", "v1", "nodes")
SECRETS = _R.get("", "v1", "secrets")
ENDPOINTSLICES = _R.get("discovery.k8s.io", "v1", "endpointslices")
INGRESSES = _R.get("networking.k8s.io", "v1", "ingresses")
INGRESSCLASSES = _R.get("networking.k8s.io", "v1", "ingressclasses")


@dataclass(frozen=True)
class Endpoint:
    address: str
    ready: bool = True
    hostname: str = ""
    node_name: str = ""
    # port name → (port, protocol) as the slice / subset lists them
    ports: dict[str, tuple[int, str]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.address


def _ns_name(obj: Obj) -> tuple[str, str]:
    md = obj.get("metadata") or {}
    return md.get("namespace") or "", md.get("name") or ""


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def cluster_ips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [ip for ip in ips if ip and ip != "None"]


def _slice_endpoints(sl: Obj) -> list[Endpoint]:
    if sl.get("addressType") not in ("IPv4", "IPv6"):
        return []
    ports = {(p.get("name") or ""): (int(p["port"]), p.get("protocol") or "TCP")
             for p in sl.get("ports") or [] if p.get("port") is not None}
    out = []
    for ep in sl.get("endpoints") or []:
        cond = ep.get("conditions") or {}
        ready = cond.get("ready") is not False  # unset means ready, as the API documents
        for addr in ep.get("addresses") or []:
            out.append(Endpoint(addr, ready, ep.get("hostname") or "", ep.get("nodeName") or "", ports))
    return out


def _legacy_endpoints(eps: Obj) -> list[Endpoint]:
    out = []
    for subset in eps.get("subsets") or []:
        ports = {(p.get("name") or ""): (int(p["port"]), p.get("protocol") or "TCP")
                 for p in subset.get("ports") or [] if p.get("port") is not None}
        for ready, key in ((True, "addresses"), (False, "notReadyAddresses")):
            for a in subset.get(key) or []:
                if a.get("ip"):
                    out.append(Endpoint(a["ip"], ready, a.get("hostname") or "", a.get("nodeName") or "", ports))
    return out


class ServiceCatalog:
    """Services, their endpoints and the namespaces, indexed for DNS and ingress look-ups."""

    def __init__(self) -> None:
        self.services: dict[tuple[str, str], Obj] = {}
        self.slices: dict[tuple[str, str], dict[str, Obj]] = {}  # (ns, svc) → slice name → slice
        self.legacy: dict[tuple[str, str], Obj] = {}
        self.namespaces: set[str] = set()
        self.by_ip: dict[str, tuple[str, str]] = {}
        self.version = 0
        self.listeners: list[Callable[[tuple[str, str] | None], Any]] = []
        self._ep_cache: dict[tuple[str, str], list[Endpoint]] = {}
        self._slice_owner: dict[tuple[str, str], tuple[str, str]] = {}  # (ns, slice) → (ns, svc)
        self.track_namespaces = False  # when no namespace informer feeds us, every namespace "exists"

    # -- feeding ----------------------------------------------------------------------------------------

    def attach(self, factory: SharedInformerFactory, *, namespaces: bool = True) -> list:
        """Register handlers on the factory's informers; returns the informers (to wait for their sync)."""
        infs = []
        for kind, rt in (("Service", SERVICES), ("EndpointSlice", ENDPOINTSLICES), ("Endpoints", ENDPOINTS)):
            inf = factory.informer(rt)
            inf.add_handler(lambda o, k=kind: self.apply(k, o), lambda _old, o, k=kind: self.apply(k, o),
                            lambda o, k=kind: self.remove(k, o))
            infs.append(inf)
        if namespaces:
            self.track_namespaces = True
            inf = factory.informer(NAMESPACES)
            inf.add_handler(lambda o: self.apply("Namespace", o), lambda _old, o: self.apply("Namespace", o),
                            lambda o: self.remove("Namespace", o))
            infs.append(inf)
        return infs

    def apply(self, kind: str, obj: Obj) -> None:
        ns, name = _ns_name(obj)
        if kind == "Service":
            old = self.services.get((ns, name))
            if old is not None:
                for ip in cluster_ips(old):
                    self.by_ip.pop(ip, None)
            self.services[(ns, name)] = obj
            for ip in cluster_ips(obj):
                self.by_ip[ip] = (ns, name)
            changed: tuple[str, str] | None = (ns, name)
        elif kind == "EndpointSlice":
            svc = ((obj.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
            prev = self._slice_owner.get((ns, name))
            if prev is not None and prev != (ns, svc):
                self._drop_slice(prev, name)
                self._changed(prev)
            changed = (ns, svc or "")
            if not svc:
                self._slice_owner.pop((ns, name), None)
            else:
                self.slices.setdefault((ns, svc), {})[name] = obj
                self._slice_owner[(ns, name)] = (ns, svc)
                self._ep_cache.pop((ns, svc), None)
        elif kind == "Endpoints":
            self.legacy[(ns, name)] = obj
            self._ep_cache.pop((ns, name), None)
            changed = (ns, name)
        else:
            self.namespaces.add(name)
            changed = None
        self._changed(changed)

    def remove(self, kind: str, obj: Obj) -> None:
        ns, name = _ns_name(obj)
        changed: tuple[str, str] | None = (ns, name)
        if kind == "Service":
            old = self.services.pop((ns, name), None)
            for ip in cluster_ips(old or {}):
                if self.by_ip.get(ip) == (ns, name):
                    del self.by_ip[ip]
        elif kind == "EndpointSlice":
            owner = self._slice_owner.pop((ns, name), None)
            if owner is not None:
                self._drop_slice(owner, name)
            changed = owner
        elif kind == "Endpoints":
            self.legacy.pop((ns, name), None)
            self._ep_cache.pop((ns, name), None)
        elif kind == "Namespace":
            self.namespaces.discard(name)
            changed = None
        self._changed(changed)

    def _drop_slice(self, owner: tuple[str, str], name: str) -> None:
        group = self.slices.get(owner)
        if group is not None:
            group.pop(name, None)
            if not group:
                del self.slices[owner]
        self._ep_cache.pop(owner, None)

    def _changed(self, key: tuple[str, str] | None) -> None:
        self.version += 1
        for fn in self.listeners:
            fn(key)

    # -- reading ----------------------------------------------------------------------------------------

    def service(self, namespace: str, name: str) -> Obj | None:
        return self.services.get((namespace, name))

    def namespace_exists(self, namespace: str) -> bool:
        if not self.track_namespaces:
            return True
        return namespace in self.namespaces

    def endpoints(self, namespace: str, name: str) -> list[Endpoint]:
        """Every endpoint address of the Service (ready or not), de-duplicated across slices."""
        key = (namespace, name)
        cached = self._ep_cache.get(key)
        if cached is not None:
            return cached
        group = self.slices.get(key)
        if group:
            found: list[Endpoint] = []
            seen: set[tuple[str, int]] = set()
            for sl_name in sorted(group):
                for ep in _slice_endpoints(group[sl_name]):
                    # one address may sit in several slices (one per port set): keep each (address, ports) once
                    mark = (ep.address, hash(tuple(sorted(ep.ports.items()))))
                    if mark not in seen:
                        seen.add(mark)
                        found.append(ep)
        elif key in self.legacy:
            found = _legacy_endpoints(self.legacy[key])
        else:
            found = []
        self._ep_cache[key] = found
        return found

    def ready_endpoints(self, namespace: str, name: str) -> list[Endpoint]:
        return [ep for ep in self.endpoints(namespace, name) if ep.ready]

    def ready_addresses(self, namespace: str, name: str) -> list[str]:
        """Ready addresses, each once, in a stable order."""
        seen: dict[str, None] = {}
        for ep in self.ready_endpoints(namespace, name):
            seen.setdefault(ep.address, None)
        return list(seen)


def service_port(svc: Obj, port: int | str) -> Obj | None:
    """The Service's port entry named `port` (str) or numbered `port` (int)."""
    for p in (svc.get("spec") or {}).get("ports") or []:
        if isinstance(port, str) and not port.isdigit():
            if p.get("name") == port:
                return p
        elif int(p.get("port", -1)) == int(port):
            return p
    return None


def endpoint_port(svc_port: Obj, ep: Endpoint) -> int | None:
    """The port on `ep` serving `svc_port`: the endpoint port of the same name (slices name them after the
    Service port); a numeric targetPort when the endpoint lists no ports."""
    found = ep.ports.get(svc_port.get("name") or "")
    if found is not None:
        return found[0]
    if len(ep.ports) == 1 and not svc_port.get("name"):
        return next(iter(ep.ports.values()))[0]
    target = svc_port.get("targetPort")
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    return None


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
