"""Priority: a pod's priorityClassName resolves to spec.priority and spec.preemptionPolicy; the built-in
`system-node-critical` and `system-cluster-critical` classes exist from the start; at most one global default."""

from __future__ import annotations

import copy

from . import _store

DEFAULT_PREEMPTION = "PreemptLowerPriority"
SYSTEM_CLASSES = (
    {"name": "system-node-critical", "value": 2000001000,
     "description": "Used for system critical pods that must not be moved from their current node."},
    {"name": "system-cluster-critical", "value": 2000000000,
     "description": "Used for system critical pods that must run in the cluster, but can be moved to another node "
                    "if necessary."},
)


class Priority:
    name = "Priority"

    async def start(self, ctx) -> None:
        from .. import rest
        from ..request_info import RequestInfo

        rt = ctx.registry.get("scheduling.k8s.io", "v1", "priorityclasses")
        if rt is None:
            return
        for pc in SYSTEM_CLASSES:
            if await _store.get(ctx, "scheduling.k8s.io", "v1", "priorityclasses", "", pc["name"]) is not None:
                continue
            obj = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": pc["name"]},
                   "value": pc["value"], "description": pc["description"], "preemptionPolicy": DEFAULT_PREEMPTION}
            info = RequestInfo(is_resource=True, path="", verb="create", api_prefix="apis",
                               group="scheduling.k8s.io", version="v1", resource="priorityclasses")
            try:
                await rest.create_object(ctx, rt, copy.deepcopy(obj), info, False)
            except Exception:  # already there (a concurrent start)
                pass

    async def admit(self, ctx, a) -> None:
        if a.op != "CREATE" or a.subresource or not a.is_("", "pods") or not isinstance(a.obj, dict):
            return
        spec = a.obj.setdefault("spec", {})
        name = spec.get("priorityClassName") or ""
        if name:
            pc = await _store.get(ctx, "scheduling.k8s.io", "v1", "priorityclasses", "", name)
            if pc is None:
                raise a.forbidden(f"no PriorityClass with name {name} was found")
        else:
            classes = await _store.list_all(ctx, "scheduling.k8s.io", "v1", "priorityclasses", None)
            defaults = sorted((c for c in classes if c.get("globalDefault")), key=lambda c: int(c.get("value", 0)))
            pc = defaults[0] if defaults else None
            if pc is not None:
                spec["priorityClassName"] = pc["metadata"]["name"]
        value = int(pc.get("value", 0)) if pc is not None else 0
        policy = (pc.get("preemptionPolicy") if pc is not None else None) or DEFAULT_PREEMPTION
        if spec.get("priority") is not None and int(spec["priority"]) != value:
            raise a.forbidden(f"the integer value of priority ({spec['priority']}) must not be provided in pod spec; "
                              f"priority admission controller computed {value} from the given PriorityClass name")
        if spec.get("preemptionPolicy") is not None and spec["preemptionPolicy"] != policy:
            raise a.forbidden(f"the string value of PreemptionPolicy ({spec['preemptionPolicy']}) must not be "
                              f"provided in pod spec; priority admission controller computed {policy} from the "
                              "given PriorityClass name")
        spec["priority"] = value
        spec["preemptionPolicy"] = policy

    async def validate(self, ctx, a) -> None:
        if not a.is_("scheduling.k8s.io", "priorityclasses") or a.op not in ("CREATE", "UPDATE") \
                or not isinstance(a.obj, dict) or not a.obj.get("globalDefault"):
            return
        for pc in await _store.list_all(ctx, "scheduling.k8s.io", "v1", "priorityclasses", None):
            if pc.get("globalDefault") and pc["metadata"]["name"] != a.name:
                raise a.forbidden(f"PriorityClass {pc['metadata']['name']} is already marked as default. "
                                  "Only one default can exist")
