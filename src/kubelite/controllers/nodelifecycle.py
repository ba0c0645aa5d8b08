"""Node lifecycle (upstream's pkg/controller/nodelifecycle) and taint-based eviction (pkg/controller/tainteviction).

`NodeLifecycleController` watches the kubelets' heartbeats — the Leases in `kube-node-lease` and the Node
conditions.  A node not heard from for `node_monitor_grace_period` (`node_startup_grace_period` while it never
posted a Ready condition) gets Ready/MemoryPressure/DiskPressure/PIDPressure `Unknown` (reason
`NodeStatusUnknown`, "Kubelet stopped posting node status."), a `NodeNotReady` event, its pods marked
`Ready=False`, and the taints `node.kubernetes.io/unreachable` (Ready Unknown) or
`node.kubernetes.io/not-ready` (Ready False): NoSchedule at once, NoExecute through a per-zone rate limiter
that stops evicting in a zone whose nodes are all down and everywhere when every zone is down (upstream's
disruption modes).  The taints go once the node is Ready again.

`TaintEvictionController` deletes pods on nodes with NoExecute taints: at once when a taint is not tolerated,
after the smallest `tolerationSeconds` of the matching tolerations otherwise (counted from the taint's
`timeAdded`), never for tolerations without seconds.  It records `TaintManagerEviction` events ("Marking for
deletion Pod ns/name", "Cancelling deletion of Pod ns/name") and sets the pod's `DisruptionTarget` condition
before deleting.  The DefaultTolerationSeconds admission plug-in normally gives every pod 300 s tolerations for
both taints; `assume_default_tolerations` makes pods without them behave as if they had them.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from typing import Any

from kubelite.client import ClientError, key_of, split_key

from . import controller_utils as cu
from .controller_utils import now_rfc3339, timestamp
from .endpoints import controller_config
from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.nodelifecycle")

Obj = dict[str, Any]

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
NODE_LEASE_NAMESPACE = "kube-node-lease"
MONITORED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
# condition (type, status) → the NoSchedule taint it brings (upstream's nodeConditionToTaintKeyStatusMap)
CONDITION_TAINTS = {
    ("Ready", "False"): TAINT_NOT_READY,
    ("Ready", "Unknown"): TAINT_UNREACHABLE,
    ("MemoryPressure", "True"): TAINT_MEMORY_PRESSURE,
    ("DiskPressure", "True"): TAINT_DISK_PRESSURE,
    ("PIDPressure", "True"): TAINT_PID_PRESSURE,
    ("NetworkUnavailable", "True"): TAINT_NETWORK_UNAVAILABLE,
}
CONDITION_TAINT_KEYS = frozenset(CONDITION_TAINTS.values()) | {TAINT_UNSCHEDULABLE}
ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
REGION_LABELS = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")


@dataclass
class NodeLifecycleConfig:
    """kube-controller-manager's node lifecycle settings (flags in comments, upstream's v1.33 defaults)."""

    node_monitor_period: float = 5.0  # --node-monitor-period
    node_monitor_grace_period: float = 50.0  # --node-monitor-grace-period (40 s before v1.32)
    node_startup_grace_period: float = 60.0  # --node-startup-grace-period
    node_eviction_rate: float = 0.1  # --node-eviction-rate: nodes per second NoExecute-tainted in a healthy zone
    secondary_node_eviction_rate: float = 0.01  # --secondary-node-eviction-rate
    large_cluster_size_threshold: int = 50  # --large-cluster-size-threshold
    unhealthy_zone_threshold: float = 0.55  # --unhealthy-zone-threshold
    workers: int = 5


@dataclass
class TaintEvictionConfig:
    workers: int = 8
    # pods without tolerations for not-ready/unreachable get these (the DefaultTolerationSeconds admission
    # plug-in's job; set when the API server does not add them)
    assume_default_tolerations: bool = False
    default_toleration_seconds: int = 300  # --default-not-ready/unreachable-toleration-seconds


# ---------------------------------------------------------------------------------------- decisions


def condition(node: Obj, type_: str) -> Obj | None:
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return c
    return None


def ready_status(node: Obj) -> str | None:
    c = condition(node, "Ready")
    return c.get("status") if c else None


def unknown_conditions(node: Obj, now: float) -> list[Obj]:
    """The monitored conditions set to Unknown (only those that change), as upstream's tryUpdateNodeHealth."""
    stamp = now_rfc3339(now)
    out = []
    for ctype in MONITORED_CONDITIONS:
        c = condition(node, ctype)
        if c is None:
            out.append({"type": ctype, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                        "message": "Kubelet never posted node status.", "lastHeartbeatTime": stamp,
                        "lastTransitionTime": stamp})
        elif c.get("status") != "Unknown":
            new = dict(c)
            new.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                       lastTransitionTime=stamp)
            out.append(new)
    return out


