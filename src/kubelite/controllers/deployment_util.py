"""The Deployment controller's decisions as pure functions (upstream's pkg/controller/deployment/util).

Nothing here talks to the API: rolling-update step sizes (maxSurge / maxUnavailable), proportional scaling,
the pod-template hash, revision annotations, status and conditions.  `deployment.py` applies the results.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable
from typing import Any

from .controller_utils import now_rfc3339, timestamp

Obj = dict[str, Any]

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
DEPRECATED_ROLLBACK_TO = "deprecated.deployment.rollback.to"
# annotations of a Deployment that are not copied onto its ReplicaSets
SKIPPED_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
                                 DEPRECATED_ROLLBACK_TO})

# condition types and reasons (upstream's deploymentutil constants)
AVAILABLE, PROGRESSING, REPLICA_FAILURE = "Available", "Progressing", "ReplicaFailure"
MIN_AVAILABLE_REASON = "MinimumReplicasAvailable"
MIN_UNAVAILABLE_REASON = "MinimumReplicasUnavailable"
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"

MAX_INT32 = 2**31 - 1
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# ------------------------------------------------------------------------------------------ small getters


def spec_replicas(obj: Obj | None) -> int:
    if obj is None:
        return 0
    value = (obj.get("spec") or {}).get("replicas", 1)
    return 1 if value is None else int(value)


def status_int(obj: Obj | None, field: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(field) or 0)


def annotations(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("annotations") or {}


def revision(obj: Obj) -> int:
    try:
        return int(annotations(obj).get(REVISION, "0") or 0)
    except ValueError:
        return 0


def max_revision(rss: Iterable[Obj]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def _int_annotation(obj: Obj, key: str) -> int | None:
    try:
        return int(annotations(obj)[key])
    except (KeyError, ValueError):
        return None


def created(obj: Obj) -> tuple[float, str]:
    """Sort key of upstream's ReplicaSetsByCreationTimestamp: older first, then by name."""
    return (timestamp(obj["metadata"].get("creationTimestamp")) or 0.0, obj["metadata"]["name"])


