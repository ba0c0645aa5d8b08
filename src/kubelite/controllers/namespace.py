"""The namespace controller: empties a terminating namespace, then finalizes it (upstream's
pkg/controller/namespace/deletion).

For a namespace with a deletionTimestamp it deletes every namespaced object of every served resource type
(built-in types from `Registry()`, custom resources from discovery), pods first, each collection with
`propagationPolicy: Background`; reports progress in the namespace's conditions (NamespaceDeletionDiscoveryFailure,
NamespaceDeletionGroupVersionParsingFailure, NamespaceDeletionContentFailure, NamespaceContentRemaining,
NamespaceFinalizersRemaining with upstream's reasons and messages); while content remains it looks again after
an estimate (graceful pod deletions, finalizers); once empty it removes the `kubernetes` finalizer through
`PUT /api/v1/namespaces/<ns>/finalize`, after which the API server deletes the namespace.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

from kubelite.api.resources import ResourceType
from kubelite.client import ClientError

from . import controller_utils as cu
from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.namespace")

Obj = dict[str, Any]
FINALIZER = "kubernetes"
DISCOVERY_TTL = 30.0

CONDITION_TYPES = ("NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
                   "NamespaceDeletionContentFailure", "NamespaceContentRemaining", "NamespaceFinalizersRemaining")
OK_REASONS = {
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": ("ContentDeleted",
                                        "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}


class ContentTotals:
    def __init__(self) -> None:
        self.remaining: dict[tuple[str, str], int] = {}  # (group, resource) → items left
        self.finalizers: dict[str, int] = {}
        self.estimate = 0.0
        self.errors: list[str] = []


def merge_conditions(status: Obj, new: list[Obj], now: float | None = None) -> bool:
    """Upstream's updateConditions: every maintained type is present, the ok variant unless `new` has it."""
    changed = False
    conditions = status.setdefault("conditions", [])
    ts = cu.now_rfc3339(now)
    for type_ in CONDITION_TYPES:
        cond = next((c for c in new if c["type"] == type_), None)
        if cond is None:
            reason, message = OK_REASONS[type_]
            cond = {"type": type_, "status": "False", "lastTransitionTime": ts, "reason": reason, "message": message}
        old = next((c for c in conditions if c.get("type") == type_), None)
        if old is None:
            conditions.append(cond)
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != (cond["status"], cond["reason"],
                                                                           cond["message"]):
            if old.get("status") != cond["status"]:
                old["lastTransitionTime"] = ts
            old.update(status=cond["status"], reason=cond["reason"], message=cond["message"])
            changed = True
    return changed


def content_conditions(totals: ContentTotals, discovery_error: str | None, now: float | None = None) -> list[Obj]:
    ts = cu.now_rfc3339(now)

    def cond(type_: str, reason: str, message: str) -> Obj:
        return {"type": type_, "status": "True", "lastTransitionTime": ts, "reason": reason, "message": message}

    out = []
    if discovery_error:
        out.append(cond("NamespaceDeletionDiscoveryFailure", "DiscoveryFailed", discovery_error))
    if totals.errors:
        msgs = sorted(totals.errors)
        out.append(cond("NamespaceDeletionContentFailure", "ContentDeletionFailed",
                        f"Failed to delete all resource types, {len(msgs)} remaining: {', '.join(msgs)}"))
    left = sorted(f"{r}.{g} has {n} resource instances" for (g, r), n in totals.remaining.items() if n)
    if left:
        out.append(cond("NamespaceContentRemaining", "SomeResourcesRemain",
                        f"Some resources are remaining: {', '.join(left)}"))
    fins = sorted(f"{f} in {n} resource instances" for f, n in totals.finalizers.items() if n)
    if fins:
        out.append(cond("NamespaceFinalizersRemaining", "SomeFinalizersRemain",
                        f"Some content in the namespace has finalizers remaining: {', '.join(fins)}"))
    return out


