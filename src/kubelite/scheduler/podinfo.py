"""What the scheduler needs to know about a pod, computed once per pod object.

Resource requests follow upstream's `resourcehelper.PodRequests`: the sum of the app containers, raised to
the largest init container (sidecars — init containers with restartPolicy Always — keep running and add up),
plus `spec.overhead`.  Scoring uses the "non-zero" requests (100m cpu / 200Mi memory for a container that
asks for nothing) so that many request-less pods do not pile onto one node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..api.selectors import LabelSelector, SelectorError, try_label_selector_from_dict
from ..api.validation_kinds import parse_quantity

DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
LABEL_HOSTNAME = "kubernetes.io/hostname"

_QTY_CACHE: dict[tuple[str, bool], int] = {}


def quantity(value: Any, milli: bool = False) -> int:
    """A Kubernetes quantity as an int: milli-units for cpu (rounded up, as Quantity.MilliValue), else units."""
    key = (value if isinstance(value, str) else repr(value), milli)
    got = _QTY_CACHE.get(key)
    if got is not None:
        return got
    q = parse_quantity(value)
    if q is None:
        q = Decimal(0)
    if milli:
        q = q * 1000
    out = int(math.ceil(q))
    if len(_QTY_CACHE) < 100_000:
        _QTY_CACHE[key] = out
    return out


@dataclass(slots=True)
class Resources:
    cpu: int = 0  # millicores
    memory: int = 0
    ephemeral: int = 0
    scalars: dict[str, int] = field(default_factory=dict)

    def add(self, other: Resources, sign: int = 1) -> None:
        self.cpu += sign * other.cpu
        self.memory += sign * other.memory
        self.ephemeral += sign * other.ephemeral
        for k, v in other.scalars.items():
            self.scalars[k] = self.scalars.get(k, 0) + sign * v

    def set_max(self, other: Resources) -> None:
        self.cpu = max(self.cpu, other.cpu)
        self.memory = max(self.memory, other.memory)
        self.ephemeral = max(self.ephemeral, other.ephemeral)
        for k, v in other.scalars.items():
            self.scalars[k] = max(self.scalars.get(k, 0), v)

    def copy(self) -> Resources:
        return Resources(self.cpu, self.memory, self.ephemeral, dict(self.scalars))

    def is_zero(self) -> bool:
        return not (self.cpu or self.memory or self.ephemeral or any(self.scalars.values()))


def resource_list(rl: dict[str, Any] | None) -> Resources:
    r = Resources()
    for name, v in (rl or {}).items():
        if name == "cpu":
            r.cpu = quantity(v, milli=True)
        elif name == "memory":
            r.memory = quantity(v)
        elif name == "ephemeral-storage":
            r.ephemeral = quantity(v)
        elif name != "pods":
            r.scalars[name] = quantity(v)
    return r


def _container_requests(c: dict[str, Any]) -> Resources:
    return resource_list((c.get("resources") or {}).get("requests"))


def _non_zero(r: Resources, c: dict[str, Any]) -> tuple[int, int]:
    req = (c.get("resources") or {}).get("requests") or {}
    return (r.cpu if "cpu" in req else DEFAULT_MILLI_CPU_REQUEST,
            r.memory if "memory" in req else DEFAULT_MEMORY_REQUEST)


def pod_requests(spec: dict[str, Any]) -> tuple[Resources, int, int]:
    """(requests, non-zero cpu, non-zero memory) of a pod spec."""
    total = Resources()
    nz_cpu = nz_mem = 0
    for c in spec.get("containers") or []:
        r = _container_requests(c)
        total.add(r)
        a, b = _non_zero(r, c)
        nz_cpu += a
        nz_mem += b
    sidecars = Resources()
    init_max = Resources()
    nz_side_cpu = nz_side_mem = nz_init_cpu = nz_init_mem = 0
    for c in spec.get("initContainers") or []:
        r = _container_requests(c)
        a, b = _non_zero(r, c)
        if c.get("restartPolicy") == "Always":
            sidecars.add(r)
            nz_side_cpu += a
            nz_side_mem += b
            init_max.set_max(sidecars)
            nz_init_cpu, nz_init_mem = max(nz_init_cpu, nz_side_cpu), max(nz_init_mem, nz_side_mem)
        else:
            step = sidecars.copy()
            step.add(r)
            init_max.set_max(step)
            nz_init_cpu, nz_init_mem = max(nz_init_cpu, nz_side_cpu + a), max(nz_init_mem, nz_side_mem + b)
    total.add(sidecars)
    total.set_max(init_max)
    nz_cpu, nz_mem = max(nz_cpu + nz_side_cpu, nz_init_cpu), max(nz_mem + nz_side_mem, nz_init_mem)
    overhead = spec.get("overhead")
    if overhead:
        o = resource_list(overhead)
        total.add(o)
        nz_cpu += o.cpu
        nz_mem += o.memory
    return total, nz_cpu, nz_mem


# -- tolerations ---------------------------------------------------------------------------------------------

def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Upstream's Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerates_any(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


# -- node selector terms -------------------------------------------------------------------------------------

def _int(s: str) -> int | None:
    try:
        return int(s)
    except (TypeError, ValueError):
        return None


def _expr_matches(expr: dict[str, Any], value: str | None) -> bool:
    op = expr.get("operator")
    vals = expr.get("values") or []
    if op == "In":
        return value is not None and value in vals
    if op == "NotIn":
        return value is None or value not in vals
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt"):
        if value is None or len(vals) != 1:
            return False
        have, want = _int(value), _int(vals[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: dict[str, Any], labels: dict[str, str], node_name: str) -> bool:
    """One NodeSelectorTerm: all matchExpressions and matchFields hold; a term with neither matches nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    for e in exprs:
        if not _expr_matches(e, labels.get(e.get("key", ""))):
            return False
    for f in fields:
        if f.get("key") != "metadata.name":
            return False
        if not _expr_matches(f, node_name):
            return False
    return True


