"""kube-proxy's iptables mode as pure functions: Services + EndpointSlices → an `iptables-restore` payload.

The layout follows upstream's `pkg/proxy/iptables` (v1.33) chain for chain, so that what one knows from a
kubeadm node (`iptables-save | grep KUBE-`) holds here:

nat table
    PREROUTING, OUTPUT → KUBE-SERVICES; POSTROUTING → KUBE-POSTROUTING
    KUBE-SERVICES      one rule per cluster IP / external IP / load-balancer IP → KUBE-SVC-… / KUBE-EXT-…,
                       last rule `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`
    KUBE-NODEPORTS     one rule per node port → KUBE-EXT-…
    KUBE-SVC-<h>       endpoints for "Cluster" policy: masquerade off-cluster sources, then one
                       `statistic --mode random --probability 1/(n-i)` jump per endpoint (ClientIP affinity:
                       `recent --rcheck` jumps first)
    KUBE-SVL-<h>       the same over this node's endpoints ("Local" internal/external traffic policy)
    KUBE-EXT-<h>       external destinations: masquerade (Cluster policy) or short-circuit pod/host traffic
                       (Local policy), then the policy chain
    KUBE-FW-<h>        loadBalancerSourceRanges
    KUBE-SEP-<h>       one endpoint: hairpin masquerade (`-s <ep>`), DNAT
    KUBE-MARK-MASQ     `MARK --or-mark 0x4000`; KUBE-POSTROUTING masquerades what carries it
filter table
    KUBE-SERVICES / KUBE-EXTERNAL-SERVICES   REJECT (no endpoints) / DROP (no local endpoints)
    KUBE-FORWARD, KUBE-NODEPORTS (health-check ports), KUBE-PROXY-FIREWALL, KUBE-FIREWALL (localnet guard)

Chain names hash as upstream: `KUBE-SVC-` + base32(sha256(servicePortName + protocol))[:16], where the
servicePortName is "namespace/name:portName" and the protocol lower case; `KUBE-SEP-` hashes the
"ip:port" of the endpoint too. `prefix` replaces "KUBE-" everywhere (tests use their own).

Only IPv4 is programmed (the cluster is single-stack IPv4).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_SECONDS = 10800
NODEPORTS_COMMENT = "kubernetes service nodeports; NOTE: this must be the last rule in this chain"

ServicePortKey = tuple[str, str, str, str]  # namespace, service name, port name, protocol (upper case)


def port_proto_hash(service_port_name: str, protocol: str) -> str:
    digest = hashlib.sha256((service_port_name + protocol).encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def _is_ipv4(value: Any) -> bool:
    try:
        return isinstance(value, str) and ipaddress.ip_address(value).version == 4
    except ValueError:
        return False


def _is_ipv4_cidr(value: Any) -> bool:
    try:
        return isinstance(value, str) and ipaddress.ip_network(value, strict=False).version == 4
    except ValueError:
        return False


@dataclass(frozen=True)
class Names:
    """Every chain name the proxy and the policy enforcer use, under one prefix ("KUBE-" as upstream)."""

    prefix: str = "KUBE-"

    def __post_init__(self) -> None:
        # iptables chain names hold at most 28 characters; the longest generated one is prefix + "SVC-" + 16
        if len(self.prefix) + 4 + 16 > 28 or not self.prefix:
            raise ValueError(f"chain prefix {self.prefix!r} is too long")

    def _n(self, s: str) -> str:
        return self.prefix + s

    @property
    def services(self) -> str:
        return self._n("SERVICES")

    @property
    def external_services(self) -> str:
        return self._n("EXTERNAL-SERVICES")

    @property
    def nodeports(self) -> str:
        return self._n("NODEPORTS")

    @property
    def postrouting(self) -> str:
        return self._n("POSTROUTING")

    @property
    def mark_masq(self) -> str:
        return self._n("MARK-MASQ")

    @property
    def forward(self) -> str:
        return self._n("FORWARD")

    @property
    def proxy_firewall(self) -> str:
        return self._n("PROXY-FIREWALL")

    @property
    def firewall(self) -> str:
        return self._n("FIREWALL")

    def svc(self, spn: str, proto: str) -> str:
        return self._n("SVC-") + port_proto_hash(spn, proto)

    def svl(self, spn: str, proto: str) -> str:
        return self._n("SVL-") + port_proto_hash(spn, proto)

    def ext(self, spn: str, proto: str) -> str:
        return self._n("EXT-") + port_proto_hash(spn, proto)

    def fw(self, spn: str, proto: str) -> str:
        return self._n("FW-") + port_proto_hash(spn, proto)

    def sep(self, spn: str, proto: str, endpoint: str) -> str:
        return self._n("SEP-") + port_proto_hash(spn, proto + endpoint)

    @property
    def service_chain_prefixes(self) -> tuple[str, ...]:
        return tuple(self._n(p) for p in ("SVC-", "SVL-", "EXT-", "FW-", "SEP-"))

    def is_service_chain(self, chain: str) -> bool:
        return chain.startswith(self.service_chain_prefixes)

    @property
    def nat_top_chains(self) -> tuple[str, ...]:
        return (self.services, self.nodeports, self.postrouting, self.mark_masq)

    @property
    def filter_top_chains(self) -> tuple[str, ...]:
        return (self.services, self.external_services, self.forward, self.nodeports, self.proxy_firewall)


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service as the proxy sees it (upstream's `servicePortInfo`)."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # "TCP" | "UDP" | "SCTP"
    port: int
    cluster_ip: str
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    session_affinity_seconds: int | None = None  # None: no ClientIP affinity
    external_policy_local: bool = False
    internal_policy_local: bool = False
    health_check_node_port: int = 0

    @property
    def key(self) -> ServicePortKey:
        return (self.namespace, self.name, self.port_name, self.protocol)

    @property
    def service_key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def name_string(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name}"

    @property
    def proto(self) -> str:
        return self.protocol.lower()

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_policy_local or (self.externally_accessible and not self.external_policy_local)

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (self.externally_accessible and self.external_policy_local)


def service_ports(svc: dict[str, Any]) -> list[ServicePort]:
    """The ServicePorts kube-proxy programs for `svc`; none for headless, ExternalName or IP-less Services."""
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    stype = spec.get("type") or "ClusterIP"
    if stype == "ExternalName":
        return []
    candidates = list(spec.get("clusterIPs") or []) + [spec.get("clusterIP")]
    cluster_ip = next((ip for ip in candidates if _is_ipv4(ip)), None)
    if cluster_ip is None:
        return []
    affinity = None
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
    external_ips = tuple(ip for ip in spec.get("externalIPs") or [] if _is_ipv4(ip))
    lb_ips: tuple[str, ...] = ()
    lb_ranges: tuple[str, ...] = ()
    if stype == "LoadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        # ipMode Proxy: the load balancer itself delivers to the node, so the VIP must not be captured here
        lb_ips = tuple(i["ip"] for i in ingress if _is_ipv4(i.get("ip")) and i.get("ipMode") != "Proxy")
        lb_ranges = tuple(str(ipaddress.ip_network(r.strip(), strict=False))
                          for r in spec.get("loadBalancerSourceRanges") or [] if _is_ipv4_cidr(r.strip()))
    ext_local = stype in ("NodePort", "LoadBalancer") and spec.get("externalTrafficPolicy") == "Local"
    int_local = spec.get("internalTrafficPolicy") == "Local"
    hc = int(spec.get("healthCheckNodePort") or 0) if ext_local and stype == "LoadBalancer" else 0
    out = []
    for p in spec.get("ports") or []:
        out.append(ServicePort(
            namespace=meta.get("namespace") or "default", name=meta.get("name") or "",
            port_name=p.get("name") or "", protocol=(p.get("protocol") or "TCP").upper(), port=int(p["port"]),
            cluster_ip=cluster_ip,
            node_port=int(p.get("nodePort") or 0) if stype in ("NodePort", "LoadBalancer") else 0,
            external_ips=external_ips, load_balancer_ips=lb_ips, load_balancer_source_ranges=lb_ranges,
            session_affinity_seconds=affinity, external_policy_local=ext_local, internal_policy_local=int_local,
            health_check_node_port=hc))
    return out


def slice_service(slice_: dict[str, Any]) -> tuple[str, str] | None:
    """(namespace, service name) an EndpointSlice belongs to, from its `kubernetes.io/service-name` label."""
    meta = slice_.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not name:
        return None
    return (meta.get("namespace") or "default", name)


def slice_endpoints(slices: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[Endpoint]]:
    """Endpoints of one Service's slices by (port name, protocol), de-duplicated on ip:port (IPv4 only)."""
    out: dict[tuple[str, str], dict[str, Endpoint]] = {}
    for sl in slices:
        if (sl.get("addressType") or "IPv4") != "IPv4":
            continue
        for port in sl.get("ports") or []:
            if port.get("port") is None:
                continue
            pkey = (port.get("name") or "", (port.get("protocol") or "TCP").upper())
            bucket = out.setdefault(pkey, {})
            for ep in sl.get("endpoints") or []:
                cond = ep.get("conditions") or {}
                ready = cond.get("ready") is not False  # nil means ready (EndpointConditions doc)
                serving = cond["serving"] if cond.get("serving") is not None else ready
                terminating = bool(cond.get("terminating"))
                for ip in ep.get("addresses") or []:
                    if not _is_ipv4(ip):
                        continue
                    e = Endpoint(ip, int(port["port"]), ready, bool(serving), terminating, ep.get("nodeName"))
                    old = bucket.get(str(e))
                    if old is None or (e.ready and not old.ready):
                        bucket[str(e)] = e
    return {k: sorted(v.values(), key=lambda e: (ipaddress.ip_address(e.ip), e.port)) for k, v in out.items()}


