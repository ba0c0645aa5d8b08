"""Pod garbage collection (upstream's pkg/controller/podgc), every `gc_check_period`:

- terminated pods (Succeeded/Failed) beyond `terminated_pod_gc_threshold` go, oldest first;
- orphaned pods — bound to a node that no longer exists (still absent after `quarantine_time`, and confirmed
  with the API server) — are marked Failed with `DisruptionTarget` (DeletionByPodGC) and force-deleted;
- terminating pods that were never scheduled are force-deleted;
- terminating pods on a NotReady node carrying the `node.kubernetes.io/out-of-service` taint are marked
  Failed and force-deleted (upstream's gcTerminating; without that taint such pods stay Terminating, as
  upstream, until the node comes back or is deleted).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from kubelite.client import ClientError, key_of

from .controller_utils import now_rfc3339, timestamp
from .endpoints import controller_config
from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.podgc")

Obj = dict[str, Any]
TAINT_OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"


@dataclass
class PodGCConfig:
    gc_check_period: float = 20.0  # upstream's gcCheckPeriod
    terminated_pod_gc_threshold: int = 12500  # --terminated-pod-gc-threshold (<= 0 disables)
    quarantine_time: float = 40.0  # how long a pod's node must stay missing before the pod counts as orphaned


def is_terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def terminated_to_delete(pods: list[Obj], threshold: int) -> list[Obj]:
    """The oldest terminated pods beyond `threshold` (by creation time, then name)."""
    if threshold <= 0:
        return []
    done = [p for p in pods if is_terminated(p)]
    excess = len(done) - threshold
    if excess <= 0:
        return []
    done.sort(key=lambda p: (timestamp(p["metadata"].get("creationTimestamp")) or 0.0, p["metadata"]["name"]))
    return done[:excess]


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def out_of_service(node: Obj) -> bool:
    return any(t.get("key") == TAINT_OUT_OF_SERVICE and t.get("effect") in ("NoExecute", "NoSchedule")
               for t in (node.get("spec") or {}).get("taints") or ())


class PodGCController(Controller):
    name = "pod-garbage-collector-controller"
    aliases = ("podgc",)
    event_component = "pod-garbage-collector"

    def __init__(self, ctx: ControllerContext) -> None:
        self.cfg: PodGCConfig = controller_config(ctx, self.name, PodGCConfig)
        super().__init__(ctx, workers=1)
        self.pod_rt = ctx.rt("", "v1", "pods")
        self.node_rt = ctx.rt("", "v1", "nodes")
        self.pods = self.informer(self.pod_rt)
        self.nodes = self.informer(self.node_rt)
        self.missing_since: dict[str, float] = {}  # node name → when we first saw it missing
        self.deleted: list[str] = []  # keys of pods this controller removed (for tests and logs)

    async def start(self) -> None:
        self.run_periodic(self.gc, self.cfg.gc_check_period)

    async def sync(self, key: str) -> None:  # everything happens in the periodic pass
        return

    async def gc(self) -> None:
        pods = self.pods.list()
        for pod in terminated_to_delete(pods, self.cfg.terminated_pod_gc_threshold):
            await self._force_delete(pod)
        await self._gc_orphaned(pods)
        for pod in pods:
            meta, spec = pod["metadata"], pod.get("spec") or {}
            if not meta.get("deletionTimestamp"):
                continue
            node_name = spec.get("nodeName")
            if not node_name:
                await self._force_delete(pod)
                continue
            node = self.nodes.get(None, node_name)
            if node is not None and not node_ready(node) and out_of_service(node):
                await self._mark_failed_and_delete(pod, "PodGC: node is out of service")

    async def _gc_orphaned(self, pods: list[Obj]) -> None:
        now = time.time()
        bound = {(p.get("spec") or {}).get("nodeName") for p in pods} - {None, ""}
        missing = {n for n in bound if self.nodes.get(None, n) is None}
        for n in list(self.missing_since):
            if n not in missing:
                del self.missing_since[n]
        for n in missing:
            self.missing_since.setdefault(n, now)
        gone = set()
        for n in missing:
            if now - self.missing_since[n] < self.cfg.quarantine_time:
                continue
            try:
                await self.client.get(self.node_rt, None, n)
            except ClientError as e:
                if e.is_not_found:
                    gone.add(n)
                    continue
                raise
        for pod in pods:
            if (pod.get("spec") or {}).get("nodeName") in gone:
                await self._mark_failed_and_delete(pod, "PodGC: node no longer exists")

    async def _mark_failed_and_delete(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        if not is_terminated(pod):
            cond = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC", "message": message,
                    "lastTransitionTime": now_rfc3339()}
            try:
                await self.client.patch(self.pod_rt, meta.get("namespace"), meta["name"],
                                        {"status": {"phase": "Failed", "conditions": [cond]}},
                                        patch_type="strategic", subresource="status")
            except ClientError as e:
                if e.is_not_found:
                    return
                raise
        await self._force_delete(pod)

    async def _force_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(self.pod_rt, meta.get("namespace"), meta["name"], grace_period_seconds=0,
                                     preconditions={"uid": meta.get("uid", "")})
        except ClientError as e:
            if not (e.is_not_found or e.is_conflict):
                raise
            return
        self.deleted.append(key_of(pod))
        log.info("pod-gc: deleted pod %s", key_of(pod))
