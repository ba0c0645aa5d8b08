"""EndpointSlices (discovery.k8s.io/v1): upstream's endpointslice and endpointslicemirroring controllers.

`EndpointSliceController` keeps, for every Service with a selector, slices labelled
`kubernetes.io/service-name=<svc>` and `endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io`,
named `<svc>-xxxxx` (generateName), owned by the Service; each endpoint carries the conditions
ready/serving/terminating, nodeName, targetRef, the node's zone and the published hostname.  Endpoints whose
pods serve the same ports share slices of at most `max_endpoints_per_slice` (100).  A Service whose selector
matches nothing has one empty placeholder slice, as upstream.

`EndpointSliceMirroringController` mirrors Endpoints of selector-less Services (unless labelled
`endpointslice.kubernetes.io/skip-mirror=true`) into slices it manages, and keeps the slice `default/kubernetes`
in step with the `kubernetes` Endpoints the API server maintains.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from kubelite.client import ClientError, key_of, split_key

from .controller_utils import is_pod_ready
from .endpoints import (
    HEADLESS_LABEL,
    LAST_CHANGE_TRIGGER_TIME,
    TriggerTimeTracker,
    controller_config,
    endpoint_ports,
    format_trigger_time,
    is_headless,
    pod_endpoint_state,
    pod_hostname,
    pod_ips,
    service_selector,
    service_selects,
    should_pod_be_in_endpoints,
)
from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.endpointslice")

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MIRRORING_CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass
class EndpointSliceConfig:
    concurrent_syncs: int = 5  # --concurrent-service-endpoint-syncs
    max_endpoints_per_slice: int = 100  # --max-endpoints-per-slice
    batch_period: float = 0.0  # --endpointslice-updates-batch-period
    stale_cache_retry: float = 0.05  # our own writes not yet in the informer: look again this soon


@dataclass
class EndpointSliceMirroringConfig:
    concurrent_syncs: int = 5  # --mirroring-concurrent-service-endpoint-syncs
    max_endpoints_per_subset: int = 1000  # --mirroring-max-endpoints-per-subset
    stale_cache_retry: float = 0.05


# ---------------------------------------------------------------------------------------- decisions


def ports_key(ports: list[Obj]) -> tuple:
    return tuple(sorted((p.get("name") or "", p.get("port") or 0, p.get("protocol") or "TCP",
                         p.get("appProtocol") or "") for p in ports or ()))


def endpoint_key(ep: Obj) -> str:
    ref = ep.get("targetRef") or {}
    return ref.get("uid") or ref.get("name") or ",".join(ep.get("addresses") or ())


def pod_to_endpoint(pod: Obj, svc: Obj, node: Obj | None) -> Obj:
    """One slice endpoint for a pod (upstream's podToEndpoint)."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    terminating = bool(meta.get("deletionTimestamp"))
    ready = is_pod_ready(pod)
    ep: Obj = {"addresses": pod_ips(pod)[:1],
               "conditions": {"ready": publish or (ready and not terminating), "serving": publish or ready,
                              "terminating": terminating}}
    hostname = pod_hostname(pod, svc)
    if hostname:
        ep["hostname"] = hostname
    ep["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"],
                       "uid": meta.get("uid", "")}
    if spec.get("nodeName"):
        ep["nodeName"] = spec["nodeName"]
    zone = ((node or {}).get("metadata", {}).get("labels") or {}).get(ZONE_LABEL)
    if zone:
        ep["zone"] = zone
    return ep


def desired_endpoints(svc: Obj, pods: list[Obj], nodes: dict[str, Obj]) -> dict[tuple, tuple[list[Obj], list[Obj]]]:
    """ports key → (ports, endpoints) for the pods a Service selects (terminating ones included)."""
    spec = svc.get("spec") or {}
    has_ports = bool(spec.get("ports"))
    groups: dict[tuple, tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, True):
            continue
        ports = endpoint_ports(pod, svc) if has_ports else []
        if has_ports and not ports:
            continue
        node = nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        groups.setdefault(ports_key(ports), (ports, []))[1].append(pod_to_endpoint(pod, svc, node))
    return groups


