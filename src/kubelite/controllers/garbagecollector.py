"""The garbage collector (upstream's pkg/controller/garbagecollector): ownerReferences as a graph.

Informers on every listable, deletable resource type (built-ins and, rediscovered periodically, custom
resources; Events excepted) feed a graph of uid → node (identity, owner references, deletion state) and
owner uid → dependents.  Two kinds of work, keyed by uid:

- ("delete", uid), upstream's attemptToDelete: an object whose owners may be gone.  Its owner references
  are classified (an owner is looked up live when not in the graph): *dangling* (absent, or another uid),
  *waiting* (being deleted in the foreground) or *solid*.  With a solid owner, references to dangling and
  waiting owners are removed; otherwise the object is deleted — in the foreground if a waiting owner is why
  and it has dependents of its own, else with the propagation its own finalizers ask for (background by
  default).  An owner in foreground deletion (`foregroundDeletion` finalizer + deletionTimestamp) is
  processed here too: while dependents with `blockOwnerDeletion: true` remain they are deleted; then the
  finalizer is removed and the API server lets the owner go.
- ("orphan", uid): an owner deleted with propagationPolicy=Orphan (`orphan` finalizer): every dependent
  loses its reference to it, then the finalizer is removed.

Background deletion needs nothing more: once an owner is gone its dependents are dangling and deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kubelite.api.resources import ResourceType
from kubelite.client import ClientError

from . import controller_utils as cu
from .manager import Controller, ControllerContext

log = logging.getLogger("kubelite.controllers.garbagecollector")

Obj = dict[str, Any]
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


@dataclass
class Node:
    rt: ResourceType
    namespace: str | None
    name: str
    uid: str
    owners: list[Obj] = field(default_factory=list)
    deleting: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def deleting_dependents(self) -> bool:
        return self.deleting and FOREGROUND in self.finalizers

    def owner_uids(self) -> set[str]:
        return {r.get("uid") for r in self.owners if r.get("uid")}


class GarbageCollector(Controller):
    name = "garbage-collector-controller"
    aliases = ("garbagecollector",)
    event_component = "garbage-collector-controller"
    service_account = "generic-garbage-collector"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx, workers=ctx.config.concurrent_gc_syncs)
        self.nodes: dict[str, Node] = {}
        self.dependents: dict[str, set[str]] = {}
        self.monitored: set[tuple[str, str, str]] = set()
        self.custom: dict[tuple[str, str], ResourceType] = {}  # (apiVersion, kind) → discovered type
        self.graph_ready = False
        ignored = set(ctx.config.gc_ignored_resources)
        for rt in ctx.registry:
            if (rt.group, rt.resource) not in ignored:
                self._monitor(rt)

    # -- graph building ----------------------------------------------------------------------------------------

    @staticmethod
    def _eligible(rt: ResourceType) -> bool:
        return all(v in rt.verbs for v in ("list", "watch", "delete"))

    def _monitor(self, rt: ResourceType) -> None:
        ident = (rt.group, rt.version, rt.resource)
        if ident in self.monitored or not self._eligible(rt):
            return
        self.monitored.add(ident)
        inf = self.informer(rt)
        inf.add_handler(lambda obj: self._observe(rt, obj), lambda old, new: self._observe(rt, new),
                        lambda obj: self._forget(obj))

    def _observe(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        uid = meta.get("uid")
        if not uid:
            return
        old = self.nodes.get(uid)
        node = Node(rt, meta.get("namespace"), meta["name"], uid, cu.dict_items(meta.get("ownerReferences")),
                    bool(meta.get("deletionTimestamp")), tuple(meta.get("finalizers") or ()))
        self.nodes[uid] = node
        old_owners = old.owner_uids() if old is not None else set()
        new_owners = node.owner_uids()
        for o in old_owners - new_owners:
            self._unlink(o, uid)
            owner = self.nodes.get(o)
            if owner is not None and owner.deleting_dependents:
                self.queue.add(("delete", o))  # one blocker fewer
        for o in new_owners - old_owners:
            self.dependents.setdefault(o, set()).add(uid)
        if old is not None and old_owners & new_owners:
            # blockOwnerDeletion may have been dropped from a reference to a foreground-deleting owner
            for o in old_owners & new_owners:
                owner = self.nodes.get(o)
                if owner is not None and owner.deleting_dependents:
                    self.queue.add(("delete", o))
        if not self.graph_ready:
            return
        if any(o not in self.nodes for o in new_owners - old_owners):
            self.queue.add(("delete", uid))  # an owner we have not seen: is it there at all?
        self._transitions(node, old)

    def _transitions(self, node: Node, old: Node | None) -> None:
        if node.deleting and ORPHAN in node.finalizers:
            self.queue.add(("orphan", node.uid))
        if node.deleting_dependents and (old is None or not old.deleting_dependents):
            for dep in self.dependents.get(node.uid, ()):
                self.queue.add(("delete", dep))
            self.queue.add(("delete", node.uid))

    def _forget(self, obj: Obj) -> None:
        uid = obj["metadata"].get("uid")
        node = self.nodes.pop(uid, None) if uid else None
        if node is None:
            return
        for o in node.owner_uids():
            self._unlink(o, uid)
            owner = self.nodes.get(o)
            if owner is not None and owner.deleting_dependents:
                self.queue.add(("delete", o))
        for dep in self.dependents.get(uid, ()):
            self.queue.add(("delete", dep))

    def _unlink(self, owner_uid: str, dep_uid: str) -> None:
        deps = self.dependents.get(owner_uid)
        if deps is not None:
            deps.discard(dep_uid)
            if not deps:
                del self.dependents[owner_uid]

    async def start(self) -> None:
        await self.discover_custom_resources()
        self.graph_ready = True
        # what happened while the informers were filling the graph
        for node in list(self.nodes.values()):
            if any(o not in self.nodes for o in node.owner_uids()):
                self.queue.add(("delete", node.uid))
            self._transitions(node, None)
        self.run_periodic(self.discover_custom_resources, self.config.gc_discovery_period)

    async def discover_custom_resources(self) -> None:
        """Monitor the resource types of groups the registry does not know (CRDs)."""
        known = {rt.group for rt in self.ctx.registry}
        try:
            groups = await self.client.request("GET", "/apis")
        except (ClientError, OSError, TimeoutError) as e:
            log.warning("garbage collector: discovery failed: %s", getattr(e, "message", e))
            return
        for group in groups.get("groups") or ():
            if group.get("name") in known:
                continue
            for version in group.get("versions") or ():
                gv = version.get("groupVersion")
                try:
                    listing = await self.client.request("GET", f"/apis/{gv}")
                except (ClientError, OSError, TimeoutError):
                    continue
                g, _, v = gv.partition("/")
                for r in listing.get("resources") or ():
                    if "/" in r["name"]:
                        continue
                    rt = ResourceType(g, v, r["name"], r.get("kind", ""), bool(r.get("namespaced")),
                                      f"/registry/{g}/{r['name']}/", verbs=tuple(r.get("verbs") or ()))
                    self.custom[(gv, rt.kind)] = rt
                    if version.get("groupVersion") == (group.get("preferredVersion") or {}).get("groupVersion"):
                        self._monitor(rt)

    # -- owners ------------------------------------------------------------------------------------------------

    def _owner_type(self, ref: Obj) -> ResourceType | None:
        api_version, kind = ref.get("apiVersion", ""), ref.get("kind", "")
        rt = self.ctx.registry.by_api_version(api_version, kind)
        return rt if rt is not None else self.custom.get((api_version, kind))

    async def _owner_state(self, dependent: Node, ref: Obj) -> str:
        """"dangling" | "waiting" | "solid" for one owner reference."""
        node = self.nodes.get(ref.get("uid", ""))
        if node is not None:
            return "waiting" if node.deleting_dependents else "solid"
        rt = self._owner_type(ref)
        if rt is None:
            return "solid"  # a kind we cannot resolve: never delete on a guess
        namespace = dependent.namespace if rt.namespaced else None
        try:
            owner = await self.client.get(rt, namespace, ref.get("name", ""))
        except ClientError as e:
            if e.is_not_found or e.is_gone:
                return "dangling"
            raise
        meta = owner["metadata"]
        if meta.get("uid") != ref.get("uid"):
            return "dangling"
        if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or ()):
            return "waiting"
        return "solid"

    # -- work ----------------------------------------------------------------------------------------------------

    async def sync(self, key: Any) -> None:
        kind, uid = key
        node = self.nodes.get(uid)
        if node is None:
            return
        if kind == "orphan":
            await self.orphan_dependents(node)
        else:
            await self.attempt_to_delete(node)

    async def _latest(self, node: Node) -> Obj | None:
        try:
            obj = await self.client.get(node.rt, node.namespace, node.name)
        except ClientError as e:
            if e.is_not_found:
                return None
            raise
        return obj if obj["metadata"].get("uid") == node.uid else None

    async def attempt_to_delete(self, node: Node) -> None:
        latest = await self._latest(node)
        if latest is None:
            return
        meta = latest["metadata"]
        if meta.get("deletionTimestamp"):
            if FOREGROUND in (meta.get("finalizers") or ()):
                await self.process_deleting_dependents(node, latest)
            return
        refs = cu.dict_items(meta.get("ownerReferences"))
        if not refs:
            return
        node.owners = refs
        states = {ref.get("uid"): await self._owner_state(node, ref) for ref in refs}
        solid = [u for u, s in states.items() if s == "solid"]
        gone = [u for u, s in states.items() if s != "solid"]
        if solid:
            if gone:
                keep = [r for r in refs if r.get("uid") not in gone]
                await self._patch_owner_refs(node, latest, keep)
            return
        if any(s == "waiting" for s in states.values()) and self.dependents.get(node.uid):
            policy = "Foreground"
        elif ORPHAN in (meta.get("finalizers") or ()):
            policy = "Orphan"
        elif FOREGROUND in (meta.get("finalizers") or ()):
            policy = "Foreground"
        else:
            policy = "Background"
        log.debug("garbage collector: deleting %s %s/%s (%s)", node.rt.kind, node.namespace, node.name, policy)
        try:
            await self.client.delete(node.rt, node.namespace, node.name, propagation_policy=policy,
                                     preconditions={"uid": node.uid})
        except ClientError as e:
            if not (e.is_not_found or e.is_conflict):
                raise

    async def process_deleting_dependents(self, node: Node, latest: Obj) -> None:
        blocking = []
        for dep_uid in self.dependents.get(node.uid, ()):
            dep = self.nodes.get(dep_uid)
            if dep is None:
                continue
            if any(r.get("uid") == node.uid and r.get("blockOwnerDeletion") for r in dep.owners):
                blocking.append(dep)
        if not blocking:
            await self._remove_finalizer(node, latest, FOREGROUND)
            return
        for dep in blocking:
            if not dep.deleting_dependents:
                self.queue.add(("delete", dep.uid))

    async def orphan_dependents(self, node: Node) -> None:
        latest = await self._latest(node)
        if latest is None or not latest["metadata"].get("deletionTimestamp") \
                or ORPHAN not in (latest["metadata"].get("finalizers") or ()):
            return
        for dep_uid in list(self.dependents.get(node.uid, ())):
            dep = self.nodes.get(dep_uid)
            if dep is None:
                continue
            dep_latest = await self._latest(dep)
            if dep_latest is None:
                continue
            refs = cu.dict_items(dep_latest["metadata"].get("ownerReferences"))
            keep = [r for r in refs if r.get("uid") != node.uid]
            if len(keep) != len(refs):
                await self._patch_owner_refs(dep, dep_latest, keep)
        await self._remove_finalizer(node, latest, ORPHAN)

    async def _patch_owner_refs(self, node: Node, latest: Obj, refs: list[Obj]) -> None:
        # a JSON merge patch works for every type (custom resources take no strategic merge patches); the
        # resourceVersion makes it conditional, so a concurrent change is retried rather than overwritten
        patch = {"metadata": {"ownerReferences": refs or None, "uid": node.uid,
                              "resourceVersion": latest["metadata"]["resourceVersion"]}}
        try:
            await self.client.patch(node.rt, node.namespace, node.name, patch, patch_type="merge")
        except ClientError as e:
            if not e.is_not_found:
                raise

    async def _remove_finalizer(self, node: Node, latest: Obj, finalizer: str) -> None:
        finalizers = [f for f in latest["metadata"].get("finalizers") or () if f != finalizer]
        patch = {"metadata": {"finalizers": finalizers or None,
                              "resourceVersion": latest["metadata"]["resourceVersion"]}}
        try:
            await self.client.patch(node.rt, node.namespace, node.name, patch, patch_type="merge")
        except ClientError as e:
            if not e.is_not_found:
                raise
