"""The Endpoints controller (upstream's pkg/controller/endpoint): one `Endpoints` object per Service with a
selector, listing the IPs of the pods the selector matches — ready pods under `addresses`, the others under
`notReadyAddresses` (all under `addresses` with `publishNotReadyAddresses`) — with each service port resolved
against the pod (a targetPort number, or a named container port).  Services without a selector (among them
`default/kubernetes`, which the API server maintains) are left alone.

The pure helpers here (`service_selects`, `should_pod_be_in_endpoints`, `resolve_port`, `pod_hostname`,
`desired_subsets`, …) are shared with the EndpointSlice controller.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from kubelite.client import ClientError, key_of, make_key, split_key

from .controller_utils import is_pod_ready, now_rfc3339, timestamp
from .manager import Controller, ControllerContext

Obj = dict[str, Any]

LAST_CHANGE_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
HEADLESS_LABEL = "service.kubernetes.io/headless"
MAX_ENDPOINTS_CAPACITY = 1000  # upstream truncates Endpoints beyond this many addresses


@dataclass
class EndpointsConfig:
    """Settings of the endpoints controller (kube-controller-manager flags in comments)."""

    concurrent_syncs: int = 5  # --concurrent-endpoint-syncs
    # --endpoint-updates-batch-period: 0 = every pod change syncs at once
    batch_period: float = 0.0
    max_capacity: int = MAX_ENDPOINTS_CAPACITY


def controller_config(ctx: ControllerContext, name: str, cls: type) -> Any:
    """A controller's own settings: `config.extra[name]` (an instance of `cls`, or a dict of its fields)."""
    value = ctx.config.extra.get(name)
    if value is None:
        return cls()
    if isinstance(value, dict):
        return cls(**value)
    return value


# ---------------------------------------------------------------------------------------- decisions


def service_selector(svc: Obj) -> dict[str, str] | None:
    """The Service's selector, or None when it has none (an empty map counts as none, as upstream)."""
    sel = (svc.get("spec") or {}).get("selector")
    return sel if sel else None


def selector_matches(selector: dict[str, str], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def service_selects(svc: Obj, pod: Obj) -> bool:
    sel = service_selector(svc)
    return sel is not None and selector_matches(sel, pod["metadata"].get("labels"))


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or () if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def should_pod_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Upstream's ShouldPodBeInEndpoints: it has an IP, is not terminating (unless asked), and is not in a
    phase its restart policy makes final."""
    if not pod_ips(pod):
        return False
    if not include_terminating and pod["metadata"].get("deletionTimestamp"):
        return False
    phase = (pod.get("status") or {}).get("phase")
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    if policy == "Never":
        return phase not in ("Failed", "Succeeded")
    if policy == "OnFailure":
        return phase != "Succeeded"
    return True


def resolve_port(pod: Obj, svc_port: Obj) -> int | None:
    """The pod's port for a service port (upstream's FindPort): a number as is; a name looked up among the
    containers' (and sidecars') ports with the same protocol; None when the pod has no such port."""
    target = svc_port.get("targetPort")
    if target is None or target == "":
        target = svc_port.get("port")
    if isinstance(target, int):
        return target
    protocol = svc_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or ())
    containers += [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in c.get("ports") or ():
            if p.get("name") == target and (p.get("protocol") or "TCP") == protocol:
                return p.get("containerPort")
    return None


def pod_hostname(pod: Obj, svc: Obj) -> str | None:
    """A pod's hostname is published when its spec.subdomain names this Service (in its namespace)."""
    spec = pod.get("spec") or {}
    if (spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]
            and pod["metadata"].get("namespace") == svc["metadata"].get("namespace")):
        return spec["hostname"]
    return None


def endpoint_ports(pod: Obj, svc: Obj) -> list[Obj]:
    """The service's ports as this pod serves them (ports the pod lacks are left out)."""
    out = []
    for sp in (svc.get("spec") or {}).get("ports") or ():
        num = resolve_port(pod, sp)
        if num is None:
            continue
        p: Obj = {"port": num, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("name"):
            p["name"] = sp["name"]
        if sp.get("appProtocol"):
            p["appProtocol"] = sp["appProtocol"]
        out.append(p)
    return out


def _port_key(p: Obj) -> tuple:
    return (p.get("name") or "", p.get("port") or 0, p.get("protocol") or "TCP", p.get("appProtocol") or "")


def endpoint_address(pod: Obj, svc: Obj, ip: str) -> Obj:
    meta = pod["metadata"]
    addr: Obj = {"ip": ip}
    hostname = pod_hostname(pod, svc)
    if hostname:
        addr["hostname"] = hostname
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        addr["nodeName"] = node
    addr["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"],
                         "uid": meta.get("uid", "")}
    return addr