def categorize_endpoints(endpoints: Sequence[Endpoint], sp: ServicePort, node_name: str
                         ) -> tuple[list[Endpoint], list[Endpoint], list[Endpoint], bool]:
    """(cluster, local, all locally reachable, has any usable endpoint), upstream's `CategorizeEndpoints`.

    Ready endpoints are used; when there are none, serving-and-terminating ones stand in for them."""
    cluster: list[Endpoint] = []
    local: list[Endpoint] = []
    has_any = False
    if sp.uses_cluster_endpoints:
        cluster = [e for e in endpoints if e.ready]
        if not cluster:
            cluster = [e for e in endpoints if e.serving and e.terminating]
        has_any = bool(cluster)
    if not sp.uses_local_endpoints:
        return cluster, [], cluster, has_any
    local_ready = local_term = False
    for e in endpoints:
        if e.ready:
            has_any = True
            local_ready = local_ready or e.node_name == node_name
        elif e.serving and e.terminating:
            has_any = True
            local_term = local_term or e.node_name == node_name
    if local_ready:
        local = [e for e in endpoints if e.ready and e.node_name == node_name]
    elif local_term:
        local = [e for e in endpoints if e.serving and e.terminating and e.node_name == node_name]
    if not sp.uses_cluster_endpoints:
        return [], local, local, has_any
    seen = {str(e) for e in cluster}
    return cluster, local, cluster + [e for e in local if str(e) not in seen], has_any


