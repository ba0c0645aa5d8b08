"""Helpers shared by the workload controllers, after upstream's pkg/controller/controller_utils.go.

Pod readiness and availability, owner references, the ranking that decides which pods go first when a
controller scales down, slow-start batching of creates, and the expectations that keep a controller from
acting twice on the same change before its informer has caught up.  Pure functions except `slow_start`.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from kubelite.api.timefmt import parse_rfc3339

Obj = dict[str, Any]

SLOW_START_INITIAL_BATCH_SIZE = 1
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
# upstream's ExpectationsTimeout: stale expectations stop blocking a sync after 5 minutes
EXPECTATIONS_TIMEOUT = 300.0


# --------------------------------------------------------------------------------------------- times


def timestamp(text: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 time, None when unset or malformed."""
    dt = parse_rfc3339(text)
    return dt.timestamp() if dt is not None else None


def now_rfc3339(now: float | None = None) -> str:
    t = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# ---------------------------------------------------------------------------------------------- pods


def pod_condition(pod: Obj, type_: str) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return c
    return None


def is_pod_ready(pod: Obj) -> bool:
    c = pod_condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def is_pod_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least minReadySeconds (upstream: lastTransitionTime + minReadySeconds before now)."""
    if not is_pod_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = timestamp(pod_condition(pod, "Ready").get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds < now


def is_pod_active(pod: Obj) -> bool:
    """Not terminal and not being deleted (upstream's IsPodActive)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def is_pod_terminating(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and bool(pod["metadata"].get("deletionTimestamp"))


def pod_ready_time(pod: Obj) -> float | None:
    if not is_pod_ready(pod):
        return None
    return timestamp(pod_condition(pod, "Ready").get("lastTransitionTime"))


def max_container_restarts(pod: Obj) -> int:
    status = pod.get("status") or {}
    counts = [int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or ()]
    # restartable init containers (sidecars) count too
    sidecars = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or ()
                if c.get("restartPolicy") == "Always"}
    counts += [int(c.get("restartCount") or 0) for c in status.get("initContainerStatuses") or ()
               if c.get("name") in sidecars]
    return max(counts, default=0)


def deletion_cost(pod: Obj) -> int:
    value = (pod["metadata"].get("annotations") or {}).get(POD_DELETION_COST)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def _after_or_zero(t1: float | None, t2: float | None) -> bool:
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _log_rank(t: float, now: float) -> int:
    d = (now - t) * 1e9  # upstream works on time.Duration, nanoseconds
    return int(math.log2(d)) if d > 0 else -1


def _time_less(t1: float | None, t2: float | None, now: float | None, uid1: str, uid2: str) -> bool:
    """Logarithmic comparison (LogarithmicScaleDown, on since 1.22): times in the same power-of-two bucket
    of age tie, broken by UID so the choice is random-ish but stable."""
    if not now or t1 is None or t2 is None:
        return _after_or_zero(t1, t2)
    diff = _log_rank(t1, now) - _log_rank(t2, now)
    if diff == 0:
        return uid1 < uid2
    return diff < 0


def pod_deletion_less(a: Obj, b: Obj, rank_a: int, rank_b: int, now: float | None) -> bool:
    """True if pod `a` should be deleted before pod `b` (upstream's ActivePodsWithRanks.Less)."""
    na, nb = (a.get("spec") or {}).get("nodeName") or "", (b.get("spec") or {}).get("nodeName") or ""
    # 1. unassigned < assigned
    if na != nb and (not na or not nb):
        return not na
    # 2. Pending < Unknown < Running
    pa = _PHASE_ORDINAL.get((a.get("status") or {}).get("phase"), 0)
    pb = _PHASE_ORDINAL.get((b.get("status") or {}).get("phase"), 0)
    if pa != pb:
        return pa < pb
    # 3. not ready < ready
    ra, rb = is_pod_ready(a), is_pod_ready(b)
    if ra != rb:
        return not ra
    # 4. lower pod-deletion-cost < higher
    ca, cb = deletion_cost(a), deletion_cost(b)
    if ca != cb:
        return ca < cb
    # 5. doubled up (more related pods on the same node) < not
    if rank_a != rank_b:
        return rank_a > rank_b
    ua, ub = a["metadata"].get("uid", ""), b["metadata"].get("uid", "")
    # 6. ready for a shorter time < longer
    if ra and rb:
        ta, tb = pod_ready_time(a), pod_ready_time(b)
        if ta != tb:
            return _time_less(ta, tb, now, ua, ub)
    # 7. more container restarts < fewer
    xa, xb = max_container_restarts(a), max_container_restarts(b)
    if xa != xb:
        return xa > xb
    # 8. newer < older (missing creation time first)
    ta, tb = timestamp(a["metadata"].get("creationTimestamp")), timestamp(b["metadata"].get("creationTimestamp"))
    if ta != tb:
        return _time_less(ta, tb, now, ua, ub)
    return False


