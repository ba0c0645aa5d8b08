"""The scheduler's view of the cluster: per-node aggregates kept up to date incrementally.

Like upstream's scheduler cache, a pod the scheduler has decided about is *assumed* onto its node at once
(so the next decisions see its requests and ports) and confirmed when the informer reports it bound, or
*forgotten* when binding fails.  Pods bound to a node the cache has not seen yet are kept on a placeholder
`NodeInfo` without a node object, which is never offered to filters.
"""

from __future__ import annotations

import logging
from typing import Any

from .podinfo import PodInfo, Resources, quantity, resource_list

log = logging.getLogger("kubelite.scheduler.cache")

HARD_EFFECTS = ("NoSchedule", "NoExecute")


class NodeInfo:
    __slots__ = ("name", "node", "labels", "taints", "hard_taints", "soft_taints", "unschedulable",
                 "alloc", "alloc_cpu", "alloc_mem", "alloc_pods", "req", "nz_cpu", "nz_mem", "pods",
                 "ports", "pods_with_affinity", "pods_with_anti_affinity", "generation", "simple",
                 "nominated", "f_cpu", "f_mem", "f_pods", "memo")

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: dict[str, Any] | None = None
        self.labels: dict[str, str] = {}
        self.taints: list[dict[str, Any]] = []
        self.hard_taints: list[dict[str, Any]] = []
        self.soft_taints: list[dict[str, Any]] = []
        self.unschedulable = False
        self.alloc = Resources()
        self.alloc_cpu = 0
        self.alloc_mem = 0
        self.alloc_pods = 0
        self.req = Resources()
        self.nz_cpu = 0
        self.nz_mem = 0
        self.pods: dict[str, PodInfo] = {}
        self.ports: dict[tuple[str, int], set[str]] = {}  # (protocol, port) -> host IPs
        self.pods_with_affinity: dict[str, PodInfo] = {}
        self.pods_with_anti_affinity: dict[str, PodInfo] = {}
        self.generation = 0
        # no taints that filter and schedulable: the fast path only has to check resources
        self.simple = True
        # uid -> PodInfo of pods nominated here by preemption (room kept for them)
        self.nominated: dict[str, PodInfo] = {}
        # free room for the fast path (f_pods is 0 when the node needs the full filters) and memoized
        # fast-path scores by pod request signature; both refreshed whenever the node changes
        self.f_cpu = 0
        self.f_mem = 0
        self.f_pods = 0
        self.memo: dict[tuple[int, int, int, int], int] = {}

    def refresh(self) -> None:
        self.f_cpu = self.alloc_cpu - self.req.cpu
        self.f_mem = self.alloc_mem - self.req.memory
        ok = self.simple and not self.nominated and self.node is not None
        self.f_pods = self.alloc_pods - len(self.pods) if ok else 0
        self.memo = {}

    def set_node(self, node: dict[str, Any]) -> None:
        self.node = node
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        self.labels = meta.get("labels") or {}
        self.taints = spec.get("taints") or []
        self.hard_taints = [t for t in self.taints if t.get("effect") in HARD_EFFECTS]
        self.soft_taints = [t for t in self.taints if t.get("effect") == "PreferNoSchedule"]
        self.unschedulable = bool(spec.get("unschedulable"))
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        self.alloc = resource_list(allocatable)
        self.alloc_cpu = self.alloc.cpu
        self.alloc_mem = self.alloc.memory
        self.alloc_pods = quantity(allocatable.get("pods", 0))
        self.simple = not self.hard_taints and not self.unschedulable
        self.generation += 1
        self.refresh()

    def add_pod(self, p: PodInfo) -> None:
        self.pods[p.uid] = p
        self.req.add(p.requests)
        self.nz_cpu += p.nz_cpu
        self.nz_mem += p.nz_mem
        for ip, proto, port in p.host_ports:
            self.ports.setdefault((proto, port), set()).add(ip)
        if p.affinity or p.preferred_affinity or p.preferred_anti_affinity or p.anti_affinity:
            self.pods_with_affinity[p.uid] = p
        if p.anti_affinity:
            self.pods_with_anti_affinity[p.uid] = p
        self.generation += 1
        self.refresh()

    def remove_pod(self, uid: str) -> PodInfo | None:
        p = self.pods.pop(uid, None)
        if p is None:
            return None
        self.req.add(p.requests, -1)
        self.nz_cpu -= p.nz_cpu
        self.nz_mem -= p.nz_mem
        for ip, proto, port in p.host_ports:
            ips = self.ports.get((proto, port))
            if ips is not None:
                ips.discard(ip)
                if not ips:
                    del self.ports[(proto, port)]
        self.pods_with_affinity.pop(uid, None)
        self.pods_with_anti_affinity.pop(uid, None)
        self.generation += 1
        self.refresh()
        return p

    def clone(self) -> NodeInfo:
        """A copy whose pod set can change without touching this one (preemption's what-if)."""
        c = NodeInfo(self.name)
        if self.node is not None:
            c.set_node(self.node)
        for p in self.pods.values():
            c.add_pod(p)
        return c


