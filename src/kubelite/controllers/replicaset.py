"""The ReplicaSet and ReplicationController controllers (upstream's pkg/controller/replicaset).

Both keep `spec.replicas` active pods matching the selector: they adopt orphans that match, release pods
that stopped matching, create missing pods in slow-start batches (1, 2, 4, …; at most `burst_replicas` per
sync) with `generateName: <owner>-`, and delete the least valuable surplus pods first.  Status: replicas,
fullyLabeledReplicas, readyReplicas, availableReplicas (honouring minReadySeconds), observedGeneration and
the ReplicaFailure condition.  Events: SuccessfulCreate / FailedCreate / SuccessfulDelete / FailedDelete.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

from kubelite.api.selectors import EVERYTHING, LabelSelector, SelectorError, try_label_selector_from_dict
from kubelite.client import NAMESPACE_INDEX, OWNER_UID_INDEX, ClientError, key_of

from . import controller_utils as cu
from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.replicaset")

Obj = dict[str, Any]
ORPHAN_PODS_INDEX = "controllers/orphans-by-namespace"
GENERATE_NAME_ATTEMPTS = 8


def _orphans_by_namespace(pod: Obj) -> tuple[str, ...]:
    if cu.controller_ref(pod) is None:
        return (pod["metadata"].get("namespace") or "",)
    return ()


def is_namespace_terminating_error(e: ClientError) -> bool:
    causes = (e.details or {}).get("causes") or ()
    if any(c.get("reason") == "NamespaceTerminating" for c in causes):
        return True
    return e.is_forbidden and "because it is being terminated" in (e.message or "")


def pod_from_template(template: Obj, owner: Obj, ref: Obj) -> Obj:
    """A pod for `owner` (upstream's GetPodFromTemplate): labels, annotations, finalizers and spec of the
    template, `generateName: <owner>-`, and the controller ownerReference."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {"generateName": owner["metadata"]["name"] + "-",
                 "namespace": owner["metadata"]["namespace"], "ownerReferences": [ref]}
    for f in ("labels", "annotations", "finalizers"):
        if tmeta.get(f):
            meta[f] = copy.deepcopy(tmeta[f])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


