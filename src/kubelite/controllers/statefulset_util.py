"""The StatefulSet controller's decisions (upstream's stateful_set_utils.go and stateful_set_control.go).

`plan(...)` turns a set and its pods into the actions of one sync, in upstream's order: replace failed pods,
create missing ones (OrderedReady: one at a time, each waiting for the previous to be Running and Ready;
Parallel: all at once), delete condemned ones (highest ordinal first), then the rolling update (highest
ordinal down to `partition`, one pod at a time, each waiting for the replacement to be healthy).  The
controller carries the actions out; everything here is pure.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from . import controller_utils as cu
from .controllerhistory import HASH_LABEL

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_NAME_RE = re.compile(r"^(.*)-([0-9]+)$")


# --------------------------------------------------------------------------------------------- identity


def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    """("web", 2) for web-2; ("", -1) when the name carries no ordinal."""
    m = _NAME_RE.match(pod["metadata"].get("name") or "")
    if not m:
        return "", -1
    return m.group(1), int(m.group(2))


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def is_member_of(sts: Obj, pod: Obj) -> bool:
    return parent_and_ordinal(pod)[0] == sts["metadata"]["name"]


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(template_name: str, sts: Obj, ordinal: int) -> str:
    return f"{template_name}-{sts['metadata']['name']}-{ordinal}"


def replicas(sts: Obj) -> int:
    r = (sts.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def start_ordinal(sts: Obj) -> int:
    return int(((sts.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def is_parallel(sts: Obj) -> bool:
    return (sts.get("spec") or {}).get("podManagementPolicy") == "Parallel"


def update_strategy(sts: Obj) -> tuple[str, int]:
    """(type, partition)."""
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    stype = strategy.get("type") or "RollingUpdate"
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    return stype, partition


def retention_policy(sts: Obj) -> tuple[str, str]:
    """(whenDeleted, whenScaled), each Retain or Delete."""
    p = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return p.get("whenDeleted") or "Retain", p.get("whenScaled") or "Retain"


def pod_revision(pod: Obj) -> str:
    return (pod["metadata"].get("labels") or {}).get(HASH_LABEL, "")


# ------------------------------------------------------------------------------------------- pod states


def is_created(pod: Obj | None) -> bool:
    return pod is not None and bool((pod.get("status") or {}).get("phase") or pod["metadata"].get("uid"))


def is_failed(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Failed"


def is_succeeded(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Succeeded"


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and cu.is_pod_ready(pod)


def is_running_and_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and cu.is_pod_available(pod, min_ready_seconds, now)


def is_healthy(pod: Obj, min_ready_seconds: int = 0, now: float = 0.0) -> bool:
    return (is_running_and_ready(pod) and not is_terminating(pod)
            and (not min_ready_seconds or is_running_and_available(pod, min_ready_seconds, now)))


# -------------------------------------------------------------------------------------------- new pods


def claim_templates(sts: Obj) -> list[Obj]:
    return list((sts.get("spec") or {}).get("volumeClaimTemplates") or ())


def new_claims(sts: Obj, ordinal: int) -> list[Obj]:
    """The PVCs of pod `ordinal`: each template under its per-pod name, labelled with the set's selector."""
    out = []
    match_labels = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    for tmpl in claim_templates(sts):
        tname = (tmpl.get("metadata") or {}).get("name") or ""
        meta = copy.deepcopy(tmpl.get("metadata") or {})
        for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "ownerReferences",
                  "generateName"):
            meta.pop(k, None)
        meta["name"] = claim_name(tname, sts, ordinal)
        meta["namespace"] = sts["metadata"]["namespace"]
        labels = dict(meta.get("labels") or {})
        labels.update(match_labels)
        if labels:
            meta["labels"] = labels
        out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
                     "spec": copy.deepcopy(tmpl.get("spec") or {})})
    return out


def new_pod(sts: Obj, template: Obj, ordinal: int, revision_name: str, ref: Obj) -> Obj:
    """Pod `ordinal` of the set from `template` (the revision's), with its stable identity and storage."""
    tmeta = template.get("metadata") or {}
    name = pod_name(sts, ordinal)
    labels = dict(tmeta.get("labels") or {})
    labels[POD_NAME_LABEL] = name
    labels[POD_INDEX_LABEL] = str(ordinal)
    labels[HASH_LABEL] = revision_name
    meta: Obj = {"name": name, "namespace": sts["metadata"]["namespace"], "labels": labels,
                 "ownerReferences": [ref]}
    for f in ("annotations", "finalizers"):
        if tmeta.get(f):
            meta[f] = copy.deepcopy(tmeta[f])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    service = (sts.get("spec") or {}).get("serviceName") or ""
    if service:
        spec["subdomain"] = service
    templates = claim_templates(sts)
    if templates:
        names = {(t.get("metadata") or {}).get("name") for t in templates}
        volumes = [v for v in spec.get("volumes") or () if v.get("name") not in names]
        for t in templates:
            tname = (t.get("metadata") or {}).get("name") or ""
            volumes.append({"name": tname,
                            "persistentVolumeClaim": {"claimName": claim_name(tname, sts, ordinal)}})
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def identity_patch(sts: Obj, pod: Obj) -> Obj | None:
    """A merge patch restoring the identity labels of a pod that lost them; None when they are right."""
    name = pod["metadata"]["name"]
    labels = pod["metadata"].get("labels") or {}
    want = {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal_of(pod))}
    missing = {k: v for k, v in want.items() if labels.get(k) != v}
    return {"metadata": {"labels": missing}} if missing else None


# ---------------------------------------------------------------------------------------------- the plan