@dataclass
class RuleOptions:
    node_name: str = ""
    cluster_cidr: str | None = None  # the pod CIDR: traffic from elsewhere to a cluster IP is masqueraded
    masquerade_all: bool = False
    masquerade_mark: str = "0x4000"
    localhost_nodeports: bool = True
    nodeport_addresses: tuple[str, ...] = ()  # node IPs serving node ports; empty: every local address
    prefix: str = "KUBE-"
    large_cluster_endpoints: int = 1000  # past this many endpoints, endpoint rules drop their comments
    random_fully: bool = True
    drop_invalid: bool = True  # KUBE-FORWARD drops ctstate INVALID (nf_conntrack_tcp_be_liberal unset)


@dataclass
class RuleSet:
    """The generated tables; `payload()` is the `iptables-restore --noflush` input."""

    filter_chains: list[str] = field(default_factory=list)
    filter_rules: list[str] = field(default_factory=list)
    nat_chains: list[str] = field(default_factory=list)
    nat_rules: list[str] = field(default_factory=list)
    active_nat_chains: set[str] = field(default_factory=set)
    deleted_chains: list[str] = field(default_factory=list)
    # the endpoints each service port is programmed with (for conntrack clean-up of stale UDP flows)
    programmed: dict[ServicePortKey, list[Endpoint]] = field(default_factory=dict)
    skipped_rules: int = 0
    jump_fixes: dict[str, list[str]] = field(default_factory=dict)  # see `jump_fixes`

    def payload(self) -> str:
        parts = ["*filter", *self.filter_chains, *self.filter_rules, *self.jump_fixes.get("filter", ()), "COMMIT",
                 "*nat", *self.nat_chains, *self.nat_rules, *self.jump_fixes.get("nat", ()), "COMMIT", ""]
        return "\n".join(parts)

    @property
    def nat_rule_count(self) -> int:
        return sum(1 for r in self.nat_rules if r.startswith("-A "))