# -- pod affinity terms --------------------------------------------------------------------------------------

@dataclass(slots=True)
class AffinityTerm:
    selector: LabelSelector
    namespaces: frozenset[str]
    namespace_selector: LabelSelector | None  # None: only `namespaces`
    topology_key: str
    weight: int = 0

    def matches(self, pod: PodInfo, ns_labels: dict[str, dict[str, str]]) -> bool:
        if pod.namespace in self.namespaces:
            return self.selector.matches(pod.labels)
        if self.namespace_selector is not None and self.namespace_selector.matches(ns_labels.get(pod.namespace)):
            return self.selector.matches(pod.labels)
        return False


def _affinity_term(namespace: str, term: dict[str, Any], weight: int = 0) -> AffinityTerm | None:
    try:
        sel = try_label_selector_from_dict(term.get("labelSelector"))
        ns_sel_raw = term.get("namespaceSelector")
        ns_sel = try_label_selector_from_dict(ns_sel_raw) if ns_sel_raw is not None else None
    except SelectorError:
        return None
    namespaces = term.get("namespaces") or []
    if not namespaces and ns_sel_raw is None:
        namespaces = [namespace]
    return AffinityTerm(sel, frozenset(namespaces), ns_sel, term.get("topologyKey") or "", weight)


def _terms(namespace: str, raw: list[dict[str, Any]] | None) -> list[AffinityTerm]:
    return [t for t in (_affinity_term(namespace, x) for x in raw or []) if t is not None]


def _weighted(namespace: str, raw: list[dict[str, Any]] | None) -> list[AffinityTerm]:
    out = []
    for w in raw or []:
        t = _affinity_term(namespace, w.get("podAffinityTerm") or {}, int(w.get("weight") or 0))
        if t is not None:
            out.append(t)
    return out


@dataclass(slots=True)
class SpreadConstraint:
    max_skew: int
    topology_key: str
    hard: bool
    selector: LabelSelector
    min_domains: int
    honor_node_affinity: bool
    honor_taints: bool