def is_terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class Cache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.node_list: list[NodeInfo] = []  # nodes with a node object, in a stable order
        self.pod_nodes: dict[str, str] = {}  # uid -> node name (bound or assumed)
        self.assumed: set[str] = set()
        self.pods_with_affinity = 0  # pods anywhere with any pod (anti-)affinity term
        self.pods_with_anti_affinity = 0
        self.nominated: dict[str, str] = {}  # uid -> node name nominated by preemption
        self.namespace_labels: dict[str, dict[str, str]] = {}  # for affinity terms' namespaceSelector

    # -- nodes ----------------------------------------------------------------------------------------

    def _node(self, name: str) -> NodeInfo:
        ni = self.nodes.get(name)
        if ni is None:
            ni = self.nodes[name] = NodeInfo(name)
        return ni

    def add_node(self, node: dict[str, Any]) -> NodeInfo:
        ni = self._node(node["metadata"]["name"])
        had = ni.node is not None
        ni.set_node(node)
        if not had:
            self.node_list.append(ni)
        return ni

    update_node = add_node

    def remove_node(self, name: str) -> None:
        ni = self.nodes.get(name)
        if ni is None:
            return
        if ni.node is not None:
            self.node_list = [n for n in self.node_list if n is not ni]
        ni.node = None
        ni.refresh()
        if not ni.pods:
            del self.nodes[name]

    # -- pods -----------------------------------------------------------------------------------------

    def _count(self, p: PodInfo, sign: int) -> None:
        if p.affinity or p.anti_affinity or p.preferred_affinity or p.preferred_anti_affinity:
            self.pods_with_affinity += sign
        if p.anti_affinity:
            self.pods_with_anti_affinity += sign

    def _place(self, p: PodInfo, node_name: str) -> None:
        self._node(node_name).add_pod(p)
        self.pod_nodes[p.uid] = node_name
        self._count(p, 1)

    def _unplace(self, uid: str) -> PodInfo | None:
        name = self.pod_nodes.pop(uid, None)
        if name is None:
            return None
        ni = self.nodes.get(name)
        p = ni.remove_pod(uid) if ni is not None else None
        if p is not None:
            self._count(p, -1)
        if ni is not None and ni.node is None and not ni.pods:
            del self.nodes[name]
        return p

    def assume_pod(self, p: PodInfo, node_name: str) -> None:
        if p.uid in self.pod_nodes:
            raise ValueError(f"pod {p.key} is in the cache already, so can't be assumed")
        self._place(p, node_name)
        self.assumed.add(p.uid)

    def forget_pod(self, p: PodInfo) -> None:
        if p.uid in self.assumed:
            self.assumed.discard(p.uid)
            self._unplace(p.uid)

    def add_pod(self, pod: dict[str, Any]) -> PodInfo | None:
        """An assigned pod from the informer (confirms an assumed one)."""
        if is_terminal(pod):
            self.remove_pod(pod)
            return None
        p = PodInfo(pod)
        node_name = p.node_name
        current = self.pod_nodes.get(p.uid)
        if current is not None:
            self.assumed.discard(p.uid)
            ni = self.nodes.get(current)
            old = ni.pods.get(p.uid) if ni is not None else None
            if current == node_name and old is not None and _same_footprint(old, p):
                ni.pods[p.uid] = p  # keep the aggregates; only the object changed
                if p.uid in ni.pods_with_affinity:
                    ni.pods_with_affinity[p.uid] = p
                if p.uid in ni.pods_with_anti_affinity:
                    ni.pods_with_anti_affinity[p.uid] = p
                return p
            self._unplace(p.uid)
        self._place(p, node_name)
        self.clear_nominated(p.uid)
        return p

    update_pod = add_pod

    def remove_pod(self, pod: dict[str, Any]) -> None:
        uid = (pod.get("metadata") or {}).get("uid") or ""
        self.assumed.discard(uid)
        self._unplace(uid)
        self.clear_nominated(uid)

    def is_assumed(self, uid: str) -> bool:
        return uid in self.assumed

    # -- nominations (preemption) ---------------------------------------------------------------------

    def nominate(self, p: PodInfo, node_name: str) -> None:
        self.clear_nominated(p.uid)
        ni = self.nodes.get(node_name)
        if ni is None:
            return
        ni.nominated[p.uid] = p
        self.nominated[p.uid] = node_name
        ni.refresh()

    def clear_nominated(self, uid: str) -> None:
        name = self.nominated.pop(uid, None)
        if name is not None:
            ni = self.nodes.get(name)
            if ni is not None:
                ni.nominated.pop(uid, None)
                ni.refresh()

    def all_pods(self) -> list[tuple[PodInfo, NodeInfo]]:
        return [(p, ni) for ni in self.nodes.values() for p in ni.pods.values()]


def _same_footprint(a: PodInfo, b: PodInfo) -> bool:
    return (a.requests == b.requests and a.host_ports == b.host_ports and a.labels == b.labels
            and a.nz_cpu == b.nz_cpu and a.nz_mem == b.nz_mem)