def set_condition(conditions: list[Obj], cond: Obj) -> list[Obj]:
    """Replace the condition of cond's type, keeping lastTransitionTime when the status did not change."""
    out = []
    for c in conditions:
        if c.get("type") == cond["type"]:
            if c.get("status") == cond["status"] and c.get("reason") == cond.get("reason"):
                return conditions
            if c.get("status") == cond["status"]:
                cond = {**cond, "lastTransitionTime": c.get("lastTransitionTime")}
            continue
        out.append(c)
    out.append(cond)
    return out


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    aliases = ("replicaset",)
    event_component = "replicaset-controller"
    service_account = "replicaset-controller"
    owner_group, owner_version, owner_resource = "apps", "v1", "replicasets"
    owner_api_version, owner_kind = "apps/v1", "ReplicaSet"

    def __init__(self, ctx: ControllerContext, *, workers: int | None = None) -> None:
        super().__init__(ctx, workers=workers or ctx.config.concurrent_replicaset_syncs)
        self.owner_rt = ctx.rt(self.owner_group, self.owner_version, self.owner_resource)
        self.pods_rt = ctx.rt("", "v1", "pods")
        self.expectations = cu.Expectations(ctx.config.expectations_timeout)
        self.burst = ctx.config.burst_replicas
        self.owners = self.informer(self.owner_rt)
        self.owners.add_handler(self.enqueue, self._update_owner, self._delete_owner)
        self.pods = self.informer(self.pods_rt)
        self.pods.add_indexer(ORPHAN_PODS_INDEX, _orphans_by_namespace)
        self.pods.add_handler(self._add_pod, self._update_pod, self._delete_pod)

    # -- selectors ------------------------------------------------------------------------------------

    def selector(self, owner: Obj) -> LabelSelector:
        return try_label_selector_from_dict((owner.get("spec") or {}).get("selector"))

    def _matching_owners(self, pod: Obj) -> list[Obj]:
        labels = pod["metadata"].get("labels") or {}
        out = []
        for owner in self.owners.by_index(NAMESPACE_INDEX, pod["metadata"].get("namespace") or ""):
            try:
                sel = self.selector(owner)
            except SelectorError:
                continue
            if sel.empty() or sel.nothing or not sel.matches(labels):
                continue
            out.append(owner)
        return out

    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != self.owner_kind:
            return None
        owner = self.owners.get(namespace, ref.get("name", ""))
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return owner

    # -- event handlers ---------------------------------------------------------------------------------

    def _update_owner(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def _delete_owner(self, owner: Obj) -> None:
        key = key_of(owner)
        self.expectations.delete(key)
        self.queue.add(key)

    def _add_pod(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._delete_pod(pod)
            return
        ns = pod["metadata"].get("namespace") or ""
        ref = cu.controller_ref(pod)
        if ref is not None:
            owner = self._resolve(ns, ref)
            if owner is not None:
                key = key_of(owner)
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        for owner in self._matching_owners(pod):
            self.enqueue(owner)

    def _update_pod(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        ns = new["metadata"].get("namespace") or ""
        labels_changed = old["metadata"].get("labels") != new["metadata"].get("labels")
        if new["metadata"].get("deletionTimestamp"):
            self._delete_pod(new)
            if labels_changed:
                self._delete_pod(old)
            return
        cur_ref, old_ref = cu.controller_ref(new), cu.controller_ref(old)
        ref_changed = cur_ref != old_ref
        if ref_changed and old_ref is not None:
            owner = self._resolve(ns, old_ref)
            if owner is not None:
                self.enqueue(owner)
        if cur_ref is not None:
            owner = self._resolve(ns, cur_ref)
            if owner is not None:
                self.enqueue(owner)
                min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
                if min_ready > 0 and not cu.is_pod_ready(old) and cu.is_pod_ready(new):
                    # the pod becomes available minReadySeconds from now: look again then
                    self.enqueue_after(owner, min_ready + 1)
            return
        if labels_changed or ref_changed:
            for owner in self._matching_owners(new):
                self.enqueue(owner)

    def _delete_pod(self, pod: Obj) -> None:
        ref = cu.controller_ref(pod)
        owner = self._resolve(pod["metadata"].get("namespace") or "", ref)
        if owner is None:
            return
        key = key_of(owner)
        self.expectations.deletion_observed(key, key_of(pod))
        self.queue.add(key)

    # -- sync -----------------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        owner = self.owners.get_by_key(key)
        if owner is None:
            self.expectations.delete(key)
            return
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = self.selector(owner)
        except SelectorError as e:
            log.warning("%s %s has an invalid selector: %s", self.owner_kind, key, e)
            return
        ns = owner["metadata"]["namespace"]
        uid = owner["metadata"]["uid"]
        candidates = {key_of(p): p for p in self.pods.by_index(OWNER_UID_INDEX, uid)}
        for p in self.pods.by_index(ORPHAN_PODS_INDEX, ns):
            candidates.setdefault(key_of(p), p)
        active = [p for p in candidates.values() if cu.is_pod_active(p)]
        pods = await self.claim_pods(owner, selector, active)
        manage_error: ClientError | Exception | None = None
        if needs_sync and not owner["metadata"].get("deletionTimestamp"):
            try:
                await self.manage_replicas(owner, pods)
            except (TimeoutError, ClientError, OSError) as e:
                manage_error = e
        await self.update_status(owner, pods, manage_error)
        if manage_error is not None:
            raise manage_error
        spec = owner.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        if min_ready > 0:
            now = time.time()
            ready = sum(1 for p in pods if cu.is_pod_ready(p))
            available = sum(1 for p in pods if cu.is_pod_available(p, min_ready, now))
            if ready == int(spec.get("replicas", 1)) and available != ready:
                self.enqueue_after(key, min_ready)

    async def claim_pods(self, owner: Obj, selector: LabelSelector, pods: list[Obj]) -> list[Obj]:
        """Adopt matching orphans and release owned pods that no longer match (upstream's ControllerRefManager)."""
        uid = owner["metadata"]["uid"]
        deleting = bool(owner["metadata"].get("deletionTimestamp"))
        claimed: list[Obj] = []
        can_adopt: bool | None = None
        ns = owner["metadata"]["namespace"]
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            ref = cu.controller_ref(pod)
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if selector.matches(labels):
                    claimed.append(pod)
                    continue
                if deleting:
                    continue
                try:
                    await self.client.patch(self.pods_rt, ns, pod["metadata"]["name"],
                                            cu.release_patch(pod, uid), patch_type="strategic")
                except ClientError as e:
                    if not (e.is_not_found or e.is_invalid):
                        raise
                continue
            if deleting or not selector.matches(labels) or pod["metadata"].get("deletionTimestamp"):
                continue
            if can_adopt is None:
                can_adopt = await self._can_adopt(owner)
            if not can_adopt:
                continue
            ref = cu.owner_reference(owner, self.owner_api_version, self.owner_kind)
            try:
                adopted = await self.client.patch(self.pods_rt, ns, pod["metadata"]["name"],
                                                  cu.adopt_patch(pod, ref), patch_type="strategic")
            except ClientError as e:
                if e.is_not_found or e.is_invalid:
                    continue
                raise
            claimed.append(adopted)
        return claimed

    async def _can_adopt(self, owner: Obj) -> bool:
        """Re-read the owner: adopting for an owner being deleted would orphan the pods again at once."""
        try:
            fresh = await self.client.get(self.owner_rt, owner["metadata"]["namespace"], owner["metadata"]["name"])
        except ClientError as e:
            if e.is_not_found:
                return False
            raise
        return fresh["metadata"].get("uid") == owner["metadata"]["uid"] and not fresh["metadata"].get(
            "deletionTimestamp")

    async def manage_replicas(self, owner: Obj, pods: list[Obj]) -> None:
        key = key_of(owner)
        spec = owner.get("spec") or {}
        diff = len(pods) - int(spec.get("replicas", 1))
        if diff < 0:
            count = min(-diff, self.burst)
            self.expectations.expect_creations(key, count)
            await self._create_pods(owner, key, count)
        elif diff > 0:
            count = min(diff, self.burst)
            victims = cu.rank_pods_for_deletion(pods, self._related_pods(owner), time.time())[:count]
            self.expectations.expect_deletions(key, [key_of(p) for p in victims])
            await self._delete_pods(owner, key, victims)

    async def _create_pods(self, owner: Obj, key: str, count: int) -> None:
        template = (owner.get("spec") or {}).get("template") or {}
        ref = cu.owner_reference(owner, self.owner_api_version, self.owner_kind)
        ns = owner["metadata"]["namespace"]

        async def create_one() -> None:
            try:
                # a generateName collision is a 409 AlreadyExists; upstream's API server retries those
                # itself (RetryGenerateName, GA in 1.32), ours may not: retry here as it would
                for attempt in range(GENERATE_NAME_ATTEMPTS):
                    try:
                        pod = await self.client.create(self.pods_rt, pod_from_template(template, owner, ref), ns)
                        break
                    except ClientError as e:
                        if not e.is_already_exists or attempt == GENERATE_NAME_ATTEMPTS - 1:
                            raise
            except ClientError as e:
                if is_namespace_terminating_error(e):
                    return
                self.recorder.event(owner, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise
            self.recorder.event(owner, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

        successes, error = await cu.slow_start(count, create_one)
        if count - successes > 0:
            self.expectations.creation_observed(key, count - successes)
        if error is not None:
            raise error

    async def _delete_pods(self, owner: Obj, key: str, victims: list[Obj]) -> None:
        async def delete_one(pod: Obj) -> None:
            name = pod["metadata"]["name"]
            try:
                await self.client.delete(self.pods_rt, pod["metadata"]["namespace"], name,
                                         preconditions={"uid": pod["metadata"]["uid"]})
            except ClientError as e:
                self.expectations.deletion_observed(key, key_of(pod))
                if e.is_not_found or e.is_conflict:
                    return
                self.recorder.event(owner, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                raise
            self.recorder.event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

        results = await asyncio.gather(*(delete_one(p) for p in victims), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    def _related_pods(self, owner: Obj) -> list[Obj]:
        """Pods of every sibling (same controller, e.g. a Deployment's other ReplicaSets), for ranking."""
        ref = cu.controller_ref(owner)
        siblings = [owner]
        if ref is not None:
            siblings = [o for o in self.owners.by_index(OWNER_UID_INDEX, ref.get("uid", ""))
                        if o["metadata"].get("namespace") == owner["metadata"].get("namespace")] or [owner]
        pods: dict[str, Obj] = {}
        for o in siblings:
            for p in self.pods.by_index(OWNER_UID_INDEX, o["metadata"]["uid"]):
                pods[key_of(p)] = p
        return list(pods.values())

    # -- status -----------------------------------------------------------------------------------------

    def calculate_status(self, owner: Obj, pods: list[Obj], manage_error: BaseException | None,
                         now: float | None = None) -> Obj:
        now = time.time() if now is None else now
        spec = owner.get("spec") or {}
        old = owner.get("status") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        fully = sum(1 for p in pods if all((p["metadata"].get("labels") or {}).get(k) == v
                                           for k, v in template_labels.items()))
        ready = sum(1 for p in pods if cu.is_pod_ready(p))
        available = sum(1 for p in pods if cu.is_pod_available(p, min_ready, now))
        status: Obj = {"replicas": len(pods)}
        for name, value in (("fullyLabeledReplicas", fully), ("readyReplicas", ready),
                            ("availableReplicas", available)):
            if value:
                status[name] = value
        if owner["metadata"].get("generation"):
            status["observedGeneration"] = owner["metadata"]["generation"]
        conditions = [dict(c) for c in old.get("conditions") or ()]
        failure = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
        if manage_error is not None and failure is None:
            reason = "FailedCreate" if len(pods) < int(spec.get("replicas", 1)) else "FailedDelete"
            message = getattr(manage_error, "message", None) or str(manage_error)
            conditions.append({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": cu.now_rfc3339(now),
                               "reason": reason, "message": message})
        elif manage_error is None and failure is not None:
            conditions = [c for c in conditions if c.get("type") != "ReplicaFailure"]
        if conditions:
            status["conditions"] = conditions
        for k, v in old.items():  # fields other controllers or newer versions maintain
            if k not in status and k not in ("conditions", "fullyLabeledReplicas", "readyReplicas",
                                              "availableReplicas", "replicas", "observedGeneration"):
                status[k] = v
        return status

    async def update_status(self, owner: Obj, pods: list[Obj], manage_error: BaseException | None) -> None:
        status = self.calculate_status(owner, pods, manage_error)
        if status == (owner.get("status") or {}):
            return
        obj = {k: v for k, v in owner.items() if k != "status"}
        obj = copy.deepcopy(obj)
        obj["status"] = status
        try:
            await self.client.update_status(self.owner_rt, obj)
        except ClientError as e:
            if e.is_not_found:
                return
            if not e.is_conflict:
                raise
            # one retry on a fresh copy, as upstream's updateReplicaSetStatus
            fresh = await self.client.get(self.owner_rt, owner["metadata"]["namespace"], owner["metadata"]["name"])
            if fresh["metadata"].get("uid") != owner["metadata"]["uid"]:
                return
            status = self.calculate_status(fresh, pods, manage_error)
            fresh["status"] = status
            await self.client.update_status(self.owner_rt, fresh)


class ReplicationControllerController(ReplicaSetController):
    """The same logic for core/v1 ReplicationControllers, whose selector is a plain label map."""

    name = "replicationcontroller-controller"
    aliases = ("replicationcontroller",)
    event_component = "replication-controller"
    service_account = "replication-controller"
    owner_group, owner_version, owner_resource = "", "v1", "replicationcontrollers"
    owner_api_version, owner_kind = "v1", "ReplicationController"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=ctx.config.concurrent_rc_syncs)

    def selector(self, owner: Obj) -> LabelSelector:
        labels = (owner.get("spec") or {}).get("selector") or {}
        if not labels:
            return EVERYTHING
        return try_label_selector_from_dict({"matchLabels": labels})


__all__ = ["ReplicaSetController", "ReplicationControllerController", "pod_from_template"]