def rank_pods_for_deletion(pods: list[Obj], related: Iterable[Obj], now: float | None = None) -> list[Obj]:
    """`pods` ordered least valuable first; a pod's rank is how many active related pods share its node."""
    on_node: dict[str, int] = {}
    for p in related:
        if is_pod_active(p):
            node = (p.get("spec") or {}).get("nodeName") or ""
            on_node[node] = on_node.get(node, 0) + 1
    ranked = [(p, on_node.get((p.get("spec") or {}).get("nodeName") or "", 0)) for p in pods]

    def cmp(x: tuple[Obj, int], y: tuple[Obj, int]) -> int:
        if pod_deletion_less(x[0], y[0], x[1], y[1], now):
            return -1
        if pod_deletion_less(y[0], x[0], y[1], x[1], now):
            return 1
        return 0

    ranked.sort(key=functools.cmp_to_key(cmp))
    return [p for p, _ in ranked]


# ------------------------------------------------------------------------------------- owner references


def dict_items(value: Any) -> list[Obj]:
    """The objects of a list read from an object (owner references, taints, tolerations): an item of another
    shape (stored before validation refused it) is left out rather than failing the controller on it."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def controller_ref(obj: Obj) -> Obj | None:
    for ref in dict_items(obj["metadata"].get("ownerReferences")):
        if ref.get("controller"):
            return ref
    return None


def owner_reference(owner: Obj, api_version: str, kind: str) -> Obj:
    """The controller ownerReference a controller sets on what it creates."""
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def adopt_patch(child: Obj, ref: Obj) -> Obj:
    """Strategic merge patch adding a controller ref; the uid makes it fail if the child was replaced."""
    return {"metadata": {"ownerReferences": [ref], "uid": child["metadata"]["uid"]}}


def release_patch(child: Obj, owner_uid: str) -> Obj:
    return {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
                         "uid": child["metadata"]["uid"]}}


# ------------------------------------------------------------------------------------------- slow start


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH_SIZE) -> list[int]:
    """Batch sizes 1, 2, 4, … (capped by what remains) that together make `count`."""
    sizes = []
    remaining = count
    batch = min(remaining, initial)
    while remaining > 0:
        sizes.append(batch)
        remaining -= batch
        batch = min(2 * batch, remaining)
    return sizes


async def slow_start(count: int, fn: Callable[[], Awaitable[Any]],
                     initial: int = SLOW_START_INITIAL_BATCH_SIZE) -> tuple[int, BaseException | None]:
    """Call `fn` `count` times in doubling batches run concurrently; stop after a batch with a failure.

    Returns (successes, first error). Calls that were never made are `count - attempted`; the caller
    lowers its expectations for them."""
    successes = 0
    for size in slow_start_batches(count, initial):
        results = await asyncio.gather(*(fn() for _ in range(size)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += size - len(errors)
        if errors:
            for e in errors:
                if isinstance(e, asyncio.CancelledError):
                    raise e
            return successes, errors[0]
    return successes, None


# ---------------------------------------------------------------------------------------------- expectations


class Expectations:
    """Creates and deletes a controller has issued but not yet seen in its informers (per controller key).

    A sync runs only when the expectations are met (or expired): otherwise a second sync, racing the
    informer, would count the same pods as missing and create them twice.  Deletes are tracked by pod key
    as upstream's UIDTrackingControllerExpectations do, so a pod seen going away is counted once."""

    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT, clock: Callable[[], float] = time.monotonic):
        self.timeout = timeout
        self.clock = clock
        self._adds: dict[str, int] = {}
        self._dels: dict[str, set[str]] = {}
        self._stamp: dict[str, float] = {}

    def satisfied(self, key: str) -> bool:
        if key not in self._stamp:
            return True
        if self._adds.get(key, 0) <= 0 and not self._dels.get(key):
            return True
        return self.clock() - self._stamp[key] > self.timeout

    def expect_creations(self, key: str, n: int) -> None:
        self._adds[key] = n
        self._dels.pop(key, None)
        self._stamp[key] = self.clock()

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._adds[key] = 0
        self._dels[key] = set(pod_keys)
        self._stamp[key] = self.clock()

    def creation_observed(self, key: str, n: int = 1) -> None:
        if key in self._adds:
            self._adds[key] -= n

    def deletion_observed(self, key: str, pod_key: str) -> None:
        dels = self._dels.get(key)
        if dels is not None:
            dels.discard(pod_key)

    def pending(self, key: str) -> tuple[int, int]:
        return max(self._adds.get(key, 0), 0), len(self._dels.get(key) or ())

    def delete(self, key: str) -> None:
        self._adds.pop(key, None)
        self._dels.pop(key, None)
        self._stamp.pop(key, None)
