"""DefaultTolerationSeconds: pods tolerate not-ready and unreachable nodes for 300 s unless they say otherwise."""

from __future__ import annotations

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


class DefaultTolerationSeconds:
    name = "DefaultTolerationSeconds"

    def __init__(self, not_ready_seconds: int = 300, unreachable_seconds: int = 300) -> None:
        self.seconds = {NOT_READY: int(not_ready_seconds), UNREACHABLE: int(unreachable_seconds)}

    async def admit(self, ctx, a) -> None:
        if a.op != "CREATE" or a.subresource or not a.is_("", "pods") or not isinstance(a.obj, dict):
            return
        spec = a.obj.setdefault("spec", {})
        tolerations = list(spec.get("tolerations") or [])
        for key in (NOT_READY, UNREACHABLE):
            covered = any(isinstance(t, dict) and t.get("key") in (key, "", None)
                          and t.get("effect") in ("NoExecute", "", None) for t in tolerations)
            if not covered:
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": self.seconds[key]})
        spec["tolerations"] = tolerations