# -------------------------------------------------------------------------------------- surge/unavailable


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, "25%" of total rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        pct = int(text[:-1])
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    """(surge, unavailable): surge rounds up, unavailable down; both zero would block, so unavailable=1."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def _rolling_params(d: Obj) -> tuple[Any, Any]:
    ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    return ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%")


def max_unavailable(d: Obj) -> int:
    replicas = spec_replicas(d)
    if not is_rolling(d) or replicas == 0:
        return 0
    _, unavailable = resolve_fenceposts(*_rolling_params(d), replicas)
    return min(unavailable, replicas)


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    surge, _ = resolve_fenceposts(*_rolling_params(d), spec_replicas(d))
    return surge


def new_rs_new_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """How big the new ReplicaSet may be now: Recreate → all at once; RollingUpdate → up to replicas+surge."""
    if not is_rolling(d):
        return spec_replicas(d)
    current = sum(spec_replicas(rs) for rs in all_rss if rs is not None)
    max_total = spec_replicas(d) + max_surge(d)
    if current >= max_total:
        return spec_replicas(new_rs)
    scale_up = min(max_total - current, spec_replicas(d) - spec_replicas(new_rs))
    return spec_replicas(new_rs) + scale_up


def cleanup_unhealthy_plan(old_rss: list[Obj], max_cleanup: int) -> list[tuple[Obj, int]]:
    """Scale down the unavailable pods of old ReplicaSets first (oldest first), at most `max_cleanup`."""
    plan = []
    total = 0
    for rs in sorted(old_rss, key=created):
        if total >= max_cleanup:
            break
        replicas = spec_replicas(rs)
        available = status_int(rs, "availableReplicas")
        if replicas == 0 or replicas == available:
            continue
        count = min(max_cleanup - total, replicas - available)
        plan.append((rs, replicas - count))
        total += count
    return plan


def scale_down_old_plan(d: Obj, all_rss: list[Obj], old_rss: list[Obj]) -> list[tuple[Obj, int]]:
    """Scale old ReplicaSets down while keeping replicas − maxUnavailable pods available (oldest first)."""
    min_available = spec_replicas(d) - max_unavailable(d)
    available = sum(status_int(rs, "availableReplicas") for rs in all_rss if rs is not None)
    if available <= min_available:
        return []
    to_scale = available - min_available
    plan = []
    total = 0
    for rs in sorted(old_rss, key=created):
        if total >= to_scale:
            break
        replicas = spec_replicas(rs)
        if replicas == 0:
            continue
        count = min(replicas, to_scale - total)
        plan.append((rs, replicas - count))
        total += count
    return plan


def max_scaled_down(d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> int:
    """How many old pods reconcileOldReplicaSets may remove in total this round."""
    all_pods = sum(spec_replicas(rs) for rs in all_rss if rs is not None)
    min_available = spec_replicas(d) - max_unavailable(d)
    new_unavailable = spec_replicas(new_rs) - status_int(new_rs, "availableReplicas") if new_rs else 0
    return all_pods - min_available - new_unavailable


def with_replicas(rs: Obj, replicas: int) -> Obj:
    out = copy.deepcopy(rs)
    out.setdefault("spec", {})["replicas"] = replicas
    return out


# ----------------------------------------------------------------------------------- proportional scaling


def filter_active(rss: Iterable[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=created, reverse=True)
    active = filter_active(newest_first + [new_rs])
    if not active:
        return new_rs if new_rs is not None else newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    desired = _int_annotation(rs, DESIRED_REPLICAS)
    if desired is None:
        return False
    n = spec_replicas(d)
    return spec_replicas(rs) == n and desired == n and status_int(rs, "availableReplicas") == n


def _round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def rs_fraction(rs: Obj, d: Obj) -> int:
    """The change for `rs` when the deployment is resized, proportional to its share at the last resize."""
    if spec_replicas(d) == 0:
        return -spec_replicas(rs)
    deployment_replicas = spec_replicas(d) + max_surge(d)
    annotated = _int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = status_int(d, "replicas")
    if annotated == 0:
        return 0
    new_size = spec_replicas(rs) * deployment_replicas / annotated
    return _round_half_away(new_size) - spec_replicas(rs)


def proportion(rs: Obj | None, d: Obj, to_add: int, added: int) -> int:
    if rs is None or spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = rs_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _by_size(rss: list[Obj], newer_first: bool) -> list[Obj]:
    # larger first; ties: newer first (BySizeNewer) or older first (BySizeOlder)
    ordered = sorted(rss, key=created, reverse=newer_first)
    return sorted(ordered, key=lambda rs: -spec_replicas(rs))


def scale_plan(d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> list[tuple[Obj, int]]:
    """Sizes for a scaling event (the deployment was resized, possibly mid-rollout): upstream's scale()."""
    desired = spec_replicas(d)
    latest = find_active_or_latest(new_rs, old_rss)
    if latest is not None:
        return [] if spec_replicas(latest) == desired else [(latest, desired)]
    if is_saturated(d, new_rs):
        return [(rs, 0) for rs in filter_active(old_rss)]
    if not is_rolling(d):
        return []
    active = filter_active(old_rss + [new_rs])
    total = sum(spec_replicas(rs) for rs in active)
    allowed = desired + max_surge(d) if desired > 0 else 0
    to_add = allowed - total
    if to_add > 0:
        active = _by_size(active, newer_first=True)
    elif to_add < 0:
        active = _by_size(active, newer_first=False)
    sizes: list[list[Any]] = []
    added = 0
    for rs in active:
        if to_add != 0:
            p = proportion(rs, d, to_add, added)
            sizes.append([rs, spec_replicas(rs) + p])
            added += p
        else:
            sizes.append([rs, spec_replicas(rs)])
    if to_add != 0 and sizes:
        sizes[0][1] = max(sizes[0][1] + to_add - added, 0)
    return [(rs, n) for rs, n in sizes]


