"""The Deployment controller (upstream's pkg/controller/deployment): ReplicaSets per pod template, rollouts.

One ReplicaSet per distinct pod template, named `<deployment>-<pod-template-hash>`, labelled and selected by
`pod-template-hash`, owned by the Deployment.  RollingUpdate scales the new ReplicaSet up within maxSurge
and old ones down within maxUnavailable; Recreate scales old ones to zero, waits for their pods to go, then
scales the new one up.  Revisions (`deployment.kubernetes.io/revision`) number templates in order of use; a
rollback (`kubectl rollout undo` puts an old template back) finds the old ReplicaSet and gives it the next
revision.  Resizing a Deployment mid-rollout resizes its ReplicaSets proportionally.  Paused deployments only
scale.  Status and conditions (Available, Progressing incl. ProgressDeadlineExceeded, ReplicaFailure) and
`ScalingReplicaSet` events are upstream's.  Decisions live in `deployment_util`.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from kubelite.api.selectors import LabelSelector, SelectorError, try_label_selector_from_dict
from kubelite.client import NAMESPACE_INDEX, ClientError, key_of

from . import controller_utils as cu
from . import deployment_util as du
from .manager import Controller, ControllerContext
from .replicaset import is_namespace_terminating_error

log = logging.getLogger("kubelite.controllers.deployment")

Obj = dict[str, Any]


class DeploymentController(Controller):
    name = "deployment-controller"
    aliases = ("deployment",)
    event_component = "deployment-controller"
    service_account = "deployment-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=ctx.config.concurrent_deployment_syncs)
        self.d_rt = ctx.rt("apps", "v1", "deployments")
        self.rs_rt = ctx.rt("apps", "v1", "replicasets")
        self.pods_rt = ctx.rt("", "v1", "pods")
        self.history_limit_chars = ctx.config.max_revision_history_chars
        self.deployments = self.informer(self.d_rt)
        self.deployments.add_handler(self.enqueue, self.enqueue_update, self.enqueue)
        self.rss = self.informer(self.rs_rt)
        self.rss.add_handler(self._add_rs, self._update_rs, self._delete_rs)
        self.pods = self.informer(self.pods_rt)
        self.pods.add_handler(None, None, self._delete_pod)

    # -- event handlers ---------------------------------------------------------------------------------

    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.deployments.get(namespace, ref.get("name", ""))
        if d is None or d["metadata"].get("uid") != ref.get("uid"):
            return None
        return d

    def _matching_deployments(self, rs: Obj) -> list[Obj]:
        labels = rs["metadata"].get("labels") or {}
        out = []
        for d in self.deployments.by_index(NAMESPACE_INDEX, rs["metadata"].get("namespace") or ""):
            try:
                sel = try_label_selector_from_dict((d.get("spec") or {}).get("selector"))
            except SelectorError:
                continue
            if not sel.empty() and sel.matches(labels):
                out.append(d)
        return out

    def _add_rs(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            self._delete_rs(rs)
            return
        ref = cu.controller_ref(rs)
        if ref is not None:
            d = self._resolve(rs["metadata"]["namespace"], ref)
            if d is not None:
                self.enqueue(d)
            return
        for d in self._matching_deployments(rs):
            self.enqueue(d)

    def _update_rs(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        ns = new["metadata"]["namespace"]
        cur_ref, old_ref = cu.controller_ref(new), cu.controller_ref(old)
        if cur_ref != old_ref and old_ref is not None:
            d = self._resolve(ns, old_ref)
            if d is not None:
                self.enqueue(d)
        if cur_ref is not None:
            d = self._resolve(ns, cur_ref)
            if d is not None:
                self.enqueue(d)
            return
        if old["metadata"].get("labels") != new["metadata"].get("labels") or cur_ref != old_ref:
            for d in self._matching_deployments(new):
                self.enqueue(d)

    def _delete_rs(self, rs: Obj) -> None:
        d = self._resolve(rs["metadata"]["namespace"], cu.controller_ref(rs))
        if d is not None:
            self.enqueue(d)

    def _delete_pod(self, pod: Obj) -> None:
        # a Recreate rollout waits for the old pods to be gone
        ref = cu.controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rss.get(pod["metadata"]["namespace"], ref.get("name", ""))
        if rs is None:
            return
        d = self._resolve(rs["metadata"]["namespace"], cu.controller_ref(rs))
        if d is not None and not du.is_rolling(d):
            self.enqueue(d)

    # -- sync -----------------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.deployments.get_by_key(key)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        try:
            selector = try_label_selector_from_dict((d.get("spec") or {}).get("selector"))
        except SelectorError as e:
            log.warning("deployment %s has an invalid selector: %s", key, e)
            return
        if selector.empty():
            self.recorder.event(d, "Warning", "SelectingAll",
                                "This deployment is selecting all pods. A non-empty selector is required.")
            status = d.get("status") or {}
            if int(d["metadata"].get("generation") or 0) > int(status.get("observedGeneration") or 0):
                await self._update_status(d, {**status, "observedGeneration": d["metadata"]["generation"]})
            return
        rs_list = await self.claim_replica_sets(d, selector)
        if d["metadata"].get("deletionTimestamp"):
            await self.sync_status_only(d, rs_list)
            return
        d = await self.check_paused_conditions(d)
        if d["spec"].get("paused"):
            await self.sync_scale(d, rs_list)
            return
        scaling, d = await self.is_scaling_event(d, rs_list)
        if scaling:
            await self.sync_scale(d, rs_list)
            return
        if du.is_rolling(d):
            await self.rollout_rolling(d, rs_list)
        else:
            await self.rollout_recreate(d, rs_list, selector)

    async def claim_replica_sets(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        ns = d["metadata"]["namespace"]
        uid = d["metadata"]["uid"]
        deleting = bool(d["metadata"].get("deletionTimestamp"))
        claimed: list[Obj] = []
        can_adopt: bool | None = None
        for rs in self.rss.by_index(NAMESPACE_INDEX, ns):
            labels = rs["metadata"].get("labels") or {}
            ref = cu.controller_ref(rs)
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if selector.matches(labels):
                    claimed.append(rs)
                elif not deleting:
                    try:
                        await self.client.patch(self.rs_rt, ns, rs["metadata"]["name"],
                                                cu.release_patch(rs, uid), patch_type="strategic")
                    except ClientError as e:
                        if not (e.is_not_found or e.is_invalid):
                            raise
                continue
            if deleting or rs["metadata"].get("deletionTimestamp") or not selector.matches(labels):
                continue
            if can_adopt is None:
                try:
                    fresh = await self.client.get(self.d_rt, ns, d["metadata"]["name"])
                    can_adopt = fresh["metadata"].get("uid") == uid and not fresh["metadata"].get(
                        "deletionTimestamp")
                except ClientError as e:
                    if not e.is_not_found:
                        raise
                    can_adopt = False
            if not can_adopt:
                continue
            ref = cu.owner_reference(d, "apps/v1", "Deployment")
            try:
                claimed.append(await self.client.patch(self.rs_rt, ns, rs["metadata"]["name"],
                                                       cu.adopt_patch(rs, ref), patch_type="strategic"))
            except ClientError as e:
                if not (e.is_not_found or e.is_invalid):
                    raise
        return claimed

    # -- new / old ReplicaSets --------------------------------------------------------------------------------

    async def get_all_rss(self, d: Obj, rs_list: list[Obj], create: bool) -> tuple[Obj | None, list[Obj], Obj]:
        """(new RS or None, every old RS, the deployment as last written)."""
        existing = du.find_new_rs(d, rs_list)
        old = [rs for rs in rs_list if existing is None or rs["metadata"]["uid"] != existing["metadata"]["uid"]]
        new_rs, d = await self.get_new_rs(d, rs_list, old, create)
        return new_rs, old, d

    async def get_new_rs(self, d: Obj, rs_list: list[Obj], old_rss: list[Obj],
                         create: bool) -> tuple[Obj | None, Obj]:
        existing = du.find_new_rs(d, rs_list)
        new_revision = du.max_revision(old_rss) + 1
        ns = d["metadata"]["namespace"]
        if existing is not None:
            rs = copy.deepcopy(existing)
            changed = du.set_new_rs_annotations(d, rs, new_revision, True, self.history_limit_chars)
            min_ready = int(d["spec"].get("minReadySeconds") or 0)
            if changed or int(rs["spec"].get("minReadySeconds") or 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                rs = await self.client.update(self.rs_rt, rs)
                # later steps of this sync read rs_list: give them the copy just written
                rs_list[:] = [rs if o["metadata"]["uid"] == rs["metadata"]["uid"] else o for o in rs_list]
            d = await self._set_revision(d, du.annotations(rs).get(du.REVISION, ""))
            status = copy.deepcopy(d.get("status") or {})
            if du.has_progress_deadline(d) and du.get_condition(status, du.PROGRESSING) is None:
                du.set_condition(status, du.new_condition(
                    du.PROGRESSING, "True", du.FOUND_NEW_RS_REASON, f'Found new replica set "{rs["metadata"]["name"]}"'))
                d = await self._update_status(d, status)
            return rs, d
        if not create:
            return None, d
        template = copy.deepcopy(d["spec"]["template"])
        collision = (d.get("status") or {}).get("collisionCount")
        hash_ = du.compute_hash(template, collision)
        template.setdefault("metadata", {}).setdefault("labels", {})[du.POD_TEMPLATE_HASH] = hash_
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[du.POD_TEMPLATE_HASH] = hash_
        name = f"{d['metadata']['name']}-{hash_}"
        new_rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": ns, "labels": dict(template["metadata"]["labels"]),
                         "ownerReferences": [cu.owner_reference(d, "apps/v1", "Deployment")]},
            "spec": {"replicas": 0, "minReadySeconds": int(d["spec"].get("minReadySeconds") or 0),
                     "selector": selector, "template": template},
        }
        replicas = du.new_rs_new_replicas(d, old_rss + [new_rs], new_rs)
        new_rs["spec"]["replicas"] = replicas
        du.set_new_rs_annotations(d, new_rs, new_revision, False, self.history_limit_chars)
        already_exists = False
        try:
            created = await self.client.create(self.rs_rt, new_rs, ns)
        except ClientError as e:
            if e.is_already_exists:
                found = self.rss.get(ns, name) or await self.client.get(self.rs_rt, ns, name)
                ref = cu.controller_ref(found)
                if (ref is not None and ref.get("uid") == d["metadata"]["uid"]
                        and du.equal_ignore_hash(d["spec"]["template"], found["spec"].get("template"))):
                    created, already_exists = found, True
                else:
                    # a hash collision: another template produced this name; retry with a new hash
                    status = copy.deepcopy(d.get("status") or {})
                    status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                    await self._update_status(d, status)
                    raise
            elif is_namespace_terminating_error(e):
                raise
            else:
                msg = f'Failed to create new replica set "{name}": {e.message}'
                if du.has_progress_deadline(d):
                    status = copy.deepcopy(d.get("status") or {})
                    du.set_condition(status, du.new_condition(du.PROGRESSING, "False", du.FAILED_RS_CREATE_REASON, msg))
                    await self._update_status(d, status)
                self.recorder.event(d, "Warning", "FailedCreate", msg)
                raise
        if not already_exists and replicas > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {replicas}")
        d = await self._set_revision(d, str(new_revision))
        if not already_exists and du.has_progress_deadline(d):
            status = copy.deepcopy(d.get("status") or {})
            du.set_condition(status, du.new_condition(du.PROGRESSING, "True", du.NEW_RS_REASON,
                                                      f'Created new replica set "{name}"'))
            d = await self._update_status(d, status)
        return created, d

    # -- scaling ------------------------------------------------------------------------------------------------

    async def scale_rs(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        """Set the size and the desired/max-replicas annotations; True if the size changed."""
        old_scale = du.spec_replicas(rs)
        size_changes = old_scale != new_scale
        max_replicas = du.spec_replicas(d) + du.max_surge(d)
        if not size_changes and not du.replicas_annotations_need_update(rs, du.spec_replicas(d), max_replicas):
            return False, rs
        updated = copy.deepcopy(rs)
        updated["spec"]["replicas"] = new_scale
        du.set_replicas_annotations(updated, du.spec_replicas(d), max_replicas)
        updated = await self.client.update(self.rs_rt, updated)
        if size_changes:
            op = "up" if old_scale < new_scale else "down"
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {op} replica set {rs['metadata']['name']} from {old_scale} to {new_scale}")
        return size_changes, updated

    async def scale_rs_and_record(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        if du.spec_replicas(rs) == new_scale:
            return False, rs
        return await self.scale_rs(rs, new_scale, d)

    async def is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> tuple[bool, Obj]:
        new_rs, old_rss, d = await self.get_all_rss(d, rs_list, False)
        for rs in du.filter_active(old_rss + [new_rs]):
            desired = (rs["metadata"].get("annotations") or {}).get(du.DESIRED_REPLICAS)
            if desired is not None and desired.isdigit() and int(desired) != du.spec_replicas(d):
                return True, d
        return False, d

    async def sync_scale(self, d: Obj, rs_list: list[Obj]) -> None:
        """Scaling only (paused deployments, resizes): upstream's sync()."""
        new_rs, old_rss, d = await self.get_all_rss(d, rs_list, False)
        updated: dict[str, Obj] = {}
        for rs, size in du.scale_plan(d, new_rs, old_rss):
            _, updated[rs["metadata"]["uid"]] = await self.scale_rs(rs, size, d)

        def fresh(rs: Obj | None) -> Obj | None:
            return None if rs is None else updated.get(rs["metadata"]["uid"], rs)

        new_rs, old_rss = fresh(new_rs), [fresh(rs) for rs in old_rss]
        if d["spec"].get("paused"):
            await self.cleanup(old_rss, d)
        await self.sync_deployment_status(old_rss + [new_rs], new_rs, d)

    async def rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss, d = await self.get_all_rss(d, rs_list, True)
        all_rss = old_rss + [new_rs]
        if new_rs is not None and du.spec_replicas(new_rs) != du.spec_replicas(d):
            if du.spec_replicas(new_rs) > du.spec_replicas(d):
                target = du.spec_replicas(d)
            else:
                target = du.new_rs_new_replicas(d, all_rss, new_rs)
            scaled, new_rs = await self.scale_rs_and_record(new_rs, target, d)
            if scaled:
                await self.sync_rollout_status(old_rss + [new_rs], new_rs, d)
                return
        if await self.reconcile_old(d, old_rss, new_rs):
            await self.sync_rollout_status(old_rss + [new_rs], new_rs, d)
            return
        if du.deployment_complete(d, d.get("status") or {}):
            await self.cleanup(old_rss, d)
        await self.sync_rollout_status(old_rss + [new_rs], new_rs, d)

    async def reconcile_old(self, d: Obj, old_rss: list[Obj], new_rs: Obj | None) -> bool:
        if sum(du.spec_replicas(rs) for rs in old_rss) == 0:
            return False
        budget = du.max_scaled_down(d, old_rss + [new_rs], new_rs)
        if budget <= 0:
            return False
        total = 0
        current = list(old_rss)
        for rs, size in du.cleanup_unhealthy_plan(current, budget):
            _, upd = await self.scale_rs_and_record(rs, size, d)
            total += du.spec_replicas(rs) - size
            current = [upd if o["metadata"]["uid"] == rs["metadata"]["uid"] else o for o in current]
        for rs, size in du.scale_down_old_plan(d, current + [new_rs], current):
            await self.scale_rs_and_record(rs, size, d)
            total += du.spec_replicas(rs) - size
        return total > 0

    async def rollout_recreate(self, d: Obj, rs_list: list[Obj], selector: LabelSelector) -> None:
        new_rs, old_rss, d = await self.get_all_rss(d, rs_list, False)
        scaled_down = False
        for rs in du.filter_active(old_rss):
            scaled, _ = await self.scale_rs_and_record(rs, 0, d)
            scaled_down = scaled_down or scaled
        if scaled_down:
            await self.sync_rollout_status(old_rss + [new_rs], new_rs, d)
            return
        if self._old_pods_running(new_rs, old_rss, rs_list, selector, d):
            await self.sync_rollout_status(old_rss + [new_rs], new_rs, d)
            return
        if new_rs is None:
            new_rs, old_rss, d = await self.get_all_rss(d, rs_list, True)
        if new_rs is not None:
            _, new_rs = await self.scale_rs_and_record(new_rs, du.spec_replicas(d), d)
        if du.deployment_complete(d, d.get("status") or {}):
            await self.cleanup(old_rss, d)
        await self.sync_rollout_status(old_rss + [new_rs], new_rs, d)

    def _old_pods_running(self, new_rs: Obj | None, old_rss: list[Obj], rs_list: list[Obj],
                          selector: LabelSelector, d: Obj) -> bool:
        if sum(du.status_int(rs, "replicas") for rs in old_rss) > 0:
            return True
        uids = {rs["metadata"]["uid"] for rs in rs_list}
        new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
        for pod in self.pods.by_index(NAMESPACE_INDEX, d["metadata"]["namespace"]):
            ref = cu.controller_ref(pod)
            if ref is None or ref.get("uid") not in uids or ref.get("uid") == new_uid:
                continue
            if not selector.matches(pod["metadata"].get("labels") or {}):
                continue
            if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
                continue
            return True
        return False

    async def cleanup(self, old_rss: list[Obj], d: Obj) -> None:
        """Delete the oldest unused ReplicaSets beyond revisionHistoryLimit."""
        limit = d["spec"].get("revisionHistoryLimit")
        if limit is None or int(limit) == du.MAX_INT32:
            return
        cleanable = [rs for rs in old_rss if rs is not None and not rs["metadata"].get("deletionTimestamp")]
        diff = len(cleanable) - int(limit)
        if diff <= 0:
            return
        cleanable.sort(key=lambda rs: (du.revision(rs), du.created(rs)))
        for rs in cleanable[:diff]:
            status = rs.get("status") or {}
            if (int(status.get("replicas") or 0) != 0 or du.spec_replicas(rs) != 0
                    or int(rs["metadata"].get("generation") or 0) > int(status.get("observedGeneration") or 0)):
                continue
            try:
                await self.client.delete(self.rs_rt, rs["metadata"]["namespace"], rs["metadata"]["name"],
                                         preconditions={"uid": rs["metadata"]["uid"]})
            except ClientError as e:
                if not (e.is_not_found or e.is_conflict):
                    raise

    # -- status ----------------------------------------------------------------------------------------------------

    async def check_paused_conditions(self, d: Obj) -> Obj:
        if not du.has_progress_deadline(d):
            return d
        status = copy.deepcopy(d.get("status") or {})
        cond = du.get_condition(status, du.PROGRESSING)
        if cond is not None and cond.get("reason") == du.TIMED_OUT_REASON:
            return d
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED_REASON
        if d["spec"].get("paused") and not paused_cond:
            du.set_condition(status, du.new_condition(du.PROGRESSING, "Unknown", du.PAUSED_REASON,
                                                      "Deployment is paused"))
        elif not d["spec"].get("paused") and paused_cond:
            du.set_condition(status, du.new_condition(du.PROGRESSING, "Unknown", du.RESUMED_REASON,
                                                      "Deployment is resumed"))
        else:
            return d
        return await self._update_status(d, status)

    async def sync_status_only(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss, d = await self.get_all_rss(d, rs_list, False)
        await self.sync_deployment_status(old_rss + [new_rs], new_rs, d)

    async def sync_deployment_status(self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> None:
        status = du.calculate_status([rs for rs in all_rss if rs is not None], new_rs, d)
        if status != (d.get("status") or {}):
            await self._update_status(d, status)

    async def sync_rollout_status(self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> None:
        now = time.time()
        rss = [rs for rs in all_rss if rs is not None]
        status = du.calculate_status(rss, new_rs, d, now)
        if not du.has_progress_deadline(d):
            du.remove_condition(status, du.PROGRESSING)
        current = du.get_condition(d.get("status") or {}, du.PROGRESSING)
        complete = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                    and current is not None and current.get("reason") == du.NEW_RS_AVAILABLE_REASON)
        if du.has_progress_deadline(d) and not complete:
            subject = (f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs is not None
                       else f'Deployment "{d["metadata"]["name"]}"')
            if du.deployment_complete(d, status):
                du.set_condition(status, du.new_condition(du.PROGRESSING, "True", du.NEW_RS_AVAILABLE_REASON,
                                                          f"{subject} has successfully progressed.", now))
            elif du.deployment_progressing(d, status):
                cond = du.new_condition(du.PROGRESSING, "True", du.RS_UPDATED_REASON, f"{subject} is progressing.", now)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    du.remove_condition(status, du.PROGRESSING)
                du.set_condition(status, cond)
            elif du.deployment_timed_out(d, status, now):
                du.set_condition(status, du.new_condition(du.PROGRESSING, "False", du.TIMED_OUT_REASON,
                                                          f"{subject} has timed out progressing.", now))
        failures = self._replica_failures(rss, new_rs)
        if failures:
            du.set_condition(status, failures[0])
        else:
            du.remove_condition(status, du.REPLICA_FAILURE)
        if status == (d.get("status") or {}):
            self._requeue_stuck(d, status, now)
            return
        await self._update_status(d, status)

    @staticmethod
    def _replica_failures(rss: list[Obj], new_rs: Obj | None) -> list[Obj]:
        def of(rs: Obj) -> list[Obj]:
            return [{"type": c["type"], "status": c.get("status"), "lastUpdateTime": c.get("lastTransitionTime"),
                     "lastTransitionTime": c.get("lastTransitionTime"), "reason": c.get("reason"),
                     "message": c.get("message")}
                    for c in (rs.get("status") or {}).get("conditions") or () if c.get("type") == "ReplicaFailure"]

        if new_rs is not None and (found := of(new_rs)):
            return found
        return [c for rs in rss for c in of(rs)]

    def _requeue_stuck(self, d: Obj, status: Obj, now: float) -> None:
        current = du.get_condition(d.get("status") or {}, du.PROGRESSING)
        if not du.has_progress_deadline(d) or current is None:
            return
        if du.deployment_complete(d, status) or current.get("reason") == du.TIMED_OUT_REASON:
            return
        since = cu.timestamp(current.get("lastUpdateTime"))
        if since is None:
            return
        after = since + int(d["spec"]["progressDeadlineSeconds"]) - now
        if after < 1:
            self.queue.add_rate_limited(key_of(d))
        else:
            self.enqueue_after(d, after + 1)

    async def _update_status(self, d: Obj, status: Obj) -> Obj:
        obj = {k: v for k, v in d.items() if k != "status"}
        obj["status"] = status
        return await self.client.update_status(self.d_rt, obj)

    async def _set_revision(self, d: Obj, revision: str) -> Obj:
        """The Deployment's revision annotation (written apart: our status writes keep metadata as it was)."""
        if not revision or du.annotations(d).get(du.REVISION) == revision:
            return d
        # a PUT, not a patch: upstream's deployment-controller role may update deployments but not patch them
        updated = copy.deepcopy(d)
        updated["metadata"].setdefault("annotations", {})[du.REVISION] = revision
        return await self.client.update(self.d_rt, updated)
