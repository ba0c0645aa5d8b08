"""The StatefulSet controller (upstream's pkg/controller/statefulset).

Pods `<set>-<ordinal>` with a stable identity (hostname = pod name, subdomain = serviceName, labels
`statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index`) and stable storage: one PVC
`<template>-<set>-<ordinal>` per volumeClaimTemplate, created before the pod and kept when it goes away,
unless `persistentVolumeClaimRetentionPolicy` asks for Delete (done through ownerReferences, the garbage
collector deletes).  The decisions are in `statefulset_util.plan`; revisions in `controllerhistory`.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from kubelite.api.selectors import LabelSelector, SelectorError, try_label_selector_from_dict
from kubelite.client import NAMESPACE_INDEX, OWNER_UID_INDEX, ClientError

from . import controller_utils as cu
from . import controllerhistory as ch
from . import statefulset_util as su
from .manager import Controller, ControllerContext
from .replicaset import is_namespace_terminating_error

log = logging.getLogger("kubelite.controllers.statefulset")

Obj = dict[str, Any]
API_VERSION, KIND = "apps/v1", "StatefulSet"


def _selector(sts: Obj) -> LabelSelector:
    return try_label_selector_from_dict((sts.get("spec") or {}).get("selector"))


class StatefulSetController(Controller):
    name = "statefulset-controller"
    aliases = ("statefulset",)
    event_component = "statefulset-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=int(ctx.config.extra.get("concurrent_statefulset_syncs", 5)))
        self.sts_rt = ctx.rt("apps", "v1", "statefulsets")
        self.pods_rt = ctx.rt("", "v1", "pods")
        self.pvc_rt = ctx.rt("", "v1", "persistentvolumeclaims")
        self.rev_rt = ctx.rt("apps", "v1", "controllerrevisions")
        self.history = ch.History(self.client, self.rev_rt)
        self.sets = self.informer(self.sts_rt)
        self.sets.add_handler(self.enqueue, self.enqueue_update, self.enqueue)
        self.pods = self.informer(self.pods_rt)
        self.pods.add_handler(self._pod_changed, lambda old, new: self._pod_changed(new, old), self._pod_changed)
        self.revisions = self.informer(self.rev_rt)
        self.revisions.add_handler(self._owned_changed, lambda old, new: self._owned_changed(new),
                                   self._owned_changed)
        self.claims = self.informer(self.pvc_rt)

    # -- handlers --------------------------------------------------------------------------------------------

    def _owner_of(self, obj: Obj) -> Obj | None:
        ref = cu.controller_ref(obj)
        if ref is None or ref.get("kind") != KIND:
            return None
        sts = self.sets.get(obj["metadata"].get("namespace"), ref.get("name", ""))
        if sts is None or sts["metadata"].get("uid") != ref.get("uid"):
            return None
        return sts

    def _owned_changed(self, obj: Obj) -> None:
        sts = self._owner_of(obj)
        if sts is not None:
            self.enqueue(sts)

    def _pod_changed(self, pod: Obj, old: Obj | None = None) -> None:
        sts = self._owner_of(pod)
        if sts is not None:
            self.enqueue(sts)
            return
        if cu.controller_ref(pod) is not None:
            return
        labels = pod["metadata"].get("labels") or {}
        for s in self.sets.by_index(NAMESPACE_INDEX, pod["metadata"].get("namespace") or ""):
            try:
                if su.is_member_of(s, pod) and _selector(s).matches(labels):
                    self.enqueue(s)
            except SelectorError:
                continue

    # -- sync ---------------------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        sts = self.sets.get_by_key(key)
        if sts is None:
            return
        try:
            selector = _selector(sts)
        except SelectorError as e:
            self.recorder.event(sts, "Warning", "InvalidSelector", f"Invalid selector: {e}")
            return
        pods = await self._claim_pods(sts, selector)
        current_rev, update_rev, collision = await self._revisions(sts)
        now = time.time()
        status_before = sts.get("status") or {}
        the_plan = su.plan(sts, pods, current_rev["metadata"]["name"], update_rev["metadata"]["name"], now)
        if the_plan.waiting_for:
            log.debug("statefulset %s: waiting for %s", key, the_plan.waiting_for)
        pods_after = {p["metadata"]["name"]: p for p in pods}
        error: BaseException | None = None
        try:
            for action in the_plan.actions:
                await self._apply(sts, action, current_rev, update_rev, pods_after)
        except (ClientError, OSError, TimeoutError) as e:
            error = e
        status = su.compute_status(sts, list(pods_after.values()), current_rev["metadata"]["name"],
                                   update_rev["metadata"]["name"], collision, now)
        if status != status_before:
            await self._update_status(sts, status)
        await self._truncate_history(sts, pods, current_rev, update_rev)
        if error is not None:
            raise error
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready and status.get("availableReplicas", 0) < status.get("readyReplicas", 0):
            self.enqueue_after(key, min_ready)

    async def _claim_pods(self, sts: Obj, selector: LabelSelector) -> list[Obj]:
        """Owned members that still match, plus adopted matching orphans (upstream's ClaimPods with the
        isMemberOf filter); owned pods that stopped matching are released."""
        uid = sts["metadata"]["uid"]
        ns = sts["metadata"]["namespace"]
        out = []
        for p in self.pods.by_index(OWNER_UID_INDEX, uid):
            ref = cu.controller_ref(p)
            if ref is None or ref.get("uid") != uid:
                continue
            if selector.matches(p["metadata"].get("labels") or {}) and su.is_member_of(sts, p):
                out.append(p)
            elif not sts["metadata"].get("deletionTimestamp"):
                try:
                    await self.client.patch(self.pods_rt, ns, p["metadata"]["name"], cu.release_patch(p, uid),
                                            patch_type="strategic")
                except ClientError as e:
                    if not (e.is_not_found or e.is_invalid):
                        raise
        if sts["metadata"].get("deletionTimestamp"):
            return out
        for p in self.pods.by_index(NAMESPACE_INDEX, ns):
            if cu.controller_ref(p) is not None or p["metadata"].get("deletionTimestamp"):
                continue
            if not (su.is_member_of(sts, p) and selector.matches(p["metadata"].get("labels") or {})):
                continue
            ref = cu.owner_reference(sts, API_VERSION, KIND)
            try:
                out.append(await self.client.patch(self.pods_rt, ns, p["metadata"]["name"],
                                                   cu.adopt_patch(p, ref), patch_type="strategic"))
            except ClientError as e:
                if not (e.is_not_found or e.is_invalid):
                    raise
        return out

    async def _revisions(self, sts: Obj) -> tuple[Obj, Obj, int]:
        """(current revision, update revision, collisionCount), creating the update revision if new."""
        revisions = ch.sort_revisions(self.revisions.by_index(OWNER_UID_INDEX, sts["metadata"]["uid"]))
        status = sts.get("status") or {}
        collision = int(status.get("collisionCount") or 0)
        template = (sts.get("spec") or {}).get("template") or {}
        candidate = ch.new_revision(sts, API_VERSION, KIND, (template.get("metadata") or {}).get("labels"),
                                    ch.template_patch(template), ch.next_revision(revisions), collision)
        equal = ch.find_equal_revisions(revisions, candidate)
        if equal and revisions and equal[-1] is revisions[-1]:
            update_rev = revisions[-1]
        elif equal:
            # a rollback to an older template: that revision becomes the newest
            update_rev = await self.history.update_revision(equal[-1], candidate["revision"])
        else:
            update_rev, collision = await self.history.create(candidate, collision)
        current_rev = next((r for r in revisions if r["metadata"]["name"] == status.get("currentRevision")),
                           update_rev)
        return current_rev, update_rev, collision

    # -- actions ----------------------------------------------------------------------------------------------

    async def _apply(self, sts: Obj, action: su.Action, current_rev: Obj, update_rev: Obj,
                     pods_after: dict[str, Obj]) -> None:
        set_name = sts["metadata"]["name"]
        if action.kind == "create":
            rev = current_rev if action.revision == "current" else update_rev
            template = ch.template_of(rev) if rev is current_rev else (sts.get("spec") or {}).get("template") or {}
            pod = su.new_pod(sts, template, action.ordinal, rev["metadata"]["name"],
                             cu.owner_reference(sts, API_VERSION, KIND))
            await self._ensure_claims(sts, action.ordinal, pod["metadata"]["name"])
            try:
                created = await self.client.create(self.pods_rt, pod, sts["metadata"]["namespace"])
            except ClientError as e:
                if e.is_already_exists or is_namespace_terminating_error(e):
                    return
                self.recorder.event(sts, "Warning", "FailedCreate",
                                    f"create Pod {pod['metadata']['name']} in StatefulSet {set_name} failed "
                                    f"error: {e.message}")
                raise
            pods_after[created["metadata"]["name"]] = created
            self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                f"create Pod {created['metadata']['name']} in StatefulSet {set_name} successful")
        elif action.kind == "delete":
            pod = action.pod
            assert pod is not None
            name = pod["metadata"]["name"]
            if action.reason == "condemned":
                await self._claims_follow_pod(sts, pod)
            try:
                await self.client.delete(self.pods_rt, pod["metadata"]["namespace"], name,
                                         preconditions={"uid": pod["metadata"]["uid"]})
            except ClientError as e:
                if e.is_not_found or e.is_conflict:
                    pods_after.pop(name, None)
                    return
                self.recorder.event(sts, "Warning", "FailedDelete",
                                    f"delete Pod {name} in StatefulSet {set_name} failed error: {e.message}")
                raise
            self.recorder.event(sts, "Normal", "SuccessfulDelete",
                                f"delete Pod {name} in StatefulSet {set_name} successful")
            if action.reason == "failed":
                pods_after.pop(name, None)
            else:
                gone = copy.deepcopy(pod)
                gone["metadata"]["deletionTimestamp"] = cu.now_rfc3339()
                pods_after[name] = gone
        elif action.kind == "fix":
            pod = action.pod
            assert pod is not None
            patch = su.identity_patch(sts, pod)
            if patch is None:
                return
            await self.client.patch(self.pods_rt, pod["metadata"]["namespace"], pod["metadata"]["name"], patch,
                                    patch_type="merge")
            self.recorder.event(sts, "Normal", "SuccessfulUpdate",
                                f"update Pod {pod['metadata']['name']} in StatefulSet {set_name} successful")

    def _claim_refs(self, sts: Obj, claim: Obj | None, pod: Obj | None) -> list[Obj] | None:
        """The ownerReferences the retention policy wants on a claim (None: leave them as they are)."""
        when_deleted, when_scaled = su.retention_policy(sts)
        refs = [r for r in ((claim or {}).get("metadata") or {}).get("ownerReferences") or ()
                if r.get("uid") != sts["metadata"]["uid"] and r.get("kind") != "Pod"]
        if when_deleted == "Delete":
            refs.append({"apiVersion": API_VERSION, "kind": KIND, "name": sts["metadata"]["name"],
                         "uid": sts["metadata"]["uid"], "blockOwnerDeletion": True})
        if pod is not None and when_scaled == "Delete":
            refs.append({"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                         "uid": pod["metadata"]["uid"], "blockOwnerDeletion": True})
        old = ((claim or {}).get("metadata") or {}).get("ownerReferences") or []
        return None if refs == old else refs

    async def _ensure_claims(self, sts: Obj, ordinal: int, pod_name: str) -> None:
        set_name = sts["metadata"]["name"]
        ns = sts["metadata"]["namespace"]
        for claim in su.new_claims(sts, ordinal):
            name = claim["metadata"]["name"]
            existing = self.claims.get(ns, name)
            if existing is not None:
                if existing["metadata"].get("deletionTimestamp"):
                    raise ClientError(409, "Conflict", f"pvc {name} is being deleted")
                refs = self._claim_refs(sts, existing, None)
                if refs is not None:
                    await self.client.patch(self.pvc_rt, ns, name, {"metadata": {"ownerReferences": refs}},
                                            patch_type="merge")
                continue
            refs = self._claim_refs(sts, None, None)
            if refs:
                claim["metadata"]["ownerReferences"] = refs
            try:
                await self.client.create(self.pvc_rt, claim, ns)
            except ClientError as e:
                if e.is_already_exists:
                    continue
                self.recorder.event(sts, "Warning", "FailedCreate",
                                    f"create Claim {name} for Pod {pod_name} in StatefulSet {set_name} failed "
                                    f"error: {e.message}")
                raise
            self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                f"create Claim {name} Pod {pod_name} in StatefulSet {set_name} success")

    async def _claims_follow_pod(self, sts: Obj, pod: Obj) -> None:
        """whenScaled=Delete: a condemned pod's claims get the pod as owner, so they go with it."""
        _, when_scaled = su.retention_policy(sts)
        if when_scaled != "Delete":
            return
        ns = sts["metadata"]["namespace"]
        for claim in su.new_claims(sts, su.ordinal_of(pod)):
            existing = self.claims.get(ns, claim["metadata"]["name"])
            if existing is None:
                continue
            refs = self._claim_refs(sts, existing, pod)
            if refs is not None:
                await self.client.patch(self.pvc_rt, ns, claim["metadata"]["name"],
                                        {"metadata": {"ownerReferences": refs}}, patch_type="merge")

    async def _update_status(self, sts: Obj, status: Obj) -> None:
        obj = copy.deepcopy({k: v for k, v in sts.items() if k != "status"})
        obj["status"] = status
        try:
            await self.client.update_status(self.sts_rt, obj)
        except ClientError as e:
            if e.is_not_found:
                return
            if not e.is_conflict:
                raise
            fresh = await self.client.get(self.sts_rt, sts["metadata"]["namespace"], sts["metadata"]["name"])
            if fresh["metadata"].get("uid") != sts["metadata"]["uid"]:
                return
            fresh["status"] = {**status, "observedGeneration": status.get("observedGeneration")}
            await self.client.update_status(self.sts_rt, fresh)

    async def _truncate_history(self, sts: Obj, pods: list[Obj], current_rev: Obj, update_rev: Obj) -> None:
        limit = (sts.get("spec") or {}).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        live = {current_rev["metadata"]["name"], update_rev["metadata"]["name"]}
        live |= {su.pod_revision(p) for p in pods}
        revisions = ch.sort_revisions(self.revisions.by_index(OWNER_UID_INDEX, sts["metadata"]["uid"]))
        history = [r for r in revisions if r["metadata"]["name"] not in live]
        for r in history[:max(len(history) - limit, 0)]:
            await self.history.delete(r)


__all__ = ["StatefulSetController"]