class PodInfo:
    """A pod object plus everything derived from it that filters and scores read."""

    __slots__ = ("pod", "uid", "namespace", "name", "key", "labels", "priority", "created", "requests",
                 "nz_cpu", "nz_mem", "host_ports", "node_selector", "required_terms", "preferred_terms",
                 "tolerations", "affinity", "anti_affinity", "preferred_affinity", "preferred_anti_affinity",
                 "spread", "node_name", "scheduler_name", "gated", "terminating", "preemption_never",
                 "nominated_node", "has_pod_affinity", "spec_simple")

    def __init__(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.pod = pod
        self.uid: str = meta.get("uid") or ""
        self.namespace: str = meta.get("namespace") or ""
        self.name: str = meta.get("name") or ""
        self.key = f"{self.namespace}/{self.name}"
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.priority: int = int(spec.get("priority") or 0)
        self.created: str = meta.get("creationTimestamp") or ""
        self.requests, self.nz_cpu, self.nz_mem = pod_requests(spec)
        ports = []
        for c in (spec.get("containers") or []) + [
                ic for ic in spec.get("initContainers") or [] if ic.get("restartPolicy") == "Always"]:
            for p in c.get("ports") or []:
                hp = p.get("hostPort")
                if hp:
                    ports.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(hp)))
        self.host_ports: list[tuple[str, str, int]] = ports
        self.node_selector: dict[str, str] = spec.get("nodeSelector") or {}
        aff = spec.get("affinity") or {}
        na = aff.get("nodeAffinity") or {}
        req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
        self.required_terms: list[dict[str, Any]] | None = (req.get("nodeSelectorTerms") or []) if req else None
        self.preferred_terms: list[tuple[int, dict[str, Any]]] = [
            (int(p.get("weight") or 0), p.get("preference") or {})
            for p in na.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
        self.tolerations: list[dict[str, Any]] = spec.get("tolerations") or []
        pa = aff.get("podAffinity") or {}
        paa = aff.get("podAntiAffinity") or {}
        ns = self.namespace
        self.affinity = _terms(ns, pa.get("requiredDuringSchedulingIgnoredDuringExecution"))
        self.anti_affinity = _terms(ns, paa.get("requiredDuringSchedulingIgnoredDuringExecution"))
        self.preferred_affinity = _weighted(ns, pa.get("preferredDuringSchedulingIgnoredDuringExecution"))
        self.preferred_anti_affinity = _weighted(ns, paa.get("preferredDuringSchedulingIgnoredDuringExecution"))
        self.has_pod_affinity = bool(self.affinity or self.anti_affinity or self.preferred_affinity
                                     or self.preferred_anti_affinity)
        spread = []
        for c in spec.get("topologySpreadConstraints") or []:
            try:
                sel = try_label_selector_from_dict(c.get("labelSelector"))
            except SelectorError:
                continue
            keys = c.get("matchLabelKeys") or []
            if keys and sel is not None and not sel.nothing:
                extra = {k: self.labels[k] for k in keys if k in self.labels}
                if extra:
                    merged = dict(c.get("labelSelector") or {})
                    merged["matchLabels"] = {**(merged.get("matchLabels") or {}), **extra}
                    sel = try_label_selector_from_dict(merged)
            spread.append(SpreadConstraint(
                max_skew=int(c.get("maxSkew") or 1), topology_key=c.get("topologyKey") or "",
                hard=(c.get("whenUnsatisfiable") or "DoNotSchedule") == "DoNotSchedule", selector=sel,
                min_domains=int(c.get("minDomains") or 1),
                honor_node_affinity=(c.get("nodeAffinityPolicy") or "Honor") == "Honor",
                honor_taints=(c.get("nodeTaintsPolicy") or "Ignore") == "Honor"))
        self.spread: list[SpreadConstraint] = spread
        self.node_name: str = spec.get("nodeName") or ""
        self.scheduler_name: str = spec.get("schedulerName") or "default-scheduler"
        self.gated = bool(spec.get("schedulingGates"))
        self.terminating = bool(meta.get("deletionTimestamp"))
        self.preemption_never = spec.get("preemptionPolicy") == "Never"
        self.nominated_node: str = (pod.get("status") or {}).get("nominatedNodeName") or ""
        # a pod none of the optional filters/scores concern takes the scheduler's fast path
        self.spec_simple = not (self.host_ports or self.node_selector or self.required_terms is not None
                                or self.preferred_terms or self.has_pod_affinity or self.spread
                                or self.node_name)

    @property
    def phase(self) -> str:
        return (self.pod.get("status") or {}).get("phase") or ""