def desired_subsets(svc: Obj, pods: list[Obj], max_capacity: int = MAX_ENDPOINTS_CAPACITY) -> tuple[list[Obj], bool]:
    """The Endpoints subsets for `svc` from the pods its selector matched, packed as upstream's RepackSubsets
    does (addresses with the same ports share a subset), and whether they were truncated to `max_capacity`."""
    spec = svc.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    has_ports = bool(spec.get("ports"))
    groups: dict[tuple, tuple[list[Obj], list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, publish_not_ready):
            continue
        ips = pod_ips(pod)
        if has_ports:
            ports = endpoint_ports(pod, svc)
            if not ports:
                continue
        elif is_headless(svc):
            ports = []
        else:
            continue
        key = tuple(sorted(_port_key(p) for p in ports))
        ready, not_ready, _ = groups.setdefault(key, ([], [], sorted(ports, key=_port_key)))
        # upstream lists each pod once per address family; Endpoints carry the primary IP
        addr = endpoint_address(pod, svc, ips[0])
        if publish_not_ready or is_pod_ready(pod):
            ready.append(addr)
        else:
            not_ready.append(addr)
    subsets = []
    for ready, not_ready, ports in groups.values():
        subset: Obj = {}
        if ready:
            subset["addresses"] = sorted(ready, key=_addr_order)
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=_addr_order)
        if ports:
            subset["ports"] = ports
        subsets.append(subset)
    subsets.sort(key=lambda s: _addr_order((s.get("addresses") or s.get("notReadyAddresses"))[0]))
    return _truncate(subsets, max_capacity)


def _addr_order(addr: Obj) -> tuple:
    ip = addr.get("ip", "")
    parts = ip.split(".")
    numeric = tuple(int(x) for x in parts) if len(parts) == 4 and all(x.isdigit() for x in parts) else ()
    return (numeric, ip, (addr.get("targetRef") or {}).get("uid", ""))


def _truncate(subsets: list[Obj], max_capacity: int) -> tuple[list[Obj], bool]:
    """Upstream keeps at most 1000 addresses, ready ones first, spread over the subsets proportionally."""
    total = sum(len(s.get("addresses") or ()) + len(s.get("notReadyAddresses") or ()) for s in subsets)
    if total <= max_capacity:
        return subsets, False
    out, budget = [], max_capacity
    for s in subsets:
        s = dict(s)
        for field in ("addresses", "notReadyAddresses"):
            items = s.get(field) or []
            keep = items[:max(0, budget)]
            budget -= len(keep)
            if keep:
                s[field] = keep
            else:
                s.pop(field, None)
        if s.get("addresses") or s.get("notReadyAddresses"):
            out.append(s)
    return out, True


def endpoints_labels(svc: Obj) -> dict[str, str]:
    labels = dict(svc["metadata"].get("labels") or {})
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


def pod_trigger_time(pod: Obj) -> float | None:
    """When the pod last changed in a way endpoints care about: its Ready transition, else its creation."""
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready" and c.get("lastTransitionTime"):
            return timestamp(c["lastTransitionTime"])
    return timestamp(pod["metadata"].get("creationTimestamp"))


def pod_endpoint_state(pod: Obj) -> tuple:
    """What of a pod, if changed, changes the endpoints (the trigger-time tracker compares these)."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    return (meta.get("uid"), tuple(pod_ips(pod)), is_pod_ready(pod), bool(meta.get("deletionTimestamp")),
            (pod.get("status") or {}).get("phase"), spec.get("nodeName"), spec.get("hostname"),
            spec.get("subdomain"))


class TriggerTimeTracker:
    """Upstream's TriggerTimeTracker: the last-change-trigger-time of a sync is the earliest change (pod or
    service) not yet reflected in the endpoints the previous sync wrote."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[str | None, dict[str, tuple]]] = {}

    def compute(self, svc: Obj, pods: list[Obj]) -> float | None:
        key = key_of(svc)
        svc_rv, seen = self._state.get(key, (None, {}))
        times: list[float] = []
        now_state: dict[str, tuple] = {}
        for pod in pods:
            pk = pod["metadata"]["name"]
            st = pod_endpoint_state(pod)
            now_state[pk] = st
            if seen.get(pk) != st:
                t = pod_trigger_time(pod)
                if t is not None:
                    times.append(t)
        rv = svc["metadata"].get("resourceVersion")
        if svc_rv != rv:
            t = timestamp(svc["metadata"].get("creationTimestamp"))
            if t is not None:
                times.append(t)
        self._state[key] = (rv, now_state)
        return min(times) if times else None

    def forget(self, key: str) -> None:
        self._state.pop(key, None)


def format_trigger_time(t: float) -> str:
    """RFC 3339 with the fraction upstream's RFC3339Nano prints (none for whole seconds)."""
    whole = now_rfc3339(t)
    frac = round(t % 1, 9)
    if not frac:
        return whole
    digits = f"{frac:.9f}"[2:].rstrip("0")
    return whole[:-1] + "." + digits + "Z"


# ---------------------------------------------------------------------------------------- controller