def slice_labels(svc: Obj, managed_by: str) -> dict[str, str]:
    labels = {k: v for k, v in (svc["metadata"].get("labels") or {}).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)}
    labels[SERVICE_NAME_LABEL] = svc["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = managed_by
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


def owner_ref(svc: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "name": svc["metadata"]["name"],
            "uid": svc["metadata"].get("uid", ""), "controller": True, "blockOwnerDeletion": True}


def generate_name(service_name: str) -> str:
    prefix = service_name + "-"
    return prefix if len(prefix) <= 58 else prefix[:58]  # leaves room for the 5 random characters


@dataclass
class SlicePlan:
    create: list[Obj]  # bodies: ports, endpoints (metadata filled in by the caller)
    update: list[Obj]  # full slices with new ports/endpoints
    delete: list[Obj]


def _sort_endpoints(eps: list[Obj]) -> list[Obj]:
    return sorted(eps, key=lambda e: ((e.get("targetRef") or {}).get("name", ""), e.get("addresses") or []))


def plan_slices(desired: dict[tuple, tuple[list[Obj], list[Obj]]], existing: list[Obj], max_per_slice: int,
                *, placeholder: bool = True) -> SlicePlan:
    """How to turn `existing` slices into `desired` endpoints with few writes (upstream's reconciler in
    spirit): endpoints stay in the slice that holds them, new ones fill slices with room before new slices
    are made, emptied slices go; with nothing to publish one empty placeholder slice remains."""
    plan = SlicePlan([], [], [])
    wanted = {pk: {endpoint_key(e): e for e in eps} for pk, (_, eps) in desired.items()}
    placed: set[tuple[tuple, str]] = set()
    kept: dict[tuple, list[tuple[Obj, list[Obj], bool]]] = {}
    placeholders: list[Obj] = []
    for sl in sorted(existing, key=lambda s: s["metadata"]["name"]):
        pk = ports_key(sl.get("ports") or [])
        eps = sl.get("endpoints") or []
        if not eps and not sl.get("ports"):
            placeholders.append(sl)
            continue
        if pk not in wanted:
            plan.delete.append(sl)
            continue
        new_eps, changed = [], False
        for ep in eps:
            k = endpoint_key(ep)
            want = wanted[pk].get(k)
            if want is None or (pk, k) in placed:
                changed = True
                continue
            placed.add((pk, k))
            if _strip_ep(ep) != want:
                changed = True
            new_eps.append(want)
        kept.setdefault(pk, []).append((sl, new_eps, changed))
    for pk, (ports, _) in desired.items():
        todo = [e for k, e in wanted[pk].items() if (pk, k) not in placed]
        for i, (sl, eps, changed) in enumerate(kept.get(pk, [])):
            room = max_per_slice - len(eps)
            if todo and room > 0:
                eps.extend(todo[:room])
                todo = todo[room:]
                changed = True
            kept[pk][i] = (sl, eps, changed)
        while todo:
            plan.create.append({"ports": ports, "endpoints": _sort_endpoints(todo[:max_per_slice])})
            todo = todo[max_per_slice:]
    for entries in kept.values():
        for sl, eps, changed in entries:
            if not eps:
                plan.delete.append(sl)
            elif changed:
                upd = copy.deepcopy(sl)
                upd["endpoints"] = _sort_endpoints(eps)
                plan.update.append(upd)
    remaining = sum(len(eps) for entries in kept.values() for _, eps, _ in entries) + len(plan.create)
    if placeholder and remaining == 0:
        if placeholders:
            placeholders = placeholders[1:]  # the first one stays
        else:
            plan.create.append({"ports": [], "endpoints": []})
    plan.delete.extend(placeholders)
    return plan


def _strip_ep(ep: Obj) -> Obj:
    """An endpoint as we write it (the server may add targetRef.resourceVersion)."""
    ref = ep.get("targetRef")
    if ref and "resourceVersion" in ref:
        ep = {**ep, "targetRef": {k: v for k, v in ref.items() if k != "resourceVersion"}}
    return ep


class WriteTracker:
    """Upstream's endpointSliceTracker: remembers the slices a service's last sync wrote, so a sync does not
    act on an informer cache that has not caught up with them yet (it would create duplicates)."""

    def __init__(self) -> None:
        self._written: dict[str, dict[str, int | None]] = {}  # service key → slice name → rv (None: deleted)

    def record(self, svc_key: str, name: str, rv: str | None) -> None:
        self._written.setdefault(svc_key, {})[name] = int(rv) if rv and rv.isdigit() else (-1 if rv else None)

    def stale(self, svc_key: str, cached: dict[str, Obj]) -> bool:
        for name, rv in (self._written.get(svc_key) or {}).items():
            sl = cached.get(name)
            if rv is None:
                if sl is not None:
                    return True
                continue
            if sl is None:
                return True
            have = sl["metadata"].get("resourceVersion") or ""
            if rv >= 0 and have.isdigit() and int(have) < rv:
                return True
        return False

    def settle(self, svc_key: str) -> None:
        self._written.pop(svc_key, None)


# ---------------------------------------------------------------------------------------- controllers


class _SliceWriter(Controller):
    """Shared plumbing: apply a SlicePlan for one service with stale-cache protection."""

    managed_by = ""
    stale_retry = 0.05

    def _init_slices(self, ctx: ControllerContext) -> None:
        self.slice_rt = ctx.rt("discovery.k8s.io", "v1", "endpointslices")
        self.svc_rt = ctx.rt("", "v1", "services")
        self.slices = self.informer(self.slice_rt)
        # the slice informer is shared by both slice controllers: one index each
        self.index_name = f"service-of-{self.managed_by}"
        self.slices.add_indexer(self.index_name, self._slice_service_index)
        self.slices.add_handler(self._slice_changed, lambda o, n: self._slice_changed(n), self._slice_changed)
        self.written = WriteTracker()

    def _slice_service_index(self, sl: Obj) -> list[str]:
        labels = sl["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != self.managed_by or not labels.get(SERVICE_NAME_LABEL):
            return []
        return [f"{sl['metadata'].get('namespace')}/{labels[SERVICE_NAME_LABEL]}"]

    def _slice_changed(self, sl: Obj) -> None:
        for key in self._slice_service_index(sl):
            self.queue.add(key)

    def owned_slices(self, key: str) -> list[Obj]:
        return self.slices.by_index(self.index_name, key)

    async def apply_plan(self, key: str, ns: str, plan: SlicePlan, make: Any) -> None:
        """Write `plan`; `make(body)` completes a new slice's metadata / an updated slice's labels."""
        for sl in plan.delete:
            try:
                await self.client.delete(self.slice_rt, ns, sl["metadata"]["name"])
            except ClientError as e:
                if not e.is_not_found:
                    raise
            self.written.record(key, sl["metadata"]["name"], None)
        for sl in plan.update:
            try:
                out = await self.client.update(self.slice_rt, make(sl))
            except ClientError as e:
                if e.is_not_found:
                    continue
                raise
            self.written.record(key, out["metadata"]["name"], out["metadata"].get("resourceVersion"))
        for body in plan.create:
            try:
                out = await self.client.create(self.slice_rt, make(body), ns)
            except ClientError as e:
                if e.is_forbidden or e.is_not_found:
                    return  # namespace terminating
                raise
            self.written.record(key, out["metadata"]["name"], out["metadata"].get("resourceVersion"))

    def cache_is_stale(self, key: str) -> bool:
        cached = {s["metadata"]["name"]: s for s in self.slices.list(split_key(key)[0])}
        if self.written.stale(key, cached):
            self.enqueue_after(key, self.stale_retry)
            return True
        self.written.settle(key)
        return False

    async def delete_all(self, key: str, ns: str) -> None:
        for sl in self.owned_slices(key):
            try:
                await self.client.delete(self.slice_rt, ns, sl["metadata"]["name"])
            except ClientError as e:
                if not e.is_not_found:
                    raise


class EndpointSliceController(_SliceWriter):
    name = "endpointslice-controller"
    aliases = ("endpointslice",)
    event_component = "endpoint-slice-controller"
    managed_by = CONTROLLER_NAME

    def __init__(self, ctx: ControllerContext) -> None:
        self.cfg: EndpointSliceConfig = controller_config(ctx, self.name, EndpointSliceConfig)
        super().__init__(ctx, workers=self.cfg.concurrent_syncs)
        self.stale_retry = self.cfg.stale_cache_retry
        self._init_slices(ctx)
        self.pod_rt = ctx.rt("", "v1", "pods")
        self.services = self.informer(self.svc_rt)
        self.pods = self.informer(self.pod_rt)
        self.nodes = self.informer(ctx.rt("", "v1", "nodes"))
        self.tracker = TriggerTimeTracker()
        self.services.add_handler(self.enqueue, self.enqueue_update, self.enqueue)
        self.pods.add_handler(self._pod_event, self._pod_updated, self._pod_event)
        self.nodes.add_handler(None, self._node_updated, None)

    def _services_of(self, pod: Obj) -> list[str]:
        return [key_of(s) for s in self.services.list(pod["metadata"].get("namespace")) if service_selects(s, pod)]

    def _add(self, key: str) -> None:
        if self.cfg.batch_period:
            self.queue.add_after(key, self.cfg.batch_period)
        else:
            self.queue.add(key)

    def _pod_event(self, pod: Obj) -> None:
        for key in self._services_of(pod):
            self._add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        labels_changed = old["metadata"].get("labels") != new["metadata"].get("labels")
        if not labels_changed and pod_endpoint_state(old) == pod_endpoint_state(new):
            return
        keys = set(self._services_of(new))
        if labels_changed:
            keys |= set(self._services_of(old))
        for key in keys:
            self._add(key)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if (old["metadata"].get("labels") or {}).get(ZONE_LABEL) == (new["metadata"].get("labels") or {}).get(ZONE_LABEL):
            return
        keys = set()
        for pod in self.pods.by_index("spec.nodeName", new["metadata"]["name"]):
            keys.update(self._services_of(pod))
        for key in keys:
            self._add(key)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(ns, name)
        if svc is None:
            self.tracker.forget(key)
            self.written.settle(key)
            await self.delete_all(key, ns)  # the garbage collector would too (ownerReferences)
            return
        if service_selector(svc) is None or svc["metadata"].get("deletionTimestamp"):
            return
        if self.cache_is_stale(key):
            return
        pods = [p for p in self.pods.list(ns) if service_selects(svc, p)]
        trigger = self.tracker.compute(svc, pods)
        nodes = {n["metadata"]["name"]: n for n in self.nodes.list()}
        desired = desired_endpoints(svc, pods, nodes)
        existing = self.owned_slices(key)
        plan = plan_slices(desired, existing, self.cfg.max_endpoints_per_slice)
        labels = slice_labels(svc, CONTROLLER_NAME)
        # slices whose labels or owner drifted (service labels changed) are rewritten too
        touched = {s["metadata"]["name"] for s in plan.update + plan.delete}
        for sl in existing:
            if sl["metadata"]["name"] in touched:
                continue
            if (sl["metadata"].get("labels") or {}) != labels:
                plan.update.append(copy.deepcopy(sl))
        address_type = "IPv6" if "IPv6" == ((svc.get("spec") or {}).get("ipFamilies") or ["IPv4"])[0] else "IPv4"

        def make(sl: Obj) -> Obj:
            meta = sl.get("metadata")
            if meta is None:
                meta = {"generateName": generate_name(name), "namespace": ns,
                        "ownerReferences": [owner_ref(svc)]}
                sl = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
                      "addressType": address_type, **sl}
            meta["labels"] = dict(labels)
            ann = meta.setdefault("annotations", {})
            if trigger is not None:
                ann[LAST_CHANGE_TRIGGER_TIME] = format_trigger_time(trigger)
            if not ann:
                meta.pop("annotations", None)
            if not sl.get("endpoints"):
                sl["endpoints"] = []
            return sl

        try:
            await self.apply_plan(key, ns, plan, make)
        except ClientError:
            self.tracker.forget(key)
            raise


class EndpointSliceMirroringController(_SliceWriter):
    name = "endpointslice-mirroring-controller"
    aliases = ("endpointslicemirroring",)
    event_component = "endpoint-slice-mirroring-controller"
    managed_by = MIRRORING_CONTROLLER_NAME

    def __init__(self, ctx: ControllerContext) -> None:
        self.cfg: EndpointSliceMirroringConfig = controller_config(ctx, self.name, EndpointSliceMirroringConfig)
        super().__init__(ctx, workers=self.cfg.concurrent_syncs)
        self.stale_retry = self.cfg.stale_cache_retry
        self._init_slices(ctx)
        self.ep_rt = ctx.rt("", "v1", "endpoints")
        self.services = self.informer(self.svc_rt)
        self.endpoints = self.informer(self.ep_rt)
        self.services.add_handler(self.enqueue, self.enqueue_update, self.enqueue)
        self.endpoints.add_handler(self.enqueue, self.enqueue_update, self.enqueue)

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        ep = self.endpoints.get(ns, name)
        if ns == "default" and name == "kubernetes":
            await self._sync_kubernetes(ep)
            return
        svc = self.services.get(ns, name)
        if (ep is None or svc is None or service_selector(svc) is not None
                or (ep["metadata"].get("labels") or {}).get(SKIP_MIRROR_LABEL) == "true"):
            self.written.settle(key)
            await self.delete_all(key, ns)
            return
        if self.cache_is_stale(key):
            return
        desired = mirrored_endpoints(ep, self.cfg.max_endpoints_per_subset)
        existing = self.owned_slices(key)
        plan = plan_slices(desired, existing, self.cfg.max_endpoints_per_subset, placeholder=False)
        labels = mirrored_labels(ep, svc)
        annotations = mirrored_annotations(ep)
        touched = {s["metadata"]["name"] for s in plan.update + plan.delete}
        for sl in existing:
            if sl["metadata"]["name"] not in touched and (
                    (sl["metadata"].get("labels") or {}) != labels
                    or (sl["metadata"].get("annotations") or {}) != annotations):
                plan.update.append(copy.deepcopy(sl))

        def make(sl: Obj) -> Obj:
            meta = sl.get("metadata")
            if meta is None:
                meta = {"generateName": generate_name(name), "namespace": ns, "ownerReferences": [owner_ref(svc)]}
                sl = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
                      "addressType": "IPv4", **sl}
            meta["labels"] = dict(labels)
            if annotations:
                meta["annotations"] = dict(annotations)
            else:
                meta.pop("annotations", None)
            return sl

        await self.apply_plan(key, ns, plan, make)

    async def _sync_kubernetes(self, ep: Obj | None) -> None:
        """The API server's own slice: `default/kubernetes`, one slice mirroring the `kubernetes` Endpoints."""
        current = self.slices.get("default", "kubernetes")
        if ep is None:
            return  # the API server recreates its Endpoints; keep the slice meanwhile
        subsets = ep.get("subsets") or []
        endpoints = [{"addresses": [a["ip"]], "conditions": {"ready": True}}
                     for s in subsets[:1] for a in s.get("addresses") or ()]
        ports = [{k: v for k, v in p.items() if k in ("name", "port", "protocol", "appProtocol")}
                 for s in subsets[:1] for p in s.get("ports") or ()]
        labels = {SERVICE_NAME_LABEL: "kubernetes", MANAGED_BY_LABEL: MIRRORING_CONTROLLER_NAME}
        if current is None:
            body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
                    "addressType": "IPv4", "endpoints": endpoints, "ports": ports}
            try:
                await self.client.create(self.slice_rt, body, "default")
            except ClientError as e:
                if not e.is_already_exists:
                    raise
            return
        if (current.get("endpoints") or []) == endpoints and (current.get("ports") or []) == ports \
                and (current["metadata"].get("labels") or {}) == labels:
            return
        updated = copy.deepcopy(current)
        updated["metadata"]["labels"] = labels
        updated["endpoints"] = endpoints
        updated["ports"] = ports
        await self.client.update(self.slice_rt, updated)


