"""TaintNodesByCondition: a new Node starts with `node.kubernetes.io/not-ready:NoSchedule`, so that nothing is
scheduled onto it before it reports Ready; the node lifecycle controller removes the taint then."""

from __future__ import annotations

NOT_READY = "node.kubernetes.io/not-ready"
NO_SCHEDULE = "NoSchedule"


class TaintNodesByCondition:
    name = "TaintNodesByCondition"

    async def admit(self, ctx, a) -> None:
        if a.op != "CREATE" or a.subresource or not a.is_("", "nodes") or not isinstance(a.obj, dict):
            return
        spec = a.obj.get("spec")
        if spec is None:
            spec = a.obj["spec"] = {}
        if not isinstance(spec, dict):
            return  # validation's to report
        taints = spec.get("taints")
        if taints is not None and not isinstance(taints, list):
            return
        taints = list(taints or [])
        # upstream matches a taint by key and effect
        if any(isinstance(t, dict) and t.get("key") == NOT_READY and t.get("effect") == NO_SCHEDULE for t in taints):
            return
        taints.append({"key": NOT_READY, "effect": NO_SCHEDULE})
        spec["taints"] = taints
