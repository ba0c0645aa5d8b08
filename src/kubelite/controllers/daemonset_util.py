"""The DaemonSet controller's decisions (upstream's pkg/controller/daemon and its util package).

Which nodes should run a daemon pod (node name, nodeSelector, required node affinity, taints against the
template's tolerations plus the ones upstream adds to every daemon pod), the pod for a node (node affinity
`matchFields metadata.name In [node]` so the scheduler binds it there), and the rolling-update plan for
maxUnavailable / maxSurge.  Pure functions.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from . import controller_utils as cu
from .controllerhistory import HASH_LABEL

Obj = dict[str, Any]

TEMPLATE_GENERATION_LABEL = "pod-template-generation"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"


# ----------------------------------------------------------------------------------- tolerations & taints


def daemon_tolerations(pod_spec: Obj) -> list[Obj]:
    """The template's tolerations plus those upstream's AddOrUpdateDaemonPodTolerations adds."""
    tolerations = [dict(t) for t in cu.dict_items(pod_spec.get("tolerations"))]
    extra = [
        {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute"},
        {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
        {"key": TAINT_DISK_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
        {"key": TAINT_MEMORY_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
        {"key": TAINT_PID_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
        {"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"},
    ]
    if pod_spec.get("hostNetwork"):
        extra.append({"key": TAINT_NETWORK_UNAVAILABLE, "operator": "Exists", "effect": "NoSchedule"})
    for t in extra:
        # add or replace the toleration of the same key, operator and effect (upstream's AddOrUpdateToleration)
        same = [i for i, x in enumerate(tolerations) if x.get("key") == t["key"]
                and (x.get("operator") or "Equal") == t["operator"] and x.get("effect", "") == t["effect"]]
        if same:
            tolerations[same[0]] = t
        else:
            tolerations.append(t)
    return tolerations


def tolerates(toleration: Obj, taint: Obj) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    op = toleration.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if op == "Exists":
        return True
    if not key and op == "Equal":
        return False
    return (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taints(node: Obj, tolerations: list[Obj], effects: tuple[str, ...]) -> list[Obj]:
    return [t for t in cu.dict_items((node.get("spec") or {}).get("taints"))
            if t.get("effect") in effects and not any(tolerates(tol, t) for tol in tolerations)]


# ------------------------------------------------------------------------------------------ node affinity


def _requirement_matches(req: Obj, value: str | None, present: bool) -> bool:
    op = req.get("operator")
    values = req.get("values") or []
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            a, b = int(value or ""), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def term_matches(term: Obj, node: Obj) -> bool:
    """A NodeSelectorTerm: all its requirements (labels and the metadata.name field) hold; an empty term
    matches nothing."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    for req in exprs:
        key = req.get("key", "")
        if not _requirement_matches(req, labels.get(key), key in labels):
            return False
    for req in fields:
        if req.get("key") != "metadata.name":
            return False
        if not _requirement_matches(req, node["metadata"]["name"], True):
            return False
    return True


def node_affinity_matches(pod_spec: Obj, node: Obj) -> bool:
    labels = node["metadata"].get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return any(term_matches(t, node) for t in required.get("nodeSelectorTerms") or ())


def should_run(ds: Obj, node: Obj) -> tuple[bool, bool]:
    """(shouldRun, shouldContinueRunning) as upstream's NodeShouldRunDaemonPod."""
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    wanted = spec.get("nodeName")
    if wanted and wanted != node["metadata"]["name"]:
        return False, False
    if not node_affinity_matches(spec, node):
        return False, False
    tolerations = daemon_tolerations(spec)
    if untolerated_taints(node, tolerations, ("NoExecute",)):
        return False, False
    if untolerated_taints(node, tolerations, ("NoSchedule",)):
        return False, True
    return True, True


# -------------------------------------------------------------------------------------------------- pods