@dataclass
class Action:
    kind: str  # "create" | "delete" | "fix"
    ordinal: int
    pod: Obj | None = None  # the existing pod (delete / fix)
    revision: str = ""  # create: "current" | "update"
    reason: str = ""  # delete: "failed" | "condemned" | "update"


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    waiting_for: str = ""  # why the pass stopped early (for logs and tests)


def _new_pod_revision(sts: Obj, current_sts_status: Obj, ordinal: int) -> str:
    """Which revision a pod created now gets: the current one below the partition (or below
    status.currentReplicas without rollingUpdate parameters), else the update revision."""
    stype, partition = update_strategy(sts)
    start = start_ordinal(sts)
    if stype != "RollingUpdate":
        return "update"
    ru = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate")
    if ru is None:
        return "current" if ordinal < start + int(current_sts_status.get("currentReplicas") or 0) else "update"
    return "current" if ordinal < start + partition else "update"


def plan(sts: Obj, pods: list[Obj], current_revision: str, update_revision: str, now: float) -> Plan:
    """The actions of one sync of `sts` whose pods (members, any ordinal) are `pods`."""
    out = Plan()
    start, count = start_ordinal(sts), replicas(sts)
    end = start + count
    monotonic = not is_parallel(sts)
    min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
    status = sts.get("status") or {}
    current: dict[int, Obj] = {}
    condemned: list[Obj] = []
    for p in pods:
        o = ordinal_of(p)
        if start <= o < end:
            current[o] = p
        elif o >= 0:
            condemned.append(p)
    condemned.sort(key=ordinal_of, reverse=True)

    first_unhealthy: Obj | None = None
    for o in range(start, end):
        p = current.get(o)
        if p is not None and not is_healthy(p) and first_unhealthy is None:
            first_unhealthy = p
    if first_unhealthy is None:
        for p in reversed(condemned):
            if not is_healthy(p):
                first_unhealthy = p
                break

    if sts["metadata"].get("deletionTimestamp"):
        out.waiting_for = "set is being deleted"
        return out

    for o in range(start, end):
        p = current.get(o)
        if p is not None and (is_failed(p) or is_succeeded(p)) and not is_terminating(p):
            out.actions.append(Action("delete", o, p, reason="failed"))
            p = None
        if p is None:
            out.actions.append(Action("create", o, revision=_new_pod_revision(sts, status, o)))
            if monotonic:
                out.waiting_for = f"pod {pod_name(sts, o)} to be created and Ready"
                return out
            continue
        if is_terminating(p):
            if monotonic:
                out.waiting_for = f"pod {p['metadata']['name']} to terminate"
                return out
            continue
        if monotonic and not is_running_and_ready(p):
            out.waiting_for = f"pod {p['metadata']['name']} to be Running and Ready"
            return out
        if monotonic and min_ready and not is_running_and_available(p, min_ready, now):
            out.waiting_for = f"pod {p['metadata']['name']} to be Available"
            return out
        if identity_patch(sts, p) is not None:
            out.actions.append(Action("fix", o, p))

    for p in condemned:
        o = ordinal_of(p)
        if is_terminating(p):
            if monotonic:
                out.waiting_for = f"pod {p['metadata']['name']} to terminate"
                return out
            continue
        if monotonic and not is_running_and_ready(p) and p is not first_unhealthy:
            out.waiting_for = f"pod {p['metadata']['name']} to be Running and Ready before scale down"
            return out
        out.actions.append(Action("delete", o, p, reason="condemned"))
        if monotonic:
            out.waiting_for = f"pod {p['metadata']['name']} to terminate"
            return out

    stype, partition = update_strategy(sts)
    if stype != "RollingUpdate":
        return out
    for o in range(end - 1, start + partition - 1, -1):
        p = current.get(o)
        if p is None or any(a.ordinal == o for a in out.actions):
            continue
        if pod_revision(p) != update_revision and not is_terminating(p):
            out.actions.append(Action("delete", o, p, reason="update"))
            out.waiting_for = f"pod {p['metadata']['name']} to be updated"
            return out
        if not is_healthy(p, min_ready, now):
            out.waiting_for = f"pod {p['metadata']['name']} to be healthy during the rolling update"
            return out
    return out


# -------------------------------------------------------------------------------------------- status


def compute_status(sts: Obj, pods: list[Obj], current_revision: str, update_revision: str,
                   collision_count: int, now: float) -> Obj:
    """Upstream's computeReplicaStatus plus the revisions, and completeRollingUpdate."""
    min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
    n = ready = available = cur = upd = 0
    for p in pods:
        n += 1
        if is_running_and_ready(p):
            ready += 1
            if is_running_and_available(p, min_ready, now):
                available += 1
        if not is_terminating(p):
            rev = pod_revision(p)
            if rev == current_revision:
                cur += 1
            if rev == update_revision:
                upd += 1
    status: Obj = {"replicas": n, "readyReplicas": ready, "currentReplicas": cur, "updatedReplicas": upd,
                   "availableReplicas": available, "currentRevision": current_revision,
                   "updateRevision": update_revision, "collisionCount": collision_count}
    gen = sts["metadata"].get("generation")
    if gen:
        status["observedGeneration"] = gen
    stype, _ = update_strategy(sts)
    if stype == "RollingUpdate" and upd == n and ready == n:
        status["currentReplicas"] = upd
        status["currentRevision"] = update_revision
    for k in ("readyReplicas", "currentReplicas", "updatedReplicas"):
        if not status[k]:
            del status[k]
    old = sts.get("status") or {}
    if old.get("conditions"):
        status["conditions"] = old["conditions"]
    return status
