"""NetworkPolicy (networking.k8s.io/v1) → iptables filter rules in the pods' path, as pure functions.

Kubernetes leaves enforcement to the network plugin; this follows the plugins that use plain iptables
(kube-router's layout, without ipsets):

    FORWARD, INPUT → KUBE-NETPOL   (first rule of each, so that nothing accepts a packet before it)
    KUBE-NETPOL        established/related flows RETURN at once (a flow is judged by its first packet);
                       then `-s <pod IP> -j KUBE-NPE-<h>` for every pod isolated for egress and
                       `-d <pod IP> -j KUBE-NPI-<h>` for every pod isolated for ingress
    KUBE-NPI-<h>       one pod's ingress: every allowed (peer, port) RETURNs; the last rule drops
    KUBE-NPE-<h>       one pod's egress, the same with destinations
    KUBE-NPB-<h>       an ipBlock peer with `except`: excepted ranges RETURN, the CIDR sets a mark bit the
                       pod chain tests right after the jump

A chain's RETURN only means "this side allows it": the packet goes on through the rest of FORWARD (the
proxy's KUBE-FORWARD and so on), so the enforcer never accepts anything by itself, it only drops.

Semantics (upstream's API docs): a pod is isolated for a direction when some policy of its namespace selects
it with that policy type; then only what some rule of those policies allows passes. A rule's peers are OR-ed
(`podSelector` in the policy's namespace, `namespaceSelector`, both = pods of those namespaces matching the
pod selector, `ipBlock` with `except`); an absent/empty peer list matches everything, as does an absent/empty
port list. Ports: protocol (default TCP), number or named port, `endPort` ranges. Named ports are resolved on
the destination pod (the selected pod for ingress, each peer pod for egress). `policyTypes` defaults to
Ingress, plus Egress when the policy has egress rules. Traffic from the node to its pods (probes) is not
filtered; pod → node traffic is (egress), as with most plugins.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..api.selectors import SelectorError, try_label_selector_from_dict
from .iptables import _chain_line, parse_save, port_proto_hash

Obj = dict[str, Any]


@dataclass
class NetpolOptions:
    node_name: str | None = None  # only this node's pods get chains; None: every pod (tests, single node)
    prefix: str = "KUBE-"
    deny_target: str = "DROP"  # or "REJECT" (faster failures, e.g. in tests)
    mark: str = "0x10000"  # scratch bit for ipBlock-with-except peers

    @property
    def dispatch(self) -> str:
        return self.prefix + "NETPOL"

    def pod_chain(self, direction: str, namespace: str, name: str) -> str:
        tag = "NPI-" if direction == "ingress" else "NPE-"
        return self.prefix + tag + port_proto_hash(f"{namespace}/{name}", direction)

    def block_chain(self, key: str) -> str:
        return self.prefix + "NPB-" + port_proto_hash(key, "ipblock")

    def is_ours(self, chain: str) -> bool:
        return chain == self.dispatch or chain.startswith(tuple(self.prefix + t for t in ("NPI-", "NPE-", "NPB-")))


def pod_ips(pod: Obj) -> list[str]:
    """A running pod's own IPv4 addresses (none for host-network or finished pods)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return []
    ips = [p.get("ip") for p in status.get("podIPs") or []] or [status.get("podIP")]
    out = []
    for ip in ips:
        try:
            if ip and ipaddress.ip_address(ip).version == 4 and ip not in out:
                out.append(ip)
        except ValueError:
            continue
    return out


