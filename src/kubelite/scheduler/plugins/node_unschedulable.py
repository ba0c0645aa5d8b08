"""NodeUnschedulable: cordoned nodes (spec.unschedulable) take only pods tolerating that taint."""

from __future__ import annotations

from ..framework import Plugin, Status, unresolvable
from ..podinfo import tolerates_any

REASON = "node(s) were unschedulable"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable(Plugin):
    name = "NodeUnschedulable"

    def filter(self, state, pod, node) -> Status | None:
        if node.unschedulable and not tolerates_any(pod.tolerations, UNSCHEDULABLE_TAINT):
            return unresolvable(self.name, REASON)
        return None