def _c(text: str) -> str:
    """A `--comment` argument as upstream writes it: quoted when it holds a space."""
    return f'"{text}"' if " " in text else text


def _chain_line(chain: str) -> str:
    return f":{chain} - [0:0]"


def build_rules(ports: Iterable[ServicePort], endpoints: Mapping[ServicePortKey, Sequence[Endpoint]],
                opts: RuleOptions | None = None, *, changed: Container[tuple[str, str]] | None = None,
                existing_nat_chains: Iterable[str] = ()) -> RuleSet:
    """Generate both tables for every service port (`syncProxyRules`).

    `endpoints` maps `ServicePort.key` to that port's endpoints (see `slice_endpoints`). With `changed`
    (a partial sync) the per-service chains of services not in it are left out of the payload (they stay as
    they are in the kernel) while the top-level chains are written whole. Chains in `existing_nat_chains`
    that are service chains and no longer used are flushed and deleted."""
    opts = opts or RuleOptions()
    n = Names(opts.prefix)
    mark = opts.masquerade_mark
    rs = RuleSet()
    fc, fr, nc, nr = rs.filter_chains, rs.filter_rules, rs.nat_chains, rs.nat_rules
    for ch in n.filter_top_chains:
        fc.append(_chain_line(ch))
    for ch in n.nat_top_chains:
        nc.append(_chain_line(ch))
    nr.append(f"-A {n.postrouting} -m mark ! --mark {mark}/{mark} -j RETURN")
    # clear the mark so that a packet re-traversing the stack is not masqueraded twice
    nr.append(f"-A {n.postrouting} -j MARK --xor-mark {mark}")
    masquerade_at = len(nr)
    nr.append(f'-A {n.postrouting} -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE'
              + (" --random-fully" if opts.random_fully else ""))
    nr.append(f"-A {n.mark_masq} -j MARK --or-mark {mark}")
    if opts.localhost_nodeports:
        # route_localnet opens 127.0.0.1 to other hosts (issue 90259): only DNATed flows may reach it
        fc.append(_chain_line(n.firewall))
        fr.append(f'-A {n.firewall} -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 '
                  f"! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")

    ports = sorted(ports, key=lambda sp: (sp.name_string, sp.protocol))
    total_endpoints = sum(len(endpoints.get(sp.key, ())) for sp in ports)
    large = total_endpoints > opts.large_cluster_endpoints
    skipped_chains: list[str] = []
    skipped_rules: list[str] = []
    local_source = [f"-s {opts.cluster_cidr}"] if opts.cluster_cidr else []
    not_local_source = [f"! -s {opts.cluster_cidr}"] if opts.cluster_cidr else []

    for sp in ports:
        proto, spn = sp.proto, sp.name_string
        eps = endpoints.get(sp.key, ())
        cluster_eps, local_eps, reachable, has_endpoints = categorize_endpoints(eps, sp, opts.node_name)
        cluster_chain, local_chain = n.svc(spn, proto), n.svl(spn, proto)
        uses_cluster_chain = bool(cluster_eps) and sp.uses_cluster_endpoints
        uses_local_chain = bool(local_eps) and sp.uses_local_endpoints
        internal_chain, has_internal = cluster_chain, has_endpoints
        if sp.internal_policy_local:
            internal_chain, has_internal = local_chain, bool(local_eps) and has_endpoints
        external_policy_chain, has_external = cluster_chain, has_endpoints
        if sp.external_policy_local:
            external_policy_chain, has_external = local_chain, bool(local_eps) and has_endpoints
        ext_chain = n.ext(spn, proto)
        uses_ext_chain = has_endpoints and sp.externally_accessible
        fw_chain = n.fw(spn, proto)
        uses_fw = has_endpoints and bool(sp.load_balancer_ips) and bool(sp.load_balancer_source_ranges)
        lb_chain = fw_chain if uses_fw else ext_chain
        if not has_endpoints:
            int_target = ext_target = "REJECT"
            int_comment = ext_comment = f"{spn} has no endpoints"
        else:
            int_target = ext_target = ""
            int_comment = ext_comment = ""
            if not has_internal:
                int_target, int_comment = "DROP", f"{spn} has no local endpoints"
            if not has_external:
                ext_target, ext_comment = "DROP", f"{spn} has no local endpoints"
        match = f"-m {proto} -p {proto}"
        rs.programmed[sp.key] = list(reachable)

        vip = f"-d {sp.cluster_ip} --dport {sp.port}"
        if has_internal:
            nr.append(f"-A {n.services} -m comment --comment {_c(spn + ' cluster IP')} {match} {vip} -j {internal_chain}")
        else:
            fr.append(f"-A {n.services} -m comment --comment {_c(int_comment)} {match} {vip} -j {int_target}")
        for ip in sp.external_ips:
            dst = f"-d {ip} --dport {sp.port}"
            if has_endpoints:
                nr.append(f"-A {n.services} -m comment --comment {_c(spn + ' external IP')} {match} {dst} -j {ext_chain}")
            if not has_external:
                fr.append(f"-A {n.external_services} -m comment --comment {_c(ext_comment)} {match} {dst} -j {ext_target}")
        for ip in sp.load_balancer_ips:
            dst = f"-d {ip} --dport {sp.port}"
            if has_endpoints:
                nr.append(f"-A {n.services} -m comment --comment {_c(spn + ' loadbalancer IP')} {match} {dst} -j {lb_chain}")
            if uses_fw:
                fr.append(f"-A {n.proxy_firewall} -m comment --comment {_c(f'{spn} traffic not accepted by {fw_chain}')} "
                          f"{match} {dst} -j DROP")
        if not has_external:
            for ip in sp.load_balancer_ips:
                fr.append(f"-A {n.external_services} -m comment --comment {_c(ext_comment)} {match} "
                          f"-d {ip} --dport {sp.port} -j {ext_target}")
        if sp.node_port:
            if has_endpoints:
                nr.append(f"-A {n.nodeports} -m comment --comment {_c(spn)} {match} --dport {sp.node_port} -j {ext_chain}")
            if not has_external:
                fr.append(f"-A {n.external_services} -m comment --comment {_c(ext_comment)} -m addrtype --dst-type LOCAL "
                          f"{match} --dport {sp.node_port} -j {ext_target}")
        if sp.health_check_node_port:
            fr.append(f"-A {n.nodeports} -m comment --comment {_c(spn + ' health check node port')} -m tcp -p tcp "
                      f"--dport {sp.health_check_node_port} -j ACCEPT")

        chains_out, rules_out = nc, nr
        if changed is not None and sp.service_key not in changed:
            chains_out, rules_out = skipped_chains, skipped_rules

        if has_internal:
            args = f"-m comment --comment {_c(spn + ' cluster IP')} {match} {vip}"
            if opts.masquerade_all:
                rules_out.append(f"-A {internal_chain} {args} -j {n.mark_masq}")
            elif not_local_source:
                # off-cluster clients may route the service range to any node; the reply must come back here
                for cond in not_local_source:
                    rules_out.append(f"-A {internal_chain} {args} {cond} -j {n.mark_masq}")
        if uses_ext_chain:
            chains_out.append(_chain_line(ext_chain))
            rs.active_nat_chains.add(ext_chain)
            if not sp.external_policy_local:
                rules_out.append(f"-A {ext_chain} -m comment --comment {_c(f'masquerade traffic for {spn} external destinations')} "
                                 f"-j {n.mark_masq}")
            else:
                for cond in local_source:
                    rules_out.append(f"-A {ext_chain} -m comment --comment {_c(f'pod traffic for {spn} external destinations')} "
                                     f"{cond} -j {cluster_chain}")
                rules_out.append(f"-A {ext_chain} -m comment --comment "
                                 f"{_c(f'masquerade LOCAL traffic for {spn} external destinations')} "
                                 f"-m addrtype --src-type LOCAL -j {n.mark_masq}")
                rules_out.append(f"-A {ext_chain} -m comment --comment "
                                 f"{_c(f'route LOCAL traffic for {spn} external destinations')} "
                                 f"-m addrtype --src-type LOCAL -j {cluster_chain}")
            if has_external:
                rules_out.append(f"-A {ext_chain} -j {external_policy_chain}")
        if uses_fw:
            chains_out.append(_chain_line(fw_chain))
            rs.active_nat_chains.add(fw_chain)
            head = f"-A {fw_chain} -m comment --comment {_c(spn + ' loadbalancer IP')}"
            for cidr in sp.load_balancer_source_ranges:
                rules_out.append(f"{head} -s {cidr} -j {ext_chain}")
            rules_out.append(f"-A {fw_chain} -m comment --comment "
                             f"{_c(f'other traffic to {spn} will be dropped by {n.proxy_firewall}')}")
        if uses_cluster_chain:
            chains_out.append(_chain_line(cluster_chain))
            rs.active_nat_chains.add(cluster_chain)
            _endpoint_jumps(rules_out, n, sp, cluster_chain, cluster_eps, large)
        if uses_local_chain:
            chains_out.append(_chain_line(local_chain))
            rs.active_nat_chains.add(local_chain)
            _endpoint_jumps(rules_out, n, sp, local_chain, local_eps, large)
        for ep in reachable:
            sep = n.sep(spn, proto, str(ep))
            chains_out.append(_chain_line(sep))
            rs.active_nat_chains.add(sep)
            head = f"-A {sep}" + ("" if large else f" -m comment --comment {_c(spn)}")
            # a pod reaching itself through the VIP: without SNAT the reply would bypass the DNAT
            rules_out.append(f"{head} -s {ep.ip} -j {n.mark_masq}")
            recent = f" -m recent --name {sep} --set" if sp.session_affinity_seconds is not None else ""
            rules_out.append(f"{head}{recent} {match} -j DNAT --to-destination {ep}")

    if any(ipaddress.ip_address(ep.ip).is_loopback for eps in rs.programmed.values() for ep in eps):
        # an endpoint on 127.0.0.0/8 (a host add-on bound to loopback, e.g. the dashboard): masquerading a
        # loopback client picks the node's address as source, and that SYN to 127.0.0.1 is never answered
        nr.insert(masquerade_at, f'-A {n.postrouting} -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment '
                                 f'"loopback client of a loopback endpoint: no SNAT" -j RETURN')
    rs.skipped_rules = len(skipped_rules)
    for chain in sorted(set(existing_nat_chains) - rs.active_nat_chains):
        if n.is_service_chain(chain):
            nc.append(_chain_line(chain))  # declaring flushes it, so the -X below succeeds
            nr.append(f"-X {chain}")
            rs.deleted_chains.append(chain)

    if not opts.nodeport_addresses:
        dest = "-m addrtype --dst-type LOCAL" + ("" if opts.localhost_nodeports else " ! -d 127.0.0.0/8")
        nr.append(f'-A {n.services} -m comment --comment "{NODEPORTS_COMMENT}" {dest} -j {n.nodeports}')
    else:
        for ip in opts.nodeport_addresses:
            if ip.startswith("127.") and not opts.localhost_nodeports:
                continue
            nr.append(f'-A {n.services} -m comment --comment "{NODEPORTS_COMMENT}" -d {ip} -j {n.nodeports}')

    if opts.drop_invalid:
        fr.append(f"-A {n.forward} -m conntrack --ctstate INVALID -j DROP")
    fr.append(f'-A {n.forward} -m comment --comment "kubernetes forwarding rules" -m mark --mark {mark}/{mark} -j ACCEPT')
    fr.append(f'-A {n.forward} -m comment --comment "kubernetes forwarding conntrack rule" '
              f"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    return rs


def _probability(n: int) -> str:
    return f"{1.0 / n:0.10f}"


def _endpoint_jumps(out: list[str], n: Names, sp: ServicePort, chain: str, eps: Sequence[Endpoint],
                    large: bool) -> None:
    spn, proto = sp.name_string, sp.proto
    if sp.session_affinity_seconds is not None:
        for ep in eps:
            sep = n.sep(spn, proto, str(ep))
            comment = "" if large else f" -m comment --comment {_c(f'{spn} -> {ep}')}"
            out.append(f"-A {chain}{comment} -m recent --name {sep} --rcheck --seconds {sp.session_affinity_seconds} "
                       f"--reap -j {sep}")
    count = len(eps)
    for i, ep in enumerate(eps):
        sep = n.sep(spn, proto, str(ep))
        comment = "" if large else f" -m comment --comment {_c(f'{spn} -> {ep}')}"
        stat = f" -m statistic --mode random --probability {_probability(count - i)}" if i < count - 1 else ""
        out.append(f"-A {chain}{comment}{stat} -j {sep}")


@dataclass(frozen=True)
class JumpRule:
    """A rule in a built-in chain leading to one of ours (ensured one by one, never via restore)."""

    table: str
    source: str
    target: str
    comment: str = ""
    extra: tuple[str, ...] = ()

    def args(self) -> list[str]:
        out = list(self.extra)
        if self.comment:
            out += ["-m", "comment", "--comment", self.comment]
        return out + ["-j", self.target]

    def restore_spec(self) -> str:
        """The rule as an `iptables-restore` line after `-I <chain> 1 ` (comment quoted)."""
        out = " ".join(self.extra)
        if self.comment:
            out += f" -m comment --comment {_c(self.comment)}"
        return f"{out} -j {self.target}".strip()


def jump_fixes(saved: dict[str, tuple[list[str], list[str]]], rules: Iterable[JumpRule], *,
               first: bool = False) -> dict[str, list[str]]:
    """Restore lines per table inserting every jump rule missing from `saved` (a `parse_save` result) at the
    top of its chain, as upstream prepends. With `first`, a jump that exists below another rule is moved up.

    Declaring a built-in chain would flush it, so these lines go into a payload that does not declare it:
    `-I`/`-D` only touch the rule named."""
    out: dict[str, list[str]] = {}
    for r in rules:
        lines = [ln for ln in saved.get(r.table, ([], []))[1] if ln.startswith(f"-A {r.source} ")]
        found = [i for i, ln in enumerate(lines) if rule_target(ln) == r.target and r.comment in ln]
        if found and (not first or found[0] == 0):
            continue
        fix = out.setdefault(r.table, [])
        if found:
            fix.append("-D" + lines[found[0]][2:])
        fix.append(f"-I {r.source} 1 {r.restore_spec()}")
    return out


def jump_rules(prefix: str = "KUBE-", localhost_nodeports: bool = True) -> list[JumpRule]:
    """Upstream's `iptablesJumpChains` (+ the kubelet's KUBE-FIREWALL jumps when localhost node ports are on)."""
    n = Names(prefix)
    new = ("-m", "conntrack", "--ctstate", "NEW")
    rules = [
        JumpRule("filter", "INPUT", n.external_services, "kubernetes externally-visible service portals", new),
        JumpRule("filter", "FORWARD", n.external_services, "kubernetes externally-visible service portals", new),
        JumpRule("filter", "INPUT", n.nodeports, "kubernetes health check service ports"),
        JumpRule("filter", "FORWARD", n.services, "kubernetes service portals", new),
        JumpRule("filter", "OUTPUT", n.services, "kubernetes service portals", new),
        JumpRule("filter", "FORWARD", n.forward, "kubernetes forwarding rules"),
        JumpRule("filter", "INPUT", n.proxy_firewall, "kubernetes load balancer firewall", new),
        JumpRule("filter", "OUTPUT", n.proxy_firewall, "kubernetes load balancer firewall", new),
        JumpRule("filter", "FORWARD", n.proxy_firewall, "kubernetes load balancer firewall", new),
        JumpRule("nat", "OUTPUT", n.services, "kubernetes service portals"),
        JumpRule("nat", "PREROUTING", n.services, "kubernetes service portals"),
        JumpRule("nat", "POSTROUTING", n.postrouting, "kubernetes postrouting rules"),
    ]
    if localhost_nodeports:
        rules += [JumpRule("filter", "INPUT", n.firewall), JumpRule("filter", "OUTPUT", n.firewall)]
    return rules


# --- reading iptables-save output -------------------------------------------------------------------------

def parse_save(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """`iptables-save` output → {table: (chain names, "-A …" rule lines)}."""
    tables: dict[str, tuple[list[str], list[str]]] = {}
    current: tuple[list[str], list[str]] | None = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), ([], []))
        elif current is None or not line or line.startswith("#") or line == "COMMIT":
            continue
        elif line.startswith(":"):
            current[0].append(line[1:].split(" ", 1)[0])
        elif line.startswith("-A "):
            current[1].append(line)
    return tables