def zone_key(node: Obj) -> str:
    labels = node["metadata"].get("labels") or {}
    region = next((labels[k] for k in REGION_LABELS if labels.get(k)), "")
    zone = next((labels[k] for k in ZONE_LABELS if labels.get(k)), "")
    return f"{region}:\x00:{zone}" if region or zone else ""


def zone_state(ready: int, not_ready: int, threshold: float) -> str:
    """Upstream's ComputeZoneState: Normal, PartialDisruption or FullDisruption."""
    if ready == 0 and not_ready > 0:
        return "FullDisruption"
    if not_ready > 2 and not_ready / max(1, ready + not_ready) >= threshold:
        return "PartialDisruption"
    return "Normal"


def desired_condition_taints(node: Obj) -> list[Obj]:
    """The NoSchedule taints the node's conditions (and spec.unschedulable) call for."""
    taints = []
    for c in (node.get("status") or {}).get("conditions") or ():
        key = CONDITION_TAINTS.get((c.get("type"), c.get("status")))
        if key:
            taints.append({"key": key, "effect": NO_SCHEDULE})
    if (node.get("spec") or {}).get("unschedulable"):
        taints.append({"key": TAINT_UNSCHEDULABLE, "effect": NO_SCHEDULE})
    return taints


def no_execute_key(node: Obj) -> str | None:
    status = ready_status(node)
    if status == "False":
        return TAINT_NOT_READY
    if status == "Unknown":
        return TAINT_UNREACHABLE
    return None