def target_node(pod: Obj) -> str:
    """spec.nodeName, or the node the pod's `matchFields metadata.name` affinity pins it to."""
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        return node
    required = ((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or ():
        for req in term.get("matchFields") or ():
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and len(req.get("values") or []) == 1:
                return req["values"][0]
    return ""


def pin_to_node(pod_spec: Obj, node_name: str) -> None:
    """Replace the required node affinity with `metadata.name In [node]` (upstream's
    ReplaceDaemonSetPodNodeNameNodeAffinity); preferred terms stay."""
    affinity = pod_spec.setdefault("affinity", {})
    na = affinity.setdefault("nodeAffinity", {})
    na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}


def new_pod(ds: Obj, hash_: str, node_name: str, ref: Obj) -> Obj:
    template = (ds.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    labels[HASH_LABEL] = hash_
    gen = ds["metadata"].get("generation")
    if gen:
        labels[TEMPLATE_GENERATION_LABEL] = str(gen)
    meta: Obj = {"generateName": ds["metadata"]["name"] + "-", "namespace": ds["metadata"]["namespace"],
                 "labels": labels, "ownerReferences": [ref]}
    for f in ("annotations", "finalizers"):
        if tmeta.get(f):
            meta[f] = copy.deepcopy(tmeta[f])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["tolerations"] = daemon_tolerations(spec)
    pin_to_node(spec, node_name)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def is_updated(pod: Obj, hash_: str) -> bool:
    return (pod["metadata"].get("labels") or {}).get(HASH_LABEL) == hash_


def created_key(pod: Obj) -> tuple[str, str]:
    return pod["metadata"].get("creationTimestamp") or "", pod["metadata"].get("name") or ""


# ------------------------------------------------------------------------------------------------ manage


@dataclass
class NodePlan:
    create_on: list[str] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    failed: list[Obj] = field(default_factory=list)  # failed pods being deleted (FailedDaemonPod events)


def manage(ds: Obj, nodes: list[Obj], pods_by_node: dict[str, list[Obj]], hash_: str) -> NodePlan:
    """Upstream's podsShouldBeOnNode over every node: create where missing, delete failed, surplus and
    misscheduled pods.  With maxSurge a node may keep an old and a new pod (the rolling update settles it)."""
    out = NodePlan()
    surge = max_surge(ds, len(nodes)) > 0 if is_rolling(ds) else False
    known = {n["metadata"]["name"] for n in nodes}
    for node in nodes:
        name = node["metadata"]["name"]
        run, keep = should_run(ds, node)
        pods = [p for p in pods_by_node.get(name, []) if not p["metadata"].get("deletionTimestamp")]
        if run and not pods_by_node.get(name):
            out.create_on.append(name)
            continue
        if not keep:
            out.delete.extend(pods)
            continue
        alive = []
        # a failed pod is deleted now and replaced on a later sync, once it is gone
        for p in pods:
            if (p.get("status") or {}).get("phase") == "Failed":
                out.failed.append(p)
            else:
                alive.append(p)
        if len(alive) > 1:
            alive.sort(key=created_key)
            if surge:
                new = [p for p in alive if is_updated(p, hash_)]
                old = [p for p in alive if not is_updated(p, hash_)]
                keep_pods = ([old[0]] if old else []) + ([new[0]] if new else [])
                out.delete.extend(p for p in alive if p not in keep_pods)
            else:
                out.delete.extend(alive[1:])
    for name, pods in pods_by_node.items():
        if name not in known:
            out.delete.extend(p for p in pods if not p["metadata"].get("deletionTimestamp"))
    out.delete.extend(out.failed)
    return out


# ---------------------------------------------------------------------------------------- rolling update


def is_rolling(ds: Obj) -> bool:
    return (((ds.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def _scaled(value: int | str | None, total: int, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        pct = int(text[:-1]) * total / 100
        return math.ceil(pct) if round_up else math.floor(pct)
    return int(text)


def _rolling(ds: Obj) -> Obj:
    return (((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {})


def max_surge(ds: Obj, desired: int) -> int:
    return _scaled(_rolling(ds).get("maxSurge", 0), desired, True)


def max_unavailable(ds: Obj, desired: int) -> int:
    """Upstream's unavailableCount: percentages round up; 0 with 0 surge becomes 1."""
    ru = _rolling(ds)
    unavailable = _scaled(ru.get("maxUnavailable", 1), desired, True)
    if unavailable == 0 and max_surge(ds, desired) == 0:
        return 1
    return unavailable


def rolling_update(ds: Obj, nodes: list[Obj], pods_by_node: dict[str, list[Obj]], hash_: str,
                   now: float) -> tuple[list[Obj], list[str]]:
    """(old pods to delete, nodes needing a new pod) for one rolling-update step."""
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    eligible = [n["metadata"]["name"] for n in nodes if should_run(ds, n)[0]]
    desired = len(eligible)
    surge = max_surge(ds, desired)
    unavailable_budget = max_unavailable(ds, desired)
    if surge == 0:
        num_unavailable = 0
        allowed: list[Obj] = []
        candidates: list[Obj] = []
        for name in eligible:
            pods = [p for p in pods_by_node.get(name, []) if not p["metadata"].get("deletionTimestamp")]
            new = [p for p in pods if is_updated(p, hash_)]
            old = [p for p in pods if not is_updated(p, hash_)]
            if len(new) > 1 or len(old) > 1:
                num_unavailable += 1
                continue
            if not new and not old:
                num_unavailable += 1
            elif new and old:
                continue
            elif new:
                if not cu.is_pod_available(new[0], min_ready, now):
                    num_unavailable += 1
            else:
                if not cu.is_pod_available(old[0], min_ready, now):
                    allowed.append(old[0])  # already unavailable: replacing it costs nothing
                elif num_unavailable < unavailable_budget:
                    candidates.append(old[0])
        remaining = max(unavailable_budget - num_unavailable, 0)
        return allowed + candidates[:remaining], []
    to_delete: list[Obj] = []
    allowed_new: list[str] = []
    candidate_new: list[str] = []
    num_surge = 0
    for name in eligible:
        pods = [p for p in pods_by_node.get(name, []) if not p["metadata"].get("deletionTimestamp")]
        new = [p for p in pods if is_updated(p, hash_)]
        old = [p for p in pods if not is_updated(p, hash_)]
        if not old:
            continue
        if not new:
            if not cu.is_pod_available(old[0], min_ready, now):
                allowed_new.append(name)
            else:
                candidate_new.append(name)
            continue
        num_surge += 1
        if cu.is_pod_available(new[0], min_ready, now):
            to_delete.append(old[0])
    remaining = max(surge - num_surge, 0)
    return to_delete, allowed_new + candidate_new[:remaining]


# -------------------------------------------------------------------------------------------------- status


def compute_status(ds: Obj, nodes: list[Obj], pods_by_node: dict[str, list[Obj]], hash_: str, now: float) -> Obj:
    min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
    desired = current = misscheduled = ready = available = updated = 0
    for node in nodes:
        name = node["metadata"]["name"]
        run, _ = should_run(ds, node)
        pods = sorted(pods_by_node.get(name, []), key=created_key)
        if run:
            desired += 1
            if pods:
                current += 1
                pod = pods[0]
                if cu.is_pod_ready(pod):
                    ready += 1
                    if cu.is_pod_available(pod, min_ready, now):
                        available += 1
                if is_updated(pod, hash_):
                    updated += 1
        elif pods:
            misscheduled += 1
    status: Obj = {"desiredNumberScheduled": desired, "currentNumberScheduled": current,
                   "numberMisscheduled": misscheduled, "numberReady": ready}
    if available:
        status["numberAvailable"] = available
    if updated:
        status["updatedNumberScheduled"] = updated
    if desired - available > 0:
        status["numberUnavailable"] = desired - available
    gen = ds["metadata"].get("generation")
    if gen:
        status["observedGeneration"] = gen
    old = ds.get("status") or {}
    for k in ("collisionCount", "conditions"):
        if old.get(k) is not None:
            status[k] = old[k]
    return status