def rule_target(line: str) -> str | None:
    """The `-j`/`-g` target of a saved rule line."""
    words = line.split()
    for i, w in enumerate(words[:-1]):
        if w in ("-j", "-g", "--jump", "--goto"):
            return words[i + 1]
    return None


def cleanup_payload(saved: str, is_ours: Any) -> str:
    """A restore payload deleting every chain `is_ours(table, chain)` accepts and every rule jumping to one.

    Applied with `iptables-restore --noflush` it removes them in one transaction: rules in other chains that
    reference ours are deleted (`-D` with the saved rule spec), our chains are flushed by being declared,
    then deleted (`-X`)."""
    out: list[str] = []
    for table, (chains, rules) in parse_save(saved).items():
        ours = [c for c in chains if is_ours(table, c)]
        if not ours:
            continue
        own = set(ours)
        out.append(f"*{table}")
        out += [_chain_line(c) for c in ours]
        for line in rules:
            src = line.split()[1]
            if src not in own and rule_target(line) in own:
                out.append("-D" + line[2:])
        out += [f"-X {c}" for c in ours]
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""


def is_proxy_chain(prefix: str = "KUBE-"):
    """A predicate for `cleanup_payload` matching the chains the proxy creates."""
    n = Names(prefix)
    nat = set(n.nat_top_chains)
    flt = set(n.filter_top_chains) | {n.firewall}

    def pred(table: str, chain: str) -> bool:
        if table == "nat":
            return chain in nat or n.is_service_chain(chain)
        if table == "filter":
            return chain in flt
        return False
    return pred


__all__ = [
    "Endpoint", "JumpRule", "Names", "RuleOptions", "RuleSet", "ServicePort", "build_rules", "categorize_endpoints",
    "cleanup_payload", "is_proxy_chain", "jump_fixes", "jump_rules", "parse_save", "port_proto_hash", "rule_target",
    "service_ports", "slice_endpoints", "slice_service",
]