def merge_taints(current: list[Obj], no_schedule: list[Obj], no_execute: str | None, *, allow_add_no_execute: bool,
                 now: float) -> list[Obj]:
    """The node's taints with our condition taints brought in line; others' taints untouched.  A NoExecute
    taint is swapped (not-ready ↔ unreachable) freely but only added when `allow_add_no_execute`."""
    want_ns = {t["key"] for t in no_schedule}
    out, have_ne = [], set()
    for t in current:
        key, effect = t.get("key"), t.get("effect")
        if key in CONDITION_TAINT_KEYS and effect == NO_SCHEDULE:
            if key in want_ns:
                out.append(t)
                want_ns.discard(key)
            continue
        if key in (TAINT_NOT_READY, TAINT_UNREACHABLE) and effect == NO_EXECUTE:
            have_ne.add(key)
            if key == no_execute:
                out.append(t)
            continue
        out.append(t)
    for t in no_schedule:
        if t["key"] in want_ns:
            out.append(dict(t))
    if no_execute and no_execute not in have_ne and (have_ne or allow_add_no_execute):
        out.append({"key": no_execute, "effect": NO_EXECUTE, "timeAdded": now_rfc3339(now)})
    return out


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """core/v1 ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    op = toleration.get("operator") or "Equal"
    if not key:
        return op == "Exists"
    if key != taint.get("key"):
        return False
    if op == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def with_default_tolerations(tolerations: list[Obj], seconds: int) -> list[Obj]:
    """What the DefaultTolerationSeconds admission plug-in adds: 300 s for not-ready and unreachable unless
    the pod already tolerates them."""
    out = list(tolerations)
    for key in (TAINT_NOT_READY, TAINT_UNREACHABLE):
        taint = {"key": key, "effect": NO_EXECUTE}
        if not any(tolerates(t, taint) for t in tolerations):
            out.append({"key": key, "operator": "Exists", "effect": NO_EXECUTE, "tolerationSeconds": seconds})
    return out


def eviction_time(taints: list[Obj], tolerations: list[Obj], now: float) -> float | None:
    """When a pod on a node with these taints is to be evicted: None = never (no NoExecute taints, or all
    tolerated forever); `now` = at once (a taint not tolerated); else the taint's timeAdded + the smallest
    tolerationSeconds among the matching tolerations."""
    ne = [t for t in taints if t.get("effect") == NO_EXECUTE]
    if not ne:
        return None
    best: float | None = None
    for taint in ne:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return now
        since = timestamp(taint.get("timeAdded")) or now
        for t in matching:
            secs = t.get("tolerationSeconds")
            if secs is None:
                continue
            at = since + max(0, int(secs))
            best = at if best is None else min(best, at)
    return best


# ---------------------------------------------------------------------------------------- node lifecycle


class _ZoneLimiter:
    """A token bucket per zone (burst 1), as upstream's RateLimitedTimedQueue; rate 0 stops additions."""

    def __init__(self) -> None:
        self.next_at: dict[str, float] = {}

    def try_take(self, zone: str, rate: float, now: float) -> bool:
        if rate <= 0:
            return False
        at = self.next_at.get(zone, 0.0)
        if now < at:
            return False
        self.next_at[zone] = now + 1.0 / rate
        return True