def _in_cidr(ip: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _named_port(pod: Obj, name: str, protocol: str) -> int | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == name and (p.get("protocol") or "TCP").upper() == protocol:
                return int(p["containerPort"])
    return None


def _selector(sel: Any):
    try:
        return try_label_selector_from_dict(sel)
    except SelectorError:
        return try_label_selector_from_dict(None)  # an invalid selector selects nothing


def policy_types(policy: Obj) -> list[str]:
    spec = policy.get("spec") or {}
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress"] + (["Egress"] if spec.get("egress") else [])


@dataclass
class NetpolRuleSet:
    chains: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    active: set[str] = field(default_factory=set)
    deleted: list[str] = field(default_factory=list)
    jump_fixes: list[str] = field(default_factory=list)  # filter-table lines from `iptables.jump_fixes`

    def payload(self) -> str:
        return "\n".join(["*filter", *self.chains, *self.rules, *self.jump_fixes, "COMMIT", ""])


class _World:
    """Pods and namespaces indexed for peer selection."""

    def __init__(self, pods: Iterable[Obj], namespaces: Iterable[Obj]) -> None:
        self.ns_labels: dict[str, dict[str, str]] = {}
        for ns in namespaces:
            meta = ns.get("metadata") or {}
            labels = dict(meta.get("labels") or {})
            labels.setdefault("kubernetes.io/metadata.name", meta.get("name", ""))
            self.ns_labels[meta.get("name", "")] = labels
        self.pods_by_ns: dict[str, list[Obj]] = {}
        for p in pods:
            if pod_ips(p):
                self.pods_by_ns.setdefault((p.get("metadata") or {}).get("namespace") or "default", []).append(p)
        for ns in self.pods_by_ns:
            self.ns_labels.setdefault(ns, {"kubernetes.io/metadata.name": ns})

    def all_pods(self) -> list[Obj]:
        return [p for pods in self.pods_by_ns.values() for p in pods]

    def peer_pods(self, peer: Obj, policy_ns: str) -> list[Obj]:
        pod_sel = peer.get("podSelector")
        ns_sel = peer.get("namespaceSelector")
        if ns_sel is not None:
            nsel = _selector(ns_sel)
            namespaces = [ns for ns, labels in self.ns_labels.items() if nsel.matches(labels)]
        else:
            namespaces = [policy_ns]
        psel = _selector(pod_sel if pod_sel is not None else {})
        return [p for ns in namespaces for p in self.pods_by_ns.get(ns, [])
                if psel.matches((p.get("metadata") or {}).get("labels"))]


def _port_matches(ports: list[Obj] | None, resolve_on: list[Obj]) -> list[tuple[str | None, str]]:
    """(destination pod IP restriction or None, match text) for a rule's ports; [(None, "")] means any port.

    A named port is looked up on each pod of `resolve_on` (the pods traffic goes to) and yields one
    IP-restricted match per pod that names it."""
    if not ports:
        return [(None, "")]
    out: list[tuple[str | None, str]] = []
    for p in ports:
        proto = (p.get("protocol") or "TCP").upper()
        lp = proto.lower()
        port = p.get("port")
        if port is None:
            out.append((None, f"-p {lp}"))
        elif isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
            end = p.get("endPort")
            rng = f"{int(port)}:{int(end)}" if end else str(int(port))
            out.append((None, f"-p {lp} -m {lp} --dport {rng}"))
        else:
            for pod in resolve_on:
                number = _named_port(pod, port, proto)
                if number is not None:
                    for ip in pod_ips(pod):
                        out.append((ip, f"-p {lp} -m {lp} --dport {number}"))
    return out


def build_netpol_rules(pods: Iterable[Obj], namespaces: Iterable[Obj], policies: Iterable[Obj],
                       opts: NetpolOptions | None = None, *, existing_chains: Iterable[str] = ()) -> NetpolRuleSet:
    opts = opts or NetpolOptions()
    world = _World(pods, namespaces)
    rs = NetpolRuleSet()
    policies = sorted(policies, key=lambda p: ((p.get("metadata") or {}).get("namespace") or "",
                                               (p.get("metadata") or {}).get("name") or ""))
    # per local pod: [(policy, direction)] that select it
    selected: dict[tuple[str, str], dict[str, list[Obj]]] = {}
    local_pods: dict[tuple[str, str], Obj] = {}
    for pol in policies:
        pmeta = pol.get("metadata") or {}
        ns = pmeta.get("namespace") or "default"
        sel = _selector((pol.get("spec") or {}).get("podSelector") or {})
        types = policy_types(pol)
        for pod in world.pods_by_ns.get(ns, []):
            meta = pod.get("metadata") or {}
            if opts.node_name is not None and (pod.get("spec") or {}).get("nodeName") != opts.node_name:
                continue
            if not sel.matches(meta.get("labels")):
                continue
            key = (ns, meta.get("name") or "")
            local_pods[key] = pod
            entry = selected.setdefault(key, {"ingress": [], "egress": []})
            if "Ingress" in types:
                entry["ingress"].append(pol)
            if "Egress" in types:
                entry["egress"].append(pol)

    dispatch = opts.dispatch
    rs.chains.append(_chain_line(dispatch))
    rs.active.add(dispatch)
    rs.rules.append(f'-A {dispatch} -m comment --comment "established and related flows" '
                    f"-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN")
    jumps: dict[str, list[str]] = {"egress": [], "ingress": []}
    body: list[str] = []
    deny = opts.deny_target + (" --reject-with icmp-port-unreachable" if opts.deny_target == "REJECT" else "")
    mark = opts.mark
    for key in sorted(selected):
        ns, name = key
        pod = local_pods[key]
        for direction in ("egress", "ingress"):
            pols = selected[key][direction]
            if not pols:
                continue
            chain = opts.pod_chain(direction, ns, name)
            rs.chains.append(_chain_line(chain))
            rs.active.add(chain)
            flag = "-s" if direction == "egress" else "-d"
            for ip in pod_ips(pod):
                jumps[direction].append(f'-A {dispatch} -m comment --comment "{ns}/{name} {direction}" {flag} {ip} -j {chain}')
            peer_flag = "-d" if direction == "egress" else "-s"
            uses_mark = False
            lines: list[str] = []
            for pol in pols:
                pname = f"{ns}/{(pol.get('metadata') or {}).get('name')}"
                rules = (pol.get("spec") or {}).get(direction) or []
                peers_key = "to" if direction == "egress" else "from"
                for ri, rule in enumerate(rules):
                    comment = f'-m comment --comment "{pname} {direction} rule {ri}"'
                    peers = rule.get(peers_key) or []
                    port_list = rule.get("ports") or None
                    if not peers:
                        targets = world.all_pods() if direction == "egress" else [pod]
                        for ip, pm in _port_matches(port_list, targets):
                            dst = f" -d {ip}" if ip and direction == "egress" else ""
                            lines.append(f"-A {chain} {comment}{dst} {pm}".rstrip() + " -j RETURN")
                        continue
                    for pi, peer in enumerate(peers):
                        block = peer.get("ipBlock")
                        if block:
                            cidr = block.get("cidr")
                            targets = world.all_pods() if direction == "egress" else [pod]
                            matches = _port_matches(port_list, targets)
                            if block.get("except"):
                                bchain = opts.block_chain(f"{pname}/{direction}/{ri}/{pi}")
                                if bchain not in rs.active:
                                    rs.chains.append(_chain_line(bchain))
                                    rs.active.add(bchain)
                                    for exc in block["except"]:
                                        body.append(f"-A {bchain} {peer_flag} {exc} -j RETURN")
                                    body.append(f"-A {bchain} {peer_flag} {cidr} -j MARK --or-mark {mark}")
                                uses_mark = True
                                for ip, pm in matches:
                                    dst = f" -d {ip}" if ip and direction == "egress" else ""
                                    lines.append(f"-A {chain} {comment}{dst} {pm}".rstrip() + f" -j {bchain}")
                                    lines.append(f"-A {chain} {comment} -m mark --mark {mark}/{mark} -j RETURN")
                            else:
                                for ip, pm in matches:
                                    where = f"{peer_flag} {cidr}"
                                    if ip and direction == "egress":
                                        # a named port pins the destination pod: it must lie in the block
                                        if not _in_cidr(ip, cidr):
                                            continue
                                        where = f"-d {ip}"
                                    lines.append(f"-A {chain} {comment} {where} {pm}".rstrip() + " -j RETURN")
                            continue
                        peer_pods = world.peer_pods(peer, ns)
                        if direction == "ingress":
                            matches = _port_matches(port_list, [pod])
                            for peer_pod in peer_pods:
                                for pip in pod_ips(peer_pod):
                                    for _ip, pm in matches:
                                        lines.append(f"-A {chain} {comment} -s {pip} {pm}".rstrip() + " -j RETURN")
                        else:
                            for peer_pod in peer_pods:
                                for ip, pm in _port_matches(port_list, [peer_pod]):
                                    dsts = [ip] if ip else pod_ips(peer_pod)
                                    for dip in dsts:
                                        lines.append(f"-A {chain} {comment} -d {dip} {pm}".rstrip() + " -j RETURN")
            if uses_mark:
                # the bit may be left over from another chain this packet went through
                body.append(f"-A {chain} -j MARK --and-mark {~int(mark, 16) & 0xFFFFFFFF:#x}")
            body.extend(dict.fromkeys(lines))  # de-duplicate, keep order
            body.append(f'-A {chain} -m comment --comment "{ns}/{name} {direction} not allowed" -j {deny}')
    rs.rules.extend(jumps["egress"])
    rs.rules.extend(jumps["ingress"])
    rs.rules.extend(body)
    for chain in sorted(set(existing_chains) - rs.active):
        if opts.is_ours(chain) and chain != dispatch:
            rs.chains.append(_chain_line(chain))
            rs.rules.append(f"-X {chain}")
            rs.deleted.append(chain)
    return rs


def existing_netpol_chains(saved: str, opts: NetpolOptions) -> list[str]:
    chains, _ = parse_save(saved).get("filter", ([], []))
    return [c for c in chains if opts.is_ours(c)]


def is_netpol_chain(prefix: str = "KUBE-"):
    """A predicate for `iptables.cleanup_payload` matching the enforcer's chains."""
    opts = NetpolOptions(prefix=prefix)
    return lambda table, chain: table == "filter" and opts.is_ours(chain)


__all__ = ["NetpolOptions", "NetpolRuleSet", "build_netpol_rules", "existing_netpol_chains", "is_netpol_chain",
           "pod_ips", "policy_types"]
