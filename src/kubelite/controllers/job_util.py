"""The Job controller's decisions (upstream's pkg/controller/job: job_controller.go, indexed_job_utils.go,
backoff_utils.go) and the selector the API server generates for a Job.  Pure functions.
"""

from __future__ import annotations

import copy
from typing import Any

from ..api.jobs import (  # noqa: F401  - re-exported for the controller's modules
    CONTROLLER_UID_LABEL,
    JOB_NAME_LABEL,
    LEGACY_CONTROLLER_UID_LABEL,
    LEGACY_JOB_NAME_LABEL,
    generate_selector,
)
from . import controller_utils as cu

Obj = dict[str, Any]

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"

DEFAULT_BACKOFF = 10.0  # upstream DefaultJobPodFailureBackOff
MAX_BACKOFF = 600.0  # upstream MaxJobPodFailureBackOff

BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")


# ------------------------------------------------------------------------------------------------ selector


def effective_selector(job: Obj) -> Obj:
    """spec.selector, or the generated one when the API server did not set it."""
    sel = (job.get("spec") or {}).get("selector")
    if sel:
        return sel
    return generate_selector(job)[0]


# ------------------------------------------------------------------------------------------------- specs


def completions(job: Obj) -> int | None:
    c = (job.get("spec") or {}).get("completions")
    return None if c is None else int(c)


def parallelism(job: Obj) -> int:
    p = (job.get("spec") or {}).get("parallelism")
    return 1 if p is None else int(p)


