"""The DaemonSet controller (upstream's pkg/controller/daemon).

One pod per eligible node (see `daemonset_util.should_run`), created with node affinity to that node and
left for the scheduler to bind; failed pods are deleted and replaced; pods on nodes that no longer qualify
are deleted.  Updates roll by maxUnavailable / maxSurge (RollingUpdate) or wait for manual deletion
(OnDelete).  Revisions are ControllerRevisions; pods carry `controller-revision-hash`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

from kubelite.api.selectors import LabelSelector, SelectorError, try_label_selector_from_dict
from kubelite.client import NAMESPACE_INDEX, OWNER_UID_INDEX, ClientError, key_of

from . import controller_utils as cu
from . import controllerhistory as ch
from . import daemonset_util as du
from .manager import Controller, ControllerContext
from .replicaset import is_namespace_terminating_error

log = logging.getLogger("kubelite.controllers.daemonset")

Obj = dict[str, Any]
API_VERSION, KIND = "apps/v1", "DaemonSet"


def _selector(ds: Obj) -> LabelSelector:
    return try_label_selector_from_dict((ds.get("spec") or {}).get("selector"))


class DaemonSetController(Controller):
    name = "daemonset-controller"
    aliases = ("daemonset",)
    event_component = "daemonset-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=int(ctx.config.extra.get("concurrent_daemonset_syncs", 2)))
        self.ds_rt = ctx.rt("apps", "v1", "daemonsets")
        self.pods_rt = ctx.rt("", "v1", "pods")
        self.nodes_rt = ctx.rt("", "v1", "nodes")
        self.rev_rt = ctx.rt("apps", "v1", "controllerrevisions")
        self.history = ch.History(self.client, self.rev_rt)
        self.expectations = cu.Expectations(ctx.config.expectations_timeout)
        self.burst = ctx.config.burst_replicas
        self.sets = self.informer(self.ds_rt)
        self.sets.add_handler(self.enqueue, self.enqueue_update, self._ds_deleted)
        self.nodes = self.informer(self.nodes_rt)
        self.nodes.add_handler(self._node_changed, self._node_updated, self._node_changed)
        self.pods = self.informer(self.pods_rt)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.revisions = self.informer(self.rev_rt)

    # -- handlers ------------------------------------------------------------------------------------------

    def _ds_deleted(self, ds: Obj) -> None:
        self.expectations.delete(key_of(ds))
        self.enqueue(ds)

    def _node_changed(self, node: Obj) -> None:
        for ds in self.sets.list():
            self.enqueue(ds)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        # heartbeats change only status: only labels, taints and unschedulability matter here
        om, nm = old["metadata"], new["metadata"]
        if om.get("labels") == nm.get("labels") and (old.get("spec") or {}) == (new.get("spec") or {}):
            return
        self._node_changed(new)

    def _owner_of(self, pod: Obj) -> Obj | None:
        ref = cu.controller_ref(pod)
        if ref is None or ref.get("kind") != KIND:
            return None
        ds = self.sets.get(pod["metadata"].get("namespace"), ref.get("name", ""))
        if ds is None or ds["metadata"].get("uid") != ref.get("uid"):
            return None
        return ds

    def _pod_added(self, pod: Obj) -> None:
        ds = self._owner_of(pod)
        if ds is not None:
            self.expectations.creation_observed(key_of(ds))
            self.enqueue(ds)
        elif cu.controller_ref(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        ds = self._owner_of(new)
        if ds is not None:
            self.enqueue(ds)
            min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready and not cu.is_pod_ready(old) and cu.is_pod_ready(new):
                self.enqueue_after(ds, min_ready + 1)
        elif cu.controller_ref(new) is None:
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: Obj) -> None:
        ds = self._owner_of(pod)
        if ds is not None:
            self.expectations.deletion_observed(key_of(ds), key_of(pod))
            self.enqueue(ds)

    def _enqueue_matching(self, pod: Obj) -> None:
        labels = pod["metadata"].get("labels") or {}
        for ds in self.sets.by_index(NAMESPACE_INDEX, pod["metadata"].get("namespace") or ""):
            try:
                if _selector(ds).matches(labels):
                    self.enqueue(ds)
            except SelectorError:
                continue

    # -- sync ---------------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ds = self.sets.get_by_key(key)
        if ds is None:
            self.expectations.delete(key)
            return
        try:
            selector = _selector(ds)
        except SelectorError as e:
            self.recorder.event(ds, "Warning", "InvalidSelector", f"Invalid selector: {e}")
            return
        if selector.empty():
            self.recorder.event(ds, "Warning", "SelectingAll",
                                "This daemon set is selecting all pods. A non-empty selector is required.")
            return
        pods = await self._claim_pods(ds, selector)
        nodes = self.nodes.list()
        cur, collision = await self._revisions(ds)
        hash_ = (cur["metadata"].get("labels") or {}).get(ch.HASH_LABEL, "")
        by_node: dict[str, list[Obj]] = {}
        for p in pods:
            by_node.setdefault(du.target_node(p), []).append(p)
        now = time.time()
        error: BaseException | None = None
        if not ds["metadata"].get("deletionTimestamp") and self.expectations.satisfied(key):
            plan = du.manage(ds, nodes, by_node, hash_)
            for p in plan.failed:
                self.recorder.event(ds, "Warning", "FailedDaemonPod",
                                    f"Found failed daemon pod {p['metadata']['namespace']}/{p['metadata']['name']} "
                                    f"on node {du.target_node(p)}, will try to kill it")
            delete, create = list(plan.delete), list(plan.create_on)
            if du.is_rolling(ds) and not create and not delete:
                more_delete, more_create = du.rolling_update(ds, nodes, by_node, hash_, now)
                delete += more_delete
                create += more_create
            try:
                await self._sync_nodes(ds, key, delete, create, hash_)
            except (ClientError, OSError, TimeoutError) as e:
                error = e
        status = du.compute_status(ds, nodes, by_node, hash_, now)
        if collision:
            status["collisionCount"] = collision
        if status != (ds.get("status") or {}):
            await self._update_status(ds, status)
        await self._truncate_history(ds, pods, cur)
        if error is not None:
            raise error
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready and status.get("numberAvailable", 0) < status.get("numberReady", 0):
            self.enqueue_after(key, min_ready)

    async def _claim_pods(self, ds: Obj, selector: LabelSelector) -> list[Obj]:
        uid = ds["metadata"]["uid"]
        ns = ds["metadata"]["namespace"]
        out = [p for p in self.pods.by_index(OWNER_UID_INDEX, uid)
               if (cu.controller_ref(p) or {}).get("uid") == uid and selector.matches(p["metadata"].get("labels") or {})]
        if ds["metadata"].get("deletionTimestamp"):
            return out
        for p in self.pods.by_index(NAMESPACE_INDEX, ns):
            if cu.controller_ref(p) is not None or p["metadata"].get("deletionTimestamp"):
                continue
            if not selector.matches(p["metadata"].get("labels") or {}):
                continue
            try:
                out.append(await self.client.patch(self.pods_rt, ns, p["metadata"]["name"],
                                                   cu.adopt_patch(p, cu.owner_reference(ds, API_VERSION, KIND)),
                                                   patch_type="strategic"))
            except ClientError as e:
                if not (e.is_not_found or e.is_invalid):
                    raise
        return out

    async def _revisions(self, ds: Obj) -> tuple[Obj, int]:
        revisions = ch.sort_revisions(self.revisions.by_index(OWNER_UID_INDEX, ds["metadata"]["uid"]))
        collision = int((ds.get("status") or {}).get("collisionCount") or 0)
        template = (ds.get("spec") or {}).get("template") or {}
        candidate = ch.new_revision(ds, API_VERSION, KIND, (template.get("metadata") or {}).get("labels"),
                                    ch.template_patch(template), ch.next_revision(revisions), collision)
        equal = ch.find_equal_revisions(revisions, candidate)
        if equal:
            cur = equal[-1]
            if revisions and cur is not revisions[-1]:
                cur = await self.history.update_revision(cur, candidate["revision"])
            return cur, collision
        return await self.history.create(candidate, collision)

    async def _sync_nodes(self, ds: Obj, key: str, delete: list[Obj], create: list[str], hash_: str) -> None:
        """Deletes first; creates only in a sync without deletes (the expectations track one kind at a
        time, and the pods being deleted are replaced on the next sync anyway)."""
        ns = ds["metadata"]["namespace"]
        if delete:
            delete = delete[:self.burst]
            self.expectations.expect_deletions(key, [key_of(p) for p in delete])

            async def delete_one(pod: Obj) -> None:
                name = pod["metadata"]["name"]
                try:
                    await self.client.delete(self.pods_rt, ns, name, preconditions={"uid": pod["metadata"]["uid"]})
                except ClientError as e:
                    self.expectations.deletion_observed(key, key_of(pod))
                    if e.is_not_found or e.is_conflict:
                        return
                    self.recorder.event(ds, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                    raise
                self.recorder.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

            results = await asyncio.gather(*(delete_one(p) for p in delete), return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    raise r
            if create:
                self.queue.add(key)
            return
        create = create[:self.burst]
        if not create:
            return
        self.expectations.expect_creations(key, len(create))
        ref = cu.owner_reference(ds, API_VERSION, KIND)
        queue = list(create)

        async def create_one() -> None:
            node = queue.pop(0)
            try:
                pod = await self.client.create(self.pods_rt, du.new_pod(ds, hash_, node, ref), ns)
            except ClientError as e:
                if is_namespace_terminating_error(e):
                    return
                self.recorder.event(ds, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise
            self.recorder.event(ds, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")

        successes, error = await cu.slow_start(len(create), create_one)
        if len(create) - successes > 0:
            self.expectations.creation_observed(key, len(create) - successes)
        if error is not None:
            raise error

    async def _update_status(self, ds: Obj, status: Obj) -> None:
        obj = copy.deepcopy({k: v for k, v in ds.items() if k != "status"})
        obj["status"] = status
        try:
            await self.client.update_status(self.ds_rt, obj)
        except ClientError as e:
            if e.is_not_found:
                return
            if not e.is_conflict:
                raise
            fresh = await self.client.get(self.ds_rt, ds["metadata"]["namespace"], ds["metadata"]["name"])
            if fresh["metadata"].get("uid") != ds["metadata"]["uid"]:
                return
            fresh["status"] = status
            await self.client.update_status(self.ds_rt, fresh)

    async def _truncate_history(self, ds: Obj, pods: list[Obj], cur: Obj) -> None:
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        live = {(p["metadata"].get("labels") or {}).get(ch.HASH_LABEL) for p in pods}
        revisions = ch.sort_revisions(self.revisions.by_index(OWNER_UID_INDEX, ds["metadata"]["uid"]))
        history = [r for r in revisions if r["metadata"]["name"] != cur["metadata"]["name"]
                   and (r["metadata"].get("labels") or {}).get(ch.HASH_LABEL) not in live]
        for r in history[:max(len(history) - limit, 0)]:
            await self.history.delete(r)


__all__ = ["DaemonSetController"]