class NodeLifecycleController(Controller):
    name = "node-lifecycle-controller"
    aliases = ("nodelifecycle",)
    event_component = "node-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        self.cfg: NodeLifecycleConfig = controller_config(ctx, self.name, NodeLifecycleConfig)
        super().__init__(ctx, workers=self.cfg.workers)
        self.node_rt = ctx.rt("", "v1", "nodes")
        self.pod_rt = ctx.rt("", "v1", "pods")
        self.nodes = self.informer(self.node_rt)
        self.pods = self.informer(self.pod_rt)
        self.leases = self.informer(ctx.rt("coordination.k8s.io", "v1", "leases"), namespace=NODE_LEASE_NAMESPACE)
        # node name → (local time of the last heartbeat seen, lease renewTime, Ready heartbeat)
        self.health: dict[str, tuple[float, str | None, str | None]] = {}
        self.zone_limiter = _ZoneLimiter()
        self.zone_states: dict[str, str] = {}
        self.nodes.add_handler(self._node_seen, lambda o, n: self._node_seen(n), self._node_gone)
        self.leases.add_handler(self._lease_seen, lambda o, n: self._lease_seen(n), None)

    # -- heartbeats ------------------------------------------------------------------------------------

    def _observe(self, name: str, lease_rv: str | None = None, hb: str | None = None, *, clock: float | None = None
                 ) -> None:
        now = time.time() if clock is None else clock
        seen, lease, beat = self.health.get(name, (now, None, None))
        changed = name not in self.health
        if lease_rv is not None and lease_rv != lease:
            lease, changed = lease_rv, True
        if hb is not None and hb != beat:
            beat, changed = hb, True
        self.health[name] = (now if changed else seen, lease, beat)

    def _node_seen(self, node: Obj) -> None:
        c = condition(node, "Ready")
        self._observe(node["metadata"]["name"], hb=(c or {}).get("lastHeartbeatTime"))
        self.queue.add(node["metadata"]["name"])

    def _node_gone(self, node: Obj) -> None:
        self.health.pop(node["metadata"]["name"], None)

    def _lease_seen(self, lease: Obj) -> None:
        name = lease["metadata"]["name"]
        renew = (lease.get("spec") or {}).get("renewTime")
        if renew:
            self._observe(name, lease_rv=renew)

    async def start(self) -> None:
        self.run_periodic(self._monitor, self.cfg.node_monitor_period)

    async def _monitor(self) -> None:
        self._compute_zone_states()
        for name in self.nodes.keys():
            self.queue.add(name)

    def _compute_zone_states(self) -> None:
        counts: dict[str, list[int]] = {}
        for node in self.nodes.list():
            c = counts.setdefault(zone_key(node), [0, 0])
            c[0 if ready_status(node) == "True" else 1] += 1
        self.zone_states = {z: zone_state(r, nr, self.cfg.unhealthy_zone_threshold) for z, (r, nr) in counts.items()}

    def _eviction_rate(self, zone: str) -> float:
        states = self.zone_states
        if states and all(s == "FullDisruption" for s in states.values()):
            return 0.0  # every node down: the control plane is more likely cut off than the nodes dead
        state = states.get(zone, "Normal")
        if state == "PartialDisruption":
            size = sum(1 for n in self.nodes.list() if zone_key(n) == zone)
            return self.cfg.secondary_node_eviction_rate if size > self.cfg.large_cluster_size_threshold else 0.0
        return self.cfg.node_eviction_rate

    # -- one node --------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        node = self.nodes.get(None, key)
        if node is None:
            return
        now = time.time()
        if key not in self.health:
            self._observe(key, clock=now)
        probe = self.health[key][0]
        ready = condition(node, "Ready")
        never = ready is None or ready.get("reason") == "NodeStatusNeverUpdated"
        grace = self.cfg.node_startup_grace_period if never else self.cfg.node_monitor_grace_period
        was_ready = ready_status(node) == "True"
        if now >= probe + grace:
            changes = unknown_conditions(node, now)
            if changes:
                node = await self.client.patch(self.node_rt, None, key, {"status": {"conditions": changes}},
                                               patch_type="strategic", subresource="status")
        else:
            self.enqueue_after(key, probe + grace - now + 0.01)
        if was_ready and ready_status(node) != "True":
            self.recorder.event(_node_ref(node), "Normal", "NodeNotReady", f"Node {key} status is now: NodeNotReady")
        if ready_status(node) != "True":
            await self._mark_pods_not_ready(node)
        await self._sync_taints(node, now)

    async def _mark_pods_not_ready(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        for pod in self.pods.by_index("spec.nodeName", name):
            if pod["metadata"].get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded",
                                                                                                   "Failed"):
                continue
            conds = (pod.get("status") or {}).get("conditions") or []
            ready = next((c for c in conds if c.get("type") == "Ready"), None)
            if ready is None or ready.get("status") == "False":
                continue
            new = dict(ready, status="False", lastTransitionTime=now_rfc3339())
            try:
                await self.client.patch(self.pod_rt, pod["metadata"].get("namespace"), pod["metadata"]["name"],
                                        {"status": {"conditions": [new]}}, patch_type="strategic",
                                        subresource="status")
            except ClientError as e:
                if not e.is_not_found:
                    raise
                continue
            self.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")

    async def _sync_taints(self, node: Obj, now: float) -> None:
        current = cu.dict_items((node.get("spec") or {}).get("taints"))
        ne_key = no_execute_key(node)
        allow = False
        if ne_key and not any(t.get("key") in (TAINT_NOT_READY, TAINT_UNREACHABLE) and t.get("effect") == NO_EXECUTE
                              for t in current):
            zone = zone_key(node)
            allow = self.zone_limiter.try_take(zone, self._eviction_rate(zone), now)
            if not allow:
                self.enqueue_after(node["metadata"]["name"], max(self.cfg.node_monitor_period, 0.1))
        if ne_key and self.zone_states and all(s == "FullDisruption" for s in self.zone_states.values()):
            ne_key = None  # upstream's "master disruption mode": no NoExecute taints anywhere
        desired = merge_taints(current, desired_condition_taints(node), ne_key, allow_add_no_execute=allow, now=now)
        if _taint_ids(desired) == _taint_ids(current):
            return
        updated = copy.deepcopy(node)
        if desired:
            updated.setdefault("spec", {})["taints"] = desired
        else:
            updated.get("spec", {}).pop("taints", None)
        await self.client.update(self.node_rt, updated)