class EndpointsController(Controller):
    name = "endpoints-controller"
    aliases = ("endpoint",)
    event_component = "endpoint-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        self.cfg: EndpointsConfig = controller_config(ctx, self.name, EndpointsConfig)
        super().__init__(ctx, workers=self.cfg.concurrent_syncs)
        self.svc_rt = ctx.rt("", "v1", "services")
        self.pod_rt = ctx.rt("", "v1", "pods")
        self.ep_rt = ctx.rt("", "v1", "endpoints")
        self.services = self.informer(self.svc_rt)
        self.pods = self.informer(self.pod_rt)
        self.endpoints = self.informer(self.ep_rt)
        self.tracker = TriggerTimeTracker()
        self.services.add_handler(self.enqueue, self.enqueue_update, self.enqueue)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_added)
        self.endpoints.add_handler(None, None, self._endpoints_deleted)

    # -- handlers -----------------------------------------------------------------------------------

    def _enqueue_services_of(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels")
        for svc in self.services.list(ns):
            sel = service_selector(svc)
            if sel is not None and selector_matches(sel, labels):
                self._enqueue_key(key_of(svc))

    def _enqueue_key(self, key: str) -> None:
        if self.cfg.batch_period:
            self.queue.add_after(key, self.cfg.batch_period)
        else:
            self.queue.add(key)

    def _pod_added(self, pod: Obj) -> None:
        self._enqueue_services_of(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if pod_endpoint_state(old) == pod_endpoint_state(new) and \
                old["metadata"].get("labels") == new["metadata"].get("labels"):
            return
        self._enqueue_services_of(new)
        if old["metadata"].get("labels") != new["metadata"].get("labels"):
            self._enqueue_services_of(old)

    def _endpoints_deleted(self, ep: Obj) -> None:
        # recreate it when its Service still wants one
        svc = self.services.get(ep["metadata"].get("namespace"), ep["metadata"]["name"])
        if svc is not None and service_selector(svc) is not None:
            self.queue.add(key_of(svc))

    # -- sync -----------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(ns, name)
        if svc is None:
            self.tracker.forget(key)
            if self.endpoints.get(ns, name) is not None:
                try:
                    await self.client.delete(self.ep_rt, ns, name)
                except ClientError as e:
                    if not e.is_not_found:
                        raise
            return
        if service_selector(svc) is None:
            return  # selector-less services' Endpoints belong to whoever made them
        if svc["metadata"].get("deletionTimestamp"):
            return
        pods = [p for p in self.pods.list(ns) if service_selects(svc, p)]
        trigger = self.tracker.compute(svc, pods)
        subsets, truncated = desired_subsets(svc, pods, self.cfg.max_capacity)
        labels = endpoints_labels(svc)
        current = self.endpoints.get(ns, name)
        if current is None:
            annotations: dict[str, str] = {}
            if trigger is not None:
                annotations[LAST_CHANGE_TRIGGER_TIME] = format_trigger_time(trigger)
            if truncated:
                annotations[OVER_CAPACITY] = "truncated"
            body: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                         "metadata": {"name": name, "namespace": ns, "labels": labels}, "subsets": subsets}
            if annotations:
                body["metadata"]["annotations"] = annotations
            try:
                await self.client.create(self.ep_rt, body, ns)
            except ClientError as e:
                if e.is_already_exists:
                    self.enqueue_after(key, 0.05)  # our informer lags; update it on the next pass
                    return
                if e.is_forbidden or e.is_not_found:
                    return  # namespace terminating
                raise
            return
        cur_ann = current["metadata"].get("annotations") or {}
        if (_strip(current.get("subsets") or []) == subsets and (current["metadata"].get("labels") or {}) == labels
                and (cur_ann.get(OVER_CAPACITY) == "truncated") == truncated):
            return
        updated = copy.deepcopy(current)
        meta = updated["metadata"]
        meta["labels"] = labels
        ann = meta.setdefault("annotations", {})
        if trigger is not None:
            ann[LAST_CHANGE_TRIGGER_TIME] = format_trigger_time(trigger)
        else:
            ann.pop(LAST_CHANGE_TRIGGER_TIME, None)
        if truncated:
            ann[OVER_CAPACITY] = "truncated"
        else:
            ann.pop(OVER_CAPACITY, None)
        if not ann:
            meta.pop("annotations", None)
        updated["subsets"] = subsets
        try:
            await self.client.update(self.ep_rt, updated)
        except ClientError:
            self.tracker.forget(key)  # report the same changes next time
            raise


def _strip(subsets: list[Obj]) -> list[Obj]:
    """Subsets as we write them (the server may add `resourceVersion` to targetRefs or drop empty lists)."""
    out = []
    for s in subsets:
        s2 = {}
        for field in ("addresses", "notReadyAddresses"):
            if s.get(field):
                s2[field] = [{k: ({kk: vv for kk, vv in v.items() if kk != "resourceVersion"}
                                  if k == "targetRef" else v) for k, v in a.items()} for a in s[field]]
        if s.get("ports"):
            s2["ports"] = s["ports"]
        out.append(s2)
    return out


def services_for_pod(services: list[Obj], pod: Obj) -> list[str]:
    return [make_key(s["metadata"].get("namespace"), s["metadata"]["name"]) for s in services
            if service_selects(s, pod)]