# ---------------------------------------------------------------------------------------- templates, hash


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: every character mapped into an alphabet without vowels or look-alikes."""
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def compute_hash(template: Obj, collision_count: int | None = None) -> str:
    """FNV-32a of the template (its canonical JSON here; upstream hashes the Go struct dump), the collision
    count appended as 8 little-endian bytes, then the decimal value safe-encoded: e.g. `585449566`."""
    data = json.dumps(_drop_nulls(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += int(collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0"
    return safe_encode(str(fnv32a(data)))


def _drop_nulls(value: Any) -> Any:
    """JSON nulls read as absent, as they do once decoded into upstream's Go types (kubectl's rollback patch
    carries `creationTimestamp: null` in the template)."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _without_hash(template: Obj | None) -> Obj:
    t = _drop_nulls(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(POD_TEMPLATE_HASH, None)
        if not labels:
            t["metadata"].pop("labels")
    if "metadata" in t and not t["metadata"]:
        t.pop("metadata")
    return t


def equal_ignore_hash(t1: Obj | None, t2: Obj | None) -> bool:
    return _without_hash(t1) == _without_hash(t2)


def find_new_rs(d: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the deployment's (ignoring pod-template-hash)."""
    template = (d.get("spec") or {}).get("template")
    for rs in sorted(rss, key=created):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


# ------------------------------------------------------------------------------------------- annotations


def copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    changed = False
    rs_ann = rs["metadata"].setdefault("annotations", {})
    for k, v in annotations(d).items():
        if k in SKIPPED_ANNOTATIONS or rs_ann.get(k) == v:
            continue
        rs_ann[k] = v
        changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = annotations(rs)
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_replicas)


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    if not replicas_annotations_need_update(rs, desired, max_replicas):
        return False
    ann = rs["metadata"].setdefault("annotations", {})
    ann[DESIRED_REPLICAS] = str(desired)
    ann[MAX_REPLICAS] = str(max_replicas)
    return True


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool, history_limit: int) -> bool:
    """Copy the deployment's annotations, bump the revision (remembering the old one in revision-history) and,
    for a ReplicaSet being created, set desired/max-replicas. Returns whether `rs` changed."""
    changed = copy_deployment_annotations(d, rs)
    ann = rs["metadata"].setdefault("annotations", {})
    old = ann.get(REVISION, "")
    try:
        old_int = int(old) if old else 0
    except ValueError:
        return False
    if old_int < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old:
            history = ann.get(REVISION_HISTORY, "")
            entries = history.split(",") if history else []
            if not entries:
                ann[REVISION_HISTORY] = old
            else:
                total = len(history) + len(old) + 1
                start = 0
                while total > history_limit and start < len(entries):
                    total -= len(entries[start]) + 1
                    start += 1
                if total <= history_limit:
                    ann[REVISION_HISTORY] = ",".join(entries[start:] + [old])
    if not exists and set_replicas_annotations(rs, spec_replicas(d), spec_replicas(d) + max_surge(d)):
        changed = True
    return changed


# ----------------------------------------------------------------------------------- status, conditions


def new_condition(type_: str, status: str, reason: str, message: str, now: float | None = None) -> Obj:
    ts = now_rfc3339(now)
    return {"type": type_, "status": status, "lastUpdateTime": ts, "lastTransitionTime": ts, "reason": reason,
            "message": message}


def get_condition(status: Obj, type_: str) -> Obj | None:
    for c in status.get("conditions") or ():
        if c.get("type") == type_:
            return c
    return None


def set_condition(status: Obj, cond: Obj) -> None:
    """Upstream's SetDeploymentCondition: same status and reason → no change; same status → keep the
    transition time; the condition moves to the end of the list."""
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [c for c in status.get("conditions") or () if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: Obj, type_: str) -> None:
    conditions = [c for c in status.get("conditions") or () if c.get("type") != type_]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def has_progress_deadline(d: Obj) -> bool:
    pds = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return pds is not None and int(pds) != MAX_INT32


def calculate_status(all_rss: list[Obj], new_rs: Obj | None, d: Obj, now: float | None = None) -> Obj:
    rss = [rs for rs in all_rss if rs is not None]
    available = sum(status_int(rs, "availableReplicas") for rs in rss)
    total = sum(spec_replicas(rs) for rs in rss)
    old = d.get("status") or {}
    values = {
        "observedGeneration": int(d["metadata"].get("generation") or 0),
        "replicas": sum(status_int(rs, "replicas") for rs in rss),
        "updatedReplicas": status_int(new_rs, "replicas"),
        "readyReplicas": sum(status_int(rs, "readyReplicas") for rs in rss),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
        "collisionCount": int(old.get("collisionCount") or 0),
    }
    status: Obj = {k: v for k, v in values.items() if v}
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= spec_replicas(d) - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE_REASON,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE_REASON,
                                            "Deployment does not have minimum availability.", now))
    return status


def deployment_complete(d: Obj, status: Obj) -> bool:
    n = spec_replicas(d)
    return (int(status.get("updatedReplicas") or 0) == n and int(status.get("replicas") or 0) == n
            and int(status.get("availableReplicas") or 0) == n
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def deployment_progressing(d: Obj, status: Obj) -> bool:
    old = d.get("status") or {}

    def g(s: Obj, k: str) -> int:
        return int(s.get(k) or 0)

    old_old = g(old, "replicas") - g(old, "updatedReplicas")
    new_old = g(status, "replicas") - g(status, "updatedReplicas")
    return (g(status, "updatedReplicas") > g(old, "updatedReplicas") or new_old < old_old
            or g(status, "readyReplicas") > g(old, "readyReplicas")
            or g(status, "availableReplicas") > g(old, "availableReplicas"))


def deployment_timed_out(d: Obj, status: Obj, now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    since = timestamp(cond.get("lastUpdateTime"))
    if since is None:
        return False
    return since + int(d["spec"]["progressDeadlineSeconds"]) < now


def status_equal(a: Obj, b: Obj) -> bool:
    return a == b