def _taint_ids(taints: list[Obj]) -> list[tuple]:
    return sorted((t.get("key"), t.get("value"), t.get("effect")) for t in taints)


def _node_ref(node: Obj) -> Obj:
    # upstream's node events use the node's name as its uid
    return {"kind": "Node", "apiVersion": "v1", "name": node["metadata"]["name"], "uid": node["metadata"]["name"]}


# ---------------------------------------------------------------------------------------- taint eviction


class TaintEvictionController(Controller):
    name = "taint-eviction-controller"
    aliases = ("tainteviction",)
    event_component = "taint-eviction-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        self.cfg: TaintEvictionConfig = controller_config(ctx, self.name, TaintEvictionConfig)
        super().__init__(ctx, workers=self.cfg.workers)
        self.node_rt = ctx.rt("", "v1", "nodes")
        self.pod_rt = ctx.rt("", "v1", "pods")
        self.nodes = self.informer(self.node_rt)
        self.pods = self.informer(self.pod_rt)
        self.scheduled: dict[str, float] = {}  # pod key → eviction time announced
        self.nodes.add_handler(self._node_changed, self._node_updated, None)
        self.pods.add_handler(self._pod_changed, self._pod_updated, self._pod_deleted)

    def _node_changed(self, node: Obj) -> None:
        if any(t.get("effect") == NO_EXECUTE for t in cu.dict_items((node.get("spec") or {}).get("taints"))):
            self._enqueue_node_pods(node["metadata"]["name"])

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if (old.get("spec") or {}).get("taints") != (new.get("spec") or {}).get("taints"):
            self._enqueue_node_pods(new["metadata"]["name"])

    def _enqueue_node_pods(self, name: str) -> None:
        for key in self.pods.index_keys("spec.nodeName", name):
            self.queue.add(key)

    def _pod_changed(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.queue.add(key_of(pod))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        os_, ns_ = old.get("spec") or {}, new.get("spec") or {}
        if os_.get("nodeName") != ns_.get("nodeName") or os_.get("tolerations") != ns_.get("tolerations"):
            self._pod_changed(new)

    def _pod_deleted(self, pod: Obj) -> None:
        self.scheduled.pop(key_of(pod), None)

    def tolerations_of(self, pod: Obj) -> list[Obj]:
        tolerations = cu.dict_items((pod.get("spec") or {}).get("tolerations"))
        if self.cfg.assume_default_tolerations:
            tolerations = with_default_tolerations(tolerations, self.cfg.default_toleration_seconds)
        return tolerations

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        pod = self.pods.get(ns, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            self.scheduled.pop(key, None)
            return
        node = self.nodes.get(None, (pod.get("spec") or {}).get("nodeName") or "")
        taints = cu.dict_items(((node or {}).get("spec") or {}).get("taints"))
        now = time.time()
        at = eviction_time(taints, self.tolerations_of(pod), now) if node is not None else None
        if at is None:
            if self.scheduled.pop(key, None) is not None:
                self.recorder.event(pod, "Normal", "TaintManagerEviction", f"Cancelling deletion of Pod {key}")
            return
        if at > now:
            self.scheduled[key] = at
            self.enqueue_after(key, at - now)
            return
        self.scheduled.pop(key, None)
        self.recorder.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key}")
        await self._evict(pod)

    async def _evict(self, pod: Obj) -> None:
        meta = pod["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        cond = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": now_rfc3339()}
        try:
            await self.client.patch(self.pod_rt, ns, name, {"status": {"conditions": [cond]}},
                                    patch_type="strategic", subresource="status")
            await self.client.delete(self.pod_rt, ns, name, preconditions={"uid": meta.get("uid", "")})
        except ClientError as e:
            if not (e.is_not_found or e.is_conflict):
                raise