class NamespaceController(Controller):
    name = "namespace-controller"
    aliases = ("namespace",)
    event_component = "namespace-controller"
    service_account = "namespace-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=ctx.config.concurrent_namespace_syncs)
        self.ns_rt = ctx.rt("", "v1", "namespaces")
        self.pods_rt = ctx.rt("", "v1", "pods")
        self.namespaces = self.informer(self.ns_rt)
        self.namespaces.add_handler(self._maybe_enqueue, lambda old, new: self._maybe_enqueue(new), None)
        # graceful pod deletions end asynchronously: look again as soon as a pod of a terminating namespace goes
        self.pods = self.informer(self.pods_rt)
        self.pods.add_handler(None, None, self._pod_gone)
        self._discovered: tuple[float, list[ResourceType], str | None] | None = None

    def _maybe_enqueue(self, ns: Obj) -> None:
        if ns["metadata"].get("deletionTimestamp"):
            self.queue.add(ns["metadata"]["name"])

    def _pod_gone(self, pod: Obj) -> None:
        ns = self.namespaces.get(None, pod["metadata"].get("namespace") or "")
        if ns is not None and ns["metadata"].get("deletionTimestamp"):
            self.queue.add_after(ns["metadata"]["name"], 0.2)

    async def start(self) -> None:
        self.run_periodic(self._resync, self.config.namespace_sync_period)

    async def _resync(self) -> None:
        for ns in self.namespaces.list():
            self._maybe_enqueue(ns)

    # -- discovery -----------------------------------------------------------------------------------------

    async def resource_types(self) -> tuple[list[ResourceType], str | None]:
        """Namespaced types that can be listed and deleted: the built-ins, plus custom resources."""
        now = time.monotonic()
        if self._discovered is not None and now - self._discovered[0] < DISCOVERY_TTL:
            return self._discovered[1], self._discovered[2]
        types = [rt for rt in self.ctx.registry if rt.namespaced and "delete" in rt.verbs and "list" in rt.verbs]
        known = {rt.group for rt in types} | {rt.group for rt in self.ctx.registry}
        error = None
        failed: list[str] = []
        try:
            groups = await self.client.request("GET", "/apis")
        except (ClientError, OSError, TimeoutError) as e:
            groups = {"groups": []}
            error = str(getattr(e, "message", e))
        for group in groups.get("groups") or ():
            if group.get("name") in known:
                continue
            gv = (group.get("preferredVersion") or {}).get("groupVersion")
            if not gv:
                continue
            try:
                listing = await self.client.request("GET", f"/apis/{gv}")
            except (ClientError, OSError, TimeoutError) as e:
                failed.append(f"{gv}: {getattr(e, 'message', e)}")
                continue
            g, _, v = gv.partition("/")
            for r in listing.get("resources") or ():
                verbs = tuple(r.get("verbs") or ())
                if "/" in r["name"] or not r.get("namespaced") or "delete" not in verbs or "list" not in verbs:
                    continue
                types.append(ResourceType(g, v, r["name"], r.get("kind", ""), True, f"/registry/{g}/{r['name']}/",
                                          verbs=verbs))
        if failed:
            error = f"Discovery failed for some groups, {len(failed)} failing: {'; '.join(failed)}"
        types.sort(key=lambda rt: (rt.resource != "pods", rt.group, rt.resource))
        self._discovered = (now, types, error)
        return types, error

    # -- sync -------------------------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        try:
            ns = await self.client.get(self.ns_rt, None, key)
        except ClientError as e:
            if e.is_not_found:
                return
            raise
        if not ns["metadata"].get("deletionTimestamp"):
            return
        if (ns.get("status") or {}).get("phase") != "Terminating":
            ns = copy.deepcopy(ns)
            ns.setdefault("status", {})["phase"] = "Terminating"
            ns = await self.client.update_status(self.ns_rt, ns)
        if not (ns.get("spec") or {}).get("finalizers"):
            return  # finalized already; the API server removes it
        totals, discovery_error = await self.delete_all_content(key, ns)
        status = copy.deepcopy(ns.get("status") or {})
        if self.config.namespace_status_conditions and merge_conditions(
                status, content_conditions(totals, discovery_error)):
            ns["status"] = status
            try:
                ns = await self.client.update_status(self.ns_rt, ns)
            except ClientError as e:
                if e.is_not_found:
                    return
                raise
        if totals.errors or discovery_error:
            raise RuntimeError(f"namespace {key}: content deletion failed: {totals.errors or discovery_error}")
        if totals.estimate > 0:
            self.enqueue_after(key, totals.estimate)
            return
        await self.finalize(ns)

    async def finalize(self, ns: Obj) -> None:
        body = copy.deepcopy(ns)
        body["spec"]["finalizers"] = sorted({f for f in ns["spec"].get("finalizers") or () if f != FINALIZER})
        try:
            await self.client.update(self.ns_rt, body, subresource="finalize")
        except ClientError as e:
            if not e.is_not_found:
                raise

    async def delete_all_content(self, namespace: str, ns: Obj) -> tuple[ContentTotals, str | None]:
        types, discovery_error = await self.resource_types()
        totals = ContentTotals()
        for rt in types:
            try:
                await self._delete_type(rt, namespace, totals)
            except ClientError as e:
                if e.is_not_found or e.code == 405:
                    continue  # the type went away (a CRD deleted meanwhile)
                totals.errors.append(e.message)
            except (OSError, TimeoutError) as e:
                totals.errors.append(str(e))
        return totals, discovery_error

    async def _delete_type(self, rt: ResourceType, namespace: str, totals: ContentTotals) -> None:
        if "deletecollection" in rt.verbs:
            await self.client.delete_collection(rt, namespace, propagation_policy="Background")
        else:
            listing = await self.client.list(rt, namespace)
            for item in listing.get("items") or ():
                if item["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(rt, namespace, item["metadata"]["name"], propagation_policy="Background")
                except ClientError as e:
                    if not e.is_not_found:
                        raise
        items = (await self.client.list(rt, namespace)).get("items") or []
        if not items:
            return
        totals.remaining[(rt.group, rt.resource)] = len(items)
        with_finalizers = False
        estimate = 0.0
        now = time.time()
        for item in items:
            for f in item["metadata"].get("finalizers") or ():
                totals.finalizers[f] = totals.finalizers.get(f, 0) + 1
                with_finalizers = True
            deadline = cu.timestamp(item["metadata"].get("deletionTimestamp"))
            if deadline is not None:
                estimate = max(estimate, deadline - now)
        if with_finalizers:
            estimate = max(estimate, self.config.namespace_finalizer_estimate)
        # graceful pod deletions: the deadline, at least a second; other leftovers: retry shortly
        totals.estimate = max(totals.estimate, estimate if estimate >= 1 else 1.0)