def mirrored_endpoints(ep: Obj, max_per_subset: int) -> dict[tuple, tuple[list[Obj], list[Obj]]]:
    """Endpoints subsets as slice groups: ready addresses `ready: true`, not-ready ones `ready: false`;
    at most `max_per_subset` addresses of each subset are mirrored (upstream's limit)."""
    groups: dict[tuple, tuple[list[Obj], list[Obj]]] = {}
    for s in ep.get("subsets") or ():
        ports = [{k: v for k, v in p.items() if k in ("name", "port", "protocol", "appProtocol")}
                 for p in s.get("ports") or ()]
        _, eps = groups.setdefault(ports_key(ports), (ports, []))
        items = [(a, True) for a in s.get("addresses") or ()] + [(a, False) for a in s.get("notReadyAddresses") or ()]
        for addr, ready in items[:max_per_subset]:
            e: Obj = {"addresses": [addr["ip"]], "conditions": {"ready": ready}}
            if addr.get("hostname"):
                e["hostname"] = addr["hostname"]
            if addr.get("targetRef"):
                e["targetRef"] = addr["targetRef"]
            if addr.get("nodeName"):
                e["nodeName"] = addr["nodeName"]
            eps.append(e)
    return groups


def mirrored_labels(ep: Obj, svc: Obj) -> dict[str, str]:
    labels = {k: v for k, v in (ep["metadata"].get("labels") or {}).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)}
    labels[SERVICE_NAME_LABEL] = svc["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = MIRRORING_CONTROLLER_NAME
    return labels


def mirrored_annotations(ep: Obj) -> dict[str, str]:
    return {k: v for k, v in (ep["metadata"].get("annotations") or {}).items()
            if k not in (LAST_APPLIED, LAST_CHANGE_TRIGGER_TIME)}