def backoff_limit(job: Obj) -> int:
    b = (job.get("spec") or {}).get("backoffLimit")
    return 6 if b is None else int(b)


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def is_suspended(job: Obj) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def restart_policy(job: Obj) -> str:
    return ((((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("restartPolicy") or "")


# ---------------------------------------------------------------------------------------------- conditions


def condition(job_or_status: Obj, type_: str) -> Obj | None:
    status = job_or_status.get("status", job_or_status) if "metadata" in job_or_status else job_or_status
    for c in (status or {}).get("conditions") or ():
        if c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


def is_finished(job: Obj) -> bool:
    return condition(job, "Complete") is not None or condition(job, "Failed") is not None


def finished_time(job: Obj) -> float | None:
    for t in ("Complete", "Failed"):
        c = condition(job, t)
        if c is not None:
            return cu.timestamp(c.get("lastTransitionTime"))
    return None


def new_condition(type_: str, reason: str, message: str, now: float, status: str = "True") -> Obj:
    ts = cu.now_rfc3339(now)
    return {"type": type_, "status": status, "lastProbeTime": ts, "lastTransitionTime": ts,
            "reason": reason, "message": message}


def set_condition(status: Obj, cond: Obj) -> bool:
    """Add or replace a condition; False when an identical one (type, status, reason, message) is there."""
    conds = status.setdefault("conditions", [])
    for i, c in enumerate(conds):
        if c.get("type") == cond["type"]:
            if c.get("status") == cond["status"] and c.get("reason") == cond["reason"] \
                    and c.get("message") == cond["message"]:
                return False
            if c.get("status") == cond["status"]:
                cond = {**cond, "lastTransitionTime": c.get("lastTransitionTime")}
            conds[i] = cond
            return True
    conds.append(cond)
    return True


# ------------------------------------------------------------------------------------------------- pods


def has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or ())


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Failed, or (unless podReplacementPolicy is Failed) deleted before it succeeded."""
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Failed":
        return True
    if (job.get("spec") or {}).get("podReplacementPolicy") == "Failed":
        return False
    return bool(pod["metadata"].get("deletionTimestamp")) and phase != "Succeeded"


def is_pod_succeeded(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Succeeded"


def pod_index(pod: Obj) -> int | None:
    value = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
    if value is None:
        value = (pod["metadata"].get("labels") or {}).get(COMPLETION_INDEX)
    try:
        i = int(value) if value is not None else None
    except ValueError:
        return None
    return i if i is not None and i >= 0 else None


def valid_index(pod: Obj, job: Obj) -> int | None:
    i = pod_index(pod)
    c = completions(job)
    return i if i is not None and c is not None and i < c else None


def container_restarts(pod: Obj) -> int:
    st = pod.get("status") or {}
    return sum(int(c.get("restartCount") or 0)
               for c in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []))


def failure_time(pod: Obj, now: float) -> float:
    """When a failed pod finished: its latest container finishedAt, else its Ready condition's last
    transition, else now (upstream's getFinishedTime)."""
    latest = None
    for c in (pod.get("status") or {}).get("containerStatuses") or ():
        t = cu.timestamp(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if t is not None and (latest is None or t > latest):
            latest = t
    if latest is None:
        ready = cu.pod_condition(pod, "Ready")
        latest = cu.timestamp((ready or {}).get("lastTransitionTime"))
    return latest if latest is not None else now


def new_pod(job: Obj, index: int | None) -> Obj:
    """A pod for `job` (with the tracking finalizer; in Indexed mode with its completion index)."""
    template = (job.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    name = job["metadata"]["name"]
    labels = dict(tmeta.get("labels") or {})
    if not (job.get("spec") or {}).get("selector") and not (job.get("spec") or {}).get("manualSelector"):
        labels.update(generate_selector(job)[1])
    annotations = dict(tmeta.get("annotations") or {})
    meta: Obj = {"generateName": f"{name}-" if index is None else f"{name}-{index}-",
                 "namespace": job["metadata"]["namespace"],
                 "ownerReferences": [cu.owner_reference(job, "batch/v1", "Job")],
                 "finalizers": list(tmeta.get("finalizers") or []) + [TRACKING_FINALIZER]}
    spec = copy.deepcopy(template.get("spec") or {})
    if index is not None:
        annotations[COMPLETION_INDEX] = str(index)
        labels[COMPLETION_INDEX] = str(index)
        if not spec.get("hostname"):
            spec["hostname"] = f"{name}-{index}"
        env_var = {"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
        for kind in ("initContainers", "containers"):
            for c in spec.get(kind) or ():
                env = c.setdefault("env", [])
                if not any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                    env.append(dict(env_var))
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# ------------------------------------------------------------------------------------------------ indexes


def format_indexes(indexes: set[int] | list[int]) -> str:
    """"1,3-5,7" — intervals of consecutive indexes, ascending."""
    out: list[str] = []
    xs = sorted(set(indexes))
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(out)


def parse_indexes(text: str | None, limit: int | None = None) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                rng = range(int(a), int(b) + 1)
            else:
                rng = range(int(part), int(part) + 1)
        except ValueError:
            continue
        out.update(i for i in rng if limit is None or i < limit)
    return out


# ------------------------------------------------------------------------------------------------ backoff


def backoff_delay(failures_after_success: int, base: float = DEFAULT_BACKOFF, cap: float = MAX_BACKOFF) -> float:
    """10 s, 20 s, 40 s, … (capped) after the 1st, 2nd, 3rd … consecutive pod failure."""
    if failures_after_success <= 0:
        return 0.0
    return min(base * 2 ** (failures_after_success - 1), cap)


def remaining_backoff(failures_after_success: int, last_failure: float | None, now: float,
                      base: float = DEFAULT_BACKOFF, cap: float = MAX_BACKOFF) -> float:
    if failures_after_success <= 0 or last_failure is None:
        return 0.0
    return max(last_failure + backoff_delay(failures_after_success, base, cap) - now, 0.0)


# ----------------------------------------------------------------------------------------------- decisions


def past_backoff_limit_on_failure(job: Obj, active_pods: list[Obj]) -> bool:
    """restartPolicy OnFailure: container restarts of the active pods count against backoffLimit."""
    if restart_policy(job) != "OnFailure":
        return False
    restarts = sum(container_restarts(p) for p in active_pods)
    limit = backoff_limit(job)
    return restarts > 0 if limit == 0 else restarts >= limit


def want_active(job: Obj, succeeded: int, active: int) -> int:
    """How many pods should be active (upstream's manageJob)."""
    par = parallelism(job)
    c = completions(job)
    if c is None:
        return active if succeeded > 0 else par
    return max(min(c - succeeded, par), 0)


def is_complete(job: Obj, succeeded: int, succeeded_indexes: set[int], active: int) -> bool:
    c = completions(job)
    if is_indexed(job):
        return c is not None and len(succeeded_indexes) >= c
    if c is None:
        return succeeded > 0 and active == 0
    return succeeded >= c


def pending_indexes(job: Obj, succeeded_indexes: set[int], active_indexes: set[int], count: int) -> list[int]:
    c = completions(job) or 0
    out = []
    for i in range(c):
        if len(out) >= count:
            break
        if i not in succeeded_indexes and i not in active_indexes:
            out.append(i)
    return out


def surplus_pods(job: Obj, active_pods: list[Obj], want: int, now: float) -> list[Obj]:
    """Active pods to delete: in Indexed mode duplicates and out-of-range indexes first; then the least
    valuable beyond `want`."""
    victims: list[Obj] = []
    keep = list(active_pods)
    if is_indexed(job):
        seen: set[int] = set()
        keep = []
        for p in sorted(active_pods, key=lambda p: (not cu.is_pod_ready(p), p["metadata"].get("creationTimestamp") or "")):
            i = valid_index(p, job)
            if i is None or i in seen:
                victims.append(p)
            else:
                seen.add(i)
                keep.append(p)
    extra = len(keep) - want
    if extra > 0:
        victims += cu.rank_pods_for_deletion(keep, keep, now)[:extra]
    return victims
